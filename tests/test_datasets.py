"""Demonstration datasets: contents, determinism, round trip, validation, CLI."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from irl_agents.cli import main
from irl_envs.colour_sequence import ColourSequenceEnv
from irl_envs.datasets import Demonstrations, generate_dataset, load_dataset


@pytest.fixture(scope="module")
def data():
    return generate_dataset("grid", "pretrain", episodes=60, seed=1, num_envs=16, progress=False)


def test_dataset_layout(data):
    assert data.num_episodes == 60 and data.discrete and data.obs_dim == 637
    assert data.observations.dtype == np.uint8 and data.actions.dtype == np.int64
    assert data.episode_lengths.sum() == data.num_steps
    assert data.success.all()
    # Subgoal labels are colour pairs of the target colour.
    assert np.array_equal(data.subgoals, data.targets // 2)
    assert set(np.unique(data.actions)) <= {0, 1, 2, 3}


def test_episodes_replay_in_the_environment(data):
    """Observations are the env's, actions lead to success; targets follow the task."""
    ep = data.episode(0)  # every episode was reset with its own recorded seed
    env = ColourSequenceEnv(tasks=[list(t) for t in data.tasks])
    obs, info = env.reset(seed=ep["seed"], options={"task": data.tasks[data.task_ids[0]]})
    for t, action in enumerate(ep["actions"]):
        assert np.array_equal(obs, ep["observations"][t])
        assert ep["targets"][t] == info["task"][info["next_index"]]
        obs, reward, terminated, truncated, info = env.step(int(action))
    assert terminated and reward == 1.0
    assert np.array_equal(obs, ep["final_observation"])


def test_generation_is_deterministic(data):
    again = generate_dataset("grid", "pretrain", episodes=60, seed=1, num_envs=16, progress=False)
    assert np.array_equal(again.actions, data.actions)
    assert np.array_equal(again.observations, data.observations)
    other = generate_dataset("grid", "pretrain", episodes=60, seed=2, num_envs=16, progress=False)
    assert not np.array_equal(other.episode_lengths, data.episode_lengths)


def test_round_trip(tmp_path, data):
    path = data.save(tmp_path / "d.safetensors")
    back = load_dataset(path)
    for key in ("observations", "final_observations", "actions", "episode_starts",
                "episode_lengths", "targets", "subgoals", "task_ids", "success"):
        assert np.array_equal(getattr(back, key), getattr(data, key)), key
    assert back.tasks == data.tasks and back.meta["seed"] == 1
    assert "torch" in back.meta["versions"]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


def test_load_errors(tmp_path, data):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_dataset(junk)
    path = data.save(tmp_path / "d.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=str(truncated.name)):
        load_dataset(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": np.zeros(3)}, str(foreign), metadata={"format": "other"})
    with pytest.raises(ValueError, match="not an irl-demonstrations file"):
        load_dataset(foreign)
    newer = tmp_path / "newer.safetensors"
    save_file({"x": np.zeros(3)}, str(newer),
              metadata={"format": "irl-demonstrations", "version": "99"})
    with pytest.raises(ValueError, match="version '99'"):
        load_dataset(newer)


def test_inconsistent_file_is_rejected(tmp_path, data):
    bad = Demonstrations(**{k: getattr(data, k) for k in (
        "observations", "final_observations", "actions", "episode_starts", "targets", "subgoals",
        "task_ids", "success")}, episode_lengths=data.episode_lengths + 1, meta=data.meta)
    with pytest.raises(ValueError, match="do not tile"):
        bad.save(tmp_path / "bad.safetensors")  # refused before anything is written
    assert not (tmp_path / "bad.safetensors").exists()
    # the same inconsistency in a file written by other means is refused at load
    from safetensors import safe_open
    from safetensors.numpy import load_file

    good = data.save(tmp_path / "good.safetensors")
    tensors = load_file(str(good))
    with safe_open(str(good), framework="numpy") as f:
        meta = f.metadata()
    tensors["episode_lengths"] = tensors["episode_lengths"] + 1
    save_file(tensors, str(tmp_path / "crafted.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="crafted.safetensors.*do not tile"):
        load_dataset(tmp_path / "crafted.safetensors")


def test_cli_data_and_expert_eval(tmp_path, capsys):
    out, summary = tmp_path / "d.safetensors", tmp_path / "s.json"
    assert main(["data", "--episodes", "20", "--num-envs", "8", "--out", str(out),
                 "--json", str(summary), "--no-progress"]) == 0
    figures = json.loads(summary.read_text())
    assert figures["episodes"] == 20 and figures["success_rate"] == 1.0
    assert load_dataset(out).num_episodes == 20
    assert "episodes_per_second" in capsys.readouterr().out
    res = tmp_path / "e.json"
    assert main(["expert-eval", "--task-set", "posttrain", "--episodes", "30",
                 "--no-progress", "--json", str(res)]) == 0
    assert json.loads(res.read_text())["success_rate"] == 1.0


def test_cli_rejects_bad_values(capsys):
    assert main(["data", "--episodes", "0", "--no-progress"]) == 2
    assert "episodes must be >= 1" in capsys.readouterr().err


def test_minari_export(tmp_path, monkeypatch, data):
    minari = pytest.importorskip("minari", reason="the minari extra is not installed")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    from irl_envs.minari_export import export_minari

    ds = export_minari(data, "irl/test-grid-v0")
    assert ds.total_episodes == data.num_episodes and ds.total_steps == data.num_steps
    ep = next(ds.iterate_episodes())
    assert np.array_equal(ep.observations[:-1], data.episode(0)["observations"])
    assert ep.rewards[-1] == 1.0 and ep.terminations[-1]
    assert minari.load_dataset("irl/test-grid-v0").total_episodes == data.num_episodes
