"""Expert demonstration datasets: generate, save, load, and use as offline-RL data.

Loading, in the style of OGBench's ``make_env_and_datasets``::

    from irl_envs.datasets import make_env_and_datasets

    env, train, val = make_env_and_datasets("data/grid-pretrain-20k.safetensors")
    train["observations"], train["actions"], train["rewards"], train["next_observations"]

``load_dataset(path)`` gives the episodes themselves (:class:`Demonstrations`); every episode
``i`` is replayed exactly by ``env.reset(seed=int(data.seeds[i]))`` and its actions.

## File format (``irl-demonstrations``, version 2)
One safetensors file. Steps of all episodes are concatenated in episode order.

| tensor              | shape      | dtype                  | meaning                           |
|---------------------|------------|------------------------|-----------------------------------|
| ``observations``    | (S, D')    | uint8 / float32 (ant)  | o_t, the input of the model       |
| ``final_observations`` | (E, D') | as ``observations``    | o_T after an episode's last step  |
| ``actions``         | (S,)/(S,A) | int64 / float32        | a_t taken after seeing o_t        |
| ``rewards``         | (S,)       | float32                | r_t received for a_t              |
| ``terminations``    | (S,)       | bool                   | the env terminated after a_t      |
| ``truncations``     | (S,)       | bool                   | the env truncated after a_t       |
| ``episode_starts``  | (E,)       | int64                  | offset of each episode's 1st step |
| ``episode_lengths`` | (E,)       | int64                  | steps per episode                 |
| ``seeds``           | (E,)       | int64                  | each episode's reset seed (optional) |
| ``targets``         | (S,)       | int64                  | side info: next colour to visit   |
| ``final_targets``   | (E,)       | int64                  | side info: target after o_T (-1) |
| ``subgoals``        | (S,)       | int64                  | side info: current subgoal label  |
| ``task_ids``        | (E,)       | int64                  | side info: index into ``tasks``   |
| ``success``         | (E,)       | uint8                  | side info: episode solved         |

Exactly the last step of each episode is terminated or truncated. Binary observations (the
gridworld's one-hot planes) are stored bit-packed along the feature axis (``numpy.packbits``,
D' = ceil(D / 8), metadata ``obs_encoding="packbits"`` and ``obs_dim``) and unpacked on load:
80 bytes instead of 637 per gridworld step. Others are stored as they are
(``obs_encoding="raw"``).

The safetensors header metadata (strings) holds ``format``, ``version``, ``env``, ``env_id``,
``max_episode_steps``, ``tasks`` (JSON list of colour sequences), ``seed``, ``noise``,
``num_envs``, ``versions`` (JSON) and ``obs_shape`` (the observation's planes ``[C, H, W]``
when it has them, else null); DAgger data (``generate_dataset(behaviour=...)``, ``irl data
--dagger``) adds ``dagger_*`` keys (the acting model, beta, the mixture, and per acting policy
the episodes, success and steps), and a merge (:func:`merge_datasets`, ``irl data --merge``)
lists its parts under ``merged_from``. Side information is for analysis (probes, switching
alignment) and must never be fed to a model. Files are written atomically: a temporary file
in the same folder, then a rename.

Version 1 files (no rewards, episode ends, seeds or final targets) are still read: rewards and
episode ends are rebuilt from ``success`` and the horizon by the sparse rule (reward 1 on the
last step of a solved episode; an unsolved episode that ran the whole horizon counts as
truncated, which misreads the rare failure on the horizon's very step), ``final_targets`` as
-1 for solved episodes and the last target otherwise, and ``seeds`` is None: regenerate the
file with ``irl data`` to replay its episodes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from irl_envs.atomic import atomic_path
from irl_envs.families import env_id, family
from irl_envs.rollout import Episodes, run_episodes
from irl_envs.versions import versions

FORMAT, VERSION = "irl-demonstrations", 2
READS = (1, 2)
"""Format versions :func:`load_dataset` reads."""
_V1 = ("observations", "final_observations", "actions", "episode_starts", "episode_lengths",
       "targets", "subgoals", "task_ids", "success")
_V2 = (*_V1, "rewards", "terminations", "truncations", "final_targets")
_OPTIONAL = ("seeds",)
_INTEGERS = ("episode_starts", "episode_lengths", "targets", "subgoals", "task_ids",
             "final_targets", "seeds")
_FLAGS = ("success", "terminations", "truncations")


@dataclass
class Demonstrations:
    """Expert episodes in the flat layout of the file format (see module docstring).

    ``rewards``, ``terminations``, ``truncations`` and ``final_targets`` left as None are
    rebuilt from ``success`` as for version 1 files; ``seeds`` may stay None.
    """

    observations: np.ndarray
    final_observations: np.ndarray
    actions: np.ndarray
    episode_starts: np.ndarray
    episode_lengths: np.ndarray
    targets: np.ndarray
    subgoals: np.ndarray
    task_ids: np.ndarray
    success: np.ndarray
    meta: dict = field(default_factory=dict)
    rewards: np.ndarray | None = None
    terminations: np.ndarray | None = None
    truncations: np.ndarray | None = None
    final_targets: np.ndarray | None = None
    seeds: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rewards is None or self.terminations is None or self.truncations is None:
            self.rewards, self.terminations, self.truncations = _sparse_rewards(self)
        if self.final_targets is None:
            targets = np.asarray(self.targets)
            last_target = targets[_last_steps(self)] if len(targets) else -1
            self.final_targets = np.where(np.asarray(self.success, dtype=bool), -1,
                                          last_target).astype(np.int64)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def discrete(self) -> bool:
        return self.actions.ndim == 1

    @property
    def num_actions(self) -> int:
        """Number of discrete actions, or the action dimension of continuous actions."""
        return 4 if self.discrete else self.actions.shape[1]

    @property
    def tasks(self) -> list[tuple[int, ...]]:
        return [tuple(t) for t in self.meta.get("tasks", [])]

    @property
    def max_episode_steps(self) -> int | None:
        """The horizon of the environment the episodes were recorded in."""
        return _horizon(self.meta)

    def episode(self, i: int) -> dict[str, Any]:
        """Arrays of episode ``i`` and its reset seed (None if the dataset has none)."""
        s = slice(self.episode_starts[i], self.episode_starts[i] + self.episode_lengths[i])
        return {"observations": self.observations[s], "actions": self.actions[s],
                "rewards": self.rewards[s], "terminations": self.terminations[s],
                "truncations": self.truncations[s],
                "final_observation": self.final_observations[i],
                "targets": self.targets[s], "final_target": int(self.final_targets[i]),
                "subgoals": self.subgoals[s],
                "seed": None if self.seeds is None else int(self.seeds[i])}

    def save(self, path: str | os.PathLike) -> Path:
        """Validate, then write atomically to ``path`` (temporary file + rename)."""
        path = Path(path)
        _validate(self, path)
        names = [*_V2, *(k for k in _OPTIONAL if getattr(self, k) is not None)]
        tensors = {k: np.ascontiguousarray(getattr(self, k)) for k in names}
        tensors["success"] = tensors["success"].astype(np.uint8)
        obs = self.observations
        binary = obs.dtype == np.uint8 and obs.size and obs.max() <= 1
        if binary:
            for key in ("observations", "final_observations"):
                tensors[key] = np.packbits(tensors[key], axis=1)
        meta = {"format": FORMAT, "version": str(VERSION), "obs_dim": str(obs.shape[1]),
                "obs_encoding": "packbits" if binary else "raw"}
        meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in self.meta.items()
                     if k not in meta})
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path


def load_dataset(path: str | os.PathLike) -> Demonstrations:
    """Load and validate a dataset (version 1 or 2); raises ``ValueError`` naming the file,
    the field and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"dataset {path} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"dataset {path} is not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"dataset {path} is not an {FORMAT} file (format={meta.get('format')!r})")
    version = meta.get("version")
    if version not in [str(v) for v in READS]:
        raise ValueError(f"dataset {path} has version {version!r}; this library reads versions "
                         f"{', '.join(map(str, READS))}")
    required = _V1 if version == "1" else _V2
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"dataset {path} lacks tensors {missing}")
    decoded = {}
    for k, v in meta.items():
        try:
            decoded[k] = json.loads(v)
        except json.JSONDecodeError:
            decoded[k] = v
    if meta.get("obs_encoding") == "packbits":
        try:
            obs_dim = int(meta["obs_dim"])
        except (KeyError, ValueError):
            raise ValueError(f"dataset {path}: metadata 'obs_dim' is missing or not an int "
                             f"({meta.get('obs_dim')!r})") from None
        for key in ("observations", "final_observations"):
            if arrays[key].dtype != np.uint8 or arrays[key].ndim != 2 \
                    or arrays[key].shape[1] * 8 < obs_dim:
                raise ValueError(f"dataset {path}: field '{key}' is not bit-packed uint8 of "
                                 f"{obs_dim} features (dtype {arrays[key].dtype}, shape "
                                 f"{arrays[key].shape})")
            arrays[key] = np.unpackbits(arrays[key], axis=1, count=obs_dim)
    _check_fields(arrays, path)
    fields = {k: arrays[k] for k in (*required, *_OPTIONAL) if k in arrays}
    data = Demonstrations(**{k: fields.pop(k) for k in _V1}, meta=decoded, **fields)
    _validate(data, path)
    data.success = data.success.astype(bool)
    data.terminations = data.terminations.astype(bool)
    data.truncations = data.truncations.astype(bool)
    return data


