"""Per-layer signal-propagation probe of a network at initialization.

``probe(model, inputs, targets)`` runs one forward and one backward pass and returns one
row per weight layer (``nn.Linear``, ``nn.Conv{1,2,3}d`` and their transposes) in the order
the layers fire in the forward pass.  Definitions (see docs/diagnostics.md):

* pre-activation = the output of the weight layer (before any norm layer in between);
* activation = the output of the first activation module (a type from
  ``initlab.models.activations.ACTIVATIONS``, ``nn.Identity`` excluded) that fires after the
  weight layer and before the next weight layer; if none fires (output layer, ``linear``
  activation, functional ``F.relu`` in a custom ``forward``) activation = pre-activation;
* a unit is an output feature (``Linear``: last dim) or channel (conv: dim 1).

The model, its ``.grad`` fields, its buffers (BatchNorm running stats), its train/eval flags
and the global RNG state are left exactly as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from initlab.models.activations import activation_name
from initlab.modes import restore_training, set_training

WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
# Sign-preserving activations (phi(x) <= 0 iff x <= 0): a unit whose activation is <= 0 on
# every example is in the zero/small-gradient regime everywhere -> "dead".
RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "selu", "gelu", "silu"})
SATURATION = 0.99  # |tanh|, |softsign| > 0.99; sigmoid < 0.01 or > 0.99


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every weight layer, in registration order."""
    return [(n or "<root>", m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) with PyTorch's convention: dims 1 and 0 times the kernel size."""
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _unit_dim(module: nn.Module) -> int:
    return -1 if isinstance(module, nn.Linear) else 1


def _reduce_dims(t: torch.Tensor, unit_dim: int, members: bool = False) -> list[int]:
    """Every dim of ``t`` but the unit dim (and, ``members``, the leading member axis of a
    stacked output; ``unit_dim`` then counts in one member's output)."""
    if members:
        keep = unit_dim % (t.dim() - 1) + 1
        return [i for i in range(1, t.dim()) if i != keep]
    return [i for i in range(t.dim()) if i != unit_dim % t.dim()]


def _unit_activity(t: torch.Tensor, unit_dim: int, act: str, members: bool = False
                   ) -> torch.Tensor:
    """Per unit, a value that is <= 0 exactly when the unit is dead: its max over the
    examples after a ReLU-like activation, else its number of non-zero values. With
    ``members``, per member and unit of a stacked output (K, B, ...)."""
    t = t.detach()
    dims = _reduce_dims(t, unit_dim, members)
    return t.amax(dim=dims) if act in RELU_LIKE else torch.count_nonzero(t, dim=dims)


def dead_units(t: torch.Tensor, unit_dim: int, act: str) -> torch.Tensor:
    """Per unit: off (<= 0 after a ReLU-like activation, == 0 otherwise) on every example.
    Reduces with max/count over the examples (one pass, no boolean copy of ``t``)."""
    return _unit_activity(t, unit_dim, act) <= 0


def dead_unit_counts(outputs: list[torch.Tensor], unit_dims: list[int], acts: list[str]
                     ) -> list[int]:
    """``dead_units(...).sum()`` for each output, in a few ops for all layers and one host
    sync: each layer's ``_unit_activity``, then one comparison and one running count."""
    if len({t.device for t in outputs}) > 1:
        return [int(dead_units(t, d, a).sum()) for t, d, a in zip(outputs, unit_dims, acts,
                                                                   strict=True)]
    per_unit = [_unit_activity(t, d, act) for t, d, act in zip(outputs, unit_dims, acts,
                                                               strict=True)]
    ends = [e - 1 for e in accumulate(len(p) for p in per_unit)]
    running = (torch.cat(per_unit) <= 0).cumsum(0)[ends].tolist()
    return [b - a for a, b in zip([0, *running[:-1]], running, strict=True)]


def member_dead_counts(outputs: list[torch.Tensor], unit_dims: list[int], acts: list[str]
                       ) -> torch.Tensor:
    """``dead_units(...).sum()`` of every member and layer, shape (layers, K), from stacked
    outputs (K, B, ...) (``unit_dims`` as in one member's output)."""
    return torch.stack([(_unit_activity(t, d, act, members=True) <= 0).sum(1)
                        for t, d, act in zip(outputs, unit_dims, acts, strict=True)])


def dead_fraction(t: torch.Tensor, unit_dim: int, act: str) -> torch.Tensor:
    """Fraction of dead units (``dead_units``) as a 0-d tensor (no host sync)."""
    return dead_units(t, unit_dim, act).float().mean()


def activation_stats(t: torch.Tensor, unit_dim: int, act: str) -> dict[str, float]:
    """mean/std over all elements, dead fraction over units, saturated fraction over elements."""
    t = t.detach().float()
    if act in ("tanh", "softsign"):
        saturated = (t.abs() > SATURATION).float().mean().item()
    elif act == "sigmoid":
        saturated = ((t < 1 - SATURATION) | (t > SATURATION)).float().mean().item()
    else:  # unbounded: never saturates
        saturated = 0.0
    return {
        "mean": t.mean().item(),
        "std": t.std(correction=0).item(),
        "dead_frac": dead_fraction(t, unit_dim, act).item(),
        "saturated_frac": saturated,
    }


@dataclass
class LayerRecord:
    name: str
    module: nn.Module
    preact: dict[str, float]
    output: torch.Tensor | None = None  # kept for dL/d(pre-activation)
    act_name: str = "none"
    act_module: nn.Module | None = None
    act: dict[str, float] | None = None
    act_values: torch.Tensor | None = None
    calls: int = 1


@dataclass
class ForwardRecorder:
    """Forward hooks that pair each weight layer with the activation that consumes it.

    Only the first call of a module is recorded (``calls`` counts the rest), so a module
    applied several times (weight sharing, recurrence) gives one row.
    """

    keep_outputs: bool = False  # for gradients: hook outputs are replaced by a clone
    keep_act_values: int = 0  # keep up to this many activation values (histograms)
    # record no statistics, only the (detached) output under "output": for callers that
    # reduce the outputs of all layers themselves (``dead_unit_counts``)
    outputs_only: bool = False
    records: list[LayerRecord] = field(default_factory=list)
    _seen: dict[int, LayerRecord] = field(default_factory=dict)
    _last: LayerRecord | None = None

    def _on_weight(self, name: str, module: nn.Module, _inp: Any, out: torch.Tensor) -> Any:
        if id(module) in self._seen:
            self._seen[id(module)].calls += 1
            self._last = None
            return None
        rec = LayerRecord(name, module, self._stats(out, _unit_dim(module), "none"))
        if self.keep_act_values:
            rec.act_values = self._sample(out)
        self.records.append(rec)
        self._seen[id(module)] = rec
        self._last = rec
        if self.keep_outputs and out.requires_grad:
            rec.output = out
            # The model continues on a copy, so an in-place activation (ReLU(inplace=True))
            # cannot overwrite the tensor we differentiate with respect to.
            return out.clone()
        return None

    def _on_act(self, module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        rec = self._last
        if rec is None or rec.act is not None:
            return
        rec.act_name = activation_name(module) or "none"
        rec.act_module = module
        rec.act = self._stats(out, _unit_dim(rec.module), rec.act_name)
        if self.keep_act_values:
            rec.act_values = self._sample(out)

    def _stats(self, t: torch.Tensor, unit_dim: int, act: str) -> dict[str, Any]:
        if self.outputs_only:
            return {"output": t.detach()}
        return activation_stats(t, unit_dim, act)

    def _sample(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().flatten()[: self.keep_act_values].float().cpu()

    @contextmanager
    def attach(
        self, model: nn.Module, targets: list[tuple[str, nn.Module, bool]] | None = None
    ) -> Iterator[ForwardRecorder]:
        """Hook ``model`` for one forward pass; ``targets``: ``hook_targets(model)``, when
        the caller keeps it across passes."""
        handles = []
        for name, m, is_weight in targets if targets is not None else hook_targets(model):
            if is_weight:
                handles.append(m.register_forward_hook(_bind(self._on_weight, name)))
            else:
                handles.append(m.register_forward_hook(self._on_act))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
            self._last = None


def hook_targets(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, is weight layer) of the modules ``ForwardRecorder`` hooks: the weight
    layers and the (non-linear) activations."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, WEIGHT_LAYERS):
            out.append((name or "<root>", m, True))
        elif activation_name(m) not in (None, "linear"):
            out.append((name, m, False))
    return out


def _bind(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    return lambda module, inp, out: fn(name, module, inp, out)


@contextmanager
def preserved_state(model: nn.Module, train: bool = True) -> Iterator[None]:
    """Run with every module in train (or eval) mode; restore modes, buffers and RNG after.

    Train mode is used by default so that BatchNorm normalizes with batch statistics as it
    does in training (eval mode at init would use running stats 0/1); the running stats it
    updates, and the RNG draws of dropout, are undone on exit.
    """
    modules = list(model.modules())
    modes = [m.training for m in modules]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    set_training(modules, train)
    try:
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        restore_training(modules, modes)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _first_output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def _loss(
    out: torch.Tensor,
    targets: torch.Tensor | None,
    loss_fn: Callable[..., torch.Tensor] | None,
    seed: int,
) -> tuple[torch.Tensor, str]:
    if loss_fn is not None:
        return loss_fn(out, targets), "custom"
    if targets is None:
        # dL/d(out) = g ~ N(0, 1), fixed: gradient statistics are defined without labels.
        gen = torch.Generator().manual_seed(seed)
        g = torch.randn(out.shape, generator=gen).to(out.device, out.dtype)
        return (out * g).sum(), "synthetic"
    targets = targets.to(out.device)
    if not targets.is_floating_point():
        return F.cross_entropy(out, targets), "cross_entropy"
    if targets.shape != out.shape and targets.numel() == out.numel():
        targets = targets.reshape(out.shape)
    return F.mse_loss(out, targets.to(out.dtype)), "mse"


def _norm(t: torch.Tensor | None) -> float:
    return float("nan") if t is None else torch.linalg.vector_norm(t.detach().float()).item()


def probe(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    jacobian: bool = False,
    jacobian_examples: int = 8,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-layer forward/backward statistics of ``model`` on one batch, one row per layer.

    Loss: ``loss_fn(outputs, targets)`` if given; else cross-entropy for integer
    ``targets``, MSE for float ``targets``; with ``targets=None`` the synthetic loss
    ``(out * g).sum()``, ``g ~ N(0, 1)`` drawn from ``torch.Generator().manual_seed(seed)``,
    whose gradient w.r.t. the output is standard normal.  Gradients come from
    ``torch.autograd.grad``, so no ``.grad`` field is touched.

    ``jacobian=True`` adds ``df.attrs["jacobian"]`` (see :func:`input_output_jacobian`).
    ``df.attrs`` also holds ``loss`` (which loss) and ``loss_value``.
    """
    device = next((p.device for p in model.parameters()), inputs.device)
    inputs = inputs.to(device)
    recorder = ForwardRecorder(keep_outputs=True)
    with preserved_state(model), torch.enable_grad():
        with recorder.attach(model):
            out = _first_output(model(inputs))
        loss, loss_name = _loss(out, targets, loss_fn, seed)
        recs = recorder.records
        wrt = [r.output for r in recs if r.output is not None]
        weights = [r.module.weight for r in recs if r.module.weight.requires_grad]
        grads = iter(torch.autograd.grad(loss, wrt + weights, allow_unused=True))
        out_grads = {id(r): next(grads) for r in recs if r.output is not None}
        w_grads = {id(r): next(grads) for r in recs if r.module.weight.requires_grad}
        jac = input_output_jacobian(model, inputs, jacobian_examples) if jacobian else None

    rows = []
    for i, r in enumerate(recs):
        act = r.act or r.preact
        g = out_grads.get(id(r))
        w_norm, wg_norm = _norm(r.module.weight), _norm(w_grads.get(id(r)))
        fan_in, fan_out = fans(r.module.weight)
        rows.append(
            {
                "layer": r.name,
                "index": i,
                "type": type(r.module).__name__,
                "activation": r.act_name,
                "fan_in": fan_in,
                "fan_out": fan_out,
                "calls": r.calls,
                "preact_mean": r.preact["mean"],
                "preact_std": r.preact["std"],
                "act_mean": act["mean"],
                "act_std": act["std"],
                "grad_std": float("nan") if g is None else g.float().std(correction=0).item(),
                "weight_norm": w_norm,
                "weight_grad_norm": wg_norm,
                "grad_weight_ratio": wg_norm / w_norm if w_norm > 0 else float("nan"),
                "dead_frac": act["dead_frac"],
                "saturated_frac": act["saturated_frac"],
            }
        )
    df = pd.DataFrame(rows)
    df.attrs.update(loss=loss_name, loss_value=float(loss.detach()), batch_size=len(inputs))
    if jac is not None:
        df.attrs["jacobian"] = jac
    return df


def input_output_jacobian(
    model: nn.Module, inputs: torch.Tensor, examples: int = 8
) -> dict[str, float]:
    """Singular values of the per-example input-output Jacobian ``d out_i / d x_i``.

    The whole batch goes through the model (BatchNorm sees batch statistics) but only the
    first ``examples`` inputs are differentiated, and only the diagonal block (example i's
    output w.r.t. example i's flattened input) is kept.  One reverse pass per output
    coordinate, batched: meant for small networks.  Returns the mean squared singular value
    (``tr(J J^T) / min(dims)``, averaged over examples), the largest and the smallest.
    Call inside :func:`preserved_state` (``probe`` does) to keep buffers and RNG intact.
    """
    k = min(examples, len(inputs))
    x_sub = inputs[:k].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = _first_output(model(torch.cat([x_sub, inputs[k:].detach()])))
        out_k = out[:k].reshape(k, -1)
        n_out = out_k.shape[1]
        svals = []
        for i in range(k):
            grad_out = torch.zeros(n_out, k, n_out, dtype=out_k.dtype, device=out_k.device)
            grad_out[:, i, :] = torch.eye(n_out, dtype=out_k.dtype, device=out_k.device)
            try:
                (jac,) = torch.autograd.grad(
                    out_k, x_sub, grad_out, retain_graph=True, is_grads_batched=True
                )
            except RuntimeError:  # an op without a batching rule: one pass per output
                jac = torch.stack(
                    [torch.autograd.grad(out_k, x_sub, go, retain_graph=True)[0] for go in grad_out]
                )
            svals.append(torch.linalg.svdvals(jac[:, i].reshape(n_out, -1).double()))
    s = torch.stack(svals)
    return {
        "mean_sq_singular_value": s.square().mean().item(),
        "max_singular_value": s.max().item(),
        "min_singular_value": s.min().item(),
    }


def summarize_probe(df: pd.DataFrame) -> dict[str, float]:
    """Scalar summary of a probe table (columns of results.csv).

    * ``init_act_std_last``: ``act_std`` of the last hidden layer (the row before the output
      layer; the only row for a one-layer model);
    * ``init_grad_std_ratio``: ``grad_std`` of the first layer / of the output layer (the
      last row), i.e. the gradient gain through the whole network;
    * ``init_dead_frac_max``, ``init_saturated_frac_max``: maxima over all rows;
    * ``measured_chi1``: geometric mean over consecutive hidden layers l, l+1 of
      ``grad_std(l)**2 / grad_std(l+1)**2`` (the per-layer backward growth of the gradient
      variance, mean-field chi_1).  Hidden layers are all rows but the last; the output
      layer is excluded because its gradient comes from the loss and its fan-out differs.
      NaN with fewer than two hidden layers.
    """
    if df.empty:
        return {}
    hidden = df.iloc[:-1] if len(df) > 1 else df
    g = hidden["grad_std"].to_numpy(dtype=float)
    chi1 = float("nan")
    if len(df) > 2 and (g > 0).all():
        chi1 = math.exp(2 * (math.log(g[0]) - math.log(g[-1])) / (len(g) - 1))
    first, last = float(df["grad_std"].iloc[0]), float(df["grad_std"].iloc[-1])
    return {
        "init_act_std_last": float(hidden["act_std"].iloc[-1]),
        "init_grad_std_ratio": first / last if last > 0 else float("nan"),
        "init_dead_frac_max": float(df["dead_frac"].max()),
        "init_saturated_frac_max": float(df["saturated_frac"].max()),
        "measured_chi1": chi1,
    }
