"""Direction-conditioned ant locomotion at run time: features, policy, pickle-free weights.

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

## Weights without pickle
:class:`LocomotionPolicy` is a plain torch module (the part of an SB3 PPO or SAC actor needed
to act, with the ``VecNormalize`` statistics); :func:`save_policy` writes it as a safetensors
file plus a JSON config beside it, :func:`load_policy` reads them back. The shipped weights are
``irl_envs/experts/weights/ant_locomotion.safetensors`` (+ ``.json``).

## Training
Training belongs with the tools that train: :mod:`irl_agents.ant_expert_training` (the
training env, SB3 conversion, pickle-free checkpoints), run as ``irl train-ant-expert``;
``docs/ant_expert.md`` records the runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from irl_envs.ant_subgoals import PROPRIO_DIM, symexp, symlog
from irl_envs.atomic import atomic_path, write_json
from irl_envs.experts.ant_planner import world_to_heading, yaw_from_quat
from irl_envs.validation import check_tensors

FEATURE_DIM = 28
ACTION_DIM = 8
WEIGHTS_FORMAT, WEIGHTS_VERSION = "irl-ant-locomotion", 1
WEIGHTS_DIR = Path(__file__).resolve().with_name("weights")
DEFAULT_WEIGHTS = WEIGHTS_DIR / "ant_locomotion.safetensors"
"""The shipped weights (package data); the JSON config has the same stem."""
SMOKE_STATUS = "smoke-test, not the final expert"

# ----------------------------------------------------------------------------- features


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


# ----------------------------------------------------------------------------- policy

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
"""Hidden activations a policy may use, by name."""
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
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                             f"{activation!r}")
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(hidden),
                       "activation": activation, "squash": squash,
                       "state_dependent_std": state_dependent_std, "obs_norm": obs_norm,
                       "clip_obs": clip_obs, "norm_eps": norm_eps}
        layers: list[nn.Module] = []
        d = obs_dim
        for h in hidden:
            layers += [nn.Linear(d, h), ACTIVATIONS[activation]()]
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

    def bound(self, a: torch.Tensor) -> torch.Tensor:
        """Gaussian actions (pre-squash) to actions in [-1, 1]: tanh (SAC) or a clip (PPO)."""
        return torch.tanh(a) if self.config["squash"] else torch.clamp(a, -1.0, 1.0)

    def act(self, features: np.ndarray, noise: float = 0.0,
            rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions ``(N, act_dim)`` float32 for features ``(N, obs_dim)``.

        ``noise=0`` gives the Gaussian mean; ``noise=k`` samples with ``k`` times the policy's
        own standard deviation (``k=1``: the trained stochastic policy), using ``rng``.
        """
        return self.act_and_mean(features, noise, rng)[0]

    @torch.no_grad()
    def act_and_mean(self, features: np.ndarray, noise: float = 0.0,
                     rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`act` and the noise-free action (the Gaussian mean), from one forward pass."""
        obs = torch.as_tensor(np.atleast_2d(features))
        mu, log_std = self(obs)
        mean = self._action(mu)
        if noise == 0:
            return mean, mean
        rng = rng if rng is not None else np.random.default_rng()
        eps = torch.as_tensor(rng.standard_normal(mu.shape), dtype=mu.dtype)
        return self._action(mu + noise * torch.exp(log_std) * eps), mean

    def _action(self, u: torch.Tensor) -> np.ndarray:
        """Env action from a pre-bound Gaussian sample (bounded, rescaled as SB3 does)."""
        action = self.bound(u).numpy().astype(np.float32, copy=False)
        if self.config["squash"]:  # SB3 rescales tanh outputs to the bounds [-1, 1]: same ops
            low, high = np.float32(-1.0), np.float32(1.0)
            action = low + (0.5 * (action + 1.0) * (high - low))
        return action


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
