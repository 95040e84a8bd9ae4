"""CompILE baseline: variational segmentation driving the frozen base model (PAPER §7).

CompILE (Kipf et al., 2019, "CompILE: Compositional Imitation Learning and Execution") splits
each expert episode into at most ``M`` segments with one latent code per segment. Here the
codes drive the SAME frozen base model through the metacontroller's hypernetwork decoder, so
internal RL (:class:`irl_agents.latent_env.LatentCore`) can run on CompILE's codes unchanged.
For ``B`` episodes of valid length ``L`` (padded to ``T``) and segments ``i = 0..M-1``::

    h_t          = GRU(e_t, h_{t-1})                    causal history over the residual e_t
    l_t          = f_b(e_t, h_{t-1})                    per-step boundary logit
    q(b_i = p | b_{i-1}) over p in (b_{i-1}, L]:        first firing of the gate sigmoid(l):
        log q_i(p) = [p < L] log sig(l_p) + sum_{b_{i-1} < u < p} log(1 - sig(l_u))
    b_i          ~ GumbelSoftmax(log q_i, temperature)  (training; the mode at evaluation)
    b_{-1} = 0,  b_{M-1} = L                            (p = L means "no further boundary")
    C_i(t)       = sum_{p <= t} b_i(p)
    m_i(t)       = prod_{j<i} C_j(t) (1 - C_i(t))       soft segment masks (Kipf et al.)
    g^i_t        = prod_{j<i} C_j(t) GRUCell(x_t, g^i_{t-1}),  x_t = embed(o_t, a_t)
    mu_i, sd_i   = f_z(sum_t m_i(t) g^i_t / sum_t m_i(t))   raw observations AND actions
    z_i          ~ N(mu_i, diag sd_i^2);   z_t = sum_i m_i(t) z_i
    U_t          = f_hyp(z_t)                           the metacontroller's decoder

trained with the base model frozen on, per valid step of the batch (``N`` steps),
``sum_t -ln p(a_t | o_1:t, U_t) + (beta_z sum_i KL(N(mu_i, sd_i) || N(0, I)) + beta_b sum_i
KL(q(b_i | b_{i-1}) || p(b_i | b_{i-1}))) / N``. The prior on a segment's length ``k = b_i -
b_{i-1}`` is a shifted Poisson, ``k - 1 ~ Poisson(rate)``, truncated to ``1..L - b_{i-1}`` and
renormalised; with a relaxed ``b_{i-1}`` both ``q`` and the prior condition on its mixture.

Differences from Kipf et al., all for the internal-RL setting:

- The decoder is not a per-segment policy: it steers the frozen base model's residual stream
  with ``U_t`` decoded from the mixed code ``z_t`` (exact when the masks are hard).
- The boundaries come from a CAUSAL gate. Kipf et al. score every position with an LSTM over
  the inputs (actions included) and normalise with a softmax over the whole episode; that
  needs the future, reads the action the switch should precede, and a softmax's logits have
  an arbitrary offset, so thresholding them at RL time would mean nothing. Here the
  categorical over positions is the distribution of the first firing of a Bernoulli gate
  ``sigmoid(l_t)``, so ``sigmoid(l_t)`` is exactly ``q(boundary at t | none since the last
  one, o_1:t)``: what :meth:`CompILE.switch_prob` returns to the latent environment, and the
  logits the Gumbel-softmax over positions uses during training. The gate ignores the current
  code (CompILE's boundaries do not depend on z), so ``z_prev`` is accepted and unused.
  Being a calibrated hazard, the gate may stay below ``LatentCore``'s default threshold 0.5;
  ``summary.json`` also reports ``gate_threshold`` (:func:`matched_threshold`), a label-free
  threshold at which the gate fires as often as the segmentation places boundaries.
- The gate reads the base model's residual at boundary ``layer`` (at layer 0 that is the
  frozen base model's embedding of the raw observation), not the raw observation. It is a
  causal function of the observations only (never of the current action), it is what
  ``LatentCore`` hands to ``history_step``/``switch_prob`` without any change, and it is what
  the metacontroller's switch reads, so the comparison isolates the training objective. The
  code encoder, used only in training, reads the raw observations and actions as in Kipf et al.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from irl_agents.configs import DictConfig
from irl_agents.discovery import (
    check_base_reads,
    resume_state,
    run_identity,
    save_state,
    setting_defaults,
)
from irl_agents.episodes import EpisodeBatch, pad_episodes, similar_length_batch, split_episodes
from irl_agents.metacontroller import HyperDecoder
from irl_agents.models import (
    BaseModel,
    LinearController,
    load_model,
    optimizer_to_tensors,
    save_tensors_atomic,
)
from irl_agents.models.checkpoint import load_module, load_optimizer, save_module
from irl_agents.precision import PRECISIONS, autocast
from irl_agents.run_folder import claim_run
from irl_agents.run_logger import RunLogger
from irl_agents.switching import alignment
from irl_envs.atomic import write_json
from irl_envs.datasets import Demonstrations, load_dataset
from irl_envs.validation import check_choice, check_device
from irl_envs.versions import versions

_TINY = 1e-30  # floor inside logs of (soft) masks; exact zeros stay -inf


def _check(ok: bool, name: str, allowed: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ------------------------------------------------------------------------------- configs
@dataclass
class CompILEModelConfig(DictConfig):
    """Architecture of a CompILE model (the RL-time fields match ``MetacontrollerConfig``)."""

    obs_dim: int = 637
    """Raw observation size read by the code encoder."""
    action_dim: int = 4
    """Number of discrete actions, or the continuous action size."""
    discrete: bool = True
    """Discrete (embedded) or continuous (linear) actions in the code encoder."""
    d_model: int = 128
    """Residual width d of the base model it controls."""
    layer: int = 2
    """Layer boundary of the base model it reads and writes."""
    max_segments: int = 4
    """M: at most this many segments (codes) per episode."""
    n_z: int = 8
    """Latent code size."""
    n_h: int = 32
    """GRU history size of the causal boundary gate."""
    enc_hidden: int = 64
    """Width of the code encoder (GRU cell and heads) and of the boundary head."""
    hyper_hidden: int = 32
    """Hidden width of the hypernetwork decoder."""
    rank: int = 16
    """Rank of U_t = A_t B_t^T; 0 decodes a full d x d matrix."""

    @property
    def write_boundary(self) -> int:
        """The boundary its controllers write: the one it reads."""
        return self.layer

    def __post_init__(self) -> None:
        for name in ("obs_dim", "action_dim", "d_model", "max_segments", "n_z", "n_h",
                     "enc_hidden", "hyper_hidden"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, f"CompILEModelConfig.{name}", "an int >= 1",
                   value)
        _check(_is_int(self.layer) and self.layer >= 0, "CompILEModelConfig.layer",
               "an int >= 0", self.layer)
        _check(_is_int(self.rank) and self.rank >= 0, "CompILEModelConfig.rank",
               "an int >= 0 (0: full matrix)", self.rank)


@dataclass
class CompileConfig(DictConfig):
    """One CompILE training run (base frozen)."""

    base: str = ""
    """Folder of the pretrained base model (``irl pretrain`` output ``.../model``)."""
    dataset: str = ""
    """Demonstrations to train on (the pretraining data; labels are used only for scoring)."""
    out_dir: str = "runs/compile"
    """Output folder."""
    layer: int | None = None
    """Boundary to read and control; ``None`` means L/2 (as in discovery)."""
    max_segments: int = 4
    """M: most segments per episode (paper: 4)."""
    n_z: int = 8
    """Latent code size."""
    rank: int = 16
    """Controller rank (0: full matrix)."""
    beta_z: float = 0.1
    """Weight of the codes' KL to N(0, I)."""
    beta_b: float = 0.1
    """Weight of the boundaries' KL to the Poisson segment-length prior."""
    poisson_rate: float = 9.0
    """Rate of the shifted Poisson prior (mean segment length ``rate + 1``; gridworld expert
    segments last about 10 steps). Also sets the gate's initial firing rate."""
    temperature: float = 0.5
    """Gumbel-softmax temperature of the relaxed boundaries (Kipf et al.: 1). On the shipped
    grid base (1500 steps, one seed) 0.5 gave held-out action NLL 0.332 and matched-gate F1
    0.62, against 0.356 and 0.31 at 1: sharper masks let the codes differ between segments."""
    steps: int = 1500
    """Gradient steps."""
    batch_size: int = 64
    """Episodes per step."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    eval_episodes: int = 500
    """Held-out episodes for the final scores."""
    seed: int = 0
    """Seed of initialisation, batching, noise and the episode split."""
    device: str = "cpu"
    """Torch device of the base model and of the CompILE model."""
    precision: str = "fp32"
    """Training forward pass: ``"fp32"``, ``"bf16"`` or ``"auto"`` (:mod:`irl_agents.precision`)."""
    log_every: int = 50
    """Metrics every this many steps."""
    checkpoint_every: int = 250
    """Write a resumable checkpoint (``out_dir/checkpoint/``) every this many steps."""
    overwrite: bool = False
    """Replace a run with other settings in ``out_dir`` instead of refusing to start."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        _check(self.layer is None or (_is_int(self.layer) and self.layer >= 0), "layer",
               "None or an int in 0..L", self.layer)
        for name in ("max_segments", "n_z", "batch_size", "eval_episodes", "log_every",
                     "checkpoint_every", "steps"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, name, "an int >= 1", value)
        _check(_is_int(self.rank) and self.rank >= 0, "rank", "an int >= 0 (0: full)", self.rank)
        for name in ("beta_z", "beta_b", "weight_decay"):
            value = getattr(self, name)
            _check(_is_number(value) and value >= 0, name, "a finite number >= 0", value)
        for name in ("poisson_rate", "temperature", "lr"):
            value = getattr(self, name)
            _check(_is_number(value) and value > 0, name, "a finite number > 0", value)
        check_choice("precision", self.precision, PRECISIONS)
        check_device(self.device)


