"""The checkpoints shipped in the package: loadable, registered, and the demo command runs."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

import irl_envs  # noqa: F401  (registers the ids)
from irl_agents.cli import main
from irl_agents.discovery import load_metacontroller
from irl_agents.shipped import make_latent_env, shipped

LATENT_IDS = {"grid": "InternalRL/ColourSequenceLatent-v0",
              "ant": "InternalRL/AntSubgoalsLatent-v0"}
MAX_RAW_STEPS = {"grid": 100, "ant": 500}  # PAPER §2: T


@pytest.mark.parametrize("env", sorted(LATENT_IDS))
def test_shipped_folders_and_clear_error(env):
    assert (shipped(env, "base") / "model.safetensors").is_file()
    assert (shipped(env, "metacontroller") / "metacontroller.safetensors").is_file()
    if env == "grid":
        assert load_metacontroller(shipped(env, "segment-codes")).cfg.codebook == 4
    with pytest.raises(ValueError, match="env='nowhere'.*shipped: \\['ant', 'grid'"):
        shipped("nowhere", "base")
    with pytest.raises(ValueError, match="part must be"):
        shipped("grid", "decoder")


@pytest.mark.parametrize("family", sorted(LATENT_IDS))
def test_registered_latent_env_runs_an_episode(family):
    env = gym.make(LATENT_IDS[family])
    check_env(env.unwrapped)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    done, raw_steps = False, 0
    while not done:
        obs, reward, term, trunc, info = env.step(np.zeros(env.action_space.shape, np.float32))
        raw_steps += info["raw_steps"]
        done = term or trunc
    assert raw_steps == info["episode_raw_steps"] <= MAX_RAW_STEPS[family]
    assert isinstance(info["is_success"], bool)


def test_registered_latent_env_with_segment_codes_and_one_task():
    env = gym.make(LATENT_IDS["grid"], metacontroller="segment-codes", task="0-1-2-3")
    check_env(env.unwrapped)
    _, info = env.reset(seed=0)
    assert list(info["task"]) == [0, 1, 2, 3]
    assert env.unwrapped.core.meta.cfg.codebook == 4
    with pytest.raises(ValueError, match="metacontroller must be one of"):
        make_latent_env(metacontroller="base")


def test_latent_v1_is_the_configuration_that_learns_the_post_training_task():
    """v1 = segment codes at gate 0.3 (docs/results/internal_rl.md, Issue 18 point 7); v0
    keeps its end-to-end codes at 0.5, so runs made on v0 keep their action semantics."""
    v1 = gym.make("InternalRL/ColourSequenceLatent-v1").unwrapped
    v0 = gym.make(LATENT_IDS["grid"]).unwrapped
    assert v1.core.meta.cfg.codebook == 4 and v1.core.threshold == 0.3
    assert v0.core.meta.cfg.codebook != 4 and v0.core.threshold == 0.5
    _, info = v1.reset(seed=0)
    assert list(info["task"]) == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]


def test_latent_env_is_seeded():
    a, b = make_latent_env(), make_latent_env()
    assert np.array_equal(a.reset(seed=5)[0], b.reset(seed=5)[0])
    z = np.full(a.action_space.shape, 0.5, np.float32)
    assert np.array_equal(a.step(z)[0], b.step(z)[0])


def test_demo_command(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--episodes", "512", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "success_before_rl" in printed and "episodes_to_0.9" in printed
    assert "0-1-2-3, segment codes" in printed
    assert (out / "success.png").stat().st_size > 1000
    for stage in (out, out / "0-1-2-3"):  # header + 2 batches of 256 each
        assert (stage / "curve.csv").read_text().count("\n") == 3


def test_ant_demo_command(tmp_path, capsys):
    out = tmp_path / "demo-ant"
    assert main(["demo", "--env", "ant", "--episodes", "256", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "normalised_final_success" in printed and "expert_success" in printed
    assert (out / "curve.csv").read_text().count("\n") == 2  # header + 1 batch of 256


def test_scaling_checkpoints_load_and_match_their_index():
    from irl_agents.models import load_model
    from irl_agents.shipped import WEIGHTS, scaling_checkpoints

    entries = scaling_checkpoints("grid")
    folders = {p.name for p in (WEIGHTS / "grid" / "scaling").iterdir() if p.is_dir()}
    assert {e["folder"] for e in entries} == folders and len(entries) >= 3
    for e in entries:
        assert load_model(e["path"]).config.obs_encoder == "grid_objects"
        extra = json.loads((e["path"] / "config.json").read_text())["extra"]
        assert extra["tokens_seen"] == e["tokens_seen"] and extra["step"] == e["step"]
    tokens = [e["tokens_seen"] for e in entries if e["data"] == "expert"]
    assert tokens == sorted(tokens)  # the curve, in order of compute
    with pytest.raises(ValueError, match="no shipped scaling checkpoints for env='ant'"):
        scaling_checkpoints("ant")


def test_default_grid_models_are_the_label_free_pipeline_on_relabel_073m():
    """The defaults of docs/results/internal_rl.md ("Issue 18"): the base is the scaling curve's
    relabel-073M, the segment codes' gate reads boundary 1 over controllers at boundary 0, and
    the first release's models stay loadable beside them."""
    from irl_agents.latent_env import LatentActionEnv
    from irl_agents.models import load_metacontroller, load_model
    from irl_agents.raw_batch import make_raw_batch
    from irl_agents.shipped import WEIGHTS

    grid = WEIGHTS / "grid"
    assert ((grid / "base" / "model.safetensors").read_bytes()
            == (grid / "scaling" / "relabel-073M" / "model.safetensors").read_bytes())
    meta = load_metacontroller(shipped("grid", "segment-codes"))
    assert (meta.cfg.layer, meta.cfg.write_boundary, meta.cfg.codebook) == (1, 0, 4)
    assert load_metacontroller(shipped("grid", "metacontroller")).cfg.layer == 1
    base = load_model(shipped("grid", "base"))
    env = LatentActionEnv(base, meta, make_raw_batch("grid", "posttrain", 1, "0-1-2-3"))
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.asarray(meta.hyper.selecting_codes()[0]))
    assert info["raw_steps"] >= 1
    old = grid / "first-release"
    assert load_model(old / "base").config.d_model == base.config.d_model
    for part in ("metacontroller", "segment-codes"):
        assert load_metacontroller(old / part).cfg.layer == 1
