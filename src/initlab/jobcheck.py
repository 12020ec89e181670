"""A job's configuration checked before anything trains: ``config.validate`` plus what
only a constructor knows (the optimizer's own argument checks), with errors that name
the config key. The sweeper runs it for every job of a sweep before the first starts;
``pipeline.run`` runs it for a single job."""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.config import validate

# Words torch's optimizers use in their messages for a key of a different name.
_KEY_WORDS = {"lr": ("learning rate",), "eps": ("epsilon",), "betas": ("beta",)}


def keys_named_in(message: str, group: str, node: DictConfig) -> list[str]:
    """The keys of the config group ``node`` that an error message talks about."""
    text = message.lower()
    found = []
    for key in node:
        key = str(key)
        if key.startswith("_"):
            continue
        words = (key, *_KEY_WORDS.get(key, ()))
        if any(re.search(rf"\b{re.escape(w.lower())}\b", text) for w in words):
            found.append(f"{group}.{key}")
    return found


def torch_optimizer_rules(cls: type, kwargs: dict[str, Any]) -> None:
    """Raise what ``cls(params, **kwargs)`` raises for its arguments, for torch.optim's
    SGD, Adam and AdamW (their ``__init__`` checks, restated in their order), without
    building the optimizer: building one imports ``torch._dynamo``, about 1 s of a short
    sweep that otherwise needs no torch.optim object (the vectorized engine writes these
    three updates out). tests/test_jobcheck.py holds these rules to torch's own."""
    import inspect

    import torch

    # an argument torch does not take: the TypeError Python raises for the call
    args = inspect.signature(cls).bind(None, **kwargs)
    args.apply_defaults()
    a = args.arguments
    if a["lr"] < 0.0:
        raise ValueError(f"Invalid learning rate: {a['lr']}")
    if cls is torch.optim.SGD:
        if a["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {a['momentum']}")
        if a["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {a['weight_decay']}")
        if a["nesterov"] and (a["momentum"] <= 0 or a["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    else:  # Adam, AdamW
        betas = a["betas"]
        if not 0.0 <= a["eps"]:
            raise ValueError(f"Invalid epsilon value: {a['eps']}")
        for i in (0, 1):
            if not 0.0 <= betas[i] < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {betas[i]}")
        if not 0.0 <= a["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {a['weight_decay']}")
        if not all(isinstance(b, float) for b in betas):
            raise ValueError("betas must be either both floats or both Tensors")
    if a["fused"] and a["differentiable"]:
        raise RuntimeError("`fused` does not support `differentiable`")
    if a["fused"] and a["foreach"]:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def check_optimizer(cfg: DictConfig) -> None:
    """Build the configured optimizer on a dummy parameter: torch checks its arguments
    there (``Invalid momentum value: -3``), which would otherwise fail the job inside
    ``Trainer.fit``. The error names the key(s)."""
    import torch
    from hydra.utils import instantiate

    node = cfg.get("optimizer")
    if node is None or not node.get("_target_"):
        return
    target = str(node._target_)
    try:
        factory = instantiate(node)
        func = getattr(factory, "func", None)
        if func in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
            torch_optimizer_rules(func, dict(factory.keywords))
        else:
            factory([torch.nn.Parameter(torch.zeros(1))])
    except Exception as exc:  # noqa: BLE001 - re-raised with the key
        root = exc
        while root.__cause__ is not None and type(root).__name__ == "InstantiationException":
            root = root.__cause__
        message = str(root)
        keys = keys_named_in(message, "optimizer", node)
        values = ", ".join(f"{k}={OmegaConf.select(cfg, k)!r}" for k in keys)
        raise ValueError(
            f"{values or 'optimizer'}: not allowed by {target} ({type(root).__name__}: "
            f"{message})") from None


def check_job(cfg: DictConfig) -> None:
    """Every check that needs only the config (no data, no device): raises ``ValueError``
    naming the key and what is allowed."""
    validate(cfg)
    check_optimizer(cfg)


def describe_error(exc: BaseException) -> str:
    """One line for a refused job."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"