def make_env_and_datasets(dataset_path: str | os.PathLike,
                          val_dataset_path: str | os.PathLike | None = None,
                          compact_dataset: bool = False, **env_kwargs: Any):
    """The environment a dataset was recorded in, and the dataset as flat transition arrays
    (OGBench's ``make_env_and_datasets`` conventions).

    Args:
        dataset_path: a file written by ``irl data`` / :meth:`Demonstrations.save`.
        val_dataset_path: a second file returned as the validation dataset (None: None).
        compact_dataset: as OGBench: without ``next_observations``; ``observations`` then
            holds each episode's final observation after its steps, ``valids`` is 0 on those
            rows (and their actions, rewards and ends are 0).
        **env_kwargs: passed to ``gymnasium.make`` with the dataset's ``env_id``.

    Returns:
        ``(env, train_dataset, val_dataset)``. A dataset is a dict of arrays over transitions:
        ``observations``, ``actions``, ``next_observations`` (or ``valids``), ``rewards``,
        ``terminations``, ``truncations``, ``terminals`` (1.0 on the last transition of an
        episode, either way it ended) and ``masks`` (1.0 - terminations: where to bootstrap).
    """
    import gymnasium as gym

    import irl_envs  # noqa: F401  (registers the ids)

    train = load_dataset(dataset_path)
    if not train.meta.get("env_id"):
        raise ValueError(f"dataset {dataset_path} does not record its env_id")
    env = gym.make(train.meta["env_id"], **env_kwargs)
    val = None if val_dataset_path is None else load_dataset(val_dataset_path)
    return (env, transitions(train, compact_dataset),
            None if val is None else transitions(val, compact_dataset))


