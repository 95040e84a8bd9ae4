"""The latent-action environment: internal RL's view of the world (PAPER §6, Algorithms 1-2).

The frozen base model, the metacontroller's decoder and switching unit, and the raw
environment together form an environment whose action is a latent code ``z`` and whose
steps last until the switching unit fires::

    repeat:                                   (one latent step)
        a_t ~ base.upper(e_t + U(z) e_t)      act with the steered residual
        o_{t+1}, r = env.step(a_t);  R += r
        h_t = GRU(e_t, h_{t-1});  e_{t+1} = base.lower(o_{t+1})
        beta = switch(e_{t+1}, h_t, z)
    until beta >= threshold or the episode ended
    return observation (e_{t+1}, h_t), reward R

Observation: ``[e_t, h_{t-1}]``, the residual at the controlled layer and the
metacontroller's GRU summary of all earlier residuals: the same inputs its switching unit and
encoder see, which makes the decision problem as Markov as the paper's recurrent policy sees
it (a recurrent policy can still be used). Action: ``z`` in ``Box(-z_bound, z_bound)``; the
default bound 4 holds the prior ``N(0, I)`` but for ~6e-5 of its mass per dimension.

Raw actions are sampled from the steered base model with counter-based noise (a function of
the row's seed, episode and raw step), so a batch replays single environments exactly.

:class:`LatentCore` holds the batched logic once; :class:`LatentActionEnv` (Gymnasium,
one environment), :class:`LatentVectorEnv` (Gymnasium vector env, N environments, one batched
base-model step per raw step) and :class:`LatentVecEnv` (the same for Stable-Baselines3) are
thin fronts over it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor, nn

from irl_agents.models import BaseModel, LinearController
from irl_agents.raw_batch import RawBatch
from irl_envs.episode_rng import episode_bits
from irl_envs.sb3 import SB3VecEnv

_ACTION_STREAM = 7  # episode_rng stream of the raw-action noise


class ControllerSpec(Protocol):
    """The settings the latent env reads from a latent controller's ``cfg``."""

    d_model: int
    """Residual width of the base model it controls."""
    layer: int
    """The boundary its switching unit and history read."""

    @property
    def write_boundary(self) -> int:
        """The boundary its controllers write (usually ``layer``)."""
    n_z: int
    """Code size: the latent action's size."""
    n_h: int
    """History size: part of the latent observation."""
    rank: int
    """Controller rank (0: full ``d x d`` matrices)."""


