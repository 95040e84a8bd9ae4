"""The ``irl`` command: one subcommand per stage of the pipeline.

Every subcommand that measures something prints a table and, with ``--json PATH``, writes its
figures as one JSON object. Each lives in its own module of :mod:`irl_agents.commands` (listed
in :data:`~irl_agents.commands.COMMANDS`), which also describes the flags they share.

Errors a user can fix (a bad option, a missing or corrupt file, an output folder that holds
another run, an optional extra that is not installed) are reported as
``irl COMMAND: error: MESSAGE`` with exit status 2, as argparse reports bad usage; a run that
fails on its own (a diverging loss) exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from irl_agents.commands import COMMANDS

_OUTPUT_FILES = ("json", "plot", "traces")
"""Options naming a file written at the end: checked before any work starts."""
EXTRAS = {"ray": "ray", "minari": "minari", "pygame": "human"}
"""Optional dependencies: the module and the extra of ``pip install "internal-rl[EXTRA]"``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irl", description="Internal RL: environments, base models, metacontrollers, RL.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"irl_agents.commands.{name}").add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from irl_agents.run_folder import check_output_file
    from irl_envs.validation import check_int

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed its usage error (2) or --help (0)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        for name in _OUTPUT_FILES:
            if getattr(args, name, None):
                check_output_file(f"--{name}", getattr(args, name))
        if check_int("--threads", getattr(args, "threads", 0), 0):
            import torch

            torch.set_num_threads(args.threads)
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as err:
        if err.name not in EXTRAS:
            raise
        print(f"irl {args.command}: error: this needs the optional extra '{EXTRAS[err.name]}': "
              f"pip install \"internal-rl[{EXTRAS[err.name]}]\"", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:  # bad input, missing or unwritable files
        print(f"irl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ArithmeticError as err:  # e.g. a non-finite loss: the run itself failed
        print(f"irl {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
