"""Refusals: what a vectorized job cannot train is named before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from initlab.vectorized import VectorizeError, check_supported
from initlab.vectorized.run import Member, check_members, train_members

NO_LOG = ["logger=none", "diagnostics=off"]


@pytest.mark.parametrize("model", ["transformer", "rnn", "lstm"])
def test_unsupported_models_are_refused_by_name(compose_cfg, model: str) -> None:
    with pytest.raises(VectorizeError,
                       match=rf"model='{model}'.*model=mlp, model=cnn or model=resnet"):
        check_supported(compose_cfg(f"model={model}", tiny=False), model_choice=model)


@pytest.mark.parametrize("override,key", [
    ("+trainer.max_steps=5", "trainer.max_steps"),
    ("checkpoint=true", "checkpoint"),
    ("trainer.precision=16-mixed", "trainer.precision"),
    ("+trainer.accumulate_grad_batches=2", "trainer.accumulate_grad_batches"),
    ("optimizer._target_=torch.optim.LBFGS", "optimizer"),
    ("param=mup", "param"),
    # a schedule that monitors a metric (the loop has no callback metrics to feed it)
    ("+lr_scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
     "lr_scheduler"),
])
def test_unsupported_training_options_are_refused(compose_cfg, override: str, key: str) -> None:
    with pytest.raises(VectorizeError, match=key.replace(".", r"\.")):
        check_supported(compose_cfg(override))


def test_supported_configs_pass(compose_cfg) -> None:
    for extra in ([], ["model=cnn", "model.norm=batch"], ["optimizer=adam"],
                  ["trainer.gradient_clip_val=1.0"], ["model.norm=layer"],
                  ["lr_scheduler=cosine"], ["lr_scheduler=warmup_cosine"],
                  ["lr_scheduler=onecycle"], ["lr_scheduler=step"]):
        check_supported(compose_cfg(*extra, tiny=not extra or extra[0] != "model=cnn"))


def test_members_must_differ_only_in_init_and_seed(compose_cfg, tmp_path: Path) -> None:
    a = Member(compose_cfg(*NO_LOG, "init=xavier"), tmp_path / "a")
    b = Member(compose_cfg(*NO_LOG, "init=he", "seed=3", "init.gain=2.0"), tmp_path / "b")
    check_members([a, b])
    c = Member(compose_cfg(*NO_LOG, "activation=tanh"), tmp_path / "c")
    with pytest.raises(VectorizeError, match="activation.name"):
        check_members([a, c])


def test_members_may_differ_in_lr_with_sgd_adam_adamw(compose_cfg, tmp_path: Path) -> None:
    for opt in ("sgd", "adam", "adamw"):
        check_members([Member(compose_cfg(*NO_LOG, f"optimizer={opt}", f"optimizer.lr={lr}",
                                          "lr_scheduler=onecycle"), tmp_path / str(lr))
                       for lr in (0.1, 0.01)])  # onecycle's max_lr follows each member's lr
    # another optimizer takes one lr per job
    rms = [Member(compose_cfg(*NO_LOG, "optimizer._target_=torch.optim.RMSprop",
                              "~optimizer.momentum", f"optimizer.lr={lr}"), tmp_path / str(lr))
           for lr in (0.1, 0.01)]
    with pytest.raises(VectorizeError, match=r"optimizer='torch.optim.RMSprop'.*SGD, Adam, AdamW"):
        check_members(rms)
    # an option the per-member update does not implement is named
    odd = [Member(compose_cfg(*NO_LOG, "optimizer=sgd", "+optimizer.foo=1",
                              f"optimizer.lr={lr}"), tmp_path / str(lr)) for lr in (0.1, 0.01)]
    with pytest.raises(VectorizeError, match=r"optimizer\.foo"):
        check_members(odd)
    # other optimizer keys still may not differ
    mom = [Member(compose_cfg(*NO_LOG, "optimizer=sgd", f"optimizer.momentum={m}"),
                  tmp_path / str(m)) for m in (0.9, 0.5)]
    with pytest.raises(VectorizeError, match="optimizer.momentum"):
        check_members(mom)


def test_a_refused_job_records_every_member_as_failed(compose_cfg, tmp_path: Path) -> None:
    members = [Member(compose_cfg(*NO_LOG, "model=rnn", f"seed={s}", tiny=False),
                      tmp_path / f"m{s}") for s in (0, 1)]
    summaries = train_members(members)
    for s, m in zip(summaries, members, strict=True):
        assert s["status"] == "failed" and s["error_type"] == "VectorizeError"
        assert "model=mlp, model=cnn or model=resnet" in s["error"]
        assert (m.output_dir / "summary.json").is_file()


def test_a_gpu_job_without_a_gpu_records_every_member_as_failed(compose_cfg,
                                                                 tmp_path: Path) -> None:
    import torch

    members = [Member(compose_cfg(*NO_LOG, "trainer=gpu", f"seed={s}"), tmp_path / f"m{s}")
               for s in (0, 1)]
    summaries = train_members(members)
    for s in summaries:
        if torch.cuda.is_available():  # a GPU machine trains them
            assert s["status"] == "completed"
        else:
            assert s["status"] == "failed" and "trainer.accelerator='gpu'" in s["error"]


@pytest.mark.parametrize("devices,want", [(1, "cuda"), ([1], "cuda:1"), ("1,", "cuda:1"),
                                          ("auto", "cuda"), (None, "cuda"), ([0], "cuda:0")])
def test_a_job_trains_on_the_gpu_that_trainer_devices_names(devices, want) -> None:
    # trainer.devices=[1] passed the checks but trained on GPU 0
    from omegaconf import OmegaConf

    from initlab.vectorized.run import _device

    cfg = OmegaConf.create({"trainer": {"accelerator": "gpu", "devices": devices}})
    assert _device(cfg) == want
    cfg.trainer.accelerator = "cpu"
    assert _device(cfg) == "cpu"
