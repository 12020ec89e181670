"""TensorBoard logger that buffers scalars and writes one event per step.

Lightning's ``TensorBoardLogger`` writes one event per scalar as it is logged: about
30 us each here, which at the few dozen scalars an epoch of a small model logs
(diagnostics included) is several percent of its training time. This one keeps the
scalars of a step in memory (with the wall time they were logged at) and writes each
step's values as one ``Summary`` event every ``buffer_secs`` seconds, and on ``save`` and
``finalize``. The event files hold the same tags, steps and values.
``SummaryWriter`` itself flushes to disk only every ``flush_secs`` (120 s by default),
so TensorBoard shows the curves no later than before.

Without TensorFlow, TensorBoard checksums each event record with a pure-Python CRC-32C
(about 1 us per byte, on its writer thread, holding the GIL that training needs);
``fast_event_checksums`` swaps in the C implementation of the ``crc32c`` package.

``hparams.yaml`` holds the hyperparameters last logged: Lightning writes the file only
once, at the start of fit, when initlab has logged none yet (``{}``); here each ``save``
with hyperparameters rewrites it, so the file ends with the run's axes and config (those
of the HParams tab). It is dumped with PyYAML directly when every value is a plain
scalar: Lightning's round trip through OmegaConf costs about 3.5 ms for the ~60 keys.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import yaml
from pytorch_lightning.loggers import TensorBoardLogger as LightningTensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor


def masked_crc32c(crc: int) -> int:
    """TFRecord's masking of a CRC-32C: rotate right by 15 bits, add a constant."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def fast_event_checksums() -> bool:
    """Make TensorBoard's event writer use the C CRC-32C; False where unavailable."""
    try:
        import crc32c
        from tensorboard.summary.writer import record_writer
    except ImportError:
        return False
    record_writer.masked_crc32c = lambda data: masked_crc32c(crc32c.crc32c(data))
    return True


def plain_hparams(hparams: Any) -> bool:
    """Whether ``hparams`` is a mapping of plain scalars (None, bool, int, float, str)."""
    return isinstance(hparams, Mapping) and all(
        v is None or type(v) in (bool, int, float, str) for v in hparams.values())


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoard logger with buffered, batched scalar events."""

    def __init__(self, *args: Any, buffer_secs: float = 5.0, **kwargs: Any) -> None:
        # SummaryWriter's writer thread takes at most max_queue events at a time (default
        # 10): a burst of buffered steps would wait for it event by event.
        kwargs.setdefault("max_queue", 1000)
        super().__init__(*args, **kwargs)
        fast_event_checksums()
        self.buffer_secs = buffer_secs
        # step -> (wall time of the first value, [(tag, value), ...])
        self._pending: dict[int | None, tuple[float, list[tuple[str, float]]]] = {}
        self._written_at = time.monotonic()
        self._batched: bool | None = None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self._batched is None:  # torch's SummaryWriter (not tensorboardX): batch
            self._batched = hasattr(self.experiment, "_get_file_writer")
        if not self._batched:
            super().log_metrics(metrics, step)
            return
        others: dict[str, Any] = {}
        values = self._pending.setdefault(step, (time.time(), []))[1]
        for key, value in metrics.items():
            if isinstance(value, Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tag = f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key
                values.append((tag, float(value)))
            else:  # dicts (add_scalars) and anything else: Lightning's own handling
                others[key] = value
        if others:
            super().log_metrics(others, step)
        if time.monotonic() - self._written_at >= self.buffer_secs:
            self.write_pending()

    @rank_zero_only
    def write_pending(self) -> None:
        """Write the buffered scalars: one event per step."""
        self._written_at = time.monotonic()
        if not self._pending:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        pending, self._pending = self._pending, {}
        writer = self.experiment._get_file_writer()
        for step, (walltime, values) in pending.items():
            if values:
                summary = Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values])
                writer.add_summary(summary, step, walltime)

    @rank_zero_only
    def save(self) -> None:
        self.write_pending()
        if not plain_hparams(self.hparams) or "://" in str(self.log_dir):
            super().save()  # Lightning's: OmegaConf, fsspec
            return
        self.experiment.flush()
        path = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        if os.path.isdir(self.log_dir) and (self.hparams or not os.path.isfile(path)):
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(dict(self.hparams), f, sort_keys=False)

    def finalize(self, status: str) -> None:
        self.write_pending()
        if status != "success":  # Lightning saves (hparams.yaml) only on success
            self.save()
        super().finalize(status)
