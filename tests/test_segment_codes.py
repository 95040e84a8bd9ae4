"""Segment-end codes: segmentation by the switch, k-means, labels, the codebook metacontroller."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from irl_agents.discovery import load_metacontroller, save_metacontroller
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig, codebook_metacontroller
from irl_agents.models import ModelConfig, build_model, save_model
from irl_agents.models.controller import ControllerBank
from irl_agents.segment_codes import (
    SegmentCodesConfig,
    assign,
    contingency,
    kmeans,
    segment_codes,
    segment_ends,
    step_labels,
    within_share,
)
from irl_envs.datasets import generate_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("segcodes")
    data = generate_dataset("grid", "pretrain", episodes=24, seed=0, num_envs=12, progress=False)
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=32, n_layers=2, n_heads=2,
                                   d_mlp=64)).eval()
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4)).eval()
    return root, data, base, meta


def _with_switch_bias(meta: Metacontroller, bias: float) -> Metacontroller:
    out = Metacontroller(meta.cfg).eval()
    out.load_state_dict(meta.state_dict())
    with torch.no_grad():
        out.switch[-1].bias.fill_(bias)
        out.switch[-1].weight.zero_()
    return out


def test_no_switch_gives_one_segment_ending_in_the_final_observation(tiny):
    _, data, base, meta = tiny
    ends, spans = segment_ends(base, _with_switch_bias(meta, -50.0), data, threshold=0.5)
    assert len(spans) == data.num_episodes
    np.testing.assert_array_equal(spans[:, 1], 0)
    np.testing.assert_array_equal(spans[:, 2], data.episode_lengths)
    final = torch.as_tensor(data.final_observations[:1], dtype=torch.float32)
    expected = base(final[:, None], return_residual_at=0).residual[0, 0]
    torch.testing.assert_close(ends[0], expected)


def test_always_switching_gives_one_step_segments_ending_in_the_next_observation(tiny):
    _, data, base, meta = tiny
    ends, spans = segment_ends(base, _with_switch_bias(meta, 50.0), data, threshold=0.5)
    assert len(spans) == data.num_steps
    np.testing.assert_array_equal(spans[:, 2] - spans[:, 1], 1)
    second = torch.as_tensor(data.observations[1:2], dtype=torch.float32)
    torch.testing.assert_close(ends[0], base(second[None], return_residual_at=0).residual[0, 0])


def test_step_labels_cover_every_step_with_its_segment_group(tiny):
    _, data, base, meta = tiny
    _, spans = segment_ends(base, _with_switch_bias(meta, 0.3), data, threshold=0.5)
    groups = np.arange(len(spans)) % 3
    labels = step_labels(spans, groups, data)
    assert (labels >= 0).all()
    episode, a, b = spans[-1]
    first = data.episode_starts[episode]
    assert (labels[first + a : first + b] == groups[-1]).all()


@settings(max_examples=20, deadline=None)
@given(k=st.integers(2, 5), seed=st.integers(0, 1000))
def test_kmeans_recovers_well_separated_blobs(k, seed):
    gen = torch.Generator().manual_seed(seed)
    # blobs 30 noise widths apart along every feature (k-means standardises features)
    centres = torch.randn(k, 3, generator=gen) + 30.0 * torch.arange(k)[:, None]
    truth = torch.arange(k).repeat_interleave(20)
    x = centres[truth] + torch.randn(len(truth), 3, generator=gen)
    fitted, scale = kmeans(x, k, seed=seed, restarts=10)
    found = assign(x, fitted, scale)
    others = (x[torch.randperm(len(x), generator=gen)[:k]] - scale[0]) / scale[1]
    assert within_share(x, fitted, scale) <= within_share(x, others, scale)
    # the same partition up to renaming: every true blob maps to one group, all distinct
    mapping = {int(t): int(f) for t, f in zip(truth, found, strict=True)}
    assert len(set(mapping.values())) == k
    assert all(mapping[int(t)] == int(f) for t, f in zip(truth, found, strict=True))


def test_kmeans_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        kmeans(torch.randn(3, 2), 4, seed=0)


@pytest.mark.parametrize("bad", [{"k": 0}, {"threshold": 0.0}, {"threshold": 1.5},
                                 {"cluster_episodes": 0}, {"controller_layer": -1}])
def test_config_rejects_bad_values_by_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SegmentCodesConfig(**bad)


def test_contingency_counts_and_ignores_unlabelled_steps():
    table = contingency(np.array([0, 0, 1, 1, 1, -1]), np.array([2, 2, 0, -1, 0, 1]), k=2)
    np.testing.assert_array_equal(table, [[0, 0, 2], [2, 0, 0]])


def test_codebook_metacontroller_keeps_the_switch_and_uses_the_bank(tiny):
    _, _, _, meta = tiny
    bank = ControllerBank(3, 32, rank=4)
    with torch.no_grad():
        bank.a.normal_()
    built = codebook_metacontroller(meta, bank)
    e, z = torch.randn(5, 32), torch.tensor([[0.0, 2.0, 1.0, 9.0]])  # z_4 is not a choice
    h = torch.zeros(5, meta.cfg.n_h)
    torch.testing.assert_close(built.switch_prob(e, h, z.expand(5, 4)),
                               meta.switch_prob(e, h, z.expand(5, 4)))
    torch.testing.assert_close(built.decode(z.expand(5, 4))(e), bank(e, 1))
    with pytest.raises(ValueError, match="n_z"):
        codebook_metacontroller(meta, ControllerBank(5, 32, rank=4))


@pytest.mark.parametrize("controller_layer", [None, 0])
def test_segment_codes_writes_a_loadable_codebook_metacontroller(tiny, controller_layer):
    root, data, base, meta = tiny
    paths = {name: root / f"{name}-{controller_layer}" for name in ("base", "meta", "out")}
    save_model(base, paths["base"])
    save_metacontroller(_with_switch_bias(meta, 0.0), paths["meta"])
    summary = segment_codes(SegmentCodesConfig(
        base=str(paths["base"]), meta=str(paths["meta"]), dataset=str(data.save(root / "d")),
        out_dir=str(paths["out"]), k=3, controller_steps=2, controller_layer=controller_layer,
        progress=False))
    loaded = load_metacontroller(paths["out"])
    assert loaded.cfg.codebook == 3 and loaded.hyper.bank.num_controllers == 3
    # the gate still reads the metacontroller's boundary; the controllers write where trained
    assert loaded.cfg.layer == meta.cfg.layer == 1
    assert loaded.cfg.write_boundary == (1 if controller_layer is None else 0)
    saved = json.loads((paths["out"] / "summary.json").read_text())
    assert saved["group_sizes"] == summary["group_sizes"] and sum(summary["group_sizes"]) > 0
    assert 0.0 < summary["purity"] <= 1.0
    assert 0 <= summary["unlabelled_episodes"] < data.num_episodes
