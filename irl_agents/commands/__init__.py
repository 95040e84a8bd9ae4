"""Command-line front ends of the ``irl`` subcommands (argument parsing and printing only)."""

import argparse


def add_common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    """Options every subcommand shares."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    if json_flag:
        parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
