"""Export demonstrations to a Minari dataset (``pip install "internal-rl[minari]"``)."""

from __future__ import annotations

import numpy as np

from irl_envs.datasets import Demonstrations


def export_minari(data: Demonstrations, dataset_id: str, author: str | None = None):
    """Write ``data`` as the local Minari dataset ``dataset_id`` (e.g. ``"irl/grid-pretrain-v0"``).

    Rewards are reconstructed from the sparse rule: 1 on the last step of a successful
    episode, else 0. Episodes that did not succeed and ran to the horizon are marked truncated.
    Side information (subgoals, targets) goes into ``infos``.

    Returns:
        The created ``minari.MinariDataset``.
    """
    try:
        import minari
        from minari.data_collector.episode_buffer import EpisodeBuffer
    except ImportError as err:
        raise ImportError('Minari export needs minari: pip install "internal-rl[minari]"') from err
    env_id = data.meta.get("env_id")
    horizon = None
    if env_id:
        import gymnasium as gym

        horizon = getattr(gym.make(env_id).unwrapped, "core", None)
        horizon = getattr(horizon, "max_steps", None)
    buffers = []
    for i in range(data.num_episodes):
        ep = data.episode(i)
        n = len(ep["actions"])
        success = bool(data.success[i])
        truncated = not success and horizon is not None and n >= horizon
        rewards = np.zeros(n)
        rewards[-1] = float(success)
        end = np.zeros(n, dtype=bool)
        end[-1] = True
        buffers.append(EpisodeBuffer(
            id=i,
            observations=np.concatenate([ep["observations"], ep["final_observation"][None]]),
            actions=ep["actions"], rewards=rewards,
            terminations=end & (not truncated), truncations=end & truncated,
            infos={"subgoal": ep["subgoals"], "target": ep["targets"]},
        ))
    return minari.create_dataset_from_buffers(
        dataset_id, buffers, env=env_id, eval_env=env_id, algorithm_name="expert",
        author=author, description="Expert demonstrations exported from internal-rl "
        f"(task set {data.meta.get('task_set')}, seed {data.meta.get('seed')}).",
    )
