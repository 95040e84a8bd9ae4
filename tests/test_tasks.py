"""Task tables and what a task-blind policy can reach on them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irl_envs.tasks import ANT_POSTTRAIN_TASK, ANT_PRETRAIN_TASKS, blind_ceiling

tasks_st = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=4).map(tuple),
                    min_size=1, max_size=8)


def test_blind_ceiling_of_the_ant_pretraining_tasks():
    # Each colour starts 4 of the 16 tasks, and each 1- or 2-colour prefix has 2 followers:
    # progress 4/16 + 2/16 + 1/16 = 7/16 colours; success 1/16.
    assert blind_ceiling(ANT_PRETRAIN_TASKS) == (1 / 16, 7 / 16)


def test_a_single_known_task_is_fully_reachable():
    assert blind_ceiling([ANT_POSTTRAIN_TASK]) == (1.0, 4.0)


def test_empty_task_list_is_an_error():
    with pytest.raises(ValueError, match="tasks"):
        blind_ceiling([])


@given(tasks_st)
def test_blind_ceiling_bounds(tasks):
    success, progress = blind_ceiling(tasks)
    n = len(tasks)
    # Following the most common task exactly reaches at least its success times its length.
    common = max(tasks, key=tasks.count)
    assert success == tasks.count(common) / n
    assert progress >= success * len(common) - 1e-12
    # Never more than a policy that knew the task.
    assert progress <= sum(map(len, tasks)) / n + 1e-12
    # Repeating every task k times changes nothing.
    assert blind_ceiling(tasks * 3) == pytest.approx((success, progress))
