"""Stable-Baselines3 on the batched envs: SB3VecEnv steps exactly as DummyVecEnv over single
envs, SB3's algorithms train on it, and make_sb3_vec_env serves every registered id."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from irl_envs import registered_ids
from irl_envs.sb3 import SB3VecEnv, make_sb3_vec_env

GRID_IDS = ["InternalRL/ColourSequence-v0", "InternalRL/ColourSequencePretrain-v0"]


@pytest.mark.parametrize("env_id", GRID_IDS)
def test_adapter_steps_exactly_as_dummy_vec_env(env_id):
    n, seed = 4, 7
    native = SB3VecEnv(gym.make_vec(env_id, num_envs=n))
    dummy = DummyVecEnv([lambda: gym.make(env_id)] * n)
    for venv in (native, dummy):
        venv.seed(seed)
    np.testing.assert_array_equal(native.reset(), dummy.reset())
    actions = np.random.default_rng(0).integers(0, 4, (150, n))
    ends = 0
    for a in actions:
        obs_n, rew_n, done_n, info_n = native.step(a)
        obs_d, rew_d, done_d, info_d = dummy.step(a)
        np.testing.assert_array_equal(obs_n, obs_d)
        np.testing.assert_array_equal(rew_n, rew_d)
        np.testing.assert_array_equal(done_n, done_d)
        for i in np.flatnonzero(done_d):
            ends += 1
            np.testing.assert_array_equal(info_n[i]["terminal_observation"],
                                          info_d[i]["terminal_observation"])
            for key in ("TimeLimit.truncated", "is_success", "next_index"):
                assert info_n[i][key] == info_d[i][key], key
    assert ends > 20  # many autoresets were compared


def test_full_infos_and_vec_env_api():
    venv = SB3VecEnv(gym.make_vec(GRID_IDS[0], num_envs=3, render_mode="rgb_array"),
                     full_infos=True)
    venv.seed(0)
    venv.reset()
    _, _, _, infos = venv.step(np.zeros(3, dtype=np.int64))
    assert all({"is_success", "task", "next_index", "agent"} <= set(i) for i in infos)
    assert venv.get_attr("render_mode") == ["rgb_array"] * 3
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    frame = venv.render()
    assert frame.ndim == 3 and frame.shape[2] == 3
    # options reach the batched env at the next reset, as with DummyVecEnv
    venv.set_options({"task": [5, 6]})
    venv.reset()
    assert venv.reset_infos[0]["task"][:2] == [5, 6]
    with pytest.raises(ValueError, match="same options"):
        venv.set_options([{"task": [0, 1]}, {}, {}])
        venv.reset()
    venv.close()


@pytest.mark.parametrize("algo", [PPO, A2C, DQN])
def test_sb3_algorithms_train_and_log_success(algo):
    venv = make_sb3_vec_env(GRID_IDS[0], n_envs=16, seed=0, task=[0, 1])
    assert isinstance(venv, VecMonitor)
    kwargs = {PPO: {"n_steps": 16, "batch_size": 64, "n_epochs": 1},
              A2C: {"n_steps": 8},
              DQN: {"learning_starts": 64, "buffer_size": 1000, "batch_size": 32}}[algo]
    model = algo("MlpPolicy", venv, seed=0, device="cpu", **kwargs)
    model.learn(2048)
    assert len(model.ep_info_buffer) > 0  # episode returns reach rollout/ep_rew_mean
    assert len(model.ep_success_buffer) > 0  # is_success reaches rollout/success_rate
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (16,)
    venv.close()


@pytest.mark.parametrize("env_id", registered_ids())
def test_make_sb3_vec_env_serves_every_id(env_id):
    venv = make_sb3_vec_env(env_id, n_envs=2, seed=1)
    obs = venv.reset()
    assert obs.shape == (2, *venv.observation_space.shape)
    venv.action_space.seed(0)
    for _ in range(3):
        obs, reward, done, infos = venv.step(np.stack([venv.action_space.sample()
                                                       for _ in range(2)]))
        assert obs.shape[0] == 2 and reward.dtype == np.float32 and len(infos) == 2
    venv.close()


def test_adapter_needs_next_step_autoreset():
    from gymnasium.vector import AutoresetMode

    venv = gym.make_vec(GRID_IDS[0], num_envs=2, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    with pytest.raises(ValueError, match="next-step autoreset"):
        SB3VecEnv(venv)
