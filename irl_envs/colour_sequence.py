"""Gridworld-pinpad: visit coloured cells in a given order (Kobayashi et al., 2025, §2.1).

One batched numpy core (:class:`GridCore`) holds the state of N environments and implements
every rule once; :class:`ColourSequenceEnv` is a single environment over a core of size 1 and
:class:`ColourSequenceVectorEnv` the native batched twin (``gym.make_vec``), so the two cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from irl_envs import grid_logic
from irl_envs.episode_rng import episode_bits
from irl_envs.grid_render import render_ansi, render_rgb
from irl_envs.tasks import GRID_POSTTRAIN_TASK, Task, validate_tasks
from irl_envs.validation import check_int, check_seed

_MAX_LAYOUT_ATTEMPTS = 10_000
_LAYOUT_STREAM, _TASK_STREAM = 0, 1


class GridCore:
    """State and rules of N gridworld-pinpad environments, vectorised over N.

    Layouts are a pure function of ``(seed, episode index)`` per environment (see
    :mod:`irl_envs.episode_rng`), so environment ``i`` of a batch seeded with ``s`` replays a
    single environment seeded with ``s + i`` exactly, whatever the batch size.
    """

    def __init__(self, num_envs: int, grid_size: int, num_colours: int, num_walls: int,
                 max_steps: int, tasks: tuple[Task, ...]):
        self.n, self.g, self.o, self.w = num_envs, grid_size, num_colours, num_walls
        self.max_steps, self.tasks = max_steps, tasks
        self.num_cells = grid_size * grid_size
        self.channels = num_colours + num_walls + 1
        self.max_task_len = max(len(t) for t in tasks)
        self.moves = grid_logic.move_table(grid_size)
        self._rows = np.arange(num_envs)
        n, c = num_envs, self.num_cells
        self.cells = np.full((n, c), grid_logic.EMPTY, dtype=np.int64)
        self.agent = np.zeros(n, dtype=np.int64)
        self.task = np.full((n, self.max_task_len), -1, dtype=np.int64)
        self.task_len = np.ones(n, dtype=np.int64)
        self.next_index = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        # how each row's episode ended (both False while it runs): steps after the end give
        # reward 0 and these flags (see "Stepping after the end" in the env's docstring)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.seed = np.zeros(n, dtype=np.uint64)
        self.episode = np.zeros(n, dtype=np.uint64)
        self.seeded = np.zeros(n, dtype=bool)
        self.resets = np.zeros(n, dtype=np.uint64)  # lets experts cache per-episode work
        self.obs = np.zeros((n, self.channels, c), dtype=np.uint8)
        self._table = np.full((len(tasks), self.max_task_len), -1, dtype=np.int64)
        for i, task in enumerate(tasks):
            self._table[i, : len(task)] = task
        self._table_len = np.array([len(t) for t in tasks], dtype=np.int64)

    # ----------------------------------------------------------------------------- reset
    def next_episodes(self, rows: np.ndarray, seeds: np.ndarray | None = None) -> None:
        """Choose the episode each row plays next: ``seeds`` (one per row) restart their
        streams at episode 0; otherwise each row takes the next episode of its stream, or of a
        fresh stream seeded from OS entropy if it never had one."""
        if seeds is not None:
            self.seed[rows], self.episode[rows] = np.asarray(seeds, dtype=np.uint64), 0
            self.seeded[rows] = True
            return
        self.episode[rows[self.seeded[rows]]] += np.uint64(1)
        fresh = rows[~self.seeded[rows]]
        base = np.uint64(np.random.SeedSequence().entropy % 2**62)
        self.seed[fresh] = base + np.arange(len(fresh), dtype=np.uint64)
        self.episode[fresh], self.seeded[fresh] = 0, True

    def reset_rows(self, rows: np.ndarray, task: Task | None = None,
                   layout: dict[str, Any] | None = None) -> None:
        """Start a new episode in ``rows`` (their ``seed``/``episode`` already set)."""
        if task is None:
            if len(self.tasks) == 1:
                idx = np.zeros(len(rows), dtype=np.int64)
            else:
                bits = episode_bits(self.seed[rows], self.episode[rows], _TASK_STREAM, 0, 1)
                idx = (bits[:, 0] % np.uint64(len(self.tasks))).astype(np.int64)
            self.task[rows] = self._table[idx]
            self.task_len[rows] = self._table_len[idx]
        else:
            if len(task) > self.max_task_len:
                self._grow_task(len(task))
            self.task[rows] = -1
            self.task[rows, : len(task)] = task
            self.task_len[rows] = len(task)
        if layout is None:
            self._sample_layouts(rows)
        else:
            cells, agent = self._pinned_layout(layout)
            self.cells[rows], self.agent[rows] = cells, agent
        self.next_index[rows] = 0
        self.t[rows] = 0
        self.terminated[rows] = self.truncated[rows] = False
        self.resets[rows] += np.uint64(1)
        self._encode(rows)

    def _grow_task(self, length: int) -> None:
        pad = length - self.max_task_len
        self.task = np.pad(self.task, ((0, 0), (0, pad)), constant_values=-1)
        self.max_task_len = length

    def _sample_layouts(self, rows: np.ndarray) -> None:
        todo = rows
        for attempt in range(_MAX_LAYOUT_ATTEMPTS):
            keys = episode_bits(self.seed[todo], self.episode[todo], _LAYOUT_STREAM, attempt,
                                self.num_cells)
            perm = np.argsort(keys, axis=1, kind="stable")
            cells = np.full((len(todo), self.num_cells), grid_logic.EMPTY, dtype=np.int64)
            objects = self.o + self.w
            np.put_along_axis(cells, perm[:, :objects],
                              np.broadcast_to(np.arange(objects), (len(todo), objects)), axis=1)
            self.cells[todo], self.agent[todo] = cells, perm[:, objects]
            ok = grid_logic.solvable(cells, perm[:, objects], self.task[todo],
                                     self.task_len[todo], self.g, self.max_steps)
            todo = todo[~ok]
            if len(todo) == 0:
                return
        raise ValueError(
            f"no solvable layout found in {_MAX_LAYOUT_ATTEMPTS} draws: grid_size={self.g}, "
            f"num_colours={self.o}, num_walls={self.w} leave too little room, or "
            f"max_steps={self.max_steps} too few steps, for the task"
        )

    def _pinned_layout(self, layout: dict[str, Any]) -> tuple[np.ndarray, int]:
        return grid_logic.parse_layout(layout, self.g, self.o, self.w)

    def _encode(self, rows: np.ndarray) -> None:
        obs = np.zeros((len(rows), self.channels, self.num_cells), dtype=np.uint8)
        r, cell = np.nonzero(self.cells[rows] >= 0)
        obs[r, self.cells[rows][r, cell], cell] = 1
        obs[np.arange(len(rows)), self.channels - 1, self.agent[rows]] = 1
        self.obs[rows] = obs

    # ------------------------------------------------------------------------------ step
    def step(self, actions: np.ndarray, rows: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action per environment (or per environment in ``rows``, the others
        standing still); returns ``(reward, terminated, truncated)`` for those.

        In a row whose episode has ended the agent still moves, but the task is over until the
        row is reset: no colour counts, reward 0, and the flags the episode ended with, so a
        finished episode is never rewarded twice."""
        rows = self._rows if rows is None else np.asarray(rows, dtype=np.int64)
        ended_term, ended_trunc = self.terminated[rows], self.truncated[rows]
        over = ended_term | ended_trunc
        agent = self.agent[rows]
        nxt = self.moves[agent, actions]
        content = self.cells[rows, nxt]
        nxt = np.where(content >= self.o, agent, nxt)  # walls: no-op
        content = self.cells[rows, nxt]
        entered = (nxt != agent) & (content >= 0) & ~over  # a colour counts only when entered
        task_len = self.task_len[rows]
        target = self.task[rows, np.minimum(self.next_index[rows], task_len - 1)]
        correct = entered & (content == target)
        next_index = self.next_index[rows] + correct
        self.next_index[rows] = next_index
        success = (next_index >= task_len) & ~over
        terminated = success | (entered & ~correct) | ended_term
        self.t[rows] += 1
        truncated = ~terminated & (((self.t[rows] >= self.max_steps) & ~over) | ended_trunc)
        self.terminated[rows], self.truncated[rows] = terminated, truncated
        self.obs[rows, self.channels - 1, agent] = 0
        self.obs[rows, self.channels - 1, nxt] = 1
        self.agent[rows] = nxt
        return success.astype(np.float32), terminated, truncated

    # ------------------------------------------------------------------------------ views
    def target_cell(self) -> np.ndarray:
        """Cell of the next colour to visit, per environment."""
        colour = self.task[self._rows, np.minimum(self.next_index, self.task_len - 1)]
        return grid_logic.colour_cell(self.cells, colour)

    def info(self, i: int) -> dict[str, Any]:
        return {
            "is_success": bool(self.next_index[i] >= self.task_len[i]),
            "task": self.task[i, : self.task_len[i]].tolist(),
            "next_index": int(self.next_index[i]),
            "agent": tuple(int(v) for v in divmod(int(self.agent[i]), self.g)),
        }

    def batch_info(self) -> dict[str, np.ndarray]:
        ones = np.ones(self.n, dtype=bool)
        info = {
            "is_success": self.next_index >= self.task_len,
            "task": self.task.copy(),
            "next_index": self.next_index.copy(),
            "agent": np.stack(np.divmod(self.agent, self.g), axis=1),
        }
        info.update({f"_{k}": ones for k in list(info)})
        return info

    def rgb(self, i: int) -> np.ndarray:
        return render_rgb(self.cells[i], int(self.agent[i]), self.g, self.o,
                          self.task[i, : self.task_len[i]], int(self.next_index[i]))

    def ansi(self, i: int) -> str:
        return render_ansi(self.cells[i], int(self.agent[i]), self.g, self.o,
                           self.task[i, : self.task_len[i]], int(self.next_index[i]))


