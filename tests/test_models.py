"""Tests of irl_agents.models: step == forward, controllers, padding, loss, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from irl_agents.models import (
    BaseModel,
    ControllerBank,
    LinearController,
    ModelConfig,
    SSMState,
    TransformerState,
    build_model,
    linear_scan,
    load_model,
    read_checkpoint_meta,
    save_model,
)

OBS_DIM, ACT_DIM, D, L = 11, 3, 32, 4
ATOL = 2e-5

CASES = [
    pytest.param("transformer", True, id="transformer-discrete"),
    pytest.param("transformer", False, id="transformer-continuous"),
    pytest.param("ssm", True, id="ssm-discrete"),
    pytest.param("ssm", False, id="ssm-continuous"),
]


def make_model(kind: str, discrete: bool, seed: int = 0, **kw) -> BaseModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        kind=kind,
        obs_dim=OBS_DIM,
        action_dim=ACT_DIM,
        discrete=discrete,
        d_model=D,
        n_layers=L,
        n_heads=4,
        d_mlp=48,
        rel_pos_buckets=8,
        rel_pos_max_distance=16,
        obs_likelihood="bernoulli" if discrete else "gaussian",
        **kw,
    )
    model = build_model(cfg).eval()
    # non-trivial weights for the position biases / gaussian head (zero at init)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_bias" in name or "log_std" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def make_obs(b: int, t: int, discrete: bool, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if discrete:
        return (torch.rand(b, t, OBS_DIM, generator=g) < 0.3).to(torch.uint8)
    return torch.randn(b, t, OBS_DIM, generator=g)


def action_params(out) -> torch.Tensor:
    if out.logits is not None:
        return out.logits
    return torch.cat([out.mean, out.log_std], dim=-1)


def init_state(model: BaseModel, b: int):
    # tiny KV capacity so that the cache has to grow during the test
    if isinstance(model.initial_state(1), TransformerState):
        return model.initial_state(b, capacity=3)
    return model.initial_state(b)


def low_rank_controller(b: int, t: int, rank: int = 4, seed: int = 2) -> LinearController:
    g = torch.Generator().manual_seed(seed)
    return LinearController(
        0.2 * torch.randn(b, t, D, rank, generator=g), 0.2 * torch.randn(b, t, D, rank, generator=g)
    )


# ---------------------------------------------------------------------------------- step == forward
@pytest.mark.parametrize("kind,discrete", CASES)
@pytest.mark.parametrize("control", ["none", "low_rank", "full"])
def test_step_matches_forward(kind, discrete, control):
    model = make_model(kind, discrete)
    b, t, layer = 3, 30, L // 2
    obs = make_obs(b, t, discrete)
    ctrl = None
    if control == "low_rank":
        ctrl = low_rank_controller(b, t)
    elif control == "full":
        ctrl = LinearController(u=0.1 * torch.randn(b, t, D, D))
    with torch.no_grad():
        full = model(obs, controller=ctrl, layer=layer, return_residual_at=[0, layer, L])
        state = init_state(model, b)
        for i in range(t):
            step_ctrl = ctrl.at(i) if ctrl is not None else None
            out, state = model.step(
                obs[:, i],
                state,
                controller=step_ctrl,
                layer=layer,
                return_residual_at=[0, layer, L],
            )
            torch.testing.assert_close(
                action_params(out), action_params(full)[:, i], atol=ATOL, rtol=1e-4
            )
            torch.testing.assert_close(out.obs_pred, full.obs_pred[:, i], atol=ATOL, rtol=1e-4)
            for j in (0, layer, L):
                torch.testing.assert_close(
                    out.residuals[j], full.residuals[j][:, i], atol=ATOL, rtol=1e-4
                )


@pytest.mark.parametrize("kind,discrete", CASES)
def test_step_lower_upper_match_forward(kind, discrete):
    model = make_model(kind, discrete)
    b, t, layer = 2, 25, 1
    obs = make_obs(b, t, discrete)
    ctrl = low_rank_controller(b, t)
    with torch.no_grad():
        full = model(obs, controller=ctrl, layer=layer, return_residual_at=layer)
        plain = model(obs, return_residual_at=layer)
        state = init_state(model, b)
        for i in range(t):
            e, state = model.step_lower(obs[:, i], state, layer)
            # e is read before the controller: depends only on the past (controlled) steps
            e_ctrl = ctrl.at(i)(e)
            torch.testing.assert_close(e_ctrl, full.residual[:, i], atol=ATOL, rtol=1e-4)
            out, state = model.step_upper(e_ctrl, state, layer)
            torch.testing.assert_close(
                action_params(out), action_params(full)[:, i], atol=ATOL, rtol=1e-4
            )
        # sanity: the controller did change something
        assert not torch.allclose(action_params(full), action_params(plain), atol=1e-4)


@pytest.mark.parametrize("kind", ["transformer", "ssm"])
def test_reset_rows_and_per_row_positions(kind):
    """Rows reset at different times behave like fresh episodes (latent env usage)."""
    model = make_model(kind, True)
    seq_a = make_obs(1, 12, True, seed=3)  # row 0 first episode
    seq_b = make_obs(1, 7, True, seed=4)  # row 0 second episode
    seq_c = make_obs(1, 19, True, seed=5)  # row 1 single episode
    with torch.no_grad():
        ref_b = model(seq_b).logits[0]
        ref_c = model(seq_c).logits[0]
        state = init_state(model, 2)
        for i in range(12):
            out, state = model.step(torch.cat([seq_a[:, i], seq_c[:, i]]), state)
        state = model.reset_state_rows(state, torch.tensor([True, False]))
        for i in range(7):
            out, state = model.step(torch.cat([seq_b[:, i], seq_c[:, 12 + i]]), state)
            torch.testing.assert_close(out.logits[0], ref_b[i], atol=ATOL, rtol=1e-4)
            torch.testing.assert_close(out.logits[1], ref_c[12 + i], atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("kind", ["transformer", "ssm"])
def test_state_clone_and_select(kind):
    model = make_model(kind, True)
    obs = make_obs(3, 6, True)
    with torch.no_grad():
        state = model.initial_state(3)
        for i in range(5):
            _, state = model.step(obs[:, i], state)
        snap = state.clone()
        sub = state.select(torch.tensor([2, 0]))
        assert sub.batch_size == 2
        out_full, state = model.step(obs[:, 5], state)
        out_snap, _ = model.step(obs[:, 5], snap)
        out_sub, _ = model.step(obs[[2, 0], 5], sub)
    torch.testing.assert_close(out_full.logits, out_snap.logits)
    torch.testing.assert_close(out_sub.logits, out_full.logits[[2, 0]], atol=ATOL, rtol=1e-4)
    assert isinstance(state, SSMState if kind == "ssm" else TransformerState)


@pytest.mark.parametrize("kind", ["transformer", "ssm"])
def test_step_with_gradients_matches_forward(kind):
    """Stepping with autograd on (no in-place cache writes) gives the forward's gradients."""
    model = make_model(kind, True)
    b, t, layer = 2, 8, 2
    obs = make_obs(b, t, True)
    fa = torch.nn.Parameter(0.1 * torch.randn(b, t, D, 2))
    fb = 0.1 * torch.randn(b, t, D, 2)
    ctrl = LinearController(fa, fb)
    model(obs, controller=ctrl, layer=layer).logits.sum().backward()
    grad_full = fa.grad.clone()
    fa.grad = None
    state = model.initial_state(b)
    total = 0.0
    for i in range(t):
        out, state = model.step(obs[:, i], state, controller=ctrl.at(i), layer=layer)
        total = total + out.logits.sum()
    total.backward()
    torch.testing.assert_close(fa.grad, grad_full, atol=1e-4, rtol=1e-3)


