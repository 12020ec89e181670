"""Per-member learning rates and schedules of stacked parameters (vectorized.optim)."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

from initlab.schedulers import warmup_cosine
from initlab.vectorized.optim import MemberLrOptimizer, MemberSchedules

LRS = [0.3, 0.05, 1e-3]


def _member_updates(cls, options: dict, steps: int = 5, schedule=None, seed: int = 0):
    """(stacked params after ``steps`` with MemberLrOptimizer, the same with one torch
    optimizer per member); gradients are random and the same for both."""
    g = torch.Generator().manual_seed(seed)
    k = len(LRS)
    init = [torch.randn(k, 4, 3, generator=g), torch.randn(k, 4, generator=g)]
    grads = [[torch.randn_like(t) for t in init] for _ in range(steps)]
    stacked = [t.clone().requires_grad_(True) for t in init]
    opt = MemberLrOptimizer(cls.__name__, stacked, LRS, options)
    singles = [[t[j].clone().requires_grad_(True) for t in init] for j in range(k)]
    opts = [cls(ps, lr=lr, **options) for ps, lr in zip(singles, LRS, strict=True)]
    scheds = None
    if schedule is not None:
        factory = functools.partial(schedule)
        scheds = MemberSchedules([factory] * k,
                                 [functools.partial(cls, lr=lr, **options) for lr in LRS],
                                 "step", 1, steps, opt)
        # as the module: total_steps for the factories that take it
        ordinary = [factory(o, total_steps=steps) if schedule.func is warmup_cosine
                    else factory(o) for o in opts]
    for i, gs in enumerate(grads):
        for p, gr in zip(stacked, gs, strict=True):
            p.grad = gr.clone()
        opt.step()
        for j, o in enumerate(opts):
            for p, gr in zip(singles[j], gs, strict=True):
                p.grad = gr[j].clone()
            o.step()
        if scheds is not None:
            scheds.step("step", i)
            for s in ordinary:
                s.step()
            assert scheds.lrs() == [o.param_groups[0]["lr"] for o in opts]
    return stacked, singles


@pytest.mark.parametrize("cls,options", [
    (torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.1}),
    (torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (torch.optim.SGD, {}),
    (torch.optim.Adam, {"weight_decay": 0.1}),
    (torch.optim.Adam, {"amsgrad": True, "betas": (0.8, 0.9)}),
    (torch.optim.AdamW, {"weight_decay": 0.5, "betas": (0.9, 0.98)}),
])
def test_each_member_is_updated_by_its_own_optimizer(cls, options) -> None:
    stacked, singles = _member_updates(cls, options)
    for j in range(len(LRS)):
        for p, q in zip(stacked, singles[j], strict=True):
            torch.testing.assert_close(p[j].detach(), q.detach(), rtol=1e-6, atol=1e-7)
    # the lrs really differ in effect: a member's result is not another member's
    assert not torch.allclose(stacked[0][0], stacked[0][1])


def test_adamw_decay_is_scaled_by_each_members_lr() -> None:
    # zero gradients: AdamW's step is only the decoupled decay p (1 - lr wd) (its Adam
    # part is 0 / (0 + eps) = 0)
    p = torch.ones(3, 2, requires_grad=True)
    opt = MemberLrOptimizer("AdamW", [p], LRS, {"weight_decay": 0.5})
    p.grad = torch.zeros_like(p)
    opt.step()
    want = torch.tensor([1 - lr * 0.5 for lr in LRS]).unsqueeze(1).expand(3, 2)
    torch.testing.assert_close(p.detach(), want)


@pytest.mark.parametrize("schedule", [
    functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=4),
    functools.partial(warmup_cosine, warmup_steps=2),
])
def test_each_member_follows_its_own_schedule(schedule) -> None:
    # the lrs are compared exactly inside; the parameters within float tolerance
    stacked, singles = _member_updates(torch.optim.Adam, {}, steps=6, schedule=schedule)
    for j in range(len(LRS)):
        for p, q in zip(stacked, singles[j], strict=True):
            torch.testing.assert_close(p[j].detach(), q.detach(), rtol=1e-6, atol=1e-7)


def test_scheduler_steps_at_lightnings_frequency() -> None:
    p = torch.zeros(2, 1, requires_grad=True)
    opt = MemberLrOptimizer("SGD", [p], [1.0, 0.5], {})
    sched = MemberSchedules(
        [functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)] * 2,
        [functools.partial(torch.optim.SGD, lr=lr) for lr in (1.0, 0.5)], "epoch", 2, 10, opt)
    sched.step("step", 0)  # another interval: no step
    sched.step("epoch", 0)  # epoch 1 of frequency 2: no step
    assert opt.param_groups[0]["lr"] == [1.0, 0.5]
    sched.step("epoch", 1)
    assert opt.param_groups[0]["lr"] == [0.5, 0.25]


def test_a_schedule_leaves_the_stacked_optimizers_implementation_alone() -> None:
    # one shared lr: the configured (fused) torch optimizer; one-cycle sets its lr and
    # betas each step from the shadow, not the shadow's unfused implementation
    p = torch.zeros(2, 3, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.1, fused=True)
    factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1)
    sched = MemberSchedules([factory] * 2, [functools.partial(torch.optim.Adam, lr=0.1)] * 2,
                            "step", 1, 10, opt)
    ordinary_opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    ordinary = factory(ordinary_opt, total_steps=10)
    for i in range(3):
        sched.step("step", i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ordinary.step()
        assert opt.param_groups[0]["lr"] == ordinary_opt.param_groups[0]["lr"]
        assert opt.param_groups[0]["betas"] == ordinary_opt.param_groups[0]["betas"]
    assert opt.param_groups[0]["fused"] is True
