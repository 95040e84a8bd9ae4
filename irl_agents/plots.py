"""Figures readable at a glance: success curves as small multiples, rate-distortion.

Every function writes a PNG and returns the (closed) matplotlib ``Figure``, so tests can check
what was drawn. Success curves get one panel per series on shared axes: curves that sit on top
of each other (every method at zero) stay distinguishable, and each panel's title carries the
series' final value. Lines carry markers, so a curve of a single point is still drawn. Tick
labels are short (``20k``) and few, and log axes get labels at chosen points only, so they
never collide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Series:
    """One success curve: ``rate`` at ``episodes``, with an optional band ``[low, high]``."""

    label: str
    episodes: Sequence[float]
    rate: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(x: float, _pos=None) -> str:
    """Tick label of an episode count: 512, 2k, 20.5k, 1.2M."""
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def episode_axis(ax, episodes: Sequence[float], log_x: bool) -> None:
    """Few, short tick labels on an episodes axis (linear or log) that cannot collide."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

    if log_x:  # labels only at (up to three) episode counts of the data, evenly in log
        ax.set_xscale("log")
        values = np.unique(np.asarray(episodes, dtype=float))
        values = values[values > 0]
        want = np.geomspace(values[0], values[-1], 3) if len(values) > 1 else values
        ticks = np.unique([values[np.argmin(abs(np.log(values) - np.log(w)))] for w in want])
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
    else:  # from 0, so that a curve of one point sits where its episode count is
        ax.set_xlim(0, 1.04 * max(episodes))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3, integer=True, min_n_ticks=2))
    ax.xaxis.set_major_formatter(FuncFormatter(_short))


def success_panels(series: Sequence[Series], path: str | Path, title: str = "",
                   log_x: bool = False, ylabel: str = "success rate", ncols: int = 4):
    """Small multiples of success curves, one panel per series, shared axes.

    The y axis spans [0, 1] once any value passes 0.5, else [0, a little above the largest
    value] (at least 0.05), so small differences near zero stay visible.
    """
    if not series:
        raise ValueError("nothing to plot: no series")
    plt = _pyplot()
    ncols = min(ncols, len(series))
    nrows = math.ceil(len(series) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.5 * ncols + 0.7, 1.9 * nrows + 0.9),
                             sharex=True, sharey=True, squeeze=False)
    values = [v for s in series for v in [*s.rate, *(() if s.high is None else s.high)]
              if np.isfinite(v)]
    top = 1.0 if max(values, default=0) > 0.5 else max(0.05, 1.25 * max(values, default=0))
    for i, (ax, s) in enumerate(zip(axes.flat, series, strict=False)):
        colour = f"C{i % 10}"
        eps = np.asarray(s.episodes, dtype=float)
        ax.plot(eps, s.rate, color=colour, lw=1.5, label=s.label,
                marker="o" if len(eps) <= 40 else None, ms=3)
        if s.low is not None and s.high is not None:
            ax.fill_between(eps, s.low, s.high, color=colour, alpha=0.2, lw=0)
        final = f"final {s.rate[-1]:.3f}" if len(s.rate) else "no data"
        ax.set_title(f"{s.label}\n{final}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(series):]:
        ax.set_visible(False)
    all_eps = [e for s in series for e in s.episodes]
    for ax in axes.flat[: len(series)]:
        ax.set_ylim(-0.02 * top, top)
        if all_eps:
            episode_axis(ax, all_eps, log_x)
    for ax in axes[-1]:
        ax.set_xlabel("episodes", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig


def plot_rate_distortion(runs: dict[str, list[dict]], path: str | Path):
    """KL per step (rate) vs action NLL per step (distortion), one series per label (e.g.
    frozen / co-trained), the paper's Fig. 7.

    Each run is a dict with ``alpha``, ``kl``, ``action_nll`` and ``f1`` (switching F1). Marker
    fill shows F1 on a colour scale (a colour bar says which); runs drawn at the same spot
    share one label listing their alphas, and labels are placed where they overlap nothing.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    # light for F1 near 0, dark for aligned switching: "filled" means what it seems to
    norm, cmap = Normalize(0.0, 1.0), plt.get_cmap("YlGnBu")
    markers = ("o", "s", "^", "D")
    points = []  # (x, y, label, colour)
    for i, (label, rows) in enumerate(runs.items()):
        rows = sorted(rows, key=lambda r: r["alpha"])
        colour = f"C{(0, 3, 2, 1)[i % 4]}"
        xs, ys = [r["kl"] for r in rows], [r["action_nll"] for r in rows]
        ax.plot(xs, ys, color=colour, lw=1, label=label, marker=markers[i % 4], ms=0)
        ax.scatter(xs, ys, c=[cmap(norm(r["f1"])) for r in rows], edgecolors=colour,
                   marker=markers[i % 4], s=42, linewidths=1.2, zorder=3)
        points += [(r["kl"], r["action_nll"], r["alpha"], colour) for r in rows]
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlabel("rate: KL per step (nats)")
    ax.set_ylabel("distortion: action NLL per step")
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="switching F1", pad=0.02)
    legend = ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    _label_points(fig, ax, points, avoid=[legend])
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig


def _label_points(fig, ax, points: list[tuple[float, float, float, str]], avoid=(),
                  merge_px: float = 10.0) -> None:
    """Annotate points with ``alpha = ...``: points within ``merge_px`` of each other on
    screen (of one colour) share a label; each label takes the first of a few offsets where
    it overlaps no other label, no marker and nothing in ``avoid``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    groups: list[dict] = []
    for x, y, alpha, colour in points:
        px = to_px((x, y))
        for g in groups:
            if g["colour"] == colour and np.hypot(*(g["px"] - px)) <= merge_px:
                g["alphas"].append(alpha)
                break
        else:
            groups.append({"xy": (x, y), "px": px, "alphas": [alpha], "colour": colour})
    taken = [a.get_window_extent(renderer) for a in avoid]
    marker_boxes = [_box(to_px((x, y)), 4) for x, y, _, _ in points]
    offsets = [(6, 4), (6, -12), (-6, 4), (-6, -12), (6, 14), (6, -22), (-6, 14), (-6, -22),
               (18, -4), (-18, -4), (6, 26), (6, -34)]
    for g in sorted(groups, key=lambda g: -len(g["alphas"])):
        alphas = sorted(set(g["alphas"]))
        text = "α " + ", ".join(f"{a:g}" for a in alphas)
        for dx, dy in offsets:
            note = ax.annotate(text, g["xy"], xytext=(dx, dy), textcoords="offset points",
                               fontsize=7, color=g["colour"],
                               ha="left" if dx > 0 else "right")
            box = note.get_window_extent(renderer)
            clash = any(box.overlaps(b) for b in taken + marker_boxes) or not (
                ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1))
            if not clash:
                break
            note.remove()
        else:  # nowhere free: keep the first place rather than drop the label
            note = ax.annotate(text, g["xy"], xytext=offsets[0], textcoords="offset points",
                               fontsize=7, color=g["colour"])
            box = note.get_window_extent(renderer)
        taken.append(box)


def _box(px: np.ndarray, half: float):
    from matplotlib.transforms import Bbox

    return Bbox([[px[0] - half, px[1] - half], [px[0] + half, px[1] + half]])
