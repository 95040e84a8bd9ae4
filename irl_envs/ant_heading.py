"""AntSubgoals observations in the ant's heading frame.

``AntSubgoals`` gives the torso's linear velocity and every cell offset in the *world* frame,
with the heading only implicit in the orientation quaternion. A policy that walks towards a
cell must then rotate each offset by the yaw it reads off the quaternion: a product of
trigonometric functions of four inputs, which a cloned model learns slowly (the expert
itself acts on heading-frame features, :func:`~irl_envs.experts.ant_locomotion.policy_features`).
:func:`heading_frame` rewrites an observation so that these vectors are already rotated:

- the torso's planar linear velocity (indices 13, 14, symlog undone and re-applied) and every
  colour and wall offset (indices ``29 .. 28 + 2K``) are rotated by ``-yaw``, so ``+x`` is
  straight ahead and ``+y`` to the ant's left;
- ``cos(yaw), sin(yaw)`` are appended (two more dims), so nothing is lost: the world-frame
  vectors are a rotation of the new ones.

Everything else (proprioception, global position, the in-cell coordinate) is unchanged. The
transform is a pure function of one observation, so a dataset recorded in the world frame can
be rewritten offline and gives exactly what the wrapped environment emits.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from irl_envs.ant_subgoals import symexp, symlog
from irl_envs.experts.ant_planner import world_to_heading, yaw_from_quat

_VELOCITY = slice(13, 15)
_QUAT = slice(1, 5)
_OFFSETS = 29


def heading_frame(obs: np.ndarray, cells: int = 5) -> np.ndarray:
    """Rewrite ``(N, D)`` (or ``(D,)``) AntSubgoals observations in the heading frame.

    Args:
        obs: world-frame observations, ``D = 31 + 2 * cells``.
        cells: colours plus walls (``O + W``; 5 for the defaults).

    Returns:
        ``(N, D + 2)`` float32 (or ``(D + 2,)``): see the module docstring.
    """
    single = np.ndim(obs) == 1
    x = np.atleast_2d(np.asarray(obs, dtype=np.float64))
    if x.shape[1] != 31 + 2 * cells:
        raise ValueError(f"obs: expected {31 + 2 * cells} dims for {cells} cells, got "
                         f"{x.shape[1]}")
    quat = symexp(x[:, _QUAT])
    quat /= np.maximum(np.linalg.norm(quat, axis=1, keepdims=True), 1e-12)
    yaw = yaw_from_quat(quat)
    out = x.copy()
    out[:, _VELOCITY] = symlog(world_to_heading(symexp(x[:, _VELOCITY]), yaw))
    for i in range(cells):
        j = _OFFSETS + 2 * i
        out[:, j:j + 2] = world_to_heading(x[:, j:j + 2], yaw)
    out = np.concatenate([out, np.cos(yaw)[:, None], np.sin(yaw)[:, None]], 1)
    out = out.astype(np.float32)
    return out[0] if single else out


FRAMES = {"world": lambda obs: obs, "heading": heading_frame}
"""Observation frames by name: the env's own, or :func:`heading_frame`'s (``--frame``)."""


class HeadingFrameObservation(gym.ObservationWrapper):
    """An ``AntSubgoals`` environment whose observations are :func:`heading_frame`'s."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        base = env.unwrapped
        cells = base.num_colours + base.num_walls
        low, high = env.observation_space.low, env.observation_space.high
        # a rotated offset's components are bounded by its norm: up to sqrt(2) of the range
        r = np.sqrt(2.0)
        low = np.concatenate([low, [-1.0, -1.0]]).astype(np.float32)
        high = np.concatenate([high, [1.0, 1.0]]).astype(np.float32)
        low[_OFFSETS:_OFFSETS + 2 * cells] = -r
        high[_OFFSETS:_OFFSETS + 2 * cells] = r
        self._cells = cells
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.clip(heading_frame(observation, self._cells), self.observation_space.low,
                       self.observation_space.high)
