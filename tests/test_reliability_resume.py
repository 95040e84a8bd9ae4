"""Kill-and-resume: a run stopped between any two of its writes, then started again with the
same command, ends exactly where the uninterrupted run ends (same weights, same logs, no
duplicate rows).

A kill is simulated in-process at a random write: every file a run writes goes through an
atomic rename (``os.replace``) or an append (``open(..., "a")``), and the "kill" raises at the
k-th of them, before it lands, so no later write happens. One test also kills a real ``irl``
process with SIGKILL at a random moment.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import irl_agents.episodic_trainer
import irl_agents.run_logger
import irl_envs.atomic
from irl_agents.cli import main
from irl_agents.discovery import DiscoverConfig, discover, save_metacontroller
from irl_agents.episodic_trainer import RUN_SETTINGS, train_episodic
from irl_agents.internal_rl import InternalRLConfig, internal_rl
from irl_agents.latent_policy import LatentPolicy
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model, load_model, save_model
from irl_agents.pretrain import PretrainConfig, pretrain
from irl_agents.rl import PPOConfig, Trajectories
from irl_agents.run_folder import claim_run, run_config
from irl_envs.datasets import generate_dataset


class Killed(BaseException):
    """Stands for SIGKILL: a BaseException, so that no ``except Exception`` handles it."""


class Killer:
    """Counts the writes of a run and raises :class:`Killed` at write number ``at``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int | None = None) -> None:
        self.at, self.writes = at, 0
        real_replace, real_open = os.replace, open

        def replace(src, dst, *args, **kwargs):
            self._tick()
            return real_replace(src, dst, *args, **kwargs)

        def open_(file, mode="r", *args, **kwargs):
            if "a" in mode:
                self._tick()
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(irl_envs.atomic.os, "replace", replace)
        for module in (irl_agents.run_logger, irl_agents.episodic_trainer):
            monkeypatch.setattr(module, "open", open_, raising=False)

    def _tick(self) -> None:
        self.writes += 1
        if self.at is not None and self.writes == self.at:
            raise Killed


def kill_points(total: int, n: int, seed: int) -> list[int]:
    """``n`` distinct random write numbers in ``1..total``."""
    return sorted(random.Random(seed).sample(range(1, total + 1), min(n, total)))


def rows(path: Path, drop: str) -> list[dict]:
    """A CSV file's rows without the wall-clock column ``drop``."""
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != drop} for r in csv.DictReader(f)]


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def run_with_kill(monkeypatch, run, at: int) -> None:
    """``run()`` killed at write ``at``, then ``run()`` again to completion."""
    with monkeypatch.context() as patch:
        Killer(patch, at)
        with pytest.raises(Killed):
            run()
    run()


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=16, n_layers=2, n_heads=2,
                                   d_mlp=32))
    save_model(base, root / "base")
    save_metacontroller(Metacontroller(MetacontrollerConfig(d_model=16, layer=1, n_z=4, rank=2)),
                        root / "meta")
    generate_dataset("grid", "pretrain", episodes=24, seed=0, num_envs=8,
                     progress=False).save(root / "data.safetensors")
    return root


# ------------------------------------------------------------------------------ the RL trainer
def bandit_run(out: Path, episodes: int = 48) -> dict:
    """Critic-free PPO on a latent bandit (reward when z[0] > 0.5): the samples, the Adam
    state and the minibatch order all change the result, so a resume must restore each."""
    torch.manual_seed(0)
    policy = LatentPolicy(obs_dim=3, n_z=2, hidden=8)

    def collect(seeds: list[int], generator: torch.Generator):
        obs = torch.zeros(len(seeds), 2, 3)
        state, zs, lps = policy.initial_state(len(seeds)), [], []
        for t in range(2):
            z, lp, state = policy.act(obs[:, t], state, generator)
            zs.append(z)
            lps.append(lp)
        z = torch.stack(zs, 1)
        returns = (z[:, 0, 0] > 0.5).float()
        batch = Trajectories(obs, z, torch.stack(lps, 1),
                             torch.ones(len(seeds), 2, dtype=torch.bool), returns)
        return batch, {"success_rate": float(returns.mean()), "mean_z": float(z.mean())}

    config = {"task": "bandit", "out_dir": str(out), "episodes": episodes}
    with claim_run(out, "bandit", run_config(config, RUN_SETTINGS)) as run:
        return train_episodic(policy, collect, episodes=episodes, batch_episodes=8,
                              ppo=PPOConfig(lr=0.05, epochs=2, minibatches=2), seed=0, run=run,
                              config=config, progress=False)


