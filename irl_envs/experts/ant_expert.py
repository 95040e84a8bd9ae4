"""Ant-pinpad expert: grid planner + direction-conditioned locomotion policy.

``AntExpert.act(env)`` works on

- a single :class:`~irl_envs.ant_subgoals.AntSubgoalsEnv` (wrapped or not): it reads the env's
  public state (``cells``, ``task``, ``next_index``, the MuJoCo state) and returns ``(8,)``;
- any Gymnasium vector env of AntSubgoals: it acts from the *last observation and info* the
  vector env returned, so it needs no access to the sub-environments. The observation holds
  the whole layout (every colour's and wall's cell relative to the torso, see
  :func:`~irl_envs.experts.ant_planner.layout_from_obs`) and the proprioception (symlog, which
  is inverted); the info holds ``task`` and ``next_index``, hence the next colour. The last
  step is found as ``last_obs`` / ``last_info`` on the env or a wrapper of it:
  :class:`AntVectorEnv` records them itself; wrap any other vector env (``SyncVectorEnv``,
  ``AsyncVectorEnv``) in :class:`RecordLastStep`. A bare ``SyncVectorEnv`` also works (its
  sub-environments are read directly).

The expert is stateless between steps (the planner is a function of layout, position and next
colour; the policy is an MLP), so autoresets need no bookkeeping, and it is deterministic (the
Gaussian mean) unless ``noise > 0``, which samples actions with ``noise`` times the policy's own
standard deviation from a generator seeded with ``seed``.

:class:`AntVectorEnv` runs N AntSubgoals environments in W worker processes (default 2, one
per core of the reference machine), each stepping its share in a ``SyncVectorEnv``: one
message per worker per step, instead of one process and one message per environment as in
``gym.vector.AsyncVectorEnv``. Seeds, autoreset (next-step) and infos are those of a
``SyncVectorEnv`` of the same N environments, so results do not depend on W.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from irl_envs.ant_subgoals import AntSubgoalsEnv
from irl_envs.experts.ant_planner import GridPlanner, layout_from_obs
from irl_envs.rollout import current_targets, merge_info
from irl_envs.worker_pool import WorkerPool, split_rows

_GEOMETRY = ("grid_size", "cell_size", "num_colours", "num_walls")


class AntExpert:
    """Planner + locomotion policy as one policy object (see the module docstring).

    Args:
        noise: 0 for the Gaussian mean (default); ``k > 0`` samples actions with ``k`` times
            the policy's standard deviation.
        seed: seed of the expert's noise generator.
        weights: path of locomotion weights (default: ``$IRL_ANT_WEIGHTS`` if set, else the
            shipped ``irl_envs/experts/weights/ant_locomotion.safetensors``).
        lookahead: the planner's pure-pursuit lookahead, in cells.
        edge_margin: the planner's margin to forbidden edges, in cells.
    """

    def __init__(self, noise: float = 0.0, seed: int | None = None,
                 weights: str | os.PathLike | None = None, lookahead: float = 0.35,
                 edge_margin: float = 0.25):
        from irl_envs.experts.ant_locomotion import load_policy  # torch: load lazily

        if not noise >= 0.0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.noise, self.lookahead, self.edge_margin = float(noise), lookahead, edge_margin
        self.rng = np.random.default_rng(seed)
        self.policy = load_policy(weights)
        self.status = self.policy.meta.get("status", "unknown")
        self._planners: dict[tuple, GridPlanner] = {}
        self._geometry: dict[int, tuple] = {}
        self.last_plan = None
        """The :class:`~irl_envs.experts.ant_planner.Plan` of the last call (for inspection)."""
        self.intended: np.ndarray | None = None
        """The noise-free actions (Gaussian mean) of the last call: the labels of relabelled
        data (``generate_dataset(..., noise=k, relabel=True)``)."""

    # ------------------------------------------------------------------ public API
    def act(self, env: gym.Env | gym.vector.VectorEnv) -> np.ndarray:
        """Action ``(8,)`` for a single env, ``(N, 8)`` for a vector env (float32)."""
        base = getattr(env, "unwrapped", env)
        if isinstance(base, AntSubgoalsEnv):
            proprio = np.concatenate([base.data.qpos[2:], base.data.qvel])[None]
            xy = base.data.qpos[None, :2].copy()
            geometry = tuple(getattr(base, k) for k in _GEOMETRY)
            return self.act_state(proprio, xy, base.cells[None],
                                  np.array([base.target_colour]), geometry)[0]
        if isinstance(env, gym.vector.VectorEnv):
            obs, info = last_step(env)
            if obs is None:
                return self._act_sync(env)
            return self.act_obs(obs, current_targets(info), self._env_geometry(env))
        raise TypeError(f"AntExpert needs an AntSubgoalsEnv or a vector env of them, got {env!r}")

    __call__ = act

    def act_obs(self, obs: np.ndarray, target: np.ndarray,
                geometry: Sequence = (4, 1.0, 4, 1)) -> np.ndarray:
        """Actions ``(N, 8)`` from AntSubgoals observations ``(N, D)`` and next colours ``(N,)``.

        ``geometry`` is ``(grid_size, cell_size, num_colours, num_walls)`` of the env.
        """
        from irl_envs.experts.ant_locomotion import proprio_from_obs

        obs = np.atleast_2d(np.asarray(obs))
        cells, xy = layout_from_obs(obs, *geometry)
        return self.act_state(proprio_from_obs(obs), xy, cells, np.asarray(target), geometry)

    def act_state(self, proprio: np.ndarray, xy: np.ndarray, cells: np.ndarray,
                  target: np.ndarray, geometry: Sequence = (4, 1.0, 4, 1)) -> np.ndarray:
        """Actions ``(N, 8)`` from raw proprioception ``(N, 27)`` (``qpos[2:]``, ``qvel``),
        torso positions ``(N, 2)``, layouts ``(N, G*G)`` and next colours ``(N,)``."""
        from irl_envs.experts.ant_locomotion import policy_features

        plan = self.planner(geometry).plan(cells, xy, target)
        self.last_plan = plan
        features = policy_features(proprio, plan.direction)
        action, self.intended = self.policy.act_and_mean(features, self.noise, self.rng)
        return action

    def planner(self, geometry: Sequence) -> GridPlanner:
        """The (cached) planner of an env geometry."""
        key = tuple(geometry)
        if key not in self._planners:
            self._planners[key] = GridPlanner(int(key[0]), float(key[1]), self.lookahead,
                                              self.edge_margin)
        return self._planners[key]

    # ------------------------------------------------------------------ helpers
    def _env_geometry(self, env: gym.vector.VectorEnv) -> tuple:
        key = id(env)
        if key not in self._geometry:
            base = env.unwrapped
            geometry = getattr(base, "geometry", None)
            if geometry is None:
                geometry = tuple(base.get_attr(k)[0] for k in _GEOMETRY)
            self._geometry = {key: tuple(geometry)}
        return self._geometry[key]

    def _act_sync(self, env: gym.vector.VectorEnv) -> np.ndarray:
        subs = getattr(env.unwrapped, "envs", None)
        if subs is None:
            raise TypeError(
                "AntExpert acts on a vector env from its last observation and info: use "
                "AntVectorEnv, wrap the vector env in RecordLastStep, or use a SyncVectorEnv")
        bases = [s.unwrapped for s in subs]
        proprio = np.stack([np.concatenate([b.data.qpos[2:], b.data.qvel]) for b in bases])
        xy = np.stack([b.data.qpos[:2] for b in bases])
        cells = np.stack([b.cells for b in bases])
        target = np.array([b.target_colour for b in bases])
        geometry = tuple(getattr(bases[0], k) for k in _GEOMETRY)
        return self.act_state(proprio, xy, cells, target, geometry)


def last_step(env: gym.vector.VectorEnv) -> tuple[np.ndarray | None, dict | None]:
    """``(last_obs, last_info)`` recorded by ``env`` or one of its wrappers, else Nones."""
    e = env
    while e is not None:
        if getattr(e, "last_obs", None) is not None:
            return e.last_obs, e.last_info
        e = getattr(e, "env", None)
    return None, None


class RecordLastStep(gym.vector.VectorWrapper):
    """Keeps the last observation and info of a vector env as ``last_obs`` / ``last_info``."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        self.last_obs: np.ndarray | None = None
        self.last_info: dict | None = None

    def reset(self, *, seed=None, options=None):
        mask = (options or {}).get("reset_mask")  # read first: SyncVectorEnv pops it
        obs, info = self.env.reset(seed=seed, options=options)
        self.last_obs = obs
        self.last_info = info if mask is None or self.last_info is None else merge_info(
            self.last_info, info, mask)  # a masked reset's info holds only the reset envs
        return obs, info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.last_obs, self.last_info = obs, info
        return obs, reward, terminated, truncated, info


