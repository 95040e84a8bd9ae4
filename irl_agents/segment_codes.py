"""Codes from segment ends: name each segment by the state it ends in.

The metacontroller's switching unit, learnt without labels, cuts expert episodes into
segments (``beta_t >= threshold`` starts a new one). Each segment's *end state* (the
observation where the next segment starts, or the episode's final observation), encoded by
the base model (boundary 0), is clustered with k-means into K groups. Every step is labelled
with its segment's group, and one controller per group is trained by action NLL with the base
model frozen: PAPER §4 with discovered labels instead of true ones. The result is the
metacontroller with its decoder replaced by those K controllers
(:func:`~irl_agents.metacontroller.codebook_metacontroller`), ready for internal RL.

Why: the end-to-end metacontroller finds the subgoal boundaries but codes them as displacements,
which name a colour only within one layout (docs/results/metacontroller.md). Where a segment
ends does not depend on where it started, so its group is a candidate abstract action that means
the same in every layout. No labels are used; when the data has subgoal labels, the groups are
scored against them (purity), for reporting only. How tightly the ends cluster
(:func:`within_share`) is the label-free check that the switching unit cuts where it should.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from irl_agents.configs import DictConfig
from irl_agents.controllers import ControllerConfig, train_controllers
from irl_agents.discovery import check_base_reads, check_controls
from irl_agents.episodes import pad_episodes
from irl_agents.metacontroller import Metacontroller, codebook_metacontroller
from irl_agents.models import BaseModel, load_metacontroller, load_model, save_metacontroller
from irl_agents.precision import PRECISIONS
from irl_agents.run_folder import claim_run, run_config
from irl_envs.atomic import write_json
from irl_envs.datasets import Demonstrations, load_dataset
from irl_envs.validation import check_choice, check_device, check_float, check_int, check_seed
from irl_envs.versions import versions


@dataclass
class SegmentCodesConfig(DictConfig):
    """Segment-end codes for a trained metacontroller."""

    base: str = ""
    """Frozen base model folder (empty: the shipped grid base model)."""
    meta: str = ""
    """Metacontroller whose switching unit cuts the segments (and is kept); empty: the
    shipped grid metacontroller."""
    dataset: str = ""
    """Demonstrations (the pretraining data)."""
    out_dir: str = "runs/segment-codes"
    """Output folder: a metacontroller folder plus ``summary.json`` (see
    :mod:`irl_agents.run_folder`)."""
    k: int = 4
    """Number of groups, i.e. of abstract actions."""
    threshold: float = 0.5
    """A segment starts where ``beta_t >= threshold`` (as in the latent environment)."""
    cluster_episodes: int = 3000
    """Episodes whose segment ends the k-means is fit on (all episodes are then labelled)."""
    controller_steps: int = 500
    """Gradient steps of the per-group controllers."""
    modal_episodes: bool = True
    """Train the controllers only on episodes cut into the most common number of segments.
    Where the gate misses a boundary, one segment spans two subgoals and is named after the
    second: 0.5% such segments (0.9% of steps) cut the controllers' success into an unseen
    transition from 0.67 to 0.21 (docs/results/internal_rl.md, "Issue 18"). Label-free."""
    controller_layer: int | None = None
    """Boundary the controllers are trained at and write; None: the metacontroller's own.
    Another boundary than the switching unit's is a departure from the paper
    (``MetacontrollerConfig.write_layer``): on longer-trained grid base models the gate aligns
    at boundary 1 while controllers steer best at 0 (docs/results/internal_rl.md)."""
    seed: int = 0
    """Seed of k-means and controller training."""
    device: str = "cpu"
    """Torch device of the models (k-means runs on the CPU)."""
    precision: str = ControllerConfig.precision
    """Forward pass of the controllers' training (:mod:`irl_agents.precision`)."""
    overwrite: bool = False
    """Replace a run with other settings in ``out_dir`` instead of refusing to start."""
    progress: bool = True
    """Show a progress bar while training the controllers."""

    def __post_init__(self) -> None:
        for name in ("k", "cluster_episodes", "controller_steps"):
            check_int(name, getattr(self, name), 1)
        check_float("threshold", self.threshold, positive=True, high=1.0)
        check_seed("seed", self.seed)
        if self.controller_layer is not None:
            check_int("controller_layer", self.controller_layer, 0)
        check_choice("precision", self.precision, PRECISIONS)
        check_device(self.device)

    def resolved(self) -> SegmentCodesConfig:
        """This config with empty model paths replaced by the shipped grid models (absolute
        paths, so that the command works from any directory)."""
        from irl_agents.shipped import shipped

        return dataclasses.replace(self, base=self.base or str(shipped("grid", "base")),
                                   meta=self.meta or str(shipped("grid", "metacontroller")))


