"""End-to-end: ``train.py -m hydra/sweeper=vectorized ...`` as users run it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TINY = ["trainer.max_epochs=1", "model.depth=2", "model.width=32"]
TAGS = {"train/loss", "train/loss_epoch", "train/acc", "val/loss", "val/acc",
        "test/acc", "hparams/best_val_acc"}


def only_sweep(out: Path) -> Path:
    dirs = sorted((out / "multirun").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def scalar_tags(event_dir: Path) -> set[str]:
    acc = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.mark.slow
def test_four_runs_in_one_job(run_train, tmp_path: Path) -> None:
    args = ["-m", "hydra/sweeper=vectorized", "init=xavier,he", "seed=0,1",
            f"paths.output_root={tmp_path}", *TINY,
            "hydra.callbacks.aggregate.plots=false"]  # plots are not under test here
    proc = run_train(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "[vectorized] 4 runs in 1 job(s)" in out
    assert out.count("[vectorized job ") == 1  # Hydra launched ONE job ...
    assert out.count("[run ") == 4  # ... that trained the four runs
    sweep = only_sweep(tmp_path)
    assert [p.name for p in (sweep / ".vectorized").iterdir()] == ["0"]
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 4 and (results["status"] == "completed").all()
    assert sorted(zip(results["init"], results["seed"], strict=True)) == [
        ("he", 0), ("he", 1), ("xavier", 0), ("xavier", 1)]
    assert (results["vectorized_k"] == 4).all()
    assert results["best_val_acc"].between(0, 1).all()
    # run folders are named as the basic sweeper names its job folders
    for _, row in results.iterrows():
        run_dir = sweep / row["run"]
        assert run_dir.name.split("_", 1)[1] == (
            f"init={row['init']},model.depth=2,model.width=32,seed={row['seed']},"
            f"trainer.max_epochs=1")
        s = json.loads((run_dir / "summary.json").read_text())
        assert s["config"]["init.scheme"] == row["init"] and s["config"]["seed"] == row["seed"]
        # the run's overrides in the command line's order, as in the basic sweeper's job
        # (the run name is made from them; members used to list the shared ones first)
        assert s["overrides"] == [f"init={row['init']}", f"seed={row['seed']}",
                                  f"paths.output_root={tmp_path}", *TINY]
        assert s["wall_time_s"] == pytest.approx(s["job_wall_time_s"] / 4)
        hist = pd.read_csv(run_dir / "history.csv")
        assert list(hist.columns[:6]) == ["epoch", "step", "train_loss", "train_acc",
                                          "val_loss", "val_acc"]
        assert (run_dir / ".hydra" / "config.yaml").is_file()
        events = {p.parent for p in run_dir.rglob("events.out.tfevents*")}
        assert len(events) == 1  # one TensorBoard run per member
        # named by the swept axes only, as the basic sweeper's job names its run
        assert s["run_name"] == f"init={row['init']}/seed={row['seed']}"
        assert next(iter(events)) == run_dir / "tb" / s["run_name"]
        assert TAGS <= scalar_tags(events.pop())
    # running the same command on the same sweep folder keeps the finished runs
    again = run_train([*args, f"hydra.sweep.dir={sweep}"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("(already finished, skipped)") == 4
    assert len(pd.read_csv(sweep / "results.csv")) == 4


@pytest.mark.slow
def test_unsupported_model_is_refused_before_any_job(run_train, tmp_path: Path) -> None:
    proc = run_train(["-m", "hydra/sweeper=vectorized", "model=rnn", "seed=0,1",
                      f"paths.output_root={tmp_path}"])
    assert proc.returncode != 0
    assert "model='rnn' cannot be vectorized" in proc.stderr
    assert "model=mlp, model=cnn or model=resnet" in proc.stderr
    sweep = only_sweep(tmp_path)
    assert not any(p.is_dir() for p in sweep.iterdir())  # no job started


@pytest.mark.slow
def test_an_lr_init_seed_sweep_is_one_job_whose_members_are_their_ordinary_runs(
        run_train, compose_cfg, tmp_path: Path) -> None:
    import numpy as np

    from initlab.pipeline import run

    lrs, inits, seeds = ["0.0003", "0.001", "0.003", "0.01"], ["xavier", "he", "lecun"], [0, 1, 2]
    common = ["optimizer=adamw", "lr_scheduler=warmup_cosine", "logger=none",
              "diagnostics=off", *TINY]
    proc = run_train(["-m", "hydra/sweeper=vectorized", f"optimizer.lr={','.join(lrs)}",
                      f"init={','.join(inits)}", f"seed={','.join(map(str, seeds))}",
                      *common, f"paths.output_root={tmp_path / 'sweep'}",
                      "hydra.callbacks.aggregate.plots=false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[vectorized] 36 runs in 1 job(s)" in proc.stdout
    assert proc.stdout.count("[vectorized job ") == 1  # ONE job trained the 36 runs
    sweep = only_sweep(tmp_path / "sweep")
    assert [p.name for p in (sweep / ".vectorized").iterdir()] == ["0"]
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 36 and (results["status"] == "completed").all()
    assert (results["vectorized_k"] == 36).all()
    by_run = {}
    for _, row in results.iterrows():
        s = json.loads((sweep / row["run"] / "summary.json").read_text())
        by_run[(s["config"]["optimizer.lr"], s["init"], s["seed"])] = (sweep / row["run"], s)
    assert len(by_run) == 36
    # a few members against the ordinary runs of the same configs (lowest and highest lr)
    for lr, init, seed in [("0.0003", "he", 2), ("0.01", "xavier", 0), ("0.003", "lecun", 1)]:
        cfg = compose_cfg(*common, f"optimizer.lr={lr}", f"init={init}", f"seed={seed}")
        o_dir = tmp_path / f"o_{lr}_{init}_{seed}"
        ordinary = run(cfg, o_dir, progress_bar=False)
        v_dir, vec = by_run[(float(lr), init, seed)]
        assert vec["status"] == ordinary["status"] == "completed"
        ho, hv = pd.read_csv(o_dir / "history.csv"), pd.read_csv(v_dir / "history.csv")
        assert list(hv.columns) == list(ho.columns) and list(hv["step"]) == list(ho["step"])
        for col in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            np.testing.assert_allclose(hv[col], ho[col], rtol=1e-4, atol=1e-6, err_msg=col)
        for key in ("final_train_loss", "final_val_acc", "best_val_loss", "test_loss",
                    "test_acc"):
            np.testing.assert_allclose(vec[key], ordinary[key], rtol=1e-4, atol=1e-6,
                                       err_msg=key)
    # the lr mattered: the members of one init and seed ended differently
    finals = {lr: by_run[(float(lr), "he", 0)][1]["final_train_loss"] for lr in lrs}
    assert len(set(finals.values())) == 4


@pytest.mark.slow
def test_different_lrs_with_another_optimizer_are_refused_before_any_job(
        run_train, tmp_path: Path) -> None:
    proc = run_train(["-m", "hydra/sweeper=vectorized", "optimizer._target_=torch.optim.RMSprop",
                      "optimizer.lr=0.1,0.01", f"paths.output_root={tmp_path}", *TINY])
    assert proc.returncode != 0
    assert "optimizer='torch.optim.RMSprop' cannot be vectorized" in proc.stderr
    assert "SGD, Adam, AdamW when the members differ in optimizer.lr" in proc.stderr
    assert "hydra.sweeper.member_keys=[init,seed]: one job per lr" in proc.stderr
    sweep = only_sweep(tmp_path)
    assert not any(p.is_dir() for p in sweep.iterdir())  # no job started
    # as the message says: one job per lr, each member the configured RMSprop
    again = run_train(["-m", "hydra/sweeper=vectorized", "hydra.sweeper.member_keys=[init,seed]",
                       "optimizer._target_=torch.optim.RMSprop", "optimizer.lr=0.1,0.01",
                       "seed=0,1", "logger=none", "diagnostics=off",
                       f"paths.output_root={tmp_path / 'again'}",
                       "hydra.callbacks.aggregate.plots=false", *TINY])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[vectorized] 4 runs in 2 job(s)" in again.stdout
    results = pd.read_csv(only_sweep(tmp_path / "again") / "results.csv")
    assert len(results) == 4 and (results["status"] == "completed").all()


def test_a_default_sweep_never_imports_lightning(tmp_path: Path) -> None:
    """The canonical sweep under the default sweeper (one vectorized job) writes every
    output without importing Lightning, whose import (torchmetrics, torchvision) is
    seconds of a short sweep, nor torch._dynamo; the TensorBoard files are still there."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    args = ["-m", "init=xavier,he", "seed=0,1", f"paths.output_root={tmp_path}", *TINY,
            "hydra.verbose=initlab.vectorized"]
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: print('HEAVY IMPORTED:', sorted(m for m in "
            "('pytorch_lightning', 'lightning', 'torchmetrics', 'torch._dynamo') "
            "if m in sys.modules)))\n"
            f"sys.argv = ['train.py', *{args!r}]\n"
            "runpy.run_path('train.py', run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[vectorized] 4 runs in 1 job(s)" in proc.stdout
    # nor torch._dynamo, which building a torch.optim optimizer imports (about 1 s)
    assert "HEAVY IMPORTED: []" in proc.stdout
    # the job took its members' configs from the sweeper's checks, composed once
    assert "4 of 4 member configs composed by the sweeper" in proc.stdout + proc.stderr
    sweep = only_sweep(tmp_path)
    results = pd.read_csv(sweep / "results.csv")
    assert sorted(results["status"]) == ["completed"] * 4
    events = sorted(sweep.rglob("tb/**/events.out.tfevents*"))
    assert len({e.parent for e in events}) == 4
    assert TAGS <= scalar_tags(events[0].parent)
