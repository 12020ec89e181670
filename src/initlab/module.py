"""The LightningModule: training logic only, in Lightning's usual shape.

The network, the initializer and the optimizer factory are injected; the module applies
the initializer once before training (in ``setup``) and never looks at which scheme it
is. Metrics are torchmetrics objects logged with ``self.log``, so ``callback_metrics``
holds ``train/loss_epoch``, ``train/acc``, ``val/loss``, ``val/acc`` (and ``test/*``) for
any callback that monitors them (EarlyStopping, ModelCheckpoint, LR schedulers).

The hyperparameters are plain data (the model's and the optimizer's configs, the task,
the run's flat config), so ``InitStudyModule.load_from_checkpoint(path)`` rebuilds the
module without extra arguments; pass ``model=`` to use another instance.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from initlab.data.base import TASKS
from initlab.init_data import INIT_BATCH_SIZE, init_data

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
ParamGroups = Callable[[nn.Module], Iterable[Any]]
def build_model(config: Mapping[str, Any], input_shape: Any = None, num_outputs: int | None = None,
                activation: Mapping[str, Any] | Callable[[], nn.Module] | None = None
                ) -> nn.Module:
    """Instantiate a model config (``_target_`` + arguments), passing initlab's three
    arguments (``input_shape``, ``num_outputs``, ``activation``: a factory of the hidden
    non-linearity) only where the factory takes them. Raises ValueError naming a config
    key the factory does not take."""
    from hydra.utils import get_object, instantiate

    from initlab.models.activations import activation_factory

    target = config.get("_target_")
    if not target:
        raise ValueError("model._target_ is missing: the import path of an nn.Module class "
                         "or factory (e.g. initlab.models.mlp.MLP)")
    factory = get_object(str(target))
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in config:
        if not str(key).startswith("_") and key not in params and not takes_any:
            allowed = ", ".join(k for k in params if k not in ("self",)) or "none"
            raise ValueError(
                f"model.{key} is not an argument of {target} (its arguments: {allowed}); "
                "a model of your own starts from model=custom")
    if isinstance(activation, Mapping):
        activation = activation_factory(**activation)
    given = {"input_shape": tuple(input_shape) if input_shape is not None else None,
             "num_outputs": num_outputs, "activation": activation}
    extra = {k: v for k, v in given.items()
             if v is not None and (k in params or takes_any) and k not in config}
    return instantiate(dict(config), **extra)


class InitStudyModule(pl.LightningModule):
    """Classification (cross-entropy + accuracy) or regression (MSE) on ``model``.

    ``model``: the network (or None to build it from ``model_config``); ``initializer``:
    called once as ``initializer(model, activation=..., data=..., seed=...)`` in
    ``setup("fit")`` unless the run resumes; ``optimizer``: a factory of the parameters
    (``functools.partial(torch.optim.SGD, lr=0.05)``, Hydra's ``_partial_``), or None to
    build it from ``optimizer_config``; ``lr_scheduler``: None or a dict with
    ``scheduler`` (a factory of the optimizer) and Lightning's ``interval``/``frequency``
    keys; ``param_groups``: optionally maps the model to the optimizer's parameter groups
    (per-layer learning rates, e.g. muP).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        initializer: Callable[..., Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        lr_scheduler: Mapping[str, Any] | None = None,
        task: str = "classification",
        num_outputs: int = 10,
        activation: nn.Module | None = None,
        seed: int = 0,
        init_batch_size: int = INIT_BATCH_SIZE,
        param_groups: ParamGroups | None = None,
        model_config: Mapping[str, Any] | None = None,
        optimizer_config: Mapping[str, Any] | None = None,
        lr_scheduler_config: Mapping[str, Any] | None = None,
        input_shape: tuple[int, ...] | list[int] | None = None,
        activation_config: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task={task!r} is not allowed; allowed: {', '.join(TASKS)}")
        # plain data only: a checkpoint holds what rebuilds the module, never pickled objects
        self.save_hyperparameters(ignore=["model", "initializer", "optimizer", "lr_scheduler",
                                          "activation", "param_groups"])
        if model is None:
            if model_config is None:
                raise ValueError("InitStudyModule needs model= or model_config=")
            model = build_model(model_config, input_shape, num_outputs, activation_config)
        if optimizer is None and optimizer_config is not None:
            from hydra.utils import instantiate

            optimizer = instantiate(dict(optimizer_config))
        if lr_scheduler is None and lr_scheduler_config:
            from initlab.schedulers import scheduler_spec

            lr_scheduler = scheduler_spec(lr_scheduler_config)
        if activation is None and activation_config is not None:
            from initlab.models.activations import activation_factory

            activation = activation_factory(**dict(activation_config))()
        self.model = model
        self.initializer = initializer
        self.optimizer_factory = optimizer
        self.lr_scheduler = dict(lr_scheduler) if lr_scheduler else None
        self.param_groups = param_groups
        self.activation = activation
        self.task = task
        self.classification = task == "classification"
        self.seed = seed
        self.init_batch_size = init_batch_size
        self.init_report: list[dict[str, Any]] = []
        # one metric per split: torchmetrics keeps each split's epoch state apart
        self.train_loss = torchmetrics.MeanMetric()
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()
        if self.classification:
            self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_outputs)
            self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_outputs)
            self.test_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_outputs)

    # -- initialization ------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # Lightning calls setup before it restores a checkpoint, so a resumed run gets
        # its trained weights back after this; ``init_report`` keeps it to one init.
        if stage == "fit" and self.initializer is not None and not self.init_report:
            datamodule = getattr(self.trainer, "datamodule", None)
            data = (init_data(self.initializer, self.model, datamodule, self.init_batch_size)
                    if datamodule is not None else None)
            self.apply_initializer(data)

    def apply_initializer(self, data: Tensor | None = None) -> list[dict[str, Any]]:
        """Initialize the wrapped model in place once; keeps the initializer's report."""
        report = self.initializer(self.model, activation=self.activation, data=data,
                                  seed=self.seed)
        self.init_report = report.to_records() if hasattr(report, "to_records") else [{}]
        return self.init_report

    # -- steps ---------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.classification:
            return F.cross_entropy(out, y)
        return F.mse_loss(out, y)

    def _shared_step(self, batch: tuple[Tensor, Tensor], split: str) -> Tensor:
        """The loss of one batch; updates the split's epoch metrics (logged at the end of
        the epoch: logging a Metric object on every step costs about 0.5 ms each on a
        2-core CPU, as long as a small model's whole step)."""
        x, y = batch
        out = self(x)
        loss = self.loss(out, y)
        # epoch means weighted by target elements (a sequence's answer tokens each count;
        # class indices or one regression target: the batch size), summed over DDP
        # processes by torchmetrics
        getattr(self, f"{split}_loss").update(loss.detach(), weight=y.numel())
        if self.classification:
            getattr(self, f"{split}_acc").update(out.detach(), y)
        return loss

    def _log_epoch(self, split: str) -> None:
        """Log the split's epoch metrics (Lightning computes and resets them)."""
        suffix = "_epoch" if split == "train" else ""
        self.log(f"{split}/loss{suffix}", getattr(self, f"{split}_loss"), prog_bar=split == "val")
        if self.classification:
            self.log(f"{split}/acc", getattr(self, f"{split}_acc"), prog_bar=split == "val")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch[1].shape[0])
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    # -- optimization --------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("InitStudyModule has no optimizer: pass optimizer= or "
                             "optimizer_config=")
        params = (self.param_groups(self.model) if self.param_groups is not None
                  else self.model.parameters())
        optimizer = self.optimizer_factory(params)
        if not self.lr_scheduler:
            return optimizer
        spec = dict(self.lr_scheduler)
        factory = spec.pop("scheduler")
        kwargs = {}
        # schedules that need the run's length (OneCycle, warm-up + cosine) get it here
        if "total_steps" in inspect.signature(factory).parameters and getattr(
                factory, "keywords", {}).get("total_steps") is None:
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": factory(optimizer, **kwargs), **spec}}
