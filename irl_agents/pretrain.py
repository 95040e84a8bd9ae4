"""Base-model pretraining (PAPER §3), CleanRL style: one function, top to bottom.

``pretrain(cfg)`` trains a causal transformer or Hawk SSM on an expert dataset with the
loss ``-ln p(a_t | o_1:t) - lambda ln p(o_{t+1} | o_1:t)`` and AdamW, and writes::

    out_dir/
      model/                 final model (model.safetensors + config.json, loadable by
                             irl_agents.models.load_model)
      checkpoints/ckpt-NNNNNNNN/   model/, optimizer.safetensors, trainer.json
      checkpoints/latest.json      pointer to the newest complete checkpoint
      metrics.csv            long format: step, wall_time, tag, value
      tb/                    TensorBoard events (tags losses/..., charts/...)
      pretrain_config.json

Every file is written atomically and a checkpoint only becomes ``latest`` once complete,
so an interrupted run resumes from the last checkpoint (``resume=True``, the default)
and produces the same batches as an uninterrupted one (batches are drawn from an RNG
seeded with ``(seed, step)``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from irl_agents.configs import DictConfig
from irl_agents.episode_sources import EpisodeSource, ExpertStream, FileEpisodes
from irl_agents.episodes import EpisodeBatch
from irl_agents.models import (
    BaseModel,
    ModelConfig,
    build_model,
    load_model,
    load_optimizer,
    optimizer_to_tensors,
    save_model,
    save_tensors_atomic,
)
from irl_agents.models.config import GRID_ENCODERS
from irl_agents.precision import PRECISIONS, autocast, autocast_dtype
from irl_agents.run_folder import check_resume_budget, claim_run, run_config
from irl_agents.run_logger import RunLogger
from irl_envs.atomic import write_json
from irl_envs.families import FAMILIES
from irl_envs.validation import check_choice, check_device, check_float, check_int, check_seed


@dataclass
class PretrainConfig(DictConfig):
    """Settings of one pretraining run."""

    dataset: str = ""
    """Path of the demonstration dataset (safetensors, ``irl_envs.datasets`` format). Leave
    empty when ``stream`` is set."""
    stream: str = ""
    """Environment family (``"grid"``, ``"ant"``) whose expert generates fresh episodes while
    training, each used once, instead of reading ``dataset`` (see
    :mod:`irl_agents.episode_sources`)."""
    stream_chunk: int = 16384
    """Streaming: episodes generated at once (one seed each chunk)."""
    stream_noise: float = 0.0
    """Streaming: expert noise (grid: probability of a random non-terminating move)."""
    stream_relabel: bool = False
    """Streaming: the ``stream_noise``-noisy expert's states labelled with its noise-free moves
    (a departure from the paper's data, measured in docs/scaling_grid.md); held-out episodes
    stay the noise-free expert's."""
    stream_envs: int = 4096
    """Streaming: sub-environments generating a chunk (the chunks depend on it; runs before
    this option existed used 256)."""
    stream_workers: int = 0
    """Streaming: worker processes generating the next chunks ahead (0: generate in the
    training process; a GPU needs several to be fed)."""
    out_dir: str = "runs/pretrain"
    """Output folder (model, checkpoints, logs)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture. ``obs_dim``, ``action_dim`` and ``discrete`` are overwritten from the
    dataset."""
    obs_likelihood: str = "auto"
    """``"auto"`` (Bernoulli for binary uint8 observations, else Gaussian), ``"bernoulli"``
    or ``"gaussian"``; overrides ``model.obs_likelihood``."""
    obs_weight: float = 0.01
    """lambda: weight of the next-observation NLL (paper: grid 0-0.01, ant 10)."""
    lr: float = 3e-4
    """AdamW learning rate (after warmup)."""
    weight_decay: float = 0.03
    """AdamW weight decay (paper: 0.03)."""
    warmup_steps: int = 100
    """Linear learning-rate warmup steps."""
    lr_schedule: str = "constant"
    """After warmup: ``"constant"``; ``"cosine"`` decay to 10% of ``lr`` at ``steps``; or
    ``"wsd"`` (warmup-stable-decay): constant, then linear decay to 10% of ``lr`` over the last
    ``decay_fraction`` of the steps, so that milestones before the decay share one learning
    rate (a scaling curve) and the final model still gets annealed."""
    decay_fraction: float = 0.2
    """Share of ``steps`` spent decaying with ``lr_schedule="wsd"``."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 disables clipping)."""
    batch_size: int = 64
    """Episodes per gradient step."""
    steps: int = 2000
    """Number of gradient steps."""
    val_fraction: float = 0.05
    """Fraction of the dataset's episodes held out for the validation loss."""
    val_episodes: int = 256
    """At most this many held-out episodes are used per validation pass (streaming: exactly
    this many, from a seed the stream never draws)."""
    seed: int = 0
    """Seed of the initialisation, the train/val split and the batch sampling."""
    log_every: int = 50
    """Write training metrics every this many steps."""
    eval_every: int = 500
    """Validation pass every this many steps (and at the end); 0 disables it."""
    checkpoint_every: int = 500
    """Write a resumable checkpoint every this many steps and at the end (0: never; the
    final model is always written). A later call with more ``steps`` continues from it."""
    keep_checkpoints: int = 2
    """Number of most recent checkpoints kept on disk."""
    milestones: list[int] = field(default_factory=list)
    """Steps whose model is also kept, with a validation pass, under
    ``out_dir/milestones/step-NNNNNNNN/`` (points of a scaling curve)."""
    resume: bool = True
    """Continue from ``out_dir/checkpoints/latest.json`` when it exists."""
    device: str = "cpu"
    """Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...)."""
    precision: str = "auto"
    """``"fp32"``, or ``"bf16"``: forward and backward under ``torch.autocast`` in bfloat16
    (weights, optimizer and validation stay fp32); ``"auto"``: bf16 where the device has it
    natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU with bf16), else fp32. On this project's
    CPU bf16 gives the fp32 loss curve at ~1.3x the tokens per second (docs/benchmarks.md)."""
    num_threads: int = 0
    """CPU threads for torch (0 keeps torch's default). On a busy 2-core machine 1 thread can
    be several times faster than 2."""
    progress: bool = True
    """Show a tqdm progress bar."""
    overwrite: bool = False
    """Replace a run with other settings in ``out_dir`` instead of refusing to start (see
    :mod:`irl_agents.run_folder`)."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "keep_checkpoints", "val_episodes",
                     "stream_chunk", "stream_envs"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "num_threads"):
            check_int(name, getattr(self, name), 0)
        check_seed("seed", self.seed)
        check_float("lr", self.lr, positive=True)
        check_float("decay_fraction", self.decay_fraction, positive=True, high=1.0)
        for name in ("weight_decay", "grad_clip", "obs_weight"):
            check_float(name, getattr(self, name), low=0.0)
        check_float("stream_noise", self.stream_noise, low=0.0, high=1.0)
        if check_float("val_fraction", self.val_fraction, low=0.0, high=1.0) == 1.0:
            raise ValueError("val_fraction must be < 1 (some episodes must be left to train on)")
        check_choice("stream", self.stream, ("", *FAMILIES))
        check_choice("lr_schedule", self.lr_schedule, ("constant", "cosine", "wsd"))
        check_choice("obs_likelihood", self.obs_likelihood, ("auto", "bernoulli", "gaussian"))
        check_choice("precision", self.precision, PRECISIONS)
        for step in self.milestones:  # may lie past ``steps``: reached when the run is extended
            check_int("milestones", step, 1)


# ---------------------------------------------------------------------------------- data
def episode_source(cfg: PretrainConfig) -> EpisodeSource:
    """The dataset file or the expert stream that ``cfg`` names."""
    if bool(cfg.dataset) == bool(cfg.stream):
        raise ValueError("give exactly one of dataset (a file) and stream (an env family), got "
                         f"dataset={cfg.dataset!r}, stream={cfg.stream!r}")
    if cfg.stream:
        return ExpertStream(cfg.stream, cfg.batch_size, cfg.seed, cfg.val_episodes,
                            chunk_episodes=cfg.stream_chunk, noise=cfg.stream_noise,
                            workers=cfg.stream_workers, relabel=cfg.stream_relabel,
                            num_envs=cfg.stream_envs)
    val_fraction = cfg.val_fraction if cfg.eval_every else 0.0
    return FileEpisodes(cfg.dataset, cfg.batch_size, cfg.seed, val_fraction, cfg.val_episodes)


def _save_checkpoint(
    ckpt_root: Path,
    step: int,
    model: BaseModel,
    opt: torch.optim.Optimizer,
    cfg: PretrainConfig,
    keep: int,
    totals: dict[str, float],
) -> Path:
    folder = ckpt_root / f"ckpt-{step:08d}"
    save_model(model, folder / "model", extra={"step": step, "pretrain": cfg.to_dict()})
    tensors, meta = optimizer_to_tensors(opt)
    save_tensors_atomic(folder / "optimizer.safetensors", tensors, metadata={"optimizer": meta})
    write_json(folder / "trainer.json", {"step": step, **totals})
    write_json(ckpt_root / "latest.json", {"checkpoint": folder.name, "step": step})
    old = sorted(p for p in ckpt_root.glob("ckpt-*") if p.is_dir() and p != folder)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return folder


def _load_checkpoint(ckpt_root: Path) -> tuple[Path, int] | None:
    pointer = ckpt_root / "latest.json"
    if not pointer.is_file():
        return None
    try:
        info = json.loads(pointer.read_text())
        folder, step = ckpt_root / info["checkpoint"], int(info["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{pointer}: corrupt checkpoint pointer ({exc})") from exc
    if not folder.is_dir():
        raise ValueError(f"{pointer}: points to missing checkpoint {folder}")
    return folder, step


# ---------------------------------------------------------------------------------- training
def learning_rate(cfg: PretrainConfig, step: int) -> float:
    """Linear warmup, then constant, cosine or warmup-stable-decay (see ``lr_schedule``)."""
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    if cfg.lr_schedule == "constant":
        return cfg.lr * warm
    if cfg.lr_schedule == "wsd":
        decay = max(1, round(cfg.steps * cfg.decay_fraction))
        left = min(1.0, (cfg.steps - step) / decay)
        return cfg.lr * warm * (0.1 + 0.9 * max(0.0, left))
    if cfg.lr_schedule != "cosine":
        raise ValueError(f"lr_schedule must be 'constant', 'cosine' or 'wsd', got "
                         f"{cfg.lr_schedule!r}")
    progress = min(1.0, max(0.0, (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)))
    return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))



RUN_SETTINGS = ("out_dir", "steps", "progress", "resume", "overwrite", "num_threads", "device",
                "precision", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
                "milestones", "val_episodes")
"""Settings that do not define the run: a run may be continued with other values."""


def pretrain(cfg: PretrainConfig) -> Path:
    """Train a base model; returns the folder of the final model (``out_dir/model``)."""
    check_device(cfg.device)
    with claim_run(cfg.out_dir, "pretrain", run_config(cfg.to_dict(), RUN_SETTINGS),
                   overwrite=cfg.overwrite, defaults=PretrainConfig().to_dict(),
                   legacy=("pretrain_config.json", "checkpoints/latest.json")) as run:
        return _pretrain(cfg, fresh=run.fresh)


def _pretrain(cfg: PretrainConfig, fresh: bool) -> Path:
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    autocast_dtype(cfg.precision, cfg.device)  # validates the setting before any work
    # ---- data
    source = episode_source(cfg)
    spec = source.spec
    likelihood = cfg.obs_likelihood
    if likelihood == "auto":
        likelihood = "bernoulli" if spec.binary_obs else "gaussian"
    obs_shape = cfg.model.obs_shape
    if cfg.model.obs_encoder in GRID_ENCODERS and obs_shape is None:
        obs_shape = spec.obs_shape
        if not obs_shape:
            raise ValueError(f"dataset {cfg.dataset} records no obs_shape; obs_encoder "
                             f"{cfg.model.obs_encoder!r} needs one (set model.obs_shape)")
    model_cfg = dataclasses.replace(
        cfg.model,
        obs_shape=obs_shape,
        obs_dim=spec.obs_dim,
        action_dim=spec.action_dim,
        discrete=spec.discrete,
        obs_likelihood=likelihood,
    )

    def to_device(b: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return b.obs.to(cfg.device), b.actions.to(cfg.device), b.mask.to(cfg.device)

    # ---- model, optimizer, resume
    out = Path(cfg.out_dir)
    ckpt_root = out / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    start_step = 0
    found = _load_checkpoint(ckpt_root) if cfg.resume and not fresh else None
    if found is None:  # a fresh start: older checkpoints must not mix with this run's
        shutil.rmtree(ckpt_root, ignore_errors=True)
    if found is not None:
        folder, start_step = found
        check_resume_budget("steps", cfg.steps, start_step, folder)
        model = load_model(folder / "model", device=cfg.device)
        if model.config != model_cfg:
            raise ValueError(
                f"{folder}: checkpoint model config differs from the requested one; "
                "use a new out_dir or resume=False"
            )
    else:
        model = build_model(model_cfg).to(cfg.device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "rel_bias" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.dim() >= 2 and "rel_bias" not in n)
    ]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    if found is not None:
        load_optimizer(opt, found[0] / "optimizer.safetensors")
    write_json(out / "pretrain_config.json", cfg.to_dict() | {"model": model_cfg.to_dict()})

    # ---- logging
    logger = RunLogger(out, resume_step=start_step)
    log = logger.log

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        """Held-out losses, always in fp32 so that runs of any precision compare."""
        model.eval()
        sums: dict[str, float] = {}
        count = 0
        for b in source.val_batches():
            obs, acts, mask = to_device(b)
            _, parts = model.loss(obs, acts, mask, cfg.obs_weight)
            n = int(mask.sum())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
        model.train()
        return {f"losses/val_{k}": v / max(count, 1) for k, v in sums.items()}

    # ---- loop
    bar = tqdm(
        total=cfg.steps, initial=start_step, desc="pretrain", disable=not cfg.progress, unit="step"
    )
    # tokens and training seconds since step 0, carried across resumes (the x axes of a
    # scaling curve); validation and checkpoint writing are not counted as training time
    totals = {"tokens_seen": 0, "train_seconds": 0.0}
    if found is not None:
        saved = json.loads((found[0] / "trainer.json").read_text())
        totals = {k: saved.get(k, v) for k, v in totals.items()}
    milestones = set(cfg.milestones)
    tokens, t_log = 0, time.perf_counter()
    parts: dict[str, torch.Tensor] = {}
    for step in range(start_step, cfg.steps):
        t_step = time.perf_counter()
        obs, acts, mask = to_device(source.train_batch(step))
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(cfg.precision, cfg.device):
            total, parts = model.loss(obs, acts, mask, cfg.obs_weight)
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite loss at step {step}: {float(total)}")
        opt.zero_grad(set_to_none=True)
        total.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        opt.step()
        tokens += int(mask.sum())
        totals["tokens_seen"] += int(mask.sum())
        totals["train_seconds"] += time.perf_counter() - t_step
        done = step + 1
        bar.update()
        if done % cfg.log_every == 0 or done == cfg.steps:
            elapsed = time.perf_counter() - t_log
            scalars = {f"losses/{k}": float(v) for k, v in parts.items()}
            scalars |= {
                "charts/learning_rate": lr,
                "charts/grad_norm": grad_norm,
                "charts/tokens_per_s": tokens / max(elapsed, 1e-9),
                "charts/tokens_seen": totals["tokens_seen"],
                "charts/train_hours": totals["train_seconds"] / 3600,
            }
            log(done, scalars)
            bar.set_postfix(loss=f"{float(parts['total']):.4f}")
            tokens, t_log = 0, time.perf_counter()
        eval_now = cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.steps)
        if eval_now or done in milestones:
            val = evaluate()
            log(done, val)
        if done in milestones:
            model.eval()
            held_out = {k.removeprefix("losses/"): v for k, v in val.items()}
            save_model(model, out / "milestones" / f"step-{done:08d}",
                       extra={"step": done, **totals, **held_out,
                              "pretrain": cfg.to_dict() | {"model": model_cfg.to_dict()}})
            model.train()
        if cfg.checkpoint_every and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            _save_checkpoint(ckpt_root, done, model, opt, cfg, cfg.keep_checkpoints, totals)
    bar.close()
    logger.close()
    if isinstance(source, ExpertStream):
        source.close()

    final_parts = {k: float(v) for k, v in parts.items()}
    model.eval()
    return save_model(
        model,
        out / "model",
        extra={
            "step": cfg.steps,
            **totals,
            "dataset": str(cfg.dataset or f"stream:{cfg.stream}"),
            "pretrain": cfg.to_dict() | {"model": model_cfg.to_dict()},
            "final_train_losses": final_parts,
        },
    )

