"""Every produced figure has its expected series, and nothing on it overlaps: the comparison
(every method at zero), the quick sweep's log axis, the demo's one-batch curves and the
rate-distortion plot."""

import itertools

import numpy as np
import pytest

from baselines.plots import plot_comparison_figures
from irl_agents.curves import plot_success
from irl_agents.plots import plot_rate_distortion

METHODS = ["internal-rl", "prior", "raw-action", "no-temporal-abstraction", "cotrained",
           "compile", "flat-ppo"]


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.lines]


def series(fig) -> dict[str, np.ndarray]:
    """Label -> y data of every drawn line."""
    return {line.get_label(): np.asarray(line.get_ydata()) for ax in panels(fig)
            for line in ax.lines}


def renderer(fig):
    """A renderer for a figure the plotting function has closed (as it should)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def assert_no_overlap(fig, artists):
    r = renderer(fig)
    boxes = [a.get_window_extent(r) for a in artists if a.get_visible() and a.get_text()]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


def tick_labels(fig):
    return [t for ax in panels(fig) for t in ax.get_xticklabels() + ax.get_yticklabels()]


def runs(rates_by_method, episodes):
    return [{"method": m, "seed": s, "episodes": episodes, "success_rate": list(r)}
            for m, seeds in rates_by_method.items() for s, r in enumerate(seeds)]


def test_comparison_with_every_method_at_zero(tmp_path):
    """docs/compare_posttrain.png: seven methods, all zero, each still visible on its own."""
    eps = list(range(256, 20481, 256))
    data = runs({m: [np.zeros(len(eps))] * 3 for m in METHODS}, eps)
    paths = plot_comparison_figures(data, METHODS, tmp_path, title="all zero")
    assert [p.name for p in paths] == ["success.png", "success_log.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
    from baselines.plots import plot_comparison

    fig = plot_comparison(data, METHODS, tmp_path / "x.png")
    assert len(panels(fig)) == len(METHODS)  # one panel per method: nothing hides another
    drawn = series(fig)
    assert list(drawn) == METHODS and all((y == 0).all() for y in drawn.values())
    ymin, ymax = panels(fig)[0].get_ylim()
    assert ymin < 0 < 0.01 < ymax <= 0.1  # zero is on the axis, not its edge
    assert [ax.get_title().splitlines()[0] for ax in panels(fig)] == METHODS
    for ax in panels(fig):
        assert_no_overlap(fig, ax.get_xticklabels())


def test_comparison_median_and_band():
    from baselines.plots import comparison_series

    eps = [100, 200, 300]
    data = runs({"a": [[0.0, 0.2, 0.4], [0.0, 0.4, 0.8], [0.2, 0.6, 1.0]]}, eps)
    (s,) = comparison_series(data, ["a", "missing"])
    np.testing.assert_allclose(s.rate, [0.0, 0.4, 0.8])
    np.testing.assert_allclose(s.low, [0.0, 0.3, 0.6])
    np.testing.assert_allclose(s.high, [0.1, 0.5, 0.9])


def test_quick_sweep_log_axis_labels_do_not_collide(tmp_path):
    """irl compare --quick: two points per curve (128 and 256 episodes) on a log axis."""
    data = runs({m: [[0.0, 0.01 * i]] for i, m in enumerate(METHODS)}, [128, 256])
    from baselines.plots import plot_comparison

    fig = plot_comparison(data, METHODS, tmp_path / "q.png", log_x=True)
    ax = panels(fig)[-1]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels == ["128", "256"]  # at the data's own episode counts, short
    for ax in panels(fig):
        assert_no_overlap(fig, ax.get_xticklabels())
    assert_no_overlap(fig, [ax.title for ax in panels(fig)])


def test_demo_plot_of_one_batch_is_not_blank(tmp_path):
    """irl demo --episodes 256: one curve point per stage must still be drawn."""
    curves = [("post-training task", {"episodes": [256.0], "success_rate": [0.0]}),
              ("0-1-2-3, segment codes", {"episodes": [256.0], "success_rate": [0.02]})]
    fig = plot_success(curves, tmp_path / "success.png", title="grid: internal RL, seed 0")
    drawn = series(fig)
    assert list(drawn) == [label for label, _ in curves]
    for ax in panels(fig):
        (line,) = ax.lines
        assert line.get_marker() not in (None, "None", "") and line.get_markersize() > 0
        x0, x1 = ax.get_xlim()
        assert x0 <= 256 <= x1
    assert (tmp_path / "success.png").stat().st_size > 5000


# Rows of docs/results/metacontroller.md's rate-distortion table (boundary 1): alpha, KL, NLL, F1.
FROZEN = [(0, 28.6, .289, 0), (0.01, .79, .313, 0), (0.02, .38, .328, .008),
          (0.03, .33, .326, .019), (0.05, .001, .387, .13), (0.1, .0002, .387, .23),
          (0.17, .0001, .387, .15), (0.3, 0, .387, .17), (0.5, 0, .387, .24), (1, 0, .387, .17)]
COTRAINED = [(0, 32.5, .319, 0), (0.02, .0001, .393, 0), (0.1, 0, .394, 0)]


def rd_rows(table):
    return [{"alpha": a, "kl": k, "action_nll": n, "f1": f} for a, k, n, f in table]


def test_rate_distortion_fill_labels_and_series(tmp_path):
    fig = plot_rate_distortion({"frozen base": rd_rows(FROZEN),
                                "co-trained": rd_rows(COTRAINED)}, tmp_path / "rd.png")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["frozen base", "co-trained"]
    assert [len(line.get_xdata()) for line in ax.lines] == [len(FROZEN), len(COTRAINED)]
    # marker fill encodes F1 (a colour bar says so): F1 0 and F1 0.24 look different
    assert any("F1" in a.get_ylabel() for a in fig.axes[1:])
    faces = ax.collections[0].get_facecolors()
    f1 = [r[3] for r in sorted(FROZEN)]
    assert not np.allclose(faces[f1.index(0)], faces[f1.index(0.24)])
    # every alpha is labelled once, and no label overlaps another or the legend
    notes = [t for t in ax.texts if t.get_text().startswith("α")]
    labelled = [a for t in notes for a in t.get_text()[2:].split(", ")]
    assert sorted(labelled) == sorted(f"{a:g}" for a, *_ in FROZEN + COTRAINED)
    assert_no_overlap(fig, [*notes, *ax.get_legend().get_texts()])
    r = renderer(fig)
    inside = ax.get_window_extent(r)
    for t in notes:
        box = t.get_window_extent(r)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1


def test_nothing_to_plot_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no series"):
        plot_success([], tmp_path / "empty.png")
