"""Every option of every config group composes and instantiates."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from initlab.config import check_accelerator, run_name, study_config, trainer_kwargs, validate
from initlab.models.activations import activation_factory
from initlab.models.mlp import MLP

CONF = Path(__file__).resolve().parents[1] / "conf"

GROUPS = ["dataset", "model", "init", "activation", "optimizer", "lr_scheduler", "trainer",
          "callbacks", "logger", "diagnostics", "experiment", "param"]
# templates for the user's own model / scheme: they need a _target_ / scheme (tested in
# tests/test_extensions.py)
TEMPLATES = {("model", "custom"), ("init", "custom")}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml")
                  if (group, p.stem) not in TEMPLATES)


CASES = [(g, o) for g in GROUPS for o in options(g)]


def test_every_group_has_options() -> None:
    for group in ("dataset", "model", "init", "activation", "optimizer", "trainer", "logger"):
        assert options(group), f"conf/{group}/ is empty"
    for name in ("random", "zeros", "default", "xavier", "he", "lecun", "orthogonal", "lsuv"):
        assert name in options("init"), f"conf/init/{name}.yaml is missing"


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_instantiates(compose_cfg, group: str, option: str, tmp_path) -> None:
    cfg = compose_cfg(f"{group}={option}")
    validate(cfg)
    assert study_config(cfg)  # resolves without a Hydra run
    node = cfg.get(group)
    if group == "activation":
        module = activation_factory(**OmegaConf.to_container(node))()
        assert isinstance(module, torch.nn.Module)
    elif group == "dataset":
        dm = instantiate(node, seed=0)
        assert dm.task in ("classification", "regression")
    elif group == "model":
        dm = instantiate(cfg.dataset, seed=0)
        dm.prepare()
        model = instantiate(node, input_shape=tuple(dm.input_shape), num_outputs=dm.num_outputs,
                            activation=activation_factory(**cfg.activation))
        x, _ = dm.sample_batch(4)
        assert model(x).shape == (4, dm.num_outputs)
    elif group == "init":
        init = instantiate(node)
        model = MLP((1, 8, 8), 10, activation_factory("relu"), depth=2, width=16)
        if option in ("fixup", "zero_residual"):  # they need residual branches
            from initlab.models.resnet import ResNet

            model = ResNet((1, 8, 8), 10, activation_factory("relu"), depth=8)
        if option in ("gpt2", "small_init", "tfixup", "deepnet", "rezero", "per_role"):
            from initlab.models.transformer import Transformer  # they need layer roles

            post = {"norm_position": "post", "residual_alpha": "deepnorm"}
            model = Transformer((1, 8, 8), 10, activation_factory("relu"), depth=2, width=16,
                                **(post if option == "deepnet" else {}))
        data = torch.randn(32, 1, 8, 8) if getattr(init, "needs_data", False) else None
        before = [p.detach().clone() for p in model.parameters()]
        init(model, activation=torch.nn.ReLU(), data=data, seed=0)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        if option not in ("default",):
            assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(),
                                                              strict=True))
    elif group == "optimizer":
        opt = instantiate(node)([torch.nn.Parameter(torch.zeros(2))])
        assert isinstance(opt, torch.optim.Optimizer)
    elif group == "trainer":
        kwargs = trainer_kwargs(node)
        if kwargs.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
            pytest.skip("needs a GPU")  # the config itself composed and validated above
        trainer = instantiate(node, logger=False, enable_progress_bar=False)
        assert isinstance(trainer, pl.Trainer)
    elif group == "lr_scheduler":
        from initlab.schedulers import scheduler_spec

        spec = scheduler_spec(node)
        if option == "none":
            assert spec is None
        else:
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
            factory = spec["scheduler"]
            sched = factory(opt, total_steps=100) if "total_steps" in str(
                getattr(factory, "keywords", {})) else factory(opt)
            assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
            assert spec["interval"] in ("epoch", "step")
    elif group in ("logger", "callbacks"):
        from initlab.pipeline import make_callbacks, make_loggers

        made = (make_loggers(cfg, tmp_path, "v") if group == "logger"
                else make_callbacks(cfg))
        assert len(made) == len([v for v in (node or {}).values() if v is not None])
        for logger in made if group == "logger" else []:
            assert str(logger.log_dir).startswith(str(tmp_path))
    elif group == "diagnostics":
        if node.get("callback"):
            assert isinstance(instantiate(node.callback), pl.Callback)
    elif group == "experiment":
        assert cfg.init is not None
    elif group == "param":
        from initlab.parametrization import Parametrization

        assert Parametrization.from_config(node).kind == option


def test_unknown_option_lists_available(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg("init=nope")
    msg = str(err.value)
    assert "nope" in msg and "he" in msg and "xavier" in msg


@pytest.mark.parametrize(
    ("override", "key"),
    [("trainer.max_epochs=0", "trainer.max_epochs"), ("optimizer.lr=-1", "optimizer.lr"),
     ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
     ("+trainer.steps_per_call=5", "trainer.steps_per_call"),
     ("+trainer.nonsense=1", "trainer.nonsense"), ("+unknown=1", "unknown"),
     ("checkpoint=maybe", "checkpoint"),
     # wrong types and ranges that used to surface as TypeErrors or library errors
     ("seed=-1", "seed"), ("seed=true", "seed"), ("optimizer.lr=true", "optimizer.lr"),
     ("trainer.max_epochs=true", "trainer.max_epochs"),
     ("dataset.batch_size=abc", "dataset.batch_size"),
     ("dataset.eval_batch_size=0", "dataset.eval_batch_size"),
     ("optimizer.weight_decay=abc", "optimizer.weight_decay"),
     ("+trainer.max_steps=abc", "trainer.max_steps"), ("threads=-2", "threads"),
     ("threads=0", "threads")],
)
def test_validate_names_the_bad_key(compose_cfg, override: str, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validate(compose_cfg(override))


def test_run_name_is_readable() -> None:
    name = run_name({"init": "he", "activation": "relu"}, 3, ["init=he", "model.depth=30"])
    assert name == "init=he/model.depth=30/seed=3"


def test_trainer_group_holds_trainer_arguments_only(compose_cfg) -> None:
    kwargs = trainer_kwargs(compose_cfg().trainer)
    params = inspect.signature(pl.Trainer).parameters
    assert kwargs and all(key in params for key in kwargs)
    assert compose_cfg().trainer._target_ == "pytorch_lightning.Trainer"


def test_known_trainer_arguments_are_the_installed_trainers() -> None:
    """config.TRAINER_ARGS lets a config be checked without importing Lightning: it must
    be exactly the installed pl.Trainer's arguments (update it with Lightning)."""
    from initlab.config import TRAINER_ARGS

    assert TRAINER_ARGS == set(inspect.signature(pl.Trainer).parameters) - {"self"}