@torch.no_grad()
def segment_ends(base: BaseModel, meta: Metacontroller, data: Demonstrations,
                 threshold: float, batch_size: int = 200) -> tuple[Tensor, np.ndarray]:
    """Every segment of every episode: its end-state embedding and its steps.

    Returns ``ends (S, d)`` (boundary-0 residual of the observation that ends the segment) and
    ``spans (S, 3)`` rows ``(episode, first step, end step)``, end exclusive.
    """
    ends, spans = [], []
    for start in range(0, data.num_episodes, batch_size):
        index = np.arange(start, min(start + batch_size, data.num_episodes))
        batch = pad_episodes(data, index, device=base.device)
        res = base(batch.obs, return_residual_at=[0, meta.cfg.layer], predict_obs=False).residuals
        beta = meta.posterior(res[meta.cfg.layer], batch.mask, sample=False).beta
        obs0 = res[0]
        final = torch.as_tensor(data.final_observations[index], dtype=torch.float32,
                                device=base.device)
        final0 = base(final[:, None], return_residual_at=0, predict_obs=False).residual[:, 0]
        for row, episode in enumerate(index.tolist()):
            n = int(data.episode_lengths[episode])
            cuts = [0, *(np.flatnonzero(beta[row, 1:n].cpu().numpy() >= threshold) + 1).tolist(),
                    n]
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                ends.append(obs0[row, b] if b < n else final0[row])
                spans.append((episode, a, b))
    return torch.stack(ends).cpu(), np.asarray(spans, dtype=np.int64)


