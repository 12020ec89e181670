"""Shared fixtures: compose the real config tree on tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small enough to train in about a second on 2 CPU cores.
TINY = ["trainer.max_epochs=1", "diagnostics.probe_batch_size=64"]
TINY_MLP = ["model.depth=2", "model.width=32"]  # only when the default model is kept


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    """``compose_cfg("init=xavier", tiny=True)`` -> the composed job config."""

    def _compose(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            tiny_set = [*TINY, *TINY_MLP] if tiny else []
            if any(o.startswith(("model=", "experiment=")) for o in overrides):
                tiny_set = [o for o in tiny_set if o not in TINY_MLP]
            if any(o.startswith("experiment=") for o in overrides):
                tiny_set = []
            return compose("config", overrides=[*tiny_set, *overrides])

    return _compose


@pytest.fixture
def run_train() -> Callable[..., subprocess.CompletedProcess]:
    """``run_train(["-m", "init=he,xavier", ...])`` runs train.py for real."""
    return train_subprocess


def train_subprocess(
    args: list[str], cwd: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    """Run ``train.py`` in a subprocess, the way users do."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_tb_events(run_dir: Path, kind: str = "scalars") -> dict[str, list[tuple[Any, ...]]]:
    """The TensorBoard events under ``run_dir`` by tag, sorted by step: (step, value) for
    ``kind="scalars"``, (step, count, sum, min, max) for ``"histograms"``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[Any, ...]]] = {}
    for f in sorted(run_dir.rglob("events.out.tfevents*")):
        acc = EventAccumulator(str(f), size_guidance={kind: 0})
        acc.Reload()
        for tag in acc.Tags()[kind]:
            for e in getattr(acc, kind.capitalize())(tag):
                h = getattr(e, "histogram_value", None)
                point = (e.step, e.value) if h is None else (e.step, h.num, h.sum, h.min, h.max)
                out.setdefault(tag, []).append(point)
    return {tag: sorted(points) for tag, points in out.items()}


@pytest.fixture
def tb_events() -> Callable[..., dict[str, list[tuple[Any, ...]]]]:
    """``tb_events(run_dir, kind="scalars")``: ``read_tb_events``."""
    return read_tb_events
