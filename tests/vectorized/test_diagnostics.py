"""Training-time diagnostics per member of a vectorized job (the values themselves are
compared with an ordinary run's in test_engine.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.diagnostics.callbacks import TrainingDiagnostics
from initlab.diagnostics.probe import weight_layers
from initlab.diagnostics.training import DiagnosticsSettings
from initlab.models.mlp import MLP
from initlab.pipeline import run
from initlab.vectorized.diagnostics import MemberDiagnostics
from initlab.vectorized.engine import StackedModel
from initlab.vectorized.run import Member, train_members

# lr ~ 0: the gradient norms stay at their init values, checked on every step
FROZEN_LR = ["trainer.max_epochs=1", "optimizer.lr=1e-12", "model.depth=2", "model.width=32",
             "diagnostics.callback.check_every_n_steps=1", "diagnostics.callback.patience=3",
             "diagnostics.callback.explode_bound=50", "diagnostics.callback.vanish_bound=1e-5"]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "initlab.diagnostics"]


def test_gradient_warnings_are_per_member_as_in_ordinary_runs(compose_cfg, tmp_path: Path,
                                                               caplog) -> None:
    # total grad norm ~110 (> 50), ~3, and a first layer at ~1e-7 (< 1e-5)
    cfgs = [compose_cfg("logger=none", *FROZEN_LR, *ovs, tiny=False) for ovs in (
        ["init=random", "init.std=1.0", "seed=0"], ["init=he", "seed=1"],
        ["init=random", "init.std=1e-4", "seed=2"])]
    with caplog.at_level(logging.WARNING, logger="initlab.diagnostics"):
        vec = train_members([Member(c, tmp_path / f"v{j}") for j, c in enumerate(cfgs)])
    assert [s["status"] for s in vec] == ["completed"] * 3
    got = _warnings(caplog)
    # one episode each, named by its run; the healthy member does not warn
    assert len(got) == 2
    assert got[0].startswith(f"run {vec[0]['run_name']}: exploding gradients")
    assert got[1].startswith(f"run {vec[2]['run_name']}: vanishing gradients")
    for j in (0, 1, 2):  # each member warns exactly what its ordinary run warns
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="initlab.diagnostics"):
            run(cfgs[j], tmp_path / f"o{j}", progress_bar=False)
        want = [f"run {vec[j]['run_name']}: {m}" for m in _warnings(caplog)]
        assert want == [m for m in got if m.startswith(f"run {vec[j]['run_name']}:")]


def test_a_diverged_member_logs_no_diagnostics_from_its_failing_step(compose_cfg, tb_events,
                                                                     tmp_path: Path) -> None:
    cfgs = [compose_cfg("logger=tensorboard", "diagnostics=default", "init=random",
                        f"init.std={std}", "trainer.max_epochs=2",
                        "diagnostics.callback.log_every_n_steps=1") for std in (1e3, 0.1)]
    boom, calm = train_members([Member(c, tmp_path / f"m{j}") for j, c in enumerate(cfgs)])
    assert boom["status"] == "diverged" and calm["status"] == "completed"
    b, c = tb_events(tmp_path / "m0"), tb_events(tmp_path / "m1")
    for tag in ("diag/grad_norm/total", "diag/update_ratio/model.head"):
        assert [s for s, _ in b.get(tag, [])] == list(range(boom["diverged_step"])), tag
        assert [s for s, _ in c[tag]] == list(range(calm["steps"])), tag


class _Recorder:
    """A logger that keeps what ``log_metrics`` got."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.rows.append((step, dict(metrics)))


def _member_diagnostics_rows(settings) -> tuple[list[list], list[nn.Module]]:
    """Step 0 (a logging step) of two stacked MLP members under ``settings``: each
    member's gradients from its own model, one SGD step of lr 0.1, the epoch's dead
    fractions; what each member's logger got, and the members' models (with grads).
    Member j's first hidden layer has 4 (j + 1) dead units (bias -100)."""
    torch.manual_seed(0)
    models = [MLP((8,), 3, nn.ReLU, depth=2, width=16) for _ in range(2)]
    with torch.no_grad():
        for j, m in enumerate(models):
            m.blocks[0].linear.bias[: 4 * (j + 1)] = -100.0
    x, y = torch.randn(2, 32, 8), torch.randint(0, 3, (2, 32))
    for j, m in enumerate(models):
        F.cross_entropy(m(x[j]), y[j]).backward()
    stacked = StackedModel(models)
    for name, p in stacked.params.items():
        p.grad = torch.stack([dict(m.named_parameters())[name].grad for m in models])
    loggers = [_Recorder(), _Recorder()]
    diag = MemberDiagnostics(settings, stacked, loggers, every=50, run_names=["a", "b"])
    frozen = torch.zeros(2, dtype=torch.bool)
    diag.before_step(0, frozen)
    with torch.no_grad():
        for p in stacked.params.values():
            p -= 0.1 * p.grad
    diag.after_step(frozen)
    diag.end_epoch(x, shared=False, step=1, frozen=frozen)
    return [lg.rows for lg in loggers], models


def test_member_diagnostics_take_plain_settings() -> None:
    # the engine's settings object (no Lightning) and the Lightning callback log the same
    plain, models = _member_diagnostics_rows(DiagnosticsSettings(histograms=False))
    assert plain == _member_diagnostics_rows(TrainingDiagnostics(histograms=False))[0]
    for rows, m in zip(plain, models, strict=True):
        (s0, grads), (s1, ratios), (s2, dead) = rows
        assert (s0, s1, s2) == (0, 0, 1)
        layers = weight_layers(m)
        want = {f"diag/grad_norm/model.{n}": layer.weight.grad.norm().item()
                for n, layer in layers}
        want["diag/grad_norm/total"] = torch.stack(
            [p.grad.norm() for p in m.parameters()]).norm().item()
        assert grads == pytest.approx(want, rel=1e-5)
        # SGD: ||dW|| / ||W|| = lr ||g|| / ||W||
        assert ratios == pytest.approx(
            {f"diag/update_ratio/model.{n}": 0.1 * layer.weight.grad.norm().item()
             / layer.weight.norm().item() for n, layer in layers}, rel=1e-4)
        assert set(dead) == {f"diag/dead_frac/model.{n}" for n, _ in layers}
    assert [rows[2][1]["diag/dead_frac/model.blocks.0.linear"] for rows in plain] == [
        4 / 16, 8 / 16]
