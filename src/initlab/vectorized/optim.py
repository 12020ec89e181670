"""Per-member learning rates and schedules for stacked (K, ...) parameters.

A vectorized job's members may differ in ``optimizer.lr``. SGD, Adam and AdamW are
element-wise, and the lr enters their update only as a factor (of the step, and of the
decoupled weight decay of AdamW), so member k's slice of the stacked update is its own
optimizer's update with ``lr[k]``. ``MemberLrOptimizer`` writes these updates out with an
lr tensor of shape (K,), following torch's single-tensor implementations (the ones an
ordinary CPU run uses) operation by operation:

* SGD (Sutskever et al., ICML 2013, torch's form): ``g = grad + wd p``;
  ``b = mu b + (1 - dampening) g`` (``b = g`` on the first step); ``g = g + mu b``
  (Nesterov) or ``g = b``; ``p = p - lr g``: the coupled weight decay is scaled by lr.
* Adam (Kingma & Ba, ICLR 2015): ``g = grad + wd p``; ``m = lerp(m, g, 1 - b1)``;
  ``v = b2 v + (1 - b2) g^2``; ``p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t)
  + eps)``.
* AdamW (Loshchilov & Hutter, ICLR 2019): Adam without the coupled decay, after
  ``p = p (1 - lr wd)`` (decoupled weight decay, scaled by the member's lr).

``MemberSchedules`` runs each member's own ``lr_scheduler`` on a shadow optimizer (the
member's optimizer over one dummy tensor, never stepped), stepped as Lightning steps it,
and copies the resulting learning rates into the stacked optimizer: each member's lr
sequence is the one its ordinary run's scheduler produces.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

# torch.optim classes whose per-member lr MemberLrOptimizer implements, with the options
# it implements (others are refused by checks.check_supported).
MEMBER_LR_OPTIMIZERS = {
    "torch.optim.SGD": {"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"},
    "torch.optim.Adam": {"lr", "betas", "eps", "weight_decay", "amsgrad", "maximize",
                         "decoupled_weight_decay"},
    "torch.optim.AdamW": {"lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"},
}
# options that choose an implementation only (same arithmetic up to rounding)
_IMPLEMENTATION_KEYS = {"foreach", "fused", "capturable", "differentiable"}


def _defaults(cls: type[torch.optim.Optimizer]) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {n: p.default for n, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty}


class MemberLrOptimizer:
    """SGD, Adam or AdamW over stacked parameters with one learning rate per member.

    ``kind``: ``"SGD"``, ``"Adam"`` or ``"AdamW"``; ``options``: the optimizer's keyword
    arguments except ``lr``; ``lrs``: each member's lr. ``param_groups[0]`` holds the
    options (a scheduler's changes to e.g. ``betas`` are read from it on every step) and
    ``lr``, the list of the members' lrs."""

    def __init__(self, kind: str, params: Sequence[Tensor], lrs: Sequence[float],
                 options: Mapping[str, Any]) -> None:
        if kind not in ("SGD", "Adam", "AdamW"):
            raise ValueError(f"MemberLrOptimizer: {kind!r} is not SGD, Adam or AdamW")
        cls = getattr(torch.optim, kind)
        opts = {**_defaults(cls), **{k: v for k, v in options.items()
                                     if k not in _IMPLEMENTATION_KEYS}}
        opts.pop("lr", None)
        if kind == "AdamW":
            opts["decoupled_weight_decay"] = True
        self.kind = "SGD" if kind == "SGD" else "Adam"
        self.params = list(params)
        self.k = int(self.params[0].shape[0])
        if len(lrs) != self.k:
            raise ValueError(f"MemberLrOptimizer: {len(lrs)} lrs for {self.k} members")
        self.param_groups = [{**opts, "lr": [float(v) for v in lrs], "params": self.params}]
        self.state: dict[Tensor, dict[str, Any]] = {p: {} for p in self.params}
        self._made: dict[tuple[Any, ...], Tensor] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _member(self, values: Sequence[float], like: Tensor) -> Tensor:
        """(K, 1, ...) float64 values rounded to ``like``'s dtype, as torch rounds a Python
        float scalar into a kernel of that dtype (made once per step and device/dtype)."""
        key = (tuple(values), like.device, like.dtype)
        t = self._made.get(key)
        if t is None:
            t = self._made[key] = torch.tensor(values, dtype=torch.float64,
                                               device=like.device).to(like.dtype)
        return t.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lrs = [float(v) for v in group["lr"]]
        self._made: dict[tuple[Any, ...], Tensor] = {}
        for p in self.params:
            if p.grad is None:
                continue
            grad = -p.grad if group["maximize"] else p.grad
            if self.kind == "SGD":
                self._sgd(p, grad, lrs, group)
            else:
                self._adam(p, grad, lrs, group)

    def _sgd(self, p: Tensor, grad: Tensor, lrs: list[float], group: dict[str, Any]) -> None:
        wd, mu = group["weight_decay"], group["momentum"]
        if wd != 0:
            grad = grad.add(p, alpha=wd)
        if mu != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.detach().clone()
            else:
                buf.mul_(mu).add_(grad, alpha=1 - group["dampening"])
            grad = grad.add(buf, alpha=mu) if group["nesterov"] else buf
        p.addcmul_(grad, self._member([-v for v in lrs], p))

    def _adam(self, p: Tensor, grad: Tensor, lrs: list[float], group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        wd, eps = group["weight_decay"], group["eps"]
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p.mul_(self._member([1 - v * wd for v in lrs], p))
            else:
                grad = grad.add(p, alpha=wd)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**t
        bias_correction2_sqrt = (1 - beta2**t) ** 0.5
        second = exp_avg_sq
        if group["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        denom = (second.sqrt() / bias_correction2_sqrt).add_(eps)
        step_size = self._member([-v / bias_correction1 for v in lrs], p)
        p.addcmul_(exp_avg / denom, step_size)


def lightning_steps_scheduler(interval: str, frequency: int, index: int) -> bool:
    """Lightning's rule (``_update_learning_rates``): a scheduler with ``interval`` steps
    when ``index + 1`` (the batch index in the epoch, or the epoch) is a multiple of
    ``frequency``."""
    return (index + 1) % frequency == 0


class MemberSchedules:
    """One ``lr_scheduler`` per member, each on a shadow of the member's optimizer; after
    each ``step`` the members' lrs (and the options a schedule cycles, e.g. OneCycle's
    ``betas``/``momentum``, the same for every member) are copied into ``optimizer``.

    ``factories``: each member's scheduler factory (``scheduler_spec(...)["scheduler"]``);
    ``optimizers``: each member's optimizer factory; ``total_steps``: what Lightning's
    ``trainer.estimated_stepping_batches`` is for the run (batches per epoch x epochs),
    passed to factories that take ``total_steps`` and leave it unset, as the module does.
    """

    def __init__(self, factories: Sequence[Callable[..., Any]],
                 optimizers: Sequence[Callable[..., torch.optim.Optimizer]],
                 interval: str, frequency: int, total_steps: int,
                 optimizer: Any) -> None:
        self.interval = interval
        self.frequency = int(frequency)
        self.optimizer = optimizer
        self.shadows: list[torch.optim.Optimizer] = []
        self.schedulers: list[Any] = []
        for factory, make_opt in zip(factories, optimizers, strict=True):
            shadow = make_opt([torch.zeros(1, requires_grad=True)])
            kwargs = {}
            if "total_steps" in inspect.signature(factory).parameters and getattr(
                    factory, "keywords", {}).get("total_steps") is None:
                kwargs["total_steps"] = int(total_steps)
            self.shadows.append(shadow)
            self.schedulers.append(factory(shadow, **kwargs))
        self._apply()

    def lrs(self) -> list[float]:
        """Each member's current learning rate."""
        return [float(s.param_groups[0]["lr"]) for s in self.shadows]

    def _apply(self) -> None:
        group = self.optimizer.param_groups[0]
        first = self.shadows[0].param_groups[0]
        for key, value in first.items():
            # the shadow's own implementation choice (unfused) is not the stacked one's
            if key not in ("params", "lr", *_IMPLEMENTATION_KEYS) and key in group:
                group[key] = value
        lrs = self.lrs()
        group["lr"] = lrs if isinstance(group["lr"], list) else lrs[0]

    def step(self, interval: str, index: int) -> None:
        """Lightning's update for ``interval`` at ``index`` (batch index in the epoch for
        "step", the epoch for "epoch")."""
        if interval != self.interval or not lightning_steps_scheduler(
                interval, self.frequency, index):
            return
        with warnings.catch_warnings():
            # the shadows are never stepped: torch's "scheduler before optimizer" warning
            # is about them, not about the stacked optimizer (which did step)
            warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)")
            for sched in self.schedulers:
                sched.step()
        self._apply()
