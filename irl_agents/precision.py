"""Mixed precision for training: one setting, ``"auto"``, ``"fp32"`` or ``"bf16"``.

bf16 runs the forward and backward passes under ``torch.autocast`` (matrix products in
bfloat16, reductions and the weights in fp32). On a CPU with AVX512-BF16 it trains the
gridworld base model at ~1.3x (d=128) to ~2.4x (d=256, L=6) the tokens per second of fp32
with the same loss curve (docs/benchmarks.md); on CPUs without native bf16 it is slower, which
is why ``"auto"`` checks.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def autocast_dtype(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of a ``precision`` setting on ``device`` (``None``: plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if kind == "cpu" and torch.backends.mkldnn.is_available():
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    return None


def autocast(precision: str, device: str | torch.device) -> contextlib.AbstractContextManager:
    """The context under which to run a training forward pass (a no-op for fp32)."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
