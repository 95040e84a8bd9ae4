"""Where pretraining batches come from: a dataset file, or an expert generating fresh episodes.

Both sources answer the same two questions, so the training loop does not care which it has:
``train_batch(step)``, a pure function of the step (exact resume), and ``val_batches()``, a
fixed held-out set.

- :class:`FileEpisodes` reads an ``irl_envs.datasets`` file, holds out a random fraction of
  its episodes and draws batches of similar length with an RNG seeded by ``(seed, step)``.
- :class:`ExpertStream` never shows an episode twice: it rolls the family's expert out in
  chunks (gridworld: >10,000 episodes a second, against <1,000 consumed per second of
  training), each chunk from its own seed, and serves each chunk's episodes once, in batches
  of similar length. Held-out episodes come from a seed no chunk ever draws.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Protocol

import numpy as np

from irl_agents.episodes import EpisodeBatch, pad_episodes, similar_length_batch
from irl_envs.datasets import Demonstrations, generate_dataset, load_dataset


@dataclass(frozen=True)
class DataSpec:
    """What the model needs to know about the data to size itself."""

    obs_dim: int
    action_dim: int
    discrete: bool
    binary_obs: bool
    """Observations are 0/1 (Bernoulli next-observation likelihood)."""
    obs_shape: list[int] | None
    """Planes ``[C, H, W]`` of the observation, when it has them."""


class EpisodeSource(Protocol):
    """A source of pretraining batches (see module docstring)."""

    spec: DataSpec

    def train_batch(self, step: int) -> EpisodeBatch:
        """The batch of gradient step ``step``: the same on every call and after a resume."""

    def val_batches(self) -> Iterator[EpisodeBatch]:
        """The held-out episodes, in batches."""


def _spec(data: Demonstrations) -> DataSpec:
    obs = data.observations
    binary = obs.dtype == np.uint8 or (obs.size > 0 and bool(np.isin(obs[:1000], (0, 1)).all()))
    action_dim = int(data.num_actions)
    if data.discrete and data.num_steps:
        action_dim = max(action_dim, int(data.actions.max()) + 1)
    return DataSpec(obs_dim=int(data.obs_dim), action_dim=action_dim,
                    discrete=bool(data.discrete), binary_obs=binary,
                    obs_shape=data.meta.get("obs_shape"))


class FileEpisodes:
    """Batches from a dataset file, a random ``val_fraction`` of its episodes held out."""

    def __init__(self, path: str, batch_size: int, seed: int, val_fraction: float,
                 val_episodes: int) -> None:
        self.data = load_dataset(path)
        self.spec = _spec(self.data)
        self.batch_size, self.seed = batch_size, seed
        n_eps = self.data.num_episodes
        order = np.random.default_rng(seed).permutation(n_eps)
        n_val = min(int(round(n_eps * val_fraction)), n_eps - 1)
        self.val_idx, self.train_idx = order[:n_val][:val_episodes], order[n_val:]

    def train_batch(self, step: int) -> EpisodeBatch:
        rng = np.random.default_rng([self.seed, step])
        index = similar_length_batch(self.data, self.train_idx, self.batch_size, rng)
        return pad_episodes(self.data, index, keep_dtype=True)

    def val_batches(self) -> Iterator[EpisodeBatch]:
        for s in range(0, len(self.val_idx), self.batch_size):
            yield pad_episodes(self.data, self.val_idx[s : s + self.batch_size], keep_dtype=True)


def stream_seed(seed: int, chunk: int | None) -> int:
    """Environment seed of stream chunk ``chunk`` (``None``: the held-out set).

    64-bit seeds from a ``SeedSequence``: a chunk's sub-environments use ``s .. s + 255``, so
    two chunks (or a chunk and the held-out set) would share an episode only if two random
    64-bit numbers fell within 256 of each other.
    """
    key = (0,) if chunk is None else (1, chunk)
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0])


def _generate(env: str, task_set: str, episodes: int, seed: int, noise: float,
              num_envs: int, relabel: bool, pack: bool = False) -> Demonstrations:
    """One chunk; ``pack`` bit-packs binary observations (8x less to send between processes)."""
    data = generate_dataset(env, task_set, episodes, seed, noise=noise, num_envs=num_envs,
                            relabel=relabel, progress=False)
    if pack and data.observations.dtype == np.uint8 and data.observations.max() <= 1:
        data.meta["packed_dim"] = data.obs_dim
        data.observations = np.packbits(data.observations, axis=1)
    return data


def _unpack(data: Demonstrations) -> Demonstrations:
    if "packed_dim" in data.meta:
        dim = data.meta.pop("packed_dim")
        data.observations = np.unpackbits(data.observations, axis=1, count=dim)
    return data


VAL_ENVS = 256
"""Sub-environments that generate a stream's held-out set."""