# ---------------------------------------------------------------------------------- controllers
@pytest.mark.parametrize("kind,discrete", CASES)
def test_zero_controller_is_identity(kind, discrete):
    model = make_model(kind, discrete)
    b, t = 2, 10
    obs = make_obs(b, t, discrete)
    zero_lr = LinearController(torch.zeros(b, t, D, 4), torch.randn(b, t, D, 4))
    zero_full = LinearController(u=torch.zeros(b, t, D, D))
    bank = ControllerBank(3, D, rank=4)  # A = 0 at init
    idx = torch.randint(0, 3, (b, t))
    with torch.no_grad():
        ref = model(obs)
        for ctrl in (zero_lr, zero_full, bank.controller(idx), bank.controller(1)):
            for layer in (0, L // 2, L):
                out = model(obs, controller=ctrl, layer=layer)
                assert torch.equal(action_params(out), action_params(ref))
                assert torch.equal(out.obs_pred, ref.obs_pred)


def test_controller_bank_selects_per_step():
    bank = ControllerBank(3, D, rank=2)
    full_bank = ControllerBank(3, D, rank=None)
    with torch.no_grad():
        bank.a.normal_()
        full_bank.u.normal_()
    e = torch.randn(2, 5, D)
    idx = torch.tensor([[0, 1, 2, 1, 0], [2, 2, 0, 1, 1]])
    for bk in (bank, full_bank):
        out = bk(e, idx)
        for i in range(2):
            for j in range(5):
                k = int(idx[i, j])
                u = bk.u[k] if bk.rank is None else bk.a[k] @ bk.b[k].T
                torch.testing.assert_close(out[i, j], e[i, j] + u @ e[i, j])
    # step-shaped index (B,) on (B, d) residuals
    torch.testing.assert_close(bank(e[:, 0], idx[:, 0]), bank(e, idx)[:, 0])


def test_controller_bank_trains():
    """A bank starts as identity but receives gradients (LoRA-style init)."""
    model = make_model("transformer", True)
    for p in model.parameters():
        p.requires_grad_(False)
    bank = ControllerBank(2, D, rank=4)
    obs = make_obs(2, 6, True)
    model(obs, controller=bank.controller(torch.zeros(2, 6, dtype=torch.long)), layer=2).logits[
        ..., 0
    ].sum().backward()
    assert bank.a.grad is not None and bank.a.grad.abs().sum() > 0


def test_controller_errors():
    model = make_model("transformer", True)
    obs = make_obs(1, 4, True)
    with pytest.raises(ValueError, match="layer"):
        model(obs, controller=lambda e: e)
    with pytest.raises(ValueError, match="layer"):
        model(obs, controller=lambda e: e, layer=L + 1)
    with pytest.raises(ValueError, match="controller must return"):
        model(obs, controller=lambda e: e[..., :3], layer=1)
    with pytest.raises(ValueError, match="return_residual_at"):
        model(obs, return_residual_at=-1)
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 4, OBS_DIM + 1))
    with pytest.raises(ValueError, match="batch"):
        model.step(torch.zeros(2, OBS_DIM), model.initial_state(3))
    with pytest.raises(TypeError):
        model.step(torch.zeros(3, OBS_DIM), make_model("ssm", True).initial_state(3))
    with pytest.raises(ValueError):
        LinearController(torch.zeros(2, D, 3))


