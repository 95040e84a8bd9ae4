"""Batches of raw environments whose sub-environments can be stepped *selectively*.

The latent-action environment advances its sub-environments unevenly: one that has switched
waits for its next latent code while the others keep stepping. Gymnasium's vector envs step
every sub-environment at once, so the latent env talks to this smaller interface instead:

- :class:`GridRawBatch`: the gridworld's numpy core, stepping any subset of rows at once.
- :class:`EnvListRawBatch`: any list of Gymnasium environments (e.g. the ant), one by one.
- :class:`ProcessRawBatch`: :class:`EnvListRawBatch` slices in worker processes, stepped in
  parallel (the ant on both cores), through the worker plumbing it shares with the ant's
  vector env (:mod:`irl_envs.worker_pool`).

Seeding follows the gridworld's convention everywhere: a row reset with seed ``s`` starts a
stream of episodes, later resets of that row without a seed take the next episode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from irl_envs.colour_sequence import ColourSequenceEnv, GridCore
from irl_envs.worker_pool import WorkerPool, split_rows


class RawBatch(ABC):
    """N raw environments; observations are float32 ``(N, D)`` arrays."""

    num_envs: int
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Space

    @abstractmethod
    def reset(self, rows: np.ndarray, seeds: Sequence[int | None]) -> np.ndarray:
        """Start new episodes in ``rows``; returns their first observations ``(R, D)``."""

    @abstractmethod
    def step(self, rows: np.ndarray, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step only ``rows``; returns ``(obs (R, D), reward, terminated, truncated)``."""

    @abstractmethod
    def info(self, row: int) -> dict[str, Any]:
        """The raw environment's info dict for ``row`` (``is_success``, task, progress...)."""

    @abstractmethod
    def progress(self) -> np.ndarray:
        """``(N,)`` colours of the task visited so far (``next_index``)."""

    @abstractmethod
    def render(self, row: int) -> np.ndarray:
        """An RGB frame ``(H, W, 3) uint8`` of ``row``'s environment."""

    def close(self) -> None:  # noqa: B027  (optional hook: most batches hold nothing)
        """Release the environments (worker processes, renderers)."""