# ------------------------------------------------------------------------------- segmentation
def poisson_log_prior(lengths: Tensor, horizon: int, rate: float) -> Tensor:
    """``log p(b_i = p | b_{i-1} = q)``, ``(B, T+1, T+1)`` over ``q, p in 0..T``.

    The segment length ``k = p - q`` follows ``1 + Poisson(rate)`` truncated to the support
    ``q < p <= L`` and renormalised (``p = L``: the segment runs to the episode's end). A
    segment that starts at or after the end (``q >= L``) stays empty: all mass on ``p = L``.
    """
    pos = torch.arange(horizon + 1, device=lengths.device)
    q, p = pos[:, None], pos[None, :]
    k = (p - q).clamp_min(1).to(torch.float32)
    log_pois = (k - 1) * math.log(rate) - rate - torch.lgamma(k)  # pmf of k - 1
    length = lengths.long()[:, None, None]
    valid = ((p > q) & (p <= length)) | ((q >= length) & (p == length))
    logits = torch.where(valid, log_pois, torch.full_like(log_pois, -math.inf))
    return logits - torch.logsumexp(logits, -1, keepdim=True)


def gumbel_softmax(log_p: Tensor, temperature: float) -> Tensor:
    """Relaxed one-hot sample of the categorical ``log_p`` (``-inf`` entries get mass 0)."""
    gumbel = -torch.empty_like(log_p).exponential_().clamp_min(1e-20).log()
    return torch.softmax((log_p + gumbel) / temperature, -1)


