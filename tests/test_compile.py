"""CompILE baseline: segmentation mechanics, the prior, the causal gate, training, files, RL."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.compile import (
    CompILE,
    CompileConfig,
    CompILEModelConfig,
    compile_terms,
    load_compile,
    matched_threshold,
    poisson_log_prior,
    sample_segmentation,
    save_compile,
    segment_masks,
    train_compile,
)
from irl_agents.episodes import pad_episodes
from irl_agents.latent_env import LatentCore, LatentVecEnv
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model, save_model
from irl_agents.raw_batch import GridRawBatch
from irl_envs.datasets import generate_dataset
from irl_envs.tasks import GRID_PRETRAIN_TASKS

D = 32  # residual width of the tiny base model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile")
    data = generate_dataset("grid", "pretrain", episodes=48, seed=0, num_envs=16, progress=False)
    data_path = data.save(root / "data.safetensors")
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=D, n_layers=2, n_heads=2,
                                   d_mlp=64)).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    save_model(base, root / "base")
    return root, data, data_path, base


def small_model(seed: int = 0, **kw) -> CompILE:
    torch.manual_seed(seed)
    cfg = dict(obs_dim=637, action_dim=4, d_model=D, layer=1, n_z=4, rank=4, n_h=8,
               enc_hidden=16, hyper_hidden=8)
    return CompILE(CompILEModelConfig(**{**cfg, **kw}))


def random_batch(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate logits ``(B, T)`` and the valid-step mask of episodes of the given lengths."""
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    return 3 * torch.randn(len(lengths), t, generator=g), mask


lengths_st = st.lists(st.integers(1, 12), min_size=1, max_size=4)


# ------------------------------------------------------------------------------- mechanics
@settings(max_examples=60, deadline=None)
@given(lengths=lengths_st, m=st.integers(1, 5), seed=st.integers(0, 10_000),
       sample=st.booleans())
def test_segment_masks_partition_valid_steps(lengths, m, seed, sample):
    logits, mask = random_batch(lengths, seed)
    torch.manual_seed(seed)
    seg = sample_segmentation(logits, mask, m, rate=3.0, sample=sample)
    masks, started = segment_masks(seg.boundaries, mask)
    assert masks.shape == (len(lengths), m, mask.shape[1])
    assert torch.all(masks >= -1e-6) and torch.all(masks <= 1 + 1e-6)
    total = masks.sum(1)
    assert torch.allclose(total[mask], torch.ones(int(mask.sum())), atol=1e-5)
    assert torch.all(masks.permute(0, 2, 1)[~mask] == 0)
    assert torch.all(started[:, 0] == 1)
    if not sample:  # hard boundaries: segment i is exactly [b_{i-1}, b_i)
        pos = seg.boundaries.argmax(-1)
        prev = torch.cat([torch.zeros_like(pos[:, :1]), pos[:, :-1]], 1)
        t = torch.arange(mask.shape[1])[None, None]
        inside = (t >= prev[..., None]) & (t < pos[..., None]) & mask[:, None]
        assert torch.equal(masks, inside.float())


@settings(max_examples=60, deadline=None)
@given(lengths=lengths_st, m=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_boundaries_respect_the_episode_and_their_order(lengths, m, seed):
    logits, mask = random_batch(lengths, seed)
    length = torch.tensor(lengths)
    slots = torch.arange(mask.shape[1] + 1)[None]
    torch.manual_seed(seed)
    soft = sample_segmentation(logits, mask, m, rate=3.0, sample=True).boundaries
    assert torch.allclose(soft.sum(-1), torch.ones(len(lengths), m), atol=1e-5)
    outside = (slots == 0) | (slots > length[:, None])  # slot L: "no further boundary"
    assert torch.all(soft.permute(0, 2, 1)[outside] == 0)
    assert torch.all(soft[:, -1].argmax(-1) == length)  # the last segment ends with the episode
    for i in range(1, m):  # mass only where the previous boundary may already have fallen
        earlier = torch.cumsum(soft[:, i - 1], -1)[:, :-1]
        reachable = torch.cat([torch.zeros(len(lengths), 1, dtype=torch.bool), earlier > 0], 1)
        assert torch.all(soft[:, i][~(reachable | (slots == length[:, None]))] == 0)
    hard = sample_segmentation(logits, mask, m, rate=3.0, sample=False).boundaries
    assert torch.all((hard == 0) | (hard == 1)) and torch.all(hard.sum(-1) == 1)
    pos = hard.argmax(-1)
    for i in range(1, m):
        before, now = pos[:, i - 1], pos[:, i]
        assert torch.all(torch.where(before < length, now > before, now == length))
    assert torch.all((pos >= 1) & (pos <= length[:, None]))


@settings(max_examples=40, deadline=None)
@given(lengths=lengths_st, rate=st.floats(0.1, 30.0))
def test_poisson_prior_is_normalised_on_its_truncated_support(lengths, rate):
    length = torch.tensor(lengths)
    t = max(lengths)
    logp = poisson_log_prior(length, t, rate)
    assert logp.shape == (len(lengths), t + 1, t + 1)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(len(lengths), t + 1), atol=1e-5)
    q = torch.arange(t + 1)[:, None]
    p = torch.arange(t + 1)[None]
    for row, n in enumerate(lengths):
        support = ((p > q) & (p <= n)) | ((q >= n) & (p == n))
        assert torch.all(torch.isfinite(logp[row][support]))
        assert torch.all(logp[row][~support] == -math.inf)
        # inside the support the ratios are those of 1 + Poisson(rate)
        for start in range(n):
            k = torch.arange(1, n - start + 1, dtype=torch.float64)
            pmf = torch.exp((k - 1) * math.log(rate) - rate - torch.lgamma(k))
            expect = (pmf / pmf.sum()).float()
            assert torch.allclose(logp[row, start, start + 1 : n + 1].exp(), expect, atol=1e-5)


