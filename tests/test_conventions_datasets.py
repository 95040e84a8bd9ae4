"""Datasets as offline-RL users expect them: OGBench-style loading, rewards and episode ends,
per-episode seeds that replay an episode in its env, version 1 files, load-time checks that
name the file and the field, and a Minari export following DataCollector's conventions."""

import json

import gymnasium as gym
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from irl_envs.datasets import (
    Demonstrations,
    generate_dataset,
    load_dataset,
    make_env_and_datasets,
)


@pytest.fixture(scope="module")
def grid():
    return generate_dataset("grid", "pretrain", episodes=40, seed=3, num_envs=16, noise=0.6,
                            progress=False)


@pytest.fixture(scope="module")
def grid_file(grid, tmp_path_factory):
    return grid.save(tmp_path_factory.mktemp("data") / "grid.safetensors")


def replay(env: gym.Env, episode: dict) -> None:
    """Reset with the episode's seed, take its actions: every recorded quantity must match."""
    obs, _ = env.reset(seed=episode["seed"])
    assert np.array_equal(obs, episode["observations"][0])
    n = len(episode["actions"])
    for t, action in enumerate(episode["actions"]):
        obs, reward, term, trunc, info = env.step(action)
        expected = episode["observations"][t + 1] if t + 1 < n else episode["final_observation"]
        np.testing.assert_allclose(obs, expected, rtol=0, atol=0)
        assert (reward, term, trunc) == (episode["rewards"][t], episode["terminations"][t],
                                         episode["truncations"][t]), t
    assert term or trunc


def test_every_grid_episode_replays_from_its_seed(grid):
    env = gym.make(grid.meta["env_id"])
    assert len(set(grid.seeds.tolist())) == grid.num_episodes
    for i in range(grid.num_episodes):
        replay(env, grid.episode(i))
    ends = grid.episode_starts + grid.episode_lengths - 1
    assert grid.rewards.sum() == grid.success.sum() == grid.rewards[ends].sum()


def test_ant_episodes_replay_from_their_seeds():
    """The ant's worker-process vector env resets each episode with its own seed too."""
    data = generate_dataset("ant", "pretrain", episodes=3, seed=0, num_envs=2, progress=False)
    env = gym.make(data.meta["env_id"])
    for i in range(data.num_episodes):
        replay(env, data.episode(i))


def test_make_env_and_datasets(grid, grid_file, tmp_path):
    env, train, val = make_env_and_datasets(grid_file)
    assert env.spec.id == grid.meta["env_id"] and val is None
    steps = grid.num_steps
    assert {k: len(v) for k, v in train.items()} == dict.fromkeys(train, steps)
    ends = grid.episode_starts + grid.episode_lengths - 1
    # next_observations: the following step's observation, the final one at an episode's end
    np.testing.assert_array_equal(train["next_observations"][ends], grid.final_observations)
    inner = np.setdiff1d(np.arange(steps), ends)
    np.testing.assert_array_equal(train["next_observations"][inner],
                                  train["observations"][inner + 1])
    assert train["terminals"].sum() == grid.num_episodes and train["terminals"][ends].all()
    np.testing.assert_array_equal(train["masks"], 1.0 - grid.terminations)
    np.testing.assert_array_equal(train["terminations"] | train["truncations"],
                                  train["terminals"].astype(bool))
    # OGBench's compact form: final observations inline, valids marks transitions
    _, compact, val = make_env_and_datasets(grid_file, val_dataset_path=grid_file,
                                            compact_dataset=True)
    assert len(compact["observations"]) == steps + grid.num_episodes
    assert compact["valids"].sum() == steps and "next_observations" not in compact
    assert val["valids"].sum() == steps
    valid = compact["valids"].astype(bool)
    np.testing.assert_array_equal(compact["actions"][valid], grid.actions)
    np.testing.assert_array_equal(compact["observations"][~valid], grid.final_observations)


def _raw(path):
    tensors = load_file(str(path))
    with safe_open(str(path), framework="numpy") as f:
        return tensors, dict(f.metadata())


def test_version_1_files_are_read(grid, grid_file, tmp_path):
    tensors, meta = _raw(grid_file)
    for key in ("rewards", "terminations", "truncations", "final_targets", "seeds"):
        tensors.pop(key)
    meta["version"] = "1"
    meta.pop("max_episode_steps")
    save_file(tensors, str(tmp_path / "v1.safetensors"), metadata=meta)
    old = load_dataset(tmp_path / "v1.safetensors")
    assert old.seeds is None and old.episode(0)["seed"] is None
    for key in ("observations", "actions", "rewards", "terminations", "truncations"):
        # rebuilt exactly (no episode here fails on its horizon's very step)
        np.testing.assert_array_equal(getattr(old, key), getattr(grid, key), err_msg=key)
    assert (old.final_targets[grid.success] == -1).all()  # unsolved: the last target


def _corrupt(grid_file, tmp_path, change):
    tensors, meta = _raw(grid_file)
    change(tensors, meta)
    path = tmp_path / "corrupt.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def _set(key, value):
    def change(tensors, meta):
        tensors[key] = value(tensors[key]) if callable(value) else value
    return change