def transitions(data: Demonstrations, compact: bool = False) -> dict[str, np.ndarray]:
    """``data`` as flat arrays over transitions (see :func:`make_env_and_datasets`)."""
    ends = data.episode_starts + data.episode_lengths  # one past each episode's last step
    last = np.zeros(data.num_steps, dtype=np.float32)
    last[ends - 1] = 1.0
    out = {"observations": data.observations, "actions": data.actions,
           "rewards": data.rewards.astype(np.float32), "terminations": data.terminations,
           "truncations": data.truncations, "terminals": last,
           "masks": 1.0 - data.terminations.astype(np.float32)}
    if not compact:
        nxt = np.empty_like(data.observations)
        nxt[:-1] = data.observations[1:]
        nxt[ends - 1] = data.final_observations
        return out | {"next_observations": nxt}
    # One extra row per episode, after its steps: its final observation, not a transition.
    final_rows = ends + np.arange(data.num_episodes)
    valid = np.ones(data.num_steps + data.num_episodes, dtype=bool)
    valid[final_rows] = False
    compacted = {}
    for key, value in out.items():
        full = np.zeros((len(valid), *value.shape[1:]), dtype=value.dtype)
        full[valid] = value
        compacted[key] = full
    compacted["observations"][final_rows] = data.final_observations
    compacted["terminals"][final_rows] = 1.0  # OGBench: the final row also closes the episode
    return compacted | {"valids": valid.astype(np.float32)}


