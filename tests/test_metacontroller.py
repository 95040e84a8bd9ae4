"""Metacontroller: posterior mechanics, identity at init, ELBO training, checkpoints."""

import json

import numpy as np
import pytest
import torch

from irl_agents.discovery import (
    DiscoverConfig,
    discover,
    elbo_terms,
    load_metacontroller,
    save_metacontroller,
)
from irl_agents.episodes import pad_episodes
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model, save_model
from irl_agents.models.controller import LinearController
from irl_envs.datasets import generate_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    data = generate_dataset("grid", "pretrain", episodes=48, seed=0, num_envs=16, progress=False)
    data_path = data.save(root / "data.safetensors")
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=32, n_layers=2, n_heads=2,
                                   d_mlp=64))
    save_model(base, root / "base")
    return root, data, data_path, base


def test_posterior_shapes_and_first_switch(tiny):
    _, data, _, base = tiny
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4))
    batch = pad_episodes(data, np.arange(6))
    e = base(batch.obs, return_residual_at=1).residual
    post = meta.posterior(e, batch.mask)
    b, t = batch.mask.shape
    assert post.z.shape == (b, t, 4) and post.beta.shape == (b, t) and post.kl.shape == (b, t)
    assert torch.all(post.beta[:, 0] == 1) and torch.all((post.beta >= 0) & (post.beta <= 1))
    assert torch.all(post.kl >= 0)


def test_z_holds_between_switches():
    meta = Metacontroller(MetacontrollerConfig(d_model=8, layer=0, n_z=3, rank=2))
    with torch.no_grad():  # make the switch never fire: bias -> -inf
        meta.switch[-1].bias.fill_(-50.0)
    post = meta.posterior(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool))
    assert torch.allclose(post.z, post.z[:, :1].expand_as(post.z), atol=1e-6)


def test_force_switch_sets_beta_to_one():
    meta = Metacontroller(MetacontrollerConfig(d_model=8, layer=0, n_z=3, rank=2,
                                               force_switch=True))
    post = meta.posterior(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool))
    assert torch.all(post.beta == 1)


@pytest.mark.parametrize("rank", [4, 0])
def test_decoder_starts_as_identity(rank):
    meta = Metacontroller(MetacontrollerConfig(d_model=8, layer=0, n_z=3, rank=rank))
    e = torch.randn(2, 5, 8)
    assert torch.allclose(meta.decode(torch.randn(2, 5, 3))(e), e)


@pytest.mark.parametrize("rank", [4, 0])
def test_codebook_decoder_applies_exactly_the_selected_controller(rank):
    torch.manual_seed(0)
    meta = Metacontroller(MetacontrollerConfig(d_model=8, layer=0, n_z=3, rank=rank, codebook=5))
    bank = meta.hyper.bank
    z, e = torch.randn(4, 3, requires_grad=True), torch.randn(4, 8)
    chosen = meta.hyper.select(z).argmax(-1)
    ctrl = meta.decode(z)
    assert torch.allclose(ctrl(e), bank(e, chosen), atol=1e-5)
    with torch.no_grad():  # the factors a stepping environment stores are the chosen ones
        assert torch.allclose(LinearController(ctrl.a, ctrl.b, ctrl.u)(e), ctrl(e), atol=1e-5)
    ctrl(e).square().sum().backward()  # straight-through: the code gets a gradient
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_write_layer_defaults_to_the_read_layer_and_rejects_negatives():
    assert MetacontrollerConfig(layer=2).write_boundary == 2
    assert MetacontrollerConfig(layer=2, write_layer=0).write_boundary == 0
    with pytest.raises(ValueError, match="write_layer"):
        MetacontrollerConfig(write_layer=-1)


