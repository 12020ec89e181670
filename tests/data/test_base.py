"""The plain data classes and their lazily made LightningDataModule twins (data/base.py)."""

from __future__ import annotations

import importlib
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from initlab.data.base import (
    InMemoryData,
    lightning_class,
    plain_data_class,
)

ROOT = Path(__file__).resolve().parents[2]

# every old name, by module: (module, Lightning name, plain name, Lightning parent)
TWINS = [
    ("initlab.data.base", "InMemoryDataModule", "InMemoryData", None),
    ("initlab.data.digits", "DigitsDataModule", "DigitsData", "base.InMemoryDataModule"),
    ("initlab.data.mnist", "FileDataModule", "FileData", "base.InMemoryDataModule"),
    ("initlab.data.mnist", "MNISTDataModule", "MNISTData", "mnist.FileDataModule"),
    ("initlab.data.mnist", "FashionMNISTDataModule", "FashionMNISTData", "mnist.MNISTDataModule"),
    ("initlab.data.cifar", "CIFAR10DataModule", "CIFAR10Data", "mnist.FileDataModule"),
    ("initlab.data.synthetic", "AddingDataModule", "AddingData", "base.InMemoryDataModule"),
    ("initlab.data.synthetic", "TeacherDataModule", "TeacherData", "base.InMemoryDataModule"),
    ("initlab.data.sequence", "TokenDataModule", "TokenData", "base.InMemoryDataModule"),
    ("initlab.data.sequence", "ModAddDataModule", "ModAddData", "sequence.TokenDataModule"),
    ("initlab.data.sequence", "SequenceDataModule", "SequenceData", "sequence.TokenDataModule"),
]


