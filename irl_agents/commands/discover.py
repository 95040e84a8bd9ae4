"""``irl discover``: train metacontrollers (one, or an alpha sweep) and score switching."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from irl_agents.commands import add_common
from irl_agents.commands.options import add_options, from_args
from irl_agents.reporting import table
from irl_envs.atomic import write_json


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.discovery import DiscoverConfig

    p = sub.add_parser("discover", help="train the metacontroller (unsupervised)",
                       description="Train a metacontroller on a frozen (or co-trained) base "
                                   "model and score its switching against subgoal boundaries.")
    add_options(p, DiscoverConfig, required=("base", "dataset"), overrides={"alpha": {
        "nargs": "+", "default": [DiscoverConfig.alpha],
        "help": "KL weight(s) of the rate-distortion trade-off; several values run a sweep "
                f"into OUT/alpha-A (default: {DiscoverConfig.alpha})"}})
    p.add_argument("--plot", metavar="PNG", help="write rate (KL) vs distortion (action NLL)")
    p.add_argument("--traces", metavar="PNG",
                   help="write beta traces of 5 held-out episodes (last alpha)")
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.discovery import DiscoverConfig, discover

    def config(alpha: float) -> DiscoverConfig:
        out = Path(args.out_dir)
        out = out if len(args.alpha) == 1 else out / f"alpha-{alpha:g}"
        return from_args(DiscoverConfig, args, alpha=alpha, out_dir=str(out))

    configs = [config(alpha) for alpha in args.alpha]  # every setting checked before any work
    rows = []
    for cfg in configs:
        alpha, out = cfg.alpha, Path(cfg.out_dir)
        summary = discover(cfg)
        rows.append({"alpha": alpha, **{k: round(v, 4) for k, v in summary["alignment"].items()},
                     "seconds": summary["seconds"], "out": str(out)})
    print(table(rows))
    if args.plot:
        from irl_agents.plots import plot_rate_distortion

        plot_rate_distortion({args.cotrain: rows}, args.plot)
    if args.traces:
        from irl_agents.discovery import plot_beta_traces
        from irl_agents.episodes import split_episodes
        from irl_agents.models import load_metacontroller, load_model
        from irl_envs.datasets import load_dataset

        data = load_dataset(args.dataset)
        base = load_model(out / "base" if args.cotrain != "frozen" else args.base)
        _, held_out = split_episodes(data.num_episodes, 0.1, args.seed)  # as discover() does
        plot_beta_traces(base, load_metacontroller(out).eval(), data, held_out[:5], args.traces)
    if args.json:
        write_json(args.json, {"rows": rows, "config": dataclasses.asdict(cfg)})
    return 0
