"""Shared test settings: torch on one thread (CI has two cores and pytest-xdist is not used)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass

import irl_envs  # noqa: E402,F401  (registers the environments)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (full-length training checks) run only with IRL_SLOW=1; CI runs
    their fast variants."""
    import pytest

    if os.environ.get("IRL_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow training check: set IRL_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
