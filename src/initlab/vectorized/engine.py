"""K models of one architecture trained at once: stacked weights + ``torch.func.vmap``.

Every parameter and buffer is stacked along a new leading member axis (K, ...). The
forward pass of all members is ``vmap(functional_call(base, ...))``; the loss that is
back-propagated is the SUM over members of each member's mean loss, so each member's
slice of a stacked gradient is exactly that member's own gradient. One ``torch.optim``
optimizer over the stacked tensors then equals K separate optimizers for element-wise
optimizers (SGD, Adam, ...: ``checks.ELEMENTWISE_OPTIMIZERS``); members with different
learning rates take ``optim.MemberLrOptimizer`` (SGD, Adam, AdamW with an lr per member),
and an ``lr_scheduler`` runs per member (``optim.MemberSchedules``).

Per-member semantics follow the ordinary Lightning pipeline (``initlab.module`` +
``initlab.callbacks``): each member walks its own seed's batch order, gradient clipping
is per member, a member whose training loss is NaN/inf (or above ``max_loss``) is
frozen (its parameters and buffers stop changing; the others go on), and the logged
numbers are Lightning's:
``train/loss_epoch`` is the batch-size-weighted mean of the step losses, accuracies are
micro accuracies over the epoch, val/test losses batch-size-weighted means.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from initlab.history import HISTORY_KEYS, is_divergent
from initlab.metrics import predicted_class
from initlab.vectorized.mlp_grads import StackedMLP, member_cross_entropy, member_mse

# Evaluation works on K x chunk examples at once; chunks are cut so that K * chunk stays
# below this (an eval batch is split, which only changes float summation order).
EVAL_EXAMPLES = 65_536
# An epoch's batches of all members are gathered at once up to this size (K copies of
# the training set: MNIST at K = 64 would be 10 GB); beyond it, one step's at a time.
EPOCH_GATHER_BYTES = 256 * 2**20


def log_interval(log_every_n_steps: int | None) -> int:
    """``trainer.log_every_n_steps`` as Lightning's Trainer reads it: null is its default
    of 50, 0 logs no ``train/loss``."""
    return 50 if log_every_n_steps is None else int(log_every_n_steps)


def _plain_mlp(model: nn.Module) -> bool:
    """An ``initlab`` MLP without normalization layers and with parameter-free
    activations: its stacked forward is a chain of batched matrix products."""
    from initlab.models.mlp import MLP

    if not isinstance(model, MLP):
        return False
    for block in model.blocks:
        if {name for name, _ in block.named_children()} != {"linear", "act"}:
            return False
        if any(True for _ in block.act.parameters()) or any(True for _ in block.act.buffers()):
            return False
    return True


class StackedModel:
    """K copies of one architecture as stacked tensors; called like the model, with a
    leading member axis on the output: ``(K, B, ...)``.

    The forward pass is ``vmap`` over ``functional_call`` (any architecture whose
    forward is a function of its parameters, buffers and input); a plain MLP (no norm
    layers) takes a direct chain of batched matrix products instead (``fast``), the same
    arithmetic with less overhead per step, and when its activations' derivatives are
    written out (``mlp_grads``), its training steps skip autograd too (``manual``)."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device | str = "cpu") -> None:
        if not models:
            raise ValueError("StackedModel needs at least one model")
        params, buffers = stack_module_state(list(models))
        self.base = copy.deepcopy(models[0]).to("meta")
        self.k = len(models)
        self.fast = _plain_mlp(self.base)
        self._mlp = StackedMLP.for_mlp(self.base) if self.fast else None
        self.manual = self._mlp is not None and self._mlp.manual
        self.params = {name: v.detach().contiguous().to(device).requires_grad_(True)
                       for name, v in params.items()}
        self.buffers = {k: v.detach().to(device) for k, v in buffers.items()}

    def _one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x: Tensor, shared: bool = False) -> Tensor:
        """``x``: (K, B, ...) one batch per member, or (B, ...) for all when ``shared``."""
        if self._mlp is not None:
            return self._mlp.forward(self.params, x, shared)
        return vmap(self._one, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, x)

    def infer(self, x: Tensor, shared: bool = False) -> Tensor:
        """``self(x, shared)`` without gradients; for ``fast`` models the result is valid
        until the next ``infer`` or training step (``StackedMLP``)."""
        if self._mlp is not None:
            return self._mlp.infer(self.params, x, shared)
        with torch.no_grad():
            return self(x, shared)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def state(self) -> dict[str, Tensor]:
        """Every stacked tensor (parameters, then buffers) by name."""
        return {**self.params, **self.buffers}

    def member_state_dict(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s weights as an ordinary ``state_dict`` of the architecture."""
        return {name: t[k].detach().clone() for name, t in self.state().items()}

    def forward_backward(self, x: Tensor, y: Tensor, task: str, skip: Tensor | None = None
                         ) -> tuple[Tensor, Tensor] | None:
        """A training step's forward and backward without autograd (``manual`` models):
        sets each parameter's ``.grad`` to the gradient of the sum of the members' mean
        losses (zero for the members in ``skip``); returns (output, member losses), or
        None when the loss is not written out (the caller then uses autograd). The
        output is valid until the next call (``StackedMLP``)."""
        assert self._mlp is not None and self.manual, "forward_backward needs a manual model"
        return self._mlp(self.params, x, y, task, skip)


def stacked_optimizer(factory: Callable[..., torch.optim.Optimizer], params: list[Tensor]
                      ) -> torch.optim.Optimizer:
    """``factory(params)``, with torch's fused kernel where the optimizer has one (SGD,
    Adam, AdamW, Adagrad) and the config chose no implementation (``fused``/``foreach``):
    one kernel for all stacked tensors instead of a few small ops per tensor and step
    (about 60 us of a K = 16 step of the default MLP on a 2-core CPU). The update is the
    same up to float rounding."""
    chosen = getattr(factory, "keywords", {}) or {}
    if "fused" in chosen or "foreach" in chosen:
        return factory(params)
    try:
        return factory(params, fused=True)
    except (TypeError, RuntimeError, ValueError):  # no fused kernel here (class, device, dtype)
        return factory(params)


def member_losses(task: str, out: Tensor, y: Tensor, shared: bool = False) -> Tensor:
    """Each member's mean loss, shape (K,): ``out`` is (K, B, ...), ``y`` is (K, B, ...),
    or (B, ...) for all members when ``shared``. Equal to ``InitStudyModule.loss(out[k],
    y[k])`` for every k, in one call (``vmap`` of ``F.cross_entropy`` runs a slow Python
    decomposition)."""
    k, b = out.shape[:2]
    if shared:
        y = y.expand(k, *y.shape)
    if task == "classification":
        if out.dim() == 3:  # (K, B, classes)
            return member_cross_entropy(out, y)[0]
        per_example = F.cross_entropy(out.flatten(0, 1), y.flatten(0, 1), reduction="none")
        return per_example.view(k, b).mean(1)
    if y.shape == out.shape:
        return member_mse(out, y)[0]
    return vmap(F.mse_loss)(out, y)  # broadcasting shapes: exactly F.mse_loss's semantics


def member_batches(x: Tensor, y: Tensor, batchers: Sequence[Any], epoch: int
                   ) -> Iterator[tuple[Tensor, Tensor]]:
    """Per-member batches (K, B, ...) of ``epoch``: member k's batch i is batch i of
    ``batchers[k]`` (``TensorBatcher(x, y, seed=member seed, shuffle=True)``)."""
    n_batches = len(batchers[0])
    if all(getattr(b, "transform", None) is None for b in batchers):
        order = torch.stack([b.order(epoch) for b in batchers])  # (K, N)
        bs = batchers[0].batch_size

        def gather(idx: Tensor) -> tuple[Tensor, Tensor]:
            """The rows ``idx`` (K, m) of x and y as (K, m, ...); index_select takes a
            third of x[idx]'s time."""
            flat = idx.reshape(-1)
            return (x.index_select(0, flat).view(*idx.shape, *x.shape[1:]),
                    y.index_select(0, flat).view(*idx.shape, *y.shape[1:]))

        row_bytes = x[0].numel() * x.element_size() + y[0].numel() * y.element_size()
        if order.numel() * row_bytes > EPOCH_GATHER_BYTES:  # one step's batches at a time
            for i in range(n_batches):
                yield gather(order[:, i * bs : (i + 1) * bs])
            return
        xs, ys = gather(order)  # the whole epoch at once; each step's batch is a view
        for i in range(n_batches):
            yield xs[:, i * bs : (i + 1) * bs], ys[:, i * bs : (i + 1) * bs]
        return
    # a random batch transform (augmentation): iterate each member's own batcher so that
    # its augmentation generator runs exactly as in an ordinary run
    for b in batchers:
        b.set_epoch(epoch)
    for pairs in zip(*batchers, strict=True):
        yield torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


