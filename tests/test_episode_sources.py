"""Tests of the pretraining data sources: the expert stream and the dataset file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from irl_agents.episode_sources import ExpertStream, FileEpisodes, stream_seed
from irl_agents.models import ModelConfig, load_model
from irl_agents.precision import autocast_dtype
from irl_agents.pretrain import PretrainConfig, pretrain
from irl_envs.datasets import generate_dataset


def _stream(**kw) -> ExpertStream:
    return ExpertStream("grid", **({"batch_size": 8, "seed": 3, "val_episodes": 16,
                                    "chunk_episodes": 32, "num_envs": 8} | kw))


def test_stream_batches_are_a_pure_function_of_the_step():
    a, b = _stream(), _stream()
    for step in (5, 0, 4, 5):  # out of order, across chunks and back
        x, y = a.train_batch(step), b.train_batch(step)
        assert torch.equal(x.obs, y.obs) and torch.equal(x.actions, y.actions)
    assert not torch.equal(a.train_batch(0).obs[:, 0], a.train_batch(1).obs[:, 0])
    assert not torch.equal(_stream(seed=4).train_batch(0).obs[:, 0], a.train_batch(0).obs[:, 0])


def test_stream_uses_each_episode_of_a_chunk_once():
    s = _stream()
    firsts = torch.cat([s.train_batch(step).obs[:, 0] for step in range(s.per_chunk)])
    chunk = generate_dataset("grid", "pretrain", 32, stream_seed(3, 0), num_envs=8,
                             progress=False)
    want = chunk.observations[chunk.episode_starts].astype(np.float32)
    assert sorted(map(tuple, firsts.tolist())) == sorted(map(tuple, want.tolist()))


def test_stream_held_out_set_is_fixed_and_apart():
    s = _stream()
    val = torch.cat([b.obs[:, 0] for b in s.val_batches()])
    assert len(val) == 16
    again = torch.cat([b.obs[:, 0] for b in _stream().val_batches()])
    assert torch.equal(val, again)
    train = {tuple(r) for step in range(2 * s.per_chunk) for r in
             s.train_batch(step).obs[:, 0].tolist()}
    assert not train & {tuple(r) for r in val.tolist()}
    seeds = [stream_seed(3, None)] + [stream_seed(3, c) for c in range(100)]
    gaps = np.diff(np.sort(np.array(seeds, dtype=np.uint64)).astype(object))
    assert min(gaps) > 256  # no two chunks' sub-env seeds overlap


def test_stream_rejects_chunks_smaller_than_a_batch():
    with pytest.raises(ValueError, match="chunk_episodes"):
        _stream(chunk_episodes=4)


def test_file_episodes_hold_out_a_fraction(tmp_path):
    path = tmp_path / "d.safetensors"
    generate_dataset("grid", "pretrain", 40, seed=0, num_envs=8, progress=False).save(path)
    src = FileEpisodes(str(path), batch_size=8, seed=0, val_fraction=0.25, val_episodes=100)
    assert len(src.val_idx) == 10 and len(src.train_idx) == 30
    assert not set(src.val_idx) & set(src.train_idx)
    assert src.spec.obs_shape == [13, 7, 7] and src.spec.binary_obs and src.spec.discrete


def _stream_cfg(out, steps, **kw) -> PretrainConfig:
    return PretrainConfig(stream="grid", stream_chunk=16, out_dir=str(out), steps=steps,
                          model=ModelConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=16,
                                            obs_encoder="grid_objects", conv_channels=4),
                          batch_size=4, val_episodes=8, log_every=2, eval_every=3,
                          checkpoint_every=3, warmup_steps=2, progress=False, **kw)


def test_streaming_pretrain_resumes_exactly_and_keeps_milestones(tmp_path):
    straight = pretrain(_stream_cfg(tmp_path / "a", 6, milestones=[2, 5]))
    pretrain(_stream_cfg(tmp_path / "b", 3, milestones=[2, 5]))
    resumed = pretrain(_stream_cfg(tmp_path / "b", 6, milestones=[2, 5]))
    sa, sb = load_model(straight).state_dict(), load_model(resumed).state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], msg=k)
    kept = sorted(p.name for p in (tmp_path / "b" / "milestones").iterdir())
    assert kept == ["step-00000002", "step-00000005"]
    extra = json.loads((tmp_path / "b" / "milestones" / "step-00000005" / "config.json")
                       .read_text())["extra"]
    assert extra["step"] == 5 and extra["tokens_seen"] > 0 and extra["train_seconds"] > 0
    assert extra["val_action_nll"] > 0
    final = json.loads((tmp_path / "a" / "model" / "config.json").read_text())["extra"]
    assert final["dataset"] == "stream:grid" and final["tokens_seen"] > extra["tokens_seen"]


def test_pretrain_needs_exactly_one_data_source(tmp_path):
    with pytest.raises(ValueError, match="exactly one of dataset"):
        pretrain(PretrainConfig(out_dir=str(tmp_path), progress=False))
    with pytest.raises(ValueError, match="exactly one of dataset"):
        pretrain(PretrainConfig(dataset="x", stream="grid", out_dir=str(tmp_path),
                                progress=False))


def test_precision_settings():
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert autocast_dtype("auto", "cpu") in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="precision must be"):
        autocast_dtype("fp16", "cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_pretrain_precisions_learn(tmp_path, precision):
    cfg = _stream_cfg(tmp_path, 30, precision=precision, lr=3e-3)
    cfg.eval_every, cfg.log_every = 30, 5
    model = load_model(pretrain(cfg))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    nll = [float(r.split(",")[3]) for r in lines if ",losses/action_nll," in r]
    assert nll[-1] < nll[0]


def test_stream_workers_give_the_same_batches():
    ahead = _stream(workers=1)
    try:
        for step in (0, 5, 9):
            x, y = ahead.train_batch(step), _stream().train_batch(step)
            assert torch.equal(x.obs, y.obs) and torch.equal(x.actions, y.actions)
    finally:
        ahead.close()


def test_relabelled_data_keeps_the_noisy_states_and_labels_them_with_the_clean_moves():
    noisy = generate_dataset("grid", "pretrain", 24, seed=5, noise=0.5, num_envs=8,
                             progress=False)
    relabelled = generate_dataset("grid", "pretrain", 24, seed=5, noise=0.5, num_envs=8,
                                  progress=False, relabel=True)
    clean = generate_dataset("grid", "pretrain", 24, seed=5, num_envs=8, progress=False)
    assert np.array_equal(noisy.observations, relabelled.observations)  # same trajectories
    assert noisy.episode_lengths.mean() > clean.episode_lengths.mean()
    changed = noisy.actions != relabelled.actions
    assert 0.1 < changed.mean() < 0.6 and relabelled.meta["relabelled"]

    def optimal(data) -> np.ndarray:  # does each recorded move shorten the way to the target?
        from irl_envs import grid_logic

        cells, agent = grid_logic.layout_from_obs(data.observations, 7)
        target = grid_logic.colour_cell(cells, data.targets)
        cost = grid_logic.action_costs(cells, agent, target, 7)
        return cost[np.arange(len(cost)), data.actions] == cost.min(1)

    assert optimal(relabelled).all() and not optimal(noisy).all()


def test_stream_relabel_keeps_a_clean_held_out_set():
    relabelled, clean = _stream(relabel=True, noise=0.5), _stream()
    for a, b in zip(relabelled.val_batches(), clean.val_batches(), strict=True):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.actions, b.actions)
    assert not torch.equal(relabelled.train_batch(0).obs[:, 0], clean.train_batch(0).obs[:, 0])


def test_ant_relabelled_data_labels_the_noisy_states_with_the_policy_mean():
    from irl_envs.experts.ant_expert import AntExpert

    noisy = generate_dataset("ant", "pretrain", 2, seed=3, noise=1.0, num_envs=2, progress=False)
    relabelled = generate_dataset("ant", "pretrain", 2, seed=3, noise=1.0, num_envs=2,
                                  progress=False, relabel=True)
    assert np.array_equal(noisy.observations, relabelled.observations)  # same trajectories
    assert not np.allclose(noisy.actions, relabelled.actions)
    # each label is the noise-free expert's action in the state it was recorded in
    mean = AntExpert().act_obs(relabelled.observations, relabelled.targets)
    np.testing.assert_allclose(relabelled.actions, mean, atol=1e-5)
