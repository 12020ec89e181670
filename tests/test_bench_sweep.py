"""scripts/bench_sweep.py compares like with like: its plain PyTorch loop
(scripts/plain_sweep.py) trains what initlab's command trains."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from initlab.data.digits import DigitsDataModule

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plain_loop_uses_initlabs_digits_split() -> None:
    plain = load_script("plain_sweep").digits_splits()
    dm = DigitsDataModule()  # the defaults of conf/dataset/digits.yaml
    dm.prepare()
    assert {k: len(v[0]) for k, v in plain.items()} == {"train": 1257, "val": 270,
                                                         "test": 270}
    for split, (x, y) in dm.splits.items():
        torch.testing.assert_close(plain[split][0], x)  # standardized the same way
        assert torch.equal(plain[split][1], y)  # the same examples in the same order


def test_bench_runs_the_command_a_user_types(tmp_path: Path) -> None:
    cmds = load_script("bench_sweep").commands(9, tmp_path, None, None)
    assert cmds["initlab"] == [sys.executable, str(ROOT / "train.py"), "-m",
                               "init=xavier,he,random", "seed=0,1,2",
                               f"hydra.sweep.dir={tmp_path / 'initlab'}"]
    assert cmds["plain"] == [sys.executable, str(ROOT / "scripts" / "plain_sweep.py"),
                             "--inits", "xavier,he,random", "--seeds", "0,1,2",
                             "--out", str(tmp_path / "plain")]


@pytest.mark.slow
def test_plain_loop_reaches_initlabs_accuracy(run_train, tmp_path: Path) -> None:
    # a different computation (batch order, init draws): the same accuracy within noise
    plain = load_script("plain_sweep")
    row, history = plain.train_one(plain.digits_splits(), "he", 0, epochs=2)
    proc = run_train(["init=he", "seed=0", "trainer.max_epochs=2", "logger=none",
                      "diagnostics=off", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(history) == summary["epochs_run"] == 2
    assert row["final_val_acc"] == pytest.approx(summary["final_val_acc"], abs=0.04)
    assert row["test_acc"] == pytest.approx(summary["test_acc"], abs=0.04)