def test_gpu_accelerator_is_checked_against_this_machine(compose_cfg) -> None:
    trainer = compose_cfg("trainer=gpu").trainer
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:  # a GPU machine: one device is fine, one more than it has is named
        check_accelerator(trainer)
        with pytest.raises(ValueError, match=rf"trainer.devices={count + 1}.*1 to {count}"):
            check_accelerator({"accelerator": "gpu", "devices": count + 1})
    elif torch.backends.mps.is_available():  # Apple: Lightning's "gpu" is MPS
        check_accelerator(trainer)
    else:
        with pytest.raises(ValueError, match=r"trainer.accelerator='gpu'.*allowed here: cpu"):
            check_accelerator(trainer)
    if not count:  # CUDA named, or a vectorized job (CUDA or the CPU only)
        with pytest.raises(ValueError, match=r"trainer.accelerator='cuda'"):
            check_accelerator({"accelerator": "cuda"})
        with pytest.raises(ValueError, match=r"trainer.accelerator='gpu'"):
            check_accelerator(trainer, cuda_only=True)
    for cpu_ok in ("cpu", "auto"):  # never refused
        check_accelerator({"accelerator": cpu_ok, "devices": 2})


def test_gpu_run_without_a_gpu_fails_with_the_key_named(compose_cfg, tmp_path) -> None:
    from initlab.pipeline import run

    summary = run(compose_cfg("trainer=gpu"), tmp_path, progress_bar=False)
    if torch.cuda.is_available() or torch.backends.mps.is_available():  # a GPU trains it
        assert summary["status"] == "completed"
    else:
        assert summary["status"] == "failed"
        assert "trainer.accelerator='gpu'" in summary["error"]
        assert (tmp_path / "summary.json").exists()


