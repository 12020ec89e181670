"""Step-time overhead of initlab over a plain PyTorch loop on identical batches.

Both sides train the default model (config defaults: MLP on digits, SGD) with the
same initial weights, the same batch order and one validation pass per epoch; the
first epoch of each is warm-up and not timed; an epoch is timed from its start to the
next one's, so its validation and end-of-epoch work count. initlab runs with the default
logger and diagnostics. Prints ms/step of both and their ratio (the median of the ratios
of back-to-back pairs).

    python scripts/bench_overhead.py [--epochs 6] [--repeats 3] [key=value ...]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from initlab.models.activations import activation_factory  # noqa: E402
from initlab.pipeline import run  # noqa: E402


class EpochTimer(pl.Callback):
    """Wall time of each training epoch, from its start to the next epoch's start (or the
    end of training), so that everything done at the epoch's end (validation, logging,
    diagnostics, whichever hook does it) is counted."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.steps: list[int] = []
        self._t0: float | None = None

    def _mark(self, trainer) -> None:  # noqa: ANN001
        now, step = time.perf_counter(), trainer.global_step
        if self._t0 is not None:
            self.times.append(now - self._t0)
            self.steps.append(step - self._s0)
        self._t0, self._s0 = now, step

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._mark(trainer)

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._mark(trainer)


def ms_per_step(times: list[float], steps: list[int]) -> float:
    return 1000 * sum(times[1:]) / max(sum(steps[1:]), 1)


def initlab_ms(cfg, out: Path) -> float:  # noqa: ANN001
    timer = EpochTimer()
    summary = run(cfg, out, progress_bar=False, extra_callbacks=[timer])
    assert summary["status"] == "completed", summary.get("error")
    return ms_per_step(timer.times, timer.steps)


def plain_ms(cfg) -> float:  # noqa: ANN001
    """The same model, init, data and batch order in a hand-written loop."""
    torch.manual_seed(cfg.seed)
    dm = instantiate(cfg.dataset, seed=cfg.seed)
    dm.prepare()
    model = instantiate(cfg.model, input_shape=tuple(dm.input_shape),
                        num_outputs=dm.num_outputs, activation=activation_factory(**cfg.activation))
    instantiate(cfg.init)(model, activation=activation_factory(**cfg.activation)(), seed=cfg.seed)
    opt = instantiate(cfg.optimizer)(model.parameters())
    train, val = dm.train_dataloader(), dm.val_dataloader()
    times, steps = [], []
    for _ in range(cfg.trainer.max_epochs):
        t0, n = time.perf_counter(), 0
        model.train()
        for x, y in train.batches():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += 1
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in val)
        assert correct >= 0
        times.append(time.perf_counter() - t0)
        steps.append(n)
    return ms_per_step(times, steps)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after timing, profile one initlab run and print the N "
                             "functions with the most own time")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. diagnostics=off")
    args = parser.parse_args(argv)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"trainer.max_epochs={args.epochs}", *args.overrides])
    torch.set_num_threads(torch.get_num_threads())
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            plain.append(plain_ms(copy.deepcopy(cfg)))
            ours.append(initlab_ms(copy.deepcopy(cfg), Path(tmp) / f"run{i}"))
    o, p = statistics.median(ours), statistics.median(plain)
    # Each repeat runs the two back to back: the ratio of a pair is what the machine's slow
    # and fast phases (other jobs on a shared host) disturb least.
    ratio = statistics.median(a / b for a, b in zip(ours, plain, strict=True))
    print(f"plain PyTorch loop: {p:.3f} ms/step  (runs: {', '.join(f'{v:.3f}' for v in plain)})")
    print(f"initlab (Lightning, logging, diagnostics): {o:.3f} ms/step  "
          f"(runs: {', '.join(f'{v:.3f}' for v in ours)})")
    print(f"overhead ratio: {ratio:.3f}  (median of the {len(ours)} paired ratios; "
          f"ratio of the medians {o / p:.3f})")
    if args.profile:
        profile(cfg, args.profile)
    return ratio


def profile(cfg, top: int) -> None:  # noqa: ANN001
    """Where an initlab run's time goes (cProfile, own time per function)."""
    import cProfile
    import io
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile()
        prof.enable()
        run(copy.deepcopy(cfg), Path(tmp), progress_bar=False)
        prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    print(buf.getvalue())


if __name__ == "__main__":
    main()
