"""Grid planner of the ant expert: where to walk next, from the layout and the torso position.

The planner turns the grid-level shortest path (:mod:`irl_envs.grid_logic`, the same BFS the
gridworld expert uses) into a continuous walking direction for the locomotion policy. It is
stateless and batched over N environments: everything is a function of

- ``cells``: ``(N, G*G)`` layouts (``EMPTY`` = -1, colour ``0..O-1``, wall ``O + j``),
- ``xy``: ``(N, 2)`` world position of the torso centre,
- ``target``: ``(N,)`` next colour of the task (-1 once the task is done),

so it can be evaluated from an observation alone (see :func:`layout_from_obs`) and needs no
per-episode memory, which makes it safe on any vector environment with autoreset.

## Next cell
``grid_logic.action_costs`` gives, for each of the 4 moves out of the ant's cell, the number of
moves left to enter the target, crossing empty cells only (other colours, walls and the border
are forbidden). The planner takes the cheapest move. Ties (two equally short routes) are broken
deterministically, towards the neighbour whose centre is closest to the torso, so that the
choice is stable as the ant advances and never depends on a random draw.

## Direction: pure pursuit of the cell-centre line
The path is the polyline through the cell centres. Let ``c`` be the centre of the ant's cell,
``u`` the unit vector of the chosen move and ``s = (xy - c) . u`` the ant's progress along that
segment. The *carrot* is the point ``c + min(s + L, cell) u`` on the segment, ``L`` ahead of the
ant's projection (``lookahead``), never beyond the next cell's centre; the commanded direction
is the unit vector from the torso to the carrot. Properties:

- The segment from any point of the current cell to the next cell's centre stays inside the
  1 x 2 rectangle of the two cells (it is convex), so the commanded line never crosses a third
  cell; the pursuit also pulls a laterally displaced torso back to the centre line (heading
  ``atan(e / L)`` towards it for a lateral offset ``e``).
- Corners are turned inside the corner cell: after entering a cell in which the path turns, the
  carrot lies on the new segment, so the torso converges to the new centre line before it
  reaches the next edge. The torso never aims at a shared corner, which is where "cutting the
  corner" would enter a forbidden diagonal neighbour.
- A colour is visited by merely crossing into its cell, and the segment into the target is
  pursued like any other: the ant enters the target cell on its centre line.

## Edge margin
Pure pursuit alone lets a torso that sways or reacts late drift back across a nearby edge. The
costly case, measured with :func:`point_walker_rollouts`, is the colour just visited: after
entering it the ant must usually leave it again, and swaying back in is a wrong-colour
failure (nearly all the failures of a sluggish walker). So when the lateral offset ``e`` points
at a *forbidden* side (a colour other than the target, a wall, the border) and the torso is
within ``edge_margin`` of that edge, the lookahead shrinks in proportion to the room left
(down to 0.05 cell), which turns the command straight away from the edge.

``L`` trades lateral convergence (small ``L``: sharp corrections) against smoothness (large
``L``). Defaults ``L = 0.35``, ``edge_margin = 0.25`` (cells) come from the point-walker sweep in
``docs/ant_expert.md``; re-tune them with the trained policy (``AntExpert(lookahead=...)``).

When no move leads to the target (which the env's solvable layouts make impossible unless the
ant has strayed into a sealed pocket) the planner aims at the centre of the ant's own cell and
flags the row as not reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irl_envs import grid_logic

# World-frame unit vector of each grid move (up, right, down, left): row 0 is the top (+y).
MOVE_XY = np.array([(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0)])
OBS_XY = 27
"""Index of ``x / h`` in the AntSubgoals observation (``y / h`` follows)."""
OBS_OBJECTS = 29
"""Index of the first relative object position in the AntSubgoals observation."""
_MIN_LOOK = 0.05
"""Smallest lookahead (cells) the edge margin shrinks ``L`` to: almost straight off the edge."""


@dataclass
class Plan:
    """What the planner decides for N environments."""

    direction: np.ndarray
    """``(N, 2)`` unit vector, world frame: where the torso should walk now."""
    waypoint: np.ndarray
    """``(N, 2)`` world centre of the next cell on a shortest path (own cell if stuck)."""
    carrot: np.ndarray
    """``(N, 2)`` the point the direction aims at (see the module docstring)."""
    agent_cell: np.ndarray
    """``(N,)`` cell (row-major) of the torso centre, clipped to the grid."""
    next_cell: np.ndarray
    """``(N,)`` cell the ant should enter next."""
    moves_left: np.ndarray
    """``(N,)`` grid moves still needed to enter the target (``UNREACHABLE`` if stuck)."""
    reachable: np.ndarray
    """``(N,)`` bool: a path to the target exists from the ant's cell."""

    def body_direction(self, yaw: np.ndarray) -> np.ndarray:
        """The direction in the ant's heading frame (rotated by ``-yaw``), ``(N, 2)``."""
        return world_to_heading(self.direction, yaw)


