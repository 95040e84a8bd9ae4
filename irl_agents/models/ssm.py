"""Hawk-style recurrent base model (De et al. 2024, "Griffin"): RG-LRU blocks.

Each residual block is pre-norm (RMSNorm) and has two parts:

- temporal mixing: ``Linear -> GeLU`` (gate branch) times
  ``Linear -> causal depthwise Conv1D (width K) -> RG-LRU`` (recurrent branch),
  followed by an output ``Linear``;
- a gated GeLU MLP: ``down(gelu(gate(x)) * up(x))``.

RG-LRU (real-gated linear recurrent unit), per channel::

    r_t = sigmoid(W_a x_t + b_a)            recurrence gate
    i_t = sigmoid(W_x x_t + b_x)            input gate
    log a_t = -c * r_t * softplus(-Lambda)  i.e. a_t = sigmoid(Lambda)^(c r_t)
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)

Training path: the recurrence ``h_t = a_t h_{t-1} + b_t`` is a first-order linear scan,
computed for all ``t`` at once by :func:`linear_scan` (Hillis-Steele doubling:
``ceil(log2 T)`` vectorised passes, each combining position ``t`` with ``t - k``; only
products of decays in (0, 1), so no division and no overflow, unlike a
``cumsum(log a)`` formulation). Inference path: O(1) per step with explicit state
(:class:`SSMState`: per layer the recurrent state ``h (B, w)`` and the last ``K - 1``
conv inputs ``(B, K-1, w)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from irl_agents.models.base import BaseModel, ModelState
from irl_agents.models.config import ModelConfig


def _scan_inplace(a: Tensor, b: Tensor) -> Tensor:
    """Hillis-Steele scan on fresh copies of ``a``, ``b`` (no autograd); returns ``h``."""
    a, b = a.clone(), b.clone()
    t, k = a.shape[1], 1
    while k < t:
        contrib = a[:, k:] * b[:, :-k]  # temporaries: the slices overlap
        if 2 * k < t:
            a_new = a[:, k:] * a[:, :-k]
            a[:, k:] = a_new
        b[:, k:] += contrib
        k *= 2
    return b


class _LinearScan(torch.autograd.Function):
    """``h_t = a_t h_{t-1} + b_t`` with a hand-written backward, itself a reverse scan:
    ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, ``dL/db_t = g_t``, ``dL/da_t = g_t h_{t-1}``."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor) -> Tensor:
        h = _scan_inplace(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor]:
        a, h = ctx.saved_tensors
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1)
        g = _scan_inplace(a_next.flip(1), grad_h.flip(1)).flip(1)
        h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        return g * h_prev, g


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """All ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) along dim 1 of ``(B, T, ...)``.

    Hillis-Steele inclusive scan of the associative operator
    ``(a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2)``: ``ceil(log2 T)`` vectorised passes
    (position ``t`` absorbs ``t - k`` for ``k = 1, 2, 4, ...``). Only products of decays
    occur (no division), so it is stable for any ``a`` in [0, 1]. The backward pass is a
    reverse scan of the same kind (custom autograd function, ~3x faster than autograd
    through the passes).
    """
    if a.shape != b.shape:
        raise ValueError(f"linear_scan: a {tuple(a.shape)} and b {tuple(b.shape)} differ")
    return _LinearScan.apply(a, b)


@dataclass
class SSMState(ModelState):
    """Recurrent state of a batch of independent sequences (see module docstring)."""

    h: list[Tensor]
    """Per layer RG-LRU state ``(B, w)``."""
    conv: list[Tensor]
    """Per layer last ``K - 1`` conv inputs ``(B, K-1, w)`` (oldest first)."""
    t: Tensor
    """``(B,)`` int64: number of steps seen by each row (informational)."""

    @property
    def batch_size(self) -> int:
        return int(self.t.shape[0])

    def reset_rows(self, mask: Tensor) -> SSMState:
        mask = mask.to(device=self.t.device, dtype=torch.bool)
        keep = (~mask).to(self.h[0].dtype) if self.h else None
        self.h = [h * keep[:, None] for h in self.h]
        self.conv = [c * keep[:, None, None] for c in self.conv]
        self.t = self.t.masked_fill(mask, 0)
        return self

    def clone(self) -> SSMState:
        return SSMState([h.clone() for h in self.h], [c.clone() for c in self.conv], self.t.clone())

    def select(self, index: Tensor) -> SSMState:
        return SSMState([h[index] for h in self.h], [c[index] for c in self.conv], self.t[index])


class RGLRU(nn.Module):
    """Real-gated linear recurrent unit (diagonal, per channel)."""

    def __init__(self, width: int, c: float) -> None:
        super().__init__()
        self.c = c
        self.gates = nn.Linear(width, 2 * width)  # recurrence gate r and input gate i, fused
        # a^c ~ U[0.9, 0.999] at init (Griffin): softplus(-Lambda) = -log(a) = -log(u) / c
        u = torch.empty(width).uniform_(0.9, 0.999)
        y = -torch.log(u) / c
        self.a_param = nn.Parameter(-torch.log(torch.expm1(y)))

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Decay ``a_t`` and input ``b_t`` of the linear recurrence for inputs ``x``."""
        r, i = torch.sigmoid(self.gates(x)).chunk(2, dim=-1)
        log_a = -self.c * r * F.softplus(-self.a_param)
        a = torch.exp(log_a)
        mult = torch.sqrt((-torch.expm1(2.0 * log_a)).clamp_min(1e-12))
        return a, mult * (i * x)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, T, w)`` -> ``h (B, T, w)`` from a zero initial state."""
        a, b = self.coefficients(x)
        return linear_scan(a, b)

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        """``x (B, w)``, previous ``h (B, w)`` -> new ``h``."""
        a, b = self.coefficients(x)
        return a * h + b


