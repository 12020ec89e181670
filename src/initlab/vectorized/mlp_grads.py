"""K stacked plain MLPs as batched matrix products, backward pass written out (no autograd).

For MLPs without normalization layers, the gradient of the summed member losses is a
chain of batched matrix products plus one elementwise derivative per hidden layer.
Written out, it skips autograd's per-node bookkeeping. It also lets each product read
its operands in the layout the batched GEMM runs fastest: weights stay in nn.Linear's
(K, out, in) layout and their gradients come out in it. Autograd's bmm backward would
write (K, in, out) gradients, which cost the 10-output head three times its share.
The derivatives are aten's own backward kernels, the ones autograd calls for these
activations. Each member's gradient is its own mean loss's gradient: the members' sum
has gradient 1 for each member's loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

aten = torch.ops.aten
# SELU's constants as torch.nn.functional.selu uses them (Klambauer et al., 2017)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

# (activation module, grad of its output g, its input z, its output a) -> grad of z. g is
# the backward pass's own tensor: a derivative may overwrite it (ReLU masks it in place).
ActivationGrad = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]
ACTIVATION_GRADS: dict[type[nn.Module], ActivationGrad] = {
    nn.ReLU: lambda m, g, z, a: aten.threshold_backward.grad_input(g, a, 0.0, grad_input=g),
    nn.Identity: lambda m, g, z, a: g,
    nn.Tanh: lambda m, g, z, a: aten.tanh_backward(g, a),
    nn.Sigmoid: lambda m, g, z, a: aten.sigmoid_backward(g, a),
    nn.LeakyReLU: lambda m, g, z, a: aten.leaky_relu_backward(g, z, m.negative_slope, False),
    nn.ELU: lambda m, g, z, a: aten.elu_backward(g, m.alpha, 1.0, 1.0, False, z),
    nn.SELU: lambda m, g, z, a: aten.elu_backward(g, SELU_ALPHA, SELU_SCALE, 1.0, False, z),
    nn.GELU: lambda m, g, z, a: aten.gelu_backward(g, z, approximate=m.approximate),
    nn.SiLU: lambda m, g, z, a: aten.silu_backward(g, z),
    # softsign(z) = z / (1 + |z|): derivative 1 / (1 + |z|)^2
    nn.Softsign: lambda m, g, z, a: g / (1 + z.abs()).square(),
}


def activation_grad(act: nn.Module) -> ActivationGrad | None:
    """The derivative of ``act`` (exact type; an in-place module changes its input and
    is not covered), or None when it is not written out here."""
    if getattr(act, "inplace", False):
        return None
    return ACTIVATION_GRADS.get(type(act))


def activate(act: nn.Module, z: Tensor) -> Tensor:
    """``act(z)``; ReLU in place (its derivative reads only its output, and a fresh tensor
    of a stacked layer's size can cost more than the ReLU itself)."""
    return torch.relu_(z) if type(act) is nn.ReLU else act(z)


def log_softmax_last(out: Tensor) -> Tensor:
    """``log_softmax(out, dim=-1)``, computed over the transposed view: torch's CPU kernel
    runs a dimension of a few classes (10 here) 4-6 times faster when it is not the last
    one. The same values up to rounding: another kernel, whose results may differ from
    ``torch.log_softmax(out, dim=-1)``'s in the last bit on some CPUs (the result is a view
    with the classes' stride)."""
    return torch.log_softmax(out.transpose(-1, -2), dim=-2).transpose(-1, -2)


def member_cross_entropy(out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Each member's mean cross-entropy (K,) for logits ``out`` (K, B, classes) and
    targets ``y`` (K, B): -log_softmax at the target, as ``F.cross_entropy``; and the
    log-probabilities it read."""
    logp = log_softmax_last(out)
    return logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(1).neg(), logp


def member_mse(out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Each member's mean squared error (K,) for ``out`` and ``y`` of one shape (K, B, ...),
    and their difference ``out - y``."""
    diff = out - y
    return diff.square().flatten(1).mean(1), diff


def loss_and_grad(task: str, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor] | None:
    """Each member's mean loss (K,) and the gradient of their sum with respect to ``out``
    (K, B, ...), or None for a loss not written out here (MSE between shapes that only
    broadcast). The losses are ``engine.member_losses``'s."""
    if task == "classification":
        # the gradient of the mean cross-entropy: (softmax - onehot) / B
        losses, logp = member_cross_entropy(out, y)
        grad = logp.exp_()  # logp is not needed any more
        target = y.unsqueeze(-1)
        grad.scatter_add_(-1, target, grad.new_full(target.shape, -1.0))
        return losses, grad.mul_(1.0 / out.shape[1])
    if y.shape != out.shape:
        return None
    losses, diff = member_mse(out, y)
    return losses, diff.mul_(2.0 / diff[0].numel())


class StackedMLP:
    """The passes of K stacked plain MLPs (initlab MLPs without norm layers) as batched
    matrix products: the forward for any parameter-free activation, and, when every
    activation's derivative is written out here (``manual``), the training step's
    backward too.

    The buffered passes (``infer`` and the training step) keep their intermediate
    tensors from call to call: a fresh tensor of a stacked layer's size (hundreds of KB)
    can come from the C allocator as new pages, and their page faults cost from nothing
    to a quarter of a K = 16 step of the default MLP, depending on the allocation pattern
    around it. So the output they return is valid until the next call."""

    def __init__(self, layers: Sequence[str],
                 acts: Sequence[tuple[nn.Module, ActivationGrad | None]]) -> None:
        self.layers = list(layers)  # the linear layers' names in order
        self.acts = list(acts)  # the activation after each hidden layer, its derivative
        self.manual = all(grad is not None for _, grad in self.acts)
        self._buffers: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    @classmethod
    def for_mlp(cls, base: Any) -> StackedMLP:
        """The passes of ``base``, an initlab MLP without norm layers."""
        layers = [f"blocks.{i}.linear" for i in range(len(base.blocks))]
        acts = [(block.act, activation_grad(block.act)) for block in base.blocks]
        return cls([*layers, "head"], acts)

    def _buffer(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        key = (name, shape)  # the epoch's last, smaller batch keeps buffers of its own
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf

    @staticmethod
    def _grad_buffer(p: Tensor) -> Tensor:
        """``p.grad``, kept from the previous step (the same shape, overwritten)."""
        if p.grad is None:
            p.grad = torch.empty_like(p)
        return p.grad

    def _forward(self, params: dict[str, Tensor], h: Tensor,
                 saved: list[tuple[Tensor, Tensor, Tensor]] | None = None,
                 buffered: bool = True) -> Tensor:
        """The output of the layers on ``h`` (K, B, in); ``saved`` collects what the
        backward pass reads: (layer input, z, activation output) per layer. Unbuffered,
        every tensor is new (what autograd needs)."""
        k, batch = h.shape[:2]
        n = len(self.layers)
        for i, name in enumerate(self.layers):
            w, b = params[f"{name}.weight"], params.get(f"{name}.bias")
            z = self._buffer(f"z{i}", (k, batch, w.shape[1]), w) if buffered else None
            if b is None:
                z = torch.bmm(h, w.transpose(1, 2), out=z)
            else:
                z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), out=z)
            if i == n - 1:
                if saved is not None:
                    saved.append((h, z, z))
                return z
            a = activate(self.acts[i][0], z)
            if saved is not None:
                saved.append((h, z, a))
            h = a
        raise ValueError("an MLP has at least its head layer")

    @staticmethod
    def _inputs(params: dict[str, Tensor], x: Tensor, shared: bool) -> Tensor:
        """(K, B, in) from ``x`` (K, B, ...) or, ``shared``, (B, ...) for all members (not
        copied)."""
        if not shared:
            return x.flatten(2)
        k = next(iter(params.values())).shape[0]
        return x.flatten(1).expand(k, len(x), -1)

    def forward(self, params: dict[str, Tensor], x: Tensor, shared: bool = False) -> Tensor:
        """The members' outputs, for autograd (unbuffered)."""
        return self._forward(params, self._inputs(params, x, shared), buffered=False)

    @torch.no_grad()
    def infer(self, params: dict[str, Tensor], x: Tensor, shared: bool = False) -> Tensor:
        """The members' outputs without gradients; valid until the next buffered call."""
        return self._forward(params, self._inputs(params, x, shared))

    @torch.no_grad()
    def __call__(self, params: dict[str, Tensor], x: Tensor, y: Tensor, task: str,
                 skip: Tensor | None = None) -> tuple[Tensor, Tensor] | None:
        """Sets every parameter's ``.grad`` (weights (K, out, in) as nn.Linear's) to the
        gradient of the sum of the members' mean losses; returns (output (K, B, out),
        member losses (K,)). ``skip``: a (K,) mask of members that get zero gradients.
        Returns None (nothing set) when the loss is not written out (``loss_and_grad``)."""
        assert self.manual, "the backward pass needs every activation's derivative"
        saved: list[tuple[Tensor, Tensor, Tensor]] = []  # (layer input, z, activation)
        out = self._forward(params, x.flatten(2), saved)
        k, batch = out.shape[:2]
        n = len(self.layers)
        result = loss_and_grad(task, out, y)
        if result is None:
            return None
        losses, g = result
        if skip is not None:
            g = torch.where(skip.view(-1, *([1] * (g.dim() - 1))), 0.0, g)
        for i in range(n - 1, -1, -1):
            h, z, a = saved[i]
            if i < n - 1:
                act, grad_fn = self.acts[i]
                g = grad_fn(act, g, z, a)
            name = self.layers[i]
            w = params[f"{name}.weight"]
            torch.bmm(g.transpose(1, 2), h, out=self._grad_buffer(w))  # w's own layout
            if f"{name}.bias" in params:
                torch.sum(g, 1, out=self._grad_buffer(params[f"{name}.bias"]))
            if i > 0:
                g = torch.bmm(g, w, out=self._buffer(f"g{i}", (k, batch, w.shape[2]), w))
        return out, losses
