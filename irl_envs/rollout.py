"""Run a policy on a vector environment until N whole episodes are done.

Written against Gymnasium's next-step autoreset: after an episode ends, the following step of
that sub-environment is a reset step whose action is ignored and whose transition is not
part of any episode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm


def current_targets(info: dict) -> np.ndarray:
    """Next colour of the task per sub-environment (-1 once the task is done)."""
    task, nxt = info["task"], np.asarray(info["next_index"])
    if isinstance(task, np.ndarray) and task.dtype != object:
        padded = np.concatenate([task, np.full((len(task), 1), -1)], axis=1)
        return padded[np.arange(len(task)), np.minimum(nxt, task.shape[1])]
    return np.array([t[i] if i < len(t) else -1 for t, i in zip(task, nxt, strict=True)])


@dataclass
class Episodes:
    """Whole episodes, steps concatenated in episode order."""

    lengths: np.ndarray
    success: np.ndarray
    tasks: list[tuple[int, ...]]
    observations: np.ndarray | None = None
    final_observations: np.ndarray | None = None
    actions: np.ndarray | None = None
    targets: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def run_episodes(venv: gym.vector.VectorEnv, policy: Callable[[gym.vector.VectorEnv], np.ndarray],
                 episodes: int, seed: int, record: bool = True, progress: bool = True,
                 desc: str = "episodes") -> Episodes:
    """Collect the first ``episodes`` episodes to *start*, in start order.

    Choosing by start order (not finish order) makes the result depend only on the seed and
    the number of sub-environments, never on which episodes happen to be short.

    Args:
        venv: vector env with next-step autoreset.
        policy: maps the vector env (its current state) to a batch of actions.
        episodes: how many episodes to return.
        seed: passed to ``venv.reset``.
        record: keep observations, actions and targets (else only lengths and success).
        progress: show a progress bar.
    """
    n = venv.num_envs
    obs, info = venv.reset(seed=seed)
    uid = np.arange(n)  # id of the episode each sub-env is playing
    next_uid = n
    resetting = np.zeros(n, dtype=bool)
    length = np.zeros(episodes, dtype=np.int64)
    success = np.zeros(episodes, dtype=bool)
    finished = np.zeros(episodes, dtype=bool)
    tasks: dict[int, tuple[int, ...]] = {}
    steps: list[tuple[np.ndarray, ...]] = []
    finals: dict[int, np.ndarray] = {}
    bar = tqdm(total=episodes, desc=desc, disable=not progress, unit="ep")
    while not finished.all():
        actions = policy(venv)
        live = ~resetting & (uid < episodes)
        if record and live.any():
            steps.append((uid[live], length[uid[live]], obs[live], np.asarray(actions)[live],
                          current_targets(info)[live]))
        live_rows = np.flatnonzero(live)
        for i in live_rows[length[uid[live_rows]] == 0]:  # first step of an episode
            tasks[int(uid[i])] = task_row(info, i)
        obs, reward, terminated, truncated, info = venv.step(actions)
        length[uid[live]] += 1
        ended = live & (terminated | truncated)
        success[uid[ended]] = np.asarray(reward)[ended] > 0
        finished[uid[ended]] = True
        if record:  # next-step autoreset: the obs returned with the end is the final one
            finals.update(zip(uid[ended].tolist(), np.asarray(obs)[ended], strict=True))
        bar.update(int(np.count_nonzero(ended)))
        # Sub-envs whose episode ended start a fresh one on their next (reset) step.
        done = ~resetting & (terminated | truncated)
        new = np.flatnonzero(resetting)
        uid[new] = next_uid + np.arange(len(new))
        next_uid += len(new)
        resetting = done
    bar.close()
    out = Episodes(lengths=length, success=success,
                   tasks=[tasks[i] for i in range(episodes)])
    if record:
        ep, t, o, a, tg = (np.concatenate(parts) for parts in zip(*steps, strict=True))
        order = np.lexsort((t, ep))
        out.observations, out.actions, out.targets = o[order], a[order], tg[order]
        out.final_observations = np.stack([finals[i] for i in range(episodes)])
    return out


def task_row(info: dict, i: int) -> tuple[int, ...]:
    """The colour sequence of sub-environment ``i`` from a vector env's info."""
    return tuple(int(c) for c in info["task"][i] if c >= 0)
