"""The ``irl`` command: one subcommand per stage of the pipeline.

Every subcommand that measures something prints a table and, with ``--json PATH``, writes its
figures as one JSON object. Subcommands live next to the code they run and register
themselves through an ``add_subcommand(subparsers)`` function listed in ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

_COMMANDS = (
    "irl_agents.commands.data",
    "irl_agents.commands.expert_eval",
    "irl_envs.experts.ant_locomotion",
    "irl_agents.pretrain",
    "irl_agents.commands.probe",
    "irl_agents.commands.controllers",
    "irl_agents.commands.discover",
    "irl_agents.commands.segment_codes",
    "irl_agents.commands.internal_rl",
    "irl_agents.commands.demo",
    "irl_agents.commands.compare",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irl", description="Internal RL: environments, base models, metacontrollers, RL.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        importlib.import_module(module).add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except ValueError as err:
        print(f"irl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