def test_first_boundary_is_the_first_firing_of_the_causal_gate():
    logits, mask = random_batch([7, 4], seed=3)
    log_q = sample_segmentation(logits, mask, 3, rate=2.0, sample=False).log_q[:, 0]
    gate = torch.sigmoid(logits)
    for row, n in enumerate([7, 4]):
        survive = 1.0
        for p in range(1, n):
            assert log_q[row, p].exp() == pytest.approx(float(gate[row, p] * survive), rel=1e-4)
            survive *= float(1 - gate[row, p])
        assert log_q[row, n].exp() == pytest.approx(survive, rel=1e-4)  # no boundary at all


def test_matched_threshold_fires_as_often_as_the_segmentation():
    gates = [np.array([1.0, 0.1, 0.4, 0.2]), np.array([1.0, 0.3, 0.05])]
    assert matched_threshold(gates, 2) == pytest.approx(0.3)  # fires at 0.4 and 0.3
    assert matched_threshold(gates, 0) == 1.0
    assert matched_threshold(gates, 99) == pytest.approx(0.05)


def test_gate_is_causal_and_stepwise_equals_whole_sequence():
    model = small_model().eval()
    e = torch.randn(3, 9, D)
    whole = torch.sigmoid(model.boundary_logits(e))
    h = model.initial_history(3)
    z = torch.zeros(3, model.cfg.n_z)
    for t in range(9):  # LatentCore's order: switch_prob(e_t, h_{t-1}), then h_t
        assert torch.allclose(model.switch_prob(e[:, t], h, z), whole[:, t], atol=1e-6)
        h = model.history_step(e[:, t], h)
    e2 = e.clone()
    e2[:, 5:] = torch.randn(3, 4, D)  # the future does not change the past
    assert torch.allclose(torch.sigmoid(model.boundary_logits(e2))[:, :5], whole[:, :5])


def test_padding_does_not_change_the_posterior(tiny):
    _, data, _, base = tiny
    model = small_model().eval()
    short = pad_episodes(data, [0])
    both = pad_episodes(data, [0, int(np.argmax(data.episode_lengths))])
    n = int(short.mask.sum())
    with torch.no_grad():
        outs = []
        for batch in (short, both):
            e = base(batch.obs, return_residual_at=1).residual
            outs.append(model.posterior(e, batch.obs, batch.actions, batch.mask, 3.0,
                                        sample=False))
    a, b = outs
    assert torch.allclose(a.z[0, :n], b.z[0, :n], atol=1e-5)
    assert torch.allclose(a.gate[0, :n], b.gate[0, :n], atol=1e-5)
    assert torch.allclose(a.kl_z[0], b.kl_z[0], atol=1e-5)
    assert torch.allclose(a.segmentation.kl[0], b.segmentation.kl[0], atol=1e-4)


def test_decoder_is_the_metacontrollers():
    model = small_model(rank=4)
    e = torch.randn(2, 5, D)
    assert torch.allclose(model.decode(torch.randn(2, 5, 4))(e), e)  # identity at init
    meta = Metacontroller(MetacontrollerConfig(d_model=D, layer=1, n_z=4, hyper_hidden=8,
                                               rank=4))
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_()
    meta.hyper.load_state_dict(model.decoder.state_dict())
    z = torch.randn(2, 5, 4)
    assert torch.allclose(model.decode(z)(e), meta.decode(z)(e))


