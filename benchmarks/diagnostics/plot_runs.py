"""Tabulate and plot finished RL runs from any folders, grouped under labels.

Each group is ``LABEL=GLOB``: every folder matching GLOB that holds ``curve.csv`` and
``summary.json`` (from ``irl internal-rl``, ``irl compare`` or the raw-action trainer) is one
seed. Prints the Markdown table of ``irl compare`` (median over seeds, 25-75%) and writes the
same median-and-band plot.

Usage: python benchmarks/diagnostics/plot_runs.py "oracle codes=runs/oracle-irl-0123-s*"
       "raw-action=runs/compare-grid/0-1-2-3/runs/raw-action/seed*" --out PNG [--title T]
       [--budgets 256 1024 10240]

Backs docs/results/internal_rl.md, "An oracle code space: with colour codes, internal RL does
work", "Without labels: codes named by where a segment ends" and "Issue 18" (tables and
figures of RL runs outside a sweep, e.g. the ladder of decisions, point 7).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from baselines.compare import default_budgets, markdown_table, run_record
from baselines.plots import plot_comparison


def load_group(label: str, pattern: str, unfinished: bool = False) -> list[dict]:
    """One record per finished run folder matching ``pattern`` (``unfinished``: also runs
    still going or stopped, up to their last curve row)."""
    folders = [f for f in sorted(Path(p) for p in glob.glob(pattern))
               if (f / "summary.json").is_file()
               or (unfinished and (f / "curve.csv").is_file())]
    if not folders:
        raise ValueError(f"no finished runs (curve.csv + summary.json) match {pattern!r}")
    return [run_record(folder, label, seed) for seed, folder in enumerate(folders)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("groups", nargs="+", metavar="LABEL=GLOB")
    p.add_argument("--out", required=True, help="plot path (PNG)")
    p.add_argument("--title", default="")
    p.add_argument("--budgets", type=int, nargs="*", help="episode budgets for the table")
    p.add_argument("--unfinished", action="store_true",
                   help="also runs without summary.json (still going or stopped), as far as "
                        "their curve goes")
    p.add_argument("--log-x", action="store_true", help="log-scale episode axis")
    args = p.parse_args(argv)
    runs, labels = [], []
    for group in args.groups:
        label, sep, pattern = group.partition("=")
        if not sep:
            raise ValueError(f"groups are LABEL=GLOB, got {group!r}")
        runs += load_group(label, pattern, args.unfinished)
        labels.append(label)
    budgets = args.budgets or default_budgets(max(r["episodes"][-1] for r in runs), 256)
    print(markdown_table(runs, labels, budgets))
    plot_comparison(runs, labels, args.out, log_x=args.log_x, title=args.title)


if __name__ == "__main__":
    main()
