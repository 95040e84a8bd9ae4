"""Training the metacontroller on unlabeled expert episodes (PAPER §5), CleanRL style.

``discover(cfg)`` reads a base model and a dataset, trains a :class:`Metacontroller` with the
ELBO ``sum_t -ln p(a_t | o_1:t, z_1:t) + alpha KL_t`` (base frozen, or co-trained), scores
its switching against the true subgoal boundaries, and writes::

    out_dir/metacontroller.safetensors + metacontroller.json   (atomic)
    out_dir/base/                      the co-trained base model (co-training only)
    out_dir/metrics.csv, out_dir/tb/   logs (losses/..., charts/...; step, wall_time, tag, value)
    out_dir/summary.json               final alignment and losses, config, versions, time
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from irl_agents.episodes import EpisodeBatch, iterate_batches, pad_episodes, split_episodes
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig, Posterior
from irl_agents.models import BaseModel, build_model, load_model, save_model
from irl_agents.run_logger import RunLogger
from irl_agents.switching import alignment
from irl_envs.atomic import atomic_path, write_json
from irl_envs.datasets import Demonstrations, load_dataset
from irl_envs.versions import versions


@dataclass
class DiscoverConfig:
    """One metacontroller training run."""

    base: str = ""
    """Folder of the pretrained base model (``irl pretrain`` output ``.../model``)."""
    dataset: str = ""
    """Demonstrations to train on (the pretraining data; labels are used only for scoring)."""
    out_dir: str = "runs/discover"
    """Output folder."""
    alpha: float = 0.1
    """Weight of the KL term (rate-distortion trade-off)."""
    layer: int | None = None
    """Boundary to control; ``None`` means L/2."""
    n_z: int = 8
    """Latent code size."""
    rank: int = 16
    """Controller rank (0: full matrix)."""
    force_switch: bool = False
    """Ablation: beta_t = 1 at every step (no temporal abstraction)."""
    cotrain: str = "frozen"
    """``"frozen"`` (the method), ``"pretrained"`` (co-train starting from the base weights)
    or ``"scratch"`` (co-train a freshly initialised base of the same architecture)."""
    steps: int = 1500
    """Gradient steps."""
    batch_size: int = 64
    """Episodes per step."""
    lr: float = 1e-3
    """AdamW learning rate (paper: 1e-3)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    base_lr: float = 3e-4
    """Learning rate of the base model when co-training."""
    obs_weight: float = 0.01
    """lambda for the base model's observation loss when co-training."""
    eval_episodes: int = 500
    """Held-out episodes for the switching alignment at the end."""
    seed: int = 0
    """Seed of initialisation, batching and the episode split."""
    log_every: int = 50
    """Metrics every this many steps."""
    progress: bool = True
    """Show a progress bar."""


def elbo_terms(base: BaseModel, meta: Metacontroller, batch: EpisodeBatch, alpha: float,
               obs_weight: float = 0.0, sample: bool = True
               ) -> tuple[torch.Tensor, dict, Posterior]:
    """Negative ELBO of a batch: action NLL (+ lambda obs NLL when co-training) + alpha KL."""
    post: dict[str, Posterior] = {}

    def controller(e: torch.Tensor) -> torch.Tensor:
        post["p"] = meta.posterior(e, batch.mask, sample=sample)
        return meta.decode(post["p"].z)(e)

    nll, parts = base.loss(batch.obs, batch.actions, batch.mask, obs_weight,
                           controller=controller, layer=meta.cfg.layer)
    p = post["p"]
    m = batch.mask.to(p.kl.dtype)
    kl = (p.kl * m).sum() / m.sum()
    switch_rate = ((p.beta[:, 1:] >= 0.5).to(m.dtype) * m[:, 1:]).sum() / m[:, 1:].sum()
    parts = {**parts, "kl": kl.detach(), "switch_rate": switch_rate.detach()}
    return nll + alpha * kl, parts, p


@torch.no_grad()
def score_switching(base: BaseModel, meta: Metacontroller, data: Demonstrations,
                    index: np.ndarray, batch_size: int = 128) -> dict[str, float]:
    """Alignment of the posterior's gates (posterior means) with subgoal boundaries."""
    betas, labels = [], []
    nll, count = 0.0, 0
    for start in range(0, len(index), batch_size):
        batch = pad_episodes(data, index[start : start + batch_size])
        _, parts, post = elbo_terms(base, meta, batch, 0.0, sample=False)
        n = int(batch.mask.sum())
        nll, count = nll + float(parts["action_nll"]) * n, count + n
        for i, length in enumerate(batch.mask.sum(1).tolist()):
            betas.append(post.beta[i, :length].numpy())
            labels.append(batch.subgoals[i, :length].numpy())
    return {**alignment(betas, labels), "action_nll": nll / max(count, 1)}


