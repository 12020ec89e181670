"""Training-time diagnostics per member of a vectorized job (the values themselves are
compared with an ordinary run's in test_engine.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from initlab.pipeline import run
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
