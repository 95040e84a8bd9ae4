"""The metacontroller: unsupervised discovery of temporally-abstract actions (PAPER §5).

It reads the residual stream ``e_t`` of a (frozen) base model at boundary ``l`` and writes a
linear controller ``e_t <- e_t + U_t e_t`` there. ``U_t`` is decoded from a latent code
``z_t`` that changes only when a learned switching gate ``beta_t`` fires::

    h_t        = GRU(e_t, h_{t-1})                        causal history, n_h
    s          = embed(e_{1:T})                           non-causal sequence summary, n_s
    mu_t, sd_t = f_enc(e_t, h_{t-1}, s)                   Gaussian posterior over z~_t, n_z
    beta_t     = f_switch(e_t, h_{t-1}, z_{t-1})          in [0, 1]; beta_1 = 1
    z_t        = beta_t z~_t + (1 - beta_t) z_{t-1}
    U_t        = f_hyp(z_t)                               low-rank A_t B_t^T (or full)

(with ``codebook = K``, ``f_hyp`` picks one of K learned controllers instead:
:class:`CodebookDecoder`)

trained on expert episodes with ``sum_t -ln p(a_t | o_1:t, z_1:t) + alpha KL(N(mu_t, sd_t) ||
N(0, I))``. No sparsity penalty: a switch costs KL, holding the previous code is free.

At RL time (PAPER §6) the encoder is replaced by a policy; the switching unit and the decoder
are used as they are (:meth:`Metacontroller.switch_prob`, :meth:`Metacontroller.decode`):
the interface :class:`irl_agents.latent_env.LatentController`, which the codebook decoder
(:func:`codebook_metacontroller`) and the CompILE baseline share. Files:
:func:`irl_agents.models.checkpoint.save_metacontroller` / ``load_metacontroller``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from irl_agents.configs import DictConfig
from irl_agents.models.controller import ControllerBank, LinearController

EMBEDDINGS = ("global", "per_step")
"""Choices of :attr:`MetacontrollerConfig.embedding`."""


@dataclass
class MetacontrollerConfig(DictConfig):
    """Architecture of a metacontroller (defaults: PAPER §5, gridworld)."""

    d_model: int = 128
    """Residual width d of the base model it controls."""
    layer: int = 2
    """Layer boundary of the base model it reads (paper: L/2), and writes unless
    ``write_layer`` says otherwise."""
    write_layer: int | None = None
    """Boundary its decoder's controllers write; None: ``layer``, as in the paper. A departure
    for base models where the two differ: on the gridworld's longer-trained base models the
    switching unit finds the subgoal boundaries at boundary 1 and not at 0, while controllers
    steer best at boundary 0 (docs/results/internal_rl.md, "Issue 18"). Built by
    :func:`codebook_metacontroller` (a decoder trained apart) or trained end to end by
    ``irl discover --write-layer``; either way the switching unit reads the unsteered residual
    at ``layer``."""
    n_z: int = 8
    """Latent code size."""
    n_h: int = 32
    """GRU history size."""
    n_s: int = 32
    """Sequence-embedding size."""
    enc_hidden: int = 64
    """Hidden width of the encoder and the switching unit."""
    hyper_hidden: int = 32
    """Hidden width of the hypernetwork decoder."""
    rank: int = 16
    """Rank of U_t = A_t B_t^T (grid: 16); 0 decodes a full d x d matrix (ant)."""
    force_switch: bool = False
    """Ablation "no temporal abstraction": beta_t = 1 at every step."""
    embedding: str = "global"
    """Non-causal input of the encoder: ``"global"``, one summary ``s`` of the whole episode
    (PAPER §5), or ``"per_step"``, a bidirectional GRU's output ``s_t`` at every step, whose
    backward half summarises the episode's future from t (what the next subgoal is)."""
    codebook: int = 0
    """0: the paper's hypernetwork, continuous in z. K > 0: :class:`CodebookDecoder`, one of
    K learned controllers, so that a code can name an abstract action but not a precise
    displacement (continuous codes learn displacements at CPU scale:
    docs/results/metacontroller.md)."""

    @property
    def write_boundary(self) -> int:
        """The boundary the controllers write: ``write_layer``, or ``layer`` when None."""
        return self.layer if self.write_layer is None else self.write_layer

    def __post_init__(self) -> None:
        if self.write_layer is not None and self.write_layer < 0:
            raise ValueError(f"write_layer must be None or a boundary >= 0, got "
                             f"{self.write_layer}")
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        if self.codebook < 0:
            raise ValueError(f"codebook must be 0 (continuous) or a number of controllers K > 0, "
                             f"got {self.codebook}")


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


