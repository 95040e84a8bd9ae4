"""Raw-action RL baseline: the pretrained base model itself as the policy (PAPER §7).

The base model's own action distribution is fine-tuned with the same critic-free PPO loop as
internal RL (:func:`irl_agents.episodic_trainer.train_episodic`), acting at every raw step
instead of choosing a latent code at each switch. ``raw_action_rl(cfg)`` writes the same files
as internal RL (``curve.csv``, logs, a resumable ``policy.safetensors``, ``summary.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from irl_agents.configs import DictConfig
from irl_agents.episodic_trainer import MAX_SEED, claim_episodic_run, train_episodic
from irl_agents.models import BaseModel, load_model
from irl_agents.precision import PRECISIONS
from irl_agents.raw_batch import RawBatch, make_raw_batch
from irl_agents.rl import EpisodicPolicy, PPOConfig, Trajectories
from irl_envs.families import FAMILIES
from irl_envs.tasks import parse_task
from irl_envs.validation import check_choice, check_device, check_float, check_int


class BaseModelPolicy(EpisodicPolicy):
    """A :class:`BaseModel` seen as an :class:`EpisodicPolicy` over raw actions.

    Args:
        model: the pretrained base model (its weights are what RL updates).
    """

    def __init__(self, model: BaseModel) -> None:
        super().__init__()
        self.model = model

    def initial_state(self, batch_size: int):
        return self.model.initial_state(batch_size)

    @torch.no_grad()
    def act(self, obs: Tensor, state, generator: torch.Generator | None = None):
        out, state = self.model.step(obs, state, predict_obs=False)
        dist = self.model.action_distribution(out)
        # drawn on the CPU (the generator's device), so a run's noise is the same anywhere
        if self.model.config.discrete:
            probs = out.logits.softmax(-1).cpu()
            actions = torch.multinomial(probs, 1, generator=generator)[:, 0].to(out.logits.device)
        else:
            noise = torch.randn(out.mean.shape, generator=generator).to(out.mean.device)
            actions = out.mean + noise * out.log_std.exp()
        return actions, dist.log_prob(actions), state

    def log_prob(self, obs: Tensor, actions: Tensor, mask: Tensor) -> Tensor:
        out = self.model(obs)
        if self.model.config.discrete:
            actions = torch.where(mask, actions.long(), torch.zeros_like(actions, dtype=torch.long))
        return self.model.action_distribution(out).log_prob(actions)


@torch.no_grad()
def collect_raw(raw: RawBatch, policy: BaseModelPolicy, seeds: list[int],
                generator: torch.Generator) -> tuple[Trajectories, dict]:
    """One episode per row of ``raw`` with the base model choosing every raw action.

    All rows step together (one batched model step); rows whose episode ended are masked.
    """
    n, device = raw.num_envs, policy.model.device
    rows = np.arange(n)
    obs = torch.as_tensor(raw.reset(rows, seeds), dtype=torch.float32, device=device)
    state = policy.initial_state(n)
    live = np.ones(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float32)
    obs_t, act_t, lp_t, mask_t = [], [], [], []
    while live.any():
        actions, logp, state = policy.act(obs, state, generator)
        obs_t.append(obs.clone())
        act_t.append(actions)
        lp_t.append(logp)
        mask_t.append(torch.as_tensor(live.copy(), device=device))
        idx = np.flatnonzero(live)
        o, r, term, trunc = raw.step(idx, actions.cpu().numpy()[idx])
        returns[idx] += r
        obs[torch.as_tensor(idx, device=device)] = torch.as_tensor(o, dtype=torch.float32,
                                                                   device=device)
        live[idx[term | trunc]] = False
    mask = torch.stack(mask_t, 1)
    success = returns > 0
    batch = Trajectories(obs=torch.stack(obs_t, 1), actions=torch.stack(act_t, 1),
                         log_probs=torch.stack(lp_t, 1) * mask, mask=mask,
                         returns=torch.as_tensor(returns, device=device))
    return batch, {"success_rate": float(success.mean()), "mean_return": float(returns.mean()),
                   "raw_steps": float(mask.sum()) / n}


@dataclass
class RawActionConfig(DictConfig):
    """One raw-action RL run (the baseline of PAPER §7)."""

    base: str = ""
    """Folder of the pretrained base model (fine-tuned; the folder itself is not changed)."""
    env: str = "grid"
    """Environment family."""
    task_set: str = "posttrain"
    """Task set to solve."""
    task: str | None = None
    """A single task such as ``"0-1-2-3"`` that replaces the task set's tasks."""
    env_workers: int = 1
    """Processes stepping the raw environments (see ``InternalRLConfig.env_workers``)."""
    episodes: int = 50_000
    """Episode budget."""
    batch_episodes: int = 256
    """Episodes per PPO batch."""
    lr: float = PPOConfig.lr
    """Adam learning rate (PAPER §6: 3e-5, ``PPOConfig.lr``)."""
    clip: float = PPOConfig.clip
    """PPO clipping."""
    epochs: int = 2
    """PPO passes per batch."""
    minibatches: int = 4
    """Minibatches per pass."""
    seed: int = 0
    """Seed of environments and sampling."""
    device: str = "cpu"
    """Torch device of the base model (the policy); the environments stay on the CPU."""
    precision: str = "fp32"
    """Forward pass of the PPO update (:mod:`irl_agents.precision`)."""
    out_dir: str = "runs/raw-action"
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
        check_int("seed", self.seed, 0, MAX_SEED)
        check_float("lr", self.lr, positive=True)
        check_float("clip", self.clip, positive=True)


def raw_action_rl(cfg: RawActionConfig) -> dict:
    """Fine-tune the base model on raw actions; returns the summary (also ``summary.json``)."""
    with claim_episodic_run("raw-action", cfg) as run:
        torch.manual_seed(cfg.seed)
        model = load_model(cfg.base, device=cfg.device).train(False)  # eval semantics: no dropout
        policy = BaseModelPolicy(model)
        raw = make_raw_batch(cfg.env, cfg.task_set, cfg.batch_episodes, cfg.task,
                             cfg.env_workers)
        ppo = PPOConfig(lr=cfg.lr, clip=cfg.clip, epochs=cfg.epochs, minibatches=cfg.minibatches,
                        precision=cfg.precision)
        return train_episodic(policy, lambda seeds, gen: collect_raw(raw, policy, seeds, gen),
                              episodes=cfg.episodes, batch_episodes=cfg.batch_episodes, ppo=ppo,
                              seed=cfg.seed, run=run, config=dataclasses.asdict(cfg),
                              progress=cfg.progress, desc="raw-action RL")
