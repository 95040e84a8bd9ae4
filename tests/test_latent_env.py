"""The latent-action environment: checkers, mechanics, batched == single, SB3 algorithms."""

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from irl_agents.latent_env import LatentActionEnv, LatentCore, LatentVecEnv
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model
from irl_agents.raw_batch import EnvListRawBatch, GridRawBatch
from irl_envs.colour_sequence import ColourSequenceEnv
from irl_envs.tasks import GRID_PRETRAIN_TASKS

TASKS = [list(t) for t in GRID_PRETRAIN_TASKS]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=32, n_layers=2, n_heads=2,
                                   d_mlp=64)).eval()
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4)).eval()
    with torch.no_grad():  # a switch that fires now and then, so latent steps vary in length
        meta.switch[-1].bias.fill_(-1.0)
    return base, meta


def test_checkers(models):
    env = LatentActionEnv(*models, GridRawBatch(1, tasks=TASKS))
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def test_spaces_and_info(models):
    base, meta = models
    env = LatentActionEnv(base, meta, GridRawBatch(1, tasks=TASKS), z_bound=3.0)
    assert env.observation_space.shape == (32 + meta.cfg.n_h,)
    assert env.action_space.shape == (4,) and env.action_space.high[0] == 3.0
    _, info = env.reset(seed=0)
    assert info["switch_times"] == [0]
    _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    assert {"is_success", "task", "next_index", "raw_steps", "switch_times"} <= set(info)
    assert info["raw_steps"] >= 1 and info["episode_raw_steps"] == info["raw_steps"]


def test_every_step_switches_without_temporal_abstraction(models):
    base, _ = models
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4,
                                               force_switch=True))
    env = LatentActionEnv(base, meta, GridRawBatch(1, tasks=TASKS))
    env.reset(seed=1)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["raw_steps"] == 1
        if terminated or truncated:
            break


def test_codebook_metacontroller_steps_with_the_chosen_controller(models):
    base, _ = models
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=4,
                                               codebook=3)).eval()
    env = LatentActionEnv(base, meta, GridRawBatch(1, tasks=TASKS))
    gym_check_env(env, skip_render_check=True)
    env.reset(seed=3)
    z = np.ones(4, dtype=np.float32)
    env.step(z)
    chosen = int(meta.hyper.select(torch.as_tensor(z)).argmax())
    assert torch.equal(env.core.a[0], meta.hyper.bank.a[chosen])


def test_split_metacontroller_reads_the_unsteered_stream_and_writes_below(models):
    """A switching unit at boundary 2 over controllers at boundary 0 (``write_layer``): the
    gate, history and policy see the unsteered residual at 2, exactly as in training."""
    base, _ = models
    torch.manual_seed(1)
    meta = Metacontroller(MetacontrollerConfig(d_model=32, layer=2, write_layer=0, n_z=4,
                                               rank=4, codebook=3)).eval()
    with torch.no_grad():  # controllers strong enough to change the actions
        meta.hyper.bank.a.normal_(0.0, 1.0)
        meta.hyper.bank.b.normal_(0.0, 1.0)
    core = LatentCore(base, meta, GridRawBatch(1, tasks=TASKS), threshold=1.0)
    core.reset(np.array([0]), [5])
    observations = [core.raw_obs[0].clone()]
    core.begin(np.array([0]), np.ones((1, 4), dtype=np.float32))
    for _ in range(6):
        core.raw_step()
        if not core.running[0]:
            break
        observations.append(core.raw_obs[0].clone())
    obs = torch.stack(observations)[None]
    with torch.no_grad():
        unsteered = base(obs, return_residual_at=[0, 2], predict_obs=False).residuals
    torch.testing.assert_close(core.e[0], unsteered[2][0, -1])
    torch.testing.assert_close(core.e_write[0], unsteered[0][0, -1])
    assert core.write == 0 and core.layer == 2


def test_unreachable_threshold_runs_whole_episodes(models):
    env = LatentActionEnv(*models, GridRawBatch(1, tasks=TASKS), threshold=1.0)
    env.reset(seed=2)
    _, _, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
    assert terminated or truncated
    assert info["switch_times"] == [0]


