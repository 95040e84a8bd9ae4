"""Stable-Baselines3 on the native batched environments.

SB3 steps N environments through its own ``VecEnv`` API. Wrapping single environments in
``DummyVecEnv`` works for every id but steps them one at a time in Python (about 21k steps/s
for the gridworld); :class:`SB3VecEnv` instead hands SB3 a Gymnasium vector env, so the
gridworld's numpy core (``ColourSequenceVectorEnv``) or the batched latent-action env steps
all N environments in one call::

    from stable_baselines3 import PPO
    from irl_envs.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("InternalRL/ColourSequencePretrain-v0", n_envs=1024, seed=0)
    PPO("MlpPolicy", venv).learn(1_000_000)

:func:`make_sb3_vec_env` works for every registered id: ids with a ``vector_entry_point``
(the gridworld and latent-action ids) get their batched implementation, the others a
``SyncVectorEnv`` of single environments. ``benchmarks/bench_sb3_grid.py`` measures the
difference (``docs/benchmarks.md``).

SB3's conventions hold exactly: episodes reset automatically, the returned observation is
the next episode's first and the last one is in ``info["terminal_observation"]``;
``info["TimeLimit.truncated"]`` marks truncations and ``info["is_success"]`` reaches SB3's
logger. Sub-environment ``i`` of a batch seeded with ``venv.seed(s)`` plays the episodes of
a single environment seeded with ``s + i``, as in ``DummyVecEnv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices


class SB3VecEnv(VecEnv):
    """A Gymnasium vector env as a Stable-Baselines3 ``VecEnv``.

    The vector env must use Gymnasium's default next-step autoreset and accept
    ``reset(options={"reset_mask": mask})`` (Gymnasium >= 1.1, and every vector env of this
    package): sub-environments whose episode ended are reset in the same step, as SB3
    expects, so the vector env never takes an autoreset step.

    Infos: on the step an episode ends, its sub-environment's info holds the vector env's
    info for it (``is_success`` ...), ``terminal_observation`` and ``TimeLimit.truncated``,
    which is all SB3's algorithms, ``VecMonitor`` and episode-end callbacks read; on other
    steps it is empty, unless ``full_infos`` (every info every step, as ``DummyVecEnv``; at a
    thousand gridworld sub-environments this costs several times the step itself).

    Args:
        venv: the vector environment; closed with this one.
        full_infos: give every sub-environment's info on every step.
    """

    def __init__(self, venv: gym.vector.VectorEnv, full_infos: bool = False) -> None:
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.NEXT_STEP:
            raise ValueError(f"SB3VecEnv needs a vector env with next-step autoreset, got {mode}")
        self.venv, self.full_infos = venv, full_infos
        self._reset_infos: list[dict[str, Any]] = []
        self._pending: list[tuple[dict[str, Any], np.ndarray]] = []
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    @property
    def reset_infos(self) -> list[dict[str, Any]]:
        """Each sub-environment's info from its last reset (SB3's ``VecEnv.reset_infos``).
        Split into dicts only when read: SB3's algorithms never read it while training."""
        for info, rows in self._pending:
            for i, row_info in zip(rows.tolist(), split_info(info, self.num_envs, rows),
                                   strict=True):
                self._reset_infos[i] = row_info
        self._pending = []
        return self._reset_infos

    @reset_infos.setter
    def reset_infos(self, value: list[dict[str, Any]]) -> None:
        self._reset_infos, self._pending = list(value), []

    # ------------------------------------------------------------------ stepping
    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else [int(s) for s in self._seeds]
        options = self._options[0] if self._options else {}
        if any(o != options for o in self._options):
            raise ValueError("SB3VecEnv resets all sub-environments with the same options; got "
                             f"different ones: {self._options}")
        obs, info = self.venv.reset(seed=seeds, options=dict(options) or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = split_info(info, self.num_envs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        done = np.logical_or(terminated, truncated)
        n = self.num_envs
        infos = split_info(info, n) if self.full_infos else [{} for _ in range(n)]
        if done.any():
            rows = np.flatnonzero(done)
            ended = [infos[i] for i in rows] if self.full_infos else split_info(info, n, rows)
            time_limit = (truncated & ~terminated)[rows].tolist()
            final = obs[rows]  # a copy: the reset below may reuse the env's buffer
            for j, i in enumerate(rows.tolist()):
                row = ended[j]
                row["TimeLimit.truncated"] = time_limit[j]
                row["terminal_observation"] = final[j]
                infos[i] = row
            obs, reset_info = self.venv.reset(options={"reset_mask": done})
            self._pending.append((reset_info, rows))
        return obs, np.asarray(reward, dtype=np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        return list(self.venv.render())

    # ------------------------------------------------------------------ attributes
    # A batched env has one set of attributes for all its sub-environments; a vector env of
    # single envs (Sync/Async) answers per sub-environment through get_attr/call.
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        rows = list(self._get_indices(indices))
        if hasattr(self.venv, "get_attr"):
            values = self.venv.get_attr(attr_name)
            return [values[i] for i in rows]
        return [getattr(self.venv, attr_name)] * len(rows)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if hasattr(self.venv, "set_attr"):
            values = list(self.venv.get_attr(attr_name))
            for i in self._get_indices(indices):
                values[i] = value
            self.venv.set_attr(attr_name, values)
        else:
            setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None,
                   **method_kwargs) -> list[Any]:
        rows = list(self._get_indices(indices))
        if hasattr(self.venv, "call"):
            values = self.venv.call(method_name, *method_args, **method_kwargs)
            return [values[i] for i in rows]
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs)] * len(rows)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:
        from stable_baselines3.common.env_util import is_wrapped

        envs = getattr(self.venv, "envs", None)  # SyncVectorEnv: its single envs
        return [envs is not None and is_wrapped(envs[i], wrapper_class)
                for i in self._get_indices(indices)]