# ---------------------------------------------------------------------------- vector env


def _sync_envs(env_id: str, num_envs: int, kwargs: dict) -> gym.vector.SyncVectorEnv:
    """One worker's share: a ``SyncVectorEnv`` (built inside the worker process)."""
    return gym.vector.SyncVectorEnv([partial(gym.make, env_id, **kwargs)] * num_envs,
                                    autoreset_mode=AutoresetMode.NEXT_STEP)


class AntVectorEnv(gym.vector.VectorEnv):
    """N AntSubgoals environments in W worker processes (next-step autoreset).

    Equivalent to ``SyncVectorEnv([make(env_id)] * N)`` (same seeds, observations, infos), with
    sub-environments ``[i * N / W, (i + 1) * N / W)`` stepped by worker i (a
    :class:`~irl_envs.worker_pool.WorkerPool`). Records ``last_obs`` / ``last_info`` for
    :class:`AntExpert`.

    Args:
        env_id: registered id (``InternalRL/AntSubgoals-v0`` or ``...Pretrain-v0``).
        num_envs: N.
        workers: W, at most N (default 2).
        context: multiprocessing start method (see :mod:`irl_envs.worker_pool`).
        **kwargs: passed to ``gym.make``.
    """

    def __init__(self, env_id: str, num_envs: int, workers: int = 2,
                 context: str | None = None, **kwargs: Any):
        self.closed = True  # until the workers exist
        bounds = split_rows(num_envs, workers)
        self.num_envs = int(num_envs)
        self._slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:],
                                                              strict=True)]
        self._pool = WorkerPool([partial(_sync_envs, env_id, sl.stop - sl.start, kwargs)
                                 for sl in self._slices], "AntVectorEnv", context)
        self.closed = False
        # attributes of a SyncVectorEnv, read from worker 0
        obs_space, act_space, metadata, spec = (
            self._pool.request({0: ("__getattribute__", (name,), {})})[0]
            for name in ("single_observation_space", "single_action_space", "metadata", "spec"))
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = batch_space(obs_space, self.num_envs)
        self.action_space = batch_space(act_space, self.num_envs)
        self.metadata = {**metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.spec = spec
        self.render_mode = None
        self.geometry = tuple(self.get_attr(k)[0] for k in _GEOMETRY)
        """``(grid_size, cell_size, num_colours, num_walls)`` of the sub-environments."""
        self.last_obs: np.ndarray | None = None
        self.last_info: dict | None = None

    # ------------------------------------------------------------------ plumbing
    def _request(self, calls: list[tuple[str, tuple, dict] | None]) -> list[Any]:
        """One call per worker (None: that worker is left alone, its answer is None)."""
        out = self._pool.request({k: c for k, c in enumerate(calls) if c is not None})
        return [out.get(k) for k in range(len(calls))]

    def _merge(self, parts: list[tuple]) -> tuple:
        arrays = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]) - 1)]
        return (*arrays, _merge_infos([p[-1] for p in parts],
                                      [s.stop - s.start for s in self._slices]))

    # ------------------------------------------------------------------ VectorEnv API
    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} environments")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            obs, info = self._merge(self._request(
                [("reset", (), {"seed": seeds[sl], "options": options or None})
                 for sl in self._slices]))
            self.last_obs, self.last_info = obs, info
            return obs, info
        # Gymnasium's masked reset: only the sub-environments in reset_mask start a new
        # episode; the info describes only those (masks mark them)
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.num_envs,):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                             f"({self.num_envs},), got {mask!r}")
        if self.last_obs is None:
            raise gym.error.ResetNeeded("a masked reset needs a full reset first")
        parts = self._request([("reset", (), {"seed": seeds[sl],
                                              "options": {**options, "reset_mask": mask[sl]}})
                               if mask[sl].any() else None for sl in self._slices])
        obs = np.concatenate([p[0] if p is not None else self.last_obs[sl]
                              for p, sl in zip(parts, self._slices, strict=True)])
        info = _merge_infos([p[1] if p is not None else {} for p in parts],
                            [sl.stop - sl.start for sl in self._slices])
        self.last_obs, self.last_info = obs, merge_info(self.last_info, info, mask)
        return obs, info

    def step(self, actions):
        actions = np.asarray(actions)
        obs, reward, terminated, truncated, info = self._merge(
            self._request([("step", (actions[sl],), {}) for sl in self._slices]))
        self.last_obs, self.last_info = obs, info
        return obs, reward, terminated, truncated, info

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        parts = self._pool.call_all("call", name, *args, **kwargs)
        return tuple(x for part in parts for x in part)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def close_extras(self, **kwargs: Any) -> None:
        self._pool.close()

    def __del__(self):
        if not getattr(self, "closed", True):
            with contextlib.suppress(Exception):  # interpreter shutdown
                self.close()


