"""A base model played closed loop: one episode per sub-env, seeded, and an input hook."""

import numpy as np
import pytest
import torch

from irl_agents.model_rollout import rollout_success, rollout_summary
from irl_agents.models import ModelConfig, build_model
from irl_envs.families import env_id, family
from irl_envs.rollout import current_targets

N = 6


def grid_model(extra_inputs: int = 0):
    torch.manual_seed(0)
    return build_model(ModelConfig(obs_dim=637 + extra_inputs, action_dim=4, d_model=16,
                                   n_layers=2, n_heads=2, d_mlp=32))


def play(model, seed: int = 0, **kw) -> dict[str, np.ndarray]:
    venv = family("grid").make_vec(env_id("grid", "pretrain"), N)
    try:
        return rollout_success(model, venv, seed=seed, **kw)
    finally:
        venv.close()


def test_one_episode_per_sub_env_with_consistent_figures():
    res = play(grid_model())
    assert all(len(v) == N for v in res.values())
    assert (res["length"] >= 1).all()
    # The pretraining tasks have 3 colours; success means all 3 were visited.
    assert ((res["progress"] >= 0) & (res["progress"] <= 3)).all()
    assert (res["progress"][res["success"]] == 3).all()
    summary = rollout_summary(res)
    assert sum(summary["ends"].values()) == N
    assert summary["ends"].get("success", 0) == res["success"].sum()
    assert summary["mean_length"] == res["length"].mean()


@pytest.mark.parametrize("greedy", [False, True])
def test_same_seed_same_episodes(greedy):
    model = grid_model()
    a, b = play(model, greedy=greedy), play(model, greedy=greedy)
    for key in ("success", "length", "progress"):
        np.testing.assert_array_equal(a[key], b[key])


def test_obs_fn_feeds_the_model_an_oracle_input():
    seen = []

    def append_target(obs: np.ndarray, info: dict) -> np.ndarray:
        targets = current_targets(info)
        seen.append(targets)
        return np.concatenate([obs, np.eye(8, dtype=np.float32)[np.maximum(targets, 0)]], 1)

    res = play(grid_model(extra_inputs=8), obs_fn=append_target)
    assert len(seen) == res["length"].max()
    assert all(t.shape == (N,) for t in seen)
    with pytest.raises(ValueError, match="D=645"):  # without the hook, 8 inputs short
        play(grid_model(extra_inputs=8))


def test_subgoal_breakdown_counts_pairs_by_how_they_are_entered():
    from irl_agents.model_rollout import subgoal_breakdown
    from irl_envs.tasks import GRID_PRETRAIN_TASKS, transitions

    seen = transitions(GRID_PRETRAIN_TASKS)
    assert (1, 4) in seen and (1, 2) not in seen and (7, 0) not in seen
    post, pre = (0, 1, 2, 3, 4, 5), (0, 1, 4, 5, 0, 1)
    res = {"task": [post, post, pre, post],
           "progress": np.array([6, 3, 4, 0])}  # done; died in pair 1; died in pair 2; at once
    out = subgoal_breakdown(res, seen)
    assert (out["start_reached"], out["start_completed"]) == (4, 3)
    assert (out["unseen_reached"], out["unseen_completed"]) == (3, 2)  # ep 0: 2 of 2, ep 1: 0/1
    assert (out["seen_reached"], out["seen_completed"]) == (2, 1)  # 1->4 done, 5->0 not
    assert out["unseen_rate"] == pytest.approx(2 / 3)
    assert out["colour_rate"] == pytest.approx((6 + 3 + 4 + 0) / (6 + 4 + 5 + 1))
    ant = subgoal_breakdown({"task": [(0, 1, 2, 3)], "progress": np.array([2])}, {(1, 2)}, 1)
    # 0 done from the start, 0->1 (unseen) done, 1->2 (seen) reached, not done
    assert (ant["unseen_reached"], ant["unseen_completed"]) == (1, 1)
    assert (ant["seen_reached"], ant["seen_completed"]) == (1, 0)
