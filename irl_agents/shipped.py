"""The checkpoints shipped inside the package, and the registered latent-action environments.

``irl_agents/weights/<env>/base/`` holds the default pretrained base model of an environment
family and ``irl_agents/weights/<env>/metacontroller/`` its metacontroller. The gridworld also
ships ``segment-codes/``: four label-free controllers named by where the metacontroller's
segments end (``irl segment-codes``; its gate reads boundary 1, the controllers write boundary
0), ``scaling/``: milestones of the base-model scaling curve (:func:`scaling_checkpoints`; the
default base is its ``relabel-073M``), and ``first-release/``: the first release's base model,
metacontroller and segment codes, which the older result tables were measured on.
docs/results.md and its stage pages (docs/results/, docs/scaling_grid.md) say how each was
trained.
``InternalRL/ColourSequenceLatent-v1`` is ``make_latent_env("grid",
metacontroller="segment-codes", threshold=0.3)`` (what internal RL learns the post-training
task on), ``InternalRL/ColourSequenceLatent-v0`` ``make_latent_env("grid")`` (the end-to-end
metacontroller) and ``InternalRL/AntSubgoalsLatent-v0`` ``make_latent_env("ant")``; their
``vector_entry_point`` (``gym.make_vec``) is :func:`make_latent_vector_env`.
"""

from __future__ import annotations

import json
from pathlib import Path

from irl_agents.latent_env import LatentActionEnv, LatentVectorEnv
from irl_agents.models import load_metacontroller, load_model
from irl_agents.raw_batch import make_raw_batch

WEIGHTS = Path(__file__).parent / "weights"


PARTS = ("base", "metacontroller", "segment-codes")
"""What may be shipped per environment family (not every family ships every part)."""


def shipped(env: str, part: str) -> Path:
    """Folder of the shipped ``part`` (one of :data:`PARTS`) for ``env``."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    folder = WEIGHTS / env / part
    if not folder.is_dir():
        have = sorted(p.parent.name for p in WEIGHTS.glob(f"*/{part}"))
        raise ValueError(f"no shipped {part} for env={env!r}; shipped: {have or 'none'}")
    return folder


def scaling_checkpoints(env: str = "grid") -> list[dict]:
    """The milestones of ``env``'s base-model scaling curve shipped in
    ``weights/<env>/scaling/`` (docs/scaling_grid.md): one dict per checkpoint, in the order of
    ``index.json``, with its measures and ``"path"``, a folder for :func:`load_model`."""
    index = WEIGHTS / env / "scaling" / "index.json"
    if not index.is_file():
        have = sorted(p.parent.parent.name for p in WEIGHTS.glob("*/scaling/index.json"))
        raise ValueError(f"no shipped scaling checkpoints for env={env!r}; shipped: {have}")
    entries = json.loads(index.read_text())["checkpoints"]
    return [e | {"path": index.parent / e["folder"]} for e in entries]


def _frozen(env: str, metacontroller: str):
    """The shipped base model and ``metacontroller`` of ``env``, frozen in eval mode."""
    if metacontroller not in PARTS[1:]:
        raise ValueError(f"metacontroller must be one of {PARTS[1:]}, got {metacontroller!r}")
    base = load_model(shipped(env, "base"))
    meta = load_metacontroller(shipped(env, metacontroller))
    for p in [*base.parameters(), *meta.parameters()]:
        p.requires_grad_(False)
    return base.eval(), meta.eval()


def make_latent_env(env: str = "grid", task_set: str = "posttrain", threshold: float = 0.5,
                    z_bound: float = 4.0, greedy: bool = False,
                    render_mode: str | None = None, metacontroller: str = "metacontroller",
                    task: str | None = None) -> LatentActionEnv:
    """The latent-action environment over the shipped base model and a shipped metacontroller.

    :param metacontroller: ``"metacontroller"`` (end-to-end, PAPER §5) or, for the gridworld,
        ``"segment-codes"`` (four codes named by where its segments end). Internal RL learns
        the post-training task over the segment codes with ``threshold=0.3``, after about
        120,000 episodes (docs/results/internal_rl.md, "Issue 18", point 7).
    :param task: one task, e.g. ``"0-1-2-3"``, replacing the task set's tasks.

    The other arguments are :class:`LatentActionEnv`'s and :func:`make_raw_batch`'s, e.g.
    ``gym.make("InternalRL/ColourSequenceLatent-v1", task="0-1-2-3")`` (v1 is the segment
    codes at ``threshold=0.3``).
    """
    base, meta = _frozen(env, metacontroller)
    raw = make_raw_batch(env, task_set, 1, task, render_mode=render_mode)
    return LatentActionEnv(base, meta, raw, threshold, z_bound, greedy, render_mode)


def make_latent_vector_env(num_envs: int = 1, env: str = "grid", task_set: str = "posttrain",
                           threshold: float = 0.5, z_bound: float = 4.0, greedy: bool = False,
                           render_mode: str | None = None,
                           metacontroller: str = "metacontroller", task: str | None = None,
                           max_episode_steps: int | None = None,
                           workers: int = 1) -> LatentVectorEnv:
    """:func:`make_latent_env` for ``num_envs`` environments at once: the batched
    :class:`LatentVectorEnv` (``gym.make_vec(id, num_envs=N)``).

    :param max_episode_steps: latent steps after which an episode is truncated (Gymnasium
        passes the spec's; it never binds before the raw horizon, as each latent step lasts at
        least one raw step).
    :param workers: processes stepping the raw environments (the ant; the gridworld's rows are
        one numpy batch).
    """
    base, meta = _frozen(env, metacontroller)
    raw = make_raw_batch(env, task_set, num_envs, task, workers=workers, render_mode=render_mode)
    return LatentVectorEnv(base, meta, raw, threshold, z_bound, greedy, max_episode_steps,
                           render_mode)


# Gymnasium reads an entry point's render modes from its ``metadata``: with them it serves
# render_mode="human" through its HumanRendering wrapper (pygame) as for the raw envs.
make_latent_env.metadata = LatentActionEnv.metadata
