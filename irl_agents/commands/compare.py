"""``irl compare``: every method for N seeds at equal episode budgets (the paper's Fig. 8).

The sweep itself is :func:`baselines.compare.compare`: the comparison runs the baselines, so it
lives with them, one layer above ``irl_agents``. This module is only its command line: like
the whole CLI it sits on top of every layer (it imports ``baselines`` inside its functions, so
importing ``irl_agents`` never imports the baselines).
"""

from __future__ import annotations

import argparse
import dataclasses

from irl_agents.commands import add_common
from irl_agents.commands.options import add_options, from_args
from irl_envs.atomic import write_json


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from baselines.compare import CompareConfig
    from baselines.methods import METHODS

    p = sub.add_parser("compare", help="internal RL against every baseline (Fig. 8)",
                       description="Prepare every method, run RL for N seeds at equal episode "
                                   "budgets on both cores (or a Ray cluster), and write a "
                                   "table, plots and CSV/JSON. Interrupted sweeps resume.")
    add_options(p, CompareConfig, overrides={
        "methods": {"choices": list(METHODS), "default": list(METHODS), "metavar": "METHOD",
                    "help": f"methods to run, of {', '.join(METHODS)} (default: all)"},
        "docs": {"metavar": "MD"}, "budgets": {"metavar": "EPISODES"}})
    p.add_argument("--quick", action="store_true", help="tiny budgets that exercise every path")
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from baselines.compare import QUICK, CompareConfig, compare

    cfg = from_args(CompareConfig, args)
    if args.quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    result = compare(cfg)
    print(result["table"])
    if args.json:
        write_json(args.json, result | {"config": dataclasses.asdict(cfg)})
    return 0
