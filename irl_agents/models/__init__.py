"""Base sequence models with residual-stream read/write access.

Public API::

    cfg = ModelConfig(kind="transformer", obs_dim=637, action_dim=4, discrete=True)
    model = build_model(cfg)
    out = model(obs, controller=ctrl, layer=2, return_residual_at=2)   # ModelOutput
    dist = model.action_distribution(out)
    total, parts = model.loss(obs, actions, mask, obs_weight=0.01)
    state = model.initial_state(batch_size)
    step_out, state = model.step(obs_t, state, controller=ctrl_t, layer=2)
    e, state = model.step_lower(obs_t, state, layer=2)
    step_out, state = model.step_upper(e + delta, state, layer=2)
    model.reset_state_rows(state, done_mask)
    save_model(model, "runs/base", extra={...}); model = load_model("runs/base")
    save_metacontroller(meta, "runs/meta"); meta = load_metacontroller("runs/meta")
"""

from irl_agents.models.base import BaseModel, Controller, ModelOutput, ModelState, StepOutput
from irl_agents.models.checkpoint import (
    load_metacontroller,
    load_model,
    load_optimizer,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_checkpoint_meta,
    save_metacontroller,
    save_model,
    save_tensors_atomic,
)
from irl_agents.models.config import ModelConfig
from irl_agents.models.controller import ControllerBank, LinearController, apply_linear_control
from irl_agents.models.ssm import HawkSSM, SSMState, linear_scan
from irl_agents.models.transformer import CausalTransformer, TransformerState

MODEL_CLASSES: dict[str, type[BaseModel]] = {"transformer": CausalTransformer, "ssm": HawkSSM}


def build_model(config: ModelConfig) -> BaseModel:
    """Instantiate the model class for ``config.kind``."""
    try:
        cls = MODEL_CLASSES[config.kind]
    except KeyError:
        raise ValueError(f"unknown model kind {config.kind!r}") from None
    return cls(config)


__all__ = [
    "BaseModel",
    "CausalTransformer",
    "Controller",
    "ControllerBank",
    "HawkSSM",
    "LinearController",
    "MODEL_CLASSES",
    "ModelConfig",
    "ModelOutput",
    "ModelState",
    "SSMState",
    "StepOutput",
    "TransformerState",
    "apply_linear_control",
    "build_model",
    "linear_scan",
    "load_metacontroller",
    "load_model",
    "load_tensors",
    "load_optimizer",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "read_checkpoint_meta",
    "save_metacontroller",
    "save_model",
    "save_tensors_atomic",
]
