"""Every named experiment composes at both scales, declares its sweep, and runs offline by
default (digits or a synthetic task)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = {
    # name: (small data set, paper data set)
    "he2015_depth": ("digits", "mnist"),
    "glorot2010": ("digits", "mnist"),
    "saxe2014": ("digits", "mnist"),
    "irnn2015": ("adding", "adding"),
    "fixup2019": ("digits", "cifar10"),
    "lsuv2015": ("digits", "cifar10"),
    "init_claims": ("digits", "mnist"),
    "coord_check": ("digits", "cifar10"),
    "mutransfer2022": ("digits", "cifar10"),
    "omnigrok2022": ("modadd", "modadd"),
}
OFFLINE = {"digits": "DigitsDataModule", "adding": "AddingDataModule",
           "teacher": "TeacherDataModule", "modadd": "ModAddDataModule"}
TARGETS = {**OFFLINE, "mnist": "MNISTDataModule", "cifar10": "CIFAR10DataModule"}


def test_every_experiment_file_is_listed():
    assert {p.stem for p in (CONF / "experiment").glob("*.yaml")} == set(EXPERIMENTS)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_small_scale_is_the_default_and_offline(compose_cfg, name):
    cfg = compose_cfg(f"experiment={name}")
    small, _ = EXPERIMENTS[name]
    assert small in OFFLINE
    assert cfg.dataset._target_.endswith(OFFLINE[small])
    assert cfg.study.name == name and cfg.study.scale == "small"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_paper_scale_switches_data_and_size(compose_cfg, name):
    small = compose_cfg(f"experiment={name}")
    paper = compose_cfg(f"experiment={name}", "scale=paper")
    assert paper.study.scale == "paper" and paper.study.name == name
    assert paper.dataset._target_.endswith(TARGETS[EXPERIMENTS[name][1]])
    # the paper run is bigger: more epochs or another (larger) data set
    assert (paper.trainer.max_epochs > small.trainer.max_epochs
            or paper.dataset._target_ != small.dataset._target_)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_the_sweep_is_declared_in_the_file(name):
    cfg = OmegaConf.load(CONF / "experiment" / f"{name}.yaml")
    params = cfg.hydra.sweeper.params
    assert params and "seed" in params
    for key, values in params.items():
        if key == "init":
            for option in str(values).split(","):
                assert (CONF / "init" / f"{option}.yaml").is_file(), option
        if key.startswith("experiment/arm"):
            for option in str(values).split(","):
                assert (CONF / "experiment" / "arm" / f"{option}.yaml").is_file(), option


def test_command_line_overrides_beat_the_experiment(compose_cfg):
    cfg = compose_cfg("experiment=he2015_depth", "model.depth=4", "dataset=teacher")
    assert cfg.model.depth == 4
    assert cfg.dataset._target_.endswith("TeacherDataModule")


def test_irnn_arms_set_cell_activation_and_recurrent_init(compose_cfg):
    arms = {
        "irnn2015_tanh_rnn": ("rnn", "tanh", None),
        "irnn2015_irnn": ("rnn", "relu", "identity"),
        "irnn2015_lstm": ("lstm", "tanh", None),
    }
    for arm, (cell, activation, recurrent) in arms.items():
        cfg = compose_cfg("experiment=irnn2015", f"experiment/arm={arm}")
        assert (cfg.model.cell, cfg.activation.name, cfg.init.recurrent) == (
            cell, activation, recurrent)
        assert cfg.trainer.gradient_clip_val == 1.0
        assert cfg.init.scheme == "xavier"
