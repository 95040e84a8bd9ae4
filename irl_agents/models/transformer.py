"""Causal pre-norm transformer with T5 relative position biases and a KV-cache step path.

Positions enter only through a learned per-layer, per-head bias indexed by a bucket of
the query-key distance (T5, unidirectional): distances ``0..n/2-1`` get their own bucket,
longer ones ``n/2..n-1`` share log-spaced buckets up to ``rel_pos_max_distance``, and
anything further falls into the last bucket. There is no absolute position table, so the
model accepts sequences of any length.

Incremental state (:class:`TransformerState`): per layer a key and a value cache
``(B, H, C, d_head)`` preallocated with capacity ``C`` (doubled when full) and a per-row
position ``pos (B,)``. Each row writes its own slot ``pos[b]`` and attends to slots
``0..pos[b]``, so rows may sit at different time steps; resetting a row just sets its
``pos`` to 0 (stale slots are masked out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from irl_agents.models.base import BaseModel, ModelState
from irl_agents.models.config import ModelConfig


def relative_position_bucket(distance: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """T5 unidirectional bucket of a non-negative query-key distance (``q_pos - k_pos``)."""
    n = distance.clamp_min(0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = (
        max_exact
        + (
            torch.log(n.float().clamp_min(1.0) / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).long()
    )
    large = large.clamp_max(num_buckets - 1)
    return torch.where(is_small, n, large)


@dataclass
class TransformerState(ModelState):
    """KV cache of a batch of independent sequences (see module docstring)."""

    keys: list[Tensor]
    """Per layer ``(B, H, C, d_head)``."""
    values: list[Tensor]
    """Per layer ``(B, H, C, d_head)``."""
    pos: Tensor
    """``(B,)`` int64: index of the next step of each row (= number of steps seen)."""

    @property
    def batch_size(self) -> int:
        return int(self.pos.shape[0])

    @property
    def capacity(self) -> int:
        """Current number of cache slots C."""
        return int(self.keys[0].shape[2]) if self.keys else 0

    def reset_rows(self, mask: Tensor) -> TransformerState:
        mask = mask.to(device=self.pos.device, dtype=torch.bool)
        self.pos = self.pos.masked_fill(mask, 0)
        return self

    def clone(self) -> TransformerState:
        return TransformerState(
            [k.clone() for k in self.keys], [v.clone() for v in self.values], self.pos.clone()
        )

    def select(self, index: Tensor) -> TransformerState:
        return TransformerState(
            [k[index] for k in self.keys], [v[index] for v in self.values], self.pos[index]
        )

    def ensure_capacity(self, needed: int) -> None:
        """Grow (double) every cache until it has at least ``needed`` slots."""
        cap = self.capacity
        if needed <= cap:
            return
        new_cap = max(needed, 2 * cap, 16)
        for store in (self.keys, self.values):
            for i, t in enumerate(store):
                grown = t.new_zeros(t.shape[0], t.shape[1], new_cap, t.shape[3])
                grown[:, :, :cap] = t
                store[i] = grown


class Attention(nn.Module):
    """Multi-head causal self-attention with an additive relative-position bias."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.d_head = config.d_model // config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.rel_bias = nn.Embedding(config.rel_pos_buckets, config.n_heads)
        nn.init.zeros_(self.rel_bias.weight)
        self.dropout = config.dropout

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # x (..., S, d) -> q, k, v each (..., H, S, d_head)
        *lead, s, _ = x.shape
        qkv = self.qkv(x).view(*lead, s, 3, self.n_heads, self.d_head)
        q, k, v = qkv.unbind(-3)
        return q.transpose(-3, -2), k.transpose(-3, -2), v.transpose(-3, -2)

    def forward(self, x: Tensor, buckets: Tensor, causal: Tensor) -> Tensor:
        """``x (B, T, d)``; ``buckets (T, T)`` long; ``causal (T, T)`` additive (0 / -inf)."""
        b, t, d = x.shape
        q, k, v = self._split(x)
        bias = self.rel_bias(buckets).permute(2, 0, 1) + causal  # (H, T, T)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0), dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def step(
        self, x: Tensor, k_cache: Tensor, v_cache: Tensor, ctx: _StepCtx
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B, d)``; returns output and the (possibly new) caches."""
        b, d = x.shape
        q, k, v = self._split(x.unsqueeze(1))  # (B, H, 1, dh)
        if torch.is_grad_enabled():  # copy so that earlier autograd history stays valid
            k_cache, v_cache = k_cache.clone(), v_cache.clone()
        if ctx.active is not None:  # only the active rows write their slot
            rows, pos = ctx.rows[ctx.active], ctx.pos[ctx.active]
            k_cache[rows, :, pos] = k[ctx.active, :, 0]
            v_cache[rows, :, pos] = v[ctx.active, :, 0]
        elif ctx.same_pos is not None:  # all rows at the same step: plain slice write
            k_cache[:, :, ctx.same_pos] = k[:, :, 0]
            v_cache[:, :, ctx.same_pos] = v[:, :, 0]
        else:  # (B, H, dh) into slot pos[b] of row b
            k_cache[ctx.rows, :, ctx.pos] = k[:, :, 0]
            v_cache[ctx.rows, :, ctx.pos] = v[:, :, 0]
        n = ctx.n_keys
        bias = self.rel_bias(ctx.buckets).permute(0, 2, 1).unsqueeze(2) + ctx.invalid  # (B,H,1,n)
        y = F.scaled_dot_product_attention(q, k_cache[:, :, :n], v_cache[:, :, :n], attn_mask=bias)
        return self.out(y.reshape(b, d)), k_cache, v_cache


@dataclass
class _StepCtx:
    rows: Tensor  # (B,) arange
    pos: Tensor  # (B,) slot to write
    same_pos: int | None  # the common slot when all rows are at the same step
    n_keys: int  # number of cache slots to attend over (max pos + 1)
    buckets: Tensor  # (B or 1, n_keys) long
    invalid: Tensor  # (B or 1, 1, 1, n_keys) additive mask (0 / -inf)
    active: Tensor | None  # (B,) bool: rows that write their cache slot, None for all


class GatedMLP(nn.Module):
    """SwiGLU MLP, ``down(silu(gate(x)) * up(x))``: products of residual features in one layer."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.gate, self.up = nn.Linear(d, hidden), nn.Linear(d, hidden)
        self.down = nn.Linear(hidden, d)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` (ReLU or SwiGLU MLP)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(config)
        self.ln2 = nn.LayerNorm(d)
        relu = nn.Sequential(nn.Linear(d, config.d_mlp), nn.ReLU(), nn.Linear(config.d_mlp, d))
        self.mlp = GatedMLP(d, config.d_mlp) if config.mlp == "swiglu" else relu
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, buckets: Tensor, causal: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), buckets, causal))
        return x + self.drop(self.mlp(self.ln2(x)))


class CausalTransformer(BaseModel):
    """Causal pre-norm transformer base model (PAPER §3, grid)."""

    def _build_blocks(self) -> list[nn.Module]:
        return [TransformerBlock(self.config) for _ in range(self.config.n_layers)]

    def _make_norm(self, dim: int) -> nn.Module:
        return nn.LayerNorm(dim)

    def _buckets(self, distance: Tensor) -> Tensor:
        return relative_position_bucket(
            distance, self.config.rel_pos_buckets, self.config.rel_pos_max_distance
        )

    def _forward_context(self, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
        pos = torch.arange(seq_len, device=device)
        dist = pos[:, None] - pos[None, :]
        causal = torch.zeros(seq_len, seq_len, device=device, dtype=self.dtype)
        causal.masked_fill_(dist < 0, float("-inf"))
        return self._buckets(dist), causal

    def _block_forward(self, i: int, x: Tensor, ctx: tuple[Tensor, Tensor]) -> Tensor:
        return self.blocks[i](x, *ctx)

    def initial_state(self, batch_size: int, capacity: int = 64) -> TransformerState:
        """Empty KV cache for ``batch_size`` rows with ``capacity`` preallocated slots
        (grown automatically when a row goes past it)."""
        c = self.config
        shape = (batch_size, c.n_heads, capacity, c.d_model // c.n_heads)
        kw = {"device": self.device, "dtype": self.dtype}
        return TransformerState(
            keys=[torch.zeros(shape, **kw) for _ in range(c.n_layers)],
            values=[torch.zeros(shape, **kw) for _ in range(c.n_layers)],
            pos=torch.zeros(batch_size, dtype=torch.long, device=self.device),
        )

    def _step_context(self, state: TransformerState, active: Tensor | None) -> _StepCtx:
        if not isinstance(state, TransformerState):
            raise TypeError(f"expected a TransformerState, got {type(state).__name__}")
        lo, hi = (int(x) for x in state.pos.aminmax()) if state.batch_size else (0, 0)
        n = hi + 1
        state.ensure_capacity(n)
        dev = state.pos.device
        keys = torch.arange(n, device=dev)
        # all rows at the same step (the usual case): one bias row broadcast over the batch
        pos = state.pos[:1] if lo == hi else state.pos
        dist = pos[:, None] - keys[None, :]  # (B or 1, n)
        invalid = torch.zeros(dist.shape, device=dev, dtype=self.dtype)
        invalid.masked_fill_(dist < 0, float("-inf"))
        return _StepCtx(
            rows=torch.arange(state.batch_size, device=dev),
            pos=state.pos,
            same_pos=lo if lo == hi else None,
            n_keys=n,
            buckets=self._buckets(dist),
            invalid=invalid[:, None, None, :],
            active=None if active is None else active.to(device=dev, dtype=torch.bool),
        )

    def _block_step(self, i: int, x: Tensor, state: TransformerState, ctx: _StepCtx) -> Tensor:
        blk: TransformerBlock = self.blocks[i]
        y, state.keys[i], state.values[i] = blk.attn.step(
            blk.ln1(x), state.keys[i], state.values[i], ctx
        )
        x = x + y
        return x + blk.mlp(blk.ln2(x))

    def _advance(self, state: TransformerState, active: Tensor | None) -> None:
        state.pos = state.pos + (1 if active is None else active.to(state.pos.device).long())