def test_lightning_batch_count_options_pass_through(compose_cfg) -> None:
    validate(compose_cfg("+trainer.limit_train_batches=0.5", "+trainer.val_check_interval=0.5"))


def test_long_override_lists_give_short_stable_job_folder_names() -> None:
    # a dozen overrides made a job folder name of 310 characters: over the 255-byte limit
    from initlab.config import JOB_DIRNAME_LIMIT, shorten

    long = ",".join(f"dataset.key_{i}={i * 1000}" for i in range(20))
    short = shorten(long, JOB_DIRNAME_LIMIT)
    assert len(short) == JOB_DIRNAME_LIMIT and short.startswith(long[:100])
    fits = long[:JOB_DIRNAME_LIMIT]  # a name that fitted before is kept: old sweeps resume
    assert shorten(fits, JOB_DIRNAME_LIMIT) == fits
    assert short == shorten(long, JOB_DIRNAME_LIMIT)  # a rerun finds the same folder
    assert short != shorten(long + "1", JOB_DIRNAME_LIMIT)  # distinct lists stay distinct
    assert shorten("init=he,seed=0", JOB_DIRNAME_LIMIT) == "init=he,seed=0"
    wide = "init.name=\u00e9t\u00e9," * 30  # 2-byte characters: the limit is in bytes
    cut = shorten(wide, JOB_DIRNAME_LIMIT)
    assert len(cut.encode()) <= JOB_DIRNAME_LIMIT and cut.startswith("init.name=\u00e9t")
    node = OmegaConf.create({"o": long, "sub": "${initlab.dirname:${o}}"})
    assert node.sub == short  # the resolver conf/config.yaml names job folders with


def test_adam_betas_need_two_numbers(compose_cfg) -> None:
    with pytest.raises(ValueError, match=r"optimizer\.betas=.*two numbers in \[0, 1\)"):
        validate(compose_cfg("optimizer=adam", "optimizer.betas=[0.9]"))
    validate(compose_cfg("optimizer=adam", "optimizer.betas=[0.8,0.99]"))


def test_names_from_user_input_stay_inside_their_folder() -> None:
    from initlab.config import folder_name, job_dirname

    for text in ("../../x", "/abs/path", "..", ".", "a/../../b", ""):
        name = folder_name(text)
        assert "/" not in name and name not in (".", "..", "")
        assert (Path("/r") / name).resolve().parent == Path("/r")
    assert folder_name("init=he,seed=0") == "init=he,seed=0"  # ordinary names unchanged
    dirname = job_dirname("+x=../../../y,init=he")
    assert dirname == "+x=..%2F..%2F..%2Fy,init=he"
    assert job_dirname("init=he,model.widths=[64,32]") == "init=he,model.widths=[64,32]"
    node = OmegaConf.create({"o": "+x=../y", "sub": "${initlab.dirname:${o}}"})
    assert node.sub == "+x=..%2Fy"


def test_a_path_like_run_name_writes_only_inside_the_run_folder(compose_cfg,
                                                               tmp_path: Path) -> None:
    from initlab.pipeline import run

    folder = tmp_path / "a" / "b" / "run"
    s = run(compose_cfg("diagnostics=off", "run_name=../../x"), folder, progress_bar=False)
    assert s["status"] == "completed" and s["run_name"] == ".._.._x"
    assert sorted(p.name for p in tmp_path.rglob("*") if folder not in p.parents
                  and p != folder) == ["a", "b"]  # nothing beside or above the run folder
    assert (folder / "tb" / ".._.._x" / "hparams.yaml").is_file()
    assert list((folder / "tb" / ".._.._x").glob("events.out.tfevents*"))


@pytest.mark.slow
def test_an_override_with_dot_dot_keeps_its_run_inside_the_sweep(run_train,
                                                                tmp_path: Path) -> None:
    import pandas as pd

    sweep = tmp_path / "deep" / "sweep"
    proc = run_train(["-m", f"hydra.sweep.dir={sweep}", "trainer.max_epochs=1", "logger=none",
                      "diagnostics=off", "model.depth=2", "model.width=32",
                      "hydra.callbacks.aggregate.plots=false", "+paths.tag=../../../y"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["sweep"]
    results = pd.read_csv(sweep / "results.csv")
    assert list(results["status"]) == ["completed"]
    assert results["run"][0].startswith("0_+paths.tag=..%2F..%2F..%2Fy,")
