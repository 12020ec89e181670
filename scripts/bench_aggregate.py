"""Time sweep aggregation on a large synthetic sweep folder.

    python scripts/bench_aggregate.py [--runs 1000] [--keep DIR] [--no-plots]

Writes ``--runs`` synthetic run folders (5 inits x 4 activations x 5 depths x seeds by
default) in the pipeline's shape: ``summary.json`` with ~50 flat config keys, per-layer
``init_diagnostics`` and the usual metrics, a 20-row ``history.csv`` and ``.hydra/``;
about 5 % diverged, 2 % failed, and 2 % broken (truncated summary, empty folder, summary
still "running").  Then times, separately: the tables + report
(``aggregate(plots=False)``) and the plots (``plot_all``, reading every history.csv).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

INITS = ("xavier", "he", "lecun", "orthogonal", "random")
ACTIVATIONS = ("relu", "tanh", "gelu", "selu")
DEPTHS = (2, 4, 8, 16, 32)
EPOCHS = 20


def _config(init: str, act: str, depth: int, seed: int) -> dict[str, Any]:
    """A flat study config of about 50 keys, like ``initlab.config.study_config``."""
    cfg: dict[str, Any] = {
        "dataset.batch_size": 64, "dataset.eval_batch_size": 512, "dataset.val_frac": 0.15,
        "dataset.test_frac": 0.15, "dataset.standardize": True, "dataset.data_seed": 0,
        "dataset.device": "auto", "dataset.pin_memory": False,
        "model.depth": depth, "model.width": 128, "model.bias": True, "model.norm": "none",
        "model.dropout": 0.0, "model.residual": False,
        "init.scheme": init, "init.gain": "auto" if init != "random" else None,
        "init.distribution": "uniform" if init == "xavier" else "normal",
        "init.mode": {"xavier": "fan_avg", "he": "fan_in", "lecun": "fan_in"}.get(init),
        "init.bias": "zeros", "init.bias_value": 0.0, "init.recurrent": None,
        "activation.name": act, "activation.inplace": False,
        "optimizer.lr": 0.05, "optimizer.momentum": 0.9, "optimizer.weight_decay": 0.0,
        "optimizer.nesterov": False, "optimizer.dampening": 0.0,
        "trainer.max_epochs": EPOCHS, "trainer.accelerator": "cpu", "trainer.devices": 1,
        "trainer.precision": "32-true", "trainer.log_every_n_steps": 10,
        "trainer.deterministic": False, "trainer.gradient_clip_val": None,
        "checkpoint": False, "trainer.benchmark": False,
        "trainer.limit_train_batches": 1.0, "trainer.limit_val_batches": 1.0,
        "trainer.accumulate_grad_batches": 1, "trainer.num_nodes": 1,
        "trainer.strategy": "auto", "trainer.enable_progress_bar": False,
        "diagnostics.probe": True, "diagnostics.probe_batch_size": 256,
        "diagnostics.jacobian": False, "diagnostics.every_n_epochs": 1,
        "diagnostics.histograms": False, "seed": seed, "target_metric": 0.9, "max_loss": None,
    }
    if init == "random":
        cfg["init.std"] = 0.01
    return cfg


def _yaml(flat: dict[str, Any]) -> str:
    """The nested YAML Hydra would write for a flat config."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    def dump(node: dict[str, Any], indent: int) -> str:
        out = ""
        for k, v in node.items():
            if isinstance(v, dict):
                out += " " * indent + f"{k}:\n" + dump(v, indent + 2)
            else:
                out += " " * indent + f"{k}: {json.dumps(v)}\n"
        return out

    return dump(nested, 0)