def _make_core(num_envs: int, grid_size: int, num_colours: int, num_walls: int, max_steps: int,
               tasks: Sequence[Sequence[int]] | None, task: Sequence[int] | None) -> GridCore:
    grid_size = check_int("grid_size", grid_size, 2)
    num_colours = check_int("num_colours", num_colours, 1)
    num_walls = check_int("num_walls", num_walls, 0)
    max_steps = check_int("max_steps", max_steps, 1)
    if num_colours + num_walls + 1 > grid_size * grid_size:
        raise ValueError(
            f"num_colours + num_walls + 1 must be <= grid_size**2 = {grid_size**2}, "
            f"got {num_colours} + {num_walls} + 1"
        )
    if task is not None:
        chosen = validate_tasks([task], num_colours, "task")
    else:
        chosen = validate_tasks(tasks if tasks is not None else [GRID_POSTTRAIN_TASK],
                                num_colours, "tasks")
    longest = max(len(t) for t in chosen)
    if max_steps < longest:  # every colour of a task takes at least one move
        raise ValueError(f"max_steps must be >= {longest}, the length of the longest task "
                         f"(one move per colour at least), got {max_steps}")
    return GridCore(num_envs, grid_size, num_colours, num_walls, max_steps, chosen)


def _parse_options(core: GridCore, options: dict[str, Any] | None, allowed: tuple[str, ...]
                   ) -> tuple[Task | None, dict[str, Any] | None]:
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"options must be a dict or None, got {options!r}")
    options = dict(options or {})
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: {list(allowed)}")
    task = options.get("task")
    if task is not None:
        task = validate_tasks([task], core.o, "options['task']")[0]
    layout = options.get("layout")
    if layout is not None:
        core._pinned_layout(layout)  # validate before any state changes
    return task, layout