def _merge_infos(parts: list[dict], sizes: list[int]) -> dict:
    """Concatenate the dict-of-arrays infos of consecutive slices of a vector env."""
    keys: list[str] = []
    for p in parts:
        keys += [k for k in p if k not in keys]
    out = {}
    for k in keys:
        present = [p.get(k) for p in parts]
        sample = next(v for v in present if v is not None)
        if isinstance(sample, dict):
            out[k] = _merge_infos([v if v is not None else {} for v in present], sizes)
            continue
        chunks = []
        for v, n in zip(present, sizes, strict=True):
            if v is None:
                v = (np.zeros(n, dtype=bool) if k.startswith("_")
                     else np.full(n, None, dtype=object) if sample.dtype == object
                     else np.zeros(n, dtype=sample.dtype))
            chunks.append(v)
        if any(c.dtype == object for c in chunks) and not all(c.dtype == object for c in chunks):
            chunks = [c.astype(object) for c in chunks]
        out[k] = np.concatenate(chunks)
    return out


def make_ant_vec(env_id: str, num_envs: int, workers: int = 2) -> gym.vector.VectorEnv:
    """Vector env for ``irl data`` / ``irl expert-eval``: :class:`AntVectorEnv` with
    ``workers`` processes for ``num_envs >= 2``, else a recorded ``SyncVectorEnv``."""
    if num_envs >= 2 and workers >= 2:
        return AntVectorEnv(env_id, num_envs, workers=workers)
    return RecordLastStep(gym.vector.SyncVectorEnv([partial(gym.make, env_id)] * num_envs,
                                                   autoreset_mode=AutoresetMode.NEXT_STEP))


def _weights_json(weights: str | os.PathLike | None) -> Path:
    """The JSON beside the (shipped, or ``$IRL_ANT_WEIGHTS``) locomotion weights."""
    from irl_envs.experts.ant_locomotion import DEFAULT_WEIGHTS, WEIGHTS_ENV_VAR

    return Path(weights or os.environ.get(WEIGHTS_ENV_VAR) or DEFAULT_WEIGHTS).with_suffix(".json")


def shipped_status(weights: str | os.PathLike | None = None) -> str:
    """``status`` of the (shipped) weights' JSON, e.g. the smoke-test marker."""
    import json

    try:
        return json.loads(_weights_json(weights).read_text()).get("status", "unknown")
    except (OSError, ValueError):
        return "missing"


def expert_success(task_set: str, weights: str | os.PathLike | None = None) -> float:
    """The shipped expert's measured success rate on ``task_set`` (from its weights' JSON):
    the paper normalises ant RL success by it."""
    import json

    path = _weights_json(weights)
    evals = json.loads(path.read_text()).get("eval", {})
    if task_set not in evals:
        raise ValueError(f"task_set must be one of {sorted(evals)} (measured in {path}), "
                         f"got {task_set!r}")
    return float(evals[task_set]["success_rate"])