@dataclass
class Posterior:
    """What one pass of the metacontroller over whole episodes produced; ``(B, T, ...)``."""

    z: Tensor
    """Integrated codes z_t."""
    beta: Tensor
    """Switching gates beta_t in [0, 1], ``(B, T)``."""
    mu: Tensor
    logvar: Tensor
    kl: Tensor
    """Per-step KL(N(mu_t, sd_t) || N(0, I)), ``(B, T)``."""


class HyperDecoder(nn.Sequential):
    """The hypernetwork ``z -> U``: a rank-``rank`` controller ``e + A B^T e`` (or a full
    ``d x d`` one for ``rank=0``), starting as the identity.

    Args:
        d_model: residual width d.
        n_z: code size.
        hidden: hidden width.
        rank: rank of U (0: full matrix).
    """

    def __init__(self, d_model: int, n_z: int, hidden: int, rank: int) -> None:
        out = d_model * d_model if rank == 0 else 2 * d_model * rank
        super().__init__(nn.Linear(n_z, hidden), nn.ReLU(), nn.Linear(hidden, out))
        self.d_model, self.rank = d_model, rank
        # Start as the identity controller: the last layer outputs zeros ...
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)
        with torch.no_grad():  # ... but give B a random part so A receives gradients (LoRA).
            if rank:
                self[-1].bias[d_model * rank :] = torch.randn(d_model * rank) / d_model**0.5

    def decode(self, z: Tensor) -> LinearController:
        """Controller ``e -> e + U e`` for codes ``z (..., n_z)``."""
        d, r = self.d_model, self.rank
        flat = self(z)
        if r == 0:
            return LinearController(u=flat.view(*z.shape[:-1], d, d) / d)
        a, b = flat.split(d * r, dim=-1)
        scale = (d * r) ** -0.25  # keeps U's spectrum O(1) at initialisation scale
        return LinearController(a.view(*z.shape[:-1], d, r) * scale,
                                b.view(*z.shape[:-1], d, r) * scale)


class CodebookController(LinearController):
    """The chosen controller ``U_k`` (its factors, for stepping), whose call during training
    adds every ``U_j e`` weighted by straight-through one-hot weights ``w``: the value is
    ``e + U_k e``, and ``dL/dw_j = <dL/de', U_j e>`` tells the encoder what each choice would
    change."""

    def __init__(self, w: Tensor, bank: ControllerBank) -> None:
        chosen = bank.controller(w.argmax(-1))
        super().__init__(chosen.a, chosen.b, chosen.u)
        self.w, self.bank = w, bank

    def __call__(self, e: Tensor) -> Tensor:
        if not self.w.requires_grad:
            return super().__call__(e)
        bank = self.bank
        if bank.rank is None:
            each = torch.einsum("kij,...j->...ki", bank.u, e)
        else:
            each = torch.einsum("kdr,...kr->...kd", bank.a,
                                torch.einsum("kdr,...d->...kr", bank.b, e))
        return e + torch.einsum("...k,...kd->...d", self.w, each)