def _safe_log(x: Tensor) -> Tensor:
    """``log x`` with exact zeros to ``-inf`` and finite gradients everywhere."""
    return torch.where(x > 0, x.clamp_min(_TINY).log(), torch.full_like(x, -math.inf))


@dataclass
class Segmentation:
    """Boundaries of every segment of a batch; positions are slots ``0..T``."""

    boundaries: Tensor
    """``(B, M, T+1)`` (relaxed) one-hot boundary samples; ``b_{M-1}`` is the end ``L``."""
    log_q: Tensor
    """``(B, M, T+1)`` ``log q(b_i | b_{i-1})`` (normalised, ``-inf`` off the support)."""
    kl: Tensor
    """``(B,)`` ``sum_i KL(q(b_i | b_{i-1}) || p(b_i | b_{i-1}))``."""
    segments: Tensor
    """``(B,)`` expected number of non-empty segments."""


def sample_segmentation(logits: Tensor, mask: Tensor, max_segments: int, rate: float,
                        temperature: float = 1.0, sample: bool = True) -> Segmentation:
    """Boundaries ``b_0..b_{M-1}`` from per-step gate logits ``(B, T)`` (module docstring).

    ``sample``: relaxed Gumbel-softmax samples; otherwise the mode of each ``q(b_i | b_{i-1})``
    given the previous mode (hard, ordered boundaries). ``mask (B, T)`` marks valid steps.
    """
    b, t = logits.shape
    lengths = mask.sum(1).long()
    pos = torch.arange(t + 1, device=logits.device)[None]
    inside = (pos >= 1) & (pos < lengths[:, None])  # slots that are real boundaries
    end = pos == lengths[:, None]  # "no further boundary"
    zero = torch.zeros((), dtype=logits.dtype, device=logits.device)
    log_fire = torch.where(inside, F.pad(F.logsigmoid(logits), (0, 1)), zero)
    log_stay = torch.where(inside, F.pad(F.logsigmoid(-logits), (0, 1)), zero)
    # finite floor: a slot no previous boundary can precede (p = 0, p > L) must not give
    # logsumexp an all -inf column (NaN gradient); q puts no mass there anyway
    log_prior = poisson_log_prior(lengths, t, rate).to(logits.dtype).clamp_min(-1e4)
    prev = (pos == 0).to(logits.dtype).expand(b, -1)  # b_{-1} = 0: segment 0 starts at once
    after = torch.ones(b, t + 1, dtype=logits.dtype, device=logits.device)  # P(p > all b_j)
    samples, log_qs, kls, ends = [], [], [], []
    for i in range(max_segments):
        if i == max_segments - 1:  # the last segment ends with the episode
            s = end.to(logits.dtype).expand(b, -1)
            log_q = torch.where(end, zero, -math.inf).expand(b, -1)
            kl = torch.zeros(b, dtype=logits.dtype, device=logits.device)
        else:
            # a boundary lies after the previous one and within the episode; the end slot is
            # always allowed (it is where an exhausted episode puts its remaining boundaries)
            allowed = torch.where(end, 1.0, torch.where(inside, after, zero))
            weight = torch.where(inside, allowed, zero)
            stay = weight * log_stay
            survive = stay.cumsum(-1) - stay  # gate silent at every allowed step before p
            log_q = torch.log_softmax(log_fire + survive + _safe_log(allowed), -1)
            if sample:
                s = gumbel_softmax(log_q, temperature)
            else:
                s = F.one_hot(log_q.argmax(-1), t + 1).to(logits.dtype)
            prior = torch.logsumexp(_safe_log(prev)[:, :, None] + log_prior, 1)
            q = log_q.exp()
            finite = torch.where(q > 0, log_q, zero)  # 0 * -inf would poison the gradient
            kl = (q * (finite - prior)).sum(-1)
        samples.append(s)
        log_qs.append(log_q)
        kls.append(kl)
        ends.append(s.gather(1, lengths[:, None])[:, 0])
        after = after * F.pad(s.cumsum(-1).clamp(0, 1), (1, 0))[:, :-1]  # times P(b_i < p)
        prev = s
    segments = torch.ones_like(ends[-1])
    for e in ends[:-1]:  # segment i + 1 is empty when b_i is the end
        segments = segments + 1 - e
    return Segmentation(torch.stack(samples, 1), torch.stack(log_qs, 1), sum(kls), segments)


