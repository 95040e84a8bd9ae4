"""The outer loop shared by every critic-free PPO run: collect a batch of whole episodes,
update, log, checkpoint, repeat until the episode budget is spent.

Internal RL (a policy over latent codes) and the raw-action baseline (the base model itself)
differ only in how a batch of episodes is collected, so both hand :func:`train_episodic` a
``collect(seeds, generator)`` function. It writes::

    out_dir/curve.csv           episodes, the collector's statistics, seconds (one row a batch)
    out_dir/tb/, metrics.csv    TensorBoard and long-format CSV (charts/..., losses/...)
    out_dir/policy.safetensors  + policy.json (atomic, every batch: a resumable checkpoint)
    out_dir/summary.json        config, versions, success before RL and at the end, wall time

A run that finds ``policy.json`` written with the same settings continues from it; the
episode budget may differ, so a finished run can be extended.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from irl_agents.rl import EpisodicPolicy, PPOConfig, Trajectories, ppo_update
from irl_agents.run_logger import RunLogger
from irl_envs.atomic import atomic_path, write_json
from irl_envs.versions import versions

Collector = Callable[[list[int], torch.Generator], tuple[Trajectories, dict]]
"""Plays one episode per seed with the current policy; returns the trajectories and batch
statistics (the same keys every batch, ``success_rate`` among them)."""


def save_policy(policy: EpisodicPolicy, out: Path, extra: dict) -> None:
    """``policy.safetensors`` then ``policy.json`` (the marker of a complete checkpoint)."""
    with atomic_path(out / "policy.safetensors") as tmp:
        save_file({k: v.detach().clone().contiguous() for k, v in policy.state_dict().items()},
                  str(tmp))
    write_json(out / "policy.json", extra)


def _resumable(config: dict) -> dict:
    """The settings a checkpoint must share with a run to be continued by it."""
    return {k: v for k, v in config.items() if k not in ("episodes", "progress")}


def train_episodic(policy: EpisodicPolicy, collect: Collector, *, episodes: int,
                   batch_episodes: int, ppo: PPOConfig, seed: int, out_dir: str | Path,
                   config: dict, progress: bool = True, desc: str = "RL") -> dict:
    """Critic-free PPO on ``policy`` for ``episodes`` episodes, one batch at a time.

    Args:
        policy: the policy ``collect`` samples from (updated in place).
        collect: see :data:`Collector`; called with ``batch_episodes`` seeds.
        episodes: budget (rounded down to whole batches, at least one).
        batch_episodes: episodes per PPO batch.
        ppo: the update's settings (``epochs=0`` evaluates the initial policy, no learning).
        seed: seeds the environments, the action sampler and the minibatch order.
        out_dir: output folder (see the module docstring).
        config: the run's settings; stored with the checkpoint and compared on resume.
        progress: show a progress bar.
        desc: progress-bar label.

    Returns:
        the summary written to ``summary.json``: ``config``, ``versions``,
        ``success_before_rl``, ``final_success_rate``, ``seconds``.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(policy.parameters(), lr=ppo.lr)
    done_batches = 0
    if (out / "policy.json").is_file():  # resume after an interruption, or extend the budget
        saved = json.loads((out / "policy.json").read_text())
        if _resumable(saved.get("config", {})) == _resumable(config):
            policy.load_state_dict(load_file(str(out / "policy.safetensors")))
            done_batches = int(saved["batches"])
    logger = RunLogger(out, resume_step=done_batches * batch_episodes)
    curve_path = out / "curve.csv"
    # every batch's randomness is a function of (seed, batch): a resumed run continues exactly
    generator = torch.Generator().manual_seed(seed * 7919 + done_batches)
    rng = np.random.default_rng([seed, done_batches])
    total_batches = max(1, episodes // batch_episodes)
    bar = tqdm(total=total_batches * batch_episodes, initial=done_batches * batch_episodes,
               unit="ep", desc=desc, disable=not progress)
    first = last = None
    for k in range(done_batches, total_batches):
        seeds = [seed * 2**32 + k * batch_episodes + i for i in range(batch_episodes)]
        batch, stats = collect(seeds, generator)
        first = first or stats
        last = stats
        losses = (ppo_update(policy, opt, batch, ppo, rng) if ppo.epochs > 0 else {})
        seen = (k + 1) * batch_episodes
        elapsed = time.perf_counter() - start
        with open(curve_path, "w" if k == 0 else "a", newline="") as f:
            if k == 0:
                csv.writer(f).writerow(["episodes", *stats, "seconds"])
            csv.writer(f).writerow([seen, *stats.values(), round(elapsed, 1)])
        logger.log(seen, {**{f"charts/{name}": v for name, v in stats.items()},
                          **{f"losses/{name}": v for name, v in losses.items()}})
        save_policy(policy, out, {"config": config, "batches": k + 1})
        bar.update(batch_episodes)
        bar.set_postfix(success=f"{stats['success_rate']:.3f}")
    bar.close()
    logger.close()
    summary = {"config": config, "versions": versions(),
               "success_before_rl": first["success_rate"] if first else None,
               "final_success_rate": last["success_rate"] if last else None,
               "seconds": round(time.perf_counter() - start, 1)}
    write_json(out / "summary.json", summary)
    return summary
