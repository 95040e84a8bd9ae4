"""Training the ant expert's locomotion policy (``irl train-ant-expert``).

The environment package keeps what the expert needs at run time (the policy features, the
policy, its weights: :mod:`irl_envs.experts.ant_locomotion`); training lives here, with the
other tools that train:

- :mod:`.command_env`: :class:`AntCommandEnv`, the ant following a changing direction command,
  and :func:`evaluate_commands`;
- :mod:`.sb3_io`: SB3 actor -> :class:`~irl_envs.experts.ant_locomotion.LocomotionPolicy`
  (:func:`policy_from_sb3`) and pickle-free training checkpoints;
- :mod:`.train`: :class:`TrainConfig` and :func:`train_locomotion`.
"""

from irl_agents.ant_expert_training.command_env import (
    AntCommandEnv,
    CommandEnvConfig,
    evaluate_commands,
)
from irl_agents.ant_expert_training.sb3_io import (
    load_training_state,
    policy_from_sb3,
    save_training_state,
)
from irl_agents.ant_expert_training.train import TrainConfig, train_locomotion

__all__ = [
    "AntCommandEnv",
    "CommandEnvConfig",
    "TrainConfig",
    "evaluate_commands",
    "load_training_state",
    "policy_from_sb3",
    "save_training_state",
    "train_locomotion",
]
