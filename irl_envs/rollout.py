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

from irl_envs.episode_rng import episode_bits


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
    rewards: np.ndarray | None = None
    terminations: np.ndarray | None = None
    truncations: np.ndarray | None = None
    final_targets: np.ndarray | None = None
    """Next colour after each episode's last step (-1 once its task is done)."""
    seeds: np.ndarray | None = None
    """Reset seed of each episode (``seed_episodes``), else None."""
    extra: dict = field(default_factory=dict)


_SEED_STREAM = 8  # episode_rng stream of per-episode reset seeds


def episode_seeds(seed: int, index: np.ndarray) -> np.ndarray:
    """Reset seeds (63-bit ints) of episodes ``index`` of a collection seeded with ``seed``: a
    pure function of both, so collections with neighbouring seeds share no episode."""
    index = np.asarray(index, dtype=np.uint64)
    bits = episode_bits(np.full(len(index), seed, dtype=np.uint64), index, _SEED_STREAM, 0, 1)
    return (bits[:, 0] >> np.uint64(1)).astype(np.int64)


def merge_info(old: dict, new: dict, mask: np.ndarray) -> dict:
    """A vector info with the sub-environments in ``mask`` taken from ``new`` (the info of a
    masked reset, which describes only those) and the others from ``old``."""
    out = dict(old)
    mask = np.asarray(mask, dtype=bool)
    for key, value in new.items():
        if key.startswith("_"):
            continue
        rows = mask & np.asarray(new.get(f"_{key}", mask), dtype=bool)
        a, b = np.asarray(old.get(key, value)), np.asarray(value)
        if a.shape[1:] != b.shape[1:]:  # e.g. padded task arrays of two widths
            a, b = _objects(a), _objects(b)
        merged = a.astype(np.result_type(a, b), copy=True)
        merged[rows] = b[rows]
        out[key] = merged
        out[f"_{key}"] = np.asarray(old.get(f"_{key}", np.zeros_like(mask))) | rows
    return out