def kmeans(x: Tensor, k: int, seed: int, restarts: int = 20, iters: int = 50
           ) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on standardised ``x (N, d)``, best of ``restarts`` k-means++ starts.

    Twenty starts, not five: on the relabel-073M base model one seed's best of five merged two
    colour pairs into two mixed groups (purity 0.76, variance within 0.772) where other seeds
    found the pure split (0.99, 0.750); starts cost milliseconds next to the controllers.

    Returns ``(centres (k, d), scale)`` where ``scale = (mean, std)`` stacked ``(2, d)``:
    assign new points with :func:`assign`.
    """
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, {len(x)}] (the number of points), got {k}")
    scale = torch.stack([x.mean(0), x.std(0) + 1e-6])
    z = (x - scale[0]) / scale[1]
    gen = torch.Generator().manual_seed(seed)
    best, best_inertia = None, float("inf")
    for _ in range(restarts):
        centres = z[torch.randint(len(z), (1,), generator=gen)]
        for _ in range(k - 1):  # k-means++: far points are likelier next centres
            d2 = torch.cdist(z, centres).min(1).values ** 2
            pick = torch.multinomial(d2 + 1e-12, 1, generator=gen)
            centres = torch.cat([centres, z[pick]])
        for _ in range(iters):
            group = torch.cdist(z, centres).argmin(1)
            centres = torch.stack([z[group == j].mean(0) if (group == j).any() else centres[j]
                                   for j in range(k)])
        inertia = float(((z - centres[torch.cdist(z, centres).argmin(1)]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    return best, scale


def assign(x: Tensor, centres: Tensor, scale: Tensor) -> Tensor:
    """Nearest centre of each row of ``x`` (standardised like the fit)."""
    return torch.cdist((x - scale[0]) / scale[1], centres).argmin(1)


def within_share(x: Tensor, centres: Tensor, scale: Tensor) -> float:
    """Share of the (standardised) variance of ``x`` left within the groups: near 0 when the
    segment ends fall into K tight clusters. Label-free, so it can choose between
    metacontrollers (or thresholds) without knowing the subgoals."""
    z = (x - scale[0]) / scale[1]
    within = ((z - centres[torch.cdist(z, centres).argmin(1)]) ** 2).sum()
    return float(within / ((z - z.mean(0)) ** 2).sum())


def step_labels(spans: np.ndarray, groups: np.ndarray, data: Demonstrations) -> np.ndarray:
    """``(num_steps,)``: each step's segment group, in the dataset's step order."""
    labels = np.full(data.num_steps, -1, dtype=np.int64)
    for (episode, a, b), g in zip(spans, groups, strict=True):
        first = data.episode_starts[episode]
        labels[first + a : first + b] = g
    return labels


def contingency(groups: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """``(k, C)`` counts of steps per (group, true label); steps with either < 0 are ignored."""
    valid = (truth >= 0) & (groups >= 0)
    table = np.zeros((k, int(truth[valid].max()) + 1), dtype=np.int64)
    np.add.at(table, (groups[valid], truth[valid]), 1)
    return table


def segment_codes(cfg: SegmentCodesConfig) -> dict:
    """Build and save the segment-end-code metacontroller; returns the summary."""
    cfg = cfg.resolved()
    config = run_config(dataclasses.asdict(cfg),
                        ("out_dir", "progress", "overwrite", "device", "precision"))
    with claim_run(cfg.out_dir, "segment-codes", config, overwrite=cfg.overwrite):
        return _segment_codes(cfg)


def _segment_codes(cfg: SegmentCodesConfig) -> dict:
    start = time.perf_counter()
    base = load_model(cfg.base, device=cfg.device)
    meta = load_metacontroller(cfg.meta, device=cfg.device).eval()
    data = load_dataset(cfg.dataset)
    check_base_reads(base, cfg.base, data.obs_dim, data.discrete, f"dataset {cfg.dataset}")
    check_controls(meta, base, cfg.meta)
    ends, spans = segment_ends(base, meta, data, cfg.threshold)
    fit = spans[:, 0] < cfg.cluster_episodes
    centres, scale = kmeans(ends[torch.as_tensor(fit)], cfg.k, cfg.seed)
    spread = within_share(ends[torch.as_tensor(fit)], centres, scale)
    groups = assign(ends, centres, scale).numpy()
    labels = step_labels(spans, groups, data)
    if cfg.modal_episodes:  # steps of episodes with an unusual number of segments: unlabelled
        counts = np.bincount(spans[:, 0], minlength=data.num_episodes)
        odd = counts != np.bincount(counts).argmax()
        labels[np.repeat(odd, data.episode_lengths)] = -1
    layer = meta.cfg.layer if cfg.controller_layer is None else cfg.controller_layer
    check_int("controller_layer", layer, 0, base.n_layers)
    bank, info = train_controllers(
        base, dataclasses.replace(data, subgoals=labels),
        ControllerConfig(layer=layer, rank=meta.cfg.rank, steps=cfg.controller_steps,
                         seed=cfg.seed, precision=cfg.precision), progress=cfg.progress,
        num_controllers=cfg.k)
    out = Path(cfg.out_dir)
    save_metacontroller(codebook_metacontroller(meta, bank, write_layer=layer), out,
                        extra={"segment_codes": dataclasses.asdict(cfg)})
    table = contingency(labels, data.subgoals, cfg.k)
    summary = {
        "segments": len(spans), "segments_per_episode": round(len(spans) / data.num_episodes, 3),
        "group_sizes": np.bincount(groups, minlength=cfg.k).tolist(),
        "within_share": round(spread, 4),
        "unlabelled_episodes": int((labels[data.episode_starts] < 0).sum()),
        "purity": round(float(table.max(1).sum() / max(table.sum(), 1)), 4),
        "contingency": table.tolist(), "controller_nll": round(info["final_action_nll"], 4),
        "seconds": round(time.perf_counter() - start, 1), "config": dataclasses.asdict(cfg),
        "versions": versions()}
    write_json(out / "summary.json", summary)
    return summary
