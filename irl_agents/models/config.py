"""Configuration of the base sequence models (causal transformer and Hawk-style SSM)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from irl_agents.configs import DictConfig

ModelKind = Literal["transformer", "ssm"]
ObsEncoder = Literal["linear", "grid_conv", "grid_ego", "grid_objects", "ant_objects",
                     "ant_heading"]
OBS_ENCODERS: tuple[str, ...] = ("linear", "grid_conv", "grid_ego", "grid_objects", "ant_objects",
                                 "ant_heading")
GRID_ENCODERS: tuple[str, ...] = ("grid_conv", "grid_ego", "grid_objects")
ObsLikelihood = Literal["bernoulli", "gaussian"]


@dataclass
class ModelConfig(DictConfig):
    """Architecture of a base model. Serialisable to JSON with :meth:`to_dict`.

    The training-time observation loss weight (lambda of PAPER §3) is *not* part of the
    model: it lives in the training config.
    """

    kind: ModelKind = "transformer"
    """Model family: ``"transformer"`` (causal, pre-norm, T5 relative position biases) or
    ``"ssm"`` (Hawk: RG-LRU recurrent block with a short causal conv and a gated MLP)."""
    obs_dim: int = 637
    """Dimension D of an observation vector (grid: 637 one-hot dims; ant: ~60-100 floats)."""
    action_dim: int = 4
    """Number of discrete actions (categorical head) or dimension of a continuous action."""
    discrete: bool = True
    """True: categorical action head (logits). False: diagonal Gaussian (mean, log_std)."""
    obs_encoder: ObsEncoder = "linear"
    """Map from observation to the residual stream: ``"linear"`` (paper), ``"grid_conv"``
    (two 3x3 convolutions over the ``obs_shape`` planes), ``"grid_ego"`` (the planes
    re-centred on the agent, then convolutions), ``"grid_objects"`` (re-centred, one shared
    encoder per colour plane), ``"ant_objects"`` (the ant's colour offsets in its body
    frame, one shared encoder per colour) or ``"ant_heading"`` (linear, over the ant's
    observation rewritten in its heading frame); see :mod:`.encoders`."""
    obs_shape: list[int] | None = None
    """``[C, H, W]`` planes of a ``grid_conv`` observation (gridworld: ``[13, 7, 7]``)."""
    conv_channels: int = 32
    """Channels of the ``grid_conv`` / ``grid_ego`` encoders; per-colour feature width of
    ``grid_objects``."""
    grid_colours: int = 8
    """Number of leading colour planes in ``obs_shape`` (``grid_objects`` only); the planes
    after them up to the last (the agent) are obstacles."""
    ant_colours: int = 4
    """Number of colour offsets in an ant observation (``ant_objects`` only); the offsets
    after them are walls."""
    d_model: int = 128
    """Residual-stream width d (paper: 256)."""
    n_layers: int = 4
    """Number of residual blocks L (paper: 6 transformer / 8 SSM). Layer boundaries 0..L."""
    n_heads: int = 4
    """Attention heads (transformer only); ``d_model`` must be divisible by it."""
    mlp: str = "relu"
    """Transformer MLP: ``"relu"`` (paper) or ``"swiglu"`` (gated, multiplicative)."""
    d_mlp: int = 256
    """Hidden width of the MLP in each block (paper: 512)."""
    rel_pos_buckets: int = 32
    """Number of T5 relative-position buckets (transformer only). Half are exact
    distances, the other half log-spaced up to ``rel_pos_max_distance``."""
    rel_pos_max_distance: int = 128
    """Distance at which the last (catch-all) bucket starts; any longer distance shares it,
    so the model accepts sequences of any length."""
    d_rnn: int | None = None
    """Width of the RG-LRU recurrence (SSM only); ``None`` means ``d_model``."""
    conv_width: int = 4
    """Width of the causal depthwise temporal convolution before the RG-LRU (SSM only)."""
    lru_c: float = 8.0
    """Constant c of the RG-LRU, a_t = sigma(Lambda)^(c r_t) (SSM only, Griffin default 8)."""
    dropout: float = 0.0
    """Dropout on attention weights and block outputs (training only)."""
    obs_likelihood: ObsLikelihood = "bernoulli"
    """Likelihood of the next-observation head: ``"bernoulli"`` (logits, BCE; binary one-hot
    grid observations) or ``"gaussian"`` (mean, unit variance, i.e. 0.5 * squared error)."""
    state_dependent_std: bool = True
    """Continuous actions: log_std predicted per step by a linear head (True) or one free
    learned vector (False)."""
    log_std_min: float = -5.0
    """Lower bound of the Gaussian action log_std (soft clamp through tanh)."""
    log_std_max: float = 2.0
    """Upper bound of the Gaussian action log_std."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form metadata (e.g. environment id) carried along in checkpoints."""

    def __post_init__(self) -> None:
        if self.kind not in ("transformer", "ssm"):
            raise ValueError(f"ModelConfig.kind must be 'transformer' or 'ssm', got {self.kind!r}")
        if self.obs_likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(
                "ModelConfig.obs_likelihood must be 'bernoulli' or 'gaussian', "
                f"got {self.obs_likelihood!r}"
            )
        for name in ("obs_dim", "action_dim", "d_model", "n_layers", "n_heads", "d_mlp"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.kind == "transformer":
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"ModelConfig.d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
                )
            if self.rel_pos_buckets < 2 or self.rel_pos_max_distance <= self.rel_pos_buckets // 2:
                raise ValueError(
                    "ModelConfig needs rel_pos_buckets >= 2 and rel_pos_max_distance > "
                    f"rel_pos_buckets // 2, got {self.rel_pos_buckets}, {self.rel_pos_max_distance}"
                )
        if self.obs_encoder not in OBS_ENCODERS:
            raise ValueError(f"ModelConfig.obs_encoder must be one of {OBS_ENCODERS}, "
                             f"got {self.obs_encoder!r}")
        if self.mlp not in ("relu", "swiglu"):
            raise ValueError(f"ModelConfig.mlp must be 'relu' or 'swiglu', got {self.mlp!r}")
        if self.obs_shape is not None:
            shape = list(self.obs_shape)
            if len(shape) != 3 or shape[0] * shape[1] * shape[2] != self.obs_dim:
                raise ValueError("ModelConfig.obs_shape must be [C, H, W] with C*H*W = obs_dim "
                                 f"({self.obs_dim}), got {self.obs_shape!r}")
            self.obs_shape = [int(v) for v in shape]
        if self.conv_width < 1:
            raise ValueError(f"ModelConfig.conv_width must be >= 1, got {self.conv_width}")
        if self.d_rnn is not None and self.d_rnn < 1:
            raise ValueError(f"ModelConfig.d_rnn must be None or >= 1, got {self.d_rnn}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.log_std_min >= self.log_std_max:
            raise ValueError("ModelConfig.log_std_min must be < log_std_max")

    @property
    def rnn_width(self) -> int:
        """Effective RG-LRU width (``d_rnn`` or ``d_model``)."""
        return self.d_rnn if self.d_rnn is not None else self.d_model
