"""Raw-action RL baseline: the pretrained base model itself as the policy (PAPER §7).

The base model's own action distribution is fine-tuned with the same critic-free PPO as
internal RL (:func:`irl_agents.rl.ppo_update`), acting at every raw step instead of choosing a
latent code at each switch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from irl_agents.models import BaseModel
from irl_agents.rl import EpisodicPolicy


class BaseModelPolicy(EpisodicPolicy):
    """A :class:`BaseModel` seen as an :class:`EpisodicPolicy` over raw actions.

    Args:
        model: the pretrained base model (its weights are what RL updates).
    """

    def __init__(self, model: BaseModel) -> None:
        super().__init__()
        self.model = model

    def initial_state(self, batch_size: int):
        return self.model.initial_state(batch_size)

    @torch.no_grad()
    def act(self, obs: Tensor, state, generator: torch.Generator | None = None):
        out, state = self.model.step(obs, state, predict_obs=False)
        dist = self.model.action_distribution(out)
        if self.model.config.discrete:
            actions = torch.multinomial(out.logits.softmax(-1), 1, generator=generator)[:, 0]
        else:
            noise = torch.randn(out.mean.shape, generator=generator)
            actions = out.mean + noise * out.log_std.exp()
        return actions, dist.log_prob(actions), state

    def log_prob(self, obs: Tensor, actions: Tensor, mask: Tensor) -> Tensor:
        out = self.model(obs)
        if self.model.config.discrete:
            actions = torch.where(mask, actions.long(), torch.zeros_like(actions, dtype=torch.long))
        return self.model.action_distribution(out).log_prob(actions)