@runtime_checkable
class LatentController(Protocol):
    """What the latent-action env needs from a metacontroller: its switching unit and decoder.

    :class:`~irl_agents.metacontroller.Metacontroller` (with the hypernetwork or the codebook
    decoder, e.g. from :func:`~irl_agents.metacontroller.codebook_metacontroller`) and the
    CompILE baseline (:class:`baselines.compile.CompILE`) implement it; all are torch modules
    (``parameters``, ``eval``, ``to``).
    """

    cfg: ControllerSpec

    def decode(self, z: Tensor) -> LinearController:
        """Controller ``e -> e + U e`` for codes ``z (..., n_z)``."""

    def switch_prob(self, e: Tensor, h_prev: Tensor, z_prev: Tensor) -> Tensor:
        """``beta_t`` in [0, 1] from ``e_t (..., d)``, ``h_{t-1} (..., n_h)`` and the code in
        force ``z_{t-1} (..., n_z)``."""

    def history_step(self, e: Tensor, h_prev: Tensor) -> Tensor:
        """``h_t (B, n_h)`` from ``e_t (B, d)`` and ``h_{t-1}``."""

    def initial_history(self, batch_size: int) -> Tensor:
        """``h_0 (batch_size, n_h)`` on the module's device."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def eval(self) -> LatentController: ...

    def to(self, *args: Any, **kwargs: Any) -> LatentController: ...


class LatentCore:
    """Batched latent-action environment logic over a :class:`RawBatch`.

    The base model's and the metacontroller's steps run on the base model's device (the
    metacontroller is moved there); observations, actions and rewards are numpy arrays.

    Args:
        base: frozen base model.
        meta: metacontroller (any :class:`LatentController`) whose decoder and switching unit
            are used.
        raw: the raw environments.
        threshold: the switch fires when ``beta >= threshold``.
        z_bound: latent actions are clipped to ``[-z_bound, z_bound]``.
        greedy: take the base model's most likely raw action instead of sampling.
    """

    def __init__(self, base: BaseModel, meta: LatentController, raw: RawBatch,
                 threshold: float = 0.5, z_bound: float = 4.0, greedy: bool = False) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if z_bound <= 0:
            raise ValueError(f"z_bound must be > 0, got {z_bound}")
        if meta.cfg.d_model != base.d_model:
            raise ValueError(f"metacontroller width {meta.cfg.d_model} != base model width "
                             f"{base.d_model}")
        self.device = base.device
        self.base, self.meta, self.raw = base.eval(), meta.to(self.device).eval(), raw
        self.layer, self.threshold, self.z_bound, self.greedy = (meta.cfg.layer, threshold,
                                                                 z_bound, greedy)
        self.write = meta.cfg.write_boundary
        n, d, n_h = raw.num_envs, base.d_model, meta.cfg.n_h
        self.n = n
        self.obs_dim = d + n_h
        self.state = base.initial_state(n)
        # a switching unit that reads another boundary than the controllers write reads the
        # unsteered stream, as it did in training: a second state runs the blocks below it
        self.read_state = base.initial_state(n) if self.write != self.layer else None
        dev = self.device
        self.e = torch.zeros(n, d, device=dev)
        """``e_t`` at the read boundary: the switching unit's, history's and policy's input."""
        self.e_write = self.e
        """``e_t`` at the write boundary, which the controller steers (``e`` when the same)."""
        self.h = self.meta.initial_history(n)
        self.raw_obs = torch.zeros(n, raw.observation_space.shape[0], device=dev)
        self.seed = np.zeros(n, dtype=np.uint64)
        self.episode = np.zeros(n, dtype=np.uint64)
        self.t = np.zeros(n, dtype=np.int64)
        self.switch_times: list[list[int]] = [[] for _ in range(n)]
        self._seeded = np.zeros(n, dtype=bool)
        # the latent step in progress, per row
        self.z = torch.zeros(n, meta.cfg.n_z, device=dev)
        r = meta.cfg.rank
        self.a = self.b = self.u = None
        if r:
            self.a, self.b = torch.zeros(n, d, r, device=dev), torch.zeros(n, d, r, device=dev)
        else:
            self.u = torch.zeros(n, d, d, device=dev)
        self.running = np.zeros(n, dtype=bool)
        self.reward = np.zeros(n, dtype=np.float32)
        self.raw_steps = np.zeros(n, dtype=np.int64)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)

    def observation(self) -> np.ndarray:
        return torch.cat([self.e, self.h], 1).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def reset(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Start new episodes in ``rows`` (per-row seed or None to continue the stream)."""
        rows = np.asarray(rows, dtype=np.int64)
        for row, seed in zip(rows.tolist(), seeds, strict=True):
            if seed is not None:
                self.seed[row], self.episode[row], self._seeded[row] = np.uint64(seed), 0, True
            elif not self._seeded[row]:
                self.seed[row] = np.uint64(np.random.SeedSequence().entropy % 2**62)
                self._seeded[row] = True
            else:
                self.episode[row] += np.uint64(1)
            self.t[row] = 0
            self.switch_times[row] = [0]
        obs = self.raw.reset(rows, seeds)
        idx = self._index(rows)
        mask = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        mask[idx] = True
        self.base.reset_state_rows(self.state, mask)
        if self.read_state is not None:
            self.base.reset_state_rows(self.read_state, mask)
        self.raw_obs[idx] = torch.as_tensor(obs, device=self.device)
        e, e_write = self._step_lower(mask)
        self.e = torch.where(mask[:, None], e, self.e)
        self.e_write = self._written(mask, e_write)
        self.h[mask] = 0.0

    def _written(self, mask: Tensor, e_write: Tensor) -> Tensor:
        """``e_write`` updated in the rows of ``mask``: ``e`` itself when both are one boundary."""
        if self.read_state is None:
            return self.e
        return torch.where(mask[:, None], e_write, self.e_write)

    def _step_lower(self, active: Tensor) -> tuple[Tensor, Tensor]:
        """The new observations' residuals at the read and at the write boundary."""
        e_write, self.state = self.base.step_lower(self.raw_obs, self.state, self.write,
                                                   active=active)
        if self.read_state is None:
            return e_write, e_write
        e, self.read_state = self.base.step_prefix(self.raw_obs, self.read_state, self.layer,
                                                   active=active)
        return e, e_write

    def _sample(self, out, rows: np.ndarray) -> np.ndarray:
        """Raw actions for ``rows`` from counter-based uniforms (Gumbel-max / Box-Muller)."""
        width = 2 * self.raw.action_space.shape[0] if self._continuous else out.logits.shape[1]
        u = episode_bits(self.seed[rows], self.episode[rows], _ACTION_STREAM, self.t[rows], width)
        u = torch.as_tensor(((u >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53)
        idx = self._index(rows)
        if not self._continuous:  # sampled on the CPU in float64: the same on every device
            logits = out.logits[idx].double().cpu()
            if self.greedy:
                return logits.argmax(-1).numpy()
            return (logits - torch.log(-torch.log(u))).argmax(-1).numpy()
        mean, std = out.mean[idx].double().cpu(), out.log_std[idx].double().exp().cpu()
        if self.greedy:
            return mean.float().numpy()
        a = mean.shape[1]
        normal = torch.sqrt(-2 * torch.log(u[:, :a])) * torch.cos(2 * torch.pi * u[:, a:])
        return (mean + std * normal).float().numpy()

    def _index(self, rows: np.ndarray) -> Tensor:
        """``rows`` as an index tensor on the models' device."""
        return torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)

    @property
    def _continuous(self) -> bool:
        return not self.base.config.discrete

    @torch.no_grad()
    def begin(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Give ``rows`` new latent codes ``z (R, n_z)``; they run until they switch or end."""
        rows = np.asarray(rows, dtype=np.int64)
        z = np.clip(latent_actions(z, (len(rows), self.meta.cfg.n_z)), -self.z_bound,
                    self.z_bound)
        idx = self._index(rows)
        self.z[idx] = torch.as_tensor(z, device=self.device)
        ctrl = self.meta.decode(self.z[idx])
        if ctrl.is_full:
            self.u[idx] = ctrl.u
        else:
            self.a[idx], self.b[idx] = ctrl.a, ctrl.b
        self.running[rows] = True
        self.reward[rows], self.raw_steps[rows] = 0.0, 0
        self.terminated[rows], self.truncated[rows] = False, False

    @torch.no_grad()
    def raw_step(self) -> np.ndarray:
        """Advance every running row by one raw step (one batched base-model step).

        Returns the rows that stopped running: they switched or their episode ended.
        """
        rows = np.flatnonzero(self.running)
        act = torch.as_tensor(self.running, device=self.device)
        controller = LinearController(u=self.u) if self.u is not None else LinearController(
            self.a, self.b)
        out, self.state = self.base.step_upper(controller(self.e_write), self.state, self.write,
                                               predict_obs=False, active=act)
        obs, r, term, trunc = self.raw.step(rows, self._sample(out, rows))
        self.t[rows] += 1
        self.raw_steps[rows] += 1
        self.reward[rows] += r
        self.terminated[rows], self.truncated[rows] = term, trunc
        ended = rows[term | trunc]
        cont = np.zeros(self.n, dtype=bool)
        cont[rows[~(term | trunc)]] = True
        self.running[ended] = False
        if cont.any():
            cmask = torch.as_tensor(cont, device=self.device)
            self.raw_obs[self._index(rows)] = torch.as_tensor(obs, device=self.device)
            e_new, e_write = self._step_lower(cmask)
            h_new = self.meta.history_step(self.e, self.h)
            self.h = torch.where(cmask[:, None], h_new, self.h)
            self.e = torch.where(cmask[:, None], e_new, self.e)
            self.e_write = self._written(cmask, e_write)
            beta = self.meta.switch_prob(self.e, self.h, self.z).cpu().numpy()
            switched = np.flatnonzero(cont & (beta >= self.threshold))
            for row in switched.tolist():
                self.switch_times[row].append(int(self.t[row]))
            self.running[switched] = False
            ended = np.concatenate([ended, switched])
        return ended

    def info(self, row: int) -> dict[str, Any]:
        """The raw info of ``row`` plus this latent step's and episode's switching record."""
        info = self.raw.info(row)
        info.update(raw_steps=int(self.raw_steps[row]), episode_raw_steps=int(self.t[row]),
                    switch_times=list(self.switch_times[row]))
        info["is_success"] = bool(info.get("is_success", False))
        return info

    def reset_info(self, row: int) -> dict[str, Any]:
        """The info of ``row`` right after a reset: the raw info and ``switch_times=[0]``."""
        return self.raw.info(row) | {"switch_times": [0]}

    def step(self, z: np.ndarray, active: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """One latent step for every row (or the ``active`` rows; the others stand still and
        report reward 0, not done), in lockstep: rows that switch early wait for the rest.
        ``z`` is ``(N, n_z)``. Returns ``(reward, terminated, truncated, infos)``;
        observations are read from :meth:`observation` afterwards."""
        z = latent_actions(z, (self.n, self.meta.cfg.n_z))
        rows = np.arange(self.n) if active is None else np.flatnonzero(active)
        self.begin(rows, z[rows])
        while self.running.any():
            self.raw_step()
        still = np.ones(self.n, dtype=bool)
        still[rows] = False
        reward, term, trunc = self.reward.copy(), self.terminated.copy(), self.truncated.copy()
        reward[still], term[still], trunc[still] = 0.0, False, False
        return reward, term, trunc, [self.info(row) for row in range(self.n)]


def latent_actions(z: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``z`` as a float32 array of exactly ``shape``; ``ValueError`` for None, a wrong shape
    (nothing is broadcast) or a non-finite value, which would otherwise steer the base model
    with NaN logits for a whole episode."""
    if z is None:
        raise ValueError(f"latent action must be a float array of shape {shape}, got None")
    try:
        arr = np.asarray(z, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"latent action must be a float array of shape {shape}, got {z!r} "
                         f"({err})") from None
    if arr.shape != shape:
        raise ValueError(f"latent action must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"latent action must be finite, got {arr.tolist()}")
    return arr


def _spaces(core: LatentCore) -> tuple[spaces.Box, spaces.Box]:
    obs = spaces.Box(-np.inf, np.inf, (core.obs_dim,), np.float32)
    n_z = core.meta.cfg.n_z
    act = spaces.Box(-core.z_bound, core.z_bound, (n_z,), np.float32)
    return obs, act


class LatentActionEnv(gym.Env):
    """Internal RL as a Gymnasium environment (one episode at a time).

    ## Action space
    ``Box(-z_bound, z_bound, (n_z,), float32)``: the latent code held until the next switch.
    A code of another shape, None or a non-finite code raises ``ValueError``; finite codes
    outside the box are clipped to it.

    ## Observation space
    ``Box(-inf, inf, (d + n_h,), float32)``: ``[e_t, h_{t-1}]`` (module docstring).

    ## Rewards and episode end
    The raw rewards accumulated over the latent step; terminated / truncated when the raw
    episode is.

    ## Info
    The raw environment's info (``is_success``, ``task``, ``next_index``, ...) plus
    ``raw_steps`` (raw steps of this latent step), ``episode_raw_steps`` and
    ``switch_times`` (raw steps at which a new code was taken, 0 first).

    Args:
        base: frozen base model.
        meta: trained metacontroller.
        raw: a :class:`RawBatch` of one environment.
        threshold, z_bound, greedy: see :class:`LatentCore`.
        render_mode: ``"rgb_array"`` (the raw environment's frame) or None.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, base: BaseModel, meta: LatentController, raw: RawBatch,
                 threshold: float = 0.5, z_bound: float = 4.0, greedy: bool = False,
                 render_mode: str | None = None) -> None:
        if raw.num_envs != 1:
            raise ValueError(f"LatentActionEnv needs a raw batch of 1 env, got {raw.num_envs}")
        self.render_mode = _check_render_mode(render_mode, self.metadata)
        self.core = LatentCore(base, meta, raw, threshold, z_bound, greedy)
        self.observation_space, self.action_space = _spaces(self.core)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options:
            raise ValueError(f"LatentActionEnv takes no reset options, got {sorted(options)}")
        if seed is None and not self.core._seeded[0]:
            seed = int(self.np_random.integers(2**63))
        self.core.reset(np.zeros(1, dtype=np.int64), [seed])
        return self.core.observation()[0], self.core.reset_info(0)

    def step(self, action):
        z = latent_actions(action, self.action_space.shape)
        reward, term, trunc, infos = self.core.step(z[None])
        obs = self.core.observation()[0]
        return obs, float(reward[0]), bool(term[0]), bool(trunc[0]), infos[0]

    def render(self) -> np.ndarray | None:
        """The raw environment where the last latent step left it (``"rgb_array"``)."""
        return self.core.raw.render(0) if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self.core.raw.close()


class LatentVectorEnv(VectorEnv):
    """N latent-action environments as a Gymnasium vector env, batched through one base model.

    ``gym.make_vec("InternalRL/ColourSequenceLatent-v1", num_envs=N)`` returns it. Each raw
    step runs one batched base-model step for the sub-environments still inside their latent
    step; those that switched wait (their model state untouched) until all have.
    Sub-environment i of a batch reset with ``seed=s`` plays exactly the episodes of
    :class:`LatentActionEnv` reset with ``seed=s + i``. Autoreset follows Gymnasium's default
    ``NEXT_STEP`` mode (the step after an episode ends resets that sub-environment: its action
    is ignored, reward 0); reset option ``reset_mask`` (bool ``(N,)``) resets only those
    sub-environments. Infos are arrays, with the keys of :class:`LatentActionEnv`'s.

    Args:
        base, meta, raw, threshold, z_bound, greedy: see :class:`LatentCore` (``raw`` holds
            the N raw environments).
        max_episode_steps: truncate an episode after this many latent steps, as Gymnasium's
            ``TimeLimit`` does for the single env (None: only the raw horizon).
        render_mode: ``"rgb_array"`` (one raw frame per sub-environment) or None.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, base: BaseModel, meta: LatentController, raw: RawBatch,
                 threshold: float = 0.5, z_bound: float = 4.0, greedy: bool = False,
                 max_episode_steps: int | None = None, render_mode: str | None = None) -> None:
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.render_mode = _check_render_mode(render_mode, self.metadata)
        self.core = LatentCore(base, meta, raw, threshold, z_bound, greedy)
        self.num_envs, self.max_episode_steps = raw.num_envs, max_episode_steps
        self.single_observation_space, self.single_action_space = _spaces(self.core)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None):
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise ValueError(f"LatentVectorEnv takes only the reset option 'reset_mask', got "
                             f"{sorted(options)}")
        mask = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.num_envs,):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape "
                             f"({self.num_envs},), got {mask!r}")
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed must be an int or {self.num_envs} seeds, got {seed!r}")
        rows = np.flatnonzero(mask)
        if seed is not None:
            self._np_random, self._np_random_seed = np.random.default_rng(seeds[0]), seeds[0]
        self.core.reset(rows, [seeds[i] for i in rows])
        self._needs_reset[rows], self._elapsed[rows] = False, 0
        infos: dict[str, Any] = {}
        for row in rows.tolist():
            infos = self._add_info(infos, self.core.reset_info(row), row)
        return self.core.observation(), infos

    def step(self, actions):
        z = latent_actions(actions, self.action_space.shape)
        resetting = self._needs_reset
        reward, terminated, truncated, step_infos = self.core.step(z, active=~resetting)
        self._elapsed += 1
        if self.max_episode_steps is not None:
            truncated |= ~resetting & ~terminated & (self._elapsed >= self.max_episode_steps)
        if resetting.any():
            rows = np.flatnonzero(resetting)
            self.core.reset(rows, [None] * len(rows))
            self._elapsed[rows] = 0
        self._needs_reset = terminated | truncated
        infos: dict[str, Any] = {}
        for row, info in enumerate(step_infos):
            infos = self._add_info(infos, self.core.reset_info(row) if resetting[row] else info,
                                   row)
        return self.core.observation(), reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        return tuple(self.core.raw.render(i) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        self.core.raw.close()


class LatentVecEnv(SB3VecEnv):
    """N latent-action environments for Stable-Baselines3: :class:`LatentVectorEnv` through
    :class:`irl_envs.sb3.SB3VecEnv`, with SB3's autoreset conventions (the returned
    observation is the next episode's first, the last one is in
    ``info["terminal_observation"]``) and every sub-environment's info on every step.

    ``irl_envs.sb3.make_sb3_vec_env("InternalRL/ColourSequenceLatent-v1", n_envs=N)`` builds
    one over the shipped models.
    """

    def __init__(self, base: BaseModel, meta: LatentController, raw: RawBatch,
                 threshold: float = 0.5, z_bound: float = 4.0, greedy: bool = False) -> None:
        super().__init__(LatentVectorEnv(base, meta, raw, threshold, z_bound, greedy),
                         full_infos=True)

    @property
    def core(self) -> LatentCore:
        return self.venv.core


def _check_render_mode(render_mode: str | None, metadata: dict) -> str | None:
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ValueError(f"render_mode must be one of {metadata['render_modes']} or None, got "
                         f"{render_mode!r}")
    return render_mode


def _after_fork_in_child() -> None:
    # A process forked from one whose torch already ran multi-threaded ops (e.g. the parent of
    # gym.make_vec(..., vectorization_mode="async"), which builds one env itself) deadlocks in
    # its first parallel op: the OpenMP thread pool does not survive fork. One thread per
    # worker avoids the pool, as PyTorch's own DataLoader workers do.
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_after_fork_in_child)
