"""What TensorBoard shows of a real sweep, read back with TensorBoard's own EventAccumulator:
run names from the swept axes, the HParams tab's columns and types, the init profile as
figures, and train/val of an epoch at one step."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from initlab.config import run_name, swept_keys
from initlab.pipeline import HPARAM_METRICS, hparams_of

SWEEP = ["-m", "init=he,xavier", "seed=0,1", "trainer.max_epochs=1", "model.depth=2",
         "model.width=32", "diagnostics.probe_batch_size=64"]


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EventAccumulator]:
    """The sweep's TensorBoard runs: run name (the path under ``tb/``) -> its accumulator."""
    from tests.conftest import train_subprocess

    out = tmp_path_factory.mktemp("tb_sweep")
    proc = train_subprocess([*SWEEP, f"paths.output_root={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs: dict[str, EventAccumulator] = {}
    for tb in sorted(out.glob("multirun/*/*/tb")):
        for run_dir in sorted({p.parent for p in tb.rglob("events.out.tfevents*")}):
            # the folder's event files together (Lightning writes a new one after closing)
            acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
            acc.Reload()
            name = run_dir.relative_to(tb).as_posix()
            assert name not in runs, name
            runs[name] = acc
    return runs


def _start_info(acc: EventAccumulator) -> Any:
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    return metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])


def _experiment(acc: EventAccumulator) -> Any:
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    return metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])


@pytest.mark.slow
def test_run_names_are_the_swept_axes_as_a_path(sweep_runs) -> None:
    # only init and seed vary: the shared trainer/model/diagnostics overrides are not in it
    assert set(sweep_runs) == {"init=he/seed=0", "init=he/seed=1", "init=xavier/seed=0",
                               "init=xavier/seed=1"}


@pytest.mark.slow
def test_hparams_tab_has_the_core_and_swept_keys_with_one_type_each(sweep_runs) -> None:
    want = {"init", "seed", "init.mode", "init.gain", "status"}
    kinds: dict[str, set[str]] = {}
    for name, acc in sweep_runs.items():
        hp = _start_info(acc).hparams
        assert set(hp) == want, name
        for key, value in hp.items():
            kinds.setdefault(key, set()).add(value.WhichOneof("kind"))
        init, seed = name.split("/")
        assert hp["init"].string_value == init.split("=")[1]
        assert hp["seed"].number_value == int(seed.split("=")[1])
        assert hp["init.mode"].string_value == {"init=he": "fan_in", "init=xavier": "fan_avg"}[init]
        assert hp["status"].string_value == "completed"
        # he: gain "auto"; xavier: gain 1.0, written as the text "1.0" all the same
        assert hp["init.gain"].string_value == {"init=he": "auto", "init=xavier": "1.0"}[init]
        # every run defines the same columns (TensorBoard takes them from any one run)
        exp = _experiment(acc)
        assert {h.name for h in exp.hparam_infos} == want
        assert {m.name.tag for m in exp.metric_infos} == {f"hparams/{k}" for k in HPARAM_METRICS}
    assert kinds == {"init": {"string_value"}, "seed": {"number_value"},
                     "init.mode": {"string_value"}, "init.gain": {"string_value"},
                     "status": {"string_value"}}


@pytest.mark.slow
def test_hparams_metrics_are_scalars_at_step_zero(sweep_runs) -> None:
    for name, acc in sweep_runs.items():
        tags = acc.Tags()["scalars"]
        assert "hparams/epochs_to_target" in tags and "hparams/best_val_acc" in tags, name
        (best,) = acc.Scalars("hparams/best_val_acc")
        (val_acc,) = acc.Scalars("val/acc")  # one epoch: the best is the only one
        assert best.step == 0 and best.value == pytest.approx(val_acc.value)
        (to_target,) = acc.Scalars("hparams/epochs_to_target")
        # epochs to 90 % val accuracy: the first epoch (1) if reached, else NaN (not reached)
        assert (to_target.value == 1) if val_acc.value >= 0.9 else math.isnan(to_target.value)


@pytest.mark.slow
def test_init_profile_is_one_figure_per_run(sweep_runs) -> None:
    for name, acc in sweep_runs.items():
        assert acc.Tags()["images"] == ["init/profile"], name
        (img,) = acc.Images("init/profile")
        assert img.step == 0 and img.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
        assert img.width > 500 and img.height > 300
        assert not [t for t in acc.Tags()["scalars"] if t.startswith("init/")], name


