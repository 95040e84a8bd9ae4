"""Plot one logged quantity of several ``irl pretrain`` runs against the training step.

Each run is ``LABEL=RUN_DIR`` (the folder holding ``metrics.csv``).

Usage: python benchmarks/diagnostics/plot_pretrain.py "4k episodes=runs/ant/base-l1"
       "20k episodes=runs/ant/base-20k" --out PNG [--tag losses/val_action_nll] [--title T]

Backs docs/results/ant.md, "Five times the data, and the target handed to the model" (the
figure docs/ant_pretrain_curves.png).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_tag(run_dir: str | Path, tag: str) -> tuple[list[int], list[float]]:
    """Steps and values of ``tag`` in ``run_dir/metrics.csv`` (the last value of a repeated
    step wins: a resumed run logs again from its checkpoint)."""
    path = Path(run_dir) / "metrics.csv"
    with open(path, newline="") as f:
        points = {int(r["step"]): float(r["value"]) for r in csv.DictReader(f) if r["tag"] == tag}
    if not points:
        raise ValueError(f"{path}: no rows tagged {tag!r}")
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    p.add_argument("--out", required=True)
    p.add_argument("--tag", default="losses/val_action_nll")
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for spec in args.runs:
        label, sep, run_dir = spec.partition("=")
        if not sep:
            raise ValueError(f"runs must look like LABEL=RUN_DIR, got {spec!r}")
        ax.plot(*read_tag(run_dir, args.tag), marker="o", ms=3, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel(args.tag)
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