class ExpertStream:
    """Fresh expert episodes, each used once (see module docstring).

    Step ``s`` reads batch ``s % per_chunk`` of chunk ``s // per_chunk``. A chunk holds
    ``chunk_episodes`` episodes from :func:`stream_seed`; they are sorted by length (random
    ties), cut into consecutive batches and the batches shuffled, so padding stays small and
    every episode of the chunk is used exactly once. ``num_envs`` sub-environments generate a
    chunk (4,096: ~4x faster than 256 on one core); chunks depend on it.

    With ``workers > 0`` the next ``workers`` chunks are generated ahead in worker processes
    (for a GPU, which trains faster than one core generates); chunks are the same either way.
    With ``relabel`` the training chunks hold a ``noise``-noisy expert's states labelled with its
    noise-free moves (``generate_dataset(relabel=True)``); the held-out set is always the
    noise-free expert's, so that recipes compare on the same episodes.
    """

    def __init__(self, env: str, batch_size: int, seed: int, val_episodes: int,
                 chunk_episodes: int = 16384, noise: float = 0.0, task_set: str = "pretrain",
                 num_envs: int = 4096, workers: int = 0, relabel: bool = False) -> None:
        if chunk_episodes < batch_size:
            raise ValueError(f"stream chunk_episodes ({chunk_episodes}) must be >= batch_size "
                             f"({batch_size})")
        if workers < 0:
            raise ValueError(f"stream workers must be >= 0, got {workers}")
        self.env, self.batch_size, self.seed = env, batch_size, seed
        self.chunk_episodes, self.noise, self.task_set = chunk_episodes, noise, task_set
        self.num_envs, self.workers, self.relabel = num_envs, workers, relabel
        self.per_chunk = chunk_episodes // batch_size
        # the held-out set depends on the seed alone (not on num_envs, noise or relabelling),
        # so that runs of different recipes are scored on the same episodes
        self.val = _generate(env, task_set, max(val_episodes, 1), stream_seed(seed, None), 0.0,
                             VAL_ENVS, relabel=False)
        self.spec = _spec(self.val)
        self._chunk: tuple[int, Demonstrations, np.ndarray] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._ahead: dict[int, Future] = {}

    def _args(self, chunk: int) -> tuple:
        return (self.env, self.task_set, self.chunk_episodes, stream_seed(self.seed, chunk),
                self.noise, self.num_envs, self.relabel)

    def _chunk_data(self, chunk: int) -> Demonstrations:
        if not self.workers:
            return _generate(*self._args(chunk))
        if self._pool is None:  # spawn: forked workers would inherit torch's thread pools
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        for ahead in range(chunk, chunk + self.workers + 1):
            if ahead not in self._ahead:
                self._ahead[ahead] = self._pool.submit(_generate, *self._args(ahead), pack=True)
        for old in [c for c in self._ahead if c < chunk]:
            self._ahead.pop(old).cancel()
        return _unpack(self._ahead.pop(chunk).result())

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool, self._ahead = None, {}

    def _batches(self, chunk: int) -> tuple[Demonstrations, np.ndarray]:
        if self._chunk is None or self._chunk[0] != chunk:
            data = self._chunk_data(chunk)
            rng = np.random.default_rng([self.seed, chunk])
            order = np.lexsort((rng.random(data.num_episodes), data.episode_lengths))
            batches = order[: self.per_chunk * self.batch_size].reshape(self.per_chunk, -1)
            self._chunk = (chunk, data, batches[rng.permutation(self.per_chunk)])
        return self._chunk[1], self._chunk[2]

    def train_batch(self, step: int) -> EpisodeBatch:
        data, batches = self._batches(step // self.per_chunk)
        return pad_episodes(data, batches[step % self.per_chunk], keep_dtype=True)

    def val_batches(self) -> Iterator[EpisodeBatch]:
        n = self.val.num_episodes
        for s in range(0, n, self.batch_size):
            yield pad_episodes(self.val, np.arange(s, min(s + self.batch_size, n)),
                               keep_dtype=True)

    def episodes_seen(self, steps: int) -> int:
        """Distinct episodes consumed by ``steps`` gradient steps."""
        return steps * self.batch_size
