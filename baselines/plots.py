"""The comparison's figures: median success over seeds with the 25-75% band, one panel per
method (:func:`irl_agents.plots.success_panels`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from irl_agents.plots import Series, success_panels


def comparison_series(runs: list[dict], methods: Sequence[str]) -> list[Series]:
    """Per method with runs: the median success over seeds and its 25-75% band, on the
    episodes all its seeds reached."""
    out = []
    for name in methods:
        mine = [r for r in runs if r["method"] == name]
        if not mine:
            continue
        n = min(len(r["episodes"]) for r in mine)
        rates = np.asarray([r["success_rate"][:n] for r in mine], dtype=float)
        q25, q50, q75 = np.percentile(rates, [25, 50, 75], axis=0)
        out.append(Series(name, mine[0]["episodes"][:n], q50, q25, q75))
    return out


def plot_comparison(runs: list[dict], methods: Sequence[str], path: str | Path,
                    log_x: bool = False, title: str = ""):
    """Median success vs episodes per method with the 25-75% band over seeds."""
    return success_panels(comparison_series(runs, methods), path, title=title, log_x=log_x,
                          ylabel="success (median, 25-75%)")


def plot_comparison_figures(runs: list[dict], methods: Sequence[str], folder: str | Path,
                            title: str = "") -> list[Path]:
    """``success.png`` (linear episodes) and ``success_log.png`` (log) in ``folder``."""
    folder = Path(folder)
    paths = [folder / "success.png", folder / "success_log.png"]
    for path, log_x in zip(paths, (False, True), strict=True):
        plot_comparison(runs, methods, path, log_x=log_x, title=title)
    return paths
