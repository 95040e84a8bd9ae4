"""Command-line front ends of the ``irl`` subcommands (argument parsing and printing only).

Counts and ranges are checked where they enter: by the config dataclasses' ``__post_init__``
(so that the Python API checks them too) or, for options that go straight to a function, by
:func:`check_options` at the start of the command; either way before any work, reported as
``irl COMMAND: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse

from irl_envs.validation import check_float, check_int


def add_common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    """Options every subcommand shares."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    if json_flag:
        parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace a run with other settings in the output folder."""
    parser.add_argument("--overwrite", action="store_true",
                        help="if the output folder holds another run (another command or "
                             "other settings), delete it and start again instead of refusing")


def check_options(args: argparse.Namespace, at_least: dict[str, int] | None = None,
                  fractions: tuple[str, ...] = ()) -> None:
    """``ValueError`` naming the option unless each ``at_least`` option is an int at least
    its bound and each of ``fractions`` a number in [0, 1] (options given by ``dest`` name;
    None values are skipped; list values are checked item by item)."""
    for dest, low in (at_least or {}).items():
        for value in _values(getattr(args, dest)):
            check_int(_flag(dest), value, low)
    for dest in fractions:
        for value in _values(getattr(args, dest)):
            check_float(_flag(dest), value, low=0.0, high=1.0)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _values(value: object) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
