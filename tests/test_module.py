"""InitStudyModule's fast paths give the same training as Lightning's own machinery."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from initlab.pipeline import run
from initlab.results.files import SUMMARY_FILE

HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step",
         "on_validation_epoch_start", "on_validation_epoch_end")


class HookCounter(pl.Callback):
    """Counts the per-step and validation hooks and keeps the weights after training."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.steps_seen: list[int] = []
        self.weights: list[torch.Tensor] = []
        self.direct: bool | None = None

    def on_before_backward(self, trainer, pl_module, loss) -> None:  # noqa: ANN001
        self.calls["on_before_backward"] += 1

    def on_after_backward(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.calls["on_after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        self.calls["on_before_optimizer_step"] += 1
        self.steps_seen.append(trainer.global_step)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.calls["on_validation_epoch_start"] += 1

    def on_validation_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.calls["on_validation_epoch_end"] += 1

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.weights = [p.detach().clone() for p in pl_module.parameters()]
        self.direct = pl_module._direct


def _train(compose_cfg, tmp_path: Path, name: str, *overrides: str) -> tuple[dict, HookCounter]:
    cfg = compose_cfg("trainer.max_epochs=3", "logger=none", "diagnostics=off", *overrides)
    counter = HookCounter()
    summary = run(cfg, tmp_path / name, progress_bar=False, extra_callbacks=[counter])
    assert summary["status"] == "completed", summary.get("error")
    return json.loads((tmp_path / name / SUMMARY_FILE).read_text()), counter


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_direct_steps_match_lightning_steps(compose_cfg, tmp_path: Path, precision: str) -> None:
    # bf16-mixed: Lightning's autocast context is around training_step in both paths
    fast, fast_hooks = _train(compose_cfg, tmp_path, "direct", "trainer.direct_steps=true",
                              f"trainer.precision={precision}")
    slow, slow_hooks = _train(compose_cfg, tmp_path, "lightning", "trainer.direct_steps=false",
                              f"trainer.precision={precision}")
    assert fast_hooks.direct and not slow_hooks.direct  # the two paths really ran
    steps = fast["steps"]
    assert steps == slow["steps"] > 0
    # every callback still sees every step, with the global step Lightning reports
    for hook in HOOKS[:3]:
        assert fast_hooks.calls[hook] == slow_hooks.calls[hook] == steps
    assert fast_hooks.steps_seen == slow_hooks.steps_seen == list(range(steps))
    for a, b in zip(fast_hooks.weights, slow_hooks.weights, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for key in ("final_train_loss", "final_train_acc", "final_val_loss", "final_val_acc"):
        assert fast[key] == slow[key], key


def test_lean_validation_matches_lightning_validation(compose_cfg, tmp_path: Path) -> None:
    lean, lean_hooks = _train(compose_cfg, tmp_path, "lean", "trainer.lean_validation=true")
    loop, loop_hooks = _train(compose_cfg, tmp_path, "loop", "trainer.lean_validation=false")
    assert lean["epochs_run"] == loop["epochs_run"] == 3
    for key in ("final_val_loss", "final_val_acc", "best_val_acc", "final_train_loss",
                "test_acc"):
        assert abs(lean[key] - loop[key]) <= 1e-9 * max(1.0, abs(loop[key])), key
    # callbacks are told about validation either way, once per epoch
    for hook in HOOKS[3:]:
        assert lean_hooks.calls[hook] == loop_hooks.calls[hook] == 3


def test_validation_every_n_epochs_is_respected(compose_cfg, tmp_path: Path) -> None:
    summary, hooks = _train(compose_cfg, tmp_path, "every2", "trainer.max_epochs=4",
                            "+trainer.check_val_every_n_epoch=2")
    assert hooks.calls["on_validation_epoch_end"] == 2
    history = (tmp_path / "every2" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    val = [row.split(",")[header.index("val_acc")] for row in history[1:]]
    # epochs 2 and 4 validated; 1 and 3 did not, and show no (stale) value
    assert [bool(v) for v in val] == [False, True, False, True]
    assert summary["final_val_acc"] == float(val[3])


def test_lightning_only_validation_options_use_lightnings_loop(compose_cfg, tmp_path) -> None:
    summary, hooks = _train(compose_cfg, tmp_path, "interval", "+trainer.val_check_interval=1.0")
    assert hooks.calls["on_validation_epoch_end"] == 3  # Lightning's loop, not the lean pass
    assert 0.0 < summary["final_val_acc"] <= 1.0


def test_max_steps_stops_inside_a_call(compose_cfg, tmp_path: Path) -> None:
    # one call holds a whole 20-step epoch; the 30th step ends training mid-call
    summary, hooks = _train(compose_cfg, tmp_path, "steps", "+trainer.max_steps=30")
    assert summary["steps"] == 30 and hooks.calls["on_before_optimizer_step"] == 30
    assert hooks.calls["on_validation_epoch_end"] == 2  # the cut-short epoch validates too


def test_direct_steps_clip_gradients_as_lightning_does(compose_cfg, tmp_path: Path) -> None:
    clip = ("trainer.gradient_clip_val=0.05", "optimizer.lr=0.5")
    fast, fast_hooks = _train(compose_cfg, tmp_path, "d", "trainer.direct_steps=true", *clip)
    slow, slow_hooks = _train(compose_cfg, tmp_path, "l", "trainer.direct_steps=false", *clip)
    unclipped, _ = _train(compose_cfg, tmp_path, "u", "optimizer.lr=0.5")
    for a, b in zip(fast_hooks.weights, slow_hooks.weights, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert fast["final_train_loss"] != unclipped["final_train_loss"]  # clipping acted


def test_stored_training_step_signature_is_what_lightning_reads() -> None:
    # Lightning passes batch_idx only if its argspec of training_step has two arguments
    # after self; the stored signature must give it the function's real parameters.
    import inspect

    from pytorch_lightning.utilities.signature_utils import is_param_in_hook_signature

    from initlab.module import InitStudyModule

    fn = InitStudyModule.training_step
    assert "__signature__" in vars(fn)
    code = fn.__code__
    assert inspect.getfullargspec(fn).args == list(code.co_varnames[: code.co_argcount])
    module = InitStudyModule(torch.nn.Linear(2, 2), None, torch.optim.SGD)
    assert is_param_in_hook_signature(module.training_step, "batch_idx", min_args=2)


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true", "64-true"])
def test_lean_validation_runs_in_the_precision_of_lightnings_loop(compose_cfg, tmp_path: Path,
                                                                   precision: str) -> None:
    # the lean pass casts its inputs (bf16-true, 64-true: it used to fail on the dtype)
    # and runs under autocast (bf16-mixed: its val numbers differed from Lightning's)
    lean, _ = _train(compose_cfg, tmp_path, "lean", "trainer.lean_validation=true",
                     f"trainer.precision={precision}")
    loop, _ = _train(compose_cfg, tmp_path, "loop", "trainer.lean_validation=false",
                     f"trainer.precision={precision}")
    assert lean["epochs_run"] == loop["epochs_run"] == 3
    for key in ("final_val_loss", "final_val_acc", "best_val_acc", "final_train_loss"):
        assert abs(lean[key] - loop[key]) <= 1e-9 * max(1.0, abs(loop[key])), key


class UnscaledGradNorms(pl.Callback):
    """The total gradient norm and largest element the optimizer step gets (after the
    scaler's unscale)."""

    def __init__(self) -> None:
        self.norms: list[float] = []
        self.maxima: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g.float()) for g in grads]))))
        self.maxima.append(max(float(g.abs().max()) for g in grads))


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_clipping_under_fp16_loss_scaling_clips_the_true_gradients(compose_cfg,
                                                                   algorithm: str) -> None:
    # 16-mixed on a GPU scales the loss; Lightning unscales only inside opt.step, after
    # the module clips. Here a CPU GradScaler stands in for the GPU's (the same scaler
    # logic, real Lightning plugin); the clipped gradients must have norm 1, not 1/scale.
    from hydra.utils import instantiate
    from pytorch_lightning.plugins.precision import MixedPrecision

    from initlab.models.activations import activation_factory
    from initlab.module import InitStudyModule

    cfg = compose_cfg("init=random", "init.std=0.5", "trainer.gradient_clip_val=1.0")
    pl.seed_everything(0, verbose=False)
    dm = instantiate(cfg.dataset, seed=0)
    dm.prepare()
    make_act = activation_factory(name="relu")
    model = instantiate(cfg.model, input_shape=tuple(dm.input_shape),
                        num_outputs=dm.num_outputs, activation=make_act)
    module = InitStudyModule(model, initializer=instantiate(cfg.init),
                             optimizer=instantiate(cfg.optimizer), task=dm.task,
                             num_outputs=dm.num_outputs, activation=make_act(), seed=0,
                             gradient_clip_val=0.01 if algorithm == "value" else 1.0,
                             gradient_clip_algorithm=algorithm)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    norms = UnscaledGradNorms()
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=False, callbacks=[norms],
                         plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert len(norms.norms) == 6 and scaler.get_scale() > 1
    if algorithm == "norm":  # the init's gradients are far above 1: norm 1 at every step
        assert norms.norms == pytest.approx([1.0] * 6, rel=1e-3)
    else:  # every element within +-0.01, the largest at it
        assert norms.maxima == pytest.approx([0.01] * 6, rel=1e-3)


@pytest.mark.parametrize("steps_per_call", [1, 50])
def test_max_steps_validation_follows_lightnings_loop(compose_cfg, tmp_path: Path,
                                                      steps_per_call: int) -> None:
    # 25 steps of 20-step epochs: with one step per call the second epoch is cut before
    # its last call and Lightning does not validate it; with 50 steps per call the cut
    # falls inside the epoch's only (last) call and Lightning validates it
    extra = ("+trainer.max_steps=25", f"trainer.steps_per_call={steps_per_call}")
    _train(compose_cfg, tmp_path, "lean", "trainer.lean_validation=true", *extra)
    _train(compose_cfg, tmp_path, "loop", "trainer.lean_validation=false", *extra)
    lean, loop = (pd.read_csv(tmp_path / d / "history.csv") for d in ("lean", "loop"))
    assert list(lean["step"]) == list(loop["step"]) == [20, 25]
    assert lean["val_acc"].isna().tolist() == loop["val_acc"].isna().tolist() == [
        False, steps_per_call == 1]
    pd.testing.assert_frame_equal(lean.drop(columns="time_s"), loop.drop(columns="time_s"))
