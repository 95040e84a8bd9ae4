"""``irl pretrain``: train the base model (PAPER §3) on demonstrations or streamed episodes."""

from __future__ import annotations

import argparse
import json

from irl_agents.commands import add_common
from irl_agents.commands.options import add_options, from_args
from irl_envs.atomic import write_json

_MODEL_SKIP = ("obs_dim", "action_dim", "discrete", "obs_shape", "obs_likelihood", "extra")
"""Model fields the data decides (or ``--obs-likelihood`` of the run sets)."""


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.models import ModelConfig
    from irl_agents.pretrain import PretrainConfig
    from irl_envs.families import FAMILIES

    p = sub.add_parser("pretrain", help="pretrain a base model on expert demonstrations",
                       description="Train the autoregressive base model (PAPER §3) on a "
                                   "demonstration dataset or on fresh expert episodes.")
    source = p.add_mutually_exclusive_group(required=True)
    add_options(source, PretrainConfig, only=("dataset", "stream"),
                overrides={"dataset": {"default": ""},
                           "stream": {"default": "", "choices": sorted(FAMILIES)}})
    add_options(p, PretrainConfig, skip=("dataset", "stream", "model"),
                aliases={"obs_weight": ["--lambda"]},
                overrides={"milestones": {"metavar": "STEP"}})
    add_options(p, ModelConfig, skip=_MODEL_SKIP)
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.models import ModelConfig
    from irl_agents.pretrain import PretrainConfig, pretrain

    model = from_args(ModelConfig, args, skip=_MODEL_SKIP)
    path = pretrain(from_args(PretrainConfig, args, skip=("model",), model=model))
    print(f"model written to {path}")
    if args.json:
        meta = json.loads((path / "config.json").read_text())
        write_json(args.json, {"model_dir": str(path), **meta["extra"]["final_train_losses"]})
    return 0
