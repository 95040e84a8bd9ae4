"""``irl expert-eval``: success rate and episode length of the expert."""

from __future__ import annotations

import argparse

from irl_agents.commands import add_common, check_options
from irl_agents.reporting import table
from irl_envs.atomic import write_json
from irl_envs.families import FAMILIES


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expert-eval", help="evaluate the expert demonstrator",
                       description="Success rate and mean episode length of the expert.")
    p.add_argument("--env", choices=sorted(FAMILIES), default="grid")
    p.add_argument("--task-set", choices=["pretrain", "posttrain"], default="pretrain")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--noise", type=float, default=0.0, help="expert noise")
    p.add_argument("--num-envs", type=int, default=256, help="sub-environments run together")
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_envs.experts.evaluation import evaluate_expert

    check_options(args, {"episodes": 1, "num_envs": 1, "seed": 0}, fractions=("noise",))

    res = evaluate_expert(args.env, args.task_set, args.episodes, args.seed, args.noise,
                          args.num_envs, progress=not args.no_progress)
    rows = [{"task": k, **v} for k, v in res["per_task"].items()]
    rows.append({"task": "all", "episodes": res["episodes"], "success_rate": res["success_rate"],
                 "mean_length": res["mean_length"]})
    print(table(rows))
    print(f"{res['episodes']} episodes in {res['seconds']} s ({res['episodes_per_second']} ep/s)")
    if args.json:
        write_json(args.json, res)
    return 0
