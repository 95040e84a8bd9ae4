"""Environment families (``grid``, ``ant``): ids, batched construction, expert, subgoals.

Dataset generation and expert evaluation are written once against this small interface, so a
family only has to say how to build its vector env and its expert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import gymnasium as gym
import numpy as np

from irl_envs import NAMESPACE


class Expert(Protocol):
    """A demonstrator acting on a whole vector environment.

    An expert that can label relabelled data (``generate_dataset(relabel=True)``) also has an
    attribute ``intended``: the noise-free actions of its last ``act`` call.
    """

    def act(self, env: gym.vector.VectorEnv) -> np.ndarray: ...


@dataclass(frozen=True)
class EnvFamily:
    """What the data and evaluation tools need to know about one environment family."""

    name: str
    """Short name used on the command line."""
    env_ids: dict[str, str]
    """Registered id per task set (``"pretrain"``, ``"posttrain"``)."""
    make_vec: Callable[..., gym.vector.VectorEnv]
    """``(env_id, num_envs, tasks=None, workers=2) -> vector env`` with Gymnasium's next-step
    autoreset; ``tasks`` replaces the id's task list (grid only); ``workers`` is the number of
    processes stepping the sub-environments (ant; 1: all in this process; the grid's native
    batched env always runs in this process)."""
    make_expert: Callable[..., Expert]
    """``(noise, seed, **options) -> expert``; options are the family's own (grid:
    ``tie_break``)."""
    subgoal: Callable[[np.ndarray], np.ndarray]
    """Maps target colours to subgoal labels (grid: colour pairs; ant: colours)."""
    colours_per_subgoal: int
    """Colours a subgoal spans in a task (grid: 2, ant: 1)."""


def _grid_vec(env_id: str, num_envs: int, tasks: list | None = None,
              workers: int = 2) -> gym.vector.VectorEnv:
    del workers  # native batched: one process
    kwargs = {} if tasks is None else {"tasks": tasks}
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **kwargs)


def _grid_expert(eps: float, seed: int | None, tie_break: str = "uniform") -> Expert:
    from irl_envs.experts.grid_expert import GridExpert

    return GridExpert(eps=eps, seed=seed, tie_break=tie_break)


def _ant_vec(env_id: str, num_envs: int, tasks: list | None = None,
             workers: int = 2) -> gym.vector.VectorEnv:
    from irl_envs.experts.ant_expert import make_ant_vec

    if tasks is not None:
        raise ValueError("tasks: custom task lists are supported for the grid family only")
    return make_ant_vec(env_id, num_envs, workers=workers)  # default: both cores


def _ant_expert(noise: float, seed: int | None) -> Expert:
    from irl_envs.experts.ant_expert import AntExpert

    return AntExpert(noise=noise, seed=seed)


FAMILIES: dict[str, EnvFamily] = {
    "grid": EnvFamily(
        name="grid",
        env_ids={"pretrain": f"{NAMESPACE}/ColourSequencePretrain-v0",
                 "posttrain": f"{NAMESPACE}/ColourSequence-v0"},
        make_vec=_grid_vec,
        make_expert=_grid_expert,
        subgoal=lambda colour: colour // 2,
        colours_per_subgoal=2,
    ),
    "ant": EnvFamily(
        name="ant",
        env_ids={"pretrain": f"{NAMESPACE}/AntSubgoalsPretrain-v0",
                 "posttrain": f"{NAMESPACE}/AntSubgoals-v0"},
        make_vec=_ant_vec,
        make_expert=_ant_expert,
        subgoal=lambda colour: np.asarray(colour),  # a subgoal is a single colour
        colours_per_subgoal=1,
    ),
}


def family(name: str) -> EnvFamily:
    """Look up a family by name, with a clear error."""
    if name not in FAMILIES:
        raise ValueError(f"env must be one of {sorted(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


def env_id(name: str, task_set: str) -> str:
    """Registered id of a family's task set."""
    fam = family(name)
    if task_set not in fam.env_ids:
        raise ValueError(f"task_set must be one of {sorted(fam.env_ids)}, got {task_set!r}")
    return fam.env_ids[task_set]
