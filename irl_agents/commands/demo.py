"""``irl demo``: internal RL on the post-training task from the shipped checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from irl_agents.commands import add_common
from irl_agents.reporting import key_values, table
from irl_envs.atomic import write_json

EPISODES = {"grid": 12_288, "ant": 5_120}
"""Default episode budget of each family's demo."""


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="internal RL from the shipped checkpoints (the main job)",
                       description="Internal RL on the post-training task, starting from the "
                                   "shipped base model and metacontroller: a success table "
                                   "and a plot of success vs episodes.")
    p.add_argument("--env", choices=sorted(EPISODES), default="grid")
    p.add_argument("--episodes", type=int, default=None,
                   help=f"episode budget (default per env: {EPISODES})")
    p.add_argument("--out", default="runs/demo", help="output folder (resumes if it matches)")
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.curves import episodes_to, plot_success, read_curve
    from irl_agents.internal_rl import InternalRLConfig, internal_rl
    from irl_agents.shipped import shipped

    cfg = InternalRLConfig(base=str(shipped(args.env, "base")),
                           meta=str(shipped(args.env, "metacontroller")), env=args.env,
                           env_workers=2,  # the ant's raw envs on both cores (grid: unused)
                           episodes=args.episodes or EPISODES[args.env], seed=args.seed,
                           out_dir=args.out,
                           progress=not args.no_progress)
    summary = internal_rl(cfg)
    curve = read_curve(Path(args.out) / "curve.csv")
    plot_path = Path(args.out) / "success.png"
    plot_success([(f"internal RL, seed {args.seed}", curve)], plot_path,
                 title=f"{args.env}: post-training task")
    last = len(curve["episodes"]) - 1
    rows = [{"episodes": int(curve["episodes"][i]),
             "success_rate": round(curve["success_rate"][i], 3),
             "latent_steps": round(curve["latent_steps"][i], 2),
             "raw_steps": round(curve["raw_steps"][i], 1)}
            for i in range(last + 1) if i in (0, last) or i % 8 == 7]
    print(table(rows))
    figures = {"success_before_rl": summary["success_before_rl"],
               "final_success_rate": summary["final_success_rate"],
               "episodes_to_0.5": episodes_to(curve, 0.5),
               "episodes_to_0.9": episodes_to(curve, 0.9),
               "seconds": summary["seconds"], "plot": str(plot_path)}
    if args.env == "ant":  # the paper normalises ant success by the expert's own
        from irl_envs.experts.ant_expert import expert_success

        expert = expert_success("posttrain")
        figures |= {"expert_success": expert,
                    "normalised_final_success": round(summary["final_success_rate"] / expert, 3)}
    print(key_values(figures))
    if args.json:
        write_json(args.json, figures)
    return 0
