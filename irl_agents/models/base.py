"""Abstract base model: shared heads, loss, residual-stream access and the step interface.

Notation (PAPER §3, §5): the residual stream ``e_{t,l}`` at *layer boundary* ``l`` in
``0..L`` is the activation after the input embedding (``l = 0``) or after block ``l``
(``l = L``: after the last block, before the final norm). A *controller* is any callable
``e -> e'`` applied at one boundary, e.g. ``e + U_t e`` (see :mod:`.controller`). In the
full forward it receives the whole sequence ``(B, T, d)``, in :meth:`BaseModel.step` one
step ``(B, d)``.

Incremental inference uses an explicit, mutable :class:`ModelState` (KV cache for the
transformer, recurrent + conv states for the SSM). ``step`` / ``step_lower`` /
``step_upper`` update the state *in place* and return it; use ``state.clone()`` before
stepping if you need to keep a snapshot. Rows are independent episodes: reset finished
episodes with :meth:`BaseModel.reset_state_rows` (or ``state.reset_rows(mask)``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from irl_agents.models.config import ModelConfig
from irl_agents.models.encoders import build_encoder

Controller = Callable[[Tensor], Tensor]
"""Maps the residual stream at one boundary, ``(B, T, d)`` or ``(B, d)``, to its replacement."""


@dataclass
class ModelOutput:
    """Outputs of a full forward pass; tensors have shape ``(B, T, ...)``.

    ``obs_pred[:, t]`` predicts ``o_{t+1}`` (logits for a Bernoulli likelihood, mean for a
    Gaussian one). Discrete models fill ``logits``; continuous ones ``mean`` and ``log_std``.
    """

    obs_pred: Tensor | None
    """Prediction of the next observation, ``(B, T, D)`` (``None`` if not requested)."""
    logits: Tensor | None = None
    """Action logits ``(B, T, A)`` (discrete models)."""
    mean: Tensor | None = None
    """Gaussian action mean ``(B, T, A)`` (continuous models)."""
    log_std: Tensor | None = None
    """Gaussian action log standard deviation ``(B, T, A)`` (continuous models)."""
    residual: Tensor | None = None
    """Residual stream at the boundary requested by an ``int`` ``return_residual_at``
    (after the controller when one is applied at that boundary)."""
    residuals: dict[int, Tensor] = field(default_factory=dict)
    """Every requested boundary ``l -> e_{:, :, l}``."""


@dataclass
class StepOutput(ModelOutput):
    """Outputs of one incremental step: same fields as :class:`ModelOutput` without the
    time axis (``(B, A)``, ``(B, D)``, ``(B, d)``)."""


class ModelState(ABC):
    """Explicit incremental-inference state of a batch of independent sequences."""

    @property
    @abstractmethod
    def batch_size(self) -> int:
        """Number of rows (independent sequences)."""

    @abstractmethod
    def reset_rows(self, mask: Tensor) -> ModelState:
        """Reset the rows where ``mask`` (bool ``(B,)``) is True to the initial state, in place."""

    @abstractmethod
    def clone(self) -> ModelState:
        """Deep copy (tensors cloned)."""

    @abstractmethod
    def select(self, index: Tensor) -> ModelState:
        """New state holding the rows ``index`` (bool mask or integer indices)."""


class BaseModel(nn.Module, ABC):
    """Autoregressive policy + next-observation model over observation sequences.

    Subclasses build ``self.blocks`` and implement the block-level forward / step
    functions; embedding, controller insertion, heads, loss and the step split live here.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, a = config.d_model, config.action_dim
        self.embed = build_encoder(config)
        self.blocks = nn.ModuleList(self._build_blocks())
        self.norm_f = self._make_norm(d)
        self.action_head = nn.Linear(d, a)
        if not config.discrete:
            # raw value such that the soft-clamped log_std starts at log(0.5)
            lo, hi = config.log_std_min, config.log_std_max
            frac = 2.0 * (math.log(0.5) - lo) / (hi - lo) - 1.0
            raw0 = math.atanh(max(min(frac, 0.99), -0.99))
            if config.state_dependent_std:
                self.log_std_head = nn.Linear(d, a)
                nn.init.zeros_(self.log_std_head.weight)
                nn.init.constant_(self.log_std_head.bias, raw0)
            else:
                self.log_std_param = nn.Parameter(torch.full((a,), raw0))
        self.obs_head = nn.Linear(d, config.obs_dim)

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _build_blocks(self) -> list[nn.Module]:
        """The ``L`` residual blocks."""

    @abstractmethod
    def _make_norm(self, dim: int) -> nn.Module:
        """Normalisation layer used by the model (final norm)."""

    @abstractmethod
    def _forward_context(self, seq_len: int, device: torch.device) -> Any:
        """Shared per-forward data for the blocks (e.g. the attention bias)."""

    @abstractmethod
    def _block_forward(self, i: int, x: Tensor, ctx: Any) -> Tensor:
        """Block ``i`` on a full sequence ``(B, T, d)``."""

    @abstractmethod
    def initial_state(self, batch_size: int) -> ModelState:
        """Empty state for ``batch_size`` independent sequences (on the model's device)."""

    @abstractmethod
    def _step_context(self, state: ModelState, active: Tensor | None) -> Any:
        """Shared per-step data for the blocks; may grow buffers in ``state``."""

    @abstractmethod
    def _block_step(self, i: int, x: Tensor, state: ModelState, ctx: Any) -> Tensor:
        """Block ``i`` on one step ``(B, d)``, updating its part of ``state``."""

    @abstractmethod
    def _advance(self, state: ModelState, active: Tensor | None) -> None:
        """Finish a step (e.g. move the position index)."""

    # ------------------------------------------------------------------ helpers
    @property
    def n_layers(self) -> int:
        """Number of blocks L (residual boundaries are 0..L)."""
        return self.config.n_layers

    @property
    def d_model(self) -> int:
        """Residual-stream width d."""
        return self.config.d_model

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.action_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return self.action_head.weight.dtype

    def num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _prep_obs(self, obs: Tensor, ndim: int, state: ModelState | None = None) -> Tensor:
        if obs.dim() != ndim or obs.shape[-1] != self.config.obs_dim:
            shape = "(B, T, D)" if ndim == 3 else "(B, D)"
            raise ValueError(
                f"expected observations of shape {shape} with D={self.config.obs_dim}, "
                f"got {tuple(obs.shape)}"
            )
        if state is not None and obs.shape[0] != state.batch_size:
            raise ValueError(
                f"observation batch {obs.shape[0]} does not match state batch {state.batch_size}"
            )
        dtype = self.dtype
        return obs if obs.dtype == dtype else obs.to(dtype)

    def _check_layer(self, layer: int | None, what: str = "layer") -> int:
        if layer is None or not 0 <= int(layer) <= self.n_layers:
            raise ValueError(f"{what} must be an int in 0..{self.n_layers}, got {layer!r}")
        return int(layer)

    def _wanted(self, return_residual_at: int | Sequence[int] | None) -> set[int]:
        if return_residual_at is None:
            return set()
        if isinstance(return_residual_at, int):
            return {self._check_layer(return_residual_at, "return_residual_at")}
        return {self._check_layer(x, "return_residual_at") for x in return_residual_at}

    @staticmethod
    def _apply_controller(controller: Controller, x: Tensor) -> Tensor:
        y = controller(x)
        if not isinstance(y, Tensor) or y.shape != x.shape:
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(
                f"controller must return a tensor of shape {tuple(x.shape)}, got {got}"
            )
        return y

    def _heads(self, x: Tensor, cls: type[ModelOutput], predict_obs: bool = True) -> ModelOutput:
        # The heads always run in fp32, also under bf16 autocast: with bf16 logits the
        # normalised log-probability of a confident action rounds to exactly 0, and training
        # learns to exploit that (logits grew to ~7,000 and the action NLL to 0.9 in fp32).
        with torch.autocast(x.device.type, enabled=False):
            return self._heads_fp32(x.to(self.dtype), cls, predict_obs)

    def _heads_fp32(self, x: Tensor, cls: type[ModelOutput], predict_obs: bool) -> ModelOutput:
        h = self.norm_f(x)
        out = cls(obs_pred=self.obs_head(h) if predict_obs else None)
        if self.config.discrete:
            out.logits = self.action_head(h)
        else:
            out.mean = self.action_head(h)
            raw = (
                self.log_std_head(h)
                if self.config.state_dependent_std
                else (self.log_std_param.expand_as(out.mean))
            )
            lo, hi = self.config.log_std_min, self.config.log_std_max
            out.log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1.0)
        return out

    # ------------------------------------------------------------------ full forward
    def forward(
        self,
        obs: Tensor,
        *,
        controller: Controller | None = None,
        layer: int | None = None,
        return_residual_at: int | Sequence[int] | None = None,
        predict_obs: bool = True,
    ) -> ModelOutput:
        """Full causal forward over right-padded sequences.

        :param obs: observations ``(B, T, D)`` (any dtype; cast to float). Padding must be
            finite (e.g. zeros); it never influences earlier (valid) positions.
        :param controller: optional callable applied to the residual ``(B, T, d)`` at
            boundary ``layer``; its output replaces the residual.
        :param layer: boundary ``0..L`` for ``controller`` (required with it).
        :param return_residual_at: boundary (or boundaries) whose residual stream to return
            (value after the controller when it acts at the same boundary).
        :param predict_obs: compute ``obs_pred`` (skip it to save time when unused).
        """
        obs = self._prep_obs(obs, 3)
        if controller is not None:
            layer = self._check_layer(layer)
        wanted = self._wanted(return_residual_at)
        ctx = self._forward_context(obs.shape[1], obs.device)
        x = self.embed(obs)
        residuals: dict[int, Tensor] = {}
        for boundary in range(self.n_layers + 1):
            if boundary > 0:
                x = self._block_forward(boundary - 1, x, ctx)
            if controller is not None and boundary == layer:
                x = self._apply_controller(controller, x)
            if boundary in wanted:
                residuals[boundary] = x
        out = self._heads(x, ModelOutput, predict_obs)
        out.residuals = residuals
        if isinstance(return_residual_at, int):
            out.residual = residuals[return_residual_at]
        return out

    def prefix(self, obs: Tensor, layer: int) -> Tensor:
        """Residual ``(B, T, d)`` at boundary ``layer`` of a full forward, running only the
        blocks below it (what a switching unit reads when the controllers write elsewhere)."""
        layer = self._check_layer(layer)
        obs = self._prep_obs(obs, 3)
        ctx = self._forward_context(obs.shape[1], obs.device)
        x = self.embed(obs)
        for i in range(layer):
            x = self._block_forward(i, x, ctx)
        return x

    def residual_stream(self, obs: Tensor) -> list[Tensor]:
        """Residual stream at every boundary ``0..L`` (list of ``(B, T, d)``), e.g. for probes."""
        out = self.forward(obs, return_residual_at=range(self.n_layers + 1))
        return [out.residuals[i] for i in range(self.n_layers + 1)]

    # ------------------------------------------------------------------ distributions / loss
    def action_distribution(self, output: ModelOutput) -> Distribution:
        """``Categorical(logits)`` or ``Independent(Normal(mean, exp(log_std)), 1)``."""
        if self.config.discrete:
            return Categorical(logits=output.logits)
        return Independent(Normal(output.mean, output.log_std.exp()), 1)

    def obs_nll(self, obs_pred: Tensor, target: Tensor) -> Tensor:
        """Per-step negative log-likelihood of ``target`` observations, summed over D.

        Bernoulli: binary cross-entropy with logits. Gaussian: unit variance, constants
        dropped, i.e. ``0.5 * ||target - mean||^2``.
        """
        target = target.to(obs_pred.dtype)
        if self.config.obs_likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(obs_pred, target, reduction="none").sum(-1)
        return 0.5 * (obs_pred - target).pow(2).sum(-1)

    def loss(
        self,
        obs: Tensor,
        actions: Tensor,
        mask: Tensor,
        obs_weight: float = 0.0,
        *,
        controller: Controller | None = None,
        layer: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """PAPER §3 loss ``-ln p(a_t | o_1:t) - lambda ln p(o_{t+1} | o_1:t)``.

        Each term is averaged over its valid steps: actions over ``mask``; next-observation
        over steps whose successor is also valid (the last valid step of an episode has no
        target).

        :param obs: ``(B, T, D)`` right-padded observations.
        :param actions: ``(B, T)`` int (discrete) or ``(B, T, A)`` float (continuous).
        :param mask: ``(B, T)`` bool, True on valid steps.
        :param obs_weight: lambda.
        :return: ``(total, parts)`` with detached parts ``total``, ``action_nll``,
            ``obs_nll`` and ``action_acc`` (discrete) or ``action_mse`` (continuous).
        """
        mask = mask.to(torch.bool)
        obs = self._prep_obs(obs, 3)
        obs = torch.where(mask[..., None], obs, torch.zeros((), dtype=obs.dtype, device=obs.device))
        out = self.forward(obs, controller=controller, layer=layer)
        m = mask.to(obs.dtype)
        n_act = m.sum().clamp_min(1.0)
        if self.config.discrete:
            acts = torch.where(mask, actions.long(), torch.zeros_like(actions, dtype=torch.long))
        else:
            acts = torch.where(mask[..., None], actions.to(obs.dtype), 0.0)
        logp = self.action_distribution(out).log_prob(acts)
        action_nll = -(logp * m).sum() / n_act
        obs_mask = (mask[:, 1:] & mask[:, :-1]).to(obs.dtype)
        nll = self.obs_nll(out.obs_pred[:, :-1], obs[:, 1:])
        obs_nll = (nll * obs_mask).sum() / obs_mask.sum().clamp_min(1.0)
        total = action_nll + obs_weight * obs_nll if obs_weight else action_nll
        parts = {
            "total": total.detach(),
            "action_nll": action_nll.detach(),
            "obs_nll": obs_nll.detach(),
        }
        with torch.no_grad():
            if self.config.discrete:
                correct = (out.logits.argmax(-1) == acts).to(obs.dtype)
                parts["action_acc"] = (correct * m).sum() / n_act
            else:
                se = (out.mean - acts).pow(2).mean(-1)
                parts["action_mse"] = (se * m).sum() / n_act
        return total, parts

    # ------------------------------------------------------------------ incremental inference
    def reset_state_rows(self, state: ModelState, mask: Tensor) -> ModelState:
        """Reset rows ``mask`` (bool ``(B,)``) of ``state`` to a fresh episode, in place."""
        return state.reset_rows(mask)

    def step(
        self,
        obs: Tensor,
        state: ModelState,
        *,
        controller: Controller | None = None,
        layer: int | None = None,
        return_residual_at: int | Sequence[int] | None = None,
        predict_obs: bool = True,
        active: Tensor | None = None,
    ) -> tuple[StepOutput, ModelState]:
        """One incremental step: equals position ``t`` of :meth:`forward` on the prefix.

        :param obs: observation ``o_t`` ``(B, D)``.
        :param state: state after ``o_1..o_{t-1}`` (updated in place and returned).
        :param controller: callable on the residual ``(B, d)`` at boundary ``layer``.
        :param predict_obs: compute ``obs_pred`` (skip it in RL inner loops).
        :param active: bool ``(B,)``; rows where it is False are left exactly as they were
            (their outputs are meaningless). Lets a batch of episodes advance unevenly,
            e.g. while some wait for a new latent action.
        """
        obs = self._prep_obs(obs, 2, state)
        if controller is not None:
            layer = self._check_layer(layer)
        wanted = self._wanted(return_residual_at)
        ctx = self._step_context(state, active)
        x = self.embed(obs)
        residuals: dict[int, Tensor] = {}
        for boundary in range(self.n_layers + 1):
            if boundary > 0:
                x = self._block_step(boundary - 1, x, state, ctx)
            if controller is not None and boundary == layer:
                x = self._apply_controller(controller, x)
            if boundary in wanted:
                residuals[boundary] = x
        self._advance(state, active)
        out = self._heads(x, StepOutput, predict_obs)
        out.residuals = residuals
        if isinstance(return_residual_at, int):
            out.residual = residuals[return_residual_at]
        return out, state

    def step_lower(self, obs: Tensor, state: ModelState, layer: int,
                   active: Tensor | None = None) -> tuple[Tensor, ModelState]:
        """First half of :meth:`step`: embedding and blocks ``< layer``.

        Returns the residual ``e_{t, layer}`` ``(B, d)``. Must be followed by
        :meth:`step_upper` with the same ``layer`` (the caller may modify ``e`` in between,
        e.g. apply a controller), possibly much later: a row's state holds its half-done step.
        Rows with ``active`` False are left untouched (see :meth:`step`).
        """
        layer = self._check_layer(layer)
        obs = self._prep_obs(obs, 2, state)
        ctx = self._step_context(state, active)
        x = self.embed(obs)
        for i in range(layer):
            x = self._block_step(i, x, state, ctx)
        return x, state

    def step_prefix(self, obs: Tensor, state: ModelState, layer: int,
                    active: Tensor | None = None) -> tuple[Tensor, ModelState]:
        """A whole step of the blocks ``< layer`` only: :meth:`step_lower`, then the step is
        finished without the upper blocks, whose part of ``state`` is left unused. For a
        second, unsteered stream that is only read at ``layer`` (a metacontroller whose
        switching unit reads another boundary than its controllers write)."""
        e, state = self.step_lower(obs, state, layer, active)
        self._advance(state, active)
        return e, state

    def step_upper(
        self, e: Tensor, state: ModelState, layer: int, *, predict_obs: bool = True,
        active: Tensor | None = None,
    ) -> tuple[StepOutput, ModelState]:
        """Second half of :meth:`step`: blocks ``>= layer`` and heads on residual ``e (B, d)``.
        Rows with ``active`` False are left untouched (see :meth:`step`)."""
        layer = self._check_layer(layer)
        ctx = self._step_context(state, active)
        x = e
        for i in range(layer, self.n_layers):
            x = self._block_step(i, x, state, ctx)
        self._advance(state, active)
        return self._heads(x, StepOutput, predict_obs), state
