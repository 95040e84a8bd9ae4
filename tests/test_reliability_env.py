"""Bad input to the environments: property-based tests of reset options, seeds and actions.

Whatever a caller passes, an environment either does exactly what the documentation says or
raises ``ValueError``; it never coerces a value into another one (``1.7`` into ``1``), never
overflows, and never rewards a finished episode again.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from irl_envs.ant_subgoals import AntSubgoalsEnv
from irl_envs.colour_sequence import ColourSequenceEnv, ColourSequenceVectorEnv

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.lists(st.one_of(st.integers(-3, 10), st.floats(-3, 10), st.text(max_size=2),
                       st.booleans()), max_size=6),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
"""Anything a confused caller might pass."""


def genuine_task(value: object, colours: int) -> bool:
    """Whether ``value`` is a task the envs accept: a non-empty list/tuple of ints (not bools)
    in ``[0, colours)``, or a string such as ``"0-1-2"``."""
    if isinstance(value, str):
        parts = value.replace(",", "-").split("-")
        return all(p.strip().isdecimal() and int(p) < colours for p in parts)
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(type(c) is int and 0 <= c < colours for c in value))


# ------------------------------------------------------------------------------ gridworld
@FAST
@given(task=junk)
@example(task="²")  # isdigit() but not int(): once gave a raw int() error
def test_grid_task_option_is_used_exactly_or_refused(task):
    env = ColourSequenceEnv(num_colours=8)
    if task is None:  # None means "no pinned task"
        env.reset(seed=0, options={"task": task})
        return
    if genuine_task(task, 8):
        _, info = env.reset(seed=0, options={"task": task})
        expected = ([int(p) for p in task.replace(",", "-").split("-")]
                    if isinstance(task, str) else list(task))
        assert info["task"] == expected
    else:
        with pytest.raises(ValueError):
            env.reset(seed=0, options={"task": task})


@pytest.mark.parametrize("task", [[0, 1.7], [0, 1.0], [0, "1"], [True, 1], 3, "0-x",
                                  [0, 8], [-1], [], np.array([0.0, 1.0])])
def test_grid_rejects_coerced_tasks(task):
    """The issue's examples: floats, strings, bools and a bare int are mistakes."""
    with pytest.raises(ValueError, match="task"):
        ColourSequenceEnv().reset(seed=0, options={"task": task})
    with pytest.raises(ValueError, match="task"):
        ColourSequenceEnv(task=task)


@FAST
@given(pos=junk, which=st.sampled_from(["agent", "colours", "walls"]))
@example(pos=[1, 0], which="agent").via("a free cell: the reset must use it")
@example(pos=[0, 0], which="walls").via("an overlap: refused")
def test_grid_layout_option_is_used_exactly_or_refused(pos, which):
    colours = [(0, c) for c in range(7)] + [(1, 6)]  # eight colours on the 7x7 grid
    layout = {"agent": (6, 6), "colours": colours, "walls": [(2, c) for c in range(4)]}
    if which == "agent":
        layout["agent"] = pos
    else:
        layout[which] = [pos, *layout[which][1:]]
    genuine = (isinstance(pos, (list, tuple)) and len(pos) == 2
               and all(type(v) is int and 0 <= v < 7 for v in pos))
    env = ColourSequenceEnv()
    try:
        _, info = env.reset(seed=0, options={"layout": layout})
    except ValueError:
        assert not genuine or tuple(pos) in [(6, 6), *colours,
                                             *[(2, c) for c in range(4)]]  # an overlap
        return
    assert genuine
    if which == "agent":
        assert info["agent"] == tuple(pos)


@pytest.mark.parametrize("options", ["task", ["task"], {"layout": "x"},
                                     {"layout": {"agent": (1.5, 2), "colours": [],
                                                 "walls": []}},
                                     {"reset_mask": [1, 0]}, {"tusk": [0]}])
def test_grid_malformed_options_raise_value_error(options):
    with pytest.raises(ValueError):
        ColourSequenceVectorEnv(num_envs=2).reset(seed=0, options=options)


@FAST
@given(seed=st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=2)))
def test_grid_seeds_are_unsigned_64_bit_ints_or_value_error(seed):
    valid = type(seed) is int and 0 <= seed <= 2**64 - 1
    single = ColourSequenceEnv()
    vector = ColourSequenceVectorEnv(num_envs=3)
    if valid:
        single.reset(seed=seed)
        if seed <= 2**64 - 3:  # seed + 2 for the third sub-environment
            vector.reset(seed=seed)
            return
    with pytest.raises(ValueError, match="seed"):
        vector.reset(seed=seed)
    if not valid:
        with pytest.raises(ValueError, match="seed"):
            single.reset(seed=seed)


@pytest.mark.parametrize("seed", [-1, 2**64, [0, -1], [0, 2**64], [0, 1, 2]])
def test_grid_vector_seed_out_of_range_is_value_error(seed):
    with pytest.raises(ValueError, match="seed"):
        ColourSequenceVectorEnv(num_envs=2).reset(seed=seed)


@FAST
@given(action=junk)
def test_grid_actions_are_ints_0_to_3_or_value_error(action):
    env = ColourSequenceEnv()
    env.reset(seed=0)
    if type(action) is int and 0 <= action <= 3:
        env.step(action)
    else:
        with pytest.raises(ValueError, match="action"):
            env.step(action)
    vector = ColourSequenceVectorEnv(num_envs=1)
    vector.reset(seed=0)
    if type(action) is int and 0 <= action <= 3:
        vector.step([action])
    else:
        with pytest.raises(ValueError, match="action"):
            vector.step([action])