def split_info(info: dict[str, Any], num_envs: int,
               rows: np.ndarray | None = None) -> list[dict[str, Any]]:
    """A Gymnasium vector info (arrays over sub-environments, ``_key`` masks) as one dict per
    sub-environment (``rows`` only, if given), as SB3 and single environments give them."""
    rows = np.arange(num_envs) if rows is None else np.asarray(rows)
    out: list[dict[str, Any]] = [{} for _ in range(len(rows))]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = np.asarray(info.get(f"_{key}", np.ones(num_envs, dtype=bool)))[rows]
        if isinstance(value, dict):
            values = split_info(value, num_envs, rows)
        else:
            values = np.asarray(value)[rows].tolist()
        for row, present, v in zip(out, mask.tolist(), values, strict=True):
            if present:
                row[key] = v
    return out


def make_sb3_vec_env(env_id: str, n_envs: int = 1, seed: int | None = None,
                     monitor: bool = True, full_infos: bool = False,
                     **env_kwargs: Any) -> VecEnv:
    """The SB3 ``VecEnv`` of ``n_envs`` environments ``env_id``, batched where the id has a
    ``vector_entry_point`` (SB3's ``make_vec_env`` for this package's ids).

    Args:
        env_id: a registered id, e.g. ``"InternalRL/ColourSequence-v0"`` or
            ``"InternalRL/ColourSequenceLatent-v1"``.
        n_envs: number of sub-environments.
        seed: sub-environment ``i`` is seeded with ``seed + i`` at the first reset.
        monitor: wrap in ``VecMonitor`` so that episode returns and lengths reach SB3's logger
            (``rollout/ep_rew_mean``), as ``make_vec_env`` wraps each env in ``Monitor``.
        full_infos: every sub-environment's info on every step (see :class:`SB3VecEnv`).
        **env_kwargs: the environment's arguments (e.g. ``task=[0, 1]``, ``metacontroller=
            "segment-codes"``).
    """
    import irl_envs  # noqa: F401  (registers the ids)

    mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"
    venv: VecEnv = SB3VecEnv(gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode,
                                          **env_kwargs), full_infos)
    if seed is not None:
        venv.seed(seed)
    return VecMonitor(venv) if monitor else venv
