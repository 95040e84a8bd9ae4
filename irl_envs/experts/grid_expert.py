"""Dynamic-programming expert for gridworld-pinpad (Kobayashi et al., 2025, §2.1)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from irl_envs import grid_logic
from irl_envs.colour_sequence import ColourSequenceVectorEnv, GridCore


class GridExpert:
    """Stochastic shortest-path policy to the next colour of the task.

    At every step the expert moves uniformly at random among the moves that minimise the
    number of steps to enter the next colour, treating walls and every other colour as
    forbidden. With probability ``eps`` it instead takes a uniformly random *safe* action: one
    after which the task can still be completed (it never enters a wrong colour, nor an empty
    pocket whose only exits are wrong colours; bumping into a wall or the border is safe).

    The expert reads the environment's true state (task and progress are not observed), so it
    is a demonstrator, not an agent. It works on a :class:`ColourSequenceEnv` (returns an int)
    and on a :class:`ColourSequenceVectorEnv` (returns an ``(N,)`` array).

    Args:
        eps: probability of a random safe action, in [0, 1].
        seed: seed of the expert's own random generator (tie-breaking and noise).
        tie_break: ``"uniform"`` (the paper's expert) or ``"first"``: the first optimal move
            in action order, a deterministic expert whose only choices are the subgoals.
    """

    def __init__(self, eps: float = 0.0, seed: int | None = None, tie_break: str = "uniform"):
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"eps must be in [0, 1], got {eps}")
        if tie_break not in ("uniform", "first"):
            raise ValueError(f"tie_break must be 'uniform' or 'first', got {tie_break!r}")
        self.eps, self.tie_break = eps, tie_break
        self.rng = np.random.default_rng(seed)
        self._key: np.ndarray | None = None
        self._dist: np.ndarray | None = None
        self.intended: np.ndarray | None = None
        """The noise-free moves of the last :meth:`batch_act` call (its return value replaces
        some of them by random safe moves when ``eps > 0``): the labels of relabelled data."""

    def act(self, env: gym.Env | ColourSequenceVectorEnv) -> int | np.ndarray:
        """Action(s) for the current state of ``env``."""
        core = self._core(env)
        actions = self.batch_act(core)
        return actions if isinstance(env, ColourSequenceVectorEnv) else int(actions[0])

    __call__ = act

    def batch_act(self, core: GridCore) -> np.ndarray:
        """Actions for every environment of a :class:`GridCore`."""
        target = core.target_cell()
        dist = self._distances(core, target)
        cost = grid_logic.action_costs(core.cells, core.agent, target, core.g, dist)
        # Uniform tie-breaking: integer costs plus noise in [0, 0.5) keep the argmin optimal.
        jitter = 0.5 * self.rng.random(cost.shape) if self.tie_break == "uniform" else 0.0
        greedy = np.argmin(cost + jitter, axis=1)
        self.intended = greedy
        if self.eps == 0.0:
            return greedy
        # Safe: the task stays solvable, i.e. the target is still reachable after the move
        # (looking one step ahead only would walk into dead-end pockets between colours).
        nxt = core.moves[core.agent]
        blocked = (nxt == core.agent[:, None]) | (np.take_along_axis(core.cells, nxt, 1) >= core.o)
        safe = (cost < grid_logic.UNREACHABLE) | blocked
        random = np.argmax(np.where(safe, self.rng.random(safe.shape), -1.0), axis=1)
        return np.where(self.rng.random(core.n) < self.eps, random, greedy)

    def _distances(self, core: GridCore, target: np.ndarray) -> np.ndarray:
        """Distance maps to each target, recomputed only where episode or target changed."""
        key = np.stack([core.resets, target.astype(np.uint64), core.next_index.astype(np.uint64)],
                       axis=1)
        if self._key is None or self._key.shape != key.shape:
            stale = np.ones(core.n, dtype=bool)
            self._dist = np.zeros((core.n, core.num_cells), dtype=np.int64)
        else:
            stale = (self._key != key).any(axis=1)
        if stale.any():
            self._dist[stale] = grid_logic.distance_to(core.cells[stale], target[stale], core.g)
        self._key = key
        return self._dist

    @staticmethod
    def _core(env) -> GridCore:
        core = getattr(getattr(env, "unwrapped", env), "core", None)
        if not isinstance(core, GridCore):
            raise TypeError(f"GridExpert needs a ColourSequence environment, got {env!r}")
        return core
