"""The paper's RL algorithm: PPO's clipped objective without a critic (PAPER §6).

Every trajectory gets one advantage, its return standardised within the batch::

    A_i = (R_i - mean_batch R) / (std_batch R + 1e-3)

and every action of trajectory ``i`` is pushed by ``A_i`` through the clipped ratio
``min(rho A, clip(rho, 1 - eps, 1 + eps) A)``. No value function, no entropy bonus. The
trainer works for any :class:`EpisodicPolicy`: the latent-code policy of internal RL, or the
base model itself for the raw-action baseline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from irl_agents.precision import autocast


class EpisodicPolicy(nn.Module, ABC):
    """A (possibly recurrent) stochastic policy that can re-score whole trajectories."""

    @abstractmethod
    def initial_state(self, batch_size: int):
        """Recurrent state at the start of an episode (anything, e.g. a tensor or None)."""

    @abstractmethod
    def act(self, obs: Tensor, state, generator: torch.Generator | None = None
            ) -> tuple[Tensor, Tensor, object]:
        """Sample actions for a batch of observations ``(N, D)``.

        Returns ``(actions (N, ...), log_probs (N,), next_state)``.
        """

    @abstractmethod
    def log_prob(self, obs: Tensor, actions: Tensor, mask: Tensor) -> Tensor:
        """Log-probabilities ``(B, T)`` of whole trajectories (``obs (B, T, D)``), with
        gradients; padded steps (``mask`` False) may hold anything."""


@dataclass
class Trajectories:
    """A batch of right-padded trajectories collected with the current policy."""

    obs: Tensor
    """``(B, T, D)``."""
    actions: Tensor
    """``(B, T, ...)``."""
    log_probs: Tensor
    """``(B, T)``, under the policy that collected them."""
    mask: Tensor
    """``(B, T)`` bool, True on real decisions."""
    returns: Tensor
    """``(B,)`` total reward of each trajectory."""


@dataclass
class PPOConfig:
    """Critic-free PPO settings."""

    lr: float = 3e-5
    """Adam learning rate (paper: 3e-5 at batch 1024 episodes)."""
    clip: float = 0.2
    """PPO ratio clipping epsilon."""
    epochs: int = 1
    """Passes over each batch."""
    minibatches: int = 1
    """Minibatches (of whole trajectories) per pass."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 disables it)."""
    precision: str = "fp32"
    """The update's forward pass: ``"fp32"``, ``"bf16"`` autocast, or ``"auto"`` (bf16 where
    the device has it natively); see :mod:`irl_agents.precision`."""


def trajectory_advantages(returns: Tensor) -> Tensor:
    """``(R - mean R) / (std R + 1e-3)`` over the batch (PAPER §6)."""
    return (returns - returns.mean()) / (returns.std(unbiased=False) + 1e-3)


def ppo_update(policy: EpisodicPolicy, optimizer: torch.optim.Optimizer, batch: Trajectories,
               cfg: PPOConfig, generator: np.random.Generator | None = None) -> dict[str, float]:
    """One critic-free PPO update on ``batch``; returns loss statistics."""
    adv = trajectory_advantages(batch.returns)
    n = batch.obs.shape[0]
    stats = {"policy_loss": 0.0, "clip_fraction": 0.0, "approx_kl": 0.0}
    updates = 0
    rng = generator or np.random.default_rng(0)
    device = batch.obs.device
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        for part in np.array_split(order, cfg.minibatches):
            idx = torch.as_tensor(part, device=device)
            mask = batch.mask[idx].to(torch.float32)
            with autocast(cfg.precision, device):
                new = policy.log_prob(batch.obs[idx], batch.actions[idx], batch.mask[idx])
            new = new.float()
            log_ratio = (new - batch.log_probs[idx]) * mask
            ratio = log_ratio.exp()
            a = adv[idx][:, None]
            surrogate = torch.minimum(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a)
            loss = -(surrogate * mask).sum() / mask.sum().clamp_min(1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                valid = mask.sum().clamp_min(1.0)
                stats["policy_loss"] += float(loss)
                stats["clip_fraction"] += float((((ratio - 1).abs() > cfg.clip) * mask).sum()
                                                / valid)
                stats["approx_kl"] += float((((ratio - 1) - log_ratio) * mask).sum() / valid)
            updates += 1
    return {k: v / max(updates, 1) for k, v in stats.items()}
