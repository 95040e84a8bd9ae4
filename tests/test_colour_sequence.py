"""Gridworld-pinpad: every MDP rule on pinned layouts, options, properties, batched == single."""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irl_envs.colour_sequence import ColourSequenceEnv, ColourSequenceVectorEnv
from irl_envs.tasks import GRID_POSTTRAIN_TASK, GRID_PRETRAIN_TASKS

UP, RIGHT, DOWN, LEFT = range(4)
# Colour i at COLOURS[i]; walls at WALLS; agent starts at (3, 3).
COLOURS = [(3, 4), (3, 5), (0, 0), (0, 6), (6, 0), (6, 6), (5, 3), (1, 3)]
WALLS = [(2, 3), (4, 4), (0, 1), (5, 5)]
LAYOUT = {"agent": (3, 3), "colours": COLOURS, "walls": WALLS}


def make(task=(0, 1, 2), **kwargs):
    env = ColourSequenceEnv(task=task, **kwargs)
    env.reset(seed=0, options={"layout": LAYOUT})
    return env


def test_defaults_match_the_paper():
    env = gym.make("InternalRL/ColourSequence-v0")
    assert env.observation_space.shape == (637,)
    assert env.action_space.n == 4
    _, info = env.reset(seed=0)
    assert info["task"] == list(GRID_POSTTRAIN_TASK)
    assert env.unwrapped.core.max_steps == 100


def test_observation_planes():
    env = make()
    obs = env.unwrapped.core.obs[0].reshape(13, 7, 7)
    for colour, (r, c) in enumerate(COLOURS):
        assert obs[colour, r, c] == 1 and obs[colour].sum() == 1
    for j, (r, c) in enumerate(WALLS):
        assert obs[8 + j, r, c] == 1 and obs[8 + j].sum() == 1
    assert obs[12, 3, 3] == 1 and obs[12].sum() == 1
    env.step(DOWN)
    obs = env.unwrapped.core.obs[0].reshape(13, 7, 7)
    assert obs[12, 4, 3] == 1 and obs[12].sum() == 1


def test_moving_into_a_wall_is_a_no_op():
    env = make()
    obs, reward, terminated, truncated, info = env.step(UP)  # (2, 3) is a wall
    assert info["agent"] == (3, 3) and reward == 0 and not terminated


def test_moving_off_the_grid_is_a_no_op():
    env = ColourSequenceEnv(task=(0,))
    env.reset(seed=0, options={"layout": {**LAYOUT, "agent": (6, 3)}})
    *_, info = env.step(DOWN)
    assert info["agent"] == (6, 3)


def test_entering_the_next_colour_advances_the_task():
    env = make(task=(0, 1, 2))
    _, reward, terminated, _, info = env.step(RIGHT)
    assert info["agent"] == (3, 4) and info["next_index"] == 1
    assert reward == 0 and not terminated and not info["is_success"]


def test_wrong_colour_ends_the_episode_without_reward():
    env = make(task=(1, 0))
    _, reward, terminated, truncated, info = env.step(RIGHT)  # enters colour 0, expected 1
    assert terminated and not truncated and reward == 0 and not info["is_success"]


def test_success_gives_reward_one_and_ends():
    env = make(task=(0, 1))
    env.step(RIGHT)
    _, reward, terminated, truncated, info = env.step(RIGHT)
    assert reward == 1.0 and terminated and not truncated and info["is_success"]
    assert info["next_index"] == 2


def test_colour_counts_only_when_entered_from_another_cell():
    # Standing on colour 0 and bumping into the wall at (4, 4) does not revisit colour 0.
    env = make(task=(0, 0))
    env.step(RIGHT)
    _, reward, terminated, _, info = env.step(DOWN)
    assert info["agent"] == (3, 4) and info["next_index"] == 1 and not terminated
    env.step(LEFT)  # leave, then re-enter: now it counts
    _, reward, terminated, _, info = env.step(RIGHT)
    assert reward == 1.0 and terminated


def test_truncation_at_max_steps():
    env = make(task=(2,), max_steps=5)
    for i in range(5):
        _, reward, terminated, truncated, _ = env.step(UP if i % 2 else DOWN)  # (3,3) <-> (4,3)
        assert truncated == (i == 4) and not terminated and reward == 0


def test_info_keys_on_reset_and_step():
    env = ColourSequenceEnv()
    _, info = env.reset(seed=0)
    assert set(info) == {"is_success", "task", "next_index", "agent"}
    *_, info = env.step(0)
    assert set(info) == {"is_success", "task", "next_index", "agent"}


def test_task_option_pins_the_task():
    env = gym.make("InternalRL/ColourSequencePretrain-v0")
    _, info = env.reset(seed=0, options={"task": [7, 6]})
    assert info["task"] == [7, 6]


