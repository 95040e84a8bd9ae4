"""Training the metacontroller on unlabeled expert episodes (PAPER §5), CleanRL style.

``discover(cfg)`` reads a base model and a dataset, trains a :class:`Metacontroller` with the
ELBO ``sum_t -ln p(a_t | o_1:t, z_1:t) + alpha KL_t`` (base frozen, or co-trained), scores
its switching against the true subgoal boundaries, and writes::

    out_dir/metacontroller.safetensors + metacontroller.json   (atomic)
    out_dir/base/                      the co-trained base model (co-training only)
    out_dir/metrics.csv, out_dir/tb/   logs (losses/..., charts/...; step, wall_time, tag, value)
    out_dir/summary.json               final alignment and losses, config, versions, time
    out_dir/checkpoint/                resumable state: step-NNNNNNNN/ (metacontroller,
                                       optimizer) and trainer.json, which points to the
                                       newest complete one
    out_dir/run.json                   the command and settings (irl_agents.run_folder)

A run claimed with the same settings resumes from ``out_dir/checkpoint/``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from irl_agents.configs import DictConfig
from irl_agents.episodes import EpisodeBatch, pad_episodes, similar_length_batch, split_episodes
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig, Posterior
from irl_agents.models import (
    BaseModel,
    build_model,
    load_model,
    optimizer_to_tensors,
    save_model,
    save_tensors_atomic,
)
from irl_agents.models.checkpoint import (  # noqa: F401  (load/save: their old home, re-exported)
    load_metacontroller,
    load_optimizer,
    save_metacontroller,
)
from irl_agents.precision import PRECISIONS, autocast
from irl_agents.run_folder import (
    RunFolderError,
    check_resume_budget,
    claim_run,
    records,
    run_config,
)
from irl_agents.run_logger import RunLogger
from irl_agents.switching import alignment, boundaries
from irl_envs.atomic import write_json
from irl_envs.datasets import Demonstrations, load_dataset
from irl_envs.validation import check_choice, check_device, check_float, check_int, check_seed
from irl_envs.versions import versions


@dataclass
class DiscoverConfig(DictConfig):
    """One metacontroller training run."""

    base: str = ""
    """Folder of the pretrained base model (``irl pretrain`` output ``.../model``)."""
    dataset: str = ""
    """Demonstrations to train on (the pretraining data; labels are used only for scoring)."""
    out_dir: str = "runs/discover"
    """Output folder."""
    alpha: float = 0.1
    """Weight of the KL term (rate-distortion trade-off)."""
    kl_warmup: int = 0
    """Steps over which the KL weight rises linearly from 0 to ``alpha``. The decoder starts as
    the identity, so at first z changes nothing and only the KL gradient acts on the encoder;
    a warm-up lets the decoder learn to use z before rate is charged (0: none)."""
    layer: int | None = None
    """Boundary to control; ``None`` means L/2."""
    write_layer: int | None = None
    """Boundary the decoder's controllers write, when not ``layer`` (a departure: the switching
    unit, history and encoder read the unsteered residual at ``layer``; on the gridworld's
    relabelled base the gate aligns at boundary 1 and controllers steer best at 0,
    docs/results/internal_rl.md, "Issue 18"). None: ``layer``, as in the paper."""
    n_z: int = 8
    """Latent code size."""
    rank: int = 16
    """Controller rank (0: full matrix)."""
    force_switch: bool = False
    """Ablation: beta_t = 1 at every step (no temporal abstraction)."""
    embedding: Literal["global", "per_step"] = "global"
    """Encoder's non-causal input: one summary of the whole episode (paper) or one per step
    (see :class:`MetacontrollerConfig`)."""
    codebook: int = 0
    """Decoder: 0, the paper's continuous hypernetwork; K > 0, one of K learned controllers
    (see :class:`MetacontrollerConfig`)."""
    cotrain: Literal["frozen", "pretrained", "scratch"] = "frozen"
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
    device: str = "cpu"
    """Torch device of the base model and the metacontroller (``"cpu"``, ``"cuda"``, ...)."""
    precision: str = "fp32"
    """Training forward pass: ``"fp32"``, ``"bf16"`` or ``"auto"`` (:mod:`irl_agents.precision`;
    scoring always runs in fp32)."""
    log_every: int = 50
    """Metrics every this many steps."""
    checkpoint_every: int = 250
    """Write a resumable checkpoint (``out_dir/checkpoint/``) every this many steps."""
    overwrite: bool = False
    """Replace a run with other settings in ``out_dir`` instead of refusing to start."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_float("alpha", self.alpha, low=0.0)
        check_int("kl_warmup", self.kl_warmup, 0)
        if self.layer is not None:
            check_int("layer", self.layer, 0)
        if self.write_layer is not None:
            check_int("write_layer", self.write_layer, 0)
        for name in ("n_z", "steps", "batch_size", "eval_episodes", "log_every",
                     "checkpoint_every"):
            check_int(name, getattr(self, name), 1)
        check_int("rank", self.rank, 0)
        check_int("codebook", self.codebook, 0)
        check_choice("embedding", self.embedding, ("global", "per_step"))
        check_choice("cotrain", self.cotrain, ("frozen", "pretrained", "scratch"))
        for name in ("lr", "base_lr"):
            check_float(name, getattr(self, name), positive=True)
        for name in ("weight_decay", "obs_weight"):
            check_float(name, getattr(self, name), low=0.0)
        check_seed("seed", self.seed)
        check_choice("precision", self.precision, PRECISIONS)
        check_device(self.device)


