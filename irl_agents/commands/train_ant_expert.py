"""``irl train-ant-expert``: train the ant expert's locomotion policy with SB3."""

from __future__ import annotations

import argparse
import json

from irl_agents.commands import add_common
from irl_agents.commands.options import add_options, from_args
from irl_envs.atomic import write_json

_SHOWN = ("steps", "wall_s", "steps_per_s", "final_eval", "weights")
"""The summary's entries printed (``--json`` writes all of it)."""


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.ant_expert_training import TrainConfig

    p = sub.add_parser("train-ant-expert", help="train the ant expert's locomotion policy",
                       description="Train the direction-conditioned ant walker with SB3 "
                                   "(settings of the training env: --env.FIELD VALUE).")
    add_options(p, TrainConfig)
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.ant_expert_training import TrainConfig, train_locomotion

    summary = train_locomotion(from_args(TrainConfig, args))
    print(json.dumps({k: summary[k] for k in _SHOWN}, indent=2))
    if args.json:
        write_json(args.json, summary)
    return 0