# ------------------------------------------------------------------------------- training
def test_training_lowers_the_loss_with_the_base_frozen(tiny):
    _, data, _, base = tiny
    model = small_model(seed=1)
    batch = pad_episodes(data, np.arange(32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        with torch.no_grad():
            return float(compile_terms(base, model, batch, 0.01, 0.01, 3.0, sample=False)[0])

    first = eval_loss()
    torch.manual_seed(0)
    for _ in range(40):
        loss, parts, _ = compile_terms(base, model, batch, 0.01, 0.01, 3.0)
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
    assert eval_loss() < first - 0.05
    assert all(p.grad is None for p in base.parameters())


def test_save_load_round_trip_and_errors(tiny, tmp_path):
    _, data, _, base = tiny
    model = small_model(seed=2, max_segments=3).eval()
    save_compile(model, tmp_path, extra={"note": 1})
    back = load_compile(tmp_path).eval()
    assert back.cfg == model.cfg
    assert json.loads((tmp_path / "compile.json").read_text())["versions"]["torch"]
    batch = pad_episodes(data, np.arange(4))
    with torch.no_grad():
        a = compile_terms(base, model, batch, 0.1, 0.1, 3.0, sample=False)
        b = compile_terms(base, back, batch, 0.1, 0.1, 3.0, sample=False)
    assert torch.equal(a[0], b[0]) and torch.equal(a[2].z, b[2].z)
    with pytest.raises(ValueError, match="not a readable CompILE"):
        load_compile(tmp_path / "missing")
    (tmp_path / "compile.safetensors").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="not a readable CompILE"):
        load_compile(tmp_path)


def test_train_compile_writes_outputs_and_resumes_exactly(tiny, tmp_path):
    root, _, data_path, _ = tiny
    common = dict(base=str(root / "base"), dataset=str(data_path), batch_size=8,
                  eval_episodes=8, progress=False, rank=4, n_z=4, checkpoint_every=2,
                  log_every=1)
    whole = train_compile(CompileConfig(out_dir=str(tmp_path / "whole"), steps=4, **common))
    assert whole["layer"] == 1 and whole["seconds"] >= 0 and "torch" in whole["versions"]
    assert {"f1", "precision", "recall", "action_nll", "kl_z", "kl_b"} <= set(whole["alignment"])
    assert {"f1", "switches_per_episode"} <= set(whole["segment_alignment"])
    assert {"f1", "switches_per_episode"} <= set(whole["matched_gate_alignment"])
    assert 0 < whole["alignment"]["gate_threshold"] <= 1
    for name in ("compile.safetensors", "compile.json", "summary.json", "metrics.csv"):
        assert (tmp_path / "whole" / name).is_file()
    assert load_compile(tmp_path / "whole").cfg.layer == 1
    # an "interrupted" run: stopped after its step-2 checkpoint, then restarted with steps=4
    train_compile(CompileConfig(out_dir=str(tmp_path / "cut"), steps=3, **common))
    assert json.loads((tmp_path / "cut/checkpoint/trainer.json").read_text())["step"] == 2
    resumed = train_compile(CompileConfig(out_dir=str(tmp_path / "cut"), steps=4, **common))
    assert resumed["alignment"]["action_nll"] == pytest.approx(
        whole["alignment"]["action_nll"], abs=1e-6)
    a, b = load_compile(tmp_path / "whole"), load_compile(tmp_path / "cut")
    assert all(torch.allclose(v, b.state_dict()[k], atol=1e-6) for k, v in
               a.state_dict().items())
    with pytest.raises(ValueError, match="other settings"):
        train_compile(CompileConfig(out_dir=str(tmp_path / "cut"), steps=4, beta_b=0.5,
                                    **common))
    with pytest.raises(ValueError, match="layer"):
        train_compile(CompileConfig(out_dir=str(tmp_path / "bad"), steps=1, layer=3,
                                    **{**common, "checkpoint_every": 1}))


@pytest.mark.parametrize(("field", "value"), [
    ("max_segments", 0), ("n_z", 0), ("rank", -1), ("beta_z", -0.1), ("beta_b", -1.0),
    ("poisson_rate", 0.0), ("temperature", -1.0), ("steps", -1), ("batch_size", 0),
    ("lr", 0.0), ("layer", -1), ("checkpoint_every", 0),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        CompileConfig(**{field: value})


def test_bad_model_config_names_the_field():
    with pytest.raises(ValueError, match="max_segments"):
        CompILEModelConfig(max_segments=0)
    with pytest.raises(ValueError, match="unknown field"):
        CompILEModelConfig.from_dict({"bogus": 1})


# ------------------------------------------------------------------------------- internal RL
def test_latent_env_drives_compile(tiny):
    _, _, _, base = tiny
    model = small_model(seed=3).eval()
    with torch.no_grad():  # a gate that fires now and then, so latent steps vary in length
        model.boundary[-1].bias.fill_(-1.0)
    tasks = [list(t) for t in GRID_PRETRAIN_TASKS]
    core = LatentCore(base, model, GridRawBatch(3, tasks=tasks))
    core.reset(np.arange(3), [0, 1, 2])
    assert core.observation().shape == (3, D + model.cfg.n_h)
    rng = np.random.default_rng(0)
    steps = []
    for _ in range(4):
        _, term, trunc, infos = core.step(rng.standard_normal((3, 4)).astype(np.float32))
        steps += [info["raw_steps"] for info in infos]
        if (term | trunc).all():
            break
    assert min(steps) >= 1 and np.isfinite(core.observation()).all()
    venv = LatentVecEnv(base, model, GridRawBatch(2, tasks=tasks))
    venv.seed(0)
    obs = venv.reset()
    for _ in range(3):
        obs, _, _, _ = venv.step(rng.standard_normal((2, 4)).astype(np.float32))
    assert obs.shape == (2, D + model.cfg.n_h)