def elbo_terms(base: BaseModel, meta: Metacontroller, batch: EpisodeBatch, alpha: float,
               obs_weight: float = 0.0, sample: bool = True
               ) -> tuple[torch.Tensor, dict, Posterior]:
    """Negative ELBO of a batch: action NLL (+ lambda obs NLL when co-training) + alpha KL.

    The posterior reads the residual at ``meta.cfg.layer``; the decoded controller writes at
    ``meta.cfg.write_boundary`` (the same boundary unless ``write_layer`` says otherwise, in
    which case the posterior reads the unsteered stream)."""
    post: dict[str, Posterior] = {}
    write = meta.cfg.write_boundary
    if write != meta.cfg.layer:
        post["p"] = meta.posterior(base.prefix(batch.obs, meta.cfg.layer), batch.mask,
                                   sample=sample)

    def controller(e: torch.Tensor) -> torch.Tensor:
        if "p" not in post:
            post["p"] = meta.posterior(e, batch.mask, sample=sample)
        return meta.decode(post["p"].z)(e)

    nll, parts = base.loss(batch.obs, batch.actions, batch.mask, obs_weight,
                           controller=controller, layer=write)
    p = post["p"]
    m = batch.mask.to(p.kl.dtype)
    kl = (p.kl * m).sum() / m.sum()
    switch_rate = ((p.beta[:, 1:] >= 0.5).to(m.dtype) * m[:, 1:]).sum() / m[:, 1:].sum()
    parts = {**parts, "kl": kl.detach(), "switch_rate": switch_rate.detach()}
    return nll + alpha * kl, parts, p


@torch.no_grad()
def score_switching(base: BaseModel, meta: Metacontroller, data: Demonstrations,
                    index: np.ndarray, batch_size: int = 128,
                    threshold: float = 0.5) -> dict[str, float]:
    """Alignment of the posterior's gates (posterior means, binarised at ``threshold``) with
    subgoal boundaries, and the rate (KL per step, nats) and distortion (action NLL per step)
    of the held-out episodes."""
    betas, labels = [], []
    nll = kl = 0.0
    count = 0
    for start in range(0, len(index), batch_size):
        batch = pad_episodes(data, index[start : start + batch_size], device=base.device)
        _, parts, post = elbo_terms(base, meta, batch, 0.0, sample=False)
        n = int(batch.mask.sum())
        nll += float(parts["action_nll"]) * n
        kl += float(parts["kl"]) * n
        count += n
        for i, length in enumerate(batch.mask.sum(1).tolist()):
            betas.append(post.beta[i, :length].cpu().numpy())
            labels.append(batch.subgoals[i, :length].cpu().numpy())
    return {**alignment(betas, labels, threshold), "action_nll": nll / max(count, 1),
            "kl": kl / max(count, 1)}


