"""One CLI: options derived from the settings dataclasses, the same common flags on every
subcommand, ``--device`` plumbing (on CPU), and clear errors for a bad device or a missing
optional extra."""

from __future__ import annotations

import argparse
import importlib.util
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from irl_agents.cli import build_parser, main
from irl_agents.commands.options import add_options, from_args
from irl_agents.models import ModelConfig, build_model, save_model
from irl_envs.datasets import generate_dataset

TRAINS = {"train-ant-expert", "pretrain", "controllers", "discover", "segment-codes",
          "internal-rl", "demo", "compare"}
"""Subcommands that train: ``--device`` (SB3's for the ant expert) and, but for the ant
expert's SB3 training, ``--precision``."""
RUNS_A_MODEL = TRAINS | {"probe"}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions
                  if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_has_the_common_flags():
    commands = subparsers()
    assert set(commands) >= RUNS_A_MODEL | {"data", "expert-eval"}
    for name, parser in commands.items():
        flags = set(parser._option_string_actions)
        assert {"--seed", "--json", "--no-progress", "--threads"} <= flags, name
        assert "--progress" not in flags, name  # one spelling: --no-progress
        assert ("--device" in flags) == (name in RUNS_A_MODEL), name
        assert ("--precision" in flags) == (name in TRAINS - {"train-ant-expert"}), name
    for name in ("probe", "controllers"):  # --base everywhere, --model kept as an alias
        assert {"--base", "--model"} <= set(commands[name]._option_string_actions)


# ------------------------------------------------------------------------------ the helper
@dataclass
class Inner:
    rate: float = 0.5
    """How fast."""


@dataclass
class Settings:
    """A settings dataclass of every kind of field the helper supports."""

    out_dir: str = "runs/x"
    """Output folder."""
    steps: int = 3
    """Gradient steps (100% of them)."""
    kind: Literal["a", "b"] = "a"
    """Which one."""
    task: str | None = None
    """A task, or None."""
    hidden: tuple[int, ...] = (4, 4)
    """Widths."""
    marks: list[int] = field(default_factory=list)
    """Steps to mark."""
    greedy: bool = False
    """Act greedily."""
    progress: bool = True
    """Show a progress bar."""
    normalize: bool | None = None
    """Normalise (None: automatic)."""
    inner: Inner = field(default_factory=Inner)
    """Nested settings."""


def test_options_are_derived_from_the_fields():
    parser = argparse.ArgumentParser()
    add_options(parser, Settings)
    args = parser.parse_args([])
    assert from_args(Settings, args) == Settings()
    args = parser.parse_args(["--out", "o", "--steps", "7", "--kind", "b", "--task", "0-1",
                              "--hidden", "8", "--marks", "1", "2", "--greedy", "--no-progress",
                              "--normalize", "false", "--inner.rate", "0.25"])
    assert from_args(Settings, args) == Settings(
        out_dir="o", steps=7, kind="b", task="0-1", hidden=(8,), marks=[1, 2], greedy=True,
        progress=False, normalize=False, inner=Inner(0.25))
    assert from_args(Settings, args, steps=9).steps == 9
    text = parser.format_help()
    assert "Gradient steps (100% of them). (default: 3)" in " ".join(text.split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])


# ------------------------------------------------------------------------------ devices
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("devices")
    generate_dataset("grid", "pretrain", 40, seed=0, num_envs=8,
                     progress=False).save(root / "data.safetensors")
    torch.manual_seed(0)
    save_model(build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=16, n_layers=2,
                                       n_heads=2, d_mlp=32)), root / "base")
    return root


def _minimal(name: str, root) -> list[str]:
    """Arguments that make ``name`` valid apart from the device."""
    data, base, out = str(root / "data.safetensors"), str(root / "base"), str(root / "never")
    return {
        "train-ant-expert": ["--out", out],
        "pretrain": ["--dataset", data, "--out", out],
        "probe": ["--base", base, "--dataset", data],
        "controllers": ["--base", base, "--dataset", data],
        "discover": ["--base", base, "--dataset", data, "--out", out],
        "segment-codes": ["--dataset", data, "--out", out],
        "internal-rl": ["--base", base, "--meta", base, "--out", out],
        "demo": ["--out", out],
        "compare": ["--out", out],
    }[name]


@pytest.mark.parametrize("name", sorted(RUNS_A_MODEL))
def test_an_invalid_device_is_refused_before_any_work(name, tiny, capsys):
    assert main([name, *_minimal(name, tiny), "--no-progress", "--device", "warp9"]) == 2
    err = capsys.readouterr().err
    assert f"irl {name}: error:" in err and "device" in err
    assert not (tiny / "never").exists()


def test_device_cpu_through_every_training_path(tiny, tmp_path):
    """pretrain -> probe -> controllers -> discover -> segment-codes -> internal-rl, each with
    ``--device cpu`` (and a precision where it trains)."""
    data = str(tiny / "data.safetensors")
    common = ["--device", "cpu", "--no-progress"]
    assert main(["pretrain", "--dataset", data, "--out", str(tmp_path / "p"), "--steps", "2",
                 "--d-model", "16", "--n-layers", "2", "--n-heads", "2", "--d-mlp", "16",
                 "--batch-size", "4", "--precision", "fp32", *common]) == 0
    base = str(tmp_path / "p" / "model")
    assert main(["probe", "--base", base, "--dataset", data, "--episodes", "20", *common]) == 0
    assert main(["controllers", "--model", base, "--dataset", data, "--layers", "1", "--steps",
                 "1", "--eval-episodes", "2", "--rank", "2", "--precision", "bf16",
                 *common]) == 0
    meta = tmp_path / "d"
    assert main(["discover", "--base", base, "--dataset", data, "--out", str(meta), "--steps",
                 "2", "--batch-size", "8", "--rank", "2", "--n-z", "4", "--layer", "1",
                 "--eval-episodes", "4", "--precision", "bf16", *common]) == 0
    assert main(["segment-codes", "--base", base, "--meta", str(meta), "--dataset", data,
                 "--out", str(tmp_path / "s"), "--k", "2", "--cluster-episodes", "20",
                 "--controller-steps", "1", *common]) == 0
    assert main(["internal-rl", "--base", base, "--meta", str(tmp_path / "s"), "--episodes",
                 "4", "--batch-episodes", "4", "--precision", "bf16", "--out",
                 str(tmp_path / "rl"), "--json", str(tmp_path / "rl.json"), *common]) == 0
    config = json.loads((tmp_path / "rl.json").read_text())["config"]
    assert config["device"] == "cpu" and config["precision"] == "bf16"


def test_compare_takes_seed_json_and_device(tmp_path):
    out, result = tmp_path / "cmp", tmp_path / "cmp.json"
    assert main(["compare", "--task", "0-1", "--methods", "prior", "--seeds", "1", "--seed",
                 "3", "--episodes", "8", "--batch-episodes", "8", "--workers", "1",
                 "--device", "cpu", "--out", str(out), "--json", str(result),
                 "--no-progress"]) == 0
    runs = json.loads(result.read_text())["runs"]
    assert [(r["method"], r["seed"]) for r in runs] == [("prior", 3)]
    summary = json.loads((out / "0-1" / "runs" / "prior" / "seed3" / "summary.json").read_text())
    assert summary["config"]["seed"] == 3 and summary["config"]["device"] == "cpu"


def test_a_missing_optional_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["compare", "--ray-address", "local", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irl compare: error:") and "'ray'" in err and "\n" not in err
    assert not (tmp_path / "c").exists()
