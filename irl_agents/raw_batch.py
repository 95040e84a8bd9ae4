"""Batches of raw environments whose sub-environments can be stepped *selectively*.

The latent-action environment advances its sub-environments unevenly: one that has switched
waits for its next latent code while the others keep stepping. Gymnasium's vector envs step
every sub-environment at once, so the latent env talks to this smaller interface instead:

- :class:`GridRawBatch`: the gridworld's numpy core, stepping any subset of rows at once.
- :class:`EnvListRawBatch`: any list of Gymnasium environments (e.g. the ant), one by one.

Seeding follows the gridworld's convention everywhere: a row reset with seed ``s`` starts a
stream of episodes, later resets of that row without a seed take the next episode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from irl_envs.colour_sequence import ColourSequenceEnv, GridCore


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


def make_raw_batch(env: str, task_set: str, num_envs: int, task: str | None = None) -> RawBatch:
    """Raw environments of a family's task set: native rows for the gridworld, a list of
    environments otherwise. ``task`` (e.g. ``"0-1-2-3"``) replaces the task set's tasks."""
    from irl_envs.families import env_id
    from irl_envs.tasks import parse_task

    spec = gym.spec(env_id(env, task_set))
    kwargs = dict(spec.kwargs)
    if task is not None:
        kwargs["tasks"] = [parse_task(task)]
    if env == "grid":
        return GridRawBatch(num_envs, **kwargs)
    return EnvListRawBatch([gym.make(spec.id, **kwargs).unwrapped for _ in range(num_envs)])
