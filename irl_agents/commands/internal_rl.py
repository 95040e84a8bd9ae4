"""``irl internal-rl``: RL over the metacontroller's latent codes."""

from __future__ import annotations

import argparse
import dataclasses

from irl_agents.commands import add_common
from irl_agents.commands.options import add_options, from_args
from irl_agents.reporting import key_values
from irl_envs.atomic import write_json


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.internal_rl import InternalRLConfig

    p = sub.add_parser("internal-rl", help="internal RL in the latent-action environment",
                       description="Critic-free PPO over latent codes with a frozen base model "
                                   "and metacontroller (PAPER §6).")
    add_options(p, InternalRLConfig, required=("base", "meta"))
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.internal_rl import InternalRLConfig, internal_rl

    cfg = from_args(InternalRLConfig, args)
    summary = internal_rl(cfg)
    print(key_values({k: v for k, v in summary.items() if k not in ("config", "versions")}))
    if args.json:
        write_json(args.json, summary | {"config": dataclasses.asdict(cfg)})
    return 0
