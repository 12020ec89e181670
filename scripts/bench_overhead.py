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
import functools
import statistics
import sys
import tempfile
import time
import warnings
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


def build(cfg):  # noqa: ANN001, ANN201
    """The prepared data module and the initialized model every arm starts from."""
    torch.manual_seed(cfg.seed)
    dm = instantiate(cfg.dataset, seed=cfg.seed)
    dm.prepare()
    act = activation_factory(**cfg.activation)
    model = instantiate(cfg.model, input_shape=tuple(dm.input_shape),
                        num_outputs=dm.num_outputs, activation=act)
    instantiate(cfg.init)(model, activation=act(), seed=cfg.seed)
    return dm, model


def train_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, batches) -> int:  # noqa: ANN001
    """The plain loop's raw optimizer steps over ``batches``; returns their number."""
    n = 0
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += 1
    return n


def validate(model: torch.nn.Module, val) -> None:  # noqa: ANN001
    """The plain loop's validation pass: eval mode, no gradients, the correct count."""
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in val)
    assert correct >= 0


def plain_ms(cfg) -> float:  # noqa: ANN001
    """The same model, init, data and batch order in a hand-written loop."""
    dm, model = build(cfg)
    opt = instantiate(cfg.optimizer)(model.parameters())
    train, val = dm.train_dataloader(), dm.val_dataloader()
    times, steps = [], []
    for _ in range(cfg.trainer.max_epochs):
        t0 = time.perf_counter()
        model.train()
        n = train_steps(model, opt, train.batches())
        validate(model, val)
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
        train_steps(self.model, self.optimizers().optimizer, batch)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        validate(self.model, self.val)
        self.model.train()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.model.parameters())


def bare_lightning_ms(cfg, timer: EpochTimer | None = None) -> float:  # noqa: ANN001
    """``BareModule`` in a Trainer without logger, checkpoints or progress bar."""
    dm, model = build(cfg)
    dm.steps_per_call = cfg.trainer.steps_per_call  # one call per epoch, as initlab
    module = BareModule(model, instantiate(cfg.optimizer), dm.val_dataloader())
    timer = timer or EpochTimer()
    # the datamodule has a val_dataloader; this module validates in its own hook
    warnings.filterwarnings("ignore", message=".*val_dataloader.*no `validation_step`")
    trainer = pl.Trainer(max_epochs=cfg.trainer.max_epochs, accelerator="cpu", devices=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, datamodule=dm)
    # raw optimizer steps leave trainer.global_step at 0: count the minibatches
    n = dm.train_dataloader().num_batches()
    return 1000 * sum(timer.times[1:]) / max(n * len(timer.times[1:]), 1)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after timing, profile one initlab run and print the N "
                             "functions with the most own time")
    parser.add_argument("--breakdown", action="store_true",
                        help="after timing, the per-epoch time of each initlab hook")
    parser.add_argument("--phases", action="store_true",
                        help="after timing, split an epoch of each arm into data, training "
                             "calls, validation and the rest (Lightning's loop and hooks)")
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
    if args.phases:
        phases(cfg, args.repeats)
    if args.breakdown:
        breakdown(cfg)
    if args.profile:
        profile(cfg, args.profile)
    return ratio


