"""The ``irl`` command: one subcommand per stage of the pipeline.

Every subcommand that measures something prints a table and, with ``--json PATH``, writes its
figures as one JSON object. Subcommands live next to the code they run and register
themselves through an ``add_subcommand(subparsers)`` function listed in ``_COMMANDS``.

Errors a user can fix (a bad option, a missing or corrupt file, an output folder that holds
another run) are reported as ``irl COMMAND: error: MESSAGE`` with exit status 2, as argparse
reports bad usage; a run that fails on its own (a diverging loss) exits with status 1.
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
_OUTPUT_FILES = ("json", "plot", "traces")
"""Options naming a file written at the end: checked before any work starts."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irl", description="Internal RL: environments, base models, metacontrollers, RL.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        importlib.import_module(module).add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from irl_agents.run_folder import check_output_file

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed its usage error (2) or --help (0)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        for name in _OUTPUT_FILES:
            if getattr(args, name, None):
                check_output_file(f"--{name}", getattr(args, name))
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:  # bad input, missing or unwritable files
        print(f"irl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ArithmeticError as err:  # e.g. a non-finite loss: the run itself failed
        print(f"irl {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
