"""``irl segment-codes``: abstract actions named by where the metacontroller's segments end."""

from __future__ import annotations

import argparse

from irl_agents.commands import add_common, add_overwrite
from irl_agents.reporting import table
from irl_envs.atomic import write_json


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.segment_codes import SegmentCodesConfig

    d = SegmentCodesConfig()
    p = sub.add_parser("segment-codes", help="codes from clustered segment ends (unsupervised)",
                       description="Cut expert episodes where the metacontroller switches, "
                                   "cluster the segments' end states into K groups, train one "
                                   "controller per group, and save the metacontroller with "
                                   "those K controllers as its decoder (for irl internal-rl).")
    p.add_argument("--base", default=d.base, help="base model folder (default: shipped grid)")
    p.add_argument("--meta", default=d.meta,
                   help="metacontroller folder, its switching unit (default: shipped grid)")
    p.add_argument("--dataset", required=True, help="demonstrations")
    p.add_argument("--out", default=d.out_dir, help="output folder")
    p.add_argument("--k", type=int, default=d.k, help="number of abstract actions")
    p.add_argument("--threshold", type=float, default=d.threshold, help="switch threshold")
    p.add_argument("--cluster-episodes", type=int, default=d.cluster_episodes)
    p.add_argument("--controller-steps", type=int, default=d.controller_steps)
    add_overwrite(p)
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.segment_codes import SegmentCodesConfig, segment_codes

    summary = segment_codes(SegmentCodesConfig(
        base=args.base, meta=args.meta, dataset=args.dataset, out_dir=args.out, k=args.k,
        threshold=args.threshold, cluster_episodes=args.cluster_episodes,
        controller_steps=args.controller_steps, seed=args.seed, overwrite=args.overwrite,
        progress=not args.no_progress))
    print(table([{"group": g, "size (segments)": n, **{f"subgoal {c}": v for c, v in
                                                      enumerate(summary["contingency"][g])}}
                 for g, n in enumerate(summary["group_sizes"])]))
    print(f"{summary['segments']} segments ({summary['segments_per_episode']} per episode); "
          f"variance left within groups {summary['within_share']:.3f} (label-free); purity "
          f"against the true subgoals {summary['purity']:.3f}; controller NLL "
          f"{summary['controller_nll']:.3f}; {summary['seconds']:.0f} s -> {args.out}")
    if args.json:
        write_json(args.json, summary)
    return 0