_DOC_SPEC = """
    ## Description
    A G x G grid holds O uniquely coloured cells, W walls and the agent. The task is a
    sequence of colours; the agent must enter them in order without entering any other
    colour. Rewards are sparse: 1 on completing the task, 0 otherwise. The default post-
    training task 0-1-2-3-4-5-6-7-0-1-2-3 is the sparse-reward benchmark of the paper; the
    pretraining variant draws one of the 16 tasks of Table A1 per episode.

    ## Action space
    ``Discrete(4)``: 0 up (row - 1), 1 right (col + 1), 2 down (row + 1), 3 left (col - 1).
    Moving into a wall or off the grid leaves the agent where it is (a no-op).

    ## Observation space
    ``Box(0, 1, ((O + W + 1) * G * G,), uint8)``: 637 dims for G=7, O=8, W=4. Reshaped to
    ``(O + W + 1, G, G)`` it is a stack of one-hot planes, cells row-major:

    | channels          | meaning                                   |
    |-------------------|-------------------------------------------|
    | ``0 .. O-1``      | plane c marks the cell of colour c        |
    | ``O .. O+W-1``    | plane O+j marks the cell of wall j        |
    | ``O+W``           | the agent's cell                          |

    The env's ``obs_planes`` attribute holds ``(O + W + 1, G, G)``. The task and the progress
    through it are *not* observed: they must be inferred from
    history, as in the paper.

    ## Rewards
    1.0 on the step that enters the last colour of the task, else 0.0.

    ## Episode end
    - Terminated with success when the last colour of the task is entered.
    - Terminated with failure when any colour other than the next one is entered. A colour
      counts only when entered from a different cell: bumping into a wall while standing on
      a colour does not revisit it.
    - Truncated after ``max_steps`` steps.

    Stepping after the end: as in Gymnasium's classic-control envs, ``step()`` after an
    episode has ended (without ``reset()``) is a caller's mistake; it warns once, and until
    the next reset the agent still moves but the task is over: no colour counts, every step
    returns reward 0.0 and the ``terminated``/``truncated`` flags the episode ended with
    (``info["is_success"]`` keeps the episode's outcome). ``step()`` before the first
    ``reset()`` raises ``gymnasium.error.ResetNeeded``. Actions outside ``Discrete(4)``
    (floats, strings, out of range) and seeds outside ``[0, 2**64 - 1]`` raise ``ValueError``.

    ## Reset
    The task is drawn uniformly from ``tasks``; colours, walls and the agent's start cell
    are drawn uniformly without overlap, and redrawn until the task is solvable within
    ``max_steps``: the shortest walk that enters the task's colours in order, crossing empty
    cells only, is at most ``max_steps`` moves long (this excludes about 0.4% of the layouts
    of the 12-colour post-training task at T=100, which no policy could finish). The
    draws are a pure function of ``(seed, episode index)``: ``reset(seed=s)`` starts a stream
    of episodes and each later ``reset()`` takes the next one.

    Options: ``{"task": [c, ...]}`` pins the task for this episode; ``{"layout": {"agent":
    (row, col), "colours": [(row, col), ...], "walls": [(row, col), ...]}}`` pins the layout
    (colour i at the i-th cell; pinned layouts are used as given, without a solvability
    check). Invalid options raise ``ValueError``.

    ## Info
    ``is_success`` (bool), ``task`` (list of colours), ``next_index`` (colours of the task
    done so far), ``agent`` (the agent's (row, col)).

    ## Arguments
    - ``grid_size`` (7): G.
    - ``num_colours`` (8): O.
    - ``num_walls`` (4): W.
    - ``max_steps`` (100): T, the truncation horizon.
    - ``tasks``: the task set, a list of colour sequences (default: the post-training task).
    - ``task``: a single colour sequence; if given it replaces ``tasks``.
    - ``render_mode``: ``"rgb_array"`` (colours, walls, the agent, and a strip of the task
      with the colours done so far ticked) or ``"ansi"``.

    ## Version history
    - v0: initial release.
"""