class CodebookDecoder(nn.Module):
    """``z -> U_k`` with ``k = argmax_j (W z)_j``: one of K learned controllers.

    The forward pass uses exactly one controller; gradients reach ``W`` (and so the encoder)
    through the softmax of ``W z`` (straight-through, :class:`CodebookController`). The K
    controllers start small and different, so that the choice matters from the first step.
    Why a codebook: a continuous hypernetwork lets a code be a precise displacement, which
    names a colour only within one layout; K controllers cannot express that, and one
    controller per subgoal is the best such code (PAPER §4).

    Args:
        d_model: residual width d.
        n_z: code size.
        num_controllers: K.
        rank: rank of each ``U_k`` (0: full matrices).
    """

    def __init__(self, d_model: int, n_z: int, num_controllers: int, rank: int) -> None:
        super().__init__()
        self.select = nn.Linear(n_z, num_controllers)
        self.bank = ControllerBank(num_controllers, d_model, rank or None)
        with torch.no_grad():  # |U_k e| ~ 0.1 |e| at initialisation
            if rank:
                self.bank.a.normal_(0.0, 0.1 / rank**0.5)
            else:
                self.bank.u.normal_(0.0, 0.1 / d_model**0.5)

    @torch.no_grad()
    def selecting_codes(self, margin: float = 10.0) -> Tensor:
        """``(K, n_z)``: row k is the smallest code ``z`` with ``W z + b = margin * e_k``, so it
        selects controller k (for scripted or injected codes). Through the pseudo-inverse:
        ``torch.linalg.lstsq`` returned different, partly wrong codes from call to call on
        this underdetermined system (K < n_z) on the CPU."""
        k = self.select.out_features
        target = margin * torch.eye(k, device=self.select.bias.device) - self.select.bias
        return (torch.linalg.pinv(self.select.weight) @ target.T).T

    def weights(self, z: Tensor) -> Tensor:
        """One-hot ``(..., K)`` of the chosen controller, with softmax gradients."""
        soft = torch.softmax(self.select(z), -1)
        hard = nn.functional.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        return hard + soft - soft.detach()

    def decode(self, z: Tensor) -> CodebookController:
        """Controller ``e -> e + U_k e`` for codes ``z (..., n_z)``."""
        return CodebookController(self.weights(z), self.bank)