def _write_run(root: Path, num: int, init: str, act: str, depth: int, seed: int,
               kind: str, rng: np.random.Generator) -> None:
    name = f"{num}_activation={act},init={init},model.depth={depth},seed={seed}"
    run = root / name
    run.mkdir()
    if kind == "empty":
        return
    hydra = run / ".hydra"
    hydra.mkdir()
    cfg = _config(init, act, depth, seed)
    (hydra / "overrides.yaml").write_text(
        f"- init={init}\n- activation={act}\n- model.depth={depth}\n- seed={seed}\n")
    (hydra / "config.yaml").write_text(_yaml(cfg))
    (hydra / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    choices:\n" + "".join(
            f"      {k}: {v}\n" for k, v in (("dataset", "digits"), ("model", "mlp"),
                                            ("init", init), ("activation", act),
                                            ("optimizer", "sgd"))) + "# padding\n" * 150)
    quality = {"he": 0.95, "xavier": 0.93, "lecun": 0.92, "orthogonal": 0.94,
               "random": 0.3}[init] - 0.004 * depth
    rate = 0.25 + 0.05 * rng.random()
    epochs = EPOCHS if kind != "diverged" else int(rng.integers(2, EPOCHS))
    rows, hit = [], None
    for e in range(1, epochs + 1):
        acc = quality * (1 - math.exp(-rate * e)) + 0.01 * rng.standard_normal()
        loss = 2.3 * math.exp(-rate * e) + 0.05
        if hit is None and acc >= 0.9:
            hit = e
        rows.append({"epoch": e, "step": 20 * e, "train_loss": loss * 0.9,
                     "train_acc": acc + 0.01, "val_loss": loss, "val_acc": acc,
                     "lr": 0.05, "time_s": 0.3 * e})
    layers = [{"layer": f"blocks.{i}.linear", "index": i, "type": "Linear",
               "activation": act, "fan_in": 128, "fan_out": 128, "calls": 1,
               "preact_mean": 0.0, "preact_std": float(rng.random()),
               "act_mean": 0.3, "act_std": float(rng.random()),
               "grad_std": float(rng.random() * 1e-3), "weight_norm": 9.0,
               "weight_grad_norm": 0.7, "grad_weight_ratio": 0.08,
               "dead_frac": 0.0, "saturated_frac": 0.0} for i in range(depth + 1)]
    status = {"diverged": "diverged", "failed": "failed", "running": "running"}.get(
        kind, "completed")
    s: dict[str, Any] = {
        "status": status, "run_name": name, "dataset": "digits", "model": "mlp",
        "init": init, "activation": act, "optimizer": "sgd", "seed": seed,
        "overrides": [f"init={init}", f"activation={act}", f"model.depth={depth}",
                      f"seed={seed}"],
        "config": cfg, "task": "classification",
        "data": {"name": "digits", "n_train": 1257, "n_val": 270, "n_test": 270},
        "n_params": 42634 + 16512 * depth, "fit_time_s": 20.0, "steps": 20 * epochs,
        "ms_per_step": 50.0,
    }
    if status == "completed":
        s.update(test_loss=rows[-1]["val_loss"], test_acc=rows[-1]["val_acc"])
    if status == "diverged":
        s.update(diverged_step=20 * epochs + 3, diverged_epoch=epochs,
                 error=f"training loss became nan at step {20 * epochs + 3}")
    if status == "failed":
        rows = []
        s.update(error_type="RuntimeError", error="mat1 and mat2 shapes cannot be multiplied",
                 traceback="Traceback (most recent call last):\n  ...\n" * 10)
    if rows:
        best = max(rows, key=lambda r: r["val_acc"])
        s.update(epochs_run=len(rows), final_train_loss=rows[-1]["train_loss"],
                 final_train_acc=rows[-1]["train_acc"], final_val_loss=rows[-1]["val_loss"],
                 final_val_acc=rows[-1]["val_acc"], best_val_acc=best["val_acc"],
                 best_epoch=best["epoch"], best_val_loss=min(r["val_loss"] for r in rows),
                 best_train_loss=min(r["train_loss"] for r in rows), epochs_to_target=hit)
    s["history"] = "history.csv"
    s["init_diagnostics"] = layers
    s.update(init_act_std_last=layers[-2]["act_std"], init_grad_std_ratio=1.3,
             init_dead_frac_max=0.0, init_saturated_frac_max=0.0,
             measured_chi1=float(0.8 + 0.4 * rng.random()), wall_time_s=21.0)
    text = json.dumps(s, indent=2)
    if kind == "truncated":
        text = text[: len(text) // 3]
    (run / "summary.json").write_text(text)
    cols = list(rows[0]) if rows else ["epoch"]
    (run / "history.csv").write_text(
        ",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n"
                                        for r in rows))


def make_sweep(root: Path, runs: int = 1000, seed: int = 0) -> Path:
    """``runs`` synthetic run folders in ``root`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    grid = [(i, a, d) for a in ACTIVATIONS for i in INITS for d in DEPTHS]
    kinds = rng.choice(["completed", "diverged", "failed", "truncated", "empty", "running"],
                       size=runs, p=[0.91, 0.05, 0.02, 0.01, 0.005, 0.005])
    for num in range(runs):
        init, act, depth = grid[num % len(grid)]
        _write_run(root, num, init, act, depth, num // len(grid), str(kinds[num]), rng)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the sweep here and keep it (default: a temp folder)")
    parser.add_argument("--no-plots", action="store_true", help="time the tables only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the broken runs' warnings are expected

    from initlab.results.aggregate import aggregate, scan, summarize, sweep_keys
    from initlab.results.plots import plot_all
    from initlab.results.report import build_report

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "sweep"
        t0 = time.perf_counter()
        make_sweep(root, args.runs)
        print(f"wrote {args.runs} run folders in {time.perf_counter() - t0:.1f} s: {root}")

        t0 = time.perf_counter()
        found = scan(root)
        t_scan = time.perf_counter() - t0
        keys = sweep_keys(found.results)
        t0 = time.perf_counter()
        summary = summarize(found.results, keys)
        t_sum = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_report(root, found.results, summary, keys=keys)
        t_rep = time.perf_counter() - t0

        t0 = time.perf_counter()
        aggregate(root, plots=False)
        t_tables = time.perf_counter() - t0
        print(f"tables + report (aggregate, plots=False): {t_tables:.2f} s "
              f"[scan {t_scan:.2f} s, summary {t_sum:.2f} s, report {t_rep:.2f} s]")
        status = found.results["status"].value_counts().to_dict()
        print(f"  {len(found.results)} rows, {len(summary)} configurations, status {status}")
        if not args.no_plots:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("  %(message)s"))
            plot_log = logging.getLogger("initlab.results.plots")
            plot_log.setLevel(logging.INFO)
            plot_log.addHandler(handler)
            plot_log.propagate = False
            t0 = time.perf_counter()
            written = plot_all(root, found.results, keys=keys, diagnostics=found.diagnostics,
                               init_histograms=found.init_histograms)
            t_plots = time.perf_counter() - t0
            print(f"plots, {len(written)} figures: {t_plots:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
