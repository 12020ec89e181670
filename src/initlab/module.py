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
from torchmetrics.classification import MulticlassAccuracy

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
    ) -> None:
        super().__init__()
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
        if self.classification:
            self.train_acc = MulticlassAccuracy(num_classes=num_outputs, average="micro")
            self.val_acc = MulticlassAccuracy(num_classes=num_outputs, average="micro")
            self.test_acc = MulticlassAccuracy(num_classes=num_outputs, average="micro")
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

    def _step(self, batch: tuple[Tensor, Tensor], split: str, metric: Any) -> Tensor:
        x, y = batch
        out = self(x)
        loss = self.loss(out, y)
        on_step = split == "train"
        sync = self.trainer.world_size > 1  # average over DDP processes; free otherwise
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True,
                 sync_dist=sync)
        if metric is not None:
            metric.update(out.detach(), y)
            self.log(f"{split}/acc", metric, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train", self.train_acc if self.classification else None)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val", self.val_acc if self.classification else None)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test", self.test_acc if self.classification else None)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.model.parameters())
