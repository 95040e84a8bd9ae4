"""Batched grid geometry shared by the gridworld, the ant arena and the experts.

Cells are numbered row-major, ``cell = row * G + col``. A *layout* per environment is an
integer array ``cells`` of shape ``(N, G*G)`` holding ``EMPTY`` (-1), a colour ``0..O-1``, or a
wall ``O..O+W-1`` (wall j is stored as ``O + j``). Everything here is vectorised over the
leading batch axis, so the same code serves one environment and thousands.

Reachability follows the pinpad rule: a path may cross empty cells only, because entering any
colour other than the target ends the episode and walls cannot be entered.
"""

from __future__ import annotations

import numpy as np

from irl_envs.validation import check_int_sequence

EMPTY = -1
ACTIONS = ("up", "right", "down", "left")
"""Action ``a`` moves by ``DELTAS[a]`` in (row, col)."""
DELTAS = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)
UNREACHABLE = np.iinfo(np.int32).max // 2


def move_table(grid_size: int) -> np.ndarray:
    """``(G*G, 4)`` table of the cell reached by each action, ignoring walls.

    Moving off the grid leaves the cell unchanged.
    """
    g = grid_size
    rows, cols = np.divmod(np.arange(g * g), g)
    r = np.clip(rows[:, None] + DELTAS[None, :, 0], 0, g - 1)
    c = np.clip(cols[:, None] + DELTAS[None, :, 1], 0, g - 1)
    return (r * g + c).astype(np.int64)


def free_mask(cells: np.ndarray) -> np.ndarray:
    """Cells an agent may cross without ending its episode: the empty ones."""
    return cells == EMPTY


def distance_to(cells: np.ndarray, target: np.ndarray, grid_size: int) -> np.ndarray:
    """Shortest number of moves from every cell to ``target`` crossing empty cells only.

    Args:
        cells: ``(N, G*G)`` layouts.
        target: ``(N,)`` target cell per layout.
        grid_size: G.

    Returns:
        ``(N, G*G)`` int array; ``0`` at the target, ``UNREACHABLE`` for cells that are not
        empty (other colours, walls) or cannot reach the target.
    """
    n, c = cells.shape
    moves = move_table(grid_size)
    free = free_mask(cells)
    rows = np.arange(n)
    dist = np.full((n, c), UNREACHABLE, dtype=np.int64)
    dist[rows, target] = 0
    # Bellman-Ford sweeps: at most G*G of them, usually a grid diameter's worth.
    for _ in range(c):
        best = dist[:, moves].min(axis=2) + 1
        new = np.where(free, np.minimum(dist, best), dist)
        new[rows, target] = 0
        if np.array_equal(new, dist):
            break
        dist = new
    return np.minimum(dist, UNREACHABLE)


def action_costs(cells: np.ndarray, agent: np.ndarray, target: np.ndarray, grid_size: int,
                 dist: np.ndarray | None = None) -> np.ndarray:
    """Moves needed to enter ``target`` from ``agent`` after taking each action.

    Entering the target from a different cell costs 1; stepping to an empty cell costs 1 plus
    its distance; bumping into a wall or the border, or entering another colour, is
    ``UNREACHABLE``. Works when the agent stands on the target (a repeated colour).

    Returns:
        ``(N, 4)`` costs.
    """
    if dist is None:
        dist = distance_to(cells, target, grid_size)
    n = cells.shape[0]
    rows = np.arange(n)[:, None]
    nxt = move_table(grid_size)[agent]  # (N, 4)
    blocked = nxt == agent[:, None]
    cost = dist[rows, nxt] + 1
    cost = np.where(blocked, UNREACHABLE, cost)
    return np.minimum(cost, UNREACHABLE)


