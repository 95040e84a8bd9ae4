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
                 title: str = "", log_x: bool = False):
    """Success rate vs episodes, one panel per ``(label, curve)`` (:mod:`irl_agents.plots`);
    returns the figure."""
    from irl_agents.plots import Series, success_panels

    return success_panels([Series(label, curve["episodes"], curve["success_rate"])
                           for label, curve in curves], path, title=title, log_x=log_x,
                          ylabel="success rate (batch)")
