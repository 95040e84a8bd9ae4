"""``irl segment-codes``: abstract actions named by where the metacontroller's segments end."""

from __future__ import annotations

import argparse

from irl_agents.commands import add_common
from irl_agents.commands.options import add_options, from_args
from irl_agents.reporting import table
from irl_envs.atomic import write_json


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.segment_codes import SegmentCodesConfig

    p = sub.add_parser("segment-codes", help="codes from clustered segment ends (unsupervised)",
                       description="Cut expert episodes where the metacontroller switches, "
                                   "cluster the segments' end states into K groups, train one "
                                   "controller per group, and save the metacontroller with "
                                   "those K controllers as its decoder (for irl internal-rl).")
    add_options(p, SegmentCodesConfig, required=("dataset",))
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.segment_codes import SegmentCodesConfig, segment_codes

    summary = segment_codes(from_args(SegmentCodesConfig, args))
    print(table([{"group": g, "size (segments)": n, **{f"subgoal {c}": v for c, v in
                                                      enumerate(summary["contingency"][g])}}
                 for g, n in enumerate(summary["group_sizes"])]))
    print(f"{summary['segments']} segments ({summary['segments_per_episode']} per episode); "
          f"variance left within groups {summary['within_share']:.3f} (label-free); purity "
          f"against the true subgoals {summary['purity']:.3f}; controller NLL "
          f"{summary['controller_nll']:.3f}; {summary['seconds']:.0f} s -> {args.out_dir}")
    if args.json:
        write_json(args.json, summary)
    return 0