def test_grid_step_before_reset_is_refused():
    with pytest.raises(gym.error.ResetNeeded):
        ColourSequenceEnv().step(0)
    with pytest.raises(gym.error.ResetNeeded):
        ColourSequenceVectorEnv(num_envs=2).step([0, 0])


@FAST
@given(seed=st.integers(0, 2**32), actions=st.lists(st.integers(0, 3), min_size=1,
                                                      max_size=150))
def test_grid_a_finished_episode_is_never_rewarded_again(seed, actions):
    """After success, a wrong colour or truncation, further steps (a caller's mistake, warned
    about) give reward 0 and the flags the episode ended with."""
    env = ColourSequenceEnv(max_steps=30, task=[0, 1])
    env.reset(seed=seed)
    ended, success, total = None, None, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for action in actions:
            _, reward, terminated, truncated, info = env.step(action)
            total += reward
            if ended is not None:
                assert reward == 0.0 and (terminated, truncated) == ended
                assert info["is_success"] == success
            elif terminated or truncated:
                ended, success = (terminated, truncated), info["is_success"]
    assert total <= 1.0


def test_grid_success_then_more_steps_gives_reward_once():
    """The issue's example: entering the last colour, then stepping on."""
    layout = {"agent": (0, 0), "colours": [(0, 1), (0, 2), *[(6, c) for c in range(6)]],
              "walls": [(3, c) for c in range(4)]}
    env = ColourSequenceEnv(task=[0, 1])
    env.reset(seed=0, options={"layout": layout})
    assert env.step(1)[1:3] == (0.0, False)  # enters colour 0
    assert env.step(1)[1:3] == (1.0, True)  # enters colour 1: success
    with pytest.warns(UserWarning, match="after the episode ended"):
        again = env.step(3)  # back onto colour 0 ...
    assert again[1:4] == (0.0, True, False)
    assert env.step(1)[1:4] == (0.0, True, False)  # ... and into colour 1 again: no reward


def test_grid_vector_env_autoresets_after_the_end():
    """The vector env (NEXT_STEP autoreset) is unaffected: the step after an end resets."""
    vector = ColourSequenceVectorEnv(num_envs=4, max_steps=3, task=[0, 1])
    vector.reset(seed=0)
    rewards = np.zeros(4)
    for _ in range(40):
        _, reward, terminated, truncated, _ = vector.step(np.zeros(4, dtype=np.int64))
        rewards += reward
        assert not (terminated & truncated).any()
    assert (rewards <= 40 / 4).all()


def test_grid_horizon_too_short_for_the_task_is_value_error():
    with pytest.raises(ValueError, match="max_steps"):
        ColourSequenceEnv(max_steps=3)  # the 12-colour post-training task


# ------------------------------------------------------------------------------ ant
@pytest.fixture(scope="module")
def ant():
    env = AntSubgoalsEnv(max_steps=20)
    yield env
    env.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_ant_non_finite_action_is_value_error_and_writes_no_log(ant, tmp_path, monkeypatch, bad):
    monkeypatch.chdir(tmp_path)
    ant.reset(seed=0)
    before = ant.data.qpos.copy()
    action = np.zeros(8)
    action[3] = bad
    with pytest.raises(ValueError, match="finite"):
        ant.step(action)
    assert np.array_equal(ant.data.qpos, before)  # nothing was simulated
    assert not list(tmp_path.iterdir())  # no MUJOCO_LOG.TXT in the working directory


@FAST
@given(action=st.one_of(junk, st.lists(st.floats(), min_size=8, max_size=8)))
def test_ant_actions_are_8_finite_floats_or_value_error(ant, action):
    ant.reset(seed=0)
    arr = None
    with contextlib.suppress(TypeError, ValueError):
        arr = np.asarray(action, dtype=np.float64)
    if arr is not None and arr.shape == (8,) and np.isfinite(arr).all():
        _, reward, *_ = ant.step(action)
        assert math.isfinite(reward)
    else:
        with pytest.raises(ValueError, match="action"):
            ant.step(action)


def test_ant_huge_torques_are_clipped_like_the_actuators_and_warn_nothing(ant, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    ant.reset(seed=3)
    clipped = ant.step(np.full(8, 1.0))[0]
    ant.reset(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a MuJoCo "huge value in CTRL" warning would raise
        huge = ant.step(np.full(8, 1e30))[0]
    assert np.array_equal(clipped, huge)
    assert not list(tmp_path.iterdir())


def test_ant_a_finished_episode_is_never_rewarded_again(ant):
    ant.reset(seed=0, options={"task": [0, 1]})
    rng = np.random.default_rng(0)
    ended = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(40):  # max_steps=20: the episode ends, then 20 more steps
            _, reward, terminated, truncated, info = ant.step(rng.uniform(-1, 1, 8))
            if ended is not None:
                assert reward == 0.0 and (terminated, truncated) == ended
                assert info["event"] == ""
            elif terminated or truncated:
                ended = (terminated, truncated)
    assert ended is not None


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "0"])
def test_ant_bad_seed_is_value_error(ant, seed):
    with pytest.raises(ValueError, match="seed"):
        ant.reset(seed=seed)


@pytest.mark.parametrize("options", [{"task": 3}, {"task": [0, 1.7]}, {"task": ["0"]},
                                     {"ant_xy": (0.1, "a")}, {"ant_yaw": float("nan")},
                                     "task", {"layout": {"agent": ("1", 0), "colours": [],
                                                         "walls": []}}])
def test_ant_malformed_options_raise_value_error(ant, options):
    with pytest.raises(ValueError):
        ant.reset(seed=0, options=options)