class GridRawBatch(RawBatch):
    """Rows of one gridworld :class:`GridCore`, stepped by array operations.

    Args:
        num_envs: N.
        **env_kwargs: arguments of :class:`ColourSequenceEnv` (task, tasks, grid_size, ...).
    """

    def __init__(self, num_envs: int, **env_kwargs: Any) -> None:
        template = ColourSequenceEnv(**env_kwargs)
        t = template.core
        self.core = GridCore(num_envs, t.g, t.o, t.w, t.max_steps, t.tasks)
        self.num_envs = num_envs
        self.observation_space = template.observation_space
        self.action_space = template.action_space

    def reset(self, rows: np.ndarray, seeds: Sequence[int | None]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        given = np.array([s is not None for s in seeds], dtype=bool)
        if given.any():
            self.core.next_episodes(rows[given], [s for s in seeds if s is not None])
        self.core.next_episodes(rows[~given])
        self.core.reset_rows(rows)
        return self.core.obs[rows].reshape(len(rows), -1).astype(np.float32)

    def step(self, rows, actions):
        rows = np.asarray(rows, dtype=np.int64)
        reward, terminated, truncated = self.core.step(np.asarray(actions, np.int64), rows)
        obs = self.core.obs[rows].reshape(len(rows), -1).astype(np.float32)
        return obs, reward, terminated, truncated

    def info(self, row: int) -> dict[str, Any]:
        return self.core.info(row)

    def progress(self) -> np.ndarray:
        return self.core.next_index.copy()

    def render(self, row: int) -> np.ndarray:
        return self.core.rgb(row)


class EnvListRawBatch(RawBatch):
    """Any Gymnasium environments, stepped one at a time (the ant, custom envs)."""

    def __init__(self, envs: Sequence[gym.Env]) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self._infos: list[dict] = [{} for _ in self.envs]

    def reset(self, rows, seeds):
        out = []
        for row, seed in zip(np.asarray(rows).tolist(), seeds, strict=True):
            obs, self._infos[row] = self.envs[row].reset(seed=seed)
            out.append(obs)
        return np.asarray(out, dtype=np.float32).reshape(len(out), -1)

    def step(self, rows, actions):
        obs, rew, term, trunc = [], [], [], []
        for row, action in zip(np.asarray(rows).tolist(), actions, strict=True):
            o, r, te, tr, self._infos[row] = self.envs[row].step(action)
            obs.append(o)
            rew.append(r)
            term.append(te)
            trunc.append(tr)
        return (np.asarray(obs, dtype=np.float32).reshape(len(obs), -1),
                np.asarray(rew, dtype=np.float32), np.asarray(term, dtype=bool),
                np.asarray(trunc, dtype=bool))

    def info(self, row: int) -> dict[str, Any]:
        return dict(self._infos[row])

    def progress(self) -> np.ndarray:
        return np.array([info.get("next_index", 0) for info in self._infos], dtype=np.int64)

    def render(self, row: int) -> np.ndarray:
        """The env's own ``render()``: it must have been made with ``render_mode="rgb_array"``."""
        return self.envs[row].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _env_list(make_env: Callable[[], gym.Env], num_envs: int) -> EnvListRawBatch:
    """One worker's share (built inside the worker process)."""
    return EnvListRawBatch([make_env() for _ in range(num_envs)])


class ProcessRawBatch(RawBatch):
    """N environments split over W worker processes that step their rows in parallel.

    Row ``i`` lives in worker ``i * W // N``, which holds an :class:`EnvListRawBatch` of its
    rows (the worker plumbing is :class:`irl_envs.worker_pool.WorkerPool`); results equal
    :class:`EnvListRawBatch` of the same environments (same seeds, observations, infos). Worth
    it when one raw step costs more than a pipe round trip (~50 us), as MuJoCo's ant does.

    Args:
        make_env: a picklable factory of one environment (e.g. ``partial(gym.make, id)``).
        num_envs: N.
        workers: W, at most N.
        context: multiprocessing start method (see :mod:`irl_envs.worker_pool`).
    """

    def __init__(self, make_env: Callable[[], gym.Env], num_envs: int, workers: int = 2,
                 context: str | None = None) -> None:
        bounds = split_rows(num_envs, workers)
        self.num_envs = num_envs
        self._starts = bounds[:-1]
        self._owner = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
        self._pool = WorkerPool([partial(_env_list, make_env, int(b - a))
                                 for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                                "ProcessRawBatch", context)
        probe = make_env()
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        self._obs_dim = int(np.prod(self.observation_space.shape))

    def _call(self, calls: dict[int, tuple[str, tuple]]) -> dict[int, Any]:
        """Send one call to each worker in ``calls`` at once, then gather the answers."""
        return self._pool.request({k: (method, args, {}) for k, (method, args) in calls.items()})

    def _split(self, rows: np.ndarray) -> dict[int, np.ndarray]:
        """Positions in ``rows`` owned by each worker."""
        owners = self._owner[rows]
        return {int(k): np.flatnonzero(owners == k) for k in np.unique(owners)}

    def reset(self, rows, seeds):
        rows = np.asarray(rows, dtype=np.int64)
        seeds = list(seeds)
        parts = self._split(rows)
        out = self._call({k: ("reset", (rows[pos] - self._starts[k], [seeds[i] for i in pos]))
                          for k, pos in parts.items()})
        obs = np.zeros((len(rows), self._obs_dim), np.float32)
        for k, pos in parts.items():
            obs[pos] = out[k]
        return obs

    def step(self, rows, actions):
        rows, actions = np.asarray(rows, dtype=np.int64), np.asarray(actions)
        parts = self._split(rows)
        out = self._call({k: ("step", (rows[pos] - self._starts[k], actions[pos]))
                          for k, pos in parts.items()})
        n = len(rows)
        obs = np.zeros((n, self._obs_dim), np.float32)
        rew, term, trunc = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
        for k, pos in parts.items():
            obs[pos], rew[pos], term[pos], trunc[pos] = out[k]
        return obs, rew, term, trunc

    def _one(self, method: str, row: int) -> Any:
        k = int(self._owner[row])
        return self._call({k: (method, (row - int(self._starts[k]),))})[k]

    def info(self, row: int) -> dict[str, Any]:
        return self._one("info", row)

    def progress(self) -> np.ndarray:
        return np.concatenate(self._pool.call_all("progress"))

    def render(self, row: int) -> np.ndarray:
        return self._one("render", row)

    def close(self) -> None:
        """Stop the workers (daemons: they also stop when the parent exits)."""
        self._pool.close()


def make_raw_batch(env: str, task_set: str, num_envs: int, task: str | None = None,
                   workers: int = 1, render_mode: str | None = None) -> RawBatch:
    """Raw environments of a family's task set: native rows for the gridworld; otherwise a
    list of environments, in ``workers`` processes when more than 1. ``task`` (e.g.
    ``"0-1-2-3"``) replaces the task set's tasks; ``render_mode`` is passed to environments
    that draw their own frames (the gridworld's rows always can)."""
    from irl_envs.families import env_id
    from irl_envs.tasks import parse_task

    spec = gym.spec(env_id(env, task_set))
    kwargs = dict(spec.kwargs)
    if task is not None:
        kwargs["tasks"] = [parse_task(task)]
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if env == "grid":
        return GridRawBatch(num_envs, **kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if workers > 1 and num_envs > 1:
        return ProcessRawBatch(partial(_unwrapped, spec.id, kwargs), num_envs, workers)
    return EnvListRawBatch([_unwrapped(spec.id, kwargs) for _ in range(num_envs)])


def _unwrapped(env_id: str, kwargs: dict) -> gym.Env:
    # the envs truncate at their own max_steps; the wrappers' per-step checks are not needed
    return gym.make(env_id, **kwargs).unwrapped
