"""Gymnasium conventions over every registered id: horizons in the spec, batched
``vector_entry_point``s, async vectorisation of the latent envs, human rendering."""

import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit

from irl_agents.latent_env import LatentVectorEnv
from irl_envs import ANT_HORIZON, GRID_HORIZON, registered_ids
from irl_envs.colour_sequence import ColourSequenceVectorEnv

IDS = registered_ids()
LATENT = ["InternalRL/ColourSequenceLatent-v0", "InternalRL/AntSubgoalsLatent-v0",
          "InternalRL/ColourSequenceLatent-v1"]
RAW_HORIZONS = {"InternalRL/ColourSequence-v0": GRID_HORIZON,
                "InternalRL/ColourSequencePretrain-v0": GRID_HORIZON,
                "InternalRL/AntSubgoals-v0": ANT_HORIZON,
                "InternalRL/AntSubgoalsPretrain-v0": ANT_HORIZON}


def test_every_id_declares_its_horizon():
    assert set(IDS) == set(RAW_HORIZONS) | set(LATENT)
    for env_id in IDS:
        assert gym.spec(env_id).max_episode_steps is not None, env_id
    for env_id, horizon in RAW_HORIZONS.items():
        env = gym.make(env_id)
        own = getattr(env.unwrapped, "max_steps", None) or env.unwrapped.core.max_steps
        assert gym.spec(env_id).max_episode_steps == own == horizon  # the env's own T
        assert env.spec.max_episode_steps == horizon
        env.close()
    assert gym.spec(LATENT[0]).max_episode_steps == GRID_HORIZON  # <= 1 latent step per raw
    assert gym.spec(LATENT[1]).max_episode_steps == ANT_HORIZON
    assert gym.spec(LATENT[2]).max_episode_steps == GRID_HORIZON


def test_grid_time_limit_agrees_with_the_env():
    """TimeLimit and the env truncate on the same step; the batched env takes its horizon
    from max_episode_steps and refuses two different horizons."""
    kwargs = {"task": [0, 1], "max_steps": 7}
    limited = gym.make("InternalRL/ColourSequence-v0", **kwargs, max_episode_steps=7)
    own = gym.make("InternalRL/ColourSequence-v0", **kwargs, max_episode_steps=-1)  # no wrapper
    # the agent in the top-left corner, every object in the bottom rows: "up" is a no-op
    layout = {"agent": (0, 0), "colours": [(6, c) for c in range(7)] + [(5, 0)],
              "walls": [(5, c) for c in range(1, 5)]}
    flags = []
    for env in (limited, own):
        env.reset(seed=0, options={"layout": layout})
        flags.append([tuple(env.step(0)[2:4]) for _ in range(7)])
    assert flags[0] == flags[1] == [(False, False)] * 6 + [(False, True)]
    venv = gym.make_vec("InternalRL/ColourSequence-v0", num_envs=2, task=[0, 1],
                        max_episode_steps=7)
    assert venv.unwrapped.core.max_steps == 7
    with pytest.raises(ValueError, match="max_episode_steps"):
        gym.make_vec("InternalRL/ColourSequence-v0", num_envs=2, max_steps=50)
    assert gym.make_vec("InternalRL/ColourSequence-v0", num_envs=2, max_steps=50,
                        max_episode_steps=50).unwrapped.core.max_steps == 50


@pytest.mark.parametrize("env_id", [i for i in IDS if gym.spec(i).vector_entry_point])
def test_make_vec_gives_the_batched_implementation(env_id):
    expected = LatentVectorEnv if env_id in LATENT else ColourSequenceVectorEnv
    for mode in (None, "vector_entry_point"):
        venv = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode)
        assert isinstance(venv.unwrapped, expected)
        obs, _ = venv.reset(seed=0)
        assert venv.observation_space.contains(obs)
        venv.step(venv.action_space.sample())
        venv.close()
    assert {gym.spec(i).vector_entry_point is not None for i in LATENT} == {True}


