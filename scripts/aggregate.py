"""Rebuild a sweep's results.csv, summary.csv and plots: python scripts/aggregate.py DIR"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from initlab.results.aggregate import aggregate, collect, status_line  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--no-plots", action="store_true", help="only the CSV files")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder")
    written = aggregate(args.sweep_dir, plots=not args.no_plots)
    print(status_line(collect(args.sweep_dir)))
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