class Metacontroller(nn.Module):
    """Switching latent controller over a base model's residual stream (module docstring)."""

    def __init__(self, cfg: MetacontrollerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.history = nn.GRU(d, cfg.n_h, batch_first=True)
        self.embedder = nn.GRU(d, cfg.n_s, batch_first=True, bidirectional=True)
        self.embed_out = nn.Linear(2 * cfg.n_s, cfg.n_s)
        self.encoder = _mlp(d + cfg.n_h + cfg.n_s, cfg.enc_hidden, 2 * cfg.n_z)
        self.switch = _mlp(d + cfg.n_h + cfg.n_z, cfg.enc_hidden, 1)
        self.hyper = (CodebookDecoder(d, cfg.n_z, cfg.codebook, cfg.rank) if cfg.codebook
                      else HyperDecoder(d, cfg.n_z, cfg.hyper_hidden, cfg.rank))

    # --------------------------------------------------------------------------- decoder
    def decode(self, z: Tensor) -> LinearController:
        """Controller ``e -> e + U e`` for codes ``z (..., n_z)``."""
        return self.hyper.decode(z)

    # --------------------------------------------------------------------------- switching
    def switch_prob(self, e: Tensor, h_prev: Tensor, z_prev: Tensor) -> Tensor:
        """beta_t from ``e (..., d)``, ``h_{t-1} (..., n_h)``, ``z_{t-1} (..., n_z)``."""
        if self.cfg.force_switch:
            return torch.ones(e.shape[:-1], dtype=e.dtype, device=e.device)
        return torch.sigmoid(self.switch(torch.cat([e, h_prev, z_prev], -1)))[..., 0]

    def history_step(self, e: Tensor, h_prev: Tensor) -> Tensor:
        """One GRU step: ``h_t`` from ``e_t (B, d)`` and ``h_{t-1} (B, n_h)``."""
        return self.history(e[:, None], h_prev[None])[1][0]

    def initial_history(self, batch_size: int) -> Tensor:
        """``h_0``: zeros ``(batch_size, n_h)`` on the module's device."""
        return self.history.weight_hh_l0.new_zeros(batch_size, self.cfg.n_h)

    # --------------------------------------------------------------------------- posterior
    def sequence_embedding(self, e: Tensor, mask: Tensor) -> Tensor:
        """Non-causal summary of the valid steps of each sequence: ``s (B, T, n_s)``, the same
        vector at every step for the ``"global"`` embedding."""
        b, t, _ = e.shape
        lengths = mask.sum(1).clamp_min(1).cpu()
        # packing keeps padding out of the backward direction
        packed = nn.utils.rnn.pack_padded_sequence(e, lengths, batch_first=True,
                                                   enforce_sorted=False)
        outputs, last = self.embedder(packed)  # last: (2, B, n_s) final fwd / bwd states
        if self.cfg.embedding == "global":
            return self.embed_out(torch.cat([last[0], last[1]], -1))[:, None].expand(b, t, -1)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True,
                                                      total_length=t)
        return self.embed_out(outputs)

    def posterior(self, e: Tensor, mask: Tensor, sample: bool = True) -> Posterior:
        """Run over whole episodes ``e (B, T, d)`` with valid-step ``mask (B, T)``."""
        b, t, _ = e.shape
        h = self.history(e)[0]
        h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], 1)
        s = self.sequence_embedding(e, mask)
        mu, logvar = self.encoder(torch.cat([e, h_prev, s], -1)).chunk(2, -1)
        logvar = logvar.clamp(-8.0, 4.0)
        z_tilde = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        zs, betas = [], []
        z = torch.zeros(b, self.cfg.n_z, dtype=e.dtype, device=e.device)
        for i in range(t):
            if i == 0:
                beta = torch.ones(b, dtype=e.dtype, device=e.device)
            else:
                beta = self.switch_prob(e[:, i], h_prev[:, i], z)
            z = beta[:, None] * z_tilde[:, i] + (1 - beta[:, None]) * z
            zs.append(z)
            betas.append(beta)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        return Posterior(torch.stack(zs, 1), torch.stack(betas, 1), mu, logvar, kl)


def codebook_metacontroller(meta: Metacontroller, bank: ControllerBank,
                            write_layer: int | None = None) -> Metacontroller:
    """A copy of ``meta`` (history, encoder, switching unit) whose decoder is ``bank``'s K
    controllers, chosen by ``argmax(z_1, ..., z_K)``: codes from N(0, I) pick one uniformly.

    :param meta: metacontroller whose switching unit is kept; needs ``n_z >= K`` and the
        bank's rank.
    :param bank: the K controllers (e.g. per-subgoal controllers, PAPER §4).
    :param write_layer: the boundary the bank was trained at, when not ``meta``'s own
        (``MetacontrollerConfig.write_layer``).
    """
    k = bank.num_controllers
    if meta.cfg.n_z < k:
        raise ValueError(f"the metacontroller's n_z ({meta.cfg.n_z}) must be >= the number of "
                         f"controllers ({k})")
    if (bank.rank or 0) != meta.cfg.rank or bank.d_model != meta.cfg.d_model:
        raise ValueError(f"bank (d={bank.d_model}, rank={bank.rank}) does not match the "
                         f"metacontroller (d={meta.cfg.d_model}, rank={meta.cfg.rank})")
    if write_layer == meta.cfg.layer:
        write_layer = None
    out = Metacontroller(dataclasses.replace(meta.cfg, codebook=k, write_layer=write_layer))
    keep = {name: v for name, v in meta.state_dict().items() if not name.startswith("hyper.")}
    out.load_state_dict(keep, strict=False)
    with torch.no_grad():
        out.hyper.bank.load_state_dict(bank.state_dict())
        out.hyper.select.weight.zero_()
        out.hyper.select.weight[:, :k] = torch.eye(k)
        out.hyper.select.bias.zero_()
    return out

