"""The ant walker's training environment: follow a changing direction command.

:class:`AntCommandEnv` uses the arena MJCF and ant of ``AntSubgoalsEnv`` (hence Ant-v5's body,
actuators, RK4 at 0.01 s, frame skip 5), on an unbounded floor with no grid rules. Reset as
``AntSubgoalsEnv``: torso at 0.75 m, uniform yaw, joints and velocities +-0.1. The observation
is the policy input :func:`~irl_envs.experts.ant_locomotion.policy_features`. The command is a
unit vector in the world plane, held for a uniform number of steps in ``[hold_min, hold_max]``
then resampled: with probability ``turn_prob`` a sharp turn (+-90 degrees, or 180 with
``reverse_prob``, plus a little jitter), else a uniform direction. Reward per step::

    min(v . c, target_speed) - lateral_cost * |v - (v . c) c| + healthy_reward - ctrl_cost |a|^2

with ``v`` the torso's planar velocity (finite difference over the step, as Ant-v5), ``c`` the
command. Terminates when the torso height leaves [0.2, 1.0] m (as both Ant-v5 and
AntSubgoals), when the torso is tilted past 90 degrees (``upright_min``: a flipped ant stays in
the height range but is stuck for good) or the state diverges; truncates after ``max_steps``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco import MujocoEnv

from irl_envs import ant_subgoals
from irl_envs.ant_subgoals import (
    HEALTHY_Z_RANGE,
    RESET_NOISE,
    TORSO_START_Z,
    arena_xml,
    check_torques,
)
from irl_envs.experts.ant_locomotion import (
    ACTION_DIM,
    FEATURE_DIM,
    LocomotionPolicy,
    policy_features,
)


@dataclass
class CommandEnvConfig:
    """Reward and command schedule of :class:`AntCommandEnv`."""

    target_speed: float = 1.0
    """Speed along the command above which the velocity reward stops growing (m/s)."""
    lateral_cost: float = 0.5
    """Weight of the speed across the command (m/s) in the reward."""
    healthy_reward: float = 1.0
    """Reward per step for staying upright (Ant-v5's value)."""
    ctrl_cost: float = 0.1
    """Weight of the squared action norm. Ant-v5 uses 0.5, which with exploration noise makes
    every step cost more than ``healthy_reward`` pays: PPO then learns to fall over at once
    (measured, docs/ant_expert.md)."""
    hold_min: int = 20
    """Fewest steps a command is held (20 steps = 1 s)."""
    hold_max: int = 80
    """Most steps a command is held."""
    turn_prob: float = 0.5
    """Probability that a new command is a sharp turn of the old one (else uniform)."""
    reverse_prob: float = 0.2
    """Among sharp turns, probability of a 180 degree reversal (else +-90 degrees)."""
    turn_jitter_deg: float = 15.0
    """Standard deviation of the jitter added to sharp turns (degrees)."""
    max_steps: int = 1000
    """Steps before truncation (Ant-v5's value)."""
    upright_min: float = 0.0
    """Terminate when the torso's up axis has a world z component below this (0: tilted past
    90 degrees). A flipped ant keeps its torso in the healthy height range (so neither Ant-v5
    nor AntSubgoals ends the episode) but can never walk again."""


class AntCommandEnv(MujocoEnv, utils.EzPickle):
    """The AntSubgoals ant on an open floor, rewarded for walking along a changing command.

    See the module docstring for the observation (:func:`policy_features`), the command
    schedule and the reward. ``info`` holds ``along`` and ``lateral`` (m/s) and ``command``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, config: CommandEnvConfig | None = None, frame_skip: int = 5,
                 render_mode: str | None = None, width: int = 480, height: int = 480,
                 **overrides: Any):
        utils.EzPickle.__init__(self, config, frame_skip, render_mode, width, height,
                                **overrides)
        cfg = config or CommandEnvConfig()
        self.cfg = CommandEnvConfig(**{**asdict(cfg), **overrides})
        if not 1 <= self.cfg.hold_min <= self.cfg.hold_max:
            raise ValueError(f"need 1 <= hold_min <= hold_max, got {self.cfg}")
        self._xml = arena_xml(4, 1, 1.0, width, height)
        box = spaces.Box(-np.inf, np.inf, (FEATURE_DIM,), dtype=np.float32)
        # MujocoEnv wants an existing model path; ours comes from arena_xml (as AntSubgoals).
        MujocoEnv.__init__(self, os.path.abspath(ant_subgoals.__file__), frame_skip,
                           observation_space=box, render_mode=render_mode, width=width,
                           height=height, camera_name="track")
        self.fullpath = None
        self.command = np.array([1.0, 0.0])
        self._angle = 0.0
        self._hold = 0
        self._t = 0
        self._warnings = 0

    def _initialize_simulation(self):
        model = mujoco.MjModel.from_xml_string(self._xml)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _warning_count(self) -> int:
        w = self.data.warning
        return sum(w[int(k)].number for k in (mujoco.mjtWarning.mjWARN_BADQPOS,
                                               mujoco.mjtWarning.mjWARN_BADQVEL,
                                               mujoco.mjtWarning.mjWARN_BADQACC))

    def _new_command(self, first: bool) -> None:
        rng, cfg = self.np_random, self.cfg
        if first or rng.random() >= cfg.turn_prob:
            self._angle = rng.uniform(-math.pi, math.pi)
        else:
            turn = math.pi if rng.random() < cfg.reverse_prob else rng.choice([-1, 1]) * math.pi / 2
            self._angle += turn + math.radians(cfg.turn_jitter_deg) * rng.standard_normal()
        self.command = np.array([math.cos(self._angle), math.sin(self._angle)])
        self._hold = int(rng.integers(cfg.hold_min, cfg.hold_max + 1))

    def _obs(self) -> np.ndarray:
        proprio = np.concatenate([self.data.qpos[2:], self.data.qvel])
        return policy_features(proprio[None], self.command[None])[0]

    def reset_model(self) -> np.ndarray:
        rng = self.np_random
        qpos, qvel = self.init_qpos.copy(), self.init_qvel.copy()
        yaw = rng.uniform(-math.pi, math.pi)
        qpos[:3] = (0.0, 0.0, TORSO_START_Z)
        qpos[3:7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        qpos[7:] += rng.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nq - 7)
        qvel += rng.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nv)
        self.set_state(qpos, qvel)
        self._t, self._warnings = 0, self._warning_count()
        self._new_command(first=True)
        return self._obs()

    def step(self, action):
        action = check_torques(action, ACTION_DIM)
        xy0 = self.data.qpos[:2].copy()
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self._t += 1
        cfg = self.cfg
        v = (self.data.qpos[:2] - xy0) / self.dt
        along = float(v @ self.command)
        lateral = float(np.linalg.norm(v - along * self.command))
        z = float(self.data.qpos[2])
        qx, qy = self.data.qpos[4], self.data.qpos[5]
        up = 1.0 - 2.0 * (qx * qx + qy * qy)  # world z of the torso's z axis (unit quaternion)
        bad = self._warning_count() != self._warnings or not np.isfinite(self.data.qpos).all()
        terminated = (bad or not HEALTHY_Z_RANGE[0] <= z <= HEALTHY_Z_RANGE[1]
                      or up < cfg.upright_min)
        reward = (min(along, cfg.target_speed) - cfg.lateral_cost * lateral
                  + cfg.healthy_reward - cfg.ctrl_cost * float(action @ action))
        info = {"along": along, "lateral": lateral, "command": self.command.copy()}
        if bad:
            self._warnings = self._warning_count()
            reward, info["along"], info["lateral"] = 0.0, 0.0, 0.0
            obs = np.zeros(FEATURE_DIM, dtype=np.float32)
        else:
            self._hold -= 1
            if self._hold <= 0:
                self._new_command(first=False)
            obs = self._obs()
        truncated = not terminated and self._t >= cfg.max_steps
        return obs, float(reward), bool(terminated), truncated, info


def evaluate_commands(policy: LocomotionPolicy, episodes: int = 4, steps: int = 400,
                      seed: int = 10_000, env_config: CommandEnvConfig | None = None,
                      noise: float = 0.0) -> dict[str, float]:
    """Command following of ``policy`` on :class:`AntCommandEnv` (fixed seeds).

    Returns ``along`` (mean speed along the command per step of the budget, m/s; a fall
    scores 0 for the rest of the episode), ``lateral`` (mean speed across it while upright),
    ``fall_rate`` and ``upright_steps`` (mean).
    """
    cfg = CommandEnvConfig(**{**asdict(env_config or CommandEnvConfig()), "max_steps": steps})
    env = AntCommandEnv(cfg)
    rng = np.random.default_rng(seed)
    along, lateral, falls, upright = 0.0, 0.0, 0, 0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(policy.act(obs[None], noise, rng)[0])
            along += info["along"]
            lateral += info["lateral"]
            upright += 1
            if terminated or truncated:
                falls += int(terminated)
                break
    env.close()
    return {"along": along / (episodes * steps), "lateral": lateral / max(upright, 1),
            "fall_rate": falls / episodes, "upright_steps": upright / episodes}