# ---------------------------------------------------------------------------------- residuals
@pytest.mark.parametrize("kind,discrete", CASES)
def test_residual_every_boundary(kind, discrete):
    model = make_model(kind, discrete)
    b, t = 2, 7
    obs = make_obs(b, t, discrete)
    with torch.no_grad():
        layers = model.residual_stream(obs)
        assert len(layers) == L + 1
        for j in range(L + 1):
            out = model(obs, return_residual_at=j)
            assert out.residual.shape == (b, t, D)
            torch.testing.assert_close(out.residual, layers[j])
        torch.testing.assert_close(layers[0], model.embed(obs.float()))
        # controller at a boundary: returned residual is the value after the controller
        ctrl = LinearController(u=0.5 * torch.eye(D).expand(b, t, D, D))
        out = model(obs, controller=ctrl, layer=2, return_residual_at=2)
        torch.testing.assert_close(out.residual, 1.5 * layers[2])


# ---------------------------------------------------------------------------------- padding
@pytest.mark.parametrize("kind,discrete", CASES)
def test_padding_does_not_change_valid_outputs(kind, discrete):
    model = make_model(kind, discrete)
    obs = make_obs(2, 20, discrete).float()
    lengths = [13, 20]
    garbage = obs.clone()
    garbage[0, 13:] = 5.0 * torch.randn(7, OBS_DIM)
    with torch.no_grad():
        a = model(obs, return_residual_at=2)
        b = model(garbage, return_residual_at=2)
        alone = model(obs[:1, :13])
    n = lengths[0]
    torch.testing.assert_close(action_params(a)[0, :n], action_params(b)[0, :n])
    torch.testing.assert_close(a.residual[0, :n], b.residual[0, :n])
    torch.testing.assert_close(action_params(a)[1], action_params(b)[1])
    torch.testing.assert_close(
        action_params(alone)[0], action_params(a)[0, :n], atol=ATOL, rtol=1e-4
    )


