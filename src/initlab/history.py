"""What a run's history.csv holds and when a training loss ends a run: shared by the
Lightning callbacks and the vectorized engine (which never imports Lightning)."""

from __future__ import annotations

import math

# history.csv's metric columns and the logged tags they are read from
HISTORY_KEYS = {
    "train_loss": "train/loss_epoch",
    "train_acc": "train/acc",
    "val_loss": "val/loss",
    "val_acc": "val/acc",
}
# history.csv's header (also when no epoch finished: a run that diverged in its first)
HISTORY_COLUMNS = ("epoch", "step", *HISTORY_KEYS, "lr", "time_s")


class Diverged(RuntimeError):
    """Raised to stop a run at once when the training loss is NaN or infinite: at optimizer
    step ``step`` (from 0) of epoch ``epoch`` (from 1, as history.csv's epochs)."""

    def __init__(self, step: int, epoch: int, value: float) -> None:
        super().__init__(f"training loss became {value} at step {step} (epoch {epoch})")
        self.step, self.epoch, self.value = step, epoch, value


def is_divergent(loss: float, max_loss: float | None) -> bool:
    """A training loss that stops a run: NaN, infinite, or above ``max_loss``."""
    return not math.isfinite(loss) or (max_loss is not None and loss > max_loss)