def test_pretrain_env_draws_every_table_task():
    env = gym.make("InternalRL/ColourSequencePretrain-v0")
    env.reset(seed=0)
    seen = {tuple(env.reset()[1]["task"]) for _ in range(400)}
    assert seen == set(GRID_PRETRAIN_TASKS)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"bogus": 1}, "unknown reset options"),
        ({"task": [8]}, r"colours must lie in \[0, 8\)"),
        ({"task": []}, "non-empty"),
        ({"layout": {"agent": (0, 0)}}, "exactly the keys"),
        ({"layout": {**LAYOUT, "colours": COLOURS[:-1]}}, "must list 8 cells"),
        ({"layout": {**LAYOUT, "walls": WALLS[:-1]}}, "must list 4 cells"),
        ({"layout": {**LAYOUT, "agent": (7, 0)}}, "off the 7x7 grid"),
        ({"layout": {**LAYOUT, "agent": COLOURS[0]}}, "must not overlap"),
        ({"layout": {**LAYOUT, "agent": "x"}}, r"\(row, col\)"),
    ],
)
def test_invalid_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        ColourSequenceEnv().reset(seed=0, options=options)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"grid_size": 1}, "grid_size"),
        ({"num_walls": -1}, "num_walls"),
        ({"max_steps": 0}, "max_steps"),
        ({"grid_size": 3, "num_colours": 8}, "num_colours \\+ num_walls \\+ 1"),
        ({"tasks": []}, "at least one task"),
        ({"task": [0, 9]}, "task colours"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColourSequenceEnv(**kwargs)


def test_invalid_action_raises():
    env = ColourSequenceEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(4)


def test_custom_sizes():
    env = ColourSequenceEnv(grid_size=5, num_colours=3, num_walls=2, task=(2, 0, 1))
    obs, info = env.reset(seed=0)
    assert obs.shape == (5 * 5 * 6,) and info["task"] == [2, 0, 1]


def test_reset_layouts_are_solvable_within_the_horizon():
    from irl_envs import grid_logic

    env = ColourSequenceVectorEnv(num_envs=512)
    env.reset(seed=0)
    core = env.core
    length = grid_logic.tour_length(core.cells, core.agent, core.task, core.task_len, core.g)
    assert (length <= core.max_steps).all()


def test_render_modes():
    env = make(render_mode="ansi")
    text = env.render()
    assert text.splitlines()[3].split()[3] == "@" and "task [|0-1-2]" in text
    env = make(render_mode="rgb_array")
    frame = env.render()
    assert frame.shape[2] == 3 and frame.dtype == np.uint8
    env.step(RIGHT)
    assert not np.array_equal(frame, env.render())  # agent moved and progress ticked


# ----------------------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), actions=st.lists(st.integers(0, 3), min_size=1, max_size=60))
def test_properties_hold_along_random_play(seed, actions):
    env = ColourSequenceEnv(tasks=GRID_PRETRAIN_TASKS)
    _, info = env.reset(seed=seed)
    core = env.core
    walls = set(np.flatnonzero(core.cells[0] >= core.o))
    progress = 0
    for a in actions:
        _, reward, terminated, truncated, info = env.step(a)
        r, c = info["agent"]
        assert r * 7 + c not in walls  # never inside a wall
        assert info["next_index"] in (progress, progress + 1)  # progress is monotone, +1 max
        progress = info["next_index"]
        assert (reward == 1.0) == (terminated and info["is_success"])  # reward only on success
        assert reward in (0.0, 1.0)
        if terminated or truncated:
            break


# --------------------------------------------------------------------- batched == single
@pytest.mark.parametrize("env_id", ["InternalRL/ColourSequence-v0",
                                    "InternalRL/ColourSequencePretrain-v0"])
def test_vector_env_equals_single_envs(env_id):
    n, steps = 6, 150
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    assert isinstance(venv, ColourSequenceVectorEnv)
    singles = [gym.make(env_id) for _ in range(n)]
    vobs, vinfo = venv.reset(seed=10)
    sobs = [e.reset(seed=10 + i) for i, e in enumerate(singles)]
    for i in range(n):
        assert np.array_equal(vobs[i], sobs[i][0])
    rng = np.random.default_rng(0)
    needs_reset = np.zeros(n, dtype=bool)
    resets = 0
    for _ in range(steps):
        actions = rng.integers(0, 4, n)
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(singles):
            if needs_reset[i]:  # next-step autoreset: the single env resets instead
                obs, _ = env.reset()
                rew, term, trunc = 0.0, False, False
            else:
                obs, rew, term, trunc, info = env.step(int(actions[i]))
                assert vinfo["next_index"][i] == info["next_index"]
                assert tuple(vinfo["agent"][i]) == info["agent"]
            assert np.array_equal(vobs[i], obs)
            assert (vrew[i], vterm[i], vtrunc[i]) == (rew, term, trunc)
        resets += needs_reset.sum()
        needs_reset = vterm | vtrunc
    assert resets > n  # the comparison covered many autoresets


def test_vector_env_reset_mask_and_copy():
    venv = ColourSequenceVectorEnv(num_envs=4, copy=False)
    obs, _ = venv.reset(seed=0)
    before = obs.copy()
    venv.reset(options={"reset_mask": np.array([True, False, False, False])})
    assert np.array_equal(obs[1:], before[1:]) and not np.array_equal(obs[0], before[0])
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.ones(3, dtype=bool)})