def segment_masks(boundaries: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Soft segment masks ``m_i(t) = prod_{j<i} C_j(t) (1 - C_i(t))`` on valid steps (Kipf et
    al.), ``C_i`` the inclusive cumulative sum of ``b_i``. Returns ``(masks, started)``, both
    ``(B, M, T)``; ``started_i(t) = prod_{j<i} C_j(t)`` is the probability that segment ``i``
    has begun by step ``t`` (the encoder's reset mask)."""
    t = mask.shape[1]
    c = boundaries.cumsum(-1)[..., :t].clamp(0.0, 1.0)
    started = torch.cumprod(F.pad(c, (0, 0, 1, 0), value=1.0)[:, :-1], dim=1)
    return started * (1.0 - c) * mask[:, None].to(c.dtype), started


# ------------------------------------------------------------------------------- model
@dataclass
class CompilePosterior:
    """One pass of CompILE over whole episodes."""

    z: Tensor
    """``(B, T, n_z)`` per-step codes ``sum_i m_i(t) z_i``."""
    gate: Tensor
    """``(B, T)`` causal switch probabilities ``sigmoid(l_t)`` (1 at ``t = 0``): what RL sees."""
    starts: Tensor
    """``(B, T)`` segment starts of the segmentation (1 at ``t = 0``; soft when sampled)."""
    segmentation: Segmentation
    masks: Tensor
    """``(B, M, T)`` soft segment masks."""
    mu: Tensor
    """``(B, M, n_z)``."""
    logvar: Tensor
    kl_z: Tensor
    """``(B,)`` ``sum_i KL(N(mu_i, sd_i) || N(0, I))``."""


class CompILE(nn.Module):
    """CompILE with a causal boundary gate and the metacontroller's decoder (module docstring).

    RL-time interface as :class:`~irl_agents.metacontroller.Metacontroller`: ``cfg.layer``,
    ``cfg.n_z``, ``cfg.n_h``, ``cfg.rank``, ``cfg.d_model``, :meth:`decode`,
    :meth:`switch_prob`, :meth:`history_step`, :meth:`initial_history`.
    """

    reads = "residual"
    """The gate's per-step input: the base model's residual at ``cfg.layer``."""

    def __init__(self, cfg: CompILEModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, hid = cfg.d_model, cfg.enc_hidden
        # the metacontroller's decoder (same hypernetwork, initialisation and decode)
        self.decoder = HyperDecoder(d, cfg.n_z, cfg.hyper_hidden, cfg.rank)
        self.history = nn.GRU(d, cfg.n_h, batch_first=True)
        self.boundary = nn.Sequential(nn.Linear(d + cfg.n_h, hid), nn.ReLU(), nn.Linear(hid, 1))
        self.obs_in = nn.Linear(cfg.obs_dim, hid)
        self.act_in = (nn.Embedding(cfg.action_dim, hid) if cfg.discrete
                       else nn.Linear(cfg.action_dim, hid))
        self.cell = nn.GRUCell(hid, hid)
        self.z_head = nn.Sequential(nn.Linear(hid, hid), nn.ReLU(), nn.Linear(hid, 2 * cfg.n_z))

    # --------------------------------------------------------------------------- RL interface
    def decode(self, z: Tensor) -> LinearController:
        """Controller ``e -> e + U e`` for codes ``z (..., n_z)`` (the metacontroller's)."""
        return self.decoder.decode(z)

    def switch_prob(self, e: Tensor, h_prev: Tensor, z_prev: Tensor | None = None) -> Tensor:
        """Gate ``sigmoid(l_t)`` from ``e_t (..., d)`` and ``h_{t-1} (..., n_h)``; ``z_prev``
        is unused (CompILE's boundaries do not depend on the code)."""
        return torch.sigmoid(self._logit(e, h_prev))

    def history_step(self, e: Tensor, h_prev: Tensor) -> Tensor:
        """One GRU step: ``h_t`` from ``e_t (B, d)`` and ``h_{t-1} (B, n_h)``."""
        return self.history(e[:, None], h_prev[None])[1][0]

    def initial_history(self, batch_size: int) -> Tensor:
        return torch.zeros(batch_size, self.cfg.n_h, device=self.boundary[0].weight.device)

    def _logit(self, e: Tensor, h_prev: Tensor) -> Tensor:
        return self.boundary(torch.cat([e, h_prev], -1))[..., 0]

    # --------------------------------------------------------------------------- training
    def boundary_logits(self, e: Tensor) -> Tensor:
        """Causal gate logits ``l_t = f_b(e_t, h_{t-1})`` over ``e (B, T, d)``, ``(B, T)``."""
        h = self.history(e)[0]
        h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], 1)
        return self._logit(e, h_prev)

    def encode_segments(self, obs: Tensor, actions: Tensor, masks: Tensor,
                        started: Tensor) -> tuple[Tensor, Tensor]:
        """Gaussian posterior ``(mu, logvar)``, each ``(B, M, n_z)``, of every segment's code.

        One GRU pass per segment (batched), its state zeroed until the segment has begun, so
        a code sees its own segment's observations and actions only (Kipf et al.); the
        features are then averaged under the segment's soft mask.
        """
        b, m, t = masks.shape
        act = actions.long() if self.cfg.discrete else actions.to(obs.dtype)
        x = torch.relu(self.obs_in(obs) + self.act_in(act))
        x = x[:, None].expand(b, m, t, -1).reshape(b * m, t, -1)
        keep = started.reshape(b * m, t, 1)
        g = torch.zeros(b * m, self.cfg.enc_hidden, dtype=x.dtype, device=x.device)
        feats = []
        for step in range(t):
            g = self.cell(x[:, step], g) * keep[:, step]
            feats.append(g)
        feats = torch.stack(feats, 1).view(b, m, t, -1)
        pooled = (masks[..., None] * feats).sum(2) / (masks.sum(2)[..., None] + 1e-6)
        mu, logvar = self.z_head(pooled).chunk(2, -1)
        return mu, logvar.clamp(-8.0, 4.0)

    def posterior(self, e: Tensor, obs: Tensor, actions: Tensor, mask: Tensor,
                  poisson_rate: float, temperature: float = 1.0,
                  sample: bool = True) -> CompilePosterior:
        """Segment episodes: residual ``e (B, T, d)``, raw ``obs (B, T, D)``, ``actions``,
        valid-step ``mask (B, T)``. ``sample=False``: modes of boundaries and codes."""
        logits = self.boundary_logits(e)
        seg = sample_segmentation(logits, mask, self.cfg.max_segments, poisson_rate,
                                  temperature, sample)
        masks, started = segment_masks(seg.boundaries, mask)
        mu, logvar = self.encode_segments(obs, actions, masks, started)
        codes = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        z = torch.einsum("bmt,bmz->btz", masks, codes)
        kl_z = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum((1, 2))
        t = mask.shape[1]
        first = torch.ones_like(logits[:, :1])
        gate = torch.cat([first, torch.sigmoid(logits[:, 1:])], 1)
        inner = seg.boundaries[:, :-1, :t].sum(1) * mask.to(logits.dtype)  # slot L is no start
        starts = torch.cat([first, inner[:, 1:]], 1)
        return CompilePosterior(z, gate, starts, seg, masks, mu, logvar, kl_z)


# ------------------------------------------------------------------------------- loss, scores
def compile_terms(base: BaseModel, model: CompILE, batch: EpisodeBatch, beta_z: float,
                  beta_b: float, poisson_rate: float, temperature: float = 1.0,
                  sample: bool = True) -> tuple[Tensor, dict, CompilePosterior]:
    """Negative beta-ELBO per valid step: action NLL + (beta_z KL_z + beta_b KL_b) / N."""
    post: dict[str, CompilePosterior] = {}

    def controller(e: Tensor) -> Tensor:
        post["p"] = model.posterior(e, batch.obs, batch.actions, batch.mask, poisson_rate,
                                    temperature, sample)
        return model.decode(post["p"].z)(e)

    nll, parts = base.loss(batch.obs, batch.actions, batch.mask, 0.0, controller=controller,
                           layer=model.cfg.layer)
    p = post["p"]
    m = batch.mask.to(p.gate.dtype)
    steps = m.sum().clamp_min(1.0)
    # per step, so the loss is the (beta-weighted) negative ELBO of the batch divided by N
    kl_z, kl_b = p.kl_z.sum() / steps, p.segmentation.kl.sum() / steps
    switch_rate = ((p.gate[:, 1:] >= 0.5).to(m.dtype) * m[:, 1:]).sum() / m[:, 1:].sum().clamp_min(
        1.0)
    parts = {**parts, "kl_z": kl_z.detach(), "kl_b": kl_b.detach(),
             "switch_rate": switch_rate.detach(),
             "segments": p.segmentation.segments.mean().detach()}
    return nll + beta_z * kl_z + beta_b * kl_b, parts, p


def matched_threshold(gates: list[np.ndarray], switches: float) -> float:
    """The gate threshold at which the causal gate fires (steps ``t >= 1`` of ``gates``) as
    often in total as the segmentation places boundaries (``switches``); uses no labels.

    The gate is a calibrated hazard, so it rarely exceeds 0.5 where the prior expects segments
    of several steps; this threshold is an unsupervised choice for ``LatentCore(threshold=)``.
    """
    values = np.sort(np.concatenate([np.asarray(g)[1:] for g in gates]))[::-1]
    k = min(int(round(switches)), len(values))
    return float(values[k - 1]) if k >= 1 else 1.0


@torch.no_grad()
def score_compile(base: BaseModel, model: CompILE, data: Demonstrations, index: np.ndarray,
                  poisson_rate: float, batch_size: int = 128) -> dict:
    """Held-out action NLL and KL terms per step (modes of boundaries and codes), and the
    alignment with the true subgoal boundaries of the causal gate at 0.5 (``gate``: what
    internal RL switches on by default) and at :func:`matched_threshold` (``gate_matched``),
    and of the inferred segmentation (``segments``)."""
    gates, starts, labels = [], [], []
    sums = {"action_nll": 0.0, "kl_z": 0.0, "kl_b": 0.0}
    count = episodes = 0
    n_segments = 0.0
    for begin in range(0, len(index), batch_size):
        batch = pad_episodes(data, index[begin : begin + batch_size], device=base.device)
        _, parts, post = compile_terms(base, model, batch, 0.0, 0.0, poisson_rate, sample=False)
        n = int(batch.mask.sum())
        for key in sums:
            sums[key] += float(parts[key]) * n
        count += n
        episodes += len(batch)
        n_segments += float(post.segmentation.segments.sum())
        for i, length in enumerate(batch.mask.sum(1).tolist()):
            gates.append(post.gate[i, :length].cpu().numpy())
            starts.append(post.starts[i, :length].cpu().numpy())
            labels.append(batch.subgoals[i, :length].cpu().numpy())
    threshold = matched_threshold(gates, sum(float(s[1:].sum()) for s in starts))
    return {"gate": alignment(gates, labels), "segments": alignment(starts, labels),
            "gate_matched": alignment(gates, labels, threshold=threshold),
            "gate_threshold": threshold,
            **{k: v / max(count, 1) for k, v in sums.items()},
            "segments_per_episode": n_segments / max(episodes, 1)}


# ------------------------------------------------------------------------------- files
def save_compile(model: CompILE, folder: str | Path, extra: dict | None = None) -> Path:
    """Write ``compile.safetensors`` + ``compile.json`` (config, versions, extra) atomically."""
    return save_module(model, model.cfg.to_dict(), folder, "compile", extra)


def load_compile(folder: str | Path, device: str | torch.device = "cpu") -> CompILE:
    """Inverse of :func:`save_compile` (on ``device``); clear ``ValueError`` on a bad folder."""
    model = load_module(folder, "compile",
                        lambda config: CompILE(CompILEModelConfig.from_dict(config)),
                        "CompILE model")
    return model.to(device)


def _save_state(ckpt: Path, step: int, model: CompILE, opt: torch.optim.Optimizer,
                cfg: CompileConfig) -> None:
    """A resumable checkpoint (see :func:`irl_agents.discovery.save_state`)."""
    def write(folder: Path) -> None:
        save_compile(model, folder)
        tensors, layout = optimizer_to_tensors(opt)
        save_tensors_atomic(folder / "optimizer.safetensors", tensors,
                            metadata={"optimizer": layout})

    save_state(ckpt, step, cfg, write)


# ------------------------------------------------------------------------------- training
def train_compile(cfg: CompileConfig) -> dict:
    """Train one CompILE model on a frozen base; returns the summary (also ``summary.json``).

    Writes ``out_dir/compile.safetensors`` + ``compile.json``, ``metrics.csv`` and ``tb/``
    (``losses/...``, ``charts/...``), ``summary.json`` and the resumable
    ``out_dir/checkpoint/``; a run claimed with the same settings resumes it
    (:mod:`irl_agents.run_folder`).
    """
    with claim_run(cfg.out_dir, "compile", run_identity(cfg), overwrite=cfg.overwrite,
                   legacy=("checkpoint/trainer.json", "compile.json"),
                   defaults=setting_defaults(cfg)) as run:
        return _train_compile(cfg, run.fresh)


def _train_compile(cfg: CompileConfig, fresh: bool) -> dict:
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset)
    base = load_model(cfg.base, device=cfg.device)
    check_base_reads(base, cfg.base, data.obs_dim, data.discrete, f"dataset {cfg.dataset}")
    for p in base.parameters():
        p.requires_grad_(False)
    base.eval()
    layer = base.n_layers // 2 if cfg.layer is None else cfg.layer
    _check(0 <= layer <= base.n_layers, "layer", f"None or an int in 0..{base.n_layers}",
           cfg.layer)
    out = Path(cfg.out_dir)
    ckpt = out / "checkpoint"
    start_step, state = (0, ckpt) if fresh else resume_state(ckpt, cfg)
    model = CompILE(CompILEModelConfig(
        obs_dim=base.config.obs_dim, action_dim=base.config.action_dim,
        discrete=base.config.discrete, d_model=base.d_model, layer=layer,
        max_segments=cfg.max_segments, n_z=cfg.n_z, rank=cfg.rank))
    with torch.no_grad():  # start the gate at the prior's mean hazard 1 / (rate + 1)
        model.boundary[-1].bias.fill_(-math.log(cfg.poisson_rate))
    if start_step:
        model.load_state_dict(load_compile(state).state_dict())
    model.to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if start_step:
        load_optimizer(opt, state / "optimizer.safetensors")
    train, val = split_episodes(data.num_episodes, 0.1, cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(out, resume_step=start_step)
    bar = tqdm(total=cfg.steps, initial=start_step, desc="compile", disable=not cfg.progress)
    step = start_step
    while step < cfg.steps:
        # every step's batch and noise are a function of (seed, step): a resumed run
        # continues exactly as the uninterrupted one would have
        rng = np.random.default_rng([cfg.seed, step])
        torch.manual_seed(int(rng.integers(2**62)))
        batch = pad_episodes(data, similar_length_batch(data, train, cfg.batch_size, rng),
                             device=cfg.device)
        with autocast(cfg.precision, cfg.device):
            loss, parts, _ = compile_terms(base, model, batch, cfg.beta_z, cfg.beta_b,
                                           cfg.poisson_rate, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update()
        if step % cfg.log_every == 0 or step == cfg.steps:
            logger.log(step, {"losses/loss": loss.detach(),
                              "losses/action_nll": parts["action_nll"],
                              "losses/kl_z": parts["kl_z"], "losses/kl_b": parts["kl_b"],
                              "charts/switch_rate": parts["switch_rate"],
                              "charts/segments": parts["segments"]})
            bar.set_postfix(nll=f"{float(parts['action_nll']):.3f}",
                            kl_z=f"{float(parts['kl_z']):.2f}",
                            kl_b=f"{float(parts['kl_b']):.2f}",
                            seg=f"{float(parts['segments']):.2f}")
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _save_state(ckpt, step, model, opt, cfg)
    bar.close()
    logger.close()
    model.eval()
    score = score_compile(base, model, data, val[: cfg.eval_episodes], cfg.poisson_rate)
    gate, segments, matched = score.pop("gate"), score.pop("segments"), score.pop("gate_matched")
    # "alignment" has the layout of discovery's summary (the gate is what RL switches on)
    summary = {"alignment": {**gate, **score}, "segment_alignment": segments,
               "matched_gate_alignment": matched, "config": dataclasses.asdict(cfg),
               "layer": layer, "seconds": round(time.perf_counter() - start, 1),
               "versions": versions()}
    save_compile(model, out, extra={"compile": dataclasses.asdict(cfg), "layer": layer})
    write_json(out / "summary.json", summary)
    return summary