def test_batched_latent_env_replays_single_envs():
    """Sub-env i of gym.make_vec seeded s plays the episodes of gym.make seeded s + i, with
    next-step autoreset (the step after an episode's end resets it, reward 0)."""
    env_id, n, seed = LATENT[0], 3, 5
    venv = gym.make_vec(env_id, num_envs=n)
    singles = [gym.make(env_id) for _ in range(n)]
    vobs, _ = venv.reset(seed=seed)
    sobs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(singles)])
    np.testing.assert_allclose(vobs, sobs, atol=1e-5)
    rng = np.random.default_rng(0)
    pending = np.zeros(n, dtype=bool)
    ends = 0
    for _ in range(8):
        z = rng.standard_normal((n, 8)).astype(np.float32)
        vobs, vrew, vterm, vtrunc, _ = venv.step(z)
        for i, env in enumerate(singles):
            if pending[i]:  # the autoreset step
                obs, rew, term, trunc = env.reset()[0], 0.0, False, False
            else:
                obs, rew, term, trunc, _ = env.step(z[i])
            np.testing.assert_allclose(vobs[i], obs, atol=1e-5)
            assert (vrew[i], vterm[i], vtrunc[i]) == (rew, term, trunc)
            pending[i] = term or trunc
            ends += pending[i]
    assert ends > 0  # autoresets were compared too
    venv.close()


def test_latent_vector_env_masked_reset_and_time_limit():
    venv = gym.make_vec(LATENT[0], num_envs=2, max_episode_steps=1)
    obs0, _ = venv.reset(seed=0)
    _, _, term, trunc, _ = venv.step(np.zeros((2, 8), np.float32))
    assert (term | trunc).all()  # every episode ends after one latent step
    obs, info = venv.reset(options={"reset_mask": np.array([True, False])})
    assert info["_task"].tolist() == [True, False]
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="reset option"):
        venv.reset(options={"task": [0, 1]})


_ASYNC = textwrap.dedent("""
    import gymnasium as gym, numpy as np, torch
    import irl_envs
    torch.ones(512, 512) @ torch.ones(512, 512)  # the parent's thread pool is started
    env_id = "InternalRL/ColourSequenceLatent-v0"
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="async")
    obs, _ = venv.reset(seed=3)
    z = np.full((2, 8), 0.5, np.float32)
    out = venv.step(z)
    venv.close()
    for i in range(2):
        env = gym.make(env_id)
        assert np.allclose(env.reset(seed=3 + i)[0], obs[i], atol=1e-5)
        assert np.allclose(env.step(z[i])[0], out[0][i], atol=1e-5)
    print("async ok")
""")


def test_async_latent_env_does_not_hang():
    """vectorization_mode="async" forks workers from a process whose torch already ran
    multi-threaded; they must not deadlock. In a fresh interpreter with torch's default
    threads (the suite runs torch on one thread, which hides the hazard)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", _ASYNC], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0 and "async ok" in done.stdout, done.stderr[-2000:]


@pytest.mark.filterwarnings("ignore:.*human.*:UserWarning")
@pytest.mark.parametrize("env_id", IDS)
def test_human_render_mode_opens_a_window(env_id, monkeypatch):
    pytest.importorskip("pygame", reason='the human extra is not installed')
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # a window without a display
    env = gym.make(env_id, render_mode="human")
    assert env.render_mode == "human"
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()


@pytest.mark.filterwarnings("ignore:.*human.*:UserWarning")
def test_human_render_mode_without_pygame_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # as if it were not installed
    env = gym.make("InternalRL/ColourSequence-v0", render_mode="human")
    with pytest.raises(gym.error.DependencyNotInstalled, match="pygame"):
        env.reset(seed=0)


def test_time_limit_wraps_every_id():
    for env_id in RAW_HORIZONS:
        env = gym.make(env_id)
        wrapper, found = env, False
        while isinstance(wrapper, gym.Wrapper):
            found |= isinstance(wrapper, TimeLimit)
            wrapper = wrapper.env
        assert found, env_id
        env.close()
