"""The internal-RL policy over latent codes: a small recurrent Gaussian policy (PAPER §6).

The paper replaces the metacontroller's non-causal encoder by a causal policy
``pi(z | e_1:t)`` (a one-layer recurrent model). Here a GRU reads the latent environment's
observations and outputs a diagonal Gaussian over ``z``. The mean head starts at zero and the
log standard deviation at zero, so before any RL the policy *is* the prior ``N(0, I)``: the
starting point the paper reports as "success before RL".
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from irl_agents.rl import EpisodicPolicy


class LatentPolicy(EpisodicPolicy):
    """GRU -> Gaussian over ``z``.

    Args:
        obs_dim: latent environment observation size.
        n_z: latent code size.
        hidden: GRU width.
        init_log_std: initial log standard deviation (0: the prior's).
    """

    def __init__(self, obs_dim: int, n_z: int, hidden: int = 64, init_log_std: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(obs_dim)
        self.gru = nn.GRU(obs_dim, hidden, batch_first=True)
        self.mean = nn.Linear(hidden, n_z)
        nn.init.zeros_(self.mean.weight)
        nn.init.zeros_(self.mean.bias)
        self.log_std = nn.Parameter(torch.full((n_z,), float(init_log_std)))
        self.hidden = hidden

    def initial_state(self, batch_size: int) -> Tensor:
        return self.log_std.new_zeros(1, batch_size, self.hidden)

    def _dist(self, features: Tensor) -> Independent:
        return Independent(Normal(self.mean(features), self.log_std.exp()), 1)

    @torch.no_grad()
    def act(self, obs: Tensor, state: Tensor, generator: torch.Generator | None = None):
        out, state = self.gru(self.norm(obs)[:, None], state)
        dist = self._dist(out[:, 0])
        # drawn on the CPU (the generator's device), so a run's noise is the same anywhere
        noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean.device)
        z = dist.mean + noise * self.log_std.exp()
        return z, dist.log_prob(z), state

    def log_prob(self, obs: Tensor, actions: Tensor, mask: Tensor) -> Tensor:
        out, _ = self.gru(self.norm(obs))
        return self._dist(out).log_prob(actions)