@dataclass
class MemberLog:
    """What one member produced: history rows, divergence, test metrics."""

    history: list[dict[str, Any]] = field(default_factory=list)
    diverged: tuple[int, int, float] | None = None  # (step, epoch, loss value)
    test: dict[str, float] = field(default_factory=dict)


class VectorizedTrainer:
    """The training loop of K stacked members (see the module docstring).

    ``loggers[k]`` is member k's Lightning logger (or None); it receives the same tags at
    the same steps as an ordinary run: ``train/loss`` every ``log_every_n_steps`` steps,
    ``train/loss_epoch``, ``train/acc``, ``val/loss``, ``val/acc`` at each epoch end,
    ``test/*`` after training, and ``epoch``; with ``diagnostics``, the ``diag/*`` tags of
    the training-time diagnostics.
    """

    def __init__(
        self,
        model: StackedModel,
        optimizer: torch.optim.Optimizer,
        task: str = "classification",
        loggers: Sequence[Any] | None = None,
        log_every_n_steps: int = 50,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        max_loss: float | None = None,
        diagnostics: Any = None,
        schedules: Any = None,
    ) -> None:
        self.model = model
        self.schedules = schedules  # an optim.MemberSchedules, stepped as Lightning steps it
        self.diagnostics = diagnostics  # a vectorized.diagnostics.MemberDiagnostics
        self.optimizer = optimizer
        self.task = task
        self.classification = task == "classification"
        self.loggers = list(loggers) if loggers is not None else [None] * model.k
        self._any_logger = any(lg is not None for lg in self.loggers)
        self.log_every_n_steps = log_interval(log_every_n_steps)
        self.clip_val = gradient_clip_val
        self.clip_algorithm = gradient_clip_algorithm or "norm"
        self.max_loss = max_loss
        self.logs = [MemberLog() for _ in range(model.k)]
        self.global_step = 0
        self.epochs_done = 0
        self.fit_time_s = 0.0
        device = next(iter(model.params.values())).device
        self.frozen = torch.zeros(model.k, dtype=torch.bool, device=device)
        self._snapshot: dict[str, Tensor] = {}
        self._frozen_idx = torch.zeros(0, dtype=torch.long, device=device)
        self._any_frozen = False
        self._manual = model.manual

    def member_lrs(self) -> list[float]:
        """Each member's current learning rate (one shared lr, or ``MemberLrOptimizer``'s
        list)."""
        lr = self.optimizer.param_groups[0]["lr"]
        return [float(v) for v in lr] if isinstance(lr, list) else [float(lr)] * self.model.k

    # ------------------------------------------------------------------ divergence
    def _freeze(self, mask: Tensor) -> None:
        """Keep the current values of the members in ``mask`` from now on."""
        for name, t in self.model.state().items():
            if name not in self._snapshot:
                self._snapshot[name] = t.detach().clone()
            else:
                self._snapshot[name][mask] = t.detach()[mask]
        self.frozen |= mask
        self._frozen_idx = self.frozen.nonzero().squeeze(1)  # read on every later step
        self._any_frozen = True

    def _restore_frozen(self) -> None:
        idx = self._frozen_idx
        with torch.no_grad():
            for name, t in self.model.state().items():
                t[idx] = self._snapshot[name][idx]

    # ------------------------------------------------------------------ gradients
    def _clip_gradients(self) -> None:
        if not self.clip_val:
            return
        grads = [p.grad for p in self.model.params.values() if p.grad is not None]
        if not grads:
            return
        if self.clip_algorithm == "value":
            for g in grads:
                g.clamp_(-self.clip_val, self.clip_val)
            return
        # torch.nn.utils.clip_grad_norm_ per member: the 2-norm over all of its gradients
        sq = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)
        coef = (self.clip_val / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))

    # ------------------------------------------------------------------ logging
    def _log(self, k: int, metrics: dict[str, float], step: int) -> None:
        logger = self.loggers[k]
        if logger is not None:
            logger.log_metrics(metrics, step=step)

    # ------------------------------------------------------------------ loops
    def evaluate(self, x: Tensor, y: Tensor, batch_size: int) -> tuple[Tensor, Tensor | None]:
        """Per-member (loss, accuracy) on a shared split, in eval mode."""
        k = self.model.k
        chunk = max(1, min(batch_size, EVAL_EXAMPLES // k))
        self.model.train(False)
        loss_sum = torch.zeros(k, device=x.device, dtype=torch.float64)
        correct = torch.zeros(k, device=x.device, dtype=torch.float64)
        with torch.no_grad():
            # sum over chunks of (chunk mean x chunk size) = Lightning's batch-size-weighted
            # mean over eval batches, whatever the chunking
            for i in range(0, len(x), chunk):
                xb, yb = x[i : i + chunk], y[i : i + chunk]
                out = self.model.infer(xb, shared=True)
                loss_sum += member_losses(self.task, out, yb, shared=True) * len(xb)
                if self.classification:
                    correct += (predicted_class(out) == yb).sum(-1)
        n = max(len(x), 1)
        return loss_sum / n, (correct / n if self.classification else None)

    def fit(
        self,
        train: tuple[Tensor, Tensor],
        batchers: Sequence[Any],
        val: tuple[Tensor, Tensor],
        eval_batch_size: int,
        max_epochs: int,
        on_epoch: Callable[[int, VectorizedTrainer], None] | None = None,
    ) -> None:
        """Train all members for ``max_epochs`` (or until every member diverged)."""
        x, y = train
        k = self.model.k
        diag = self.diagnostics
        # each member's first training batch: dead fractions without a validation split,
        # and after training
        first: Tensor | None = None
        t0 = time.perf_counter()
        for epoch in range(max_epochs):
            if bool(self.frozen.all()):
                break
            self.model.train(True)
            # the epoch's step losses and predictions, reduced once at its end (a few tiny
            # ops a step add up at this model size)
            # history.csv's lr: the lr each member's epoch started with (HistoryRecorder)
            epoch_lrs = self.member_lrs()
            step_losses: list[list[float]] = []  # the host copies the checks read
            sizes: list[int] = []
            preds: list[Tensor] = []
            targets: list[Tensor] = []
            for batch_idx, (xb, yb) in enumerate(member_batches(x, y, batchers, epoch)):
                out, values = self._forward_backward(xb, yb)
                vals = values.tolist()  # one host copy; the checks below are plain Python
                self._check_divergence(vals, epoch)
                if diag is not None:  # as on_before_optimizer_step: before clipping
                    diag.before_step(self.global_step, self.frozen)
                    if first is None and diag.wants_fixed_batch:
                        first = xb[:, : diag.s.fixed_batch_size].clone()
                self._clip_gradients()
                self.optimizer.step()
                if self._any_frozen:
                    self._restore_frozen()
                if diag is not None:
                    diag.after_step(self.frozen)
                if self.schedules is not None:  # Lightning: after the optimizer step
                    self.schedules.step("step", batch_idx)
                step_losses.append(vals)
                sizes.append(xb.shape[1])
                if self.classification:
                    preds.append(predicted_class(out))
                    targets.append(yb)
                every = self.log_every_n_steps
                # Lightning's rule: step i (from 0) logs when (i + 1) % every == 0
                if self._any_logger and every > 0 and (self.global_step + 1) % every == 0:
                    self._log_step(vals, epoch)
                self.global_step += 1
            if self.schedules is not None:  # Lightning: after the epoch's last batch
                self.schedules.step("epoch", epoch)
            # batch-size-weighted means, as the module's torchmetrics MeanMetric (in float64
            # here: they agree within float32 rounding)
            seen = max(sum(sizes), 1)
            train_loss = [math.fsum(row[j] * n for row, n in zip(step_losses, sizes,
                                                                 strict=True)) / seen
                          for j in range(k)]
            train_acc = None
            if self.classification:
                correct = ((torch.cat(preds, dim=1) == torch.cat(targets, dim=1)).sum(-1)
                           if preds else torch.zeros(k, device=x.device))
                train_acc = (correct.double() / seen).tolist()
            # no validation split: no val metrics (as Lightning, which skips an empty pass)
            val_loss, val_acc = (self.evaluate(*val, eval_batch_size) if len(val[0])
                                 else (None, None))
            if diag is not None:  # on the first validation batch, as the ordinary callback
                shared = bool(len(val[0])) or first is None
                diag.end_epoch(val[0][:eval_batch_size] if shared else first, shared,
                               self.global_step, self.frozen)
            self._end_epoch(epoch, train_loss, train_acc,
                            val_loss.tolist() if val_loss is not None else None,
                            val_acc.tolist() if val_acc is not None else None,
                            time.perf_counter() - t0, epoch_lrs)
            self.epochs_done = epoch + 1
            if on_epoch is not None:
                on_epoch(epoch, self)
        if diag is not None:
            diag.end_fit(first, self.frozen)
        self.fit_time_s = time.perf_counter() - t0

    def _forward_backward(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """Every member's gradient of its own mean loss on its batch (frozen members: none);
        returns (output, member losses), both without a graph."""
        skip = self.frozen if self._any_frozen else None
        if self._manual:
            done = self.model.forward_backward(xb, yb, self.task, skip)
            if done is not None:
                return done
            self._manual = False  # a loss not written out: autograd from now on
        out = self.model(xb)
        losses = member_losses(self.task, out, yb)
        # the sum's gradient is 1 for every member's loss, so members' gradients stay
        # apart even when one loss is NaN; frozen members get none
        total = (losses if skip is None else torch.where(skip, torch.zeros_like(losses),
                                                         losses)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        return out.detach(), losses.detach()

    def _check_divergence(self, losses: list[float], epoch: int) -> None:
        """Freeze the members whose loss this step is NaN, inf or above ``max_loss``,
        before the optimizer step (they keep their last weights), and record when."""
        bad = [j for j, v in enumerate(losses) if is_divergent(v, self.max_loss)]
        if not bad:
            return
        frozen = self.frozen.tolist()
        new = [j for j in bad if not frozen[j]]
        for j in new:
            # as DivergenceGuard: the index of the optimizer step that failed, the epoch
            # numbered from 1
            self.logs[j].diverged = (self.global_step, epoch + 1, losses[j])
        if new:
            mask = torch.zeros_like(self.frozen)
            mask[new] = True
            self._freeze(mask)

    def _log_step(self, vals: list[float], epoch: int) -> None:
        frozen = self.frozen.tolist()
        for j in range(self.model.k):
            if not frozen[j] and math.isfinite(vals[j]):
                self._log(j, {"train/loss": vals[j], "epoch": epoch}, self.global_step)

    def _end_epoch(
        self,
        epoch: int,
        train_loss: list[float],
        train_acc: list[float] | None,
        val_loss: list[float] | None,
        val_acc: list[float] | None,
        elapsed: float,
        lrs: list[float],
    ) -> None:
        frozen = self.frozen.tolist()
        for j in range(self.model.k):
            if frozen[j]:
                continue  # a diverged run records no epoch it did not finish
            tags = {"train/loss_epoch": train_loss[j]}
            if val_loss is not None:
                tags["val/loss"] = val_loss[j]
            if train_acc is not None:
                tags["train/acc"] = train_acc[j]
            if val_acc is not None:
                tags["val/acc"] = val_acc[j]
            # history.csv's columns as HistoryRecorder writes them from the same tags
            row: dict[str, Any] = {"epoch": epoch + 1, "step": self.global_step}
            row.update({col: tags[key] for col, key in HISTORY_KEYS.items()
                        if key in tags})
            row["lr"] = lrs[j]
            row["time_s"] = round(elapsed, 4)
            self.logs[j].history.append(row)
            # as Lightning logs the module's epoch means: val and train both at the index
            # of the epoch's last step
            for split, step in (("val", self.global_step - 1), ("train", self.global_step - 1)):
                metrics = {k: v for k, v in tags.items() if k.startswith(f"{split}/")}
                if metrics:  # no validation split: no val log at all, as the module
                    self._log(j, {**metrics, "epoch": epoch}, max(step, 0))

    def test(self, x: Tensor, y: Tensor, batch_size: int) -> None:
        """Test every member that did not diverge (as ``trainer.test`` after fit)."""
        loss, acc = self.evaluate(x, y, batch_size)
        frozen = self.frozen.tolist()
        for j in range(self.model.k):
            if frozen[j]:
                continue
            metrics = {"test/loss": float(loss[j])}
            if acc is not None:
                metrics["test/acc"] = float(acc[j])
            # summary keys as the ordinary pipeline derives them: test/loss -> test_loss
            self.logs[j].test = {k.replace("/", "_"): v for k, v in metrics.items()}
            self._log(j, {**metrics, "epoch": self.epochs_done}, self.global_step)