def _get(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plain_data_never_imports_lightning() -> None:
    """Every data module, a DigitsData used as the vectorized engine uses it, and
    plain_data_class: none of it may import Lightning (seconds per sweep, issue 17)."""
    got = _run("""
        import importlib, json, pkgutil, sys
        import initlab.data
        names = [m.name for m in pkgutil.iter_modules(initlab.data.__path__)]
        for name in names:
            importlib.import_module("initlab.data." + name)
        from initlab.data.base import plain_data_class
        from initlab.data.digits import DigitsData
        dm = DigitsData(batch_size=32, seed=3)
        dm.prepare()
        x, y = dm.sample_batch(16)
        xb, yb = next(iter(dm.train_dataloader()))
        twin = plain_data_class("initlab.data.digits.DigitsDataModule")
        print(json.dumps({
            "modules": names, "twin": twin, "describe": dm.describe(),
            "shapes": [list(x.shape), list(xb.shape)],
            "lightning": sorted(m for m in sys.modules
                                if m.split(".")[0] in ("pytorch_lightning", "lightning")),
        }))
    """)
    assert got["lightning"] == []
    assert {"base", "digits", "mnist", "cifar", "synthetic", "sequence"} <= set(got["modules"])
    assert got["twin"] == "initlab.data.digits.DigitsData"
    assert got["shapes"] == [[16, 1, 8, 8], [32, 1, 8, 8]]
    assert got["describe"]["n_train"] + got["describe"]["n_val"] + got["describe"]["n_test"] \
        == 1797


@pytest.mark.parametrize(("module", "old", "plain", "parent"), TWINS)
def test_old_names_are_lightning_twins(module: str, old: str, plain: str,
                                       parent: str | None) -> None:
    mod = importlib.import_module(module)
    cls, plain_cls = getattr(mod, old), getattr(mod, plain)
    assert issubclass(cls, pl.LightningDataModule)
    assert issubclass(cls, plain_cls) and not issubclass(plain_cls, pl.LightningDataModule)
    assert getattr(mod, old) is cls  # made once: pickle and isinstance rely on it
    assert importlib.import_module(module).__getattr__(old) is cls
    assert (cls.__module__, cls.__qualname__, cls.__name__) == (module, old, old)
    assert lightning_class(plain_cls) is cls
    if parent is not None:
        parent_cls = _get("initlab.data." + parent)
        assert cls.__bases__ == (plain_cls, parent_cls)
        assert issubclass(cls, _get("initlab.data.base.InMemoryDataModule"))


def test_twin_hierarchy_and_from_import() -> None:
    from initlab.data.base import InMemoryDataModule
    from initlab.data.cifar import CIFAR10DataModule
    from initlab.data.digits import DigitsDataModule
    from initlab.data.mnist import FashionMNISTDataModule, FileDataModule, MNISTDataModule

    assert issubclass(FashionMNISTDataModule, MNISTDataModule)
    assert issubclass(CIFAR10DataModule, FileDataModule)
    assert not issubclass(CIFAR10DataModule, MNISTDataModule)
    dm = DigitsDataModule(seed=0)
    assert isinstance(dm, InMemoryDataModule) and isinstance(dm, pl.LightningDataModule)
    assert dm.trainer is None  # LightningDataModule.__init__ ran (through InMemoryData's)


def test_unknown_attribute_is_an_attribute_error() -> None:
    import initlab.data.digits as digits

    with pytest.raises(AttributeError, match="module 'initlab.data.digits' has no attribute "
                                             "'NopeDataModule'"):
        digits.NopeDataModule  # noqa: B018
    assert not hasattr(digits, "DigitsDataModul")
    with pytest.raises(ImportError, match="NopeDataModule"):
        exec("from initlab.data.digits import NopeDataModule", {})


def test_twin_pickles() -> None:
    from initlab.data.digits import DigitsDataModule

    dm = DigitsDataModule(seed=5, batch_size=16)
    dm.prepare()
    again = pickle.loads(pickle.dumps(dm))
    assert type(again) is DigitsDataModule
    assert again.seed == 5 and again.batch_size == 16
    for split, (x, y) in dm.splits.items():
        assert torch.equal(again.splits[split][0], x) and torch.equal(again.splits[split][1], y)


@pytest.mark.slow  # a fresh interpreter importing Lightning: several seconds
def test_twin_unpickles_in_a_fresh_process(tmp_path: Path) -> None:
    """A spawned worker (DDP spawn) has not made the class yet: unpickling makes it."""
    from initlab.data.digits import DigitsDataModule

    dm = DigitsDataModule(seed=5, batch_size=16)
    dm.prepare()
    path = tmp_path / "dm.pkl"
    path.write_bytes(pickle.dumps(dm))
    got = _run(f"""
        import json, pickle
        import pytorch_lightning as pl
        from initlab.data.digits import DigitsData
        dm = pickle.loads(open({str(path)!r}, "rb").read())
        from initlab.data.digits import DigitsDataModule
        print(json.dumps([type(dm) is DigitsDataModule, isinstance(dm, pl.LightningDataModule),
                          isinstance(dm, DigitsData), len(dm.splits["train"][0])]))
    """)
    assert got == [True, True, True, len(dm.splits["train"][0])]


def test_plain_data_class_maps_every_old_target() -> None:
    for module, old, plain, _ in TWINS:
        assert plain_data_class(f"{module}.{old}") == f"{module}.{plain}"
        assert _get(f"{module}.{plain}") is getattr(importlib.import_module(module), plain)
    # and every shipped config's target has a twin
    for path in sorted((ROOT / "conf" / "dataset").glob("*.yaml")):
        target = yaml.safe_load(path.read_text())["_target_"]
        twin = plain_data_class(target)
        assert twin is not None, path.name
        assert issubclass(_get(target), _get(twin)), path.name


class OwnDataModule(pl.LightningDataModule):
    """A user's own LightningDataModule: no plain twin."""


def test_plain_data_class_without_a_twin() -> None:
    from initlab.data.base import InMemoryDataModule

    assert plain_data_class(f"{__name__}.OwnDataModule") is None
    assert plain_data_class("initlab.data.digits.NopeDataModule") is None
    assert plain_data_class("no_such_package_xyz.data.Data") is None
    assert plain_data_class("torch.nn.Linear") is None
    assert plain_data_class("DigitsDataModule") is None
    assert plain_data_class("initlab.data.base.InMemoryDataModule") == \
        "initlab.data.base.InMemoryData"
    # a plain class named directly is its own plain class
    assert plain_data_class("initlab.data.digits.DigitsData") == "initlab.data.digits.DigitsData"
    assert issubclass(InMemoryDataModule, InMemoryData)


def test_users_plain_class_gets_a_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe of docs/data_models.md: a plain subclass registered with
    lightning_twins works for both engines."""
    (tmp_path / "userdata_twins.py").write_text(textwrap.dedent("""
        import torch
        from initlab.data.base import InMemoryData, lightning_twins
        from initlab.data.digits import DigitsData

        class Base(InMemoryData):  # an intermediate class without a twin of its own
            pass

        class Ramp(Base):
            task, num_outputs, input_shape = "regression", 1, (3,)

            def load(self):
                x = torch.arange(30.0).reshape(10, 3)
                return {s: (x, x.sum(1, keepdim=True)) for s in ("train", "val", "test")}

        class SmallDigits(DigitsData):
            pass

        __getattr__ = lightning_twins(__name__, {"RampDataModule": Ramp,
                                                 "SmallDigitsDataModule": SmallDigits})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("userdata_twins")
    from initlab.data.base import InMemoryDataModule
    from initlab.data.digits import DigitsDataModule

    assert mod.RampDataModule.__bases__ == (mod.Ramp, InMemoryDataModule)
    assert mod.SmallDigitsDataModule.__bases__ == (mod.SmallDigits, DigitsDataModule)
    assert plain_data_class("userdata_twins.RampDataModule") == "userdata_twins.Ramp"
    assert plain_data_class("userdata_twins.Base") == "userdata_twins.Base"
    dm = mod.RampDataModule(standardize=False, batch_size=4)
    dm.setup("fit")
    assert torch.equal(dm.splits["train"][1][:, 0], torch.arange(30.0).reshape(10, 3).sum(1))
    with pytest.raises(TypeError, match="Base has no Lightning twin"):
        lightning_class(mod.Base)


def test_plain_and_twin_give_the_same_data() -> None:
    from initlab.data.digits import DigitsData, DigitsDataModule

    kwargs = {"seed": 4, "batch_size": 50, "val_frac": 0.2, "test_frac": 0.1, "image_size": 12}
    plain, twin = DigitsData(**kwargs), DigitsDataModule(**kwargs)
    plain.setup("fit")
    twin.setup("fit")
    assert plain.splits.keys() == twin.splits.keys() == {"train", "val", "test"}
    for split in plain.splits:
        for a, b in zip(plain.splits[split], twin.splits[split], strict=True):
            assert torch.equal(a, b)
    assert plain.describe() == twin.describe()
    for (xa, ya), (xb, yb) in zip(plain.train_dataloader(), twin.train_dataloader(),
                                  strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(plain.sample_batch(7)[0], twin.sample_batch(7)[0])
