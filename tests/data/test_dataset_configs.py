"""Each conf/dataset/<name>.yaml of issue 6 instantiates its class with every key."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
NAMES = ("mnist", "fashion_mnist", "cifar10", "adding", "teacher")


def keys_of(cls) -> set[str]:
    keys: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            keys |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs"}
    return keys


@pytest.mark.parametrize("name", NAMES)
def test_config_instantiates(name: str, tmp_path: Path) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cls = get_class(cfg._target_)
    assert set(cfg) - {"_target_"} <= keys_of(cls)
    dm = instantiate(cfg, seed=3)  # as the pipeline does; nothing is read yet
    assert dm.name == name and dm.seed == 3 and dm.batch_size == cfg.batch_size
    if hasattr(dm, "check_available"):
        assert dm.download is True  # downloading is on by default


def test_file_based_configs_default_to_the_shared_data_dir() -> None:
    for name in ("mnist", "fashion_mnist", "cifar10"):
        assert OmegaConf.load(CONF / f"{name}.yaml").data_dir is None