CORRUPTIONS = {
    "actions": _set("actions", lambda a: np.where(np.arange(len(a)) == 3, 7, a)),
    "episode_starts": _set("episode_starts", lambda s: s.astype(np.float64)),
    "episode_lengths": _set("episode_lengths", lambda x: x.astype(np.float32)),
    "success": _set("success", lambda s: s * 2),
    "terminations": _set("terminations", lambda t: np.zeros_like(t)),
    "rewards": _set("rewards", lambda r: np.where(np.arange(len(r)) == 0, np.nan, r)),
    "seeds": _set("seeds", lambda s: -s - 1),
    "task_ids": _set("task_ids", lambda t: t + 100),
    "targets": _set("targets", lambda t: t[:-1]),
    "observations": _set("observations", lambda o: o.astype(np.int8)),
}


@pytest.mark.parametrize("field", sorted(CORRUPTIONS))
def test_bad_fields_name_the_file_and_the_field(grid_file, tmp_path, field):
    path = _corrupt(grid_file, tmp_path, CORRUPTIONS[field])
    with pytest.raises(ValueError, match=f"corrupt.safetensors.*'{field}'"):
        load_dataset(path)


def test_empty_dataset_is_refused(grid_file, tmp_path):
    def empty(tensors, meta):
        for key, value in tensors.items():
            tensors[key] = value[:0]
    with pytest.raises(ValueError, match="corrupt.safetensors is empty"):
        load_dataset(_corrupt(grid_file, tmp_path, empty))


def test_continuous_actions_must_be_finite(tmp_path):
    obs = np.zeros((3, 5), np.float32)
    data = Demonstrations(obs, obs[:1], np.full((3, 2), np.inf, np.float32),
                          np.array([0]), np.array([3]), np.zeros(3, np.int64),
                          np.zeros(3, np.int64), np.zeros(1, np.int64), np.ones(1, np.uint8))
    with pytest.raises(ValueError, match="'actions' holds non-finite"):
        data.save(tmp_path / "ant.safetensors")


def test_minari_export_follows_data_collector(grid, tmp_path, monkeypatch):
    minari = pytest.importorskip("minari", reason="the minari extra is not installed")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from irl_envs.minari_export import export_minari

    ds = export_minari(grid, "irl/conventions-grid-v0", author="someone")
    ds = minari.load_dataset("irl/conventions-grid-v0")
    assert ds.total_episodes == grid.num_episodes and ds.total_steps == grid.num_steps
    assert ds.spec.env_spec.max_episode_steps == 100 and "someone" in ds.storage.metadata["author"]
    env = ds.recover_environment()
    metadata = list(ds.storage.get_episode_metadata(range(ds.total_episodes)))
    assert [m["seed"] for m in metadata] == grid.seeds.tolist()
    truncated = 0
    for ep, meta in zip(ds.iterate_episodes(), metadata, strict=True):
        n = len(ep.actions)
        assert len(ep.observations) == n + 1  # reset observation + one per step
        assert {k: len(v) for k, v in ep.infos.items()} == dict.fromkeys(ep.infos, n + 1)
        ours = grid.episode(ep.id)
        np.testing.assert_array_equal(ep.truncations, ours["truncations"])
        truncated += ep.truncations[-1]
        obs, _ = env.reset(seed=meta["seed"], options=meta.get("options"))
        assert np.array_equal(obs, ep.observations[0])
        for t, action in enumerate(ep.actions):
            obs, reward, term, trunc, _ = env.step(action)
            assert np.array_equal(obs, ep.observations[t + 1])
            assert (reward, term, trunc) == (ep.rewards[t], ep.terminations[t],
                                             ep.truncations[t])
    assert truncated > 0  # the noisy expert runs out of time now and then: marked as such


def test_minari_export_marks_ant_truncation_and_stays_small(tmp_path, monkeypatch):
    """A version 1 ant file: an unsolved episode that ran the whole horizon is truncated."""
    minari = pytest.importorskip("minari", reason="the minari extra is not installed")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from irl_envs.minari_export import export_minari

    lengths = np.array([500, 120])
    steps = int(lengths.sum())
    obs = np.zeros((steps, 41), np.float32)
    data = Demonstrations(obs, obs[:2], np.zeros((steps, 8), np.float32), np.array([0, 500]),
                          lengths, np.zeros(steps, np.int64), np.zeros(steps, np.int64),
                          np.zeros(2, np.int64), np.array([0, 1], np.uint8),
                          meta={"env": "ant", "env_id": "InternalRL/AntSubgoals-v0",
                                "tasks": [[0, 1, 2, 3]]})
    ds = export_minari(data, "irl/conventions-ant-v0")
    eps = list(minari.load_dataset("irl/conventions-ant-v0").iterate_episodes())
    assert eps[0].truncations[-1] and not eps[0].terminations[-1]
    assert eps[1].terminations[-1] and eps[1].rewards[-1] == 1.0
    assert ds is not None


def test_minari_file_is_not_much_larger_than_ours(grid, grid_file, tmp_path, monkeypatch):
    pytest.importorskip("minari", reason="the minari extra is not installed")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from irl_envs.minari_export import export_minari

    export_minari(grid, "irl/size-grid-v0")
    exported = sum(f.stat().st_size for f in (tmp_path / "minari").rglob("*") if f.is_file())
    assert exported < 3 * grid_file.stat().st_size  # was 12x before compression


def test_generated_metadata(grid):
    assert grid.meta["max_episode_steps"] == 100 == grid.max_episode_steps
    json.dumps(grid.meta)  # JSON all the way
