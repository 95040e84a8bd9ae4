"""Direction-conditioned ant locomotion: training env, SB3 training, pickle-free weights.

The ant expert (:mod:`irl_envs.experts.ant_expert`) is a grid planner that outputs a walking
direction plus this low-level policy, which walks the ant of ``AntSubgoalsEnv`` in that
direction. Everything the policy sees is computable from an ``AntSubgoalsEnv`` observation and
the planner's command (:func:`policy_features`), so the expert can act in the real env.

## Policy input (``FEATURE_DIM`` = 28), all invariant to the ant's yaw
| index   | feature                                                                 |
|---------|-------------------------------------------------------------------------|
| 0       | torso height z (m)                                                      |
| 1 - 3   | gravity direction in the torso frame (roll and pitch, no yaw)           |
| 4 - 11  | hinge angles (rad), Ant-v5 order                                        |
| 12 - 14 | symlog torso linear velocity in the heading frame (x forward, y left, z)|
| 15 - 17 | symlog torso angular velocity (torso frame)                             |
| 18 - 25 | symlog hinge angular velocities                                         |
| 26, 27  | command (unit vector) in the heading frame                              |

The *heading frame* is the world frame turned by the torso's yaw (the heading of its x axis on
the floor). Removing the yaw makes "walk along the command" the same problem in every
orientation, which is what makes the policy robust to any starting yaw.

## Training env (:class:`AntCommandEnv`)
The arena MJCF and ant of ``AntSubgoalsEnv`` (hence Ant-v5's body, actuators, RK4 at 0.01 s,
frame skip 5), on an unbounded floor with no grid rules. Reset as ``AntSubgoalsEnv``: torso at
0.75 m, uniform yaw, joints and velocities +-0.1. The command is a unit vector in the world
plane, held for a uniform number of steps in ``[hold_min, hold_max]`` then resampled: with
probability ``turn_prob`` a sharp turn (+-90 degrees, or 180 with ``reverse_prob``, plus a
little jitter), else a uniform direction. Reward per step::

    min(v . c, target_speed) - lateral_cost * |v - (v . c) c| + healthy_reward - ctrl_cost |a|^2

with ``v`` the torso's planar velocity (finite difference over the step, as Ant-v5), ``c`` the
command. Terminates when the torso height leaves [0.2, 1.0] m (as both Ant-v5 and
AntSubgoals), when the torso is tilted past 90 degrees (``upright_min``: a flipped ant stays in
the height range but is stuck for good) or the state diverges; truncates after ``max_steps``.

## Weights without pickle
:func:`policy_from_sb3` copies an SB3 PPO or SAC actor (and ``VecNormalize`` observation
statistics) into :class:`LocomotionPolicy`, a plain torch module; :func:`save_policy` writes it
as a safetensors file plus a JSON config beside it, :func:`load_policy` reads them back. The
shipped weights are ``irl_envs/experts/weights/ant_locomotion.safetensors`` (+ ``.json``).
Training checkpoints are pickle-free too (:func:`save_training_state`): SB3's own ``save``
writes pickles, which would run code from a crafted file on ``--resume``.

## Training
``python -m irl_envs.experts.ant_locomotion --steps N --seed S --out DIR`` (see
:class:`TrainConfig` for every option; ``docs/ant_expert.md`` for the recorded runs).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch
from gymnasium import spaces, utils
from gymnasium.envs.mujoco import MujocoEnv
from safetensors.torch import load_file, save_file
from torch import nn

from irl_envs import ant_subgoals
from irl_envs.ant_subgoals import (
    HEALTHY_Z_RANGE,
    PROPRIO_DIM,
    RESET_NOISE,
    TORSO_START_Z,
    arena_xml,
    check_torques,
)
from irl_envs.atomic import atomic_path, write_json
from irl_envs.experts.ant_planner import world_to_heading, yaw_from_quat
from irl_envs.validation import (
    check_choice,
    check_device,
    check_float,
    check_int,
    check_seed,
    check_tensors,
)
from irl_envs.versions import versions

FEATURE_DIM = 28
ACTION_DIM = 8
WEIGHTS_FORMAT, WEIGHTS_VERSION = "irl-ant-locomotion", 1
WEIGHTS_DIR = Path(__file__).resolve().with_name("weights")
DEFAULT_WEIGHTS = WEIGHTS_DIR / "ant_locomotion.safetensors"
"""The shipped weights (package data); the JSON config has the same stem."""
SMOKE_STATUS = "smoke-test, not the final expert"

# ----------------------------------------------------------------------------- features


def symlog(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def symexp(x: np.ndarray) -> np.ndarray:
    """Inverse of the ``symlog`` AntSubgoals applies to its proprioception."""
    return np.sign(x) * np.expm1(np.abs(x))


def proprio_from_obs(obs: np.ndarray) -> np.ndarray:
    """Raw ``qpos[2:]``, ``qvel`` ``(N, 27)`` from AntSubgoals observations (undo symlog)."""
    obs = np.atleast_2d(np.asarray(obs, dtype=np.float64))
    return symexp(obs[:, :PROPRIO_DIM])


def policy_features(proprio: np.ndarray, command: np.ndarray) -> np.ndarray:
    """Yaw-invariant policy input (see the module docstring).

    Args:
        proprio: ``(N, 27)`` raw ``qpos[2:]`` (z, quaternion w x y z, 8 hinges) and ``qvel``
            (world linear velocity, torso-frame angular velocity, 8 hinge velocities).
        command: ``(N, 2)`` walking direction, world frame (unit vectors).

    Returns:
        ``(N, FEATURE_DIM)`` float32.
    """
    p = np.atleast_2d(np.asarray(proprio, dtype=np.float64))
    cmd = np.atleast_2d(np.asarray(command, dtype=np.float64))
    q = p[:, 1:5] / np.maximum(np.linalg.norm(p[:, 1:5], axis=1, keepdims=True), 1e-12)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    gravity = -np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1)
    yaw = yaw_from_quat(q)
    vel = np.concatenate([world_to_heading(p[:, 13:15], yaw), p[:, 15:16]], axis=1)
    out = np.concatenate([p[:, :1], gravity, p[:, 5:13], symlog(vel), symlog(p[:, 16:27]),
                          world_to_heading(cmd, yaw)], axis=1)
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- training env


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


# ----------------------------------------------------------------------------- policy

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
LOG_STD_RANGE = (-20.0, 2.0)
"""SB3's clamp of SAC's state-dependent log standard deviation."""


class LocomotionPolicy(nn.Module):
    """Gaussian MLP actor, the part of an SB3 PPO/SAC policy needed to act; pickle-free.

    ``mean_action`` is what SB3's ``predict(deterministic=True)`` returns: the Gaussian mean,
    clipped to [-1, 1] (PPO) or squashed by tanh (SAC, ``squash=True``). Observation
    normalisation (``VecNormalize`` statistics) happens inside, in float64 like SB3.

    Args:
        obs_dim: input size (``FEATURE_DIM``).
        act_dim: action size (8).
        hidden: widths of the hidden layers.
        activation: ``"tanh"``, ``"relu"`` or ``"elu"``.
        squash: tanh-squashed Gaussian (SAC) instead of a clipped one (PPO).
        state_dependent_std: log std is a linear head (SAC) instead of a parameter (PPO).
        obs_norm: normalise inputs with ``obs_mean``/``obs_var`` (VecNormalize).
        clip_obs: VecNormalize's clip of normalised inputs.
        norm_eps: VecNormalize's epsilon.
    """

    def __init__(self, obs_dim: int = FEATURE_DIM, act_dim: int = ACTION_DIM,
                 hidden: tuple[int, ...] = (256, 256), activation: str = "tanh",
                 squash: bool = False, state_dependent_std: bool = False,
                 obs_norm: bool = False, clip_obs: float = 10.0, norm_eps: float = 1e-8):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got "
                             f"{activation!r}")
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(hidden),
                       "activation": activation, "squash": squash,
                       "state_dependent_std": state_dependent_std, "obs_norm": obs_norm,
                       "clip_obs": clip_obs, "norm_eps": norm_eps}
        layers: list[nn.Module] = []
        d = obs_dim
        for h in hidden:
            layers += [nn.Linear(d, h), _ACTIVATIONS[activation]()]
            d = h
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(d, act_dim)
        if state_dependent_std:
            self.log_std = nn.Linear(d, act_dim)
        else:
            self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.register_buffer("obs_mean", torch.zeros(obs_dim, dtype=torch.float64))
        self.register_buffer("obs_var", torch.ones(obs_dim, dtype=torch.float64))
        self.meta: dict[str, Any] = {}

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not c["obs_norm"]:
            return obs.float()
        x = (obs.double() - self.obs_mean) / torch.sqrt(self.obs_var + c["norm_eps"])
        return torch.clamp(x, -c["clip_obs"], c["clip_obs"]).float()

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unsquashed Gaussian mean and log std for (un-normalised) features."""
        latent = self.body(self.normalise(obs))
        mu = self.mu(latent)
        if isinstance(self.log_std, nn.Linear):
            log_std = torch.clamp(self.log_std(latent), *LOG_STD_RANGE)
        else:
            log_std = self.log_std.expand_as(mu)
        return mu, log_std

    def _finish(self, a: torch.Tensor) -> torch.Tensor:
        return torch.tanh(a) if self.config["squash"] else torch.clamp(a, -1.0, 1.0)

    @torch.no_grad()
    def act(self, features: np.ndarray, noise: float = 0.0,
            rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions ``(N, act_dim)`` float32 for features ``(N, obs_dim)``.

        ``noise=0`` gives the Gaussian mean; ``noise=k`` samples with ``k`` times the policy's
        own standard deviation (``k=1``: the trained stochastic policy), using ``rng``.
        """
        obs = torch.as_tensor(np.atleast_2d(features))
        mu, log_std = self(obs)
        if noise > 0:
            rng = rng if rng is not None else np.random.default_rng()
            eps = torch.as_tensor(rng.standard_normal(mu.shape), dtype=mu.dtype)
            mu = mu + noise * torch.exp(log_std) * eps
        action = self._finish(mu).numpy().astype(np.float32, copy=False)
        if self.config["squash"]:  # SB3 rescales tanh outputs to the bounds [-1, 1]: same ops
            low, high = np.float32(-1.0), np.float32(1.0)
            action = low + (0.5 * (action + 1.0) * (high - low))
        return action


def policy_from_sb3(model, vec_normalize=None) -> LocomotionPolicy:
    """Copy the actor of an SB3 ``PPO`` or ``SAC`` model (and VecNormalize stats) out."""
    from stable_baselines3 import PPO, SAC

    if isinstance(model, PPO):
        net = model.policy.mlp_extractor.policy_net
        head, std = model.policy.action_net, model.policy.log_std
        squash, state_std = False, False
    elif isinstance(model, SAC):
        actor = model.policy.actor
        if actor.use_sde:
            raise ValueError("SAC with gSDE is not supported")
        net, head, std = actor.latent_pi, actor.mu, actor.log_std
        squash, state_std = True, True
    else:
        raise TypeError(f"expected an SB3 PPO or SAC model, got {type(model).__name__}")
    linears = [m for m in net if isinstance(m, nn.Linear)]
    acts = {type(m) for m in net if not isinstance(m, nn.Linear)}
    names = [k for k, v in _ACTIVATIONS.items() if {v} == acts]
    if len(names) != 1:
        raise ValueError(f"unsupported activations {acts}")
    obs_dim = model.observation_space.shape[0]
    norm = vec_normalize is not None and vec_normalize.norm_obs
    policy = LocomotionPolicy(obs_dim, head.out_features, tuple(m.out_features for m in linears),
                              names[0], squash, state_std, norm,
                              float(vec_normalize.clip_obs) if norm else 10.0,
                              float(vec_normalize.epsilon) if norm else 1e-8)
    state = {}
    body_linear = [i for i, m in enumerate(policy.body) if isinstance(m, nn.Linear)]
    for i, src in zip(body_linear, linears, strict=True):
        state[f"body.{i}.weight"], state[f"body.{i}.bias"] = src.weight, src.bias
    state["mu.weight"], state["mu.bias"] = head.weight, head.bias
    if state_std:
        state["log_std.weight"], state["log_std.bias"] = std.weight, std.bias
    else:
        state["log_std"] = std
    if norm:
        state["obs_mean"] = torch.as_tensor(vec_normalize.obs_rms.mean, dtype=torch.float64)
        state["obs_var"] = torch.as_tensor(vec_normalize.obs_rms.var, dtype=torch.float64)
    else:
        state["obs_mean"], state["obs_var"] = policy.obs_mean, policy.obs_var
    policy.load_state_dict({k: v.detach().cpu().clone() for k, v in state.items()})
    return policy.eval()


def save_policy(policy: LocomotionPolicy, path: str | os.PathLike,
                meta: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (safetensors) and ``path`` with suffix ``.json`` (config + ``meta``)."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": WEIGHTS_FORMAT})
    write_json(path.with_suffix(".json"), {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION,
                                           "features": "policy_features v1",
                                           "policy": policy.config, **(meta or {})})
    return path


WEIGHTS_ENV_VAR = "IRL_ANT_WEIGHTS"
"""Environment variable naming weights to use instead of the shipped ones (e.g. to evaluate a
training checkpoint with ``irl expert-eval --env ant`` before shipping it)."""


def load_policy(path: str | os.PathLike | None = None) -> LocomotionPolicy:
    """Load weights written by :func:`save_policy`. No pickle.

    Default: ``$IRL_ANT_WEIGHTS`` if set, else the shipped weights (``DEFAULT_WEIGHTS``).
    """
    if path is None:
        path = os.environ.get(WEIGHTS_ENV_VAR) or DEFAULT_WEIGHTS
    path = Path(path)
    cfg_path = path.with_suffix(".json")
    if not path.is_file() or not cfg_path.is_file():
        raise ValueError(f"locomotion weights {path} (and {cfg_path.name}) not found")
    try:
        meta = json.loads(cfg_path.read_text())
        if meta.get("format") != WEIGHTS_FORMAT or meta.get("version") != WEIGHTS_VERSION:
            raise ValueError(f"not an {WEIGHTS_FORMAT} v{WEIGHTS_VERSION} config")
        c = dict(meta["policy"])
        c["hidden"] = tuple(c["hidden"])
        policy = LocomotionPolicy(**c)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{cfg_path}: unreadable locomotion policy config ({err})") from None
    try:
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error types)
        raise ValueError(f"{path}: not a valid safetensors file ({err})") from None
    check_tensors(str(path), tensors, policy.state_dict())
    policy.load_state_dict(tensors)
    policy.meta = {k: v for k, v in meta.items() if k != "policy"}
    return policy.eval()


# ----------------------------------------------------------------------------- evaluation


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


# ----------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    """Options of :func:`train_locomotion` (CLI flags are the field names with dashes)."""

    out: str = "runs/ant_locomotion"
    """Output folder: config.json, progress.csv, checkpoints/, ant_locomotion.safetensors."""
    steps: int = 5_000_000
    """Environment steps to train for (all sub-environments together)."""
    seed: int = 0
    """Seed of the environments and of SB3."""
    algo: str = "ppo"
    """``"ppo"`` or ``"sac"``."""
    n_envs: int = 8
    """Training sub-environments."""
    subproc: bool = False
    """Step the sub-environments in worker processes (SubprocVecEnv, one per env) instead of
    in this process (DummyVecEnv). Worth it only with spare cores."""
    threads: int = 1
    """torch threads (``torch.set_num_threads``)."""
    device: str = "cpu"
    """torch device for SB3 (``"cpu"``, ``"cuda"``, ``"auto"``)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor (and of the critic)."""
    activation: str = "tanh"
    """Hidden activation: ``"tanh"``, ``"relu"``, ``"elu"``."""
    learning_rate: float = 3e-4
    """Adam learning rate (PPO and SAC)."""
    gamma: float = 0.99
    """Discount factor."""
    normalize: bool | None = None
    """VecNormalize observations (and rewards for PPO); None: on for PPO, off for SAC."""
    # PPO
    n_steps: int = 256
    """PPO: steps per sub-environment per rollout (rollout = n_steps * n_envs)."""
    batch_size: int = 256
    """PPO/SAC minibatch size."""
    n_epochs: int = 10
    """PPO: passes over each rollout."""
    gae_lambda: float = 0.95
    """PPO: GAE lambda."""
    clip_range: float = 0.2
    """PPO: ratio clip."""
    ent_coef: float = 0.0
    """PPO: entropy bonus."""
    vf_coef: float = 0.5
    """PPO: value loss weight."""
    max_grad_norm: float = 0.5
    """PPO: gradient norm clip."""
    log_std_init: float = -0.5
    """PPO: initial log standard deviation of the actions."""
    target_kl: float | None = None
    """PPO: early-stop an update beyond this KL (None: never)."""
    # SAC
    buffer_size: int = 1_000_000
    """SAC: replay buffer size."""
    learning_starts: int = 5_000
    """SAC: random steps before learning."""
    tau: float = 0.005
    """SAC: target network update rate."""
    train_freq: int = 1
    """SAC: env steps (per sub-env) between updates."""
    gradient_steps: int = 1
    """SAC: gradient steps per update."""
    # environment
    env: CommandEnvConfig = field(default_factory=CommandEnvConfig)
    """Reward and command schedule (CLI: ``--env.FIELD VALUE``)."""
    # bookkeeping
    eval_every_s: float = 60.0
    """Evaluate command following (fixed seeds) every this many wall seconds."""
    eval_episodes: int = 3
    """Episodes per evaluation (400 steps each)."""
    checkpoint_every: int = 500_000
    """Save a resumable checkpoint (``checkpoints/last_state.safetensors``: networks,
    optimizers, normalisation statistics, step count) and the exported weights every N
    steps."""
    time_limit_s: float = 0.0
    """Stop (checkpoint and export as usual) after this many wall seconds; 0: no limit."""
    resume: bool = False
    """Continue from ``out/checkpoints/last_state.safetensors`` (safetensors + JSON: nothing is
    unpickled). Without it, a folder that holds a checkpoint is refused."""
    overwrite: bool = False
    """Replace a run with other settings (or a checkpoint not resumed) in ``out``."""
    status: str = "trained"
    """``status`` written into the exported weights' JSON."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_choice("algo", self.algo, ("ppo", "sac"))
        check_choice("activation", self.activation, sorted(_ACTIVATIONS))
        for name in ("steps", "n_envs", "threads", "n_steps", "batch_size", "n_epochs",
                     "buffer_size", "train_freq", "gradient_steps", "eval_episodes",
                     "checkpoint_every"):
            check_int(name, getattr(self, name), 1)
        check_int("learning_starts", self.learning_starts, 0)
        check_seed("seed", self.seed, self.n_envs)
        for width in self.hidden:
            check_int("hidden", width, 1)
        for name in ("learning_rate", "clip_range", "max_grad_norm", "eval_every_s"):
            check_float(name, getattr(self, name), positive=True)
        for name in ("gamma", "tau"):
            check_float(name, getattr(self, name), positive=True, high=1.0)
        check_float("gae_lambda", self.gae_lambda, low=0.0, high=1.0)
        for name in ("ent_coef", "vf_coef", "time_limit_s"):
            check_float(name, getattr(self, name), low=0.0)
        check_float("log_std_init", self.log_std_init)
        if self.device != "auto":
            check_device(self.device)
        if self.target_kl is not None:
            check_float("target_kl", self.target_kl, positive=True)


class _Monitor:
    """SB3 callback: periodic evaluation, progress.csv, checkpoints, exported weights."""

    def __init__(self, cfg: TrainConfig, out: Path, start: float, wall_before: float):
        from stable_baselines3.common.callbacks import BaseCallback

        monitor = self

        class Callback(BaseCallback):
            def _on_step(self) -> bool:
                return monitor.on_step(self.model)

        self.callback = Callback()
        self.cfg, self.out, self.start, self.wall_before = cfg, out, start, wall_before
        self.next_eval = time.perf_counter() + cfg.eval_every_s
        self.next_ckpt = None
        self.rows: list[dict[str, Any]] = []

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.start

    def on_step(self, model) -> bool:
        steps = model.num_timesteps
        if self.next_ckpt is None:
            self.next_ckpt = (steps // self.cfg.checkpoint_every + 1) * self.cfg.checkpoint_every
        if steps >= self.next_ckpt:
            self.checkpoint(model)
            self.next_ckpt += self.cfg.checkpoint_every
        if time.perf_counter() >= self.next_eval:
            self.evaluate(model)
            self.next_eval = time.perf_counter() + self.cfg.eval_every_s
        return not (self.cfg.time_limit_s and self.wall() >= self.cfg.time_limit_s)

    def evaluate(self, model) -> dict[str, Any]:
        t0 = time.perf_counter()
        policy = policy_from_sb3(model, model.get_vec_normalize_env())
        res = evaluate_commands(policy, self.cfg.eval_episodes, env_config=self.cfg.env)
        eval_s = time.perf_counter() - t0
        self.start += eval_s  # evaluation time is not training time
        ep = [e["r"] for e in model.ep_info_buffer] if model.ep_info_buffer else [float("nan")]
        row = {"steps": model.num_timesteps, "wall_s": round(self.wall(), 1),
               "ep_return": round(float(np.mean(ep)), 2),
               **{k: round(v, 4) for k, v in res.items()}, "eval_s": round(eval_s, 2)}
        self.rows.append(row)
        path = self.out / PROGRESS_FILE
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if not self.cfg.progress:
            print(json.dumps(row), flush=True)
        return row

    def checkpoint(self, model) -> None:
        ckpt = self.out / "checkpoints"
        save_training_state(model, ckpt / STATE_FILE, self.wall())
        write_json(ckpt / "last.json", {"steps": model.num_timesteps,
                                        "wall_s": round(self.wall(), 1)})
        self.export(model, self.out / f"weights_{model.num_timesteps}.safetensors")

    def export(self, model, path: Path) -> Path:
        meta = {"status": self.cfg.status,
                "train": {"algo": self.cfg.algo, "seed": self.cfg.seed,
                          "steps": int(model.num_timesteps), "wall_s": round(self.wall(), 1),
                          "command": "python -m irl_envs.experts.ant_locomotion "
                                     + shlex.join(sys.argv[1:]),
                          "config": _jsonable(asdict(self.cfg))},
                "versions": versions()}
        return save_policy(policy_from_sb3(model, model.get_vec_normalize_env()), path, meta)


STATE_FILE = "last_state.safetensors"
"""The resumable checkpoint in ``out/checkpoints/``: safetensors + JSON metadata, no pickle."""
PROGRESS_FILE = "progress.csv"
_RUN_SETTINGS = ("out", "steps", "subproc", "threads", "device", "eval_every_s",
                 "eval_episodes", "checkpoint_every", "time_limit_s", "resume", "overwrite",
                 "status", "progress")
"""Settings that do not define the run: a run may be resumed with other values."""


def save_training_state(model, path: Path, wall_s: float) -> Path:
    """Everything :func:`load_training_state` needs to continue training ``model`` (an SB3
    PPO or SAC), in one atomically written safetensors file: the networks and optimizers
    (SB3's own list of them), the normalisation statistics and the step count. Unlike
    ``model.save`` (a zip of pickles), loading it runs no code from the file."""
    from stable_baselines3.common.save_util import recursive_getattr

    from irl_agents.models.checkpoint import optimizer_to_tensors, save_tensors_atomic

    names, variables = model._get_torch_save_params()
    tensors: dict[str, torch.Tensor] = {}
    layouts: dict[str, str] = {}
    for name in names:
        obj = recursive_getattr(model, name)
        if isinstance(obj, torch.optim.Optimizer):
            state, layouts[name] = optimizer_to_tensors(obj)
        else:
            state = obj.state_dict()
        tensors |= {f"{name}/{key}": value for key, value in state.items()}
    for name in variables:
        tensors[f"variable/{name}"] = recursive_getattr(model, name)
    meta = {"algo": type(model).__name__.lower(), "num_timesteps": int(model.num_timesteps),
            "n_updates": int(getattr(model, "_n_updates", 0)), "wall_s": round(wall_s, 1),
            "optimizers": layouts, "vecnormalize": None}
    vn = model.get_vec_normalize_env()
    if vn is not None:
        for stats in ("obs_rms", "ret_rms"):
            rms = getattr(vn, stats)
            tensors[f"vecnormalize/{stats}.mean"] = torch.as_tensor(rms.mean, dtype=torch.float64)
            tensors[f"vecnormalize/{stats}.var"] = torch.as_tensor(rms.var, dtype=torch.float64)
        meta["vecnormalize"] = {"obs_count": float(vn.obs_rms.count),
                                "ret_count": float(vn.ret_rms.count)}
    return save_tensors_atomic(path, tensors, metadata={"state": json.dumps(meta)})


def load_training_state(model, path: Path) -> float:
    """Restore a state written by :func:`save_training_state` into a freshly built ``model``
    of the same settings (and its VecNormalize); returns the recorded wall time."""
    from stable_baselines3.common.save_util import recursive_getattr

    from irl_agents.models.checkpoint import load_tensors, optimizer_from_tensors

    tensors, metadata = load_tensors(path)
    try:
        meta = json.loads(metadata["state"])
        if meta["algo"] != type(model).__name__.lower():
            raise ValueError(f"a {meta['algo']} checkpoint cannot resume {type(model).__name__}")
        names, variables = model._get_torch_save_params()
        for name in names:
            obj = recursive_getattr(model, name)
            state = {k.split("/", 1)[1]: v for k, v in tensors.items()
                     if k.split("/", 1)[0] == name}
            if isinstance(obj, torch.optim.Optimizer):
                optimizer_from_tensors(obj, state, meta["optimizers"][name])
            else:
                check_tensors(f"{path} ({name})", state, obj.state_dict())
                obj.load_state_dict(state)
        for name in variables:
            with torch.no_grad():
                recursive_getattr(model, name).copy_(tensors[f"variable/{name}"])
        vn = model.get_vec_normalize_env()
        if (vn is None) != (meta["vecnormalize"] is None):
            raise ValueError("normalisation statistics do not match the normalize setting")
        if vn is not None:
            for stats in ("obs_rms", "ret_rms"):
                rms = getattr(vn, stats)
                mean = tensors[f"vecnormalize/{stats}.mean"].numpy()
                var = tensors[f"vecnormalize/{stats}.var"].numpy()
                if mean.shape != np.shape(rms.mean) or not np.isfinite([*mean.ravel(),
                                                                        *var.ravel()]).all():
                    raise ValueError(f"bad {stats} statistics")
                rms.mean, rms.var = mean.copy(), var.copy()
                rms.count = float(meta["vecnormalize"][f"{stats[:3]}_count"])
        model.num_timesteps = int(meta["num_timesteps"])
        model._n_updates = int(meta["n_updates"])
        return float(meta["wall_s"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: not a resumable checkpoint of this run ({err})") from None


def _progress_header(out: Path) -> list[str]:
    path = out / PROGRESS_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def train_locomotion(cfg: TrainConfig) -> dict[str, Any]:
    """Train the direction-conditioned walker with SB3; returns the run summary.

    Writes to ``cfg.out``: ``config.json`` (config, versions, command line), ``progress.csv``
    (steps, wall time, training return, evaluation), ``checkpoints/`` (the resumable state of
    :func:`save_training_state`: no pickle), ``ant_locomotion.safetensors`` + ``.json`` (the
    exported policy, loadable by :func:`load_policy`) and ``summary.json`` (wall time, steps,
    final evaluation). Wall times exclude the periodic evaluations. A resumed run continues
    the networks, optimizers, normalisation statistics and step count; its environments
    start new episodes, so it is not step-for-step the uninterrupted run.
    """
    from irl_agents.run_folder import claim_run, run_config

    config = run_config(_jsonable(asdict(cfg)), _RUN_SETTINGS)
    with claim_run(cfg.out, "train-ant-expert", config, overwrite=cfg.overwrite,
                   legacy=("config.json", "checkpoints/last.json")) as run:
        return _train_locomotion(cfg, run.fresh)


def _train_locomotion(cfg: TrainConfig, fresh: bool) -> dict[str, Any]:
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    from irl_agents.run_folder import RunFolderError, check_resume_budget
    from irl_agents.run_logger import keep_csv_rows

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    ckpt = out / "checkpoints" / STATE_FILE
    if not fresh and not ckpt.is_file() and (out / "checkpoints" / "last.zip").is_file():
        raise RunFolderError(f"{out / 'checkpoints'} holds only an SB3 pickle checkpoint "
                             "(last.zip) of an older version, which is never loaded: it could "
                             "run code. Start again with --overwrite or another --out")
    resuming = not fresh and ckpt.is_file()
    if resuming and not cfg.resume:
        raise RunFolderError(f"{out} holds a checkpoint of this run; pass --resume true to "
                             "continue it, or --overwrite to start again")
    if not resuming:
        (out / PROGRESS_FILE).unlink(missing_ok=True)
    write_json(out / ("config_resumed.json" if resuming else "config.json"),
               {"config": _jsonable(asdict(cfg)), "versions": versions(),
                "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})

    env_cfg = cfg.env
    vec_cls = SubprocVecEnv if cfg.subproc else DummyVecEnv
    venv = make_vec_env(AntCommandEnv, n_envs=cfg.n_envs, seed=cfg.seed, vec_env_cls=vec_cls,
                        env_kwargs={"config": env_cfg})
    normalize = cfg.algo == "ppo" if cfg.normalize is None else cfg.normalize
    if normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=cfg.algo == "ppo", gamma=cfg.gamma)
    act = _ACTIVATIONS[cfg.activation]
    hidden = list(cfg.hidden)
    if cfg.algo == "ppo":
        model = PPO("MlpPolicy", venv, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
                    batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma,
                    gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
                    vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                    target_kl=cfg.target_kl, seed=cfg.seed, device=cfg.device, verbose=0,
                    policy_kwargs={"net_arch": {"pi": hidden, "vf": hidden},
                                   "activation_fn": act, "log_std_init": cfg.log_std_init})
    else:
        model = SAC("MlpPolicy", venv, learning_rate=cfg.learning_rate,
                    buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts,
                    batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
                    train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps,
                    seed=cfg.seed, device=cfg.device, verbose=0,
                    policy_kwargs={"net_arch": hidden, "activation_fn": act})
    wall_before = 0.0
    if resuming:  # the freshly built model takes the checkpoint's weights and statistics
        wall_before = load_training_state(model, ckpt)
        done = model.num_timesteps
        check_resume_budget("steps", cfg.steps, done, ckpt)
        keep_csv_rows(out / PROGRESS_FILE, _progress_header(out),
                      lambda row: int(row[0]) <= done)
    start = time.perf_counter()
    monitor = _Monitor(cfg, out, start, wall_before)
    remaining = max(cfg.steps - (model.num_timesteps if resuming else 0), 0)
    try:
        model.learn(total_timesteps=remaining, callback=monitor.callback,
                    progress_bar=cfg.progress, reset_num_timesteps=not resuming)
    finally:
        monitor.checkpoint(model)
    final = monitor.evaluate(model)
    weights = monitor.export(model, out / "ant_locomotion.safetensors")
    summary = {"steps": int(model.num_timesteps), "wall_s": round(monitor.wall(), 1),
               "steps_per_s": round((model.num_timesteps) / max(monitor.wall(), 1e-9), 1),
               "final_eval": final, "weights": str(weights), "config": _jsonable(asdict(cfg)),
               "versions": versions()}
    write_json(out / "summary.json", summary)
    venv.close()
    return summary


# ----------------------------------------------------------------------------- CLI


def _field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a dataclass (for ``--help``)."""
    import ast
    import inspect
    import textwrap

    docs, body = {}, ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _add_arguments(p: argparse.ArgumentParser) -> None:
    defaults, docs = TrainConfig(), _field_docs(TrainConfig)
    for f in fields(TrainConfig):
        if f.name == "env":
            continue
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        doc = docs.get(f.name, "").replace("%", "%%") + f" (default {value})"
        if f.name == "overwrite":  # as every other command's --overwrite: a plain switch
            p.add_argument(flag, action="store_true", help=doc)
        elif isinstance(value, bool) or f.name == "normalize":
            p.add_argument(flag, type=_parse_bool, default=value, metavar="BOOL", help=doc)
        elif isinstance(value, tuple):
            p.add_argument(flag, type=int, nargs="+", default=value, help=doc)
        elif f.name == "target_kl":
            p.add_argument(flag, type=float, default=value, help=doc)
        elif f.name in ("algo", "activation"):
            choices = ["ppo", "sac"] if f.name == "algo" else sorted(_ACTIVATIONS)
            p.add_argument(flag, choices=choices, default=value, help=doc)
        else:
            p.add_argument(flag, type=type(value), default=value, help=doc)
    env_docs = _field_docs(CommandEnvConfig)
    for f in fields(CommandEnvConfig):
        value = getattr(CommandEnvConfig(), f.name)
        p.add_argument("--env." + f.name.replace("_", "-"), dest=f"env__{f.name}",
                       type=type(value), default=value,
                       help=env_docs.get(f.name, "").replace("%", "%%") + f" (default {value})")


def _parse_bool(text: str) -> bool | None:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    if low in ("none", "auto"):
        return None
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    env = CommandEnvConfig(**{f.name: getattr(args, f"env__{f.name}")
                              for f in fields(CommandEnvConfig)})
    kwargs = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "env"}
    kwargs["hidden"] = tuple(kwargs["hidden"])
    return TrainConfig(**kwargs, env=env)


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    """Register ``irl train-ant-expert`` (same flags as ``python -m`` of this module)."""
    p = sub.add_parser("train-ant-expert", help="train the ant expert's locomotion policy",
                       description="Train the direction-conditioned ant walker with SB3.")
    _add_arguments(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    summary = train_locomotion(config_from_args(args))
    print(json.dumps({k: summary[k] for k in ("steps", "wall_s", "steps_per_s", "final_eval",
                                              "weights")}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m irl_envs.experts.ant_locomotion",
                                description="Train the ant expert's locomotion policy (SB3).")
    _add_arguments(p)
    return _run(p.parse_args(argv))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
