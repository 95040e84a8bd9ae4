"""The latent-action envs refuse what would otherwise run silently wrong: None, non-finite
and wrongly shaped latent actions (nothing is broadcast), on every front."""

import gymnasium as gym
import numpy as np
import pytest

from irl_agents.discovery import load_metacontroller
from irl_agents.latent_env import LatentVecEnv
from irl_agents.models import load_model
from irl_agents.raw_batch import GridRawBatch
from irl_agents.shipped import shipped

ID = "InternalRL/ColourSequenceLatent-v0"
N_Z = 8
BAD = {
    "None": (None, "got None"),
    "nan": (np.full(N_Z, np.nan, np.float32), "finite"),
    "inf": (np.r_[np.inf, np.zeros(N_Z - 1)].astype(np.float32), "finite"),
    "short": (np.zeros(3, np.float32), "shape"),
    "scalar": (np.float32(0.5), "shape"),
    "batched": (np.zeros((1, N_Z), np.float32), "shape"),
    "text": ("zero", "float array"),
}


@pytest.fixture(scope="module")
def env():
    env = gym.make(ID)
    yield env
    env.close()


@pytest.mark.parametrize("name", sorted(BAD))
def test_single_env_refuses_bad_latent_actions(env, name):
    action, match = BAD[name]
    env.reset(seed=0)
    before = env.unwrapped.core.t.copy()
    with pytest.raises(ValueError, match=match):
        env.unwrapped.step(action)  # the env itself, not only Gymnasium's checker wrapper
    assert (env.unwrapped.core.t == before).all()  # no raw step was taken


def test_good_action_still_steps_and_is_clipped(env):
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(N_Z, 100.0, np.float32))  # far out: clipped, fine
    assert info["raw_steps"] >= 1


def test_vector_fronts_refuse_bad_latent_actions():
    venv = gym.make_vec(ID, num_envs=2)
    venv.reset(seed=0)
    for bad in (np.zeros((2, 3), np.float32), np.zeros(N_Z, np.float32),  # no broadcasting
                np.full((2, N_Z), np.nan, np.float32), None):
        with pytest.raises(ValueError, match="latent action"):
            venv.step(bad)
    base = load_model(shipped("grid", "base")).eval()
    meta = load_metacontroller(shipped("grid", "metacontroller")).eval()
    sb3 = LatentVecEnv(base, meta, GridRawBatch(2, tasks=[[0, 1]]))
    sb3.reset()
    with pytest.raises(ValueError, match="latent action must have shape"):
        sb3.step(np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match="finite"):
        sb3.core.begin(np.arange(1), np.full((1, N_Z), np.inf, np.float32))
