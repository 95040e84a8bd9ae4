"""``irl compare``: every method for N seeds at equal episode budgets (the paper's Fig. 8)."""

from __future__ import annotations

import argparse
import dataclasses

from irl_agents.commands import add_overwrite


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from baselines.compare import CompareConfig
    from baselines.methods import METHODS

    d = CompareConfig()
    p = sub.add_parser("compare", help="internal RL against every baseline (Fig. 8)",
                       description="Prepare every method, run RL for N seeds at equal episode "
                                   "budgets on both cores (or a Ray cluster), and write a "
                                   "table, plots and CSV/JSON. Interrupted sweeps resume.")
    p.add_argument("--env", choices=["grid", "ant"], default=d.env)
    p.add_argument("--task-set", choices=["pretrain", "posttrain"], default=d.task_set)
    p.add_argument("--task", default=None, help="one task, e.g. 0-1-2-3, replacing the set")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--seeds", type=int, default=d.seeds, help="RL seeds per method (0..N-1)")
    p.add_argument("--episodes", type=int, default=d.episodes, help="episode budget per run")
    p.add_argument("--batch-episodes", type=int, default=d.batch_episodes)
    p.add_argument("--base", default=None, help="base model folder (default: shipped)")
    p.add_argument("--meta", default=None, help="metacontroller folder (default: shipped)")
    p.add_argument("--dataset", default=None, help="demonstrations (default: generated)")
    p.add_argument("--prepare-steps", type=int, default=d.prepare_steps)
    p.add_argument("--threshold", type=float, default=d.threshold, help="switch threshold")
    p.add_argument("--workers", type=int, default=d.workers, help="parallel jobs")
    p.add_argument("--ray-address", default=None,
                   help="run on a Ray cluster ('local' starts one); needs the ray extra")
    p.add_argument("--docs", default=None, metavar="MD",
                   help="also write the table into this Markdown file (between markers)")
    p.add_argument("--out", default=d.out_dir,
                   help="output folder (a sweep with the same settings there is continued)")
    add_overwrite(p)
    p.add_argument("--quick", action="store_true", help="tiny budgets that exercise every path")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from baselines.compare import QUICK, CompareConfig, compare

    cfg = CompareConfig(env=args.env, task_set=args.task_set, task=args.task,
                        methods=tuple(args.methods), seeds=args.seeds, episodes=args.episodes,
                        batch_episodes=args.batch_episodes, base=args.base, meta=args.meta,
                        dataset=args.dataset, prepare_steps=args.prepare_steps,
                        threshold=args.threshold, workers=args.workers,
                        ray_address=args.ray_address, out_dir=args.out, docs=args.docs,
                        overwrite=args.overwrite, progress=not args.no_progress)
    if args.quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    result = compare(cfg)
    print(result["table"])
    return 0