def _horizon(meta: dict) -> int | None:
    """The recorded horizon, else the registered one of the dataset's env id."""
    if meta.get("max_episode_steps") is not None:
        return int(meta["max_episode_steps"])
    if meta.get("env_id"):
        import gymnasium as gym

        import irl_envs  # noqa: F401  (registers the ids)

        try:
            return gym.spec(meta["env_id"]).max_episode_steps
        except gym.error.Error:
            return None
    return None


def _sparse_rewards(d: Demonstrations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rewards and episode ends of a dataset that lacks them (version 1), by the sparse rule."""
    steps, lengths = len(d.actions), np.asarray(d.episode_lengths)
    last = _last_steps(d)
    success = np.asarray(d.success, dtype=bool)
    horizon = _horizon(d.meta)
    truncated = ~success & (lengths >= horizon) if horizon is not None else np.zeros_like(success)
    rewards = np.zeros(steps, dtype=np.float32)
    terminations = np.zeros(steps, dtype=bool)
    truncations = np.zeros(steps, dtype=bool)
    if steps:
        rewards[last] = success
        terminations[last] = ~truncated
        truncations[last] = truncated
    return rewards, terminations, truncations


def _last_steps(d: Demonstrations) -> np.ndarray:
    """Index of each episode's last step (clipped into range: :func:`_validate` reports
    offsets that do not fit the steps)."""
    last = np.asarray(d.episode_starts, dtype=np.int64) + d.episode_lengths - 1
    return last.clip(0, max(len(d.actions) - 1, 0))


def _check_fields(arrays: dict[str, np.ndarray], path: Path) -> None:
    """dtypes and value ranges of the raw tensors, before they are interpreted."""
    problems = []
    for k in _INTEGERS:
        if k in arrays and not np.issubdtype(arrays[k].dtype, np.integer):
            problems.append(f"field '{k}' must hold integers, got {arrays[k].dtype}")
    for k in _FLAGS:
        if k in arrays:
            v = arrays[k]
            if not (v.dtype == bool or np.issubdtype(v.dtype, np.integer)) \
                    or (v.size and (v.min() < 0 or v.max() > 1)):
                problems.append(f"field '{k}' must hold 0/1 flags, got dtype {v.dtype}"
                                + (f" and values in [{v.min()}, {v.max()}]" if v.size else ""))
    if problems:
        raise ValueError(f"dataset {path} is invalid: " + "; ".join(problems))


def _validate(d: Demonstrations, path: Path) -> None:
    """Shapes, dtypes and ranges of every field; raises ``ValueError`` naming each problem."""
    steps, eps = d.num_steps, d.num_episodes
    problems = []

    def bad(name: str, what: str) -> None:
        problems.append(f"field '{name}' {what}")

    if eps == 0 or steps == 0:
        raise ValueError(f"dataset {path} is empty ({eps} episodes, {steps} steps)")
    obs = d.observations
    if obs.ndim != 2 or len(obs) != steps:
        bad("observations", f"has shape {obs.shape}, expected ({steps}, D)")
    elif obs.dtype != np.uint8 and not np.issubdtype(obs.dtype, np.floating):
        bad("observations", f"must be uint8 or float, got {obs.dtype}")
    elif np.issubdtype(obs.dtype, np.floating) and not np.isfinite(obs).all():
        bad("observations", "holds non-finite values")
    if d.final_observations.shape != (eps, *obs.shape[1:]):
        bad("final_observations", f"has shape {d.final_observations.shape}, expected "
                                  f"({eps}, {obs.shape[1] if obs.ndim == 2 else 'D'})")
    elif d.final_observations.dtype != obs.dtype:
        bad("final_observations", f"has dtype {d.final_observations.dtype}, observations "
                                  f"{obs.dtype}")
    a = d.actions
    if a.ndim == 1:
        if not np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
            bad("actions", f"must hold integers (discrete actions), got {a.dtype}")
        elif a.size and (a.min() < 0 or a.max() >= d.num_actions):
            bad("actions", f"must lie in [0, {d.num_actions}), found values in "
                           f"[{a.min()}, {a.max()}]")
    elif a.ndim == 2 and len(a) == steps:
        if not np.issubdtype(a.dtype, np.floating):
            bad("actions", f"must hold floats (continuous actions), got {a.dtype}")
        elif not np.isfinite(a).all():
            bad("actions", "holds non-finite values")
    else:
        bad("actions", f"has shape {a.shape}, expected ({steps},) or ({steps}, A)")
    for k in ("targets", "subgoals", "rewards", "terminations", "truncations"):
        if getattr(d, k).shape != (steps,):
            bad(k, f"has shape {getattr(d, k).shape}, expected ({steps},)")
    for k in ("episode_starts", "episode_lengths", "task_ids", "success", "final_targets"):
        if getattr(d, k).shape != (eps,):
            bad(k, f"has shape {getattr(d, k).shape}, expected ({eps},)")
    if d.seeds is not None and d.seeds.shape != (eps,):
        bad("seeds", f"has shape {d.seeds.shape}, expected ({eps},)")
    if problems:  # the checks below index with these fields
        raise ValueError(f"dataset {path} is invalid: " + "; ".join(problems))

    for k in (k for k in _INTEGERS if getattr(d, k) is not None):
        if not np.issubdtype(getattr(d, k).dtype, np.integer):
            bad(k, f"must hold integers, got {getattr(d, k).dtype}")
    if problems:
        raise ValueError(f"dataset {path} is invalid: " + "; ".join(problems))
    if d.episode_lengths.min() < 1:
        bad("episode_lengths", f"must be >= 1, found {d.episode_lengths.min()}")
    ends = d.episode_starts + d.episode_lengths
    if (d.episode_starts[0] != 0 or ends[-1] != steps
            or not np.array_equal(d.episode_starts[1:], ends[:-1])):
        bad("episode_starts", "and episode_lengths do not tile the steps in order")
    for k in ("targets", "subgoals", "final_targets"):
        if getattr(d, k).min() < -1:
            bad(k, f"must be >= -1, found {getattr(d, k).min()}")
    if d.tasks and (d.task_ids.min() < 0 or d.task_ids.max() >= len(d.tasks)):
        bad("task_ids", f"must index the {len(d.tasks)} tasks, found values in "
                        f"[{d.task_ids.min()}, {d.task_ids.max()}]")
    if d.seeds is not None and d.seeds.min() < 0:
        bad("seeds", f"must be >= 0, found {d.seeds.min()}")
    if not np.issubdtype(d.rewards.dtype, np.floating) or not np.isfinite(d.rewards).all():
        bad("rewards", f"must hold finite floats (dtype {d.rewards.dtype})")
    if problems:
        raise ValueError(f"dataset {path} is invalid: " + "; ".join(problems))
    term, trunc = d.terminations.astype(bool), d.truncations.astype(bool)
    end = np.zeros(steps, dtype=bool)
    end[ends - 1] = True
    if (term & trunc).any():
        bad("terminations", "and truncations are both set at the same step")
    if not np.array_equal(term | trunc, end):
        bad("terminations", "and truncations must mark exactly the last step of each episode")
    if problems:
        raise ValueError(f"dataset {path} is invalid: " + "; ".join(problems))


class Behaviour(Protocol):
    """A policy that acts in place of the expert while the expert labels every step (DAgger:
    ``generate_dataset(..., behaviour=...)``), e.g. :class:`irl_agents.model_rollout.DaggerMixture`.
    """

    def __call__(self, venv: gym.vector.VectorEnv, expert_actions: np.ndarray) -> np.ndarray:
        """The actions executed, given the vector env and the expert's own actions there."""

    def start(self, mask: np.ndarray) -> None:
        """Sub-environments ``mask`` start new episodes (``run_episodes``'s ``on_start``)."""

    def metadata(self, episodes: Episodes) -> dict:
        """What the dataset's metadata records about the behaviour and its episodes."""


