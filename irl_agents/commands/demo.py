"""``irl demo``: internal RL from the shipped checkpoints.

Stage 1 runs it on the post-training task with the shipped metacontroller. On the gridworld,
stage 2 runs it on the novel composition 0-1-2-3 over the shipped segment codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from irl_agents.commands import add_common
from irl_agents.commands.options import add_options, from_args
from irl_agents.reporting import key_values, table
from irl_envs.atomic import write_json

EPISODES = {"grid": 10_240, "ant": 5_120}
"""Default episode budget of each family's demo (per stage)."""
NOVEL_TASK = "0-1-2-3"
"""The gridworld demo's second stage: a composition never seen in pretraining (pair 0-1 is
never followed by 2-3), where the base model allows success (docs/results/internal_rl.md)."""
_OPTIONS = ("seed", "device", "precision", "overwrite", "progress")
"""The fields of ``InternalRLConfig`` the demo takes from the command line."""


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.internal_rl import InternalRLConfig

    p = sub.add_parser("demo", help="internal RL from the shipped checkpoints (the main job)",
                       description="Internal RL from the shipped checkpoints: on the "
                                   "post-training task and (grid) on the novel composition "
                                   "0-1-2-3 over the shipped segment codes. Success tables "
                                   "and a plot of success vs episodes.")
    p.add_argument("--env", choices=sorted(EPISODES), default="grid")
    p.add_argument("--episodes", type=int, default=None,
                   help=f"episode budget (default per env: {EPISODES})")
    p.add_argument("--out", default="runs/demo",
                   help="output folder (a demo with the same settings there is continued)")
    add_options(p, InternalRLConfig, only=_OPTIONS)
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.curves import plot_success
    from irl_agents.internal_rl import InternalRLConfig
    from irl_agents.run_folder import check_output_file
    from irl_agents.shipped import shipped

    def config(meta: str, task: str | None, out: Path) -> InternalRLConfig:
        return from_args(InternalRLConfig, args, only=_OPTIONS, base=str(shipped(args.env, "base")),
                         meta=str(meta), task=task, env=args.env,
                         env_workers=2,  # the ant's raw envs on both cores
                         episodes=EPISODES[args.env] if args.episodes is None else args.episodes,
                         out_dir=str(out))

    out = Path(args.out)
    stages = [("post-training task", config(shipped(args.env, "metacontroller"), None, out))]
    if args.env == "grid":  # where the base model allows success: a novel composition
        stages.append((f"{NOVEL_TASK}, segment codes",
                       config(shipped("grid", "segment-codes"), NOVEL_TASK, out / NOVEL_TASK)))
    check_output_file("--out", out / "success.png")
    curves, figures = [], {}
    for label, cfg in stages:
        curve, figures[label] = _stage(label, cfg, args.env)
        curves.append((label, curve))
    plot_path = out / "success.png"
    plot_success(curves, plot_path, title=f"{args.env}: internal RL, seed {args.seed}")
    print(f"plot: {plot_path}")
    if args.json:
        write_json(args.json, figures | {"plot": str(plot_path)})
    return 0


def _stage(label: str, cfg, env: str) -> tuple[dict, dict]:
    """Run internal RL for one demo stage; print its table and figures."""
    from irl_agents.curves import episodes_to, read_curve
    from irl_agents.internal_rl import internal_rl

    summary = internal_rl(cfg)
    curve = read_curve(Path(cfg.out_dir) / "curve.csv")
    last = len(curve["episodes"]) - 1
    print(f"\n{label}")
    print(table([{"episodes": int(curve["episodes"][i]),
                  "success_rate": round(curve["success_rate"][i], 3),
                  "latent_steps": round(curve["latent_steps"][i], 2),
                  "raw_steps": round(curve["raw_steps"][i], 1)}
                 for i in range(last + 1) if i in (0, last) or i % 8 == 7]))
    figures = {"success_before_rl": summary["success_before_rl"],
               "final_success_rate": summary["final_success_rate"],
               "episodes_to_0.5": episodes_to(curve, 0.5),
               "episodes_to_0.9": episodes_to(curve, 0.9),
               "seconds": summary["seconds"]}
    if env == "ant":  # the paper normalises ant success by the expert's own
        from irl_envs.experts.ant_expert import expert_success

        expert = expert_success("posttrain")
        figures |= {"expert_success": expert,
                    "normalised_final_success": round(summary["final_success_rate"] / expert, 3)}
    print(key_values(figures))
    return curve, figures
