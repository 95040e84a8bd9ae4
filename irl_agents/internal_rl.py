"""Internal RL: critic-free PPO over latent codes in the latent-action environment (PAPER §6).

``internal_rl(cfg)`` loads a frozen base model and a metacontroller, builds a batch of latent
environments (one batched base-model step per raw step), and trains :class:`LatentPolicy` with
:func:`irl_agents.rl.ppo_update`, one batch of whole episodes at a time. It writes::

    out_dir/curve.csv           episodes, success_rate, mean_return, raw/latent steps, seconds
    out_dir/tb/, metrics.csv    TensorBoard and long-format CSV (charts/..., losses/...)
    out_dir/policy.safetensors  + policy.json (atomic, every batch: a resumable checkpoint)
    out_dir/summary.json        config, versions, success before RL and at the end, wall time
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from irl_agents.discovery import load_metacontroller
from irl_agents.latent_env import LatentCore
from irl_agents.latent_policy import LatentPolicy
from irl_agents.models import load_model
from irl_agents.raw_batch import make_raw_batch
from irl_agents.rl import PPOConfig, Trajectories, ppo_update
from irl_agents.run_logger import RunLogger
from irl_envs.atomic import atomic_path, write_json
from irl_envs.versions import versions


@dataclass
class InternalRLConfig:
    """One internal-RL run."""

    base: str = ""
    """Folder of the frozen base model."""
    meta: str = ""
    """Folder of the trained metacontroller."""
    env: str = "grid"
    """Environment family."""
    task_set: str = "posttrain"
    """Task set to solve (the sparse-reward post-training task by default)."""
    episodes: int = 50_000
    """Episode budget."""
    batch_episodes: int = 256
    """Episodes per PPO batch (paper: 1024 grid, 256 ant)."""
    lr: float = 3e-4
    """Adam learning rate of the policy."""
    clip: float = 0.2
    """PPO clipping."""
    epochs: int = 2
    """PPO passes per batch."""
    minibatches: int = 4
    """Minibatches per pass."""
    hidden: int = 64
    """GRU width of the policy."""
    threshold: float = 0.5
    """Switch threshold of the binarised gate."""
    z_bound: float = 4.0
    """Latent action bound."""
    seed: int = 0
    """Seed of environments, policy initialisation and sampling."""
    out_dir: str = "runs/internal-rl"
    """Output folder."""
    progress: bool = True
    """Show a progress bar."""


@torch.no_grad()
def collect(core: LatentCore, policy: LatentPolicy, seeds: list[int],
            generator: torch.Generator) -> tuple[Trajectories, dict]:
    """Play one episode per row of ``core`` with ``policy``; returns the trajectories.

    Event-driven: a row that switches gets its next code at once, inside the same raw
    iteration, so no row idles waiting for the others (unlike a lockstep ``VecEnv``).
    """
    n = core.n
    core.reset(np.arange(n), seeds)
    state = policy.initial_state(n)
    done = np.zeros(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float32)
    success = np.zeros(n, dtype=bool)
    decisions: list[list[tuple]] = [[] for _ in range(n)]
    need = np.arange(n)
    raw_steps = 0
    while not done.all():
        if len(need):
            idx = torch.as_tensor(need)
            obs = torch.as_tensor(core.observation()[need])
            z, logp, state_rows = policy.act(obs, state[:, idx], generator)
            state[:, idx] = state_rows
            for j, row in enumerate(need.tolist()):
                decisions[row].append((obs[j], z[j], logp[j]))
            core.begin(need, z.numpy())
        stopped = core.raw_step()
        raw_steps += int(core.running.sum()) + len(stopped)
        returns[stopped] += core.reward[stopped]  # the stopped rows' latent-step rewards
        ended = stopped[core.terminated[stopped] | core.truncated[stopped]]
        for row in ended.tolist():
            success[row] = core.info(row)["is_success"]
        done[ended] = True
        need = stopped[~done[stopped]]
    lengths = [len(d) for d in decisions]
    t_max = max(lengths)
    obs_dim, n_z = core.obs_dim, core.meta.cfg.n_z
    obs_t = torch.zeros(n, t_max, obs_dim)
    z_t = torch.zeros(n, t_max, n_z)
    lp_t = torch.zeros(n, t_max)
    mask = torch.zeros(n, t_max, dtype=torch.bool)
    for row, items in enumerate(decisions):
        for t, (o, z, lp) in enumerate(items):
            obs_t[row, t], z_t[row, t], lp_t[row, t] = o, z, lp
        mask[row, : len(items)] = True
    batch = Trajectories(obs=obs_t, actions=z_t, log_probs=lp_t, mask=mask,
                         returns=torch.as_tensor(returns))
    return batch, {"success_rate": float(success.mean()), "mean_return": float(returns.mean()),
                   "latent_steps": float(np.mean(lengths)), "raw_steps": raw_steps / n}


def save_policy(policy: LatentPolicy, out: Path, extra: dict) -> None:
    with atomic_path(out / "policy.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(tmp))
    write_json(out / "policy.json", extra)


def _resumable(config: dict) -> dict:
    """The settings a checkpoint must share with a run to be continued by it."""
    return {k: v for k, v in config.items() if k not in ("episodes", "progress")}


def internal_rl(cfg: InternalRLConfig) -> dict:
    """Run internal RL; returns the summary (also written to ``summary.json``)."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    base, meta = load_model(cfg.base), load_metacontroller(cfg.meta)
    for p in [*base.parameters(), *meta.parameters()]:
        p.requires_grad_(False)
    n = min(cfg.batch_episodes, cfg.episodes)
    core = LatentCore(base, meta, make_raw_batch(cfg.env, cfg.task_set, n), cfg.threshold,
                      cfg.z_bound)
    policy = LatentPolicy(core.obs_dim, meta.cfg.n_z, cfg.hidden)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    ppo = PPOConfig(lr=cfg.lr, clip=cfg.clip, epochs=cfg.epochs, minibatches=cfg.minibatches)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done_batches = 0
    if (out / "policy.json").is_file():  # resume after an interruption, or extend the budget
        saved = json.loads((out / "policy.json").read_text())
        if _resumable(saved.get("config", {})) == _resumable(dataclasses.asdict(cfg)):
            policy.load_state_dict(load_file(str(out / "policy.safetensors")))
            done_batches = int(saved["batches"])
    logger = RunLogger(out, resume_step=done_batches * n)
    curve_path = out / "curve.csv"
    if done_batches == 0:
        with open(curve_path, "w", newline="") as f:
            csv.writer(f).writerow(["episodes", "success_rate", "mean_return", "latent_steps",
                                    "raw_steps", "seconds"])
    generator = torch.Generator().manual_seed(cfg.seed * 7919 + done_batches)
    rng = np.random.default_rng([cfg.seed, done_batches])
    total_batches = max(1, cfg.episodes // n)
    bar = tqdm(total=total_batches * n, initial=done_batches * n, unit="ep",
               desc="internal RL", disable=not cfg.progress)
    first = last = None
    for k in range(done_batches, total_batches):
        seeds = [cfg.seed * 2**32 + k * n + i for i in range(n)]
        batch, stats = collect(core, policy, seeds, generator)
        first = first or stats
        last = stats
        losses = ppo_update(policy, opt, batch, ppo, rng)
        episodes = (k + 1) * n
        elapsed = time.perf_counter() - start
        with open(curve_path, "a", newline="") as f:
            csv.writer(f).writerow([episodes, stats["success_rate"], stats["mean_return"],
                                    stats["latent_steps"], stats["raw_steps"], round(elapsed, 1)])
        logger.log(episodes, {**{f"charts/{k}": v for k, v in stats.items()},
                              **{f"losses/{k}": v for k, v in losses.items()}})
        save_policy(policy, out, {"config": dataclasses.asdict(cfg), "batches": k + 1,
                                  "obs_dim": core.obs_dim, "n_z": meta.cfg.n_z})
        bar.update(n)
        bar.set_postfix(success=f"{stats['success_rate']:.3f}")
    bar.close()
    logger.close()
    summary = {"config": dataclasses.asdict(cfg), "versions": versions(),
               "success_before_rl": first["success_rate"] if first else None,
               "final_success_rate": last["success_rate"] if last else None,
               "seconds": round(time.perf_counter() - start, 1)}
    write_json(out / "summary.json", summary)
    return summary
