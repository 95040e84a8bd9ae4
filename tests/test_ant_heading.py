"""The heading-frame observation of the ant: a pure rotation of the world-frame vectors, the
same offline (datasets) as online (the wrapper) as inside a model (the ``ant_heading``
encoder), and refused on the wrong shape."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import irl_envs  # noqa: F401  (registers the ids)
from irl_agents.models import ModelConfig, build_model
from irl_agents.models.encoders import AntHeadingEncoder
from irl_envs.ant_heading import HeadingFrameObservation, heading_frame


def _world_obs(yaw: float, offsets: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    obs = np.zeros(41, np.float32)
    quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])  # a pure yaw rotation
    obs[1:5] = np.sign(quat) * np.log1p(np.abs(quat))  # the env's symlog
    obs[13:15] = np.sign(velocity) * np.log1p(np.abs(velocity))
    obs[29:39] = offsets.ravel()
    return obs


@settings(max_examples=50, deadline=None)
@given(yaw=st.floats(-3.1, 3.1),
       offsets=st.lists(st.floats(-1, 1, width=32), min_size=10, max_size=10),
       velocity=st.lists(st.floats(-3, 3, width=32), min_size=2, max_size=2))
def test_heading_frame_rotates_by_minus_yaw_and_keeps_the_rest(yaw, offsets, velocity):
    offsets, velocity = np.array(offsets).reshape(5, 2), np.array(velocity)
    obs = _world_obs(yaw, offsets, velocity)
    out = heading_frame(obs)
    assert out.shape == (43,) and out.dtype == np.float32
    np.testing.assert_allclose(out[-2:], [np.cos(yaw), np.sin(yaw)], atol=1e-5)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, s], [-s, c]])  # world -> heading
    np.testing.assert_allclose(out[29:39].reshape(5, 2), offsets @ rot.T, atol=1e-5)
    v = np.sign(out[13:15]) * np.expm1(np.abs(out[13:15]))
    np.testing.assert_allclose(v, rot @ velocity, atol=1e-4)
    untouched = np.r_[0:13, 15:29, 39:41]
    np.testing.assert_array_equal(out[untouched], obs[untouched])


def test_a_cell_straight_ahead_has_positive_x():
    # facing +y (yaw 90 degrees) with a cell at +y: ahead in the heading frame
    offsets = np.zeros((5, 2))
    offsets[0] = [0.0, 0.5]
    out = heading_frame(_world_obs(np.pi / 2, offsets, np.zeros(2)))
    np.testing.assert_allclose(out[29:31], [0.5, 0.0], atol=1e-6)


def test_wrapper_equals_the_offline_transform_and_passes_the_checker():
    env = HeadingFrameObservation(gym.make("InternalRL/AntSubgoalsPretrain-v0"))
    raw = gym.make("InternalRL/AntSubgoalsPretrain-v0")
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=4)
    raw_obs, _ = raw.reset(seed=4)
    assert env.observation_space.shape == (43,)
    np.testing.assert_array_equal(obs, heading_frame(raw_obs))
    for _ in range(20):
        action = env.action_space.sample()
        obs = env.step(action)[0]
        raw_obs = raw.step(action)[0]
        assert env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs, heading_frame(raw_obs))
    # a batch transforms row by row
    batch = np.stack([raw_obs, raw_obs * 0.5])
    np.testing.assert_array_equal(heading_frame(batch)[0], heading_frame(raw_obs))


def test_wrong_width_is_refused():
    with pytest.raises(ValueError, match="obs: expected 41 dims for 5 cells, got 40"):
        heading_frame(np.zeros(40, np.float32))


@settings(max_examples=30, deadline=None)
@given(yaw=st.floats(-3.1, 3.1),
       offsets=st.lists(st.floats(-1, 1, width=32), min_size=10, max_size=10),
       velocity=st.lists(st.floats(-3, 3, width=32), min_size=2, max_size=2))
def test_the_ant_heading_encoder_sees_what_the_offline_transform_writes(yaw, offsets, velocity):
    obs = _world_obs(yaw, np.array(offsets).reshape(5, 2), np.array(velocity))
    inside = AntHeadingEncoder.frame(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(inside, heading_frame(obs), atol=1e-5)


def test_a_model_over_the_heading_encoder_reads_world_frame_env_observations():
    env = gym.make("InternalRL/AntSubgoalsPretrain-v0")
    obs = [env.reset(seed=1)[0]]
    obs += [env.step(env.action_space.sample())[0] for _ in range(7)]
    seq = torch.from_numpy(np.stack(obs))[None]  # (1, 8, 41): the env's own frame
    np.testing.assert_allclose(AntHeadingEncoder.frame(seq)[0].numpy(),
                               heading_frame(np.stack(obs)), atol=1e-5)
    cfg = ModelConfig(kind="ssm", obs_dim=41, action_dim=8, discrete=False, d_model=16,
                      n_layers=2, d_mlp=32, obs_encoder="ant_heading",
                      obs_likelihood="gaussian")
    model = build_model(cfg).eval()
    with torch.no_grad():
        full = model(seq)
        state = model.initial_state(1)
        steps = [model.step(seq[:, t], state)[0].mean for t in range(8)]
    assert full.obs_pred.shape == (1, 8, 41)  # predicts the env's observation, not the frame's
    assert torch.allclose(torch.stack(steps, 1), full.mean, atol=1e-5)
    with pytest.raises(ValueError, match="obs_encoder='ant_heading' needs an AntSubgoals"):
        build_model(ModelConfig(obs_dim=40, action_dim=8, discrete=False,
                                obs_encoder="ant_heading"))