def save_metacontroller(meta: Metacontroller, folder: str | Path,
                        extra: dict | None = None) -> Path:
    """Write ``metacontroller.safetensors`` + ``metacontroller.json`` atomically."""
    folder = Path(folder)
    with atomic_path(folder / "metacontroller.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in meta.state_dict().items()}, str(tmp))
    write_json(folder / "metacontroller.json",
               {"config": meta.cfg.to_dict(), "versions": versions(), **(extra or {})})
    return folder


def load_metacontroller(folder: str | Path) -> Metacontroller:
    """Inverse of :func:`save_metacontroller`; clear ``ValueError`` on a bad folder."""
    folder = Path(folder)
    try:
        cfg = MetacontrollerConfig.from_dict(
            json.loads((folder / "metacontroller.json").read_text())["config"])
        state = load_file(str(folder / "metacontroller.safetensors"))
    except (OSError, KeyError, json.JSONDecodeError, Exception) as err:  # noqa: BLE001
        raise ValueError(f"{folder} is not a readable metacontroller ({err})") from None
    meta = Metacontroller(cfg)
    try:
        meta.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{folder}: tensors do not match the config ({err})") from None
    return meta


def discover(cfg: DiscoverConfig) -> dict:
    """Train one metacontroller; returns the summary (also written to ``summary.json``)."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = load_dataset(cfg.dataset)
    base = load_model(cfg.base)
    if cfg.cotrain == "scratch":
        base = build_model(base.config)
    elif cfg.cotrain not in ("frozen", "pretrained"):
        raise ValueError("cotrain must be 'frozen', 'pretrained' or 'scratch', "
                         f"got {cfg.cotrain!r}")
    frozen = cfg.cotrain == "frozen"
    for p in base.parameters():
        p.requires_grad_(not frozen)
    base.train(not frozen)
    layer = base.n_layers // 2 if cfg.layer is None else cfg.layer
    meta = Metacontroller(MetacontrollerConfig(d_model=base.d_model, layer=layer, n_z=cfg.n_z,
                                               rank=cfg.rank, force_switch=cfg.force_switch))
    groups = [{"params": meta.parameters(), "lr": cfg.lr}]
    if not frozen:
        groups.append({"params": base.parameters(), "lr": cfg.base_lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    train, val = split_episodes(data.num_episodes, 0.1, cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(out)
    bar = tqdm(total=cfg.steps, desc=f"discover a={cfg.alpha}", disable=not cfg.progress)
    step = 0
    while step < cfg.steps:
        for batch in iterate_batches(data, train, cfg.batch_size, rng):
            loss, parts, _ = elbo_terms(base, meta, batch, cfg.alpha,
                                        obs_weight=0.0 if frozen else cfg.obs_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]]
                                           if not frozen else meta.parameters(), 1.0)
            opt.step()
            step += 1
            bar.update()
            if step % cfg.log_every == 0 or step == cfg.steps:
                logger.log(step, {"losses/action_nll": parts["action_nll"],
                                  "losses/kl": parts["kl"],
                                  "charts/switch_rate": parts["switch_rate"]})
                bar.set_postfix(nll=f"{float(parts['action_nll']):.3f}",
                                kl=f"{float(parts['kl']):.2f}",
                                sw=f"{float(parts['switch_rate']):.3f}")
            if step >= cfg.steps:
                break
    bar.close()
    logger.close()
    base.eval()
    meta.eval()
    score = score_switching(base, meta, data, val[: cfg.eval_episodes])
    seconds = round(time.perf_counter() - start, 1)
    summary = {"alignment": score, "config": dataclasses.asdict(cfg), "layer": layer,
               "seconds": seconds, "versions": versions()}
    save_metacontroller(meta, out, extra={"discover": dataclasses.asdict(cfg), "layer": layer})
    if not frozen:
        save_model(base, out / "base", extra={"cotrained_with": str(out)})
    write_json(out / "summary.json", summary)
    return summary
