"""Coordinate check: after a few Adam steps, log mean|activation| against log width is
flat under muP and grows under SP (Yang et al. 2022, figure 5), for the MLP and the
transformer; the callback writes summary.json's coord_check in a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from initlab.diagnostics.coord_check import coord_check, coord_slopes
from initlab.initializers import initialize
from initlab.models.mlp import MLP
from initlab.models.transformer import Transformer
from initlab.parametrization import Parametrization, param_groups, rescale_init

WIDTHS = [32, 64, 128, 256]
BASE, LR, STEPS = 32, 0.01, 6


def slopes(kind: str, arch: str) -> dict[str, float]:
    param = Parametrization(kind, BASE)
    g = torch.Generator().manual_seed(0)
    if arch == "mlp":
        batch = (torch.randn(64, 16, generator=g), torch.randint(0, 10, (64,), generator=g))
    else:
        batch = (torch.randint(0, 12, (64, 8), generator=g),
                 torch.randint(0, 10, (64,), generator=g))

    def make(width: int) -> nn.Module:
        if arch == "mlp":
            model = MLP((16,), 10, nn.Tanh, depth=3, width=width)
        else:
            model = Transformer((8,), 10, nn.GELU, depth=2, width=width, heads=4, vocab_size=12)
        initialize(model, "lecun", seed=0)
        rescale_init(model, param)
        return model

    result = coord_check(make, WIDTHS, [batch] * STEPS,
                         lambda m: torch.optim.Adam(param_groups(m, param, LR, "adam")))
    assert set(result) == set(WIDTHS) and all(len(v) == STEPS for v in result[32].values())
    return coord_slopes(result)


def test_slope_formula() -> None:
    fake = {w: {"a": [1.0, 3.0 * w], "b": [2.0, 5.0]} for w in (10, 100, 1000)}
    s = coord_slopes(fake)
    assert s["a"] == pytest.approx(1.0) and s["b"] == pytest.approx(0.0, abs=1e-12)
    assert coord_slopes(fake, step=0)["a"] == pytest.approx(0.0, abs=1e-12)


def test_mlp_flat_under_mup_growing_under_sp() -> None:
    mup, sp = slopes("mup", "mlp"), slopes("sp", "mlp")
    assert max(abs(v) for v in mup.values()) < 0.15, mup
    # hidden layers and logits grow with width under SP (updates ~ lr * width)
    assert sp["blocks.2.linear"] > 0.3 and sp["head"] > 0.5, sp


@pytest.mark.slow
def test_transformer_flat_under_mup_growing_under_sp() -> None:
    mup, sp = slopes("mup", "gpt"), slopes("sp", "gpt")
    assert max(abs(v) for v in mup.values()) < 0.2, mup
    for layer in ("blocks.0.mlp.fc_out", "blocks.1.attn.out", "blocks.1.mlp.fc_out", "head"):
        assert sp[layer] > 0.4, (layer, sp)


@pytest.mark.slow
def test_callback_writes_coord_check_to_summary(tmp_path: Path, run_train) -> None:
    proc = run_train(["model.width=48", "model.depth=2", "optimizer=adam", "param=mup",
                      "param.base_width=16", "init=lecun", "diagnostics=coord_check",
                      "diagnostics.coord_check.steps=3", "trainer.max_epochs=1",
                      f"paths.output_root={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["status"] == "completed" and summary["config"]["param.kind"] == "mup"
    cc = summary["coord_check"]
    assert cc["width"] == 48 and cc["steps"] == [0, 1, 2]
    assert set(cc["layers"]) == {"blocks.0.linear", "blocks.1.linear", "head"}
    assert all(len(v) == 3 and all(x > 0 for x in v) for v in cc["layers"].values())


def test_sweep_figures_from_summaries(tmp_path: Path) -> None:
    """coord_check.png and mutransfer.png from run folders' summary.json; the tables
    average seeds, diverged runs are NaN, best_lr reads the lr of least loss per width."""
    from initlab.results.coord_check import best_lr, coord_table, lr_table, plot_coord_check

    n = 0
    for kind in ("sp", "mup"):
        for width in (64, 256):
            for lr in (0.001, 0.01):
                for seed in (0, 1):
                    n += 1
                    run = tmp_path / f"{n}_run"
                    run.mkdir()
                    loss = lr * width if kind == "sp" else abs(lr - 0.01) + seed
                    summary = {"status": "diverged" if (width, lr, kind) == (256, 0.01, "sp")
                               else "completed", "final_train_loss": loss,
                               "config": {"param.kind": kind, "model.width": width,
                                          "optimizer.lr": lr},
                               "coord_check": {"width": width, "steps": [0, 1],
                                               "layers": {"head": [1.0, width * (seed + 1)]}}}
                    (run / "summary.json").write_text(json.dumps(summary))
    written = plot_coord_check(tmp_path)
    assert set(written) == {"coord_check", "mutransfer"}
    assert all(p.stat().st_size > 0 for p in written.values())
    from initlab.results.coord_check import _summaries

    runs = _summaries(tmp_path)
    assert coord_table(runs)["sp"]["head"][256] == pytest.approx(256 * 1.5)
    table = lr_table(runs)
    assert table["mup"][64][0.01] == pytest.approx(0.5)
    assert table["sp"][256][0.01] != table["sp"][256][0.01]  # NaN: diverged
    assert best_lr(table["sp"]) == {64: 0.001, 256: 0.001}
    assert best_lr(table["mup"]) == {64: 0.01, 256: 0.01}