def test_rl_trainer_killed_at_random_writes_resumes_exactly(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        counter = Killer(patch)
        bandit_run(tmp_path / "straight")
    expected_curve = rows(tmp_path / "straight" / "curve.csv", "seconds")
    expected_metrics = rows(tmp_path / "straight" / "metrics.csv", "wall_time")
    expected_policy = load_file(tmp_path / "straight" / "policy.safetensors")
    assert len({r["success_rate"] for r in expected_curve}) > 1  # it learns: a real check
    for at in kill_points(counter.writes, 5, seed=11):
        out = tmp_path / f"killed-at-{at}"
        run_with_kill(monkeypatch, lambda out=out: bandit_run(out), at)
        assert rows(out / "curve.csv", "seconds") == expected_curve, at
        assert rows(out / "metrics.csv", "wall_time") == expected_metrics, at
        assert same_tensors(load_file(out / "policy.safetensors"), expected_policy), at


def test_an_extended_rl_run_equals_one_run_with_the_larger_budget(tmp_path):
    bandit_run(tmp_path / "long", episodes=48)
    bandit_run(tmp_path / "extended", episodes=24)
    bandit_run(tmp_path / "extended", episodes=48)
    assert rows(tmp_path / "extended" / "curve.csv", "seconds") == rows(
        tmp_path / "long" / "curve.csv", "seconds")


# ------------------------------------------------------------------------------ internal RL
def test_internal_rl_killed_at_random_writes_resumes_exactly(models, tmp_path, monkeypatch):
    def config(out: Path) -> InternalRLConfig:
        return InternalRLConfig(base=str(models / "base"), meta=str(models / "meta"),
                                task_set="pretrain", episodes=12, batch_episodes=4,
                                out_dir=str(out), progress=False)

    with monkeypatch.context() as patch:  # the uninterrupted run, counting its writes
        counter = Killer(patch)
        straight = internal_rl(config(tmp_path / "straight"))
    expected_curve = rows(tmp_path / "straight" / "curve.csv", "seconds")
    expected_metrics = rows(tmp_path / "straight" / "metrics.csv", "wall_time")
    expected_policy = load_file(tmp_path / "straight" / "policy.safetensors")
    assert len(expected_curve) == 3
    for at in kill_points(counter.writes, 3, seed=19):
        out = tmp_path / f"killed-at-{at}"
        run_with_kill(monkeypatch, lambda out=out: internal_rl(config(out)), at)
        assert rows(out / "curve.csv", "seconds") == expected_curve, at
        assert rows(out / "metrics.csv", "wall_time") == expected_metrics, at
        assert same_tensors(load_file(out / "policy.safetensors"), expected_policy), at
        summary = json.loads((out / "summary.json").read_text())
        assert summary["success_before_rl"] == straight["success_before_rl"]
        assert summary["final_success_rate"] == straight["final_success_rate"]


def test_a_finished_run_rerun_or_cut_short_keeps_its_summary(models, tmp_path):
    cfg = InternalRLConfig(base=str(models / "base"), meta=str(models / "meta"),
                           task_set="pretrain", episodes=8, batch_episodes=4,
                           out_dir=str(tmp_path), progress=False)
    first = internal_rl(cfg)
    again = internal_rl(cfg)  # nothing left to do: the same figures, not None
    assert again["success_before_rl"] == first["success_before_rl"] is not None
    assert again["final_success_rate"] == first["final_success_rate"] is not None
    cfg.out_dir = os.path.relpath(tmp_path)  # the same folder by another name: the same run
    assert internal_rl(cfg)["final_success_rate"] == first["final_success_rate"]
    cfg.episodes = 4  # fewer episodes than the checkpoint has done: refused, nothing changed
    with pytest.raises(ValueError, match="episodes=4 is below the 8 already done"):
        internal_rl(cfg)
    assert len(rows(tmp_path / "curve.csv", "seconds")) == 2


# ------------------------------------------------------------------------------ pretraining
def test_pretrain_killed_at_random_writes_resumes_exactly(models, tmp_path, monkeypatch):
    def config(out: Path) -> PretrainConfig:
        return PretrainConfig(dataset=str(models / "data.safetensors"), out_dir=str(out),
                              model=ModelConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=16),
                              steps=8, batch_size=4, log_every=1, eval_every=4,
                              checkpoint_every=2, warmup_steps=2, precision="fp32",
                              progress=False)

    with monkeypatch.context() as patch:
        counter = Killer(patch)
        pretrain(config(tmp_path / "straight"))
    expected = load_model(tmp_path / "straight" / "model").state_dict()
    expected_metrics = rows(tmp_path / "straight" / "metrics.csv", "wall_time")
    for at in kill_points(counter.writes, 3, seed=7):
        out = tmp_path / f"killed-at-{at}"
        run_with_kill(monkeypatch, lambda out=out: pretrain(config(out)), at)
        assert same_tensors(load_model(out / "model").state_dict(), expected), at
        metrics = rows(out / "metrics.csv", "wall_time")
        # logged quantities that measure time (tokens per second, hours) differ; no row is
        # missing or repeated, and every loss is the uninterrupted run's
        assert [(r["step"], r["tag"]) for r in metrics] == [
            (r["step"], r["tag"]) for r in expected_metrics], at
        assert [r for r in metrics if r["tag"].startswith("losses/")] == [
            r for r in expected_metrics if r["tag"].startswith("losses/")], at