@pytest.mark.parametrize("kind,discrete", CASES)
def test_loss_ignores_padding(kind, discrete):
    model = make_model(kind, discrete)
    obs = make_obs(2, 15, discrete).float()
    mask = torch.ones(2, 15, dtype=torch.bool)
    mask[0, 9:] = False
    if discrete:
        acts = torch.randint(0, ACT_DIM, (2, 15))
        acts_pad = acts.clone()
        acts_pad[0, 9:] = -1  # invalid labels in padding must not matter
    else:
        acts = torch.randn(2, 15, ACT_DIM)
        acts_pad = acts.clone()
        acts_pad[0, 9:] = float("nan")
    obs_pad = obs.clone()
    obs_pad[0, 9:] = float("nan")  # even NaN padding is sanitised by loss()
    with torch.no_grad():
        l1, p1 = model.loss(obs, acts, mask, obs_weight=0.5)
        l2, p2 = model.loss(obs_pad, acts_pad, mask, obs_weight=0.5)
        # reference: per-episode sums over valid steps
        la, pa = model.loss(obs[:1, :9], acts[:1, :9], mask[:1, :9], obs_weight=0.5)
        lb, pb = model.loss(obs[1:], acts[1:], mask[1:], obs_weight=0.5)
    torch.testing.assert_close(l1, l2)
    assert torch.isfinite(l1)
    ref_act = (pa["action_nll"] * 9 + pb["action_nll"] * 15) / 24
    ref_obs = (pa["obs_nll"] * 8 + pb["obs_nll"] * 14) / 22  # last valid step has no target
    torch.testing.assert_close(p1["action_nll"], ref_act, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(p1["obs_nll"], ref_obs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(p1["total"], p1["action_nll"] + 0.5 * p1["obs_nll"])


# ---------------------------------------------------------------------------------- training
@pytest.mark.parametrize("kind,discrete", CASES)
def test_tiny_pretraining_lowers_loss(kind, discrete):
    torch.manual_seed(0)
    model = make_model(kind, discrete).train()
    b, t = 16, 12
    obs = make_obs(b, t, discrete, seed=7).float()
    w = torch.randn(OBS_DIM, ACT_DIM, generator=torch.Generator().manual_seed(8))
    acts = (obs @ w).argmax(-1) if discrete else torch.tanh(obs @ w)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[::2, 8:] = False
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.03)
    losses = []
    for _ in range(50):
        total, parts = model.loss(obs, acts, mask, obs_weight=0.1)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0], losses[::10]
    assert parts["obs_nll"] > 0


def test_linear_scan_matches_loop_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    for t in (1, 2, 5, 33):
        a = torch.rand(2, t, 3, generator=g, dtype=torch.float64)
        b = torch.randn(2, t, 3, generator=g, dtype=torch.float64)
        h, ref = torch.zeros(2, 3, dtype=torch.float64), []
        for i in range(t):
            h = a[:, i] * h + b[:, i]
            ref.append(h)
        torch.testing.assert_close(linear_scan(a, b), torch.stack(ref, 1))
        a.requires_grad_()
        b.requires_grad_()
        assert torch.autograd.gradcheck(linear_scan, (a, b))


@pytest.mark.parametrize("kind", ["transformer", "ssm"])
def test_longer_sequences_than_seen(kind):
    """No maximum length: positions beyond the last relative bucket are fine."""
    model = make_model(kind, True)
    obs = make_obs(1, 150, True)
    with torch.no_grad():
        out = model(obs, return_residual_at=L)
        assert out.logits.shape == (1, 150, ACT_DIM)
        assert torch.isfinite(out.logits).all()
        state = model.initial_state(1, **({"capacity": 4} if kind == "transformer" else {}))
        for i in range(150):
            step_out, state = model.step(obs[:, i], state)
        torch.testing.assert_close(step_out.logits, out.logits[:, -1], atol=ATOL, rtol=1e-4)


def test_action_distribution_types():
    for discrete in (True, False):
        model = make_model("ssm", discrete)
        out = model(make_obs(2, 4, discrete))
        dist = model.action_distribution(out)
        sample = dist.sample()
        assert sample.shape == ((2, 4) if discrete else (2, 4, ACT_DIM))
        assert dist.log_prob(sample).shape == (2, 4)
        if not discrete:
            cfg = model.config
            assert (out.log_std >= cfg.log_std_min).all() and (out.log_std <= cfg.log_std_max).all()


