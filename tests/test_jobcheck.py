"""Every job checked before the first trains; torch's constructor errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from initlab.jobcheck import check_job
from initlab.vectorized.sweeper import expand


@pytest.mark.parametrize(("overrides", "message"), [
    (["optimizer.momentum=-3"], r"optimizer\.momentum=-3: not allowed by torch\.optim\.SGD "
                                r"\(ValueError: Invalid momentum value: -3\)"),
    (["optimizer=adam", "+optimizer.eps=-1"], r"optimizer\.eps=-1: .*Invalid epsilon"),
    (["+optimizer.nesterov=true", "optimizer.momentum=0"],
     r"optimizer\.momentum=0, optimizer\.nesterov=True: .*Nesterov"),
    (["optimizer.lr=abc"], r"optimizer\.lr='abc' is not allowed: a number > 0"),
    (["logger.tensorboard.name=../x"],
     r"logger\.tensorboard\.name=.\.\./x. is not allowed: one folder name"),
])
def test_bad_values_name_their_key(compose_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_job(compose_cfg(*overrides))


def test_good_config_passes(compose_cfg) -> None:
    check_job(compose_cfg("optimizer=adam", "logger.tensorboard.name=tb2"))


def test_jobs_expand_as_the_basic_sweeper_does() -> None:
    # the default sweeper must number jobs as Hydra's basic sweeper did: sweeps made
    # before keep their folders and resume
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    lines = ["seed=0,1", "init=xavier,he,random", "model.depth=2", "seed=3,4",
             "optimizer.lr=range(1,3)"]
    parsed = OverridesParser.create().parse_overrides(lines)
    assert expand(parsed) == BasicSweeper.split_arguments(parsed, None)[0]


@pytest.mark.slow
def test_a_bad_value_in_any_job_stops_the_sweep_before_training(run_train,
                                                                 tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", f"hydra.sweep.dir={sweep}", "trainer.max_epochs=1",
                      "logger=none", "optimizer.lr=0.05,abc", "optimizer.momentum=0.9,-3"])
    assert proc.returncode == 1
    err = proc.stderr
    assert "3 of 4 job(s) refused before any training" in err
    assert ("job 2 (optimizer.lr=0.05 optimizer.momentum=-3): optimizer.momentum=-3: not "
            "allowed by torch.optim.SGD (ValueError: Invalid momentum value: -3)") in err
    assert "job 3 (optimizer.lr=abc optimizer.momentum=0.9): optimizer.lr='abc'" in err
    assert "job 4 (optimizer.lr=abc optimizer.momentum=-3)" in err
    assert "job 1 " not in err
    assert not sweep.exists()  # nothing trained, no folder made
