"""Wall time of the same 12-run sweep with Hydra's basic launcher and with the joblib
preset (hydra/launcher=local_parallel), run back to back as real subprocesses.

    python scripts/bench_launchers.py [--epochs 5] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["init=xavier,he,random", "seed=0,1,2,3"]  # 12 runs


def timed_sweep(launcher: list[str], out: Path, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *launcher, f"paths.output_root={out}",
           "hydra.callbacks.aggregate.plots=false", *SWEEP, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or "12 runs: 12 completed" not in proc.stdout:
        raise SystemExit(f"sweep failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    extra = [f"trainer.max_epochs={args.epochs}", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        basic = timed_sweep([], Path(tmp) / "basic", extra)
        parallel = timed_sweep(["hydra/launcher=local_parallel"], Path(tmp) / "par", extra)
    print(f"cores: {os.cpu_count()}")
    print(f"basic launcher (1 job at a time):           {basic:7.1f} s")
    print(f"local_parallel (joblib, 2 workers x threads): {parallel:7.1f} s")
    print(f"speed-up: {basic / parallel:.2f}x")
    return basic / parallel


if __name__ == "__main__":
    main()
