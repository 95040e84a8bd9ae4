"""Observation encoders: the map from an observation vector to the residual stream at l = 0.

- ``linear`` (the paper's): one linear layer. On the gridworld's one-hot planes it sums one
  learned vector per (object, cell) pair, so every spatial relation (is the agent next to
  colour 3? standing on it?) must be learned by the blocks from scratch.
- ``grid_conv``: the observation reshaped to its ``(C, G, G)`` planes, two 3x3 convolutions
  (zero padding, so the grid border is visible) and a linear map to ``d``. Local relations
  come for free; at CPU scale this learns the gridworld several times faster (see
  docs/results/base_models.md). The residual stream, the controllers and everything downstream are
  unchanged: only what feeds boundary 0 differs.
- ``grid_ego``: the same planes re-centred on the agent first (:class:`EgocentricGridEncoder`).
- ``grid_objects``: re-centred planes, and one encoder *shared by all colours* that maps a
  colour's plane to a feature vector in that colour's slot (:class:`EgocentricObjectEncoder`).
  "Colour c is two cells to the left" then has the same code for every c, so "walk to the
  target colour" becomes one AND of the target's identity and its slot's direction features,
  instead of a separate navigation skill per colour (see docs/results/base_models.md).
- ``ant_objects``: the ant's analogue (:class:`AntObjectEncoder`): each colour's offset from
  the torso, turned into the body frame, through one encoder shared by all colours.
- ``ant_heading``: the paper's linear layer over the observation rewritten in the ant's
  heading frame (:class:`AntHeadingEncoder`, the in-model twin of
  :func:`irl_envs.ant_heading.heading_frame`). The model still reads, predicts and is rolled
  out on the environment's own world-frame observations, so nothing else needs to know.
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
    if config.obs_encoder == "linear":
        return nn.Linear(config.obs_dim, config.d_model)
    if config.obs_encoder == "ant_objects":
        return AntObjectEncoder(config.obs_dim, config.d_model, config.conv_channels,
                                config.ant_colours)
    if config.obs_encoder == "ant_heading":
        return AntHeadingEncoder(config.obs_dim, config.d_model)
    if config.obs_shape is None:
        raise ValueError(f"obs_encoder={config.obs_encoder!r} needs ModelConfig.obs_shape "
                         "[C, H, W]")
    if config.obs_encoder == "grid_objects":
        return EgocentricObjectEncoder(config.obs_shape, config.d_model, config.conv_channels,
                                       config.grid_colours)
    cls = GridConvEncoder if config.obs_encoder == "grid_conv" else EgocentricGridEncoder
    return cls(config.obs_shape, config.d_model, config.conv_channels)


def egocentric_window(planes: Tensor) -> Tensor:
    """``(n, C, G, G)`` planes (last: agent) -> ``(n, C, 2G-1, 2G-1)`` centred on the agent.

    Window pixel ``(i, j)`` of an agent at ``(r, q)`` shows grid cell ``(r + i - G + 1,
    q + j - G + 1)``. The first ``C - 1`` output planes are the object planes; the last marks
    window pixels that fall off the grid.
    """
    n, c, g, _ = planes.shape
    w = 2 * g - 1
    agent = planes[:, -1].flatten(1).argmax(1)
    r, q = agent // g, agent % g
    padded = nn.functional.pad(planes[:, :-1], (g - 1,) * 4)
    off = nn.functional.pad(planes.new_zeros(n, 1, g, g), (g - 1,) * 4, value=1.0)
    padded = torch.cat([padded, off], 1)  # (n, C, 3G-2, 3G-2)
    i = torch.arange(w, device=planes.device)
    rows = (r[:, None] + i[None, :])[:, None, :, None].expand(n, c, w, w)
    cols = (q[:, None] + i[None, :])[:, None, None, :].expand(n, c, w, w)
    index = (rows * (3 * g - 2) + cols).flatten(2)
    return padded.flatten(2).gather(2, index).view(n, c, w, w)


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

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-1]
        window = egocentric_window(obs.reshape(-1, *self.shape))
        return self.proj(self.conv(window).flatten(1)).reshape(*lead, -1)


class EgocentricObjectEncoder(nn.Module):
    """Agent-centred planes, one encoder shared by every colour (``grid_objects``).

    Each of the ``colours`` leading planes, re-centred on the agent (``(2G-1)^2`` pixels, one
    of them set: the colour's offset from the agent), goes through the same two-layer MLP to
    ``width`` features, written to that colour's slot. The obstacle planes (walls, merged,
    and the off-grid plane) go through a second MLP. The concatenation maps linearly to ``d``.
    """

    lookup: bool = True
    """Use the column lookup on one-hot planes (:meth:`_first_layers_sparse`); False forces
    the dense window product (the reference the lookup is tested and benchmarked against)."""

    def __init__(self, shape: tuple[int, int, int], d_model: int, width: int,
                 colours: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        c, g, _ = self.shape
        if not 1 <= colours < c:
            raise ValueError(f"grid_colours must be in [1, {c - 1}] for obs_shape {shape}, "
                             f"got {colours}")
        self.colours = colours
        pixels = (2 * g - 1) ** 2
        self.colour_mlp = nn.Sequential(nn.Linear(pixels, 4 * width), nn.ReLU(),
                                        nn.Linear(4 * width, width), nn.ReLU())
        self.obstacle_mlp = nn.Sequential(nn.Linear(2 * pixels, 4 * width), nn.ReLU(),
                                          nn.Linear(4 * width, width), nn.ReLU())
        self.proj = nn.Linear((colours + 1) * width, d_model)

        # window pixel of grid cell j seen by an agent on cell a, and the off-grid plane's
        # window for each agent cell: constants of the layout, not parameters
        cells = torch.arange(g * g)
        r, q = cells // g, cells % g
        shift = (r[None, :] - r[:, None] + g - 1) * (2 * g - 1) + (q[None, :] - q[:, None] + g - 1)
        self.register_buffer("shift", shift, persistent=False)  # (agent cell, cell)
        agents = nn.functional.one_hot(cells, g * g).float().view(g * g, 1, g, g)
        off = egocentric_window(torch.cat([agents.new_zeros(g * g, c - 1, g, g), agents], 1))
        self.register_buffer("off_grid", off[:, -1].flatten(1), persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-1]
        planes = obs.reshape(-1, self.shape[0], self.shape[1] * self.shape[2])
        if self.lookup and bool((planes[:, :-1] != 0).sum(-1).le(1).all()):
            colour, obstacle = self._first_layers_sparse(planes)
        else:
            window = egocentric_window(obs.reshape(-1, *self.shape)).flatten(2)
            walls = window[:, self.colours : -1].sum(1)
            colour = self.colour_mlp[0](window[:, : self.colours])
            obstacle = self.obstacle_mlp[0](torch.cat([walls, window[:, -1]], 1))
        colour = self.colour_mlp[1:](colour).flatten(1)
        obstacle = self.obstacle_mlp[1:](obstacle)
        return self.proj(torch.cat([colour, obstacle], 1)).reshape(*lead, -1)

    def _first_layers_sparse(self, planes: Tensor) -> tuple[Tensor, Tensor]:
        """The two MLPs' first linear layers when every object plane has at most one pixel
        set (always true of gridworld observations and of zero padding).

        A linear layer on a one-hot window is a column lookup, so each object costs one row
        of the weight instead of a (2G-1)^2-wide product: the same values up to float
        rounding, about 4x less encoder compute per token.
        """
        agent = planes[:, -1].argmax(1)
        objects = planes[:, :-1]
        cell = objects.abs().argmax(-1)  # (n, C - 1): the set pixel (any if none)
        value = objects.gather(-1, cell[..., None])  # (n, C - 1, 1), 0 where none is set
        pixel = self.shift[agent[:, None], cell]  # its window pixel seen from the agent
        first_c, first_o = self.colour_mlp[0], self.obstacle_mlp[0]
        k = self.colours
        colour = (nn.functional.embedding(pixel[:, :k], first_c.weight.t()) * value[:, :k]
                  + first_c.bias)
        pixels = self.off_grid.shape[1]
        w_walls, w_off = first_o.weight[:, :pixels], first_o.weight[:, pixels:]
        walls = nn.functional.embedding(pixel[:, k:], w_walls.t()) * value[:, k:]
        obstacle = walls.sum(1) + (self.off_grid @ w_off.t())[agent] + first_o.bias
        return colour, obstacle


def symexp(x: Tensor) -> Tensor:
    """Inverse of ``symlog(x) = sign(x) log(1 + |x|)``."""
    return torch.sign(x) * torch.expm1(x.abs())


def symlog(x: Tensor) -> Tensor:
    """``sign(x) log(1 + |x|)``, as AntSubgoals applies to proprioception."""
    return torch.sign(x) * torch.log1p(x.abs())


def ant_heading(obs: Tensor) -> tuple[Tensor, Tensor]:
    """``cos, sin`` of the torso's yaw, ``(...)``, from ``(..., D)`` AntSubgoals observations
    (the quaternion ``w, x, y, z`` at indices 1-4, symlogged)."""
    q = symexp(obs[..., 1:5])
    yaw = torch.atan2(2 * (q[..., 0] * q[..., 3] + q[..., 1] * q[..., 2]),
                      1 - 2 * (q[..., 2] ** 2 + q[..., 3] ** 2))
    return torch.cos(yaw), torch.sin(yaw)


def to_heading(vec: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """World-frame planar vectors ``(..., 2)`` rotated by ``-yaw`` (+x ahead, +y left)."""
    x, y = vec[..., 0], vec[..., 1]
    return torch.stack([cos * x + sin * y, -sin * x + cos * y], -1)


class AntHeadingEncoder(nn.Module):
    """The ant's observation in its heading frame, then one linear layer (``ant_heading``).

    The torso's planar velocity (indices 13-14, symlogged) and every colour and wall offset
    (indices 29 to D - 3) are rotated by ``-yaw``; ``cos, sin`` of the yaw are appended. This
    is :func:`irl_envs.ant_heading.heading_frame` inside the model (tested equal), so a model
    trained on world-frame data acts on "colour c is ahead and to the left" without learning
    the rotation, and every tool that feeds it env observations works unchanged.
    """

    def __init__(self, obs_dim: int, d_model: int) -> None:
        super().__init__()
        if obs_dim < 33 or (obs_dim - 31) % 2:
            raise ValueError(f"obs_encoder='ant_heading' needs an AntSubgoals observation "
                             f"(31 + 2 per cell dims), got obs_dim {obs_dim}")
        self.proj = nn.Linear(obs_dim + 2, d_model)

    @staticmethod
    def frame(obs: Tensor) -> Tensor:
        """``(..., D)`` world-frame observations -> ``(..., D + 2)`` heading-frame ones."""
        cos, sin = ant_heading(obs)
        vel = symlog(to_heading(symexp(obs[..., 13:15]), cos, sin))
        offsets = to_heading(obs[..., 29:-2].unflatten(-1, (-1, 2)), cos[..., None],
                             sin[..., None]).flatten(-2)
        return torch.cat([obs[..., :13], vel, obs[..., 15:29], offsets, obs[..., -2:],
                          cos[..., None], sin[..., None]], -1)

    def forward(self, obs: Tensor) -> Tensor:
        return self.proj(self.frame(obs))


class AntObjectEncoder(nn.Module):
    """The ant's colours seen from its body, one encoder shared by every colour
    (``ant_objects``).

    The observation (``irl_envs.ant_subgoals``: 27 symlog proprioceptive values, global
    position, one world-frame offset per colour then per wall, the position in the cell) is
    split into objects. Each offset is rotated into the torso's heading frame (yaw from the
    quaternion) and, with its length, goes through an MLP shared by all colours into that
    colour's slot; walls share a second MLP and are summed; the body (proprioception, global
    and in-cell position) has a third. The concatenation maps linearly to ``d``. As with
    ``grid_objects``, "colour c is ahead and to the left" has one code for every c, so
    walking to the target is one skill keyed by the target's identity.
    """

    proprio_dim = 27

    def __init__(self, obs_dim: int, d_model: int, width: int, colours: int) -> None:
        super().__init__()
        objects, rest = divmod(obs_dim - self.proprio_dim - 4, 2)
        if rest or not 1 <= colours <= objects:
            raise ValueError(f"ant_colours must be in [1, {objects}] for obs_dim {obs_dim} (27 "
                             f"proprio + 2 xy + 2 per object + 2 in-cell), got {colours}")
        self.colours, self.walls = colours, objects - colours

        def mlp(n_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(n_in, 4 * width), nn.ReLU(),
                                 nn.Linear(4 * width, width), nn.ReLU())

        self.colour_mlp, self.wall_mlp = mlp(3), mlp(3)
        self.body_mlp = mlp(self.proprio_dim + 4)
        self.proj = nn.Linear((colours + 2) * width, d_model)

    def objects(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Colour slots ``(..., O * width)`` and summed wall features ``(..., width)``."""
        p = self.proprio_dim
        cos, sin = ant_heading(obs)
        rel = obs[..., p + 2 : -2].unflatten(-1, (-1, 2))  # (..., objects, 2), world frame
        body = to_heading(rel, cos[..., None], sin[..., None])
        feats = torch.cat([body, rel.norm(dim=-1, keepdim=True)], -1)
        colour = self.colour_mlp(feats[..., : self.colours, :]).flatten(-2)
        return colour, self.wall_mlp(feats[..., self.colours :, :]).sum(-2)

    def forward(self, obs: Tensor) -> Tensor:
        own = self.body_mlp(torch.cat([obs[..., : self.proprio_dim + 2], obs[..., -2:]], -1))
        return self.proj(torch.cat([*self.objects(obs), own], -1))
