"""``irl probe``: linear probes of the current subgoal at every layer boundary."""

from __future__ import annotations

import argparse

from irl_agents.commands import add_common, check_options
from irl_agents.reporting import table
from irl_envs.atomic import write_json
from irl_envs.validation import check_device


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="probe the residual stream for the current subgoal",
                       description="Fit a linear subgoal probe at every layer boundary and "
                                   "report held-out accuracy (the paper's Fig. 3).")
    p.add_argument("--base", "--model", dest="base", required=True, nargs="+",
                   metavar="[NAME=]DIR",
                   help="base model folder(s); the plot draws one line per NAME (models of one "
                        "name are seeds: median and range), unnamed ones as 'base model'")
    p.add_argument("--dataset", required=True, help="demonstrations with subgoal labels")
    p.add_argument("--episodes", type=int, default=2000, help="episodes used (default 2000)")
    p.add_argument("--plot", metavar="PNG", help="write accuracy vs layer")
    add_common(p, device=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.models import load_model
    from irl_agents.probe import plot_probe, probe_subgoals
    from irl_envs.datasets import load_dataset

    check_options(args, {"episodes": 1, "seed": 0})
    check_device(args.device, "--device")
    data = load_dataset(args.dataset)
    results, rows = {}, []
    for spec in args.base:
        name, sep, path = spec.partition("=")
        if not sep or "/" in name:  # a plain folder (which may itself hold "=")
            name, path = "", spec
        res = probe_subgoals(load_model(path, device=args.device), data, args.episodes,
                             seed=args.seed)
        results.setdefault(name or "base model", []).append(res)
        rows += [{"model": spec, **r, "chance": round(res.chance, 4)} for r in res.rows()]
    print(table(rows))
    if args.plot:
        plot_probe(results, args.plot)
    if args.json:
        write_json(args.json, {"rows": rows})
    return 0