def generate_dataset(env: str = "grid", task_set: str = "pretrain", episodes: int = 1000,
                     seed: int = 0, noise: float = 0.0, num_envs: int = 256,
                     progress: bool = True, relabel: bool = False,
                     behaviour: Behaviour | None = None, env_workers: int = 2,
                     **expert_options: Any) -> Demonstrations:
    """Roll out the family's expert and return its episodes as :class:`Demonstrations`.

    Every episode is reset with its own seed (``irl_envs.rollout.episode_seeds(seed, i)``,
    stored in ``seeds``), so it can be replayed in the environment.

    Args:
        env: environment family, ``"grid"`` or ``"ant"``.
        task_set: ``"pretrain"`` or ``"posttrain"``.
        episodes: number of episodes.
        seed: seed of the episodes' seeds and of the expert.
        noise: expert noise (grid: probability of a random safe action; ant: samples with
            ``noise`` times the locomotion policy's standard deviation).
        num_envs: sub-environments stepped together.
        progress: show a progress bar.
        relabel: record the expert's noise-free action at every step while executing its noisy
            one (``noise > 0``): the states a noisy expert visits, each labelled with what
            the expert would have done there (a departure from the paper's data; see
            docs/scaling_grid.md). The recorded actions then do not replay the episodes.
        behaviour: DAgger: this policy acts (given the expert's actions, which it may take),
            and every step is labelled with the expert's noise-free action in the visited
            state for the true current target (implies ``relabel``; see
            docs/results/ant.md, "DAgger"). Its :meth:`Behaviour.metadata` joins the
            dataset's metadata.
        env_workers: processes stepping the sub-environments (ant; 1: this process only).
        **expert_options: the family's expert options (grid: ``tie_break="first"``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    fam, eid = family(env), env_id(env, task_set)
    expert = fam.make_expert(noise, seed, **expert_options)
    labelled = relabel or behaviour is not None
    if labelled and not hasattr(expert, "intended"):
        what = "relabel" if behaviour is None else "behaviour (DAgger)"
        raise ValueError(f"{what}: the {env} expert does not expose its noise-free actions")
    if behaviour is None:
        policy = expert.act
    else:
        def policy(v: gym.vector.VectorEnv) -> np.ndarray:
            return behaviour(v, expert.act(v))
    venv = fam.make_vec(eid, min(num_envs, episodes), workers=env_workers)
    start = time.perf_counter()
    eps = run_episodes(venv, policy, episodes, seed, progress=progress, desc=f"{env} data",
                       seed_episodes=True,
                       label=(lambda: expert.intended) if labelled else None,
                       on_start=None if behaviour is None else behaviour.start)
    seconds = time.perf_counter() - start
    venv.close()
    task_list = sorted(set(eps.tasks))
    index = {t: i for i, t in enumerate(task_list)}
    starts = np.concatenate([[0], np.cumsum(eps.lengths)[:-1]]).astype(np.int64)

    return Demonstrations(
        observations=eps.observations,
        final_observations=eps.final_observations,
        actions=eps.actions,
        episode_starts=starts,
        episode_lengths=eps.lengths,
        targets=eps.targets.astype(np.int64),
        subgoals=fam.subgoal(eps.targets.astype(np.int64)),
        task_ids=np.array([index[t] for t in eps.tasks], dtype=np.int64),
        success=eps.success,
        rewards=eps.rewards,
        terminations=eps.terminations,
        truncations=eps.truncations,
        final_targets=eps.final_targets,
        seeds=eps.seeds,
        meta={"env": env, "env_id": eid, "task_set": task_set,
              "max_episode_steps": gym.spec(eid).max_episode_steps,
              "tasks": [list(t) for t in task_list], "seed": seed, "noise": noise,
              "relabelled": labelled,
              "expert_options": expert_options,
              **({} if behaviour is None else behaviour.metadata(eps)),
              "num_envs": venv.num_envs, "seconds": round(seconds, 3), "versions": versions(),
              "obs_shape": list(getattr(venv, "obs_planes", [])) or None},
    )


_MERGE_SAME = ("env", "env_id", "max_episode_steps", "obs_shape")
"""Metadata that every part of a merge must share (and the merged dataset keeps)."""


def merge_datasets(parts: Sequence[Demonstrations],
                   names: Sequence[str] | None = None) -> Demonstrations:
    """The episodes of ``parts`` in one dataset, in order (DAgger's aggregation).

    The parts must come from the same environment (``env``, ``env_id``, horizon, observation
    and action shapes and dtypes). Task ids are re-indexed into the sorted union of the parts'
    tasks; ``seeds`` are kept when every part has them. The metadata keeps the shared fields
    and lists each part under ``merged_from`` (its name from ``names``, episodes, steps and
    its own metadata, less ``tasks`` and ``versions``).
    """
    parts = list(parts)
    names = [f"part {i}" for i in range(len(parts))] if names is None else list(names)
    if len(parts) < 2:
        raise ValueError(f"merge needs at least 2 datasets, got {len(parts)}")
    if len(names) != len(parts):
        raise ValueError(f"got {len(names)} names for {len(parts)} datasets")
    first = parts[0]
    for name, d in zip(names[1:], parts[1:], strict=True):
        for key in _MERGE_SAME:
            if d.meta.get(key) != first.meta.get(key):
                raise ValueError(f"merge: {name} has {key}={d.meta.get(key)!r}, {names[0]} has "
                                 f"{first.meta.get(key)!r}")
        for what, a, b in (("observations", d.observations, first.observations),
                           ("actions", d.actions, first.actions)):
            if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
                raise ValueError(f"merge: {name} has {what} of shape {a.shape[1:]} and dtype "
                                 f"{a.dtype}, {names[0]} {b.shape[1:]} and {b.dtype}")
    task_list = sorted({t for d in parts for t in d.tasks})
    index = {t: i for i, t in enumerate(task_list)}
    lengths = np.concatenate([d.episode_lengths for d in parts]).astype(np.int64)

    def cat(key: str) -> np.ndarray:
        return np.concatenate([getattr(d, key) for d in parts])

    return Demonstrations(
        **{k: cat(k) for k in ("observations", "final_observations", "actions", "targets",
                               "subgoals", "success", "rewards", "terminations",
                               "truncations", "final_targets")},
        episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        episode_lengths=lengths,
        task_ids=np.concatenate([np.array([index[d.tasks[i]] for i in d.task_ids],
                                          dtype=np.int64) for d in parts]),
        seeds=None if any(d.seeds is None for d in parts) else cat("seeds"),
        meta={**{k: first.meta.get(k) for k in _MERGE_SAME},
              "task_set": "+".join(dict.fromkeys(str(d.meta.get("task_set")) for d in parts)),
              "tasks": [list(t) for t in task_list],
              "relabelled": all(bool(d.meta.get("relabelled")) for d in parts),
              "merged_from": [{"name": str(name), "episodes": d.num_episodes,
                               "steps": d.num_steps,
                               "meta": {k: v for k, v in d.meta.items()
                                        if k not in ("tasks", "versions")}}
                              for name, d in zip(names, parts, strict=True)],
              "versions": versions()},
    )
