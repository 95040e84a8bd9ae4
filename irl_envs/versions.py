"""Versions of the software a run used, recorded next to its outputs."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("internal-rl", "numpy", "gymnasium", "mujoco", "torch", "stable-baselines3",
             "safetensors")


def versions() -> dict[str, str]:
    """Python and key package versions (``"missing"`` if not installed)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out
