"""Ground-truth-label controllers: the steering check of PAPER §4 (Fig. 4).

One rank-r linear controller per subgoal is trained at a layer boundary of the frozen base
model by action NLL on expert data, selected at every step by the true subgoal label. Then
the controllers are switched on in the true order of a new, longer task (the post-training
task): if the residual stream represents subgoals, steering it composes them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from irl_agents.episodes import pad_episodes, similar_length_batch, split_episodes
from irl_agents.model_rollout import rollout_success, subgoal_breakdown, subgoal_indices
from irl_agents.models import BaseModel, ControllerBank
from irl_agents.precision import autocast
from irl_envs.datasets import Demonstrations
from irl_envs.families import env_id, family
from irl_envs.tasks import TASK_SETS, transitions


@dataclass
class ControllerConfig:
    """Training and evaluation of ground-truth controllers."""

    layer: int = 2
    """Layer boundary where the controllers act (paper: L/2)."""
    rank: int = 16
    """Rank of each controller U_k = A_k B_k^T (paper: 16); 0 means full d x d."""
    steps: int = 300
    """Gradient steps."""
    batch_size: int = 64
    """Episodes per batch."""
    lr: float = 3e-3
    """AdamW learning rate."""
    lr_schedule: str = "cosine"
    """``"constant"``, or ``"cosine"`` decay to 10% of ``lr`` over ``steps``."""
    weight_decay: float = 0.0
    """AdamW weight decay on the controller factors."""
    eval_episodes: int = 500
    """Post-training episodes for the success rate."""
    greedy: bool = False
    """Evaluate with the most likely action instead of sampling."""
    seed: int = 0
    """Seed of batching, initialisation and evaluation."""
    precision: str = "auto"
    """Training precision, ``"auto"``, ``"fp32"`` or ``"bf16"`` (:mod:`irl_agents.precision`);
    evaluation runs in fp32."""


def train_controllers(model: BaseModel, data: Demonstrations, cfg: ControllerConfig,
                      progress: bool = True, num_controllers: int | None = None
                      ) -> tuple[ControllerBank, dict]:
    """Fit one controller per subgoal label with the base model frozen (``num_controllers``,
    default: the largest label + 1; a label without steps keeps its initial controller).

    Batches are episodes of similar length (little padding), drawn with an RNG seeded by
    ``(seed, step)``; ``final_action_nll`` is the mean over the last 50 steps.
    """
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {cfg.lr_schedule!r}")
    torch.manual_seed(cfg.seed)
    num_subgoals = int(data.subgoals.max()) + 1 if num_controllers is None else num_controllers
    bank = ControllerBank(num_subgoals, model.d_model, rank=cfg.rank or None).to(model.device)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    opt = torch.optim.AdamW(bank.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    train, _ = split_episodes(data.num_episodes, 0.0, cfg.seed)
    start, recent = time.perf_counter(), []
    for step in tqdm(range(cfg.steps), desc=f"controllers@{cfg.layer}", disable=not progress):
        rng = np.random.default_rng([cfg.seed, step])
        batch = pad_episodes(data, similar_length_batch(data, train, cfg.batch_size, rng),
                             keep_dtype=True, device=model.device)
        index = batch.subgoals.clamp_min(0)
        if cfg.lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / cfg.steps)))
        with autocast(cfg.precision, model.device):
            # steps labelled -1 (no subgoal known) train no controller
            loss, parts = model.loss(batch.obs, batch.actions, batch.mask & (batch.subgoals >= 0),
                                     controller=lambda e, i=index: bank(e, i), layer=cfg.layer)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        recent = [*recent[-49:], float(parts["action_nll"])]
    return bank, {"final_action_nll": float(np.mean(recent)) if recent else float("nan"),
                  "train_seconds": round(time.perf_counter() - start, 1)}


def evaluate_controllers(model: BaseModel, bank: ControllerBank | None, cfg: ControllerConfig,
                         env: str = "grid", task_set: str = "posttrain",
                         task: Sequence[int] | None = None) -> dict:
    """Success rate with the controllers switched on in the true subgoal order, and the
    success per subgoal by how it is entered (:func:`subgoal_breakdown`).

    With ``bank=None`` the base model runs unsteered (the reference point). ``task`` replaces
    the task set by one task (e.g. a long task made only of transitions seen in pretraining).
    """
    fam = family(env)
    tasks = None if task is None else [list(task)]
    venv = fam.make_vec(env_id(env, task_set), cfg.eval_episodes, tasks=tasks)

    def controller_fn(info):
        return bank.controller(subgoal_indices(info, fam.subgoal)) if bank is not None else None

    with torch.no_grad():
        res = rollout_success(model, venv, seed=10_000 + cfg.seed, controller_fn=controller_fn,
                              layer=cfg.layer, greedy=cfg.greedy)
    venv.close()
    seen = transitions(TASK_SETS[env]["pretrain"])
    return {"success_rate": float(res["success"].mean()),
            "mean_progress": float(res["progress"].mean()),
            "mean_length": float(res["length"].mean()),
            **subgoal_breakdown(res, seen, fam.colours_per_subgoal)}


def plot_layer_sweep(rows: list[dict], path: str) -> None:
    """Success rate vs insertion layer (rows of :func:`evaluate_controllers` plus ``layer``;
    a row with layer ``"none"`` is drawn as the unsteered reference line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steered = [r for r in rows if r["layer"] != "none"]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot([r["layer"] for r in steered], [r["success_rate"] for r in steered], marker="o",
            label="ground-truth controllers")
    for r in rows:
        if r["layer"] == "none":
            ax.axhline(r["success_rate"], color="grey", ls="--", lw=1, label="no controller")
    ax.set_xlabel("insertion layer boundary l")
    ax.set_ylabel("post-training success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