def test_pretrain_refuses_steps_below_the_checkpoint(models, tmp_path):
    cfg = PretrainConfig(dataset=str(models / "data.safetensors"), out_dir=str(tmp_path),
                         model=ModelConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=16),
                         steps=4, batch_size=4, eval_every=0, checkpoint_every=2,
                         precision="fp32", progress=False)
    pretrain(cfg)
    before = (tmp_path / "model" / "model.safetensors").read_bytes()
    cfg.steps = 2
    with pytest.raises(ValueError, match="steps=2 is below the 4 already done"):
        pretrain(cfg)
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == before


# ------------------------------------------------------------------------------ discovery
def test_discover_killed_at_random_writes_resumes_exactly(models, tmp_path, monkeypatch):
    def config(out: Path) -> DiscoverConfig:
        return DiscoverConfig(base=str(models / "base"), dataset=str(models / "data.safetensors"),
                              out_dir=str(out), steps=6, batch_size=4, eval_episodes=4, rank=2,
                              n_z=3, log_every=1, checkpoint_every=2, progress=False)

    with monkeypatch.context() as patch:
        counter = Killer(patch)
        discover(config(tmp_path / "straight"))
    expected = load_file(tmp_path / "straight" / "metacontroller.safetensors")
    expected_metrics = rows(tmp_path / "straight" / "metrics.csv", "wall_time")
    for at in kill_points(counter.writes, 3, seed=3):
        out = tmp_path / f"killed-at-{at}"
        run_with_kill(monkeypatch, lambda out=out: discover(config(out)), at)
        assert same_tensors(load_file(out / "metacontroller.safetensors"), expected), at
        assert rows(out / "metrics.csv", "wall_time") == expected_metrics, at


# ------------------------------------------------------------------------------ a real kill
def test_sigkill_of_irl_internal_rl_then_rerun_matches_the_uninterrupted_run(models, tmp_path):
    """``irl internal-rl`` killed with SIGKILL at a random moment, then run again."""
    def argv(out: Path) -> list[str]:
        return ["internal-rl", "--base", str(models / "base"), "--meta", str(models / "meta"),
                "--task-set", "pretrain", "--episodes", "12", "--batch-episodes", "4",
                "--no-progress", "--out", str(out)]

    assert main(argv(tmp_path / "straight")) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "irl_agents.cli", *argv(killed)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120  # once it has started writing: a random moment
    while not (killed / "run.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.8))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(argv(killed)) == 0
    assert rows(killed / "curve.csv", "seconds") == rows(tmp_path / "straight" / "curve.csv",
                                                        "seconds")
    assert rows(killed / "metrics.csv", "wall_time") == rows(
        tmp_path / "straight" / "metrics.csv", "wall_time")
    assert same_tensors(load_file(killed / "policy.safetensors"),
                        load_file(tmp_path / "straight" / "policy.safetensors"))
    assert not list(killed.rglob("*.tmp"))  # no orphaned temporary files remain
    assert np.isfinite(json.loads((killed / "summary.json").read_text())["final_success_rate"])
