"""Switching-alignment metrics on hand-made gates."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from irl_agents.switching import alignment, boundaries, match_counts, switch_times


def test_boundaries_and_switch_times():
    assert boundaries(np.array([0, 0, 1, 1, 1, 3])).tolist() == [2, 5]
    assert switch_times(np.array([1.0, 0.2, 0.7, 0.5, 0.1])).tolist() == [2, 3]


def test_perfect_and_shifted_switching():
    labels = [np.array([0, 0, 0, 2, 2, 2, 1, 1])]
    perfect = [np.array([1, 0, 0, 1, 0, 0, 1, 0.0])]
    assert alignment(perfect, labels)["f1"] == 1.0
    shifted = [np.array([1, 0, 0, 0, 1, 0, 0, 1.0])]  # one step late: inside the tolerance
    assert alignment(shifted, labels, tolerance=1)["f1"] == 1.0
    assert alignment(shifted, labels, tolerance=0)["f1"] == 0.0


def test_extra_and_missing_switches():
    labels = [np.array([0, 0, 1, 1, 2, 2])]
    res = alignment([np.array([1, 0, 1, 1, 0, 0.0])], labels)  # switches at 2, 3; true 2, 4
    assert res["precision"] == 1.0 and res["recall"] == 1.0  # 3 is within 1 of 4
    res = alignment([np.array([1, 0, 1, 0, 0, 0.0])], labels)
    assert res["precision"] == 1.0 and res["recall"] == 0.5


def test_quasi_binary_share():
    res = alignment([np.array([1, 0.5, 0.95, 0.05, 0.3])], [np.zeros(5, dtype=int)])
    assert np.isclose(res["quasi_binary"], 0.5)


@given(st.lists(st.integers(0, 30), max_size=10, unique=True),
       st.lists(st.integers(0, 30), max_size=10, unique=True))
def test_matching_is_one_to_one(pred, true):
    m, _ = match_counts(np.array(sorted(pred)), np.array(sorted(true)))
    assert m <= min(len(pred), len(true))