@pytest.mark.slow
def test_train_and_val_of_an_epoch_share_a_step(sweep_runs) -> None:
    for name, acc in sweep_runs.items():
        steps = {tag: [e.step for e in acc.Scalars(tag)] for tag in
                 ("train/loss_epoch", "train/acc", "val/loss", "val/acc")}
        assert len(set(map(tuple, steps.values()))) == 1 and steps["val/acc"][0] > 0, (name,
                                                                                        steps)


def test_run_name_keeps_init_and_seed_and_drops_the_shared_overrides() -> None:
    job = ["init=xavier", "activation=tanh", "seed=2", "trainer.max_epochs=1",
           "init.gain=1.5", "paths.output_root=/tmp/x", "dataset.data_dir=/d"]
    swept = ["init", "activation", "seed", "init.gain"]
    assert run_name({"init": "xavier"}, 2, job, swept) == (
        "init=xavier/activation=tanh/init.gain=1.5/seed=2")
    # without the sweep (a single run): every override of the study, none of the paths
    assert run_name({"init": "xavier"}, 2, job) == (
        "init=xavier/activation=tanh/trainer.max_epochs=1/init.gain=1.5/seed=2")
    # a value with a path in it stays one folder: no part is '..' or holds a '/'
    name = run_name({"init": "he"}, 0, ["+x=../../y", "init=he"], ["x"])
    assert name == "init=he/x=.._.._y/seed=0"
    assert all(part not in ("", ".", "..") for part in name.split("/"))


def test_hparams_take_swept_values_with_their_config_types() -> None:
    summary = {"status": "diverged", "init": "orthogonal", "seed": 3, "model": "cnn",
               "overrides": ["model=cnn", "lr_scheduler=cosine", "model.depth=4"],
               "swept_keys": swept_keys(["model=cnn", "lr_scheduler=cosine", "model.depth=4"]),
               "config": {"seed": 3, "init.gain": 2.0, "model.depth": 4},
               "best_val_acc": 0.5}
    params, metrics = hparams_of(summary)
    assert params == {"init": "orthogonal", "seed": 3, "init.mode": "none", "init.gain": "2.0",
                      "model": "cnn", "lr_scheduler": "cosine", "model.depth": 4,
                      "status": "diverged"}
    assert metrics["hparams/best_val_acc"] == 0.5
    assert set(metrics) == {f"hparams/{k}" for k in HPARAM_METRICS}
    assert math.isnan(metrics["hparams/epochs_to_target"])


def test_sweep_keys_come_from_the_sweeps_multirun_yaml(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from initlab.config import sweep_keys

    run_dir = tmp_path / "0_init=he"
    assert sweep_keys(run_dir) is None  # not in a sweep
    OmegaConf.save({"hydra": {"overrides": {"task": [
        "init=he,xavier", "trainer.max_epochs=1", "seed=range(3)", "+model.x=choice(1,2)"]}}},
        tmp_path / "multirun.yaml")
    assert sweep_keys(run_dir) == ["init", "seed", "model.x"]


def test_init_profile_without_figures_goes_to_scalars(tmp_path: Path) -> None:
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from initlab.diagnostics.init_profile import log_init_profile

    records = [{"index": 0, "layer": "fc0", "act_std": 0.8, "grad_std": 1e-3,
                "dead_frac": 0.5, "saturated_frac": None},
               {"index": 1, "layer": "head", "act_std": 1.2, "grad_std": float("nan"),
                "dead_frac": None, "saturated_frac": None}]
    csv = CSVLogger(tmp_path, name="csv", version="r")
    log_init_profile(csv, records)
    csv.save()
    header, row = (tmp_path / "csv" / "r" / "metrics.csv").read_text().splitlines()
    got = dict(zip(header.split(","), row.split(","), strict=True))
    assert {k: float(v) for k, v in got.items() if k.startswith("init/")} == {
        "init/act_std/00_fc0": 0.8, "init/act_std/01_head": 1.2,
        "init/grad_std/00_fc0": 1e-3, "init/dead_frac/00_fc0": 0.5}
    tb = TensorBoardLogger(tmp_path, name="tb", version="r")
    log_init_profile(tb, records)
    tb.finalize("success")
    acc = EventAccumulator(str(tmp_path / "tb" / "r"))
    acc.Reload()
    assert acc.Tags()["images"] == ["init/profile"]
    assert not acc.Tags()["scalars"]
