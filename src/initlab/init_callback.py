"""``InitCallback``: an initlab scheme (and optionally the init probe) in any Trainer.

    trainer = pl.Trainer(callbacks=[initlab.InitCallback("he", activation="relu", seed=0,
                                                         probe=True)])
    trainer.fit(my_lightning_module, datamodule=my_data)

The scheme is applied once, in ``setup("fit")`` (before the optimizer is built and
before a checkpoint is restored, so a resumed run keeps its trained weights), to the
module's ``model`` attribute where it is an ``nn.Module`` (or to ``target``, an attribute
name), else to the whole LightningModule.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch import nn

from initlab.callbacks import InitProbe, first_examples, probe_batch


class InitCallback(pl.Callback):
    """Initialize a user's LightningModule with a named initlab scheme.

    ``scheme``, ``activation``, ``seed`` and ``params``: as ``initlab.initialize``;
    ``target``: the attribute holding the network (default: ``model`` if the module has
    one, else the module itself); ``probe``: run initlab's init probe before the first
    step (its table lands in ``self.probe.records`` and the logger at step 0);
    ``data_batch_size``: examples a data-dependent scheme (LSUV) sees, from the data
    module's ``sample_batch`` or the first training batches. ``report`` holds the
    initializer's per-tensor report after setup.
    """

    def __init__(self, scheme: str, activation: Any = None, seed: int | None = 0,
                 target: str | None = None, probe: bool = False, probe_batch_size: int = 256,
                 data_batch_size: int = 256, **params: Any) -> None:
        from initlab.initializers import Initializer

        self.initializer = Initializer(scheme, **params)  # validates the parameters now
        self.activation = activation
        self.seed = seed
        self.target = target
        self.data_batch_size = data_batch_size
        self.probe = InitProbe(probe_batch_size, activation=_activation_name(activation)
                               ) if probe else None
        self.report: Any = None

    def network(self, pl_module: pl.LightningModule) -> nn.Module:
        """The module this callback initializes."""
        if self.target is not None:
            net = getattr(pl_module, self.target, None)
            if not isinstance(net, nn.Module):
                raise ValueError(f"InitCallback(target={self.target!r}): the LightningModule "
                                 "has no nn.Module of that name")
            return net
        net = getattr(pl_module, "model", None)
        return net if isinstance(net, nn.Module) else pl_module

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.report is not None:
            return
        net = self.network(pl_module)
        data = None
        if self.initializer.needs_data:
            x, _ = _init_batch(trainer, pl_module, self.data_batch_size)
            data = x.to(next(net.parameters()).device)
        self.report = self.initializer(net, activation=self.activation, data=data,
                                       seed=self.seed)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.probe is None or trainer.global_step > 0 or trainer.ckpt_path:
            return
        x, y = probe_batch(trainer, self.probe.batch_size)
        self.probe.run(self.network(pl_module), x.to(pl_module.device), y.to(pl_module.device),
                       trainer.logger if trainer.is_global_zero else None)


def _activation_name(activation: Any) -> str | None:
    if activation is None or isinstance(activation, str):
        return activation
    from initlab.models.activations import activation_name

    return activation_name(activation)


def _init_batch(trainer: pl.Trainer, pl_module: pl.LightningModule, n: int) -> Any:
    """Inputs for a data-dependent scheme at setup, before the fit loop has its loader:
    the data module's ``sample_batch`` or the first batches of its (or the module's)
    ``train_dataloader()``."""
    dm = getattr(trainer, "datamodule", None)
    if dm is not None and hasattr(dm, "sample_batch"):
        return dm.sample_batch(n)
    source = dm if dm is not None else pl_module
    try:
        loader = source.train_dataloader()
    except Exception as exc:  # noqa: BLE001 - say what is needed instead
        raise ValueError("InitCallback: a data-dependent scheme needs a training batch at "
                         "setup: use a LightningDataModule (or train_dataloader() on the "
                         "module)") from exc
    return first_examples(loader, n)
