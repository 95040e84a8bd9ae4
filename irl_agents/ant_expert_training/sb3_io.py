"""Stable-Baselines3 to this project's files, without pickle.

- :func:`policy_from_sb3` copies the actor of an SB3 PPO or SAC model (and its
  ``VecNormalize`` observation statistics) into
  :class:`~irl_envs.experts.ant_locomotion.LocomotionPolicy`, the plain torch module the ant
  expert runs (saved by :func:`~irl_envs.experts.ant_locomotion.save_policy`).
- :func:`save_training_state` / :func:`load_training_state`: a resumable training checkpoint
  as one safetensors file with JSON metadata. SB3's own ``save`` writes pickles, which would
  run code from a crafted file on ``--resume``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from irl_agents.models.checkpoint import (
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors_atomic,
)
from irl_envs.experts.ant_locomotion import ACTIVATIONS, LocomotionPolicy
from irl_envs.validation import check_tensors


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
    names = [k for k, v in ACTIVATIONS.items() if {v} == acts]
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


def save_training_state(model, path: Path, wall_s: float) -> Path:
    """Everything :func:`load_training_state` needs to continue training ``model`` (an SB3
    PPO or SAC), in one atomically written safetensors file: the networks and optimizers
    (SB3's own list of them), the normalisation statistics and the step count. Unlike
    ``model.save`` (a zip of pickles), loading it runs no code from the file."""
    from stable_baselines3.common.save_util import recursive_getattr

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