class RecurrentBlock(nn.Module):
    """Hawk residual block: RG-LRU temporal mixing + gated MLP, both pre-norm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, w, k = config.d_model, config.rnn_width, config.conv_width
        self.k = k
        self.norm1 = nn.RMSNorm(d, eps=1e-6)
        self.w = w
        self.lin_in = nn.Linear(d, 2 * w)  # [gate branch | recurrent branch], fused
        bound = 1.0 / math.sqrt(k)
        self.conv_weight = nn.Parameter(torch.empty(w, k).uniform_(-bound, bound))
        self.conv_bias = nn.Parameter(torch.zeros(w))
        self.lru = RGLRU(w, config.lru_c)
        self.lin_out = nn.Linear(w, d)
        self.norm2 = nn.RMSNorm(d, eps=1e-6)
        self.mlp_in = nn.Linear(d, 2 * config.d_mlp)  # [gate | up], fused
        self.mlp_down = nn.Linear(config.d_mlp, d)
        self.drop = nn.Dropout(config.dropout)

    def _conv(self, u: Tensor) -> Tensor:
        # causal depthwise conv over time, u (B, T, w): out_t = b + sum_j w_j u_{t-K+1+j}
        t = u.shape[1]
        up = F.pad(u, (0, 0, self.k - 1, 0))
        out = self.conv_bias
        for j in range(self.k):
            out = out + self.conv_weight[:, j] * up[:, j : j + t]
        return out

    def _mlp(self, x: Tensor) -> Tensor:
        gate, up = self.mlp_in(self.norm2(x)).chunk(2, dim=-1)
        return self.mlp_down(F.gelu(gate) * up)

    def forward(self, x: Tensor) -> Tensor:
        gate, u = self.lin_in(self.norm1(x)).chunk(2, dim=-1)
        y = self.lru(self._conv(u)) * F.gelu(gate)
        x = x + self.drop(self.lin_out(y))
        return x + self.drop(self._mlp(x))

    def step(self, x: Tensor, h_prev: Tensor, buf: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step: ``x (B, d)``, ``h_prev (B, w)``, ``buf (B, K-1, w)`` -> (x, h, buf)."""
        gate, u = self.lin_in(self.norm1(x)).chunk(2, dim=-1)
        window = torch.cat([buf, u.unsqueeze(1)], dim=1)  # (B, K, w)
        conv = self.conv_bias
        for j in range(self.k):
            conv = conv + self.conv_weight[:, j] * window[:, j]
        h_new = self.lru.step(conv, h_prev)
        x = x + self.lin_out(h_new * F.gelu(gate))
        return x + self._mlp(x), h_new, window[:, 1:]


class HawkSSM(BaseModel):
    """Hawk (RG-LRU) recurrent base model (PAPER §3, ant)."""

    def _build_blocks(self) -> list[nn.Module]:
        return [RecurrentBlock(self.config) for _ in range(self.config.n_layers)]

    def _make_norm(self, dim: int) -> nn.Module:
        return nn.RMSNorm(dim, eps=1e-6)

    def _forward_context(self, seq_len: int, device: torch.device) -> None:
        return None

    def _block_forward(self, i: int, x: Tensor, ctx: None) -> Tensor:
        return self.blocks[i](x)

    def initial_state(self, batch_size: int) -> SSMState:
        """Zero recurrent and conv states for ``batch_size`` rows."""
        c = self.config
        kw = {"device": self.device, "dtype": self.dtype}
        return SSMState(
            h=[torch.zeros(batch_size, c.rnn_width, **kw) for _ in range(c.n_layers)],
            conv=[
                torch.zeros(batch_size, c.conv_width - 1, c.rnn_width, **kw)
                for _ in range(c.n_layers)
            ],
            t=torch.zeros(batch_size, dtype=torch.long, device=self.device),
        )

    def _step_context(self, state: SSMState, active: Tensor | None) -> Tensor | None:
        if not isinstance(state, SSMState):
            raise TypeError(f"expected an SSMState, got {type(state).__name__}")
        return None if active is None else active.to(device=state.t.device, dtype=torch.bool)

    def _block_step(self, i: int, x: Tensor, state: SSMState, ctx: Tensor | None) -> Tensor:
        x, h, conv = self.blocks[i].step(x, state.h[i], state.conv[i])
        if ctx is not None:  # inactive rows keep their state
            h = torch.where(ctx[:, None], h, state.h[i])
            conv = torch.where(ctx[:, None, None], conv, state.conv[i])
        state.h[i], state.conv[i] = h, conv
        return x

    def _advance(self, state: SSMState, active: Tensor | None) -> None:
        state.t = state.t + (1 if active is None else active.to(state.t.device).long())