class _Spans:
    """Wall time spent inside wrapped methods, by label; ``wrap`` returns its undo."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, cls: type, name: str, label: str):  # noqa: ANN201
        fn = cls.__dict__[name]

        @functools.wraps(fn)  # Lightning inspects the hooks it calls
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - t0

        setattr(cls, name, wrapper)
        return lambda: setattr(cls, name, fn)


def phases(cfg, repeats: int) -> None:  # noqa: ANN001
    """Median per-epoch split of each arm: data (building the epoch's minibatches; in the
    Lightning arms this happens inside Lightning's fetch, so it is measured on the plain
    arm and subtracted from the rest), training (initlab's and the bare module's
    ``training_step``, the plain loop's steps), validation, and the rest of the epoch:
    Lightning's loop and every hook outside the training call and the validation."""
    from initlab import module

    epochs = cfg.trainer.max_epochs
    rows: dict[str, list[dict[str, float]]] = {"plain": [], "bare": [], "initlab": []}

    def plain_split() -> dict[str, float]:
        dm, model = build(cfg)
        opt = instantiate(cfg.optimizer)(model.parameters())
        train, val = dm.train_dataloader(), dm.val_dataloader()
        parts: dict[str, list[float]] = {"data": [], "training": [], "validation": []}
        for _ in range(epochs):
            t0 = time.perf_counter()
            model.train()
            batches = list(train.batches())
            t1 = time.perf_counter()
            train_steps(model, opt, batches)
            t2 = time.perf_counter()
            validate(model, val)
            t3 = time.perf_counter()
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                parts[key].append(dt)
        return {k: statistics.median(v[1:]) for k, v in parts.items()}

    def lightning_split(arm: str, tmp: Path) -> dict[str, float]:
        spans = _Spans()
        if arm == "initlab":
            undo = [spans.wrap(module.InitStudyModule, "training_step", "training"),
                    spans.wrap(module.InitStudyModule, "validate_in_place", "validation")]
        else:
            undo = [spans.wrap(BareModule, "training_step", "training"),
                    spans.wrap(BareModule, "on_train_batch_end", "validation")]
        timer = EpochTimer()
        marks: list[dict[str, float]] = []
        timer.on_train_epoch_start = lambda t, m, _f=timer.on_train_epoch_start: (  # noqa: E731
            marks.append(dict(spans.spent)), _f(t, m))
        try:
            if arm == "initlab":
                run(copy.deepcopy(cfg), tmp, progress_bar=False, extra_callbacks=[timer])
            else:
                bare_lightning_ms(copy.deepcopy(cfg), timer)
        finally:
            for u in undo:
                u()
        marks.append(dict(spans.spent))
        split: dict[str, list[float]] = {"epoch": [], "training": [], "validation": []}
        for i, total in enumerate(timer.times[1:], start=1):
            split["epoch"].append(total)
            for key in ("training", "validation"):
                split[key].append(marks[i + 1].get(key, 0.0) - marks[i].get(key, 0.0))
        med = {k: statistics.median(v) for k, v in split.items()}
        med["rest"] = med.pop("epoch") - med["training"] - med["validation"]
        return med

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            rows["plain"].append(plain_split())
            rows["bare"].append(lightning_split("bare", Path(tmp)))
            rows["initlab"].append(lightning_split("initlab", Path(tmp) / f"phases{i}"))
    med = {arm: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for arm, rs in rows.items()}
    data = med["plain"]["data"]
    print(f"\nper-epoch split, us (median of {repeats} runs; data = building the epoch's "
          f"minibatches, {1e6 * data:.0f} us, measured on the plain loop):")
    print(f"  {'':10s} {'training':>9s} {'validation':>11s} {'rest - data':>12s} {'total':>8s}")
    for arm in ("plain", "bare", "initlab"):
        m = med[arm]
        rest = m["data"] - data if arm == "plain" else m["rest"] - data
        total = m["training"] + m["validation"] + rest + data
        print(f"  {arm:10s} {1e6 * m['training']:9.0f} {1e6 * m['validation']:11.0f} "
              f"{1e6 * rest:12.0f} {1e6 * total:8.0f}")


def breakdown(cfg) -> None:  # noqa: ANN001
    """Wall time per epoch of each initlab hook and helper, measured inside one run (with
    a timer around each call, which itself adds about a microsecond per call)."""
    from initlab import callbacks, module, tensorboard
    from initlab.diagnostics import callbacks as diag

    spans = _Spans()
    undo = []
    for cls in (diag.TrainingDiagnostics, callbacks.DivergenceGuard, callbacks.HistoryRecorder):
        for name in [n for n in vars(cls) if n.startswith("on_") and n != "on_fit_start"]:
            undo.append(spans.wrap(cls, name, f"{cls.__name__}.{name}"))
    for cls, names in ((module.InitStudyModule, ("validate_in_place", "on_train_epoch_end",
                                                 "_tally_call", "_log_step_losses")),
                       (tensorboard.TensorBoardLogger, ("log_metrics", "write_pending"))):
        undo += [spans.wrap(cls, name, f"{cls.__name__}.{name}") for name in names]
    timer = EpochTimer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(copy.deepcopy(cfg), Path(tmp), progress_bar=False, extra_callbacks=[timer])
    finally:
        for u in undo:
            u()
    epochs = len(timer.times)
    print(f"\nper-epoch wall time of initlab's hooks ({epochs} epochs of "
          f"{timer.steps[-1] if timer.steps else 0} steps; nested calls are in both rows):")
    for key, total in sorted(spans.spent.items(), key=lambda kv: -kv[1]):
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
