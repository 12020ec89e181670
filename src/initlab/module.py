"""The LightningModule: training logic only.

The model, the initializer object and the optimizer factory are injected; the
module applies the initializer once before training and never looks at which
scheme it is.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initlab.direct_steps import STEP_HOOKS, VAL_HOOKS, direct_steps_supported, step_hooks
from initlab.metrics import predicted_class
from initlab.modes import restore_training, set_training

OptimizerFactory = Callable[..., torch.optim.Optimizer]
INIT_BATCH_SIZE = 256  # examples a data-dependent init (e.g. LSUV) sees


def init_data(initializer: Callable[..., Any], model: nn.Module, datamodule: Any,
              batch_size: int = INIT_BATCH_SIZE, seed: int | None = None) -> Tensor | None:
    """The inputs a data-dependent ``initializer`` sees before training (None for the
    others): ``batch_size`` examples of ``datamodule.sample_batch``, drawn with ``seed``
    (by default the data module's own), on the model's device."""
    if not getattr(initializer, "needs_data", False):
        return None
    # the seed keyword only where one is asked for: other data modules may not take it
    drawn = (datamodule.sample_batch(batch_size) if seed is None
             else datamodule.sample_batch(batch_size, seed=seed))
    return drawn[0].to(next(model.parameters()).device)


class InitStudyModule(pl.LightningModule):
    """Classification (cross-entropy + accuracy) or regression (MSE) on ``model``."""

    def __init__(
        self,
        model: nn.Module,
        initializer: Callable[..., Any] | None,
        optimizer: OptimizerFactory,
        task: str = "classification",
        num_outputs: int = 10,
        activation: nn.Module | None = None,
        seed: int = 0,
        init_batch_size: int = INIT_BATCH_SIZE,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
        direct_steps: bool = True,
        lean_validation: bool = False,
        param_groups: Callable[[nn.Module], list[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__()
        # The optimizer steps are ours (a call may hold several minibatches, see
        # TensorBatcher.steps_per_call). With ``direct_steps`` (single device, plain
        # precision) backward and the step are called directly and the per-step hooks only
        # on the callbacks that override them; otherwise through Lightning's wrappers.
        # Either way every callback sees every step. ``lean_validation``: the module
        # validates at each epoch end itself (the Trainer's validation loop is then off).
        self.automatic_optimization = False
        self.direct_steps = direct_steps
        self.lean_validation = lean_validation
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.initializer = initializer
        self.activation = activation
        self.seed = seed
        self.init_batch_size = init_batch_size
        if task not in ("classification", "regression"):
            raise ValueError(f"task={task!r}; allowed: classification, regression")
        self.model = model
        self.optimizer_factory = optimizer
        # per-layer lr groups (initlab.parametrization), else one group of all parameters
        self.param_groups = param_groups
        self.task = task
        self.classification = task == "classification"
        self.num_outputs = num_outputs
        # split -> [sum of loss * batch size, correct predictions, examples] of the epoch
        self._tally: dict[str, list[float]] = {}
        # the latest epoch means, e.g. {"val/acc": 0.97}: read by callbacks and the pipeline
        self.epoch_metrics: dict[str, float] = {}
        self.validated_epoch = -1  # the epoch the val/* entries of epoch_metrics are from
        self.init_report: list[dict[str, Any]] = []

    def setup(self, stage: str) -> None:
        # Runs before a checkpoint is restored, so a resumed run keeps its trained weights.
        if stage == "fit" and self.initializer is not None and not self.init_report:
            self.apply_initializer(init_data(self.initializer, self.model,
                                             self.trainer.datamodule, self.init_batch_size))

    def apply_initializer(self, data: Tensor | None = None) -> list[dict[str, Any]]:
        """Initialize the wrapped model in place once; keeps the initializer's report."""
        report = self.initializer(self.model, activation=self.activation, data=data, seed=self.seed)
        self.init_report = report.to_records() if hasattr(report, "to_records") else [{}]
        return self.init_report

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.classification:
            return F.cross_entropy(out, y)
        return F.mse_loss(out, y)

    # Epoch metrics: each training call (or evaluation batch) copies its step losses and
    # its number of correct predictions to the host once; the epoch means are then plain
    # arithmetic. ``self.log`` on every step costs more than a whole training step of a
    # small model, and even a few tiny tensor ops per step (several us each on a CPU)
    # add up. The means are the same batch-size-weighted ones.
    def _tally_call(self, split: str, losses: Tensor, outs: list[Tensor],
                    ys: list[Tensor]) -> list[float]:
        """Add one call's step losses (one per minibatch) and correct predictions to the
        epoch tally; returns the losses as floats."""
        with torch.no_grad():  # outputs may still hold their (freed) graphs
            values = losses.tolist()
            correct = 0.0
            if self.classification:
                out = outs[0] if len(outs) == 1 else torch.cat(outs)
                y = ys[0] if len(ys) == 1 else torch.cat(ys)
                correct = float((predicted_class(out, dim=1) == y).sum().item())
        tally = self._tally.setdefault(split, [0.0, 0.0, 0.0])
        # per target element: a sequence's answer tokens each count (y.numel())
        tally[0] += math.fsum(v * y.numel() for v, y in zip(values, ys, strict=True))
        tally[1] += correct
        tally[2] += sum(y.numel() for y in ys)
        return values

    def _epoch_sums(self, split: str) -> list[float] | None:
        """[sum of loss * batch size, correct predictions, examples] of the epoch, summed
        over the DDP processes."""
        sums = self._tally.pop(split, None)
        if sums is not None and self.trainer.world_size > 1:  # exact global means
            local = torch.tensor(sums, dtype=torch.float64, device=self.device)
            sums = self.trainer.strategy.reduce(local, reduce_op="sum").tolist()
        return sums

    def _log_epoch(self, split: str) -> None:
        """Publish the epoch means in ``epoch_metrics`` and write them to the logger.

        ``self.log`` is avoided here too: it costs about a millisecond per call, which at
        a few calls per epoch of 20 small steps is a tenth of the training time."""
        sums = self._epoch_sums(split)
        if sums is None:
            return
        total_loss, correct, count = sums
        count = max(count, 1.0)
        metrics = {f"{split}/loss{'_epoch' if split == 'train' else ''}": total_loss / count}
        if self.classification:
            metrics[f"{split}/acc"] = correct / count
        self.epoch_metrics.update(metrics)
        if split == "val":
            self.validated_epoch = self.current_epoch
        logger = self.logger
        if logger is not None and not self.trainer.sanity_checking:
            step = self.trainer.global_step - (1 if split == "train" else 0)
            logger.log_metrics({**metrics, "epoch": self.current_epoch}, max(step, 0))

    # -- training ------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self._direct = self.direct_steps and direct_steps_supported(self)
        self._hooks = self._collect_hooks()
        loop = self.trainer.fit_loop.epoch_loop
        self._step_progress = loop.manual_optimization.optim_step_progress if self._direct else None

    def _collect_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """The overriding implementations of the hooks this module fires itself."""
        self._modules_list = list(self.modules())  # for cheap train/eval switches
        return {name: step_hooks(self.trainer, self, name) for name in STEP_HOOKS + VAL_HOOKS}

    def _direct_backward(self, loss: Tensor) -> None:
        """``manual_backward`` without Lightning's dispatch: the per-step hooks are called
        only on the callbacks (and module) that override them, in Lightning's order."""
        for hook in self._hooks["on_before_backward"]:
            hook(loss)
        loss.backward()
        for hook in self._hooks["on_after_backward"]:
            hook()

    def _direct_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``LightningOptimizer.step`` for a plain single-device run: the hooks, the step
        and the step counter that ``trainer.global_step`` reads."""
        progress = self._step_progress
        progress.increment_ready()
        for hook in self._hooks["on_before_optimizer_step"]:
            hook(optimizer)
        optimizer.step()
        progress.increment_completed()

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any] | None:
        """One optimizer step per ``(x, y)`` minibatch of the call (a list of them, or one).
        Returns the step losses for the divergence check."""
        steps = batch if isinstance(batch, list) else [batch]
        max_steps = self.trainer.max_steps
        if max_steps is not None and max_steps > 0:  # stop inside a call, as Lightning would
            steps = steps[: max(max_steps - self.trainer.global_step, 0)]
            if not steps:
                return None
        opt = self.optimizers()
        direct = getattr(self, "_direct", False)
        if direct:  # same steps, same hooks, without Lightning's per-step wrappers
            opt = opt.optimizer
            backward, step = self._direct_backward, self._direct_step
            if not (self._hooks["on_before_backward"] or self._hooks["on_after_backward"]):
                backward = Tensor.backward
        else:
            backward, step = self.manual_backward, lambda o: o.step()
        clip = self.gradient_clip_val
        # fp16 loss scaling: the gradients are still scaled when this module clips them
        # (Lightning unscales inside opt.step, after the clip in manual optimization), so
        # the threshold is scaled alike: norm and value clipping both commute with it
        scaler = getattr(self.trainer.precision_plugin, "scaler", None) if clip else None
        first_step = self.trainer.global_step
        losses, outs, ys = [], [], []
        # the wrapped model directly, unless a subclass changed forward (one call level less)
        forward = self.model if type(self).forward is InitStudyModule.forward else self
        for x, y in steps:
            out = forward(x)
            loss = self.loss(out, y)
            opt.zero_grad()
            backward(loss)
            if clip and scaler is not None:
                self._clip_scaled(opt, clip, scaler)
            elif clip:
                self.clip_gradients(opt, gradient_clip_val=clip,
                                    gradient_clip_algorithm=self.gradient_clip_algorithm)
            step(opt)
            # kept as they are (no detach op per step) and reduced without a graph below;
            # backward has freed what their graphs saved
            losses.append(loss)
            outs.append(out)
            ys.append(y)
        with torch.no_grad():
            losses_t = torch.stack(losses)
        values = self._tally_call("train", losses_t, outs, ys)
        self._log_step_losses(values, first_step)
        # the divergence check reads the host copy: no further op or sync
        return {"losses": losses_t, "loss_values": values}

    def _clip_scaled(self, opt: Any, clip: float, scaler: Any) -> None:
        """Lightning's norm or value clipping of the still-scaled gradients at ``clip``
        times the loss scale, the scale kept on the device (``get_scale()`` would copy it
        to the host at every step)."""
        scale = getattr(scaler, "_scale", None)
        bound = clip * (scale.reshape(()) if scale is not None else scaler.get_scale())
        optimizer = getattr(opt, "optimizer", opt)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads:
            return
        with torch.no_grad():
            if (self.gradient_clip_algorithm or "norm") == "value":
                for g in grads:
                    torch.clamp(g, -bound, bound, out=g)
                return
            # torch.nn.utils.clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6), <= 1
            total = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads]))
            coef = torch.clamp(bound / (total + 1e-6), max=1.0)
            torch._foreach_mul_(grads, coef.to(grads[0].dtype))

    def _log_step_losses(self, losses: list[float], first_step: int) -> None:
        """``train/loss`` of the call's logging steps."""
        logger, every = self.logger, self.trainer.log_every_n_steps
        if logger is None or not every:
            return
        for i in range((-first_step) % every, len(losses), every):
            logger.log_metrics({"train/loss": losses[i]}, first_step + i)

    # -- evaluation ----------------------------------------------------------------------
    def _eval_step(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        x, y = batch
        out = self(x)
        self._tally_call(split, self.loss(out, y).detach().reshape(1), [out], [y])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Lean validation where Lightning's loop would validate: after the epoch's last
        # training call (or the last one before a stop), before on_train_epoch_end. Not
        # where trainer.max_steps ends an epoch early: Lightning does not validate there
        # (unless that call was the epoch's last one, as a call of steps_per_call steps
        # holding the whole epoch is).
        if not self.lean_validation:
            return
        trainer = self.trainer
        last = batch_idx + 1 >= trainer.num_training_batches or trainer.should_stop
        every = trainer.check_val_every_n_epoch or 1
        if last and (self.current_epoch + 1) % every == 0:
            self.validate_in_place()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def validate_in_place(self) -> None:
        """One pass over the validation split in eval mode without gradients, with the
        callbacks' ``on_validation_epoch_start/end`` hooks around it: what Lightning's
        validation loop does for this module (the same ``val/*`` means), without its
        per-epoch machinery, about a tenth of an epoch of a small model."""
        loader = self.trainer.datamodule.val_dataloader()
        hooks = self._hooks if hasattr(self, "_hooks") else self._collect_hooks()
        for hook in hooks["on_validation_epoch_start"]:
            hook()
        modules = self._modules_list
        was_training = [m.training for m in modules]
        set_training(modules, False)
        # as Lightning's validation loop: inputs in the precision's dtype (bf16-true,
        # 64-true), the forward in its context (autocast for the mixed precisions)
        plugin = self.trainer.precision_plugin
        try:
            with torch.inference_mode(), plugin.val_step_context():
                for batch in loader:
                    self._eval_step(plugin.convert_input(batch), "val")
        finally:
            restore_training(modules, was_training)
        for hook in hooks["on_validation_epoch_end"]:  # ends with this module's: val/* means
            hook()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.param_groups is not None:
            return self.optimizer_factory(self.param_groups(self.model))
        return self.optimizer_factory(self.model.parameters())


# Lightning reads training_step's signature on every training call (inspect.getfullargspec,
# some tens of us right after the call's backward passes); a stored signature is a lookup.
InitStudyModule.training_step.__signature__ = inspect.signature(InitStudyModule.training_step)