def check_base_reads(base: BaseModel, base_path: str | Path, obs_dim: int, discrete: bool,
                     source: str) -> None:
    """``ValueError`` unless the base model reads the observations and actions of ``source``
    (a dataset or an environment family): checked before any work, not at the first batch."""
    if obs_dim != base.config.obs_dim or discrete != base.config.discrete:
        raise ValueError(f"{source} (obs_dim {obs_dim}, discrete {discrete}) does not match "
                         f"the base model {base_path} (obs_dim {base.config.obs_dim}, discrete "
                         f"{base.config.discrete})")


def check_controls(meta: Any, base: BaseModel, meta_path: str | Path) -> None:
    """``ValueError`` unless ``meta`` (a metacontroller or anything with its ``cfg.d_model``
    and ``cfg.layer``) writes into this base model's residual stream."""
    if meta.cfg.d_model != base.d_model:
        raise ValueError(f"{meta_path}: metacontroller width {meta.cfg.d_model} != base model "
                         f"width {base.d_model}")
    check_int(f"{meta_path}: metacontroller layer", meta.cfg.layer, 0, base.n_layers)


RUN_SETTINGS = ("out_dir", "steps", "progress", "overwrite", "log_every", "checkpoint_every",
                "device", "precision")
"""Config fields that do not define a run: it may continue with other values (where it runs
and in what precision change results only by rounding)."""


def run_identity(cfg: Any) -> dict:
    """The settings that define a step-based training run (``DiscoverConfig``,
    ``CompileConfig``): what its folder and checkpoints record."""
    return run_config(dataclasses.asdict(cfg), RUN_SETTINGS)


def setting_defaults(cfg: Any) -> dict:
    """Every setting's default: a run (folder or checkpoint) recorded before a setting existed
    resumes under it."""
    return dataclasses.asdict(type(cfg)())


def save_state(ckpt: Path, step: int, cfg: Any, write: Callable[[Path], None]) -> None:
    """A resumable checkpoint: ``write(folder)`` fills ``ckpt/step-NNNNNNNN/``, then
    ``ckpt/trainer.json`` points to it (an atomic write: a checkpoint is complete or not
    there), then older checkpoints go."""
    folder = ckpt / f"step-{step:08d}"
    write(folder)
    write_json(ckpt / "trainer.json",
                     {"step": step, "folder": folder.name, "config": run_identity(cfg)})
    for old in ckpt.glob("step-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


def resume_state(ckpt: Path, cfg: Any) -> tuple[int, Path]:
    """``(step, folder)`` of the complete checkpoint in ``ckpt`` (``(0, ckpt)`` if there is
    none); ``ValueError`` if it belongs to other settings or its step exceeds ``cfg.steps``."""
    marker = ckpt / "trainer.json"
    if not marker.is_file():
        return 0, ckpt
    try:
        saved = json.loads(marker.read_text())
        step = int(saved["step"])
        config = run_config({**setting_defaults(cfg), **saved["config"]}, RUN_SETTINGS)
        folder = ckpt / saved.get("folder", ".")  # older versions: files in ckpt itself
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{marker}: unreadable checkpoint ({err}); pass --overwrite "
                         "(overwrite=True) to start again") from None
    if config != run_identity(cfg):
        raise RunFolderError(f"{ckpt} holds a checkpoint of other settings; pass --overwrite "
                             "(overwrite=True) to start again")
    check_resume_budget("steps", cfg.steps, step, ckpt)
    return step, folder


def _save_state(ckpt: Path, step: int, meta: Metacontroller, base: BaseModel | None,
                opt: torch.optim.Optimizer, cfg: DiscoverConfig) -> None:
    def write(folder: Path) -> None:
        save_metacontroller(meta, folder)
        if base is not None:
            save_model(base, folder / "base")
        tensors, layout = optimizer_to_tensors(opt)
        save_tensors_atomic(folder / "optimizer.safetensors", tensors,
                            metadata={"optimizer": layout})

    save_state(ckpt, step, cfg, write)


def discover(cfg: DiscoverConfig) -> dict:
    """Train one metacontroller; returns the summary (also written to ``summary.json``)."""
    with claim_run(cfg.out_dir, "discover", run_identity(cfg), overwrite=cfg.overwrite,
                   legacy=_legacy_run, defaults=setting_defaults(cfg)) as run:
        return _discover(cfg, run.fresh)


def _legacy_run(folder: Path) -> bool:
    """A discover run of an older version: its checkpoint, or its metacontroller."""
    return ((folder / "checkpoint" / "trainer.json").is_file()
            or records(folder / "metacontroller.json", "discover"))