def _objects(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def run_episodes(venv: gym.vector.VectorEnv, policy: Callable[[gym.vector.VectorEnv], np.ndarray],
                 episodes: int, seed: int, record: bool = True, progress: bool = True,
                 desc: str = "episodes", seed_episodes: bool = False,
                 label: Callable[[], np.ndarray] | None = None,
                 on_start: Callable[[np.ndarray], None] | None = None) -> Episodes:
    """Collect the first ``episodes`` episodes to *start*, in start order.

    Choosing by start order (not finish order) makes the result depend only on the seed and
    the number of sub-environments, never on which episodes happen to be short.

    Args:
        venv: vector env with next-step autoreset.
        policy: maps the vector env (its current state) to a batch of actions.
        episodes: how many episodes to return.
        seed: passed to ``venv.reset`` (with ``seed_episodes``: the seed of the episodes'
            seeds).
        record: keep observations, actions, targets, rewards and episode ends (else only
            lengths and success). An episode that terminates on the step its time limit
            truncates it is recorded as terminated only.
        progress: show a progress bar.
        seed_episodes: reset episode ``k`` (in start order) with its own seed
            ``episode_seeds(seed, k)`` instead of letting the vector env autoreset, so that
            ``env.reset(seed=out.seeds[k])`` and its actions replay it exactly (as Minari's
            ``DataCollector`` seeds every episode). Needs a vector env that takes
            ``options={"reset_mask": ...}`` (Gymnasium >= 1.1).
        label: called right after each ``policy`` call; what it returns is recorded as the
            actions instead of what was executed (relabelled data: a noisy expert's states,
            labelled with its noise-free moves). Such episodes do not replay from their actions.
        on_start: called with a bool mask ``(num_envs,)`` of the sub-environments whose next
            ``policy`` call is the first step of a new episode: all of them after the first
            reset, then those that just reset. Their rows, in ascending order, start the next
            episodes in start order (so a stateful policy can reset them and number them).
    """
    n = venv.num_envs
    if seed_episodes:
        obs, info = venv.reset(seed=episode_seeds(seed, np.arange(n)).tolist())
    else:
        obs, info = venv.reset(seed=seed)
    if on_start is not None:
        on_start(np.ones(n, dtype=bool))
    uid = np.arange(n)  # id of the episode each sub-env is playing
    next_uid = n
    resetting = np.zeros(n, dtype=bool)
    length = np.zeros(episodes, dtype=np.int64)
    success = np.zeros(episodes, dtype=bool)
    finished = np.zeros(episodes, dtype=bool)
    final_targets = np.full(episodes, -1, dtype=np.int64)
    tasks: dict[int, tuple[int, ...]] = {}
    steps: list[tuple[np.ndarray, ...]] = []
    finals: dict[int, np.ndarray] = {}
    bar = tqdm(total=episodes, desc=desc, disable=not progress, unit="ep")
    while not finished.all():
        actions = policy(venv)
        recorded = actions if label is None else label()
        live = ~resetting & (uid < episodes)
        live_rows = np.flatnonzero(live)
        before = (uid[live], length[uid[live]], obs[live], np.asarray(recorded)[live],
                  current_targets(info)[live]) if record and live.any() else None
        for i in live_rows[length[uid[live_rows]] == 0]:  # first step of an episode
            tasks[int(uid[i])] = task_row(info, i)
        obs, reward, terminated, truncated, info = venv.step(actions)
        reward = np.asarray(reward)
        if before is not None:  # terminated on the horizon's last step: a termination
            steps.append((*before, reward[live], terminated[live],
                          truncated[live] & ~terminated[live]))
        length[uid[live]] += 1
        ended = live & (terminated | truncated)
        success[uid[ended]] = reward[ended] > 0
        finished[uid[ended]] = True
        final_targets[uid[ended]] = current_targets(info)[ended]
        if record:  # next-step autoreset: the obs returned with the end is the final one
            finals.update(zip(uid[ended].tolist(), np.asarray(obs)[ended], strict=True))
        bar.update(int(np.count_nonzero(ended)))
        done = ~resetting & (terminated | truncated)
        if seed_episodes and done.any():  # start the next episodes now, each with its seed
            rows = np.flatnonzero(done)
            uid[rows] = next_uid + np.arange(len(rows))
            next_uid += len(rows)
            seeds = np.zeros(n, dtype=np.int64)
            seeds[rows] = episode_seeds(seed, uid[rows])
            obs, reset_info = venv.reset(seed=seeds.tolist(), options={"reset_mask": done})
            info = merge_info(info, reset_info, done)
            if on_start is not None:
                on_start(done)
        elif not seed_episodes:
            # Sub-envs whose episode ended start a fresh one on their next (reset) step.
            new = np.flatnonzero(resetting)
            uid[new] = next_uid + np.arange(len(new))
            next_uid += len(new)
            if on_start is not None and len(new):
                on_start(resetting)
            resetting = done
    bar.close()
    out = Episodes(lengths=length, success=success, tasks=[tasks[i] for i in range(episodes)],
                   final_targets=final_targets)
    if seed_episodes:
        out.seeds = episode_seeds(seed, np.arange(episodes))
    if record:
        ep, t, o, a, tg, r, te, tr = (np.concatenate(parts)
                                      for parts in zip(*steps, strict=True))
        order = np.lexsort((t, ep))
        out.observations, out.actions, out.targets = o[order], a[order], tg[order]
        out.rewards = r[order].astype(np.float32)
        out.terminations, out.truncations = te[order], tr[order]
        out.final_observations = np.stack([finals[i] for i in range(episodes)])
    return out


def task_row(info: dict, i: int) -> tuple[int, ...]:
    """The colour sequence of sub-environment ``i`` from a vector env's info."""
    return tuple(int(c) for c in info["task"][i] if c >= 0)
