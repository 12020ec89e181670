"""Step-time overhead of initlab over a plain PyTorch loop on identical batches.

Both sides train the default model (config defaults: MLP on digits, SGD) with the
same initial weights, the same batch order and one validation pass per epoch; the
first epoch of each is warm-up and not timed; an epoch is timed from its start to the
next one's, so its validation and end-of-epoch work count. initlab runs with the default
logger and diagnostics. Prints ms/step of both and their ratio (the median of the ratios
of back-to-back pairs).

    python scripts/bench_overhead.py [--epochs 6] [--repeats 3] [--bare] [key=value ...]

``--bare`` adds a third arm: Lightning's loop around the plain loop's raw steps (no
metrics, logging or diagnostics), i.e. what Lightning itself costs per epoch.
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
from initlab.pipeline import quiet_libraries, run  # noqa: E402


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


class BareModule(pl.LightningModule):
    """Lightning's loop around the plain loop's steps: the same raw forward/backward/step
    per minibatch and the same validation, no metrics, logging or callbacks of initlab.
    What it costs over the plain loop is Lightning's own per-epoch machinery."""

    def __init__(self, model: torch.nn.Module, optimizer, val) -> None:  # noqa: ANN001
        super().__init__()
        self.automatic_optimization = False
        self.model, self.optimizer_factory, self.val = model, optimizer, val

    def training_step(self, batch, batch_idx: int) -> None:  # noqa: ANN001
        opt = self.optimizers().optimizer
        for x, y in batch:
            loss = F.cross_entropy(self.model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        self.model.eval()
        with torch.no_grad():
            correct = sum(int((self.model(x).argmax(1) == y).sum()) for x, y in self.val)
        assert correct >= 0
        self.model.train()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.model.parameters())


def bare_lightning_ms(cfg) -> float:  # noqa: ANN001
    """``BareModule`` in a Trainer without logger, checkpoints or progress bar."""
    torch.manual_seed(cfg.seed)
    dm = instantiate(cfg.dataset, seed=cfg.seed)
    dm.prepare()
    dm.steps_per_call = cfg.trainer.steps_per_call  # one call per epoch, as initlab
    model = instantiate(cfg.model, input_shape=tuple(dm.input_shape),
                        num_outputs=dm.num_outputs, activation=activation_factory(**cfg.activation))
    instantiate(cfg.init)(model, activation=activation_factory(**cfg.activation)(), seed=cfg.seed)
    module = BareModule(model, instantiate(cfg.optimizer), dm.val_dataloader())
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=cfg.trainer.max_epochs, accelerator="cpu", devices=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, datamodule=dm)
    # raw optimizer steps leave trainer.global_step at 0: count the minibatches
    n = dm.train_dataloader().num_batches()
    return 1000 * sum(timer.times[1:]) / max(n * len(timer.times[1:]), 1)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after timing, profile one initlab run and print the N "
                             "functions with the most own time")
    parser.add_argument("--breakdown", action="store_true",
                        help="after timing, the per-epoch time of each initlab hook")
    parser.add_argument("--bare", action="store_true",
                        help="also time Lightning's loop alone around the plain steps")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. diagnostics=off")
    args = parser.parse_args(argv)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"trainer.max_epochs={args.epochs}", *args.overrides])
    torch.set_num_threads(torch.get_num_threads())
    ours, plain, bare = [], [], []
    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            plain.append(plain_ms(copy.deepcopy(cfg)))
            ours.append(initlab_ms(copy.deepcopy(cfg), Path(tmp) / f"run{i}"))
            if args.bare:
                bare.append(bare_lightning_ms(copy.deepcopy(cfg)))
    o, p = statistics.median(ours), statistics.median(plain)
    # Each repeat runs the arms back to back: the ratio of a pair is what the machine's slow
    # and fast phases (other jobs on a shared host) disturb least.
    ratio = statistics.median(a / b for a, b in zip(ours, plain, strict=True))
    print(f"plain PyTorch loop: {p:.3f} ms/step  (runs: {', '.join(f'{v:.3f}' for v in plain)})")
    if bare:
        b = statistics.median(x / y for x, y in zip(bare, plain, strict=True))
        print(f"bare Lightning loop (same raw steps): {statistics.median(bare):.3f} ms/step  "
              f"(runs: {', '.join(f'{v:.3f}' for v in bare)}); ratio {b:.3f}")
    print(f"initlab (Lightning, logging, diagnostics): {o:.3f} ms/step  "
          f"(runs: {', '.join(f'{v:.3f}' for v in ours)})")
    print(f"overhead ratio: {ratio:.3f}  (median of the {len(ours)} paired ratios; "
          f"ratio of the medians {o / p:.3f})")
    if args.breakdown:
        breakdown(cfg)
    if args.profile:
        profile(cfg, args.profile)
    return ratio


def breakdown(cfg) -> None:  # noqa: ANN001
    """Wall time per epoch of each initlab hook and helper, measured inside one run (with
    a timer around each call, which itself adds about a microsecond per call)."""
    import collections
    import functools

    from initlab import callbacks, module, tensorboard
    from initlab.diagnostics import callbacks as diag

    spent: collections.Counter[str] = collections.Counter()
    originals = []

    def timed(cls: type, name: str) -> None:
        fn = cls.__dict__[name]
        originals.append((cls, name, fn))

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[f"{cls.__name__}.{name}"] += time.perf_counter() - t0

        setattr(cls, name, wrapper)

    for cls in (diag.TrainingDiagnostics, callbacks.DivergenceGuard, callbacks.HistoryRecorder):
        for name in [n for n in vars(cls) if n.startswith("on_") and n != "on_fit_start"]:
            timed(cls, name)
    for name in ("validate_in_place", "on_train_epoch_end", "_tally_call", "_log_step_losses"):
        timed(module.InitStudyModule, name)
    for name in ("log_metrics", "write_pending"):
        timed(tensorboard.TensorBoardLogger, name)
    timer = EpochTimer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(copy.deepcopy(cfg), Path(tmp), progress_bar=False, extra_callbacks=[timer])
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)
    epochs = len(timer.times)
    print(f"\nper-epoch wall time of initlab's hooks ({epochs} epochs of "
          f"{timer.steps[-1] if timer.steps else 0} steps; nested calls are in both rows):")
    for key, total in spent.most_common():
        print(f"  {key:48s} {1e6 * total / epochs:8.1f} us")


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