def test_codebook_selecting_codes_select_each_controller_every_time():
    torch.manual_seed(0)
    decoder = Metacontroller(MetacontrollerConfig(d_model=16, n_z=8, rank=2, codebook=4)).hyper
    codes = decoder.selecting_codes()
    for _ in range(20):  # lstsq on this underdetermined system was not repeatable
        torch.testing.assert_close(decoder.selecting_codes(), codes)
    assert decoder.select(codes).argmax(-1).tolist() == [0, 1, 2, 3]


def test_codebook_must_not_be_negative():
    with pytest.raises(ValueError, match="codebook"):
        MetacontrollerConfig(codebook=-1)


@pytest.mark.parametrize("embedding", ["global", "per_step"])
def test_padding_does_not_change_the_posterior(tiny, embedding):
    _, data, _, base = tiny
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4,
                                               embedding=embedding))
    short = pad_episodes(data, [0])
    both = pad_episodes(data, [0, int(np.argmax(data.episode_lengths))])
    n = int(short.mask.sum())
    with torch.no_grad():
        e1 = base(short.obs, return_residual_at=1).residual
        e2 = base(both.obs, return_residual_at=1).residual
        p1 = meta.posterior(e1, short.mask, sample=False)
        p2 = meta.posterior(e2, both.mask, sample=False)
    assert torch.allclose(p1.beta[0, :n], p2.beta[0, :n], atol=1e-5)
    assert torch.allclose(p1.mu[0, :n], p2.mu[0, :n], atol=1e-5)


def test_per_step_embedding_sees_the_future_and_global_is_constant():
    e = torch.randn(1, 6, 8)
    later = e.clone()
    later[0, 5] += 1.0  # change only the last step
    mask = torch.ones(1, 6, dtype=torch.bool)
    for embedding in ("global", "per_step"):
        meta = Metacontroller(MetacontrollerConfig(d_model=8, layer=0, n_z=3, rank=2,
                                                   embedding=embedding))
        with torch.no_grad():
            s, s_later = meta.sequence_embedding(e, mask), meta.sequence_embedding(later, mask)
        assert s.shape == (1, 6, meta.cfg.n_s)
        assert not torch.allclose(s[0, 0], s_later[0, 0])  # non-causal: step 0 sees step 5
        if embedding == "global":
            assert torch.allclose(s, s[:, :1].expand_as(s))
        else:
            assert not torch.allclose(s[0, 0], s[0, 1])
    with pytest.raises(ValueError, match="embedding"):
        MetacontrollerConfig(embedding="causal")


def test_elbo_training_lowers_the_loss(tiny):
    _, data, _, base = tiny
    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4))
    opt = torch.optim.Adam(meta.parameters(), lr=3e-3)
    batch = pad_episodes(data, np.arange(32))
    first = None
    for _ in range(60):
        loss, parts, _ = elbo_terms(base, meta, batch, alpha=0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < first - 0.05
    assert all(p.grad is None for p in base.parameters())  # the base stayed frozen


def test_checkpoint_round_trip_and_errors(tmp_path):
    meta = Metacontroller(MetacontrollerConfig(d_model=8, layer=0, n_z=3, rank=2))
    save_metacontroller(meta, tmp_path)
    back = load_metacontroller(tmp_path)
    for k, v in meta.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    (tmp_path / "metacontroller.safetensors").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="not a readable metacontroller"):
        load_metacontroller(tmp_path)


def test_discover_end_to_end(tiny, tmp_path):
    root, _, data_path, _ = tiny
    cfg = DiscoverConfig(base=str(root / "base"), dataset=str(data_path), out_dir=str(tmp_path),
                         steps=4, batch_size=8, eval_episodes=8, progress=False, rank=4, n_z=4)
    summary = discover(cfg)
    assert set(summary["alignment"]) >= {"precision", "recall", "f1", "quasi_binary"}
    assert json.loads((tmp_path / "summary.json").read_text())["layer"] == 1
    assert load_metacontroller(tmp_path).cfg.layer == 1
    cfg.cotrain, cfg.out_dir = "pretrained", str(tmp_path / "co")
    discover(cfg)
    assert (tmp_path / "co" / "base" / "model.safetensors").is_file()


