"""Tests of irl_agents.pretrain on small synthetic datasets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from irl_agents.episodes import pad_episodes, similar_length_batch
from irl_agents.models import ModelConfig, load_model
from irl_agents.pretrain import PretrainConfig, pretrain


def write_dataset(path: Path, discrete: bool, episodes: int = 24, obs_dim: int = 9) -> Path:
    """A synthetic dataset in the irl-demonstrations layout; the action is a function of o_t."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 15, size=episodes).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    s = int(lengths.sum())
    if discrete:
        obs = (rng.random((s, obs_dim)) < 0.3).astype(np.uint8)
        actions = (obs[:, :4].argmax(1)).astype(np.int64)
    else:
        obs = rng.standard_normal((s, obs_dim)).astype(np.float32)
        actions = np.tanh(obs[:, :3]).astype(np.float32)
    tensors = {
        "observations": obs,
        "final_observations": obs[starts + lengths - 1],
        "actions": actions,
        "episode_starts": starts,
        "episode_lengths": lengths,
        "targets": rng.integers(0, 4, size=s).astype(np.int64),
        "subgoals": rng.integers(0, 4, size=s).astype(np.int64),
        "task_ids": np.zeros(episodes, dtype=np.int64),
        "success": np.ones(episodes, dtype=np.uint8),
    }
    save_file(tensors, str(path), metadata={"format": "irl-demonstrations", "version": "1"})
    return path


def test_pad_episodes():
    from irl_envs.datasets import Demonstrations

    obs = np.arange(12, dtype=np.uint8).reshape(6, 2)
    starts, lengths = np.array([0, 2, 3]), np.array([2, 1, 3])
    side = np.arange(6)
    data = Demonstrations(obs, obs[[1, 2, 5]], np.array([0, 1, 2, 3, 0, 1]), starts, lengths,
                          side, side, np.zeros(3, dtype=np.int64), np.ones(3, dtype=bool))
    b = pad_episodes(data, [0, 1, 2])
    assert b.obs.shape == (3, 3, 2) and b.obs.dtype == torch.float32
    assert b.mask.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
    assert b.obs[0, :2].tolist() == [[0, 1], [2, 3]] and b.obs[0, 2].tolist() == [0, 0]
    assert b.obs[1, 0].tolist() == [4, 5] and b.obs[2].tolist() == [[6, 7], [8, 9], [10, 11]]
    assert b.actions.tolist() == [[0, 1, 0], [2, 0, 0], [3, 0, 1]]
    assert b.subgoals.tolist() == [[0, 1, -1], [2, -1, -1], [3, 4, 5]]
    one = pad_episodes(data, [1])
    assert one.obs.shape == (1, 1, 2) and one.actions.tolist() == [[2]] and one.mask.all()
    data.actions = np.ones((6, 3), dtype=np.float32)
    assert pad_episodes(data, [0, 1, 2]).actions[1, 1:].abs().sum() == 0


def test_similar_length_batches_are_random_and_tight():
    from irl_envs.datasets import generate_dataset

    data = generate_dataset("grid", "pretrain", episodes=400, seed=0, num_envs=64, progress=False)
    index = np.arange(400)
    rng = np.random.default_rng(0)
    a, b = similar_length_batch(data, index, 32, rng), similar_length_batch(data, index, 32, rng)
    assert len(set(a)) == 32 and not np.array_equal(np.sort(a), np.sort(b))
    spread = np.ptp(data.episode_lengths[a])
    assert spread < np.ptp(data.episode_lengths) / 2


@pytest.mark.parametrize("kind,discrete", [("transformer", True), ("ssm", False)])
def test_pretrain_runs_and_lowers_loss(tmp_path, kind, discrete):
    data = write_dataset(tmp_path / "d.safetensors", discrete)
    cfg = PretrainConfig(
        dataset=str(data),
        out_dir=str(tmp_path / "run"),
        model=ModelConfig(kind=kind, d_model=32, n_layers=2, n_heads=2, d_mlp=32),
        lr=3e-3,
        warmup_steps=5,
        batch_size=8,
        steps=40,
        log_every=10,
        eval_every=20,
        checkpoint_every=20,
        progress=False,
    )
    path = pretrain(cfg)
    model = load_model(path)
    assert model.config.discrete is discrete and model.config.obs_dim == 9
    assert model.config.obs_likelihood == ("bernoulli" if discrete else "gaussian")
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    total = [float(r["value"]) for r in rows if r["tag"] == "losses/total"]
    assert len(total) == 4 and total[-1] < total[0]
    tags = {r["tag"] for r in rows}
    assert {"losses/action_nll", "losses/obs_nll", "charts/learning_rate"} <= tags
    assert "losses/val_total" in tags
    assert any((tmp_path / "run" / "tb").iterdir())
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 40


def test_pretrain_resume_matches_uninterrupted(tmp_path):
    data = write_dataset(tmp_path / "d.safetensors", True)
    base = dict(
        dataset=str(data),
        model=ModelConfig(kind="transformer", d_model=16, n_layers=2, n_heads=2, d_mlp=16),
        batch_size=4,
        log_every=2,
        eval_every=0,
        checkpoint_every=3,
        warmup_steps=2,
        progress=False,
    )
    straight = pretrain(PretrainConfig(out_dir=str(tmp_path / "a"), steps=6, **base))
    pretrain(PretrainConfig(out_dir=str(tmp_path / "b"), steps=3, **base))
    resumed = pretrain(PretrainConfig(out_dir=str(tmp_path / "b"), steps=6, **base))
    sa = load_model(straight).state_dict()
    sb = load_model(resumed).state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], msg=k)
    kept = sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("ckpt-*"))
    assert kept == ["ckpt-00000003", "ckpt-00000006"]


def test_pretrain_bad_dataset(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a dataset")
    with pytest.raises(ValueError, match="bad.safetensors"):
        pretrain(PretrainConfig(dataset=str(bad), out_dir=str(tmp_path / "o"), progress=False))


def test_cli_subcommand(tmp_path):
    import argparse

    from irl_agents.commands.pretrain import add_subcommand

    data = write_dataset(tmp_path / "d.safetensors", True)
    parser = argparse.ArgumentParser()
    add_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "pretrain",
            "--dataset",
            str(data),
            "--out",
            str(tmp_path / "run"),
            "--steps",
            "4",
            "--d-model",
            "16",
            "--n-layers",
            "1",
            "--n-heads",
            "2",
            "--d-mlp",
            "16",
            "--batch-size",
            "4",
            "--no-progress",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert args.run(args) == 0
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert "total" in json.loads((tmp_path / "r.json").read_text())


def test_learning_rate_schedules():
    from irl_agents.pretrain import learning_rate

    cfg = PretrainConfig(lr=1.0, warmup_steps=10, steps=110)
    assert learning_rate(cfg, 0) == pytest.approx(0.1) and learning_rate(cfg, 50) == 1.0
    cfg.lr_schedule = "cosine"
    assert learning_rate(cfg, 9) == pytest.approx(1.0)
    assert learning_rate(cfg, 60) == pytest.approx(0.55)
    assert learning_rate(cfg, 110) == pytest.approx(0.1)
    cfg.lr_schedule, cfg.decay_fraction = "wsd", 0.5
    assert learning_rate(cfg, 55) == 1.0
    assert learning_rate(cfg, 110 - 11) == pytest.approx(0.1 + 0.9 * 11 / 55)
    assert learning_rate(cfg, 110) == pytest.approx(0.1)
    cfg.lr_schedule = "linear"
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate(cfg, 0)
