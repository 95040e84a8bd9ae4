"""Dataset episodes as right-padded tensors, the input format of every model stage."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from irl_envs.datasets import Demonstrations


@dataclass
class EpisodeBatch:
    """A batch of right-padded episodes; ``mask`` is True on valid steps."""

    obs: Tensor
    """``(B, T, D)`` observations, zeros past the end: float32, or the dataset's own dtype
    (uint8 for the gridworld) when :func:`pad_episodes` is asked to keep it."""
    actions: Tensor
    """``(B, T)`` int64 or ``(B, T, A)`` float32."""
    mask: Tensor
    """``(B, T)`` bool."""
    subgoals: Tensor
    """``(B, T)`` int64 side information (-1 on padding); never a model input."""
    targets: Tensor
    """``(B, T)`` int64 side information (-1 on padding); never a model input."""

    def __len__(self) -> int:
        return self.obs.shape[0]

    def to(self, device: str | torch.device | None) -> EpisodeBatch:
        """This batch on ``device`` (itself when None or already there)."""
        if device is None or self.obs.device == torch.device(device):
            return self
        return EpisodeBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def pad_episodes(data: Demonstrations, index: Sequence[int] | np.ndarray,
                 keep_dtype: bool = False,
                 device: str | torch.device | None = None) -> EpisodeBatch:
    """Gather episodes ``index`` of ``data`` into one right-padded :class:`EpisodeBatch`.

    ``keep_dtype`` keeps the observations' stored dtype instead of float32: a quarter of the
    memory traffic for the gridworld's uint8 planes (models cast their input themselves).
    ``device``: where the tensors are created (default: the CPU).
    """
    index = np.asarray(index, dtype=np.int64)
    lengths = data.episode_lengths[index]
    t = int(lengths.max())
    steps = np.arange(t)[None, :]
    mask = steps < lengths[:, None]
    src = np.where(mask, data.episode_starts[index, None] + steps, 0)
    obs = data.observations[src]
    obs = obs * mask[..., None].astype(obs.dtype) if keep_dtype else (
        obs.astype(np.float32) * mask[..., None])
    actions = data.actions[src]
    actions = np.where(mask if actions.ndim == 2 else mask[..., None], actions, 0)
    side = {k: np.where(mask, getattr(data, k)[src], -1) for k in ("subgoals", "targets")}
    return EpisodeBatch(obs=torch.from_numpy(obs), actions=torch.from_numpy(actions),
                        mask=torch.from_numpy(mask), subgoals=torch.from_numpy(side["subgoals"]),
                        targets=torch.from_numpy(side["targets"])).to(device)


def split_episodes(num_episodes: int, val_fraction: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle episode indices and split them into (train, validation)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_val = int(round(num_episodes * val_fraction))
    return order[n_val:], order[:n_val]


def similar_length_batch(data: Demonstrations, index: np.ndarray, batch_size: int,
                         rng: np.random.Generator) -> np.ndarray:
    """A random batch of episodes of similar length from ``index``.

    Episodes are ordered by length with random tie-breaking and a random window of
    ``batch_size`` is taken, so padding wastes little compute (gridworld pretraining data:
    ~1.7x fewer padded steps than uniform batches) while batches stay random.
    """
    if batch_size >= len(index):
        return np.asarray(index)
    order = np.lexsort((rng.random(len(index)), data.episode_lengths[index]))
    start = rng.integers(0, len(index) - batch_size + 1)
    return np.asarray(index)[order[start : start + batch_size]]


def iterate_batches(data: Demonstrations, index: np.ndarray, batch_size: int,
                    rng: np.random.Generator | None = None,
                    device: str | torch.device | None = None) -> Iterator[EpisodeBatch]:
    """Batches of episodes from ``index`` (on ``device``), shuffled when ``rng`` is given."""
    order = rng.permutation(index) if rng is not None else index
    for start in range(0, len(order), batch_size):
        yield pad_episodes(data, order[start : start + batch_size], device=device)