def world_to_heading(vec: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate world-frame planar vectors ``(N, 2)`` by ``-yaw`` (into the heading frame)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * vec[:, 0] + s * vec[:, 1], -s * vec[:, 0] + c * vec[:, 1]], axis=1)


def yaw_from_quat(quat: np.ndarray) -> np.ndarray:
    """Heading (rad) of the torso's x axis projected on the floor, from ``(N, 4)`` (w, x, y, z)."""
    w, x, y, z = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class GridPlanner:
    """Batched shortest-path planner with pure-pursuit steering (see the module docstring).

    Args:
        grid_size: G.
        cell_size: side of a cell in metres.
        lookahead: pure-pursuit lookahead ``L`` as a fraction of a cell side, in [0.05, 1].
        edge_margin: distance (fraction of a cell) from a forbidden side within which the
            lookahead shrinks; 0 disables it.
    """

    def __init__(self, grid_size: int = 4, cell_size: float = 1.0, lookahead: float = 0.35,
                 edge_margin: float = 0.25):
        if not _MIN_LOOK <= lookahead <= 1.0:
            raise ValueError(f"lookahead must be in [{_MIN_LOOK}, 1], got {lookahead}")
        if not 0.0 <= edge_margin < 0.5:
            raise ValueError(f"edge_margin must be in [0, 0.5), got {edge_margin}")
        self.edge_margin = float(edge_margin)
        if cell_size <= 0:
            raise ValueError(f"cell_size must be positive, got {cell_size}")
        self.g, self.cell_size, self.lookahead = int(grid_size), float(cell_size), lookahead
        self.half = self.g * self.cell_size / 2
        self.moves = grid_logic.move_table(self.g)
        rows, cols = np.divmod(np.arange(self.g * self.g), self.g)
        self.centres = np.stack([(cols + 0.5) * self.cell_size - self.half,
                                 self.half - (rows + 0.5) * self.cell_size], axis=1)
        self._key: np.ndarray | None = None
        self._dist: np.ndarray | None = None

    # ------------------------------------------------------------------- geometry
    def cell_of(self, xy: np.ndarray) -> np.ndarray:
        """Row-major cell holding each world point ``(N, 2)``, clipped to the grid."""
        col = np.floor((xy[:, 0] + self.half) / self.cell_size).astype(np.int64)
        row = np.floor((self.half - xy[:, 1]) / self.cell_size).astype(np.int64)
        return np.clip(row, 0, self.g - 1) * self.g + np.clip(col, 0, self.g - 1)

    def target_cells(self, cells: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Cell of each target colour; ``-1`` where the colour is absent or ``target < 0``."""
        hit = (cells == target[:, None]) & (target[:, None] >= 0)
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)

    def distances(self, cells: np.ndarray, target_cell: np.ndarray) -> np.ndarray:
        """``grid_logic.distance_to`` per row, recomputed only for rows whose layout or target
        changed since the previous call (a step changes neither, except at episode ends)."""
        n = len(cells)
        key = np.concatenate([cells, target_cell[:, None]], axis=1)
        if self._key is None or self._key.shape != key.shape:
            stale = np.ones(n, dtype=bool)
            self._dist = np.zeros(cells.shape, dtype=np.int64)
        else:
            stale = (self._key != key).any(axis=1)
        if stale.any():
            tc = np.maximum(target_cell[stale], 0)
            self._dist[stale] = grid_logic.distance_to(cells[stale], tc, self.g)
        self._key = key
        return self._dist

    # ------------------------------------------------------------------- planning
    def plan(self, cells: np.ndarray, xy: np.ndarray, target: np.ndarray) -> Plan:
        """Plan for N environments.

        Args:
            cells: ``(N, G*G)`` layouts.
            xy: ``(N, 2)`` torso positions (world, metres).
            target: ``(N,)`` next colour of the task (-1: none).
        """
        cells = np.asarray(cells, dtype=np.int64)
        xy = np.asarray(xy, dtype=np.float64)
        target = np.asarray(target, dtype=np.int64)
        n = len(cells)
        rows = np.arange(n)
        agent = self.cell_of(xy)
        target_cell = self.target_cells(cells, target)
        dist = self.distances(cells, target_cell)
        cost = grid_logic.action_costs(cells, agent, np.maximum(target_cell, 0), self.g, dist)
        cost = np.where((target_cell < 0)[:, None], grid_logic.UNREACHABLE, cost)
        nxt = self.moves[agent]  # (N, 4)
        # Integer costs plus a tie-break < 0.5: the nearest of equally short next cells.
        near = np.linalg.norm(self.centres[nxt] - xy[:, None, :], axis=2)
        best = np.argmin(cost + near / (4.0 * self.cell_size), axis=1)
        moves_left = cost[rows, best]
        reachable = moves_left < grid_logic.UNREACHABLE
        next_cell = np.where(reachable, nxt[rows, best], agent)

        centre = self.centres[agent]
        u = MOVE_XY[best]
        rel = xy - centre
        s = np.einsum("ij,ij->i", rel, u)
        look = np.full(n, self.lookahead * self.cell_size)
        if self.edge_margin > 0:
            # Lateral offset e (left of u positive); the side cell it points to.
            e = rel[:, 0] * -u[:, 1] + rel[:, 1] * u[:, 0]
            side_move = np.where(e > 0, (best + 3) % 4, (best + 1) % 4)
            side = nxt[rows, side_move]
            content = cells[rows, side]
            forbidden = (side == agent) | ((content != grid_logic.EMPTY) & (content != target))
            room = (0.5 * self.cell_size - np.abs(e)) / (self.edge_margin * self.cell_size)
            shrink = np.clip(room, _MIN_LOOK / self.lookahead, 1.0)
            look = np.where(forbidden, look * shrink, look)
        ahead = np.minimum(s + look, self.cell_size)
        carrot = np.where(reachable[:, None], centre + ahead[:, None] * u, centre)
        direction = _unit(carrot - xy, fallback=u)
        return Plan(direction=direction, waypoint=self.centres[next_cell], carrot=carrot,
                    agent_cell=agent, next_cell=next_cell, moves_left=moves_left,
                    reachable=reachable)


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.where(norm > 1e-9, v / np.maximum(norm, 1e-12), fallback)


def layout_from_obs(obs: np.ndarray, grid_size: int = 4, cell_size: float = 1.0,
                    num_colours: int = 4, num_walls: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Recover layouts and torso positions from AntSubgoals observations.

    The observation holds the torso position over ``h`` (indices 27, 28) and every colour's and
    wall's cell centre relative to the torso over ``2 h`` (from index 29), so the whole layout
    is in it: centre = relative offset + position, then the cell that holds it. Exact up to
    float32 rounding (~1e-7 m, far from the half-cell margin a centre has to its cell's edges).
    Meaningless only on the step that leaves the grid, where the env clips the observation
    (the episode has ended then, and the action is ignored).

    Args:
        obs: ``(N, D)`` or ``(D,)`` observations.

    Returns:
        ``cells`` ``(N, G*G)`` int64 and ``xy`` ``(N, 2)`` float64.
    """
    obs = np.atleast_2d(np.asarray(obs, dtype=np.float64))
    g, k = grid_size, num_colours + num_walls
    half = g * cell_size / 2
    if obs.shape[1] != OBS_OBJECTS + 2 * k + 2:
        raise ValueError(f"observation has {obs.shape[1]} dims; num_colours + num_walls = {k} "
                         f"needs {OBS_OBJECTS + 2 * k + 2}")
    n = len(obs)
    xy = obs[:, OBS_XY:OBS_XY + 2] * half
    centres = obs[:, OBS_OBJECTS:OBS_OBJECTS + 2 * k].reshape(n, k, 2) * (2 * half) + xy[:, None]
    col = np.clip(np.floor((centres[..., 0] + half) / cell_size), 0, g - 1).astype(np.int64)
    row = np.clip(np.floor((half - centres[..., 1]) / cell_size), 0, g - 1).astype(np.int64)
    cells = np.full((n, g * g), grid_logic.EMPTY, dtype=np.int64)
    cells[np.arange(n)[:, None], row * g + col] = np.arange(k)
    return cells, xy


def point_walker_rollouts(cells: np.ndarray, xy: np.ndarray, tasks: list, *,
                          lookahead: float = 0.35, edge_margin: float = 0.25,
                          speed: float = 1.0, lag: float = 0.15, wobble: float = 0.05,
                          wobble_hz: float = 1.5, dt: float = 0.05,
                          max_steps: int = 500, grid_size: int = 4, cell_size: float = 1.0,
                          num_colours: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Drive idealised walkers with the planner under AntSubgoals' grid rules (batched).

    A stand-in for the locomotion policy that isolates the planner: a point whose velocity
    relaxes to ``speed`` times the commanded direction with time constant ``lag`` (s), plus a
    sideways sway of amplitude ``wobble`` (m) at ``wobble_hz`` (a gait's torso wobble), stepped
    every ``dt`` s. The rules are the env's: leaving the grid or entering a wall fails, entering
    a colour from another cell visits it (the next one of the task, else failure).

    Args:
        cells: ``(N, G*G)`` layouts; ``xy``: ``(N, 2)`` start positions; ``tasks``: N colour
            sequences.

    Returns:
        ``event`` (``"success"``, ``"wrong_colour"``, ``"wall"``, ``"off_grid"``,
        ``"timeout"``), ``length`` (steps) and ``revisit`` (the wrong colour entered was the
        one just visited, i.e. the walker swayed back into it) per walker.
    """
    rng = np.random.default_rng(seed)
    planner = GridPlanner(grid_size, cell_size, lookahead, edge_margin)
    n = len(cells)
    cells = np.asarray(cells, dtype=np.int64)
    xy = np.array(xy, dtype=np.float64)
    longest = max(len(t) for t in tasks)
    task = np.full((n, longest + 1), -1, dtype=np.int64)
    for i, t in enumerate(tasks):
        task[i, :len(t)] = t
    task_len = np.array([len(t) for t in tasks])
    nxt = np.zeros(n, dtype=np.int64)
    v = np.zeros((n, 2))
    cell = planner.cell_of(xy)
    phase = rng.uniform(0, 2 * np.pi, n)
    omega = 2 * np.pi * wobble_hz
    event = np.full(n, "timeout", dtype=object)
    length = np.full(n, max_steps, dtype=np.int64)
    live = np.ones(n, dtype=bool)
    revisit = np.zeros(n, dtype=bool)
    rows = np.arange(n)
    half = grid_size * cell_size / 2
    for t in range(max_steps):
        d = planner.plan(cells, xy, task[rows, nxt]).direction
        v += (speed * d - v) * min(dt / lag, 1.0)
        side = np.stack([-d[:, 1], d[:, 0]], axis=1)
        sway = wobble * omega * np.cos(phase + omega * t * dt) * dt
        xy = np.where(live[:, None], xy + v * dt + side * sway[:, None], xy)
        col = np.floor((xy[:, 0] + half) / cell_size).astype(np.int64)
        row = np.floor((half - xy[:, 1]) / cell_size).astype(np.int64)
        off = (row < 0) | (row >= grid_size) | (col < 0) | (col >= grid_size)
        new = np.where(off, cell, row * grid_size + col)
        content = cells[rows, new]
        entered = live & ~off & (content >= 0) & (content < num_colours) & (new != cell)
        right = entered & (content == task[rows, nxt])
        revisit |= entered & ~right & (nxt > 0) & (content == task[rows, np.maximum(nxt - 1, 0)])
        nxt = nxt + right
        ends = {"off_grid": live & off, "wall": live & ~off & (content >= num_colours),
                "wrong_colour": entered & ~right, "success": right & (nxt == task_len)}
        for name, mask in ends.items():
            event[mask] = name
            length[mask] = t + 1
            live &= ~mask
        cell = new
        if not live.any():
            break
    return {"event": event, "length": length, "revisit": revisit}
