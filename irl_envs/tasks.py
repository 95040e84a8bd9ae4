"""Task tables of the paper and the subgoal structure of each environment.

A *task* is a sequence of colour indices to visit in order. The gridworld groups colours into
pairs (subgoal k is the pair 2k, 2k+1); the ant's subgoals are single colours. Tables are
those of Kobayashi et al. (2025), Tables A1 and A2.
"""

from __future__ import annotations

from collections.abc import Sequence

from irl_envs.validation import check_int_sequence

Task = tuple[int, ...]


def _parse(table: str) -> tuple[Task, ...]:
    return tuple(tuple(int(c) for c in item.split("-")) for item in table.split())


GRID_PRETRAIN_TASKS: tuple[Task, ...] = _parse(
    "0-1-4-5-0-1 0-1-4-5-2-3 0-1-6-7-2-3 2-3-0-1-4-5 2-3-6-7-2-3 2-3-6-7-4-5 "
    "4-5-0-1-4-5 4-5-0-1-6-7 4-5-2-3-6-7 6-7-2-3-0-1 6-7-2-3-6-7 6-7-4-5-0-1 "
    "0-1-6-7-4-5 2-3-0-1-6-7 4-5-2-3-0-1 6-7-4-5-2-3"
)
"""The 16 gridworld pretraining tasks (Table A1): three colour pairs each."""

GRID_POSTTRAIN_TASK: Task = (0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3)
"""The gridworld post-training task: six pairs in an order never seen in pretraining."""

ANT_PRETRAIN_TASKS: tuple[Task, ...] = _parse(
    "0-3-2 1-0-3 2-1-0 3-2-1 0-2-0 0-2-1 0-3-1 1-0-2 "
    "1-3-1 1-3-2 2-0-2 2-0-3 2-1-3 3-1-0 3-1-3 3-2-0"
)
"""The 16 ant pretraining tasks (Table A2): three colours each."""

ANT_POSTTRAIN_TASK: Task = (0, 1, 2, 3)
"""The ant post-training task (0 is never followed by 1 in pretraining)."""

TASK_SETS: dict[str, dict[str, tuple[Task, ...]]] = {
    "grid": {"pretrain": GRID_PRETRAIN_TASKS, "posttrain": (GRID_POSTTRAIN_TASK,)},
    "ant": {"pretrain": ANT_PRETRAIN_TASKS, "posttrain": (ANT_POSTTRAIN_TASK,)},
}


def task_set(env: str, name: str) -> tuple[Task, ...]:
    """A named task set (``"pretrain"``/``"posttrain"``) of ``env`` (``"grid"``/``"ant"``)."""
    if env not in TASK_SETS:
        raise ValueError(f"env must be one of {sorted(TASK_SETS)}, got {env!r}")
    if name not in TASK_SETS[env]:
        raise ValueError(f"task_set must be one of {sorted(TASK_SETS[env])}, got {name!r}")
    return TASK_SETS[env][name]


def parse_task(spec: str | Sequence[int], name: str = "task") -> Task:
    """Parse ``"0-1-2-3"`` (or a sequence of ints) into a task tuple; ``ValueError`` for
    anything else (floats, strings and bools inside a sequence are not coerced)."""
    if isinstance(spec, str):
        parts = [c.strip() for c in spec.replace(",", "-").split("-")]
        if not all(c.isdecimal() for c in parts):  # isdigit() also takes '²', which int() refuses
            raise ValueError(f"{name} must look like '0-1-2-3', got {spec!r}")
        return tuple(int(c) for c in parts)
    return check_int_sequence(name, spec)


def validate_tasks(tasks: Sequence[Sequence[int]], num_colours: int,
                   name: str = "task") -> tuple[Task, ...]:
    """Check that every task is a non-empty sequence of colours in ``[0, num_colours)``."""
    out = []
    if isinstance(tasks, (str, bytes, dict)) or not hasattr(tasks, "__iter__"):
        raise ValueError(f"{name} set must be a sequence of tasks, got {tasks!r}")
    for task in tasks:
        task = parse_task(task, name)
        if len(task) == 0:
            raise ValueError(f"{name} must be a non-empty colour sequence, got {task!r}")
        if any(not 0 <= c < num_colours for c in task):
            raise ValueError(f"{name} colours must lie in [0, {num_colours}), got {task!r}")
        out.append(task)
    if not out:
        raise ValueError(f"{name} set must hold at least one task")
    return tuple(out)


def transitions(tasks: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    """Every (colour, next colour) step that occurs in ``tasks``."""
    return {(int(a), int(b)) for t in tasks for a, b in zip(t[:-1], t[1:], strict=True)}


def grid_subgoal(colour: int) -> int:
    """Gridworld subgoal (colour pair) that ``colour`` belongs to: pair k = colours 2k, 2k+1."""
    return colour // 2


def blind_ceiling(tasks: Sequence[Sequence[int]]) -> tuple[float, float]:
    """The best a policy that cannot see the task can do on ``tasks`` drawn uniformly.

    Such a policy knows only which colours it has visited, so it follows one sequence (a
    mixture of sequences does no better). With perfect navigation it succeeds only when its
    sequence is the task, and its expected progress is the sum, over prefix lengths k, of the
    share of tasks that start with its first k colours. The best sequence maximises that sum.

    :return: ``(success, progress)``: the largest share of tasks equal to one sequence, and the
        largest expected number of task colours visited (episodes end on a wrong colour).
    """
    tasks = [tuple(t) for t in tasks]
    if not tasks:
        raise ValueError("tasks must not be empty")
    n = len(tasks)

    def best_progress(prefix: Task) -> float:
        followers = {t[len(prefix)] for t in tasks if t[: len(prefix)] == prefix and
                     len(t) > len(prefix)}
        return max((sum(t[: len(prefix) + 1] == prefix + (c,) for t in tasks) / n
                    + best_progress(prefix + (c,)) for c in followers), default=0.0)

    success = max(tasks.count(t) for t in tasks) / n
    return success, best_progress(())
