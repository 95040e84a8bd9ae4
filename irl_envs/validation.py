"""Argument checks that fail with a message naming the parameter and the allowed values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_SEED = 2**64 - 1
"""Seeds are unsigned 64-bit integers (layouts are a function of the seed as a uint64)."""


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (``high`` None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {'in ' if high is not None else ''}{bound}, "
                         f"got {value}")
    return int(value)


def check_float(name: str, value: Any, positive: bool = False, low: float | None = None,
                high: float | None = None) -> float:
    """``value`` as a finite float, ``> 0`` if ``positive``, within ``[low, high]`` if given."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a finite float, got {value!r}")
    value = float(value)
    bounds = [*(["> 0"] if positive else []), *([f">= {low:g}"] if low is not None else []),
              *([f"<= {high:g}"] if high is not None else [])]
    if (not math.isfinite(value) or (positive and value <= 0)
            or (low is not None and value < low) or (high is not None and value > high)):
        raise ValueError(f"{name} must be a finite float{' ' if bounds else ''}"
                         f"{' and '.join(bounds)}, got {value!r}")
    return value


def check_seed(name: str, seed: Any, count: int = 1) -> int:
    """A seed as an int such that ``seed .. seed + count - 1`` are all valid seeds."""
    return check_int(name, seed, 0, MAX_SEED - (count - 1))


def check_choice(name: str, value: Any, choices: Any) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_device(device: str, name: str = "device") -> str:
    """``device`` if it names a torch device this machine has (torch is imported here only,
    so that the environments never need it)."""
    import torch

    try:
        where = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be a torch device such as 'cpu', 'cuda' or 'cuda:1', "
                         f"got {device!r}") from None
    if where.type == "cuda" and (not torch.cuda.is_available()
                                 or (where.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"{name} {device!r}: no such CUDA device on this machine "
                         f"({torch.cuda.device_count()} available)")
    return device


def check_int_sequence(name: str, value: Any) -> tuple[int, ...]:
    """A list/tuple/1-d array of ints (no floats, strings or bools) as a tuple of ints."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"{name} must be a sequence of ints, got {value!r}")
        return tuple(int(v) for v in value)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a sequence of ints, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be a sequence of ints, got {value!r}")
    return tuple(int(v) for v in value)


def check_tensors(source: str, tensors: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Check loaded weights against a module's ``state_dict()``: names, shapes, dtypes, and
    finite floating-point values. Raises ``ValueError`` naming ``source`` and the tensors.

    Works on torch tensors without importing torch (methods only), so that environment code
    can use it too.
    """
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source}: tensors do not match the config: missing "
                         f"{_first(missing)}, unexpected {_first(unexpected)}")
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs config {tuple(v.shape)}"
              for k, v in expected.items() if tuple(tensors[k].shape) != tuple(v.shape)]
    if shapes:
        raise ValueError(f"{source}: tensor shapes do not match the config: {_first(shapes)}")
    dtypes = [f"{k}: file {tensors[k].dtype} vs config {v.dtype}"
              for k, v in expected.items() if tensors[k].dtype != v.dtype]
    if dtypes:
        raise ValueError(f"{source}: tensor dtypes do not match the config: {_first(dtypes)}")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise ValueError(f"{source}: non-finite values (NaN or Inf) in tensors {_first(bad)}")


def _first(names: list[str], n: int = 5) -> str:
    return f"{names[:n]}{'...' if len(names) > n else ''}"
