"""Grid geometry against a plain breadth-first search written independently."""

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from irl_envs import grid_logic as gl


def bfs_tour(cells, agent, task, g):
    """Reference: shortest walk entering the task's colours in order, via empty cells."""
    total, pos = 0, agent
    for colour in task:
        target = int(np.flatnonzero(cells == colour)[0])
        frontier, seen, dist = deque([pos]), {pos}, {pos: 0}
        found = None
        while frontier and found is None:
            p = frontier.popleft()
            r, c = divmod(p, g)
            for dr, dc in gl.DELTAS:
                rr, cc = r + dr, c + dc
                if not (0 <= rr < g and 0 <= cc < g):
                    continue
                n = rr * g + cc
                if n == target and n != p:
                    found = dist[p] + 1
                    break
                if cells[n] == gl.EMPTY and n not in seen:
                    seen.add(n)
                    dist[n] = dist[p] + 1
                    frontier.append(n)
        if found is None:
            return gl.UNREACHABLE
        total, pos = total + found, target
    return total


layouts = st.tuples(
    st.integers(2, 9),  # grid size (9 exercises the fallback path beyond 64 cells)
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(0, 3), min_size=1, max_size=8),
)


@settings(max_examples=150, deadline=None)
@given(layouts)
def test_tour_length_matches_reference_bfs(params):
    g, seed, task = params
    rng = np.random.default_rng(seed)
    cells = np.full(g * g, gl.EMPTY)
    perm = rng.permutation(g * g)
    walls = rng.integers(0, max(1, g * g - 5))
    cells[perm[:4]] = np.arange(4)
    cells[perm[4 : 4 + walls]] = 4
    agent = int(perm[4 + walls]) if 4 + walls < g * g else int(perm[-1])
    if cells[agent] != gl.EMPTY:
        return
    got = gl.tour_length(cells[None], np.array([agent]), np.array([task]),
                         np.array([len(task)]), g)[0]
    assert got == bfs_tour(cells, agent, task, g)


def test_move_table_borders():
    m = gl.move_table(3)
    assert m[0].tolist() == [0, 1, 3, 0]  # up and left off-grid stay
    assert m[8].tolist() == [5, 8, 8, 7]


def test_distance_to_blocks_other_colours_and_walls():
    # 1x5 corridor as a 5x5 grid row: target colour 0 at col 4, colour 1 at col 2 blocks.
    cells = np.full(25, gl.EMPTY)
    cells[4], cells[2] = 0, 1
    cells[[5, 6, 7, 8, 9]] = 2  # walls below the top row
    dist = gl.distance_to(cells[None], np.array([4]), 5)[0]
    assert dist[3] == 1 and dist[0] >= gl.UNREACHABLE and dist[2] >= gl.UNREACHABLE