# ---------------------------------------------------------------------------------- config / ckpt
def test_config_roundtrip_and_validation():
    cfg = ModelConfig(kind="ssm", obs_dim=5, action_dim=2, discrete=False, extra={"env": "x"})
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="kind"):
        ModelConfig(kind="lstm")
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)


@pytest.mark.parametrize("kind,discrete", CASES)
def test_checkpoint_roundtrip(kind, discrete, tmp_path):
    model = make_model(kind, discrete)
    out_dir = save_model(model, tmp_path / "ckpt", extra={"step": 7})
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "model.safetensors"]
    meta = read_checkpoint_meta(out_dir)
    assert meta["extra"] == {"step": 7} and "torch" in meta["versions"]
    loaded = load_model(out_dir / "model.safetensors")
    assert type(loaded) is type(model) and loaded.config == model.config
    obs = make_obs(2, 9, discrete)
    with torch.no_grad():
        assert torch.equal(action_params(model(obs)), action_params(loaded(obs)))


def test_checkpoint_errors(tmp_path):
    model = make_model("transformer", True)
    good = save_model(model, tmp_path / "good")
    # missing folder / file
    with pytest.raises(ValueError, match="config.json.*not found"):
        load_model(tmp_path / "nowhere")
    broken = save_model(model, tmp_path / "broken")
    (broken / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="model.safetensors.*not found"):
        load_model(broken)
    # corrupt safetensors
    corrupt = save_model(model, tmp_path / "corrupt")
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors.*not a valid safetensors"):
        load_model(corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_model(corrupt)
    # corrupt json
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json.*not valid JSON"):
        load_model(corrupt)
    # config that does not match the tensors
    meta = json.loads((good / "config.json").read_text())
    meta["model_config"]["d_model"] = 64
    (good / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="shapes do not match"):
        load_model(good)
    meta["model_config"]["d_model"] = D
    meta["model_config"]["n_layers"] = L + 1
    (good / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="missing"):
        load_model(good)
    meta["model_config"]["n_layers"] = L
    meta["model_config"]["frobnicate"] = True
    (good / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown field"):
        load_model(good)
    meta["format"] = "something-else"
    (good / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format"):
        load_model(good)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failing write leaves the previous checkpoint intact and no temporary files."""
    import irl_agents.models.checkpoint as ckpt

    model = make_model("ssm", True)
    out = save_model(model, tmp_path / "c", extra={"v": 1})
    before = (out / "model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", boom)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, out)
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("kind", ["transformer", "ssm"])
def test_predict_obs_can_be_skipped(kind):
    model = make_model(kind, True)
    obs = make_obs(2, 5, True)
    with torch.no_grad():
        full = model(obs)
        lean = model(obs, predict_obs=False)
        out, _ = model.step(obs[:, 0], model.initial_state(2), predict_obs=False)
        e, state = model.step_lower(obs[:, 0], model.initial_state(2), 1)
        up, _ = model.step_upper(e, state, 1, predict_obs=False)
    assert lean.obs_pred is None and out.obs_pred is None and up.obs_pred is None
    assert torch.equal(lean.logits, full.logits)
    torch.testing.assert_close(out.logits, full.logits[:, 0], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(up.logits, full.logits[:, 0], atol=ATOL, rtol=1e-4)


def test_save_rejects_unserialisable_extra(tmp_path):
    model = make_model("ssm", True)
    with pytest.raises(ValueError, match="JSON"):
        save_model(model, tmp_path / "x", extra={"bad": object()})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind, discrete", CASES)
def test_inactive_rows_are_left_untouched(kind, discrete):
    """Rows advance unevenly through step_lower/step_upper with ``active`` masks, as in the
    batched latent env, and still equal the full forward of their own sequence."""
    model = make_model(kind, discrete)
    t_max, layer = 12, 2
    obs = make_obs(3, t_max, discrete)
    with torch.no_grad():
        full = action_params(model(obs))
        state = init_state(model, 3)
        done = torch.zeros(3, dtype=torch.long)  # steps completed per row
        outs = [[] for _ in range(3)]
        pattern = torch.Generator().manual_seed(0)
        while (done < t_max).any():
            active = (torch.rand(3, generator=pattern) < 0.6) & (done < t_max)
            x = obs[torch.arange(3), done.clamp_max(t_max - 1)]
            e, state = model.step_lower(x, state, layer, active=active)
            step_out, state = model.step_upper(e, state, layer, active=active)
            params = action_params(step_out)
            for b in torch.nonzero(active).flatten().tolist():
                outs[b].append(params[b])
            done += active.long()
    for b in range(3):
        assert torch.allclose(torch.stack(outs[b]), full[b], atol=ATOL)


def grid_obs(b: int, t: int, c: int = 2, g: int = 3) -> torch.Tensor:
    """Random object planes plus exactly one agent cell (the last plane) per step."""
    planes = (torch.rand(b, t, c, g * g) < 0.3).float()
    planes[:, :, -1] = torch.nn.functional.one_hot(torch.randint(0, g * g, (b, t)), g * g)
    return planes.flatten(2)


@pytest.mark.parametrize("encoder", ["grid_conv", "grid_ego", "grid_objects"])
def test_grid_encoders(encoder):
    cfg = ModelConfig(obs_dim=2 * 3 * 3, action_dim=4, d_model=16, n_layers=2, n_heads=2,
                      d_mlp=32, obs_encoder=encoder, obs_shape=[2, 3, 3], conv_channels=4,
                      grid_colours=1)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    obs = grid_obs(2, 7)
    with torch.no_grad():
        full = model(obs).logits
        state = model.initial_state(2)
        steps = [model.step(obs[:, t], state)[0].logits for t in range(7)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=ATOL)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="obs_shape"):
        ModelConfig(obs_dim=10, obs_encoder="grid_conv", obs_shape=[2, 3, 3])
    with pytest.raises(ValueError, match="obs_shape"):
        build_model(ModelConfig(obs_dim=18, obs_encoder=encoder))


def test_egocentric_window_is_centred_on_the_agent():
    from irl_agents.models.encoders import egocentric_window

    obs = torch.zeros(3, 4, 4)
    obs[2, 1, 2] = 1  # agent at (1, 2)
    obs[0, 0, 0] = 1  # an object at (0, 0): up 1, left 2
    w = egocentric_window(obs[None])[0]
    assert w.shape == (3, 7, 7)
    assert w[0].nonzero().tolist() == [[3 - 1, 3 - 2]]
    assert w[2, 3, 3] == 0 and w[2, 0, 0] == 1  # off-grid plane: centre on the grid, corner off
    with pytest.raises(ValueError, match="obs_encoder"):
        ModelConfig(obs_encoder="mlp")


def test_object_encoder_shares_one_colour_code_across_slots():
    from irl_agents.models.encoders import EgocentricObjectEncoder

    torch.manual_seed(0)
    enc = EgocentricObjectEncoder((4, 3, 3), d_model=8, width=5, colours=2)
    enc.proj = torch.nn.Identity()  # look at the per-slot features
    obs = torch.zeros(2, 4, 3, 3)
    obs[:, 3, 1, 1] = 1  # agent in the centre
    obs[0, 0, 0, 0] = obs[0, 1, 2, 2] = 1  # colour 0 up-left, colour 1 down-right
    obs[1, 1, 0, 0] = obs[1, 0, 2, 2] = 1  # the same two places, colours swapped
    feats = enc(obs.flatten(1)).view(2, 3, 5)
    assert torch.equal(feats[0, 0], feats[1, 1]) and torch.equal(feats[0, 1], feats[1, 0])
    assert not torch.equal(feats[0, 0], feats[0, 1])
    with pytest.raises(ValueError, match="grid_colours"):
        EgocentricObjectEncoder((4, 3, 3), d_model=8, width=5, colours=4)


def _dense_object_encoder(enc, obs: torch.Tensor) -> torch.Tensor:
    """The object encoder's definition, computed on the full window (no sparse shortcut)."""
    from irl_agents.models.encoders import egocentric_window

    window = egocentric_window(obs.reshape(-1, *enc.shape)).flatten(2)
    k = enc.colours
    colour = enc.colour_mlp(window[:, :k]).flatten(1)
    walls = window[:, k:-1].sum(1)
    obstacle = enc.obstacle_mlp(torch.cat([walls, window[:, -1]], 1))
    return enc.proj(torch.cat([colour, obstacle], 1))


@pytest.mark.parametrize("planes", ["gridworld", "padding", "dense"])
def test_object_encoder_lookup_equals_the_window_product(planes):
    """The column lookup used on one-hot planes gives the dense window product, gradients too;
    inputs that are not one-hot take the dense path."""
    from irl_agents.models.encoders import EgocentricObjectEncoder
    from irl_envs.datasets import generate_dataset

    torch.manual_seed(0)
    enc = EgocentricObjectEncoder((13, 7, 7), d_model=16, width=6, colours=8)
    obs = torch.from_numpy(generate_dataset("grid", "pretrain", 8, seed=1, num_envs=8,
                                            progress=False).observations[:64]).float()
    if planes == "padding":
        obs[::3] = 0
    if planes == "dense":
        obs = obs + 0.1 * torch.rand_like(obs)
    got, want = enc(obs), _dense_object_encoder(enc, obs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    g1 = torch.autograd.grad(got.square().sum(), list(enc.parameters()))
    g2 = torch.autograd.grad(_dense_object_encoder(enc, obs).square().sum(),
                             list(enc.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_swiglu_transformer_step_equals_forward():
    model = make_model("transformer", True, mlp="swiglu")
    obs = make_obs(2, 9, True)
    with torch.no_grad():
        full = action_params(model(obs))
        state = init_state(model, 2)
        steps = [action_params(model.step(obs[:, t], state)[0]) for t in range(9)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=ATOL)
    with pytest.raises(ValueError, match="mlp"):
        ModelConfig(mlp="gelu")


def ant_obs(yaw: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Ant observations (41 values: 4 colours, 1 wall) with the torso turned by ``yaw`` and
    the given world-frame object offsets ``(..., 5, 2)``; everything else fixed."""
    obs = torch.zeros(*yaw.shape, 41)
    quat = torch.stack([torch.cos(yaw / 2), 0 * yaw, 0 * yaw, torch.sin(yaw / 2)], -1)
    obs[..., 1:5] = torch.sign(quat) * torch.log1p(quat.abs())  # symlog, as the env does
    obs[..., 29:39] = offsets.flatten(-2)
    return obs


def test_ant_object_encoder_sees_colours_from_the_body():
    from irl_agents.models.encoders import AntObjectEncoder

    torch.manual_seed(0)
    enc = AntObjectEncoder(41, 16, 4, colours=4)
    offsets = torch.rand(3, 5, 2) - 0.5
    yaw = torch.rand(3) * 6 - 3
    rot = torch.stack([torch.stack([torch.cos(yaw), -torch.sin(yaw)], -1),
                       torch.stack([torch.sin(yaw), torch.cos(yaw)], -1)], -2)  # (3, 2, 2)
    turned = torch.einsum("bij,bkj->bki", rot, offsets)
    # turning the ant and the world together changes none of the objects it sees
    for a, b in zip(enc.objects(ant_obs(yaw, turned)), enc.objects(ant_obs(0 * yaw, offsets)),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # swapping two colours' offsets swaps their slots: one code for every colour
    swapped = offsets[:, [1, 0, 2, 3, 4]]
    a = enc.colour_mlp(torch.cat([offsets, offsets.norm(dim=-1, keepdim=True)], -1))
    b = enc.colour_mlp(torch.cat([swapped, swapped.norm(dim=-1, keepdim=True)], -1))
    assert torch.allclose(a[:, 0], b[:, 1]) and torch.allclose(a[:, 1], b[:, 0])
    with pytest.raises(ValueError, match="ant_colours"):
        AntObjectEncoder(41, 16, 4, colours=6)
    cfg = ModelConfig(kind="ssm", obs_dim=41, action_dim=8, discrete=False, d_model=16,
                      n_layers=2, d_mlp=32, obs_encoder="ant_objects", conv_channels=4)
    model = build_model(cfg).eval()
    obs = ant_obs(torch.rand(2, 6), torch.rand(2, 6, 5, 2) - 0.5)
    with torch.no_grad():
        full = model(obs).mean
        state = model.initial_state(2)
        steps = [model.step(obs[:, t], state)[0].mean for t in range(6)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=ATOL)


def test_heads_stay_fp32_under_bf16_autocast():
    """bf16 log-probabilities of confident actions round to 0, which training would exploit."""
    model = make_model("transformer", True)
    with torch.no_grad():
        model.action_head.bias.zero_()[0] = 12.0
    obs = make_obs(2, 5, True)
    actions = torch.zeros(2, 5, dtype=torch.long)
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        _, exact = model.loss(obs, actions, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(obs)
            _, mixed = model.loss(obs, actions, mask)
    assert out.logits.dtype == torch.float32 and out.obs_pred.dtype == torch.float32
    assert 0 < float(exact["action_nll"]) < 1e-3
    assert float(mixed["action_nll"]) == pytest.approx(float(exact["action_nll"]), rel=0.2)
