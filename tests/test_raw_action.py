"""The base model as a raw-action policy for the shared critic-free PPO trainer."""

import torch

from baselines.raw_action import BaseModelPolicy
from irl_agents.models import ModelConfig, build_model
from irl_agents.rl import PPOConfig, Trajectories, ppo_update


def test_act_scores_match_log_prob_and_ppo_moves_towards_good_actions():
    torch.manual_seed(0)
    model = build_model(ModelConfig(obs_dim=6, action_dim=4, d_model=16, n_layers=2, n_heads=2,
                                    d_mlp=32, obs_likelihood="gaussian"))
    policy = BaseModelPolicy(model)
    obs = torch.randn(32, 5, 6)
    state, gen = policy.initial_state(32), torch.Generator().manual_seed(0)
    acts, lps = [], []
    for t in range(5):
        a, lp, state = policy.act(obs[:, t], state, gen)
        acts.append(a)
        lps.append(lp)
    actions, old = torch.stack(acts, 1), torch.stack(lps, 1)
    mask = torch.ones(32, 5, dtype=torch.bool)
    assert torch.allclose(policy.log_prob(obs, actions, mask), old, atol=1e-5)
    returns = (actions[:, 0] == 2).float()  # reward: first action is 2
    batch = Trajectories(obs, actions, old, mask, returns)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    before = model(obs).logits[:, 0].softmax(-1)[:, 2].mean()
    for _ in range(5):
        ppo_update(policy, opt, batch, PPOConfig(epochs=2))
    after = model(obs).logits[:, 0].softmax(-1)[:, 2].mean()
    assert after > before + 0.05
