"""Shared test settings: torch on one thread (CI has two cores and pytest-xdist is not used)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass

import irl_envs  # noqa: E402,F401  (registers the environments)
