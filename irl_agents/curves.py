"""Success-rate curves of RL runs: read ``curve.csv`` files, summarise and plot them."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def read_curve(path: str | Path) -> dict[str, list[float]]:
    """Columns of a ``curve.csv`` (``episodes``, ``success_rate``, ...) as float lists."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: empty curve")
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def episodes_to(curve: dict[str, list[float]], level: float) -> float | None:
    """Episodes after which the batch success rate first reached ``level`` (None: never)."""
    for ep, sr in zip(curve["episodes"], curve["success_rate"], strict=True):
        if sr >= level:
            return ep
    return None


def plot_success(curves: Sequence[tuple[str, dict[str, list[float]]]], path: str | Path,
                 title: str = "", log_x: bool = False) -> None:
    """Success rate vs episodes, one line per ``(label, curve)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label, curve in curves:
        ax.plot(curve["episodes"], curve["success_rate"], label=label, lw=1.5)
    ax.set_xlabel("episodes")
    ax.set_ylabel("success rate (batch)")
    ax.set_ylim(-0.02, 1.02)
    if log_x:
        ax.set_xscale("log")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
