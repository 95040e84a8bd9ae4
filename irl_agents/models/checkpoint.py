"""Model files, never pickle: base models, metacontrollers, any module with a config,
optimizer state.

- Base models: ``model.safetensors`` + ``config.json`` in one folder (:func:`save_model`,
  :func:`load_model`). ``config.json`` holds the :class:`ModelConfig`, the versions of torch /
  Python / this package, the tensor names and shapes, and a free ``extra`` dict.
- Metacontrollers: ``metacontroller.safetensors`` + ``metacontroller.json`` in one folder
  (:func:`save_metacontroller`, :func:`load_metacontroller`), written by
  :func:`save_module`, which also writes the CompILE baseline's files.
- Optimizer state as named tensors plus JSON (:func:`optimizer_to_tensors`).

Every file is written atomically (:mod:`irl_envs.atomic`: temporary file in the same folder,
fsync, ``os.replace``), so a crash never leaves a half-written file under the final name.
Loading validates everything and raises ``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from irl_agents.models.base import BaseModel
from irl_agents.models.config import ModelConfig
from irl_envs.atomic import atomic_path, write_json
from irl_envs.validation import check_tensors
from irl_envs.versions import versions

if TYPE_CHECKING:
    from irl_agents.metacontroller import Metacontroller

M = TypeVar("M", bound=nn.Module)
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "internal-rl-model"
FORMAT_VERSION = 1


def save_tensors_atomic(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Atomically write ``tensors`` (detached, contiguous, CPU copies) as safetensors."""
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)
    return Path(path)


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file; ``ValueError`` naming the file if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid safetensors file ({exc})") from exc
    return tensors, metadata


def _resolve_dir(dir_or_path: str | Path) -> Path:
    p = Path(dir_or_path)
    if p.suffix in (".safetensors", ".json"):
        return p.parent
    return p


def save_model(
    model: BaseModel, dir_or_path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` to a folder as ``model.safetensors`` + ``config.json``.

    :param dir_or_path: the folder, or a path to a file inside it (its parent is used).
    :param extra: JSON-serialisable metadata stored under ``"extra"`` (e.g. step, dataset).
    :return: the folder.
    """
    out = _resolve_dir(dir_or_path)
    state = model.state_dict()
    config = model.config.to_dict()
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_config": config,
        "versions": versions(),
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "extra": extra or {},
    }
    try:  # fail before touching any file if the metadata is not JSON-serialisable
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"save_model: extra/config is not JSON-serialisable ({exc})") from exc
    out.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(
        out / MODEL_FILE, state, metadata={"format": FORMAT_NAME, "config": json.dumps(config)}
    )
    write_json(out / CONFIG_FILE, meta)
    return out


def read_checkpoint_meta(dir_or_path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint folder (validated)."""
    path = _resolve_dir(dir_or_path) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{path}: file not found (not a model checkpoint folder?)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not an internal-rl model config (format != {FORMAT_NAME!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {meta.get('format_version')} is newer than supported "
            f"({FORMAT_VERSION}); upgrade internal-rl"
        )
    if "model_config" not in meta:
        raise ValueError(f"{path}: missing 'model_config'")
    return meta


def load_model(dir_or_path: str | Path, device: str | torch.device = "cpu") -> BaseModel:
    """Load a model saved by :func:`save_model` (eval mode).

    :param dir_or_path: the checkpoint folder or a file inside it.
    :raises ValueError: missing file, invalid JSON / safetensors, unknown config fields,
        tensors that do not match the architecture in the config (names, shapes, dtypes),
        or non-finite weights.
    """
    from irl_agents.models import build_model

    folder = _resolve_dir(dir_or_path)
    meta = read_checkpoint_meta(folder)
    cfg_path = folder / CONFIG_FILE
    try:
        config = ModelConfig.from_dict(meta["model_config"])
    except ValueError as exc:
        raise ValueError(f"{cfg_path}: invalid model_config: {exc}") from exc
    weights_path = folder / MODEL_FILE
    tensors, _ = load_tensors(weights_path)
    model = build_model(config)
    # names, shapes, dtypes and finite values: a NaN or an int8 cast would otherwise load
    check_tensors(f"{weights_path} (config {cfg_path})", tensors, model.state_dict())
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


def save_module(module: nn.Module, config: dict[str, Any], folder: str | Path, name: str,
                extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder/NAME.safetensors`` (the state dict) and ``folder/NAME.json`` (``config``,
    versions and ``extra``), each atomically; returns the folder."""
    folder = Path(folder)
    save_tensors_atomic(folder / f"{name}.safetensors", module.state_dict())
    write_json(folder / f"{name}.json", {"config": config, "versions": versions(), **(extra or {})})
    return folder


def load_module(folder: str | Path, name: str, build: Callable[[dict[str, Any]], M],
                what: str) -> M:
    """Inverse of :func:`save_module`: ``build(config)`` makes the module, whose tensors must
    match the file's (names, shapes, dtypes, finite values); ``ValueError`` naming the folder
    (``what`` says what it should hold) on a missing, corrupt or foreign file."""
    folder = Path(folder)
    try:
        config = json.loads((folder / f"{name}.json").read_text())["config"]
        module = build(config)
        tensors, _ = load_tensors(folder / f"{name}.safetensors")
    except Exception as err:  # noqa: BLE001  (missing, corrupt or foreign files alike)
        raise ValueError(f"{folder} is not a readable {what} ({err})") from None
    check_tensors(str(folder / f"{name}.safetensors"), tensors, module.state_dict())
    module.load_state_dict(tensors)
    return module


def save_metacontroller(meta: Metacontroller, folder: str | Path,
                        extra: dict[str, Any] | None = None) -> Path:
    """Write ``metacontroller.safetensors`` + ``metacontroller.json`` atomically."""
    return save_module(meta, meta.cfg.to_dict(), folder, "metacontroller", extra)


def load_metacontroller(folder: str | Path, device: str | torch.device = "cpu") -> Metacontroller:
    """Inverse of :func:`save_metacontroller` (on ``device``); clear ``ValueError`` on a bad
    folder."""
    from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig

    meta = load_module(folder, "metacontroller",
                       lambda config: Metacontroller(MetacontrollerConfig.from_dict(config)),
                       "metacontroller")
    return meta.to(device)


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    """Flatten an optimizer state dict into named tensors + JSON for the rest."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = val
            else:
                scalars.setdefault(str(pid), {})[key] = val
    return tensors, json.dumps({"param_groups": sd["param_groups"], "scalars": scalars})


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta_json: str | None
) -> None:
    """Inverse of :func:`optimizer_to_tensors` (loads into ``opt``); ``ValueError`` if the
    saved state is malformed, non-finite or belongs to other parameters."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise ValueError(f"optimizer state: non-finite values in {bad[:5]}")
    try:
        meta = json.loads(meta_json or "")
        state: dict[int, dict[str, Any]] = {}
        for name, val in tensors.items():
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = val
        for pid, extra in meta["scalars"].items():
            state.setdefault(int(pid), {}).update(extra)
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
        raise ValueError(f"optimizer state does not match the optimizer ({err!r})") from None


def load_optimizer(opt: torch.optim.Optimizer, path: str | Path) -> None:
    """Load into ``opt`` the state saved in ``path`` (``optimizer_to_tensors``' tensors with
    its JSON under the metadata key ``"optimizer"``); ``ValueError`` naming the file."""
    tensors, metadata = load_tensors(path)
    try:
        optimizer_from_tensors(opt, tensors, metadata.get("optimizer"))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
