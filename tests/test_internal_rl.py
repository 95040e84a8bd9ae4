"""Critic-free PPO and the internal-RL loop."""

import csv

import numpy as np
import pytest
import torch

from irl_agents.discovery import save_metacontroller
from irl_agents.internal_rl import InternalRLConfig, internal_rl
from irl_agents.latent_policy import LatentPolicy
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model, save_model
from irl_agents.rl import PPOConfig, Trajectories, ppo_update, trajectory_advantages


def test_advantages_are_standardised_returns():
    adv = trajectory_advantages(torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert torch.allclose(adv, torch.tensor([-1.0, -1.0, 1.0, 1.0]) / (1 + 2e-3), atol=1e-3)
    assert torch.all(trajectory_advantages(torch.zeros(5)) == 0)  # no signal, no update


def test_ppo_learns_a_latent_bandit():
    """Reward 1 when the first code of a 2-step episode has z[0] > 1: the policy mean moves."""
    torch.manual_seed(0)
    policy = LatentPolicy(obs_dim=3, n_z=2, hidden=8)
    opt = torch.optim.Adam(policy.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(30):
        obs = torch.zeros(64, 2, 3)
        state = policy.initial_state(64)
        zs, lps = [], []
        for t in range(2):
            z, lp, state = policy.act(obs[:, t], state, gen)
            zs.append(z)
            lps.append(lp)
        z = torch.stack(zs, 1)
        returns = (z[:, 0, 0] > 1.0).float()
        rates.append(float(returns.mean()))
        batch = Trajectories(obs, z, torch.stack(lps, 1), torch.ones(64, 2, dtype=torch.bool),
                             returns)
        ppo_update(policy, opt, batch, PPOConfig(epochs=2, minibatches=2))
    assert np.mean(rates[:3]) < 0.3 and np.mean(rates[-3:]) > 0.7


def test_policy_starts_at_the_prior():
    policy = LatentPolicy(obs_dim=5, n_z=3)
    z, lp, _ = policy.act(torch.randn(4000, 5), policy.initial_state(4000))
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05


def read_curve(folder):
    with open(folder / "curve.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("irl")
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=16, n_layers=2, n_heads=2,
                                   d_mlp=32))
    save_model(base, root / "base")
    save_metacontroller(Metacontroller(MetacontrollerConfig(d_model=16, layer=1, n_z=4, rank=2)),
                        root / "meta")
    return root


def test_internal_rl_end_to_end_and_resume(artifacts, tmp_path):
    cfg = InternalRLConfig(base=str(artifacts / "base"), meta=str(artifacts / "meta"),
                           task_set="pretrain", episodes=24, batch_episodes=8,
                           out_dir=str(tmp_path), progress=False)
    summary = internal_rl(cfg)
    assert 0.0 <= summary["final_success_rate"] <= 1.0
    assert [int(r["episodes"]) for r in read_curve(tmp_path)] == [8, 16, 24]
    assert (tmp_path / "policy.safetensors").is_file()
    cfg.episodes = 40  # a longer budget continues from the checkpoint
    internal_rl(cfg)
    assert [int(r["episodes"]) for r in read_curve(tmp_path)] == [8, 16, 24, 32, 40]
    cfg.lr, cfg.episodes = 1e-3, 16  # other settings in the same folder: refused ...
    with pytest.raises(ValueError, match="other settings.*lr"):
        internal_rl(cfg)
    assert len(read_curve(tmp_path)) == 5
    cfg.overwrite = True  # ... unless asked to replace the run
    internal_rl(cfg)
    assert len(read_curve(tmp_path)) == 2