class ColourSequenceEnv(gym.Env[np.ndarray, np.int64]):
    __doc__ = "Gridworld-pinpad (``InternalRL/ColourSequence-v0``)." + _DOC_SPEC

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(self, grid_size: int = 7, num_colours: int = 8, num_walls: int = 4,
                 max_steps: int = 100, tasks: Sequence[Sequence[int]] | None = None,
                 task: Sequence[int] | None = None, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} "
                             f"or None, got {render_mode!r}")
        self.core = _make_core(1, grid_size, num_colours, num_walls, max_steps, tasks, task)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(4)
        size = self.core.channels * self.core.num_cells
        self.observation_space = spaces.Box(0, 1, (size,), np.uint8)
        self.obs_planes = (self.core.channels, self.core.g, self.core.g)
        self._has_reset = False
        self._warned_after_end = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seed = check_seed("seed", seed)
        task, layout = _parse_options(self.core, options, ("task", "layout"))
        super().reset(seed=seed)
        row = np.zeros(1, dtype=np.int64)
        if seed is None and not self.core.seeded[0]:  # Gymnasium: unseeded envs use np_random
            seed = int(self.np_random.integers(2**63))
        self.core.next_episodes(row, None if seed is None else [seed])
        self.core.reset_rows(row, task, layout)
        self._has_reset, self._warned_after_end = True, False
        return self.core.obs[0].reshape(-1).copy(), self.core.info(0)

    def step(self, action):
        if not self._has_reset:
            raise gym.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
        if isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action):
            raise ValueError(f"action must be an int in Discrete(4) (0, 1, 2, 3), got {action!r}")
        if (self.core.terminated[0] or self.core.truncated[0]) and not self._warned_after_end:
            self._warned_after_end = True
            gym.logger.warn("step() called after the episode ended (terminated or truncated); "
                            "call reset(). Until then the task is over: every reward is 0.")
        reward, terminated, truncated = self.core.step(np.array([action], dtype=np.int64))
        return (self.core.obs[0].reshape(-1).copy(), float(reward[0]), bool(terminated[0]),
                bool(truncated[0]), self.core.info(0))

    def render(self):
        if self.render_mode == "rgb_array":
            return self.core.rgb(0)
        if self.render_mode == "ansi":
            return self.core.ansi(0)
        return None


