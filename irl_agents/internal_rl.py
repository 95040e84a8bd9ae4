"""Internal RL: critic-free PPO over latent codes in the latent-action environment (PAPER §6).

``internal_rl(cfg)`` loads a frozen base model and a metacontroller, builds a batch of latent
environments (one batched base-model step per raw step), and trains :class:`LatentPolicy` with
the shared critic-free PPO loop (:func:`irl_agents.episodic_trainer.train_episodic`: curve,
logs, resumable checkpoints, ``summary.json``), one batch of whole episodes at a time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch

from irl_agents.configs import DictConfig
from irl_agents.discovery import check_base_reads, check_controls
from irl_agents.episodic_trainer import MAX_SEED, claim_episodic_run, train_episodic
from irl_agents.latent_env import LatentController, LatentCore
from irl_agents.latent_policy import LatentPolicy
from irl_agents.models import load_metacontroller, load_model
from irl_agents.precision import PRECISIONS
from irl_agents.raw_batch import make_raw_batch
from irl_agents.rl import PPOConfig, Trajectories
from irl_envs.families import FAMILIES
from irl_envs.tasks import parse_task
from irl_envs.validation import check_choice, check_device, check_float, check_int


@dataclass
class InternalRLConfig(DictConfig):
    """One internal-RL run."""

    base: str = ""
    """Folder of the frozen base model."""
    meta: str = ""
    """Folder of the trained metacontroller."""
    env: str = "grid"
    """Environment family (``irl_envs.families``)."""
    task_set: Literal["pretrain", "posttrain"] = "posttrain"
    """Task set to solve (the sparse-reward post-training task by default)."""
    task: str | None = None
    """A single task such as ``"0-1-2-3"`` that replaces the task set's tasks."""
    greedy: bool = False
    """Take the base model's most likely raw action instead of sampling it."""
    env_workers: int = 1
    """Processes stepping the raw environments (ant: 2 uses both cores; grid: ignored, its
    numpy core steps every row at once)."""
    episodes: int = 50_000
    """Episode budget (at least ``batch_episodes``; rounded down to whole batches)."""
    batch_episodes: int = 256
    """Episodes per PPO batch (paper: 1024 grid, 256 ant)."""
    lr: float = 3e-4
    """Adam learning rate of the policy. Ten times the paper's ``PPOConfig.lr`` (3e-5, used by
    the raw-action baseline, which fine-tunes the pretrained base model): this policy is a small
    GRU trained from the prior, and at 3e-5 its updates are too small to matter within the
    CPU-scale budgets (docs/results/internal_rl.md, "Internal RL at CPU scale")."""
    clip: float = PPOConfig.clip
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
    device: str = "cpu"
    """Torch device of the base model, metacontroller and policy (``"cpu"``, ``"cuda"``, ...);
    the environments and the action noise stay on the CPU."""
    precision: str = "fp32"
    """Forward pass of the PPO update: ``"fp32"``, ``"bf16"`` or ``"auto"``
    (:mod:`irl_agents.precision`)."""
    out_dir: str = "runs/internal-rl"
    """Output folder (see :mod:`irl_agents.run_folder`)."""
    overwrite: bool = False
    """Replace a run with other settings in ``out_dir`` instead of refusing to start."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_choice("env", self.env, tuple(FAMILIES))
        check_choice("task_set", self.task_set, ("pretrain", "posttrain"))
        check_choice("precision", self.precision, PRECISIONS)
        check_device(self.device)
        if self.task is not None:
            parse_task(self.task)
        check_int("env_workers", self.env_workers, 1)
        check_int("batch_episodes", self.batch_episodes, 1)
        check_int("episodes", self.episodes, self.batch_episodes)
        check_int("epochs", self.epochs, 0)
        check_int("minibatches", self.minibatches, 1)
        check_int("hidden", self.hidden, 1)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_float("lr", self.lr, positive=True)
        check_float("clip", self.clip, positive=True)
        check_float("threshold", self.threshold, positive=True, high=1.0)
        check_float("z_bound", self.z_bound, positive=True)


@torch.no_grad()
def collect(core: LatentCore, policy: LatentPolicy, seeds: list[int],
            generator: torch.Generator) -> tuple[Trajectories, dict]:
    """Play one episode per row of ``core`` with ``policy``; returns the trajectories.

    Event-driven: a row that switches gets its next code at once, inside the same raw
    iteration, so no row idles waiting for the others (unlike a lockstep ``VecEnv``).
    """
    n, device = core.n, policy.log_std.device
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
            idx = torch.as_tensor(need, device=device)
            obs = torch.as_tensor(core.observation()[need], device=device)
            z, logp, state_rows = policy.act(obs, state[:, idx], generator)
            state[:, idx] = state_rows
            for j, row in enumerate(need.tolist()):
                decisions[row].append((obs[j], z[j], logp[j]))
            core.begin(need, z.cpu().numpy())
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
    obs_t = torch.zeros(n, t_max, obs_dim, device=device)
    z_t = torch.zeros(n, t_max, n_z, device=device)
    lp_t = torch.zeros(n, t_max, device=device)
    mask = torch.zeros(n, t_max, dtype=torch.bool, device=device)
    for row, items in enumerate(decisions):
        for t, (o, z, lp) in enumerate(items):
            obs_t[row, t], z_t[row, t], lp_t[row, t] = o, z, lp
        mask[row, : len(items)] = True
    batch = Trajectories(obs=obs_t, actions=z_t, log_probs=lp_t, mask=mask,
                         returns=torch.as_tensor(returns, device=device))
    return batch, {"success_rate": float(success.mean()), "mean_return": float(returns.mean()),
                   "latent_steps": float(np.mean(lengths)), "raw_steps": raw_steps / n}


def internal_rl(cfg: InternalRLConfig, meta: LatentController | None = None) -> dict:
    """Run internal RL; returns the summary (also written to ``summary.json``).

    Args:
        cfg: the run's settings.
        meta: an already built :class:`~irl_agents.latent_env.LatentController` (e.g. the
            CompILE baseline) to use instead of loading ``cfg.meta``.
    """
    with claim_episodic_run("internal-rl", cfg) as run:
        torch.manual_seed(cfg.seed)
        base = load_model(cfg.base, device=cfg.device)
        meta = (meta if meta is not None else load_metacontroller(cfg.meta)).to(cfg.device)
        for p in [*base.parameters(), *meta.parameters()]:
            p.requires_grad_(False)
        check_controls(meta, base, cfg.meta or "the latent controller")
        raw = make_raw_batch(cfg.env, cfg.task_set, cfg.batch_episodes, cfg.task,
                             cfg.env_workers)
        check_base_reads(base, cfg.base, int(np.prod(raw.observation_space.shape)),
                         isinstance(raw.action_space, gym.spaces.Discrete), f"env {cfg.env!r}")
        core = LatentCore(base, meta, raw, cfg.threshold, cfg.z_bound, cfg.greedy)
        policy = LatentPolicy(core.obs_dim, meta.cfg.n_z, cfg.hidden).to(cfg.device)
        ppo = PPOConfig(lr=cfg.lr, clip=cfg.clip, epochs=cfg.epochs, minibatches=cfg.minibatches,
                        precision=cfg.precision)
        return train_episodic(policy, lambda seeds, gen: collect(core, policy, seeds, gen),
                              episodes=cfg.episodes, batch_episodes=cfg.batch_episodes, ppo=ppo,
                              seed=cfg.seed, run=run, config=dataclasses.asdict(cfg),
                              progress=cfg.progress, desc="internal RL")
