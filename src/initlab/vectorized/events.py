"""A vectorized member's TensorBoard folder as Lightning's ``TensorBoardLogger`` writes
it (same folder, event tags, HParams session and ``hparams.yaml``), written with torch's
public ``SummaryWriter`` so that a vectorized job never imports Lightning: that import
(torchmetrics, torchvision) costs about 2.5 s, a third of the canonical 9-run sweep.

Only the plain ``logger`` entries initlab ships are written this way
(``tensorboard_entry``); any other logger is Lightning's own, built as in an ordinary
run (``initlab.pipeline.make_loggers``).
"""

from __future__ import annotations

import os
from argparse import Namespace
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

TENSORBOARD_TARGETS = (
    "pytorch_lightning.loggers.TensorBoardLogger",
    "pytorch_lightning.loggers.tensorboard.TensorBoardLogger",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger",
)
# the TensorBoardLogger arguments EventLogger writes the same way (others: Lightning's)
SIMPLE_KEYS = {"_target_", "save_dir", "name", "version", "default_hp_metric"}
HPARAMS_FILE = "hparams.yaml"  # TensorBoardLogger.NAME_HPARAMS_FILE


def tensorboard_entry(entry: DictConfig) -> bool:
    """Whether a ``logger`` entry is a TensorBoardLogger that ``EventLogger`` writes."""
    return str(entry.get("_target_")) in TENSORBOARD_TARGETS and set(entry) <= SIMPLE_KEYS


def flatten_params(params: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    """Nested hyperparameters as TensorBoard's flat ``a/b`` keys (lists of dicts by
    index), values other than bool/int/float/str as their ``str``: Lightning's rule for
    the HParams tab."""
    flat: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{parent}/{k}" if parent else str(k)
        if isinstance(v, Namespace):
            v = vars(v)
        if isinstance(v, MutableMapping):
            flat.update(flatten_params(v, key))
        elif isinstance(v, list) and all(isinstance(i, MutableMapping) for i in v):
            for n, item in enumerate(v):
                flat.update(flatten_params(item, f"{key}/{n}"))
        else:
            flat[key] = v if type(v) in (bool, int, float, str) else str(v)
    return flat


class EventLogger:
    """``<save_dir>/<name>/<version>/``: scalars, images and histograms through
    ``experiment`` (a ``SummaryWriter``, made on first use), the HParams session when
    ``log_hyperparams`` gets metrics, ``hparams.yaml`` on ``save``."""

    def __init__(self, save_dir: str | Path, name: str | None = "lightning_logs",
                 version: int | str | None = None, default_hp_metric: bool = True) -> None:
        if version is None:
            raise ValueError("EventLogger needs a version (the run's name)")
        version = version if isinstance(version, str) else f"version_{version}"
        self.log_dir = os.path.join(str(save_dir), name, version) if name else os.path.join(
            str(save_dir), version)
        self.default_hp_metric = default_hp_metric
        self.hparams: dict[str, Any] = {}
        self._experiment: Any = None

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            from torch.utils.tensorboard import SummaryWriter

            self._experiment = SummaryWriter(log_dir=self.log_dir)
        return self._experiment

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        for k, v in metrics.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, dict):
                self.experiment.add_scalars(k, v, step)
            else:
                self.experiment.add_scalar(k, v, step)

    def log_hyperparams(self, params: Mapping[str, Any] | Namespace,
                        metrics: Mapping[str, Any] | None = None, step: int | None = None
                        ) -> None:
        from torch.utils.tensorboard.summary import hparams

        params = vars(params) if isinstance(params, Namespace) else dict(params or {})
        self.hparams.update(params)
        if metrics is None and self.default_hp_metric:
            metrics = {"hp_metric": -1}
        if not metrics:
            return
        self.log_metrics(metrics, step)
        writer = self.experiment.file_writer
        for summary in hparams(flatten_params(params), dict(metrics)):
            writer.add_summary(summary)

    def save(self) -> None:
        self.experiment.flush()  # as Lightning's: makes the writer (and the folder)
        path = os.path.join(self.log_dir, HPARAMS_FILE)
        if os.path.isdir(self.log_dir) and not os.path.isfile(path):
            OmegaConf.save(OmegaConf.create(self.hparams), path)

    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush()
            self._experiment.close()
        if status == "success":
            self.save()
