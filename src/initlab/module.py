"""The LightningModule: training logic only.

The model, the initializer object and the optimizer factory are injected; the
module applies the initializer once before training and never looks at which
scheme it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]


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
        init_batch_size: int = 256,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        super().__init__()
        # The optimizer steps are ours (a call may hold several minibatches, see
        # TensorBatcher.steps_per_call); Lightning still runs backward, the optimizer step
        # and their hooks, so callbacks see every step.
        self.automatic_optimization = False
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
        self.task = task
        self.classification = task == "classification"
        self.num_outputs = num_outputs
        self._sums: dict[str, Tensor] = {}  # split -> [loss * n, correct, n]
        # the latest epoch means, e.g. {"val/acc": 0.97}: read by callbacks and the pipeline
        self.epoch_metrics: dict[str, float] = {}
        self.init_report: list[dict[str, Any]] = []

    def setup(self, stage: str) -> None:
        # Runs before a checkpoint is restored, so a resumed run keeps its trained weights.
        if stage == "fit" and self.initializer is not None and not self.init_report:
            data = None
            if getattr(self.initializer, "needs_data", False):
                data = self.trainer.datamodule.sample_batch(self.init_batch_size)[0]
                data = data.to(next(self.model.parameters()).device)
            self.apply_initializer(data)

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

    # Epoch metrics are summed on the device and logged once per epoch: ``self.log`` on
    # every step costs more than a whole training step of a small model (Lightning moves
    # its result objects on each call), and this keeps the same batch-size-weighted means.
    def _step(self, batch: tuple[Tensor, Tensor], split: str) -> Tensor:
        x, y = batch
        out = self(x)
        loss = self.loss(out, y)
        sums = self._sums.get(split)
        if sums is None:
            sums = self._sums[split] = torch.zeros(3, device=loss.device, dtype=torch.float64)
        n = y.shape[0]
        sums[0] += loss.detach() * n
        if self.classification:
            sums[1] += (out.detach().argmax(dim=1) == y).sum()
        sums[2] += n
        return loss

    def _log_epoch(self, split: str) -> None:
        """Publish the epoch means in ``epoch_metrics`` and write them to the logger.

        ``self.log`` is avoided here too: it costs about a millisecond per call, which at
        a few calls per epoch of 20 small steps is a tenth of the training time."""
        sums = self._sums.pop(split, None)
        if sums is None:
            return
        if self.trainer.world_size > 1:  # exact global means over the DDP processes
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        total_loss, correct, count = sums.tolist()
        count = max(count, 1.0)
        metrics = {f"{split}/loss{'_epoch' if split == 'train' else ''}": total_loss / count}
        if self.classification:
            metrics[f"{split}/acc"] = correct / count
        self.epoch_metrics.update(metrics)
        logger = self.logger
        if logger is not None and not self.trainer.sanity_checking:
            step = self.trainer.global_step - (1 if split == "train" else 0)
            logger.log_metrics({**metrics, "epoch": self.current_epoch}, max(step, 0))

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """One optimizer step per ``(x, y)`` minibatch of the call (a list of them, or one).
        Returns the step losses for the divergence check."""
        steps = batch if isinstance(batch, list) else [batch]
        opt = self.optimizers()
        logger, every = self.logger, self.trainer.log_every_n_steps
        losses = []
        for minibatch in steps:
            loss = self._step(minibatch, "train")
            opt.zero_grad()
            self.manual_backward(loss)
            if self.gradient_clip_val:
                self.clip_gradients(opt, gradient_clip_val=self.gradient_clip_val,
                                    gradient_clip_algorithm=self.gradient_clip_algorithm)
            step = self.trainer.global_step
            opt.step()
            if logger is not None and every and step % every == 0:
                logger.log_metrics({"train/loss": float(loss.detach())}, step)
            losses.append(loss.detach())
        return {"losses": torch.stack(losses)}

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.model.parameters())
