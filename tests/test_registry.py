"""One suite over every registered id: checkers, determinism, pickling, rendering."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from irl_envs import registered_ids

IDS = registered_ids()


def test_all_ids_registered():
    assert {"InternalRL/ColourSequence-v0", "InternalRL/ColourSequencePretrain-v0",
            "InternalRL/AntSubgoals-v0", "InternalRL/AntSubgoalsPretrain-v0"} <= set(IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_checker(env_id):
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_checker(env_id):
    env = gym.make(env_id)
    sb3_check_env(env.unwrapped, warn=False)
    env.close()


def _rollout(env, seed, steps=50):
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace += [obs, np.float64(reward), np.bool_(terminated), np.bool_(truncated)]
        if terminated or truncated:
            obs, info = env.reset()
            trace.append(obs)
    return trace


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_rollout(env_id):
    a, b = gym.make(env_id), gym.make(env_id)
    ta, tb = _rollout(a, 3), _rollout(b, 3)
    assert len(ta) == len(tb)
    assert all(np.array_equal(x, y) for x, y in zip(ta, tb, strict=True))
    tc = _rollout(a, 4)
    assert not all(np.array_equal(x, y) for x, y in zip(ta, tc, strict=False))


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip(env_id):
    env = gym.make(env_id)
    env.reset(seed=1)
    clone = pickle.loads(pickle.dumps(env))
    action = env.action_space.sample()
    out_a, out_b = env.step(action), clone.step(action)
    for x, y in zip(out_a[:4], out_b[:4], strict=True):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("env_id", IDS)
def test_render_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] >= 32 and frame.shape[1] >= 32
    assert frame.std() > 0  # not a blank image
    env.close()


@pytest.mark.filterwarnings("ignore:.*render_mode.*:UserWarning")
def test_unknown_render_mode_is_rejected():
    for env_id in IDS:
        with pytest.raises(ValueError, match="render_mode"):
            gym.make(env_id, render_mode="nope")
