"""Runs per minute: K runs vectorized in one job vs K sequential ordinary runs.

The work: the default config (MLP on digits, SGD; ``--epochs`` epochs; overrides such
as ``model=cnn`` change it) under K (init, seed) pairs (inits cycle through xavier, he,
lecun, orthogonal; seeds 0..).
Both sides get the same composed configs, ``logger=none diagnostics=off``, no progress
bar, and both do everything a run does: load the data, initialize, train with a
validation pass per epoch, test, write summary.json + history.csv.

* sequential: ``initlab.pipeline.run`` once per run (the ordinary Lightning pipeline,
  untouched); for K above ``--max-sequential`` only that many runs are timed and the
  time is extrapolated linearly (marked ``*`` in the table);
* vectorized: ``initlab.vectorized.train_members`` on all K at once.

Imports and one run of each kind are warmed up first and not timed. The two sides
alternate, ``--repeats`` times; each figure is the side's fastest repeat (on a machine
shared with other jobs the fastest repeat is the one least disturbed by them), and the
medians are printed too.

    python scripts/bench_vectorized.py [--ks 1,4,16,64] [--epochs 5] [--repeats 3]
                                       [--threads N] [key=value ...]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from initlab.pipeline import run  # noqa: E402
from initlab.vectorized.run import Member, train_members  # noqa: E402

INITS = ("xavier", "he", "lecun", "orthogonal")


def member_configs(k: int, overrides: list[str]):  # noqa: ANN201
    pairs = itertools.islice(((i, s) for s in itertools.count() for i in INITS), k)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return [compose("config", overrides=[*overrides, f"init={i}", f"seed={s}"])
                for i, s in pairs]


def time_sequential(cfgs, out: Path) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    for j, cfg in enumerate(cfgs):
        summary = run(cfg, out / f"seq{j}", progress_bar=False)
        assert summary["status"] == "completed", summary.get("error")
    return time.perf_counter() - t0


def time_vectorized(cfgs, out: Path) -> float:  # noqa: ANN001
    members = [Member(cfg, out / f"vec{j}") for j, cfg in enumerate(cfgs)]
    t0 = time.perf_counter()
    summaries = train_members(members)
    elapsed = time.perf_counter() - t0
    bad = [s for s in summaries if s["status"] != "completed"]
    assert not bad, bad[0].get("error")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="1,4,16,64", help="comma-separated member counts")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-sequential", type=int, default=16,
                        help="time at most this many sequential runs, extrapolate beyond")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for both sides (default: torch's choice)")
    parser.add_argument("overrides", nargs="*", help="extra config overrides (key=value)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    base = [f"trainer.max_epochs={args.epochs}", "logger=none", "diagnostics=off",
            *args.overrides]
    all_cfgs = member_configs(max(ks), base)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        time_sequential(all_cfgs[:1], out / "warm")  # imports, data, first-call costs
        time_vectorized(all_cfgs[:1], out / "warm")
        rows = []
        for k in ks:
            cfgs = all_cfgs[:k]
            n_seq = min(k, args.max_sequential)
            seq, vec = [], []
            for r in range(args.repeats):
                vec.append(time_vectorized(cfgs, out / f"k{k}r{r}"))
                seq.append(time_sequential(cfgs[:n_seq], out / f"k{k}r{r}") * k / n_seq)
            t_seq, t_vec = min(seq), min(vec)
            rows.append((k, t_seq, n_seq < k, t_vec))
            print(f"K={k}: sequential {t_seq:.2f} s (median {statistics.median(seq):.2f})"
                  f"{' extrapolated' if n_seq < k else ''}, vectorized {t_vec:.2f} s "
                  f"(median {statistics.median(vec):.2f})", flush=True)
    print()
    model = str(all_cfgs[0].model._target_).rsplit(".", 1)[-1]
    data = str(all_cfgs[0].dataset._target_).rsplit(".", 1)[-1]
    print(f"{model} on {data}, {args.epochs} epochs, {' '.join(base)}; torch threads "
          f"{torch.get_num_threads()}; best of {args.repeats}")
    print("| K | sequential s | sequential runs/min | vectorized s | vectorized runs/min "
          "| speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k, t_seq, extrapolated, t_vec in rows:
        mark = "*" if extrapolated else ""
        print(f"| {k} | {t_seq:.2f}{mark} | {60 * k / t_seq:.0f}{mark} | {t_vec:.2f} | "
              f"{60 * k / t_vec:.0f} | {t_seq / t_vec:.1f}x |")
    if any(r[2] for r in rows):
        print(f"* extrapolated linearly from {args.max_sequential} timed sequential runs")


if __name__ == "__main__":
    main()
