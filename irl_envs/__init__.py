"""Gymnasium environments of the internal-RL suite, registered under ``InternalRL/``.

Importing this package registers:

- ``InternalRL/ColourSequence-v0``: gridworld-pinpad, post-training task 0-1-2-3-4-5-6-7-0-1-2-3.
- ``InternalRL/ColourSequencePretrain-v0``: gridworld-pinpad, a pretraining task per episode.
- ``InternalRL/AntSubgoals-v0``: ant-pinpad, post-training task 0-1-2-3.
- ``InternalRL/AntSubgoalsPretrain-v0``: ant-pinpad, a pretraining task per episode.
- ``InternalRL/ColourSequenceLatent-v0``: the gridworld post-training task as a latent-action
  environment over the shipped base model and metacontroller (``irl_agents.shipped``;
  ``metacontroller="segment-codes"`` and ``task="0-1-2-3"`` select the segment codes and one
  task).
- ``InternalRL/AntSubgoalsLatent-v0``: the same for the ant's post-training task 0-1-2-3.

The gridworld ids have a native batched twin: ``gym.make_vec(id, num_envs=N)`` returns it.
"""

from gymnasium.envs.registration import register

from irl_envs.tasks import (
    ANT_POSTTRAIN_TASK,
    ANT_PRETRAIN_TASKS,
    GRID_POSTTRAIN_TASK,
    GRID_PRETRAIN_TASKS,
)

NAMESPACE = "InternalRL"

register(
    id=f"{NAMESPACE}/ColourSequence-v0",
    entry_point="irl_envs.colour_sequence:ColourSequenceEnv",
    vector_entry_point="irl_envs.colour_sequence:ColourSequenceVectorEnv",
    kwargs={"tasks": [GRID_POSTTRAIN_TASK]},
)
register(
    id=f"{NAMESPACE}/ColourSequencePretrain-v0",
    entry_point="irl_envs.colour_sequence:ColourSequenceEnv",
    vector_entry_point="irl_envs.colour_sequence:ColourSequenceVectorEnv",
    kwargs={"tasks": list(GRID_PRETRAIN_TASKS)},
)
register(
    id=f"{NAMESPACE}/AntSubgoals-v0",
    entry_point="irl_envs.ant_subgoals:AntSubgoalsEnv",
    kwargs={"tasks": [ANT_POSTTRAIN_TASK]},
)
register(
    id=f"{NAMESPACE}/AntSubgoalsPretrain-v0",
    entry_point="irl_envs.ant_subgoals:AntSubgoalsEnv",
    kwargs={"tasks": list(ANT_PRETRAIN_TASKS)},
)

register(
    id=f"{NAMESPACE}/ColourSequenceLatent-v0",
    entry_point="irl_agents.shipped:make_latent_env",
    kwargs={"env": "grid", "task_set": "posttrain"},
)
register(
    id=f"{NAMESPACE}/AntSubgoalsLatent-v0",
    entry_point="irl_agents.shipped:make_latent_env",
    kwargs={"env": "ant", "task_set": "posttrain"},
)


def registered_ids() -> list[str]:
    """Every environment id this package registers."""
    import gymnasium as gym

    return sorted(k for k in gym.registry if k.startswith(f"{NAMESPACE}/"))
