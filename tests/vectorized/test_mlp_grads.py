"""The written-out backward pass of stacked MLPs is autograd's, for every activation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab.models.activations import ACTIVATIONS, make_activation
from initlab.models.mlp import MLP
from initlab.vectorized.engine import StackedModel, member_losses, stacked_optimizer
from initlab.vectorized.mlp_grads import ACTIVATION_GRADS, log_softmax_last

K, B = 3, 7


def stacked_mlps(act: str, bias: bool = True, outputs: int = 4, **params: float
                 ) -> StackedModel:
    torch.manual_seed(0)
    models = [MLP((2, 3), outputs, lambda: make_activation(act, **params), depth=2, width=5,
                  bias=bias) for _ in range(K)]
    for m in models:  # weights large enough that every activation's curvature shows
        for p in m.parameters():
            nn.init.normal_(p, std=1.0)
    return StackedModel(models)


def autograd_grads(stacked: StackedModel, x: torch.Tensor, y: torch.Tensor, task: str,
                   skip: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """What the engine computed before the written-out pass: autograd of the sum."""
    losses = member_losses(task, stacked(x), y)
    total = (losses if skip is None else torch.where(skip, torch.zeros_like(losses),
                                                     losses)).sum()
    grads = torch.autograd.grad(total, list(stacked.params.values()))
    return losses.detach(), dict(zip(stacked.params, grads, strict=True))


def test_every_configurable_activation_has_a_written_out_derivative() -> None:
    assert set(ACTIVATIONS.values()) <= set(ACTIVATION_GRADS)


@pytest.mark.parametrize("act,params", [(name, {}) for name in sorted(ACTIVATIONS)]
                         + [("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.5})])
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_and_losses_are_autograds(act: str, params: dict, bias: bool) -> None:
    stacked = stacked_mlps(act, bias, **params)
    assert stacked.manual
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(K, B, 2, 3, generator=g), torch.randint(0, 4, (K, B), generator=g)
    want_losses, want = autograd_grads(stacked, x, y, "classification")
    out, losses = stacked.forward_backward(x, y, "classification")
    torch.testing.assert_close(out, torch.stack([stacked(x)[k] for k in range(K)]).detach())
    torch.testing.assert_close(losses, want_losses, rtol=1e-6, atol=1e-7)
    for name, p in stacked.params.items():
        assert p.grad.shape == p.shape, name
        torch.testing.assert_close(p.grad, want[name], rtol=1e-5, atol=1e-6, msg=name)


def test_regression_loss_and_skipped_members() -> None:
    stacked = stacked_mlps("tanh", outputs=2)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(K, B, 2, 3, generator=g), torch.randn(K, B, 2, generator=g)
    skip = torch.tensor([False, True, False])
    want_losses, want = autograd_grads(stacked, x, y, "regression", skip)
    _, losses = stacked.forward_backward(x, y, "regression", skip)
    torch.testing.assert_close(losses, want_losses)
    for name, p in stacked.params.items():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-5, atol=1e-6, msg=name)
        assert not p.grad[1].any(), name  # the skipped member gets exactly zero


def test_a_loss_it_does_not_write_out_is_left_to_autograd() -> None:
    stacked = stacked_mlps("relu", outputs=2)
    x, y = torch.randn(K, B, 2, 3), torch.randn(K, B, 1)  # broadcasting MSE targets
    assert stacked.forward_backward(x, y, "regression") is None
    assert all(p.grad is None for p in stacked.params.values())


def test_models_it_cannot_write_out_keep_autograd() -> None:
    inplace = [MLP((4,), 2, lambda: nn.ReLU(inplace=True), depth=1, width=3) for _ in range(2)]
    normed = [MLP((4,), 2, nn.ReLU, depth=1, width=3, norm="layer") for _ in range(2)]
    assert not StackedModel(inplace).manual and StackedModel(inplace).fast
    assert not StackedModel(normed).manual and not StackedModel(normed).fast


def test_buffers_are_reused_and_infer_matches_the_forward() -> None:
    stacked = stacked_mlps("relu")
    x, y = torch.randn(K, B, 2, 3), torch.randint(0, 4, (K, B))
    out1, _ = stacked.forward_backward(x, y, "classification")
    grads = {n: p.grad for n, p in stacked.params.items()}
    out2, _ = stacked.forward_backward(x, y, "classification")
    assert out2.data_ptr() == out1.data_ptr()  # the same buffer: no fresh pages a step
    assert all(p.grad is grads[n] for n, p in stacked.params.items())
    shared = torch.randn(B + 2, 2, 3)
    want = stacked(shared, shared=True).detach()
    torch.testing.assert_close(stacked.infer(shared, shared=True), want)


def test_log_softmax_last_is_log_softmax() -> None:
    # another kernel (over the transposed view): equal up to rounding, not bit for bit
    # (1 ulp apart on AVX2 CPUs, identical on AVX-512 ones)
    out = torch.randn(4, 9, 10, generator=torch.Generator().manual_seed(0))
    got = log_softmax_last(out)
    torch.testing.assert_close(got, torch.log_softmax(out, dim=-1), rtol=1e-6, atol=1e-6)
    assert got.shape == out.shape
    # normalized over the classes (the last dimension), not over the rows
    torch.testing.assert_close(got.exp().sum(-1), torch.ones(4, 9))


@pytest.mark.parametrize("factory,fused", [
    (lambda p, **kw: torch.optim.SGD(p, lr=0.1, momentum=0.9, **kw), True),
    (lambda p, **kw: torch.optim.Adam(p, lr=0.01, **kw), True),
    (lambda p, **kw: torch.optim.RMSprop(p, lr=0.01, **kw), False),  # no fused kernel
])
def test_stacked_optimizer_takes_the_fused_kernel_with_the_same_update(factory, fused) -> None:
    torch.manual_seed(0)
    params = [torch.randn(K, 5, 4, requires_grad=True), torch.randn(K, 5, requires_grad=True)]
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    opt, plain = stacked_optimizer(factory, params), factory(twins)
    assert bool(opt.defaults.get("fused")) == fused
    for _ in range(3):
        for p, q in zip(params, twins, strict=True):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        opt.step()
        plain.step()
    for p, q in zip(params, twins, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_stacked_optimizer_keeps_an_implementation_the_config_chose() -> None:
    from functools import partial

    p = [torch.zeros(2, 3, requires_grad=True)]
    opt = stacked_optimizer(partial(torch.optim.SGD, lr=0.1, foreach=False), p)
    assert not opt.defaults.get("fused") and opt.defaults["foreach"] is False