def _discover(cfg: DiscoverConfig, fresh: bool) -> dict:
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset)
    base = load_model(cfg.base)
    if cfg.cotrain == "scratch":
        base = build_model(base.config)
    base.to(cfg.device)
    check_base_reads(base, cfg.base, data.obs_dim, data.discrete, f"dataset {cfg.dataset}")
    if cfg.layer is not None:
        check_int("layer", cfg.layer, 0, base.n_layers)
    if cfg.write_layer is not None:
        check_int("write_layer", cfg.write_layer, 0, base.n_layers)
    frozen = cfg.cotrain == "frozen"
    out = Path(cfg.out_dir)
    ckpt = out / "checkpoint"
    start_step, state = (0, ckpt) if fresh else resume_state(ckpt, cfg)
    if start_step and not frozen:
        base = load_model(state / "base", device=cfg.device)
    for p in base.parameters():
        p.requires_grad_(not frozen)
    base.train(not frozen)
    layer = base.n_layers // 2 if cfg.layer is None else cfg.layer
    meta = Metacontroller(MetacontrollerConfig(d_model=base.d_model, layer=layer, n_z=cfg.n_z,
                                               rank=cfg.rank, force_switch=cfg.force_switch,
                                               embedding=cfg.embedding,
                                               codebook=cfg.codebook,
                                               write_layer=None if cfg.write_layer == layer
                                               else cfg.write_layer))
    if start_step:
        meta.load_state_dict(load_metacontroller(state).state_dict())
    meta.to(cfg.device)
    groups = [{"params": list(meta.parameters()), "lr": cfg.lr}]
    if not frozen:
        groups.append({"params": list(base.parameters()), "lr": cfg.base_lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    if start_step:
        load_optimizer(opt, state / "optimizer.safetensors")
    train, val = split_episodes(data.num_episodes, 0.1, cfg.seed)
    logger = RunLogger(out, resume_step=start_step)
    bar = tqdm(total=cfg.steps, initial=start_step, desc=f"discover a={cfg.alpha}",
               disable=not cfg.progress)
    step = start_step
    while step < cfg.steps:
        # every step's batch and noise are a function of (seed, step): a resumed run
        # continues exactly as the uninterrupted one would have
        rng = np.random.default_rng([cfg.seed, step])
        torch.manual_seed(int(rng.integers(2**62)))
        batch = pad_episodes(data, similar_length_batch(data, train, cfg.batch_size, rng),
                             device=cfg.device)
        weight = cfg.alpha * min(1.0, step / cfg.kl_warmup) if cfg.kl_warmup else cfg.alpha
        with autocast(cfg.precision, cfg.device):
            loss, parts, _ = elbo_terms(base, meta, batch, weight,
                                        obs_weight=0.0 if frozen else cfg.obs_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
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
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _save_state(ckpt, step, meta, None if frozen else base, opt, cfg)
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


@torch.no_grad()
def plot_beta_traces(base: BaseModel, meta: Metacontroller, data: Demonstrations,
                     index: np.ndarray, path: str | Path) -> None:
    """beta_t (posterior means) against the true subgoal of a few episodes (Fig. 6 / A3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch = pad_episodes(data, index, device=base.device)
    _, _, post = elbo_terms(base, meta, batch, 0.0, sample=False)
    batch, beta = batch.to("cpu"), post.beta.cpu()
    fig, axes = plt.subplots(len(index), 1, figsize=(6, 1.1 * len(index) + 0.4), sharex=True,
                             squeeze=False)
    for ax, i in zip(axes[:, 0], range(len(index)), strict=True):
        length = int(batch.mask[i].sum())
        labels = batch.subgoals[i, :length].numpy()
        ax.step(range(length), beta[i, :length].numpy(), where="mid", color="C0",
                label="beta")
        starts = boundaries(labels)
        for t in starts:
            ax.axvline(t - 0.5, color="C3", ls="--", lw=1)
        ax.set_ylim(-0.05, 1.05)
        ax.set_yticks([0, 1])
        ax.text(1.01, 0.5, "-".join(str(int(v)) for v in labels[np.r_[0, starts]]),
                transform=ax.transAxes, fontsize=7, va="center")
    axes[0, 0].set_title("beta_t (blue) vs true subgoal boundaries (red)", fontsize=8)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
