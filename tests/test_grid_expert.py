"""The DP expert solves every task, on single and batched environments."""

import gymnasium as gym
import numpy as np
import pytest

from irl_envs.colour_sequence import ColourSequenceEnv, ColourSequenceVectorEnv
from irl_envs.experts.grid_expert import GridExpert
from irl_envs.tasks import GRID_POSTTRAIN_TASK, GRID_PRETRAIN_TASKS


def play_batch(task, n=500, seed=0, eps=0.0, tie_break="uniform"):
    venv = ColourSequenceVectorEnv(num_envs=n, task=task)
    expert = GridExpert(eps=eps, seed=seed, tie_break=tie_break)
    venv.reset(seed=seed)
    done = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    while not done.all():
        _, reward, terminated, truncated, _ = venv.step(expert.act(venv))
        success |= (reward > 0) & ~done
        done |= terminated | truncated
    return success


@pytest.mark.parametrize("task", [*GRID_PRETRAIN_TASKS, GRID_POSTTRAIN_TASK],
                         ids=lambda t: "-".join(map(str, t)))
def test_expert_solves_every_task(task):
    assert play_batch(task).all()
    assert play_batch(task, n=100, tie_break="first").all()


def test_expert_on_a_single_env():
    env = gym.make("InternalRL/ColourSequence-v0")
    expert = GridExpert(seed=0)
    for episode in range(20):
        env.reset(seed=episode)
        while True:
            _, reward, terminated, truncated, info = env.step(expert.act(env))
            if terminated or truncated:
                break
        assert info["is_success"] and reward == 1.0


def test_expert_moves_are_optimal():
    # Post-training episodes solved at eps=0 take exactly the shortest tour length.
    from irl_envs import grid_logic

    venv = ColourSequenceVectorEnv(num_envs=200)
    venv.reset(seed=5)
    core = venv.core
    shortest = grid_logic.tour_length(core.cells, core.agent, core.task, core.task_len, 7)
    expert, lengths = GridExpert(seed=0), np.zeros(200, dtype=int)
    done = np.zeros(200, dtype=bool)
    while not done.all():
        _, _, terminated, truncated, _ = venv.step(expert.act(venv))
        lengths += ~done
        done |= terminated | truncated
    assert np.array_equal(lengths, shortest)


def test_noisy_expert_never_enters_a_wrong_colour():
    venv = ColourSequenceVectorEnv(num_envs=300, tasks=GRID_PRETRAIN_TASKS, max_steps=400)
    expert = GridExpert(eps=0.5, seed=1)
    venv.reset(seed=1)
    done = np.zeros(300, dtype=bool)
    success = np.zeros(300, dtype=bool)
    while not done.all():
        _, reward, terminated, truncated, info = venv.step(expert.act(venv))
        failed = terminated & ~info["is_success"] & ~done
        assert not failed.any()
        success |= (reward > 0) & ~done
        done |= terminated | truncated
    assert success.mean() > 0.95


def test_expert_tie_breaking_is_random_but_seeded():
    env = ColourSequenceEnv()
    actions = []
    for seed in (0, 0, 1):
        expert = GridExpert(seed=seed)
        env.reset(seed=3)
        acts = []
        for _ in range(15):
            a = expert.act(env)
            acts.append(a)
            *_, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                break
        actions.append(acts)
    assert actions[0] == actions[1]


def test_first_tie_break_is_deterministic_and_optimal():
    # seeds no longer matter, and the moves are still shortest-path moves
    from irl_envs import grid_logic

    runs = []
    for seed in (0, 1):
        venv = ColourSequenceVectorEnv(num_envs=100)
        venv.reset(seed=5)
        core = venv.core
        shortest = grid_logic.tour_length(core.cells, core.agent, core.task, core.task_len, 7)
        expert, trace = GridExpert(seed=seed, tie_break="first"), []
        done, lengths = np.zeros(100, dtype=bool), np.zeros(100, dtype=int)
        while not done.all():
            actions = expert.act(venv)
            trace.append(np.where(done, -1, actions))
            _, _, terminated, truncated, _ = venv.step(actions)
            lengths += ~done
            done |= terminated | truncated
        assert np.array_equal(lengths, shortest)
        runs.append(np.stack(trace))
    assert np.array_equal(*runs)


def test_expert_rejects_other_envs():
    with pytest.raises(TypeError, match="ColourSequence"):
        GridExpert().act(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="eps"):
        GridExpert(eps=1.5)
    with pytest.raises(ValueError, match="tie_break"):
        GridExpert(tie_break="random")
