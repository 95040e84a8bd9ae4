"""Observation encoders: the map from an observation vector to the residual stream at l = 0.

- ``linear`` (the paper's): one linear layer. On the gridworld's one-hot planes it sums one
  learned vector per (object, cell) pair, so every spatial relation (is the agent next to
  colour 3? standing on it?) must be learned by the blocks from scratch.
- ``grid_conv``: the observation reshaped to its ``(C, G, G)`` planes, two 3x3 convolutions
  (zero padding, so the grid border is visible) and a linear map to ``d``. Local relations
  come for free; at CPU scale this learns the gridworld several times faster (see
  docs/results.md). The residual stream, the controllers and everything downstream are
  unchanged: only what feeds boundary 0 differs.
- ``grid_ego``: the same planes re-centred on the agent first (:class:`EgocentricGridEncoder`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from irl_agents.models.config import ModelConfig


class GridConvEncoder(nn.Module):
    """``(..., C*G*G)`` one-hot planes -> ``(..., d)`` through a small CNN."""

    def __init__(self, shape: tuple[int, int, int], d_model: int, channels: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        c, g, w = self.shape
        self.conv = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )
        self.proj = nn.Linear(channels * g * w, d_model)

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-1]
        y = self.conv(obs.reshape(-1, *self.shape)).flatten(1)
        return self.proj(y).reshape(*lead, -1)


def build_encoder(config: ModelConfig) -> nn.Module:
    """The observation encoder named by ``config.obs_encoder``."""
    if config.obs_encoder in ("grid_conv", "grid_ego"):
        if config.obs_shape is None:
            raise ValueError(f"obs_encoder={config.obs_encoder!r} needs ModelConfig.obs_shape "
                             "[C, H, W]")
        cls = GridConvEncoder if config.obs_encoder == "grid_conv" else EgocentricGridEncoder
        return cls(config.obs_shape, config.d_model, config.conv_channels)
    return nn.Linear(config.obs_dim, config.d_model)


class EgocentricGridEncoder(nn.Module):
    """The planes re-centred on the agent, then a small CNN (``grid_ego``).

    The ``(C, G, G)`` planes (the last plane marks the agent) are placed in a
    ``(2G-1) x (2G-1)`` window centred on the agent, with one extra plane marking cells off
    the grid. In this frame "colour c is up and to the left" is a fixed set of pixels, so the
    direction to every colour and obstacle is a linear read-out instead of something the
    blocks must learn to compute from two absolute positions.
    """

    def __init__(self, shape: tuple[int, int, int], d_model: int, channels: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        c, g, _ = self.shape
        w = 2 * g - 1
        self.conv = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        )
        side = (w + 1) // 2
        self.proj = nn.Linear(channels * side * side, d_model)
        # gather index: window pixel (i, j) of an agent at (r, q) reads padded cell
        # (r + i, q + j) of the grid padded by G - 1 on each side
        self.g, self.w = g, w

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-1]
        c, g, _ = self.shape
        planes = obs.reshape(-1, c, g, g)
        n = planes.shape[0]
        agent = planes[:, -1].flatten(1).argmax(1)
        r, q = agent // g, agent % g
        padded = nn.functional.pad(planes[:, :-1], (g - 1, g - 1, g - 1, g - 1))
        off = nn.functional.pad(planes.new_zeros(n, 1, g, g), (g - 1,) * 4, value=1.0)
        padded = torch.cat([padded, off], 1)  # (n, c, 3G-2, 3G-2): c-1 object planes + off-grid
        i = torch.arange(self.w, device=obs.device)
        rows = (r[:, None] + i[None, :])[:, None, :, None].expand(n, c, self.w, self.w)
        cols = (q[:, None] + i[None, :])[:, None, None, :].expand(n, c, self.w, self.w)
        flat = padded.flatten(2)
        window = flat.gather(2, (rows * (3 * g - 2) + cols).flatten(2)).view(n, c, self.w, self.w)
        y = self.conv(window).flatten(1)
        return self.proj(y).reshape(*lead, -1)
