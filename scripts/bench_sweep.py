"""Whole-command wall time: an initlab sweep as a user types it vs the same study as a
plain PyTorch loop (``scripts/plain_sweep.py``).

Both sides are fresh processes (interpreter start, imports, data loading included) and do
the same training (see plain_sweep.py); each writes into its own new temporary folder.

* initlab: ``python train.py -m init=<inits> seed=<seeds> hydra.sweep.dir=<tmp>`` with all
  of its outputs (per-run folders with summary.json, history.csv and TensorBoard files;
  results.csv, summary.csv, plots/ and report.md for the sweep), under the default
  sweeper (``hydra/sweeper=auto``) unless ``--sweeper`` names another;
* plain: ``python scripts/plain_sweep.py --inits ... --seeds ... --out <tmp>`` (one
  results CSV and one loss/accuracy plot).

``--runs 9``: init=xavier,he,random x seed=0,1,2 (the issue's canonical study);
``--runs 64``: init=xavier,he,random,lecun x seed=0..15. The two sides alternate,
``--repeats`` times; the median of each is printed with every single time and the ratio.

Before timing, initlab's modules are byte-compiled (``compileall``: what Python caches
after any first run on a user's machine) and each side runs ``--warmup`` times untimed.

``--threads N`` sets ``OMP_NUM_THREADS=N`` for both sides (torch's default thread count
otherwise). On a machine shared with other jobs, two intra-op threads per process can
spin-wait on each other: the plain loop's small per-batch products then run 20-50x
slower than on one thread, which says more about the machine than about either side.

    python scripts/bench_sweep.py [--runs 9|64] [--repeats 3] [--epochs N] [--threads N]
                                  [--sweeper auto|checked|vectorized] [--warmup 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRIDS = {9: ("xavier,he,random", "0,1,2"),
         64: ("xavier,he,random,lecun", ",".join(str(s) for s in range(16)))}


def commands(runs: int, out: Path, epochs: int | None, sweeper: str | None
             ) -> dict[str, list[str]]:
    inits, seeds = GRIDS[runs]
    initlab = [sys.executable, str(ROOT / "train.py"), "-m", f"init={inits}", f"seed={seeds}",
               f"hydra.sweep.dir={out / 'initlab'}"]
    plain = [sys.executable, str(ROOT / "scripts" / "plain_sweep.py"), "--inits", inits,
             "--seeds", seeds, "--out", str(out / "plain")]
    if sweeper:
        initlab.append(f"hydra/sweeper={sweeper}")
    if epochs is not None:
        initlab.append(f"trainer.max_epochs={epochs}")
        plain += ["--epochs", str(epochs)]
    return {"initlab": initlab, "plain": plain}


def timed(cmd: list[str], threads: int | None) -> float:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall


def check_outputs(side: str, out: Path, runs: int) -> None:
    """The side did the whole job: every run and every output is there."""
    if side == "plain":
        rows = (out / "plain" / "results.csv").read_text().splitlines()
        assert len(rows) == runs + 1 and (out / "plain" / "curves.png").is_file(), out
        return
    sweep = out / "initlab"
    rows = (sweep / "results.csv").read_text().splitlines()
    assert len(rows) == runs + 1, f"{sweep}: {len(rows) - 1} rows"
    for name in ("summary.csv", "report.md"):
        assert (sweep / name).is_file(), sweep / name
    assert any((sweep / "plots").glob("*.png")), sweep / "plots"
    assert len(list(sweep.rglob("events.out.tfevents*"))) >= runs, "TensorBoard files"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, choices=sorted(GRIDS), default=9)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None,
                    help="trainer.max_epochs for both (default: initlab's default, 10)")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS for both sides (default: torch's own choice)")
    ap.add_argument("--sweeper", default=None,
                    help="hydra/sweeper for initlab (default: none given, i.e. auto)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed runs of each side first (file cache; default 1)")
    args = ap.parse_args()
    # initlab's own modules byte-compiled, as Python caches them after a first run on a
    # user's machine (not where PYTHONDONTWRITEBYTECODE is set, as in some sandboxes);
    # the plain script runs as __main__, which Python compiles every time anyway
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")],
                   check=True, stdout=subprocess.DEVNULL)
    for _ in range(args.warmup):
        for side in ("initlab", "plain"):
            with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
                timed(commands(args.runs, Path(tmp), args.epochs, args.sweeper)[side],
                      args.threads)
    times: dict[str, list[float]] = {"initlab": [], "plain": []}
    for rep in range(args.repeats):
        for side in ("initlab", "plain"):
            with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
                cmd = commands(args.runs, Path(tmp), args.epochs, args.sweeper)[side]
                if rep == 0:
                    print("$", " ".join("python" if c == sys.executable else c for c in cmd),
                          flush=True)
                times[side].append(timed(cmd, args.threads))
                check_outputs(side, Path(tmp), args.runs)
            print(f"repeat {rep + 1}: {side} {times[side][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for side, ts in times.items():
        print(f"{side:8s} median {med[side]:6.1f} s  (each: "
              + ", ".join(f"{t:.1f}" for t in ts) + ")")
    print(f"ratio initlab / plain: {med['initlab'] / med['plain']:.2f} "
          f"({args.runs} runs, median of {args.repeats}, threads: "
          f"{args.threads or 'default'}, sweeper: {args.sweeper or 'default'})")


if __name__ == "__main__":
    main()