class ColourSequenceVectorEnv(VectorEnv):
    __doc__ = (
        "Native batched gridworld-pinpad: N environments stepped by numpy array operations.\n\n"
        "    Returned by ``gym.make_vec(id, num_envs=N)``. Sub-environment i of a batch reset\n"
        "    with ``seed=s`` plays exactly the episodes of ``ColourSequenceEnv`` reset with\n"
        "    ``seed=s + i``. Autoreset follows Gymnasium's default ``NEXT_STEP`` mode: the step\n"
        "    after an episode ends resets that sub-environment (its action is ignored, reward\n"
        "    0). ``copy=False`` returns the internal observation buffer instead of a copy.\n"
        "    Infos are arrays: ``task`` is ``(N, L)`` padded with -1, ``agent`` is ``(N, 2)``.\n"
        "    Reset option ``reset_mask`` (bool ``(N,)``) resets only those sub-environments.\n"
        "\n    The rules, spaces and arguments are those of the single environment:\n" + _DOC_SPEC
    )

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, grid_size: int = 7, num_colours: int = 8,
                 num_walls: int = 4, max_steps: int = 100,
                 tasks: Sequence[Sequence[int]] | None = None, task: Sequence[int] | None = None,
                 render_mode: str | None = None, copy: bool = True):
        num_envs = check_int("num_envs", num_envs, 1)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} "
                             f"or None, got {render_mode!r}")
        self.core = _make_core(num_envs, grid_size, num_colours, num_walls, max_steps, tasks,
                               task)
        self.num_envs, self.render_mode, self.copy = num_envs, render_mode, copy
        self.single_action_space = spaces.Discrete(4)
        size = self.core.channels * self.core.num_cells
        self.single_observation_space = spaces.Box(0, 1, (size,), np.uint8)
        self.action_space = spaces.MultiDiscrete(np.full(num_envs, 4))
        self.observation_space = spaces.Box(0, 1, (num_envs, size), np.uint8)
        self.obs_planes = (self.core.channels, self.core.g, self.core.g)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._has_reset = False

    def _observation(self) -> np.ndarray:
        obs = self.core.obs.reshape(self.num_envs, -1)
        return obs.copy() if self.copy else obs

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None):
        task, layout = _parse_options(self.core, options, ("task", "layout", "reset_mask"))
        mask = np.ones(self.num_envs, dtype=bool)
        if options and options.get("reset_mask") is not None:
            mask = np.asarray(options["reset_mask"])
            if mask.dtype != bool or mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                                 f"({self.num_envs},), got {options['reset_mask']!r}")
        rows = np.flatnonzero(mask)
        seeds = None
        if seed is not None:
            seeds = np.asarray(self._check_seeds(seed), dtype=np.uint64)
            self._np_random, self._np_random_seed = np.random.default_rng(seeds[0]), int(seeds[0])
            seeds = seeds[rows]
        self.core.next_episodes(rows, seeds)
        self.core.reset_rows(rows, task, layout)
        self._needs_reset[rows] = False
        self._has_reset = True
        return self._observation(), self.core.batch_info()

    def _check_seeds(self, seed: int | Sequence[int]) -> list[int]:
        """One valid seed per sub-environment: ``seed + i``, or the ``num_envs`` given."""
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            first = check_seed("seed", seed, self.num_envs)
            return [first + i for i in range(self.num_envs)]
        if isinstance(seed, np.ndarray):
            seed = seed.tolist()
        if not isinstance(seed, (list, tuple)) or len(seed) != self.num_envs:
            raise ValueError(f"seed must be an int or {self.num_envs} ints, got {seed!r}")
        return [check_seed(f"seed[{i}]", s) for i, s in enumerate(seed)]

    def step(self, actions):
        if not self._has_reset:
            raise gym.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
        actions = np.asarray(actions)
        if (actions.dtype == bool or not np.issubdtype(actions.dtype, np.integer)
                or actions.shape != (self.num_envs,)):
            raise ValueError(f"actions must be an int array of shape ({self.num_envs},) with "
                             f"values in {{0, 1, 2, 3}}, got {actions!r}")
        actions = actions.astype(np.int64)
        if ((actions < 0) | (actions > 3)).any():
            raise ValueError(f"actions must lie in {{0, 1, 2, 3}}, got {actions!r}")
        reward, terminated, truncated = self.core.step(actions)
        resetting = np.flatnonzero(self._needs_reset)
        if len(resetting):
            self.core.next_episodes(resetting)
            self.core.reset_rows(resetting)
            reward[resetting], terminated[resetting], truncated[resetting] = 0.0, False, False
        self._needs_reset = terminated | truncated
        return self._observation(), reward, terminated, truncated, self.core.batch_info()

    def render(self):
        if self.render_mode == "rgb_array":
            return tuple(self.core.rgb(i) for i in range(self.num_envs))
        if self.render_mode == "ansi":
            return tuple(self.core.ansi(i) for i in range(self.num_envs))
        return None
