"""Tabulate and plot finished RL runs from any folders, grouped under labels.

Each group is ``LABEL=GLOB``: every folder matching GLOB that holds ``curve.csv`` and
``summary.json`` (from ``irl internal-rl``, ``irl compare`` or the raw-action trainer) is one
seed. Prints the Markdown table of ``irl compare`` (median over seeds, 25-75%) and writes the
same median-and-band plot.

Usage: python benchmarks/diagnostics/plot_runs.py "oracle codes=runs/oracle-irl-0123-s*"
       "raw-action=runs/compare-grid/0-1-2-3/runs/raw-action/seed*" --out PNG [--title T]
       [--budgets 256 1024 10240] [--successes-by 50176]

``--successes-by N`` also prints, per run, the number of successful episodes among its first N
(each curve point is one batch: its success rate times the episodes since the previous point),
which compares methods before they learn: the paper's "highest success before any RL".

Backs docs/results/internal_rl.md, "An oracle code space: with colour codes, internal RL does
work", "Without labels: codes named by where a segment ends" and "Issue 18" (tables and
figures of RL runs outside a sweep, e.g. the ladder of decisions, point 7).
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np

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


def successes_by(run: dict, episodes: int) -> int:
    """Successful episodes among a run's first ``episodes`` (curve points up to there)."""
    eps = np.asarray(run["episodes"], dtype=np.int64)
    batch = np.diff(eps, prepend=0)
    keep = eps <= episodes
    return int(round(float(np.sum(np.asarray(run["success_rate"])[keep] * batch[keep]))))


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
    p.add_argument("--successes-by", type=int, metavar="N",
                   help="also print each run's number of successes in its first N episodes")
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
    if args.successes_by:
        for label in labels:
            mine = [r for r in runs if r["method"] == label]
            print(json.dumps({"group": label, "episodes": args.successes_by,
                              "successes_per_run": [successes_by(r, args.successes_by)
                                                    for r in mine],
                              "runs_reaching_it": sum(r["episodes"][-1] >= args.successes_by
                                                      for r in mine)}))


if __name__ == "__main__":
    main()
