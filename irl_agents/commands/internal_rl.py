"""``irl internal-rl``: RL over the metacontroller's latent codes."""

from __future__ import annotations

import argparse
import dataclasses

from irl_agents.commands import add_common, add_overwrite
from irl_agents.reporting import key_values
from irl_envs.atomic import write_json


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.internal_rl import InternalRLConfig

    d = InternalRLConfig()
    p = sub.add_parser("internal-rl", help="internal RL in the latent-action environment",
                       description="Critic-free PPO over latent codes with a frozen base model "
                                   "and metacontroller (PAPER §6).")
    p.add_argument("--base", required=True, help="base model folder")
    p.add_argument("--meta", required=True, help="metacontroller folder")
    p.add_argument("--env", choices=["grid", "ant"], default=d.env)
    p.add_argument("--task-set", choices=["pretrain", "posttrain"], default=d.task_set)
    p.add_argument("--task", default=None,
                   help="one task, e.g. 0-1-2-3, replacing the task set (default: the set)")
    p.add_argument("--greedy", action="store_true", help="argmax raw actions (default: sample)")
    p.add_argument("--env-workers", type=int, default=d.env_workers,
                   help="processes stepping the raw envs (ant: 2 uses both cores)")
    p.add_argument("--episodes", type=int, default=d.episodes, help="episode budget")
    p.add_argument("--batch-episodes", type=int, default=d.batch_episodes)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--threshold", type=float, default=d.threshold, help="switch threshold")
    p.add_argument("--out", default=d.out_dir,
                   help="output folder (a run with the same settings there is continued)")
    add_overwrite(p)
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.internal_rl import InternalRLConfig, internal_rl

    cfg = InternalRLConfig(base=args.base, meta=args.meta, env=args.env, task_set=args.task_set,
                           task=args.task, greedy=args.greedy, env_workers=args.env_workers,
                           episodes=args.episodes,
                           batch_episodes=args.batch_episodes,
                           lr=args.lr, epochs=args.epochs, threshold=args.threshold,
                           seed=args.seed, out_dir=args.out, overwrite=args.overwrite,
                           progress=not args.no_progress)
    summary = internal_rl(cfg)
    print(key_values({k: v for k, v in summary.items() if k not in ("config", "versions")}))
    if args.json:
        write_json(args.json, summary | {"config": dataclasses.asdict(cfg)})
    return 0
