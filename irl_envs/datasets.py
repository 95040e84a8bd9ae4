"""Expert demonstration datasets: generate, save, load.

## File format (``irl-demonstrations``, version 1)
One safetensors file. Steps of all episodes are concatenated in episode order.

| tensor            | shape     | dtype                        | meaning                          |
|-------------------|-----------|------------------------------|----------------------------------|
| ``observations``  | (S, D')   | uint8 (grid) / float32 (ant) | o_t, the input of the model      |
| ``final_observations``| (E, D')| as ``observations``          | o_T after an episode's last step |
| ``actions``       | (S,)/(S,A)| int64 / float32              | a_t taken after seeing o_t       |
| ``episode_starts``| (E,)      | int64                        | offset of each episode's 1st step|
| ``episode_lengths``| (E,)     | int64                        | steps per episode                |
| ``targets``       | (S,)      | int64                        | side info: next colour to visit  |
| ``subgoals``      | (S,)      | int64                        | side info: current subgoal label |
| ``task_ids``      | (E,)      | int64                        | side info: index into ``tasks``  |
| ``success``       | (E,)      | uint8                        | side info: episode solved        |

Binary observations (the gridworld's one-hot planes) are stored bit-packed along the feature
axis (``numpy.packbits``, D' = ceil(D / 8), metadata ``obs_encoding="packbits"`` and ``obs_dim``)
and unpacked on load: 80 bytes instead of 637 per gridworld step. Others are stored as they
are (``obs_encoding="raw"``).

The safetensors header metadata (strings) holds ``format``, ``version``, ``env``, ``env_id``,
``tasks`` (JSON list of colour sequences), ``seed``, ``noise``, ``num_envs``, ``versions``
(JSON) and ``obs_shape`` (the observation's planes ``[C, H, W]`` when it has them, else
null). Side information is for analysis (probes, switching alignment) and must never be fed
to a model. Files are written atomically: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from irl_envs.atomic import atomic_path
from irl_envs.families import env_id, family
from irl_envs.rollout import run_episodes
from irl_envs.versions import versions

FORMAT, VERSION = "irl-demonstrations", 1
_REQUIRED = ("observations", "final_observations", "actions", "episode_starts",
             "episode_lengths", "targets", "subgoals", "task_ids", "success")


@dataclass
class Demonstrations:
    """Expert episodes in the flat layout of the file format (see module docstring)."""

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

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Arrays of episode ``i``."""
        s = slice(self.episode_starts[i], self.episode_starts[i] + self.episode_lengths[i])
        return {"observations": self.observations[s], "actions": self.actions[s],
                "final_observation": self.final_observations[i],
                "targets": self.targets[s], "subgoals": self.subgoals[s]}

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``path`` (temporary file + rename)."""
        path = Path(path)
        tensors = {k: np.ascontiguousarray(getattr(self, k)) for k in _REQUIRED}
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
    """Load and validate a dataset; raises ``ValueError`` naming the file and the problem."""
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
    if meta.get("version") != str(VERSION):
        raise ValueError(f"dataset {path} has version {meta.get('version')!r}; this library "
                         f"reads version {VERSION}")
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"dataset {path} lacks tensors {missing}")
    decoded = {}
    for k, v in meta.items():
        try:
            decoded[k] = json.loads(v)
        except json.JSONDecodeError:
            decoded[k] = v
    if meta.get("obs_encoding") == "packbits":
        for key in ("observations", "final_observations"):
            arrays[key] = np.unpackbits(arrays[key], axis=1, count=int(meta["obs_dim"]))
    data = Demonstrations(**{k: arrays[k] for k in _REQUIRED}, meta=decoded)
    data.success = data.success.astype(bool)
    _validate(data, path)
    return data


def _validate(d: Demonstrations, path: Path) -> None:
    steps, eps = d.num_steps, d.num_episodes
    problems = []
    if d.observations.ndim != 2 or len(d.observations) != steps:
        problems.append(f"observations shape {d.observations.shape} does not match {steps} steps")
    for k in ("targets", "subgoals"):
        if getattr(d, k).shape != (steps,):
            problems.append(f"{k} shape {getattr(d, k).shape} != ({steps},)")
    if d.final_observations.shape != (eps, d.observations.shape[1]):
        problems.append(f"final_observations shape {d.final_observations.shape} does not match "
                        f"{eps} episodes")
    for k in ("episode_starts", "task_ids", "success"):
        if getattr(d, k).shape != (eps,):
            problems.append(f"{k} shape {getattr(d, k).shape} != ({eps},)")
    ends = d.episode_starts + d.episode_lengths
    if eps and (d.episode_starts[0] != 0 or ends[-1] != steps
                or not np.array_equal(d.episode_starts[1:], ends[:-1])):
        problems.append("episode_starts/episode_lengths do not tile the steps")
    if problems:
        raise ValueError(f"dataset {path} is inconsistent: " + "; ".join(problems))


def generate_dataset(env: str = "grid", task_set: str = "pretrain", episodes: int = 1000,
                     seed: int = 0, noise: float = 0.0, num_envs: int = 256,
                     progress: bool = True, **expert_options: Any) -> Demonstrations:
    """Roll out the family's expert and return its episodes as :class:`Demonstrations`.

    Args:
        env: environment family, ``"grid"`` or ``"ant"``.
        task_set: ``"pretrain"`` or ``"posttrain"``.
        episodes: number of episodes.
        seed: environment seed (sub-env i uses ``seed + i``) and expert seed.
        noise: expert noise (grid: probability of a random safe action).
        num_envs: sub-environments stepped together.
        progress: show a progress bar.
        **expert_options: the family's expert options (grid: ``tie_break="first"``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    fam, eid = family(env), env_id(env, task_set)
    venv = fam.make_vec(eid, min(num_envs, episodes))
    expert = fam.make_expert(noise, seed, **expert_options)
    start = time.perf_counter()
    eps = run_episodes(venv, expert.act, episodes, seed, progress=progress, desc=f"{env} data")
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
        meta={"env": env, "env_id": eid, "task_set": task_set,
              "tasks": [list(t) for t in task_list], "seed": seed, "noise": noise,
              "expert_options": expert_options,
              "num_envs": venv.num_envs, "seconds": round(seconds, 3), "versions": versions(),
              "obs_shape": list(getattr(venv, "obs_planes", [])) or None},
    )
