"""Step-time overhead of initlab's ordinary (Lightning) path over a plain PyTorch loop.

Both arms train the same model from the same initial weights on the same batches in the
same order with the same optimizer, and validate once per epoch (loss and accuracy).
initlab runs exactly as ``train.py`` does (its LightningModule, Lightning's loops,
torchmetrics, the default TensorBoard logger and diagnostics unless overridden). The first
epoch of each arm is warm-up and not timed; an epoch is timed from its start to the next
one's, so its validation and end-of-epoch work count. The arms alternate; the ratio is
the median of the back-to-back pairs' ratios.

    python scripts/bench_overhead.py                       # MLP on digits, CNN at 32x32
    python scripts/bench_overhead.py --models mlp --epochs 10 --repeats 5
    python scripts/bench_overhead.py --models mlp logger=none diagnostics=off

Models: ``mlp`` = the defaults (MLP 3x256 on 8x8 digits); ``cnn`` = ``model=cnn`` on
digits upsampled to 32x32 (``dataset.image_size=32``). Extra ``key=value`` overrides
apply to both.
"""

from __future__ import annotations

import argparse
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
from omegaconf import OmegaConf  # noqa: E402

from initlab.models.activations import activation_factory  # noqa: E402
from initlab.module import build_model  # noqa: E402
from initlab.pipeline import quiet_libraries, run  # noqa: E402

MODELS = {"mlp": [], "cnn": ["model=cnn", "dataset.image_size=32"]}


class EpochTimer(pl.Callback):
    """Wall time and optimizer steps of each training epoch, start to next start."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.steps: list[int] = []
        self._t0: float | None = None
        self._s0 = 0

    def _mark(self, trainer: pl.Trainer) -> None:
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
    """Mean ms per optimizer step over all epochs but the first (warm-up)."""
    return 1000 * sum(times[1:]) / max(sum(steps[1:]), 1)


def initlab_ms(cfg, out: Path) -> float:  # noqa: ANN001
    timer = EpochTimer()
    summary = run(cfg, out, progress_bar=False, extra_callbacks=[timer])
    assert summary["status"] == "completed", summary.get("error")
    return ms_per_step(timer.times, timer.steps)


def plain_ms(cfg) -> float:  # noqa: ANN001
    """The loop a user writes by hand: same model, init, data, batch order, optimizer."""
    torch.manual_seed(cfg.seed)
    dm = instantiate(cfg.dataset, seed=cfg.seed)
    dm.prepare()
    act = activation_factory(**OmegaConf.to_container(cfg.activation, resolve=True))
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), dm.input_shape,
                        dm.num_outputs, act)
    instantiate(cfg.init)(model, activation=act(), seed=cfg.seed)
    opt = instantiate(cfg.optimizer)(model.parameters())
    train, val = dm.train_dataloader(), dm.val_dataloader()
    times, steps = [], []
    for _ in range(cfg.trainer.max_epochs):
        t0 = time.perf_counter()
        model.train()
        n = 0
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += 1
        model.eval()
        with torch.no_grad():
            total, correct, count = 0.0, 0, 0
            for x, y in val:
                out = model(x)
                total += F.cross_entropy(out, y, reduction="sum").item()
                correct += int((out.argmax(1) == y).sum())
                count += len(y)
        times.append(time.perf_counter() - t0)
        steps.append(n)
    return ms_per_step(times, steps)


def compose_cfg(overrides: list[str]):  # noqa: ANN201
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def measure(name: str, overrides: list[str], epochs: int, repeats: int) -> float:
    cfg = compose_cfg([*MODELS[name], f"trainer.max_epochs={epochs}", *overrides])
    ratios, ours, plains = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            mine = initlab_ms(cfg, Path(tmp) / f"r{i}")
            plain = plain_ms(cfg)
            ours.append(mine)
            plains.append(plain)
            ratios.append(mine / plain)
            print(f"  {name} pair {i + 1}: initlab {mine:.3f} ms/step, plain {plain:.3f} "
                  f"ms/step, ratio {mine / plain:.3f}", flush=True)
    ratio = statistics.median(ratios)
    print(f"{name}: initlab {statistics.median(ours):.3f} ms/step, plain loop "
          f"{statistics.median(plains):.3f} ms/step, overhead ratio {ratio:.3f} "
          f"(median of {repeats} pairs, {epochs} epochs each, first untimed)", flush=True)
    return ratio


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description="Measure initlab's ms per optimizer step over a plain PyTorch loop on the "
                    "same model and data, and print the ratio.")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "cnn"],
                        help="which benchmark models to run (default: both).")
    parser.add_argument("--epochs", type=int, default=6,
                        help="epochs per arm; the first is warm-up (default 6).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="back-to-back pairs per model (default 3).")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both arms.")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is not timed)")
    quiet_libraries()
    torch.set_num_threads(torch.get_num_threads())
    print(f"torch threads {torch.get_num_threads()}, pytorch_lightning {pl.__version__}",
          flush=True)
    return {name: measure(name, args.overrides, args.epochs, args.repeats)
            for name in args.models}


if __name__ == "__main__":
    main()
