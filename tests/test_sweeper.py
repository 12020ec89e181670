"""The default sweeper (``hydra/sweeper=auto``) as users run it: ``train.py -m ...``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from initlab.sweeper import AutoSweeper, vectorize_refusal
from initlab.vectorized.checks import VectorizeError, check_supported

CONF = Path(__file__).resolve().parents[1] / "conf"

TINY = ["trainer.max_epochs=1", "model.depth=2", "model.width=32",
        "hydra.callbacks.aggregate.plots=false"]  # plots are not under test here


def test_auto_is_the_default_and_a_discoverable_hydra_plugin() -> None:
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    found = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert "hydra_plugins.initlab_auto.AutoSweeper" in found
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.initlab_auto.AutoSweeper"
    assert list(cfg.hydra.sweeper.member_keys) == ["init", "seed"]


def test_member_keys_other_than_init_and_seed_are_refused() -> None:
    with pytest.raises(ValueError, match="hydra.sweeper.member_keys: 'activation'"):
        AutoSweeper(member_keys=["init", "activation"])


def test_a_study_can_switch_vectorizing_off_under_every_sweeper() -> None:
    # a study's config may set hydra.sweeper.vectorize: every sweeper accepts the key
    from initlab.sweeper import CheckedSweeper
    from initlab.vectorized.sweeper import VectorizedSweeper

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for sweeper in ("auto", "checked", "vectorized"):
            cfg = compose("config", overrides=["experiment=init_claims",
                                               f"hydra/sweeper={sweeper}",
                                               "++hydra.sweeper.vectorize=false"],
                          return_hydra_config=True)
            assert cfg.hydra.sweeper.vectorize is False
            kwargs = {k: v for k, v in cfg.hydra.sweeper.items() if k != "_target_"}
            cls = {"auto": AutoSweeper, "checked": CheckedSweeper,
                   "vectorized": VectorizedSweeper}[sweeper]
            assert cls(**kwargs).params["seed"] == "0,1,2"  # the study's sweep is kept
    assert AutoSweeper().vectorize is True


def test_jobs_differing_in_seed_are_checked_on_hydras_own_config() -> None:
    # the shortcut (one composition per seed-less override list) gives what Hydra composes
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext, RunMode

    setup_globals()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF)))
    sweeper = AutoSweeper()
    sweeper.config = loader.load_configuration("config", ["init=xavier,he", "seed=0,7"],
                                               run_mode=RunMode.MULTIRUN)
    sweeper.hydra_context = HydraContext(config_loader=loader, callbacks=None)
    cache: dict = {}
    for job in (["init=he", "seed=0"], ["init=he", "seed=7"], ["init=xavier", "seed=7"]):
        got = sweeper.compose_job(job, cache)
        want = loader.load_sweep_config(sweeper.config, job)
        assert OmegaConf.to_container(got) == OmegaConf.to_container(want), job
    assert len(cache) == 2  # he composed once for both seeds


def test_refusal_names_the_key_without_the_vectorized_sweeper_hint(compose_cfg) -> None:
    with pytest.raises(VectorizeError) as info:
        check_supported(compose_cfg("checkpoint=true"))
    reason = vectorize_refusal(info.value)
    assert reason.startswith("checkpoint=True cannot be vectorized: allowed false")
    assert "hydra/sweeper=vectorized" not in reason


@pytest.mark.slow
def test_eligible_sweep_is_vectorized_as_the_vectorized_sweeper_does(run_train,
                                                                     tmp_path: Path) -> None:
    args = ["-m", "init=xavier,he", "seed=0,1", *TINY]
    auto = run_train([*args, f"hydra.sweep.dir={tmp_path / 'auto'}"])
    assert auto.returncode == 0, auto.stderr[-3000:]
    assert "[vectorized] 4 runs in 1 job(s)" in auto.stdout
    assert auto.stdout.count("[vectorized job ") == 1  # one job trained the four runs
    results = pd.read_csv(tmp_path / "auto" / "results.csv")
    assert len(results) == 4 and (results["status"] == "completed").all()
    for run in results["run"]:
        summary = json.loads((tmp_path / "auto" / run / "summary.json").read_text())
        assert summary["vectorized_k"] == 4 and summary["vectorized_job"] == ".vectorized/0"
    # the same run folders and numbers as hydra/sweeper=vectorized (same computation)
    vec = run_train([*args, "hydra/sweeper=vectorized", f"hydra.sweep.dir={tmp_path / 'vec'}"])
    assert vec.returncode == 0, vec.stderr[-3000:]
    expected = pd.read_csv(tmp_path / "vec" / "results.csv")
    assert list(results["run"]) == list(expected["run"])
    for col in ("final_train_loss", "final_val_acc", "best_val_acc", "test_acc"):
        assert list(results[col]) == list(expected[col]), col


@pytest.mark.slow
def test_ineligible_sweep_runs_one_job_per_run_and_says_why(run_train, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", "init=xavier,he", "checkpoint=true", *TINY, "logger=none",
                      f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[auto]")]
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith("[auto] 2 runs, one job per run (not vectorized): "
                               "checkpoint=True cannot be vectorized")
    assert "[vectorized" not in proc.stdout
    assert not (sweep / ".vectorized").exists()
    results = pd.read_csv(sweep / "results.csv")
    assert sorted(results["init"]) == ["he", "xavier"]
    assert (results["status"] == "completed").all()
    for run in results["run"]:
        assert "vectorized_k" not in json.loads((sweep / run / "summary.json").read_text())


@pytest.mark.slow
def test_bad_values_are_refused_before_anything_trains(run_train, tmp_path: Path) -> None:
    # an otherwise vectorizable sweep: the checks come first, whatever the engine
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", "init=xavier,he", "optimizer.lr=0.05,abc", *TINY,
                      f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 1
    assert "2 of 4 job(s) refused before any training" in proc.stderr
    assert "optimizer.lr='abc'" in proc.stderr
    assert "[vectorized" not in proc.stdout and "[auto]" not in proc.stdout
    assert not sweep.exists()  # nothing trained, no folder made
