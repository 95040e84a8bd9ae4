"""DAgger data (issue 22): the base model acts (mixed with the expert), the expert labels every
visited state; ``irl data --merge`` aggregates the result with the expert's data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irl_agents.cli import main
from irl_agents.model_rollout import DaggerMixture
from irl_agents.models import ModelConfig, build_model, save_model
from irl_envs.datasets import generate_dataset, load_dataset, merge_datasets
from irl_envs.experts.ant_expert import AntExpert

EPISODES, ENVS = 4, 2


def ant_model(obs_dim: int = 41):
    torch.manual_seed(0)
    return build_model(ModelConfig(obs_dim=obs_dim, action_dim=8, discrete=False, kind="ssm",
                                   d_model=16, n_layers=1, d_mlp=16))


def dagger(beta: float, seed: int = 3, **kw):
    mixture = DaggerMixture(ant_model(), beta, seed=seed, source="tiny", **kw)
    return generate_dataset("ant", "pretrain", EPISODES, seed=seed, num_envs=ENVS,
                            progress=False, behaviour=mixture, env_workers=1)


@pytest.fixture(scope="module")
def model_data():
    """beta = 0: the untrained model acts in every episode."""
    return dagger(0.0)


def test_the_model_acts_and_every_state_is_labelled_with_the_experts_intended_action(
        model_data, tmp_path):
    data = model_data
    meta = data.meta
    assert meta["relabelled"] and meta["dagger_beta"] == 0.0 and meta["dagger_model"] == "tiny"
    assert meta["dagger_model_episodes"] == EPISODES and meta["dagger_expert_episodes"] == 0
    assert meta["dagger_model_steps"] == data.num_steps
    # The labels: the expert's Gaussian mean in each visited state for the true target.
    mean = AntExpert().act_obs(data.observations, data.targets)
    np.testing.assert_allclose(data.actions, mean, atol=1e-5)
    # The states are the model's, not the expert's: same reset seeds, other trajectories.
    expert = generate_dataset("ant", "pretrain", EPISODES, seed=3, num_envs=ENVS,
                              progress=False, env_workers=1)
    np.testing.assert_array_equal(data.seeds, expert.seeds)
    first, expert_first = data.episode_starts, expert.episode_starts
    np.testing.assert_allclose(data.observations[first], expert.observations[expert_first])
    assert not np.array_equal(data.episode_lengths, expert.episode_lengths)
    # A valid dataset in the usual format, with the metadata recorded.
    data.save(tmp_path / "d.safetensors")
    back = load_dataset(tmp_path / "d.safetensors")
    np.testing.assert_array_equal(back.actions, data.actions)
    assert back.meta["dagger_beta"] == 0.0 and back.meta["dagger_mix"] == "episode"


def test_beta_one_is_the_noise_free_expert():
    data = dagger(1.0, seed=4)
    expert = generate_dataset("ant", "pretrain", EPISODES, seed=4, num_envs=ENVS,
                              progress=False, env_workers=1)
    np.testing.assert_array_equal(data.episode_lengths, expert.episode_lengths)
    np.testing.assert_allclose(data.observations, expert.observations, atol=1e-6)
    np.testing.assert_allclose(data.actions, expert.actions, atol=1e-6)
    assert data.meta["dagger_expert_episodes"] == EPISODES


def test_the_mixture_resets_the_model_where_episodes_start_and_checks_its_inputs():
    mix = DaggerMixture(ant_model(), 0.5, seed=0)
    mix.start(np.ones(3, dtype=bool))
    mix.state.t[:] = 5
    mix.start(np.array([False, True, False]))
    assert mix.state.t.tolist() == [5, 0, 5]
    assert len(mix.episode_expert) == 4
    with pytest.raises(ValueError, match="beta must lie in"):
        DaggerMixture(ant_model(), 1.5)
    with pytest.raises(ValueError, match="mix must be one of"):
        DaggerMixture(ant_model(), 0.5, mix="sometimes")
    wrong = DaggerMixture(ant_model(obs_dim=45), 0.5)  # e.g. trained with the target appended
    with pytest.raises(ValueError, match="takes observations of 45 features"):
        generate_dataset("ant", "pretrain", 2, seed=0, num_envs=2, progress=False,
                         behaviour=wrong, env_workers=1)


class _LastStep:
    """A stand-in vector env: only the last observation the mixture reads."""

    def __init__(self, n: int):
        self.last_obs, self.last_info = np.zeros((n, 41), dtype=np.float32), {}


def test_handover_lets_the_expert_open_each_model_episode():
    mix = DaggerMixture(ant_model(), 0.0, seed=0, mix="handover", handover=3)
    mix.start(np.ones(3, dtype=bool))
    assert ((mix.prefix >= 0) & (mix.prefix <= 3)).all() and not mix.expert_rows.any()
    mix.prefix[:] = [0, 2, 3]
    env, expert = _LastStep(3), np.full((3, 8), 7.0, dtype=np.float32)
    by_expert = [(mix(env, expert) == 7.0).all(-1).tolist() for _ in range(4)]
    assert by_expert == [[False, True, True], [False, True, True], [False, False, True],
                         [False, False, False]]
    mix.start(np.array([True, False, False]))  # a new episode restarts its count
    mix.prefix[0] = 1
    assert (mix(env, expert) == 7.0).all(-1).tolist() == [True, False, False]
    assert mix.steps == {"expert": 6, "model": 9}
    with pytest.raises(ValueError, match="handover must be an int >= 0"):
        DaggerMixture(ant_model(), 0.5, mix="handover", handover=-1)


def test_merge_concatenates_episodes_and_reindexes_tasks(model_data):
    expert = generate_dataset("ant", "pretrain", 3, seed=9, num_envs=3, progress=False,
                              env_workers=1)
    merged = merge_datasets([expert, model_data], ["expert", "dagger"])
    assert merged.num_episodes == 3 + EPISODES
    assert merged.num_steps == expert.num_steps + model_data.num_steps
    np.testing.assert_array_equal(merged.actions[expert.num_steps:], model_data.actions)
    for d, offset in ((expert, 0), (model_data, 3)):
        for i in range(d.num_episodes):
            assert merged.tasks[merged.task_ids[offset + i]] == d.tasks[d.task_ids[i]]
    assert [p["name"] for p in merged.meta["merged_from"]] == ["expert", "dagger"]
    assert merged.meta["merged_from"][1]["meta"]["dagger_beta"] == 0.0
    grid = generate_dataset("grid", "pretrain", 2, seed=0, num_envs=2, progress=False)
    with pytest.raises(ValueError, match="merge: b has env='grid'"):
        merge_datasets([expert, grid], ["a", "b"])


def test_cli_dagger_and_merge(tmp_path, capsys):
    save_model(ant_model(), tmp_path / "base")
    common = ["data", "--env", "ant", "--episodes", "2", "--num-envs", "2", "--env-workers", "1",
              "--no-progress"]
    assert main([*common, "--seed", "1", "--out", str(tmp_path / "e.safetensors")]) == 0
    assert main([*common, "--seed", "2", "--dagger", str(tmp_path / "base"), "--dagger-beta",
                 "0", "--out", str(tmp_path / "d.safetensors")]) == 0
    assert "dagger_model_episodes" in capsys.readouterr().out
    assert main(["data", "--merge", str(tmp_path / "e.safetensors"),
                 str(tmp_path / "d.safetensors"), "--out", str(tmp_path / "m.safetensors")]) == 0
    merged = load_dataset(tmp_path / "m.safetensors")
    assert merged.num_episodes == 4 and merged.meta["relabelled"] is False


@pytest.mark.parametrize("args, message", [
    (["--env", "ant", "--dagger", "{base}", "--dagger-beta", "1.5"], "--dagger-beta must be"),
    (["--env", "ant", "--dagger", "{base}", "--dagger-beta", "-0.1"], "--dagger-beta must be"),
    (["--env", "grid", "--dagger", "{base}"], "--dagger supports --env ant only"),
    (["--env", "ant", "--dagger-beta", "0.3"], "--dagger-beta need --dagger MODEL_DIR"),
    (["--env", "ant", "--dagger-mix", "step"], "--dagger-mix need --dagger MODEL_DIR"),
    (["--env", "ant", "--dagger", "{tmp}/nothing"], "nothing"),
    (["--env", "ant", "--dagger", "{base}", "--dagger-handover", "5"],
     "--dagger-handover needs --dagger-mix handover"),
    (["--env", "ant", "--dagger", "{base}", "--dagger-mix", "handover", "--dagger-handover",
      "-1"], "--dagger-handover must be >= 0"),
    (["--env", "ant", "--env-workers", "0"], "--env-workers must be >= 1"),
    (["--merge", "{tmp}/a.safetensors", "{tmp}/b.safetensors"], "--merge needs --out"),
    (["--merge", "{tmp}/a.safetensors", "--out", "{tmp}/m.safetensors"], "at least 2 files"),
    (["--merge", "{tmp}/a.safetensors", "{tmp}/b.safetensors", "--out", "{tmp}/m.safetensors"],
     "does not exist"),
])
def test_cli_misuse_is_refused_with_a_clear_error(args, message, tmp_path, capsys):
    save_model(ant_model(), tmp_path / "base")
    argv = ["data", "--episodes", "2", "--num-envs", "2", "--no-progress",
            "--out", str(tmp_path / "out.safetensors")]
    argv += [a.format(base=tmp_path / "base", tmp=tmp_path) for a in args]
    if "--merge" in args and "--out" not in args:
        argv = [a for a in argv if a != "--out" and not a.endswith("out.safetensors")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "irl data: error:" in err and message in err
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("seed_episodes", [True, False])
def test_run_episodes_tells_a_stateful_policy_where_episodes_start(seed_episodes):
    from irl_envs.families import env_id, family
    from irl_envs.rollout import run_episodes

    venv = family("grid").make_vec(env_id("grid", "pretrain"), 4)
    starts, fresh = [], np.zeros(4, dtype=bool)
    first_steps = []

    def on_start(mask):
        starts.append(mask.copy())
        fresh[mask] = True

    def policy(v):
        first_steps.append(int(fresh.sum()))
        fresh[:] = False
        return np.random.default_rng(len(first_steps)).integers(0, 4, v.num_envs)

    try:
        eps = run_episodes(venv, policy, 10, seed=0, progress=False,
                           seed_episodes=seed_episodes, on_start=on_start)
    finally:
        venv.close()
    assert starts[0].all() and first_steps[0] == 4
    # every episode was announced before its first step (the last ones may never be played)
    assert sum(int(m.sum()) for m in starts) >= 10
    assert sum(first_steps) + int(fresh.sum()) == sum(int(m.sum()) for m in starts)
    assert len(eps.lengths) == 10


class _HorizonEnv:
    """A vector env whose every episode terminates on the step its time limit truncates it
    (as a DAgger model that stalls until the horizon, then hits a wrong colour)."""

    num_envs, horizon = 2, 3

    def reset(self, seed=None, options=None):
        self.t = np.zeros(self.num_envs, dtype=int)
        return np.zeros((self.num_envs, 1), np.float32), self._info()

    def _info(self):
        return {"task": np.array([[0, 1]] * self.num_envs), "next_index": np.zeros(2, int)}

    def step(self, actions):
        self.t += 1
        end = self.t >= self.horizon
        obs = np.zeros((self.num_envs, 1), np.float32)
        info = self._info()
        self.t[end] = -1  # next-step autoreset: the following step restarts the episode
        return obs, np.zeros(self.num_envs), end.copy(), end.copy(), info


def test_an_episode_terminated_on_its_last_allowed_step_is_recorded_as_terminated():
    from irl_envs.rollout import run_episodes

    eps = run_episodes(_HorizonEnv(), lambda v: np.zeros(2, dtype=np.int64), 4, seed=0,
                       progress=False)
    ends = np.cumsum(eps.lengths) - 1
    assert eps.terminations[ends].all() and not eps.truncations.any()
