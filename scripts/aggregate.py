"""Rebuild a sweep's results.csv, summary.csv, plots/ and report.md.

    python scripts/aggregate.py DIR [--no-plots] [--heatmap-axes ROW COL] [--formats png pdf]

DIR is a sweep folder (outputs/multirun/<time>/): its run folders are the sub-folders
holding .hydra/ or summary.json.  Broken or unfinished runs are listed as incomplete.

Exit status: 0 written; 2 bad arguments (DIR missing, not a folder, not a sweep folder,
an unknown heatmap axis); 3 an output could not be written into DIR (read-only folder,
full disk): one line names the folder and the file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


EXIT_NOT_WRITTEN = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Rebuild results.csv, summary.csv, plots/ and report.md of a sweep folder.",
        epilog=f"Exit status: 0 written; 2 bad arguments (DIR missing, not a folder, not a "
               f"sweep folder, an unknown heatmap axis); {EXIT_NOT_WRITTEN} an output could "
               "not be written into DIR (e.g. a read-only folder): one line names the folder "
               "and the file.")
    parser.add_argument("sweep_dir", type=Path, metavar="DIR",
                        help="sweep folder (e.g. outputs/multirun/<time>)")
    parser.add_argument("--no-plots", action="store_true",
                        help="only the CSV files and the report")
    parser.add_argument("--heatmap-axes", nargs=2, metavar=("ROW", "COL"), default=None,
                        help="keys of the heatmap's rows and columns, e.g. init model.depth "
                             "(default: init activation)")
    parser.add_argument("--formats", nargs="+", metavar="FMT", default=None,
                        help="figure formats: png (always written) and pdf and/or svg, "
                             "e.g. --formats png pdf (for papers)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-run warnings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    sweep: Path = args.sweep_dir
    if not sweep.exists():
        parser.error(f"{sweep} does not exist")
    if not sweep.is_dir():
        parser.error(f"{sweep} is not a folder (give the sweep folder, "
                     "e.g. outputs/multirun/<time>)")
    import pandas as pd  # after the cheap checks: a typo fails fast

    from initlab.results.aggregate import SweepWriteError, aggregate, run_dirs, status_line

    if not run_dirs(sweep):
        if (sweep / "summary.json").exists() or (sweep / ".hydra").is_dir():
            parser.error(f"{sweep} is a single run folder, not a sweep folder: give the "
                         "folder that holds the runs (e.g. its parent, outputs/runs)")
        parser.error(f"{sweep} is not a sweep folder: no run folder in it (a run folder is a "
                     "sub-folder with .hydra/ or summary.json)")
    try:
        written = aggregate(sweep, plots=not args.no_plots, axes=args.heatmap_axes,
                            formats=args.formats)
    except SweepWriteError as exc:
        print(f"{parser.prog}: error: {exc.strerror}", file=sys.stderr)
        return EXIT_NOT_WRITTEN
    except ValueError as exc:
        parser.error(str(exc))
    print(status_line(pd.read_csv(written["results"], usecols=["status"])))
    for kind, path in written.items():
        print(f"{kind + ':':9}{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
