"""Flat PPO from scratch on raw actions with Stable-Baselines3: the sanity floor (PAPER §7).

No pretraining, no hierarchy: SB3's PPO with an MLP policy and a critic, on the raw
environment, until the episode budget is spent. Every ``batch_episodes`` finished episodes
add one row to ``curve.csv`` (the same columns as the critic-free runs), so the comparison
reads all methods the same way. SB3 checkpoints are pickles, so a flat-PPO run is not resumed
mid-way: an interrupted run starts again (a sweep still skips finished runs).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irl_agents.configs import DictConfig
from irl_agents.run_folder import claim_run, run_config
from irl_envs.atomic import write_json
from irl_envs.families import FAMILIES, env_id
from irl_envs.tasks import parse_task
from irl_envs.validation import check_choice, check_device, check_float, check_int
from irl_envs.versions import versions


@dataclass
class FlatPPOConfig(DictConfig):
    """One flat-PPO run."""

    env: str = "grid"
    """Environment family."""
    task_set: str = "posttrain"
    """Task set to solve."""
    task: str | None = None
    """A single task such as ``"0-1-2-3"`` that replaces the task set's tasks."""
    episodes: int = 50_000
    """Episode budget."""
    batch_episodes: int = 256
    """Finished episodes per row of ``curve.csv``."""
    num_envs: int = 8
    """Parallel environments (SB3 ``DummyVecEnv``)."""
    n_steps: int = 128
    """Rollout length per environment between updates."""
    lr: float = 3e-4
    """Adam learning rate (SB3's default)."""
    seed: int = 0
    """Seed of environments and the learner."""
    device: str = "cpu"
    """Torch device of SB3's networks."""
    out_dir: str = "runs/flat-ppo"
    """Output folder (see :mod:`irl_agents.run_folder`)."""
    overwrite: bool = False
    """Replace a run with other settings in ``out_dir`` instead of refusing to start."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_choice("env", self.env, tuple(FAMILIES))
        check_device(self.device)
        check_choice("task_set", self.task_set, ("pretrain", "posttrain"))
        if self.task is not None:
            parse_task(self.task)
        for name in ("episodes", "batch_episodes", "num_envs", "n_steps"):
            check_int(name, getattr(self, name), 1)
        # SB3 seeds numpy's legacy generator (< 2**32) with seed + i for sub-env i
        check_int("seed", self.seed, 0, 2**32 - 1 - self.num_envs)
        check_float("lr", self.lr, positive=True)


def flat_ppo(cfg: FlatPPOConfig) -> dict:
    """Train SB3 PPO from scratch; returns the summary (also written to ``summary.json``)."""
    # SB3 checkpoints are pickles, so a run always starts again (any budget, same settings)
    with claim_run(cfg.out_dir, "flat-ppo",
                   run_config(dataclasses.asdict(cfg),
                              ("out_dir", "episodes", "progress", "overwrite", "device")),
                   overwrite=cfg.overwrite):
        return _flat_ppo(cfg)


def _flat_ppo(cfg: FlatPPOConfig) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    start = time.perf_counter()
    out = Path(cfg.out_dir)
    (out / "summary.json").unlink(missing_ok=True)  # a restarted run is not finished
    kwargs = {"tasks": [parse_task(cfg.task)]} if cfg.task is not None else {}
    venv = make_vec_env(env_id(cfg.env, cfg.task_set), n_envs=cfg.num_envs, seed=cfg.seed,
                        env_kwargs=kwargs)
    curve_path = out / "curve.csv"
    with open(curve_path, "w", newline="") as f:
        csv.writer(f).writerow(["episodes", "success_rate", "mean_return", "raw_steps",
                                "seconds"])
    rows: list[list[float]] = []

    class EpisodeBudget(BaseCallback):
        """Writes a curve row every ``batch_episodes`` episodes; stops at the budget."""

        def __init__(self) -> None:
            super().__init__()
            self.success: list[float] = []
            self.returns: list[float] = []
            self.lengths: list[float] = []
            self.seen = 0

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if not done:
                    continue
                self.success.append(float(info.get("is_success", False)))
                self.returns.append(float(info["episode"]["r"]))
                self.lengths.append(float(info["episode"]["l"]))
                if len(self.success) == cfg.batch_episodes:
                    self.seen += cfg.batch_episodes
                    row = [self.seen, float(np.mean(self.success)),
                           float(np.mean(self.returns)), float(np.mean(self.lengths)),
                           round(time.perf_counter() - start, 1)]
                    rows.append(row)
                    with open(curve_path, "a", newline="") as f:
                        csv.writer(f).writerow(row)
                    self.success, self.returns, self.lengths = [], [], []
            return self.seen < cfg.episodes

    model = PPO("MlpPolicy", venv, n_steps=cfg.n_steps, learning_rate=cfg.lr, seed=cfg.seed,
                verbose=0, device=cfg.device)
    # an upper bound on raw steps (no episode is that long): the callback stops at the budget
    model.learn(total_timesteps=cfg.episodes * 10_000, callback=EpisodeBudget(),
                progress_bar=cfg.progress)
    venv.close()
    summary = {"config": dataclasses.asdict(cfg), "versions": versions(),
               "success_before_rl": rows[0][1] if rows else None,
               "final_success_rate": rows[-1][1] if rows else None,
               "seconds": round(time.perf_counter() - start, 1)}
    write_json(out / "summary.json", summary)
    return summary