@pytest.mark.parametrize("cotrain", ["frozen", "pretrained"])
def test_discover_resumes_where_an_interrupted_run_stopped(tiny, tmp_path, cotrain):
    root, _, data_path, _ = tiny
    common = dict(base=str(root / "base"), dataset=str(data_path), batch_size=8, eval_episodes=8,
                  progress=False, rank=4, n_z=4, checkpoint_every=2, cotrain=cotrain)
    whole = discover(DiscoverConfig(out_dir=str(tmp_path / "whole"), steps=4, **common))
    # an "interrupted" run: stopped after its step-2 checkpoint, then restarted with steps=4
    discover(DiscoverConfig(out_dir=str(tmp_path / "cut"), steps=3, **common))
    assert json.loads((tmp_path / "cut/checkpoint/trainer.json").read_text())["step"] == 2
    resumed = discover(DiscoverConfig(out_dir=str(tmp_path / "cut"), steps=4, **common))
    assert resumed["alignment"]["action_nll"] == pytest.approx(
        whole["alignment"]["action_nll"], abs=1e-5)
    with pytest.raises(ValueError, match="other settings"):
        discover(DiscoverConfig(out_dir=str(tmp_path / "cut"), steps=4, alpha=0.5, **common))


def test_split_elbo_reads_the_unsteered_residual_and_writes_below(tiny):
    """write_layer: the posterior sees the residual at ``layer`` of the *unsteered* model and
    the decoded controller acts at ``write_layer``."""
    _, data, _, base = tiny
    torch.manual_seed(0)
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4,
                                               write_layer=0))
    for p in meta.hyper.parameters():  # a decoder that is not the identity
        torch.nn.init.normal_(p, std=0.3)
    batch = pad_episodes(data, np.arange(6))
    loss, parts, post = elbo_terms(base, meta, batch, alpha=0.0, sample=False)
    with torch.no_grad():
        e1 = base(batch.obs, return_residual_at=1).residual  # no controller anywhere
        assert torch.allclose(base.prefix(batch.obs, 1), e1, atol=1e-6)
        expected = meta.posterior(e1, batch.mask, sample=False)
        assert torch.allclose(post.z, expected.z, atol=1e-6)
        nll, _ = base.loss(batch.obs, batch.actions, batch.mask, controller=lambda e: (
            meta.decode(expected.z)(e)), layer=0)
    assert float(parts["action_nll"]) == pytest.approx(float(nll), abs=1e-5)


def test_discover_write_layer_saves_a_split_metacontroller_and_old_checkpoints_resume(
        tiny, tmp_path):
    root, _, data_path, _ = tiny
    common = dict(base=str(root / "base"), dataset=str(data_path), batch_size=8, eval_episodes=8,
                  progress=False, rank=4, n_z=4, layer=1, checkpoint_every=2)
    discover(DiscoverConfig(out_dir=str(tmp_path / "split"), steps=2, write_layer=0, **common))
    meta = load_metacontroller(tmp_path / "split")
    assert (meta.cfg.layer, meta.cfg.write_boundary) == (1, 0)
    same = DiscoverConfig(out_dir=str(tmp_path / "same"), steps=2, write_layer=1, **common)
    discover(same)
    assert load_metacontroller(tmp_path / "same").cfg.write_layer is None  # the paper's
    # a checkpoint written before write_layer existed resumes under the default
    discover(DiscoverConfig(out_dir=str(tmp_path / "old"), steps=3, **common))
    for marker in (tmp_path / "old/checkpoint/trainer.json", tmp_path / "old/run.json"):
        saved = json.loads(marker.read_text())
        del saved["config"]["write_layer"]
        marker.write_text(json.dumps(saved))
    discover(DiscoverConfig(out_dir=str(tmp_path / "old"), steps=4, **common))
    with pytest.raises(ValueError, match="write_layer"):
        DiscoverConfig(write_layer=-1)
