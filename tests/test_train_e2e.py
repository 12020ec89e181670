"""End-to-end: real Hydra multiruns of train.py on digits, in a temp folder."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["trainer.max_epochs=1", "model.depth=2", "model.width=32"]


def sweep_dir(out: Path) -> Path:
    dirs = sorted((out / "multirun").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_scalars(event_dir: Path) -> dict[str, list[float]]:
    acc = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_three_inits_sweep(run_train, tmp_path: Path) -> None:
    # one Lightning job per run (the default sweeper would vectorize these three runs)
    proc = run_train(["-m", "hydra/sweeper=checked", f"paths.output_root={tmp_path}", *TINY,
                      "init=xavier,he,random"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 3
    assert sorted(results["init"]) == ["he", "random", "xavier"]
    assert (results["status"] == "completed").all()
    for col in ("activation", "model", "dataset", "seed", "final_val_acc", "best_val_acc",
                "final_train_loss", "wall_time_s"):
        assert col in results and results[col].notna().all(), col
    assert results["best_val_acc"].between(0, 1).all()
    # one progress line per job and a closing count
    assert proc.stdout.count("[job ") == 3
    assert "3 runs: 3 completed" in proc.stdout
    # TensorBoard: one run per job with a readable name and val accuracy readable back
    event_dirs = sorted({p.parent for p in sweep.rglob("events.out.tfevents*")})
    names = {f"{d.parent.name}/{d.name}" for d in event_dirs}  # tb/<init=..>/<seed=..>
    assert names == {"init=he/seed=0", "init=xavier/seed=0", "init=random/seed=0"}
    for d in event_dirs:
        scalars = read_scalars(d)
        if "val/acc" in scalars:
            assert 0 <= scalars["val/acc"][-1] <= 1
            assert "hparams/best_val_acc" in scalars
            assert "hp_metric" not in scalars
    assert sum("val/acc" in read_scalars(d) for d in event_dirs) == 3
    # plots are valid PNGs
    pngs = sorted((sweep / "plots").glob("*.png"))
    assert {"val_acc.png", "train_loss.png"} <= {p.name for p in pngs}
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC
        assert mpimg.imread(p).size > 0
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 3


@pytest.mark.slow
def test_exploding_run_is_diverged_and_others_complete(run_train, tmp_path: Path) -> None:
    proc = run_train(["-m", f"paths.output_root={tmp_path}", *TINY, "init=random",
                      "init.std=1e3,0.1"])
    assert proc.returncode == 0, proc.stderr[-3000:]  # diverged is an outcome, not a failure
    sweep = sweep_dir(tmp_path)
    results = pd.read_csv(sweep / "results.csv").set_index("cfg.init.std")
    assert results.loc[1000.0, "status"] == "diverged"
    assert results.loc[1000.0, "diverged_step"] >= 0
    assert results.loc[0.1, "status"] == "completed"
    summary = json.loads((sweep / results.loc[1000.0, "run"] / "summary.json").read_text())
    assert summary["status"] == "diverged" and "diverged_step" in summary
    assert "2 runs: 1 completed, 1 diverged" in proc.stdout


def test_unknown_init_lists_options(run_train, tmp_path: Path) -> None:
    proc = run_train([f"paths.output_root={tmp_path}", "init=nope"])
    assert proc.returncode != 0
    assert "nope" in proc.stderr and "xavier" in proc.stderr and "he" in proc.stderr


@pytest.mark.slow
def test_a_sweep_with_many_overrides_runs(run_train, tmp_path: Path) -> None:
    # its job folder names would be 300+ characters; shortened with a hash they fit
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={sweep}",
                      *TINY, "dataset=teacher", "dataset.n_train=200", "dataset.n_val=50",
                      "dataset.n_test=50", "dataset.teacher_depth=2",
                      "dataset.teacher_width=16", "dataset.noise_std=0.1",
                      "activation=tanh", "init=xavier,orthogonal", "optimizer.lr=0.01",
                      "optimizer.momentum=0.5", "trainer.gradient_clip_val=1.0",
                      "target_metric=0.5", "hydra.callbacks.aggregate.plots=false"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = pd.read_csv(sweep / "results.csv")
    assert sorted(results["init"]) == ["orthogonal", "xavier"]
    assert (results["status"] == "completed").all()
    assert all(len(r.encode()) <= 2 + 245 for r in results["run"])
    assert f"browse:  tensorboard --logdir {sweep}" in proc.stdout
