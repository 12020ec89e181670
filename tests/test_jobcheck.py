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


SGD_CASES = [{}, {"lr": -1.0}, {"momentum": -0.5}, {"weight_decay": -1e-4},
             {"nesterov": True}, {"nesterov": True, "momentum": 0.9},
             {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
             {"fused": True, "differentiable": True}, {"fused": True, "foreach": True},
             {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "maximize": True},
             {"betas": (0.9, 0.99)}, {"momentom": 0.9}]
ADAM_CASES = [{}, {"lr": -1.0}, {"eps": -1e-8}, {"betas": (1.0, 0.999)},
              {"betas": (0.9, -0.1)}, {"betas": (0, 0.999)}, {"weight_decay": -0.01},
              {"amsgrad": True, "lr": 3e-4, "betas": (0.8, 0.95), "eps": 1e-6},
              {"fused": True, "differentiable": True}, {"momentum": 0.9},
              {"decoupled_weight_decay": True, "weight_decay": 0.1}]


def _outcome(call) -> tuple[str, str] | None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the outcome is compared
        # the unknown-argument TypeError: Python names the function differently
        message = str(exc).split("got ")[-1] if isinstance(exc, TypeError) else str(exc)
        return type(exc).__name__, message
    return None


@pytest.mark.parametrize(("name", "kwargs"), [
    *[("SGD", k) for k in SGD_CASES], *[("Adam", k) for k in ADAM_CASES],
    *[("AdamW", k) for k in ADAM_CASES if "decoupled_weight_decay" not in k]])
def test_optimizer_rules_are_torchs(name: str, kwargs: dict) -> None:
    """The up-front check of SGD/Adam/AdamW arguments (no optimizer built) accepts and
    refuses exactly what torch's constructors do, with their messages."""
    import torch

    from initlab.jobcheck import torch_optimizer_rules

    cls = getattr(torch.optim, name)
    want = _outcome(lambda: cls([torch.nn.Parameter(torch.zeros(2))], **kwargs))
    got = _outcome(lambda: torch_optimizer_rules(cls, dict(kwargs)))
    assert got == want


def test_checking_the_default_optimizer_builds_none() -> None:
    """Checking a job with SGD imports no torch._dynamo (what building a torch.optim
    optimizer imports, about 1 s)."""
    import os
    import subprocess
    import sys

    from tests.conftest import CONF, ROOT

    code = ("import sys\n"
            "from hydra import compose, initialize_config_dir\n"
            "from initlab.jobcheck import check_job\n"
            f"with initialize_config_dir(config_dir={str(CONF)!r}, version_base='1.3'):\n"
            "    check_job(compose('config', overrides=['optimizer.momentum=0.5']))\n"
            "print('DYNAMO', 'torch._dynamo' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DYNAMO False" in proc.stdout