def test_same_seed_same_episode(models):
    env = LatentActionEnv(*models, GridRawBatch(1, tasks=TASKS))
    traces = []
    for _ in range(2):
        obs, _ = env.reset(seed=5)
        trace = [obs]
        for z in np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32):
            obs, r, te, tr, info = env.step(z)
            trace += [obs, r, info["raw_steps"]]
            if te or tr:
                break
        traces.append(trace)
    assert all(np.array_equal(a, b) for a, b in zip(*traces, strict=True))


@pytest.mark.parametrize("raw_kind", ["grid", "list"])
def test_vec_env_equals_single_envs(models, raw_kind):
    base, meta = models
    n, seed = 3, 11

    def raw(k):
        if raw_kind == "grid":
            return GridRawBatch(k, tasks=TASKS)
        return EnvListRawBatch([ColourSequenceEnv(tasks=TASKS) for _ in range(k)])

    venv = LatentVecEnv(base, meta, raw(n))
    venv.seed(seed)
    vobs = venv.reset()
    singles = [LatentActionEnv(base, meta, raw(1)) for _ in range(n)]
    sobs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_allclose(vobs, np.stack(sobs), atol=1e-5)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(12):
        z = rng.standard_normal((n, 4)).astype(np.float32)
        vobs, vrew, vdone, vinfos = venv.step(z)
        for i, env in enumerate(singles):
            obs, rew, term, trunc, info = env.step(z[i])
            assert vinfos[i]["raw_steps"] == info["raw_steps"]
            assert vrew[i] == rew and vdone[i] == (term or trunc)
            if term or trunc:
                ends += 1
                np.testing.assert_allclose(vinfos[i]["terminal_observation"], obs, atol=1e-5)
                obs, _ = env.reset()
            np.testing.assert_allclose(vobs[i], obs, atol=1e-5)
    assert ends > 0  # autoresets were compared too


@pytest.mark.parametrize("algo", ["PPO", "A2C", "SAC", "RecurrentPPO"])
def test_sb3_algorithms_run(models, algo):
    import sb3_contrib
    import stable_baselines3

    cls = getattr(stable_baselines3, algo, None) or getattr(sb3_contrib, algo)
    venv = LatentVecEnv(*models, GridRawBatch(2, tasks=TASKS))
    kwargs = {"n_steps": 16, "batch_size": 16} if algo in ("PPO", "RecurrentPPO") else {}
    if algo == "A2C":
        kwargs = {"n_steps": 8}
    if algo == "SAC":
        kwargs = {"learning_starts": 8, "batch_size": 8, "buffer_size": 100}
    policy = "MlpLstmPolicy" if algo == "RecurrentPPO" else "MlpPolicy"
    model = cls(policy, venv, seed=0, device="cpu", **kwargs)
    model.learn(32)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (2, 4)


@pytest.fixture(scope="module")
def ant_models():
    torch.manual_seed(0)
    base = build_model(ModelConfig(kind="ssm", obs_dim=41, action_dim=8, discrete=False,
                                   d_model=16, n_layers=2, d_mlp=32)).eval()
    meta = Metacontroller(MetacontrollerConfig(d_model=16, layer=1, n_z=4, rank=0)).eval()
    with torch.no_grad():
        meta.switch[-1].bias.fill_(-1.0)
    return base, meta


def test_ant_latent_env_checkers_and_workers(ant_models):
    """The continuous family: full-rank controllers, Gaussian raw actions, and a
    process-parallel raw batch that gives the same latent episodes as a serial one."""
    from irl_agents.raw_batch import make_raw_batch

    env = LatentActionEnv(*ant_models, make_raw_batch("ant", "posttrain", 1))
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    venvs = [LatentVecEnv(*ant_models, make_raw_batch("ant", "posttrain", 3, workers=w))
             for w in (1, 2)]
    outs = []
    for venv in venvs:
        venv.seed(4)
        trace = [venv.reset()]
        for z in np.random.default_rng(1).standard_normal((4, 3, 4)).astype(np.float32):
            obs, rew, done, infos = venv.step(z)
            trace += [obs, rew, done, [i["raw_steps"] for i in infos]]
        outs.append(trace)
        venv.close()
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