def layout_from_obs(obs: np.ndarray, grid_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The layout and agent cell behind gridworld observations (the inverse of the env's
    one-hot planes: colours, then walls, then the agent).

    Args:
        obs: ``(..., C * G * G)`` observations, any leading shape (e.g. a batch of episodes).
        grid_size: G.

    Returns:
        ``cells (..., G*G)`` (a colour, a wall ``O + j``, or ``EMPTY``) and ``agent (...,)``.
    """
    g2 = grid_size * grid_size
    planes = np.asarray(obs).reshape(*np.shape(obs)[:-1], -1, g2)
    objects = planes[..., :-1, :]  # colour and wall planes, in the order of their values
    cells = np.where(objects.any(-2), objects.argmax(-2), EMPTY)
    return cells, planes[..., -1, :].argmax(-1)


def colour_cell(cells: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The cell holding ``colour (...,)`` in each layout ``cells (..., G*G)``."""
    return (cells == np.asarray(colour)[..., None]).argmax(-1)


def fatal_moves(cells: np.ndarray, agent: np.ndarray, target: np.ndarray, grid_size: int,
                num_colours: int) -> np.ndarray:
    """``(..., 4)`` bool: action ``a`` enters a colour other than ``target``, which ends the
    episode in failure (a move off the grid or into a wall stays put and is harmless).

    ``cells (..., G*G)``, ``agent (...,)`` and ``target (...,)`` share their leading shape.
    """
    nxt = move_table(grid_size)[agent]  # (..., 4)
    entered = np.take_along_axis(cells, nxt, -1)
    colour = (entered >= 0) & (entered < num_colours)
    return colour & (entered != np.asarray(target)[..., None]) & (nxt != agent[..., None])


def _cell_bits(grid_size: int) -> np.ndarray:
    return np.left_shift(np.uint64(1), np.arange(grid_size * grid_size, dtype=np.uint64))


def _neighbours(bits: np.ndarray, grid_size: int) -> np.ndarray:
    """Bitset of the 4-neighbours of every cell in ``bits`` (cells as bits, row-major)."""
    g = np.uint64(grid_size)
    one = np.uint64(1)
    full = (one << np.uint64(grid_size * grid_size)) - one if grid_size < 8 else ~np.uint64(0)
    col0 = np.bitwise_or.reduce(_cell_bits(grid_size)[::grid_size])
    last = col0 << (g - one)
    return (((bits >> g) | (bits << g) | ((bits & ~col0) >> one) | ((bits & ~last) << one))
            & full)


def tour_length(cells: np.ndarray, agent: np.ndarray, tasks: np.ndarray, task_len: np.ndarray,
                grid_size: int) -> np.ndarray:
    """Fewest moves that visit each task's colours in order, crossing empty cells only.

    Breadth-first search on 64-bit cell sets, all legs of all layouts at once: a handful of
    integer operations per sweep, cheap enough to run at every autoreset of a large batch.
    For grids larger than 8x8 it falls back to :func:`distance_to` per leg.

    Args:
        cells: ``(N, G*G)`` layouts.
        agent: ``(N,)`` start cells.
        tasks: ``(N, L)`` colour sequences, padded with any value past ``task_len``.
        task_len: ``(N,)`` task lengths.

    Returns:
        ``(N,)`` int array; ``UNREACHABLE`` where some colour cannot be reached in order.
    """
    n, c = cells.shape
    rows = np.arange(n)[:, None]
    colour_cell = np.full((n, int(cells.max(initial=0)) + 2), c, dtype=np.int64)
    r_idx, c_idx = np.nonzero(cells >= 0)
    colour_cell[r_idx, cells[r_idx, c_idx]] = c_idx
    active = np.arange(tasks.shape[1])[None, :] < task_len[:, None]
    dst = colour_cell[rows, np.clip(tasks, 0, colour_cell.shape[1] - 1)]  # (N, L)
    src = np.concatenate([agent[:, None], dst[:, :-1]], axis=1)
    missing = active & (dst >= c)
    dst, src = np.minimum(dst, c - 1), np.minimum(src, c - 1)
    if grid_size > 8:
        cost = np.zeros(dst.shape, dtype=np.int64)
        for leg in range(tasks.shape[1]):
            cost[:, leg] = action_costs(cells, src[:, leg], dst[:, leg], grid_size).min(axis=1)
    else:
        cost = _bitset_leg_costs(cells, src, dst, grid_size)
    cost = np.where(missing, UNREACHABLE, cost)
    return np.minimum(np.where(active, cost, 0).sum(axis=1), UNREACHABLE)


def _bitset_leg_costs(cells: np.ndarray, src: np.ndarray, dst: np.ndarray,
                      grid_size: int) -> np.ndarray:
    bit = _cell_bits(grid_size)
    free = np.bitwise_or.reduce(np.where(free_mask(cells), bit, np.uint64(0)), axis=1)[:, None]
    src_bits, dst_bits = bit[src], bit[dst]
    zero = np.uint64(0)
    adjacent = ((_neighbours(src_bits, grid_size) & dst_bits) != zero) & (src != dst)
    goal = _neighbours(dst_bits, grid_size) & free  # empty cells from which dst is one move
    reach = _neighbours(src_bits, grid_size) & free  # empty cells one move from src
    cost = np.where(adjacent, 1, UNREACHABLE)
    open_ = ~adjacent
    for moves in range(1, cells.shape[1] + 1):
        hit = open_ & ((reach & goal) != zero)
        cost[hit] = moves + 1
        open_ &= ~hit
        grown = (reach | _neighbours(reach, grid_size)) & free
        open_ &= grown != reach  # a search that stopped growing can never hit
        if not open_.any():
            break
        reach = grown
    return cost


def solvable(cells: np.ndarray, agent: np.ndarray, tasks: np.ndarray, task_len: np.ndarray,
             grid_size: int, max_steps: int | None = None) -> np.ndarray:
    """Whether each layout lets an agent visit its task's colours in order (within
    ``max_steps`` moves, if given). See :func:`tour_length`."""
    length = tour_length(cells, agent, tasks, task_len, grid_size)
    limit = UNREACHABLE - 1 if max_steps is None else max_steps
    return length <= limit


def parse_layout(layout: object, grid_size: int, num_colours: int,
                 num_walls: int) -> tuple[np.ndarray, int]:
    """Validate a ``reset(options={"layout": ...})`` value and build its cells.

    ``layout`` is ``{"agent": (row, col), "colours": [(row, col), ...], "walls": [...]}``
    with colour i at the i-th cell. Raises ``ValueError`` naming what is wrong.

    Returns:
        ``(cells (G*G,), agent cell)``.
    """
    name = "options['layout']"
    if not isinstance(layout, dict) or set(layout) != {"agent", "colours", "walls"}:
        raise ValueError(f"{name} must be a dict with exactly the keys 'agent', 'colours' "
                         "and 'walls'")
    colours, walls = layout["colours"], layout["walls"]
    for key, cells in (("colours", colours), ("walls", walls)):
        if isinstance(cells, (str, bytes, dict)) or not hasattr(cells, "__len__"):
            raise ValueError(f"{name}['{key}'] must be a list of (row, col) pairs, got {cells!r}")
    colours, walls = list(colours), list(walls)
    if len(colours) != num_colours:
        raise ValueError(f"{name}['colours'] must list {num_colours} cells (num_colours), "
                         f"got {len(colours)}")
    if len(walls) != num_walls:
        raise ValueError(f"{name}['walls'] must list {num_walls} cells (num_walls), "
                         f"got {len(walls)}")
    flat = []
    for pos in [*colours, *walls, layout["agent"]]:
        try:  # ints only: a float or a string is a mistake, not a cell to round to
            r, c = check_int_sequence(f"{name} position", pos)
        except ValueError:
            raise ValueError(f"{name} positions must be (row, col) pairs of ints, "
                             f"got {pos!r}") from None
        if not (0 <= r < grid_size and 0 <= c < grid_size):
            raise ValueError(f"{name} position {pos!r} is off the {grid_size}x{grid_size} grid")
        flat.append(r * grid_size + c)
    if len(set(flat)) != len(flat):
        raise ValueError(f"{name} cells must not overlap")
    cells = np.full(grid_size * grid_size, EMPTY, dtype=np.int64)
    cells[flat[:-1]] = np.arange(num_colours + num_walls)
    return cells, flat[-1]
