"""Gymnasium environments of the internal-RL suite, registered under ``InternalRL/``.

Importing this package registers:

- ``InternalRL/ColourSequence-v0``: gridworld-pinpad, post-training task 0-1-2-3-4-5-6-7-0-1-2-3.
- ``InternalRL/ColourSequencePretrain-v0``: gridworld-pinpad, a pretraining task per episode.
- ``InternalRL/AntSubgoals-v0``: ant-pinpad, post-training task 0-1-2-3.
- ``InternalRL/AntSubgoalsPretrain-v0``: ant-pinpad, a pretraining task per episode.
- ``InternalRL/ColourSequenceLatent-v1``: the gridworld post-training task as a latent-action
  environment over the shipped base model and its label-free segment codes, gate threshold
  0.3: the configuration internal RL learns the task on (``irl_agents.shipped``;
  docs/results/internal_rl.md, "Issue 18", point 7). ``task="0-1-2-3"`` selects one task.
- ``InternalRL/ColourSequenceLatent-v0``: the same over the end-to-end metacontroller (the
  paper's method, PAPER §5) at threshold 0.5, whose codes do not steer the shipped base model
  yet; ``metacontroller="segment-codes"`` selects the segment codes.
- ``InternalRL/AntSubgoalsLatent-v0``: the same for the ant's post-training task 0-1-2-3.

Vectorisation: the gridworld and latent-action ids have a batched ``vector_entry_point``,
which ``gym.make_vec(id, num_envs=N)`` returns (one numpy or model step for all N);
``vectorization_mode="sync"`` / ``"async"`` give Gymnasium's vector envs of single envs.
``irl_envs.sb3.make_sb3_vec_env`` gives the batched envs to Stable-Baselines3.

Horizons: every spec declares ``max_episode_steps``, the default horizon T of the env (grid
100, ant 500 raw steps; a latent episode has at most as many latent steps as its raw one has
raw steps). The raw envs also truncate at their own ``max_steps`` argument, so to change the
horizon pass both, e.g. ``gym.make(id, max_steps=200, max_episode_steps=200)``; the batched
gridworld refuses a ``max_steps`` that differs from ``max_episode_steps``.

Rendering: ``render_mode="rgb_array"`` everywhere (``"ansi"`` for the gridworld);
``render_mode="human"`` opens a window through Gymnasium's ``HumanRendering`` and needs
pygame: ``pip install "internal-rl[human]"``.
"""

from typing import Any

from gymnasium.envs.registration import register

from irl_envs.tasks import (
    ANT_POSTTRAIN_TASK,
    ANT_PRETRAIN_TASKS,
    GRID_POSTTRAIN_TASK,
    GRID_PRETRAIN_TASKS,
)

NAMESPACE = "InternalRL"
GRID_HORIZON = 100
"""Default horizon T of the gridworld (``ColourSequenceEnv(max_steps=100)``, PAPER §2.1)."""
ANT_HORIZON = 500
"""Default horizon T of the ant (``AntSubgoalsEnv(max_steps=500)``, PAPER §2.2)."""


def make_grid_vector_env(num_envs: int = 1, max_episode_steps: int | None = None,
                         **kwargs: Any):
    """``vector_entry_point`` of the gridworld ids: the native batched
    :class:`~irl_envs.colour_sequence.ColourSequenceVectorEnv`. Gymnasium passes the spec's
    ``max_episode_steps``, which is the env's own horizon ``max_steps`` here."""
    from irl_envs.colour_sequence import ColourSequenceVectorEnv

    if max_episode_steps == -1:  # Gymnasium's "no time limit"
        max_episode_steps = None
    max_steps = kwargs.pop("max_steps", max_episode_steps or GRID_HORIZON)
    if max_episode_steps is not None and max_episode_steps != max_steps:
        raise ValueError(f"max_steps={max_steps} differs from max_episode_steps="
                         f"{max_episode_steps}: the horizon is one number, pass both "
                         f"(e.g. max_steps={max_steps}, max_episode_steps={max_steps})")
    return ColourSequenceVectorEnv(num_envs, max_steps=max_steps, **kwargs)


for _name, _tasks in (("ColourSequence", [GRID_POSTTRAIN_TASK]),
                      ("ColourSequencePretrain", list(GRID_PRETRAIN_TASKS))):
    register(
        id=f"{NAMESPACE}/{_name}-v0",
        entry_point="irl_envs.colour_sequence:ColourSequenceEnv",
        vector_entry_point="irl_envs:make_grid_vector_env",
        max_episode_steps=GRID_HORIZON,
        kwargs={"tasks": _tasks},
    )
for _name, _tasks in (("AntSubgoals", [ANT_POSTTRAIN_TASK]),
                      ("AntSubgoalsPretrain", list(ANT_PRETRAIN_TASKS))):
    register(
        id=f"{NAMESPACE}/{_name}-v0",
        entry_point="irl_envs.ant_subgoals:AntSubgoalsEnv",
        max_episode_steps=ANT_HORIZON,
        kwargs={"tasks": _tasks},
    )
_LATENT = {"entry_point": "irl_agents.shipped:make_latent_env",
           "vector_entry_point": "irl_agents.shipped:make_latent_vector_env"}
for _name, _env, _horizon in (("ColourSequenceLatent", "grid", GRID_HORIZON),
                              ("AntSubgoalsLatent", "ant", ANT_HORIZON)):
    register(id=f"{NAMESPACE}/{_name}-v0", max_episode_steps=_horizon,
             kwargs={"env": _env, "task_set": "posttrain"}, **_LATENT)
# v1 changes the default action semantics (segment codes, gate 0.3), hence a new version:
# v0's users keep what they trained on, and Gymnasium points them at v1.
register(id=f"{NAMESPACE}/ColourSequenceLatent-v1", max_episode_steps=GRID_HORIZON,
         kwargs={"env": "grid", "task_set": "posttrain", "metacontroller": "segment-codes",
                 "threshold": 0.3}, **_LATENT)


def registered_ids() -> list[str]:
    """Every environment id this package registers."""
    import gymnasium as gym

    return sorted(k for k in gym.registry if k.startswith(f"{NAMESPACE}/"))
