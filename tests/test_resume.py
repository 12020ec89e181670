"""A real multirun killed with SIGKILL, then resumed with the same command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_killed_sweep_resumes_without_rerunning_finished_jobs(run_train, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # one job per run, so that the sweep can be killed between two of them
    args = ["-m", "hydra/sweeper=checked", f"paths.output_root={tmp_path}",
            f"hydra.sweep.dir={sweep}", "model.depth=2", "model.width=32",
            "trainer.max_epochs=15", "init=xavier,he,random"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = None
        while proc.poll() is None:  # kill as soon as the first job has finished
            found = list(sweep.glob("0_*/summary.json"))
            if found:
                first = found[0]
                break
            time.sleep(0.05)
        assert first is not None, "the sweep ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    before = first.read_bytes()
    mtime = first.stat().st_mtime_ns
    assert not (sweep / "results.csv").exists()  # killed before the end of the sweep

    again = run_train(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert first.read_bytes() == before and first.stat().st_mtime_ns == mtime  # not re-run
    assert "already finished, skipped" in again.stdout
    results = pd.read_csv(sweep / "results.csv")
    assert sorted(results["init"]) == ["he", "random", "xavier"]
    assert (results["status"] == "completed").all()


@pytest.mark.slow
def test_a_sweep_extended_with_more_seeds_counts_each_seed_once(run_train, tmp_path: Path
                                                                 ) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={sweep}",
            "model.depth=2", "model.width=32", "trainer.max_epochs=1", "logger=none",
            "diagnostics=off", "hydra.callbacks.aggregate.plots=false", "init=xavier,he"]
    run_train([*args, "seed=0,1"], check=True)
    run_train([*args, "seed=0,1,2"], check=True)
    # he's jobs moved from 2, 3 to 3, 4: seeds 0 and 1 of he ran again in new folders
    # (xavier's 0 and 1 kept their job numbers and were skipped)
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 8 and (results["status"] == "completed").all()
    dup = results.dropna(subset=["duplicate_of"]).sort_values("run")
    assert [r.split("_")[0] for r in dup["run"]] == ["3", "4"]
    assert [r.split("_")[0] for r in dup["duplicate_of"]] == ["2", "3"]
    assert list(dup["init"]) == ["he", "he"] and list(dup["seed"]) == [0, 1]
    summary = pd.read_csv(sweep / "summary.csv")
    assert sorted(summary["n"]) == [3, 3]  # three seeds each, none counted twice


# --- whose run folder is it: foreign summaries and checkpoints, unreadable checkpoints ---

NO_LOG = ["logger=none", "diagnostics=off"]


def _checkpointed_he_run(compose_cfg, folder: Path) -> None:
    from initlab.pipeline import run

    s = run(compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=2"), folder,
            progress_bar=False)
    assert s["status"] == "completed" and (folder / "checkpoints" / "last.ckpt").is_file()


def test_a_foreign_run_folder_is_refused_by_a_real_command(compose_cfg, run_train,
                                                           tmp_path: Path) -> None:
    from initlab.resume import RunFolderConflict, check_run_folder

    folder = tmp_path / "run"
    _checkpointed_he_run(compose_cfg, folder)
    before = (folder / "summary.json").read_bytes()
    xavier = compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=2",
                         "init=xavier", "optimizer.lr=0.001")
    with pytest.raises(RunFolderConflict, match="holds a completed run of another config"):
        check_run_folder(xavier, folder)
    # the command: it must not report the he run's numbers as xavier's
    cmd = [f"hydra.run.dir={folder}", *NO_LOG, "checkpoint=true",
           "trainer.max_epochs=2", "model.depth=2", "model.width=32", "init=xavier",
           "optimizer.lr=0.001"]
    proc = run_train(cmd)
    assert proc.returncode == 1
    assert f"run folder {folder} holds a completed run of another config" in proc.stderr
    assert "init.scheme: 'he' -> 'xavier'" in proc.stderr and "optimizer.lr: 0.05 -> 0.001" \
        in proc.stderr
    assert "run completed" not in proc.stdout
    assert (folder / "summary.json").read_bytes() == before  # untouched
    # only the checkpoint left (the summary lost): the checkpoint's stamp refuses it
    (folder / "summary.json").unlink()
    proc = run_train(cmd)
    assert proc.returncode == 1
    assert f"run folder {folder} holds a checkpoint of another config" in proc.stderr
    assert "checkpoint=false" in proc.stderr
    assert not (folder / "summary.json").exists()
    # the same config resumes from it (a longer run continues the checkpoint)
    same = compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=3")
    assert check_run_folder(same, folder) is None


class Untrusted:
    """A class torch's safe loader does not know (it would run code to build it)."""


def test_unreadable_checkpoints_name_the_file_and_never_suggest_unsafe_loading(
        compose_cfg, tmp_path: Path) -> None:
    import torch

    from initlab.resume import RunFolderConflict, check_checkpoint

    folder = tmp_path / "run"
    _checkpointed_he_run(compose_cfg, folder)
    ckpt = folder / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=2")
    assert check_checkpoint(cfg, folder) == ckpt
    good = ckpt.read_bytes()
    untrusted = {**torch.load(ckpt, weights_only=True), "extra": Untrusted()}
    for content, why in ((good[: len(good) // 2], "Error: "),  # truncated by a kill
                         (b"not a checkpoint" * 8, "not a readable checkpoint"),
                         (None, "Python objects a safe load refuses")):
        if content is None:
            torch.save(untrusted, ckpt)  # a pickled object beyond tensors and containers
        else:
            ckpt.write_bytes(content)
        with pytest.raises(RunFolderConflict) as err:
            check_checkpoint(cfg, folder)
        text = str(err.value)
        assert text.startswith(f"checkpoint {ckpt} is unreadable") and why in text
        assert "checkpoint=false" in text and "Move it away" in text
        assert "weights_only=False" not in text and "weights_only` set to `False" not in text
    # without checkpointing the file is not used, so it is not checked
    assert check_checkpoint(compose_cfg(*NO_LOG, "trainer.max_epochs=2"), folder) is None


def test_a_checkpoint_without_a_config_stamp_is_refused(compose_cfg, tmp_path: Path) -> None:
    import torch

    from initlab.resume import RunFolderConflict, check_checkpoint

    folder = tmp_path / "run"
    _checkpointed_he_run(compose_cfg, folder)
    ckpt = folder / "checkpoints" / "last.ckpt"
    data = torch.load(ckpt, weights_only=True)
    assert data["callbacks"]["ConfigStamp"]["config"]["init.scheme"] == "he"
    del data["callbacks"]["ConfigStamp"]
    torch.save(data, ckpt)
    cfg = compose_cfg(*NO_LOG, "checkpoint=true", "trainer.max_epochs=2")
    with pytest.raises(RunFolderConflict, match="does not say which config wrote it"):
        check_checkpoint(cfg, folder)
