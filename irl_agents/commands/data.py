"""``irl data``: generate an expert dataset and print a summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from irl_agents.commands import add_common, check_options
from irl_agents.reporting import key_values
from irl_envs.atomic import write_json
from irl_envs.families import FAMILIES
from irl_envs.validation import check_seed


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate expert demonstrations",
                       description="Roll out the expert and save a demonstration dataset.")
    p.add_argument("--env", choices=sorted(FAMILIES), default="grid")
    p.add_argument("--task-set", choices=["pretrain", "posttrain"], default="pretrain")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--noise", type=float, default=0.0,
                   help="expert noise (grid: probability of a random safe action; ant: "
                        "multiple of the locomotion policy's standard deviation)")
    p.add_argument("--relabel", action="store_true",
                   help="label every state the noisy expert visits with its noise-free action "
                        "(needs --noise > 0; a departure from the paper, docs/scaling_grid.md)")
    p.add_argument("--tie-break", choices=["uniform", "first"], default=None,
                   help="grid: the expert's choice among equally short moves (default uniform; "
                        "first: a deterministic expert)")
    p.add_argument("--num-envs", type=int, default=256, help="sub-environments run together")
    p.add_argument("--out", type=Path, default=None,
                   help="the dataset file written (default: "
                        "data/ENV-TASKSET-EPISODES-sSEED.safetensors)")
    p.add_argument("--minari", metavar="DATASET_ID",
                   help="also export to a local Minari dataset (needs the minari extra)")
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.run_folder import check_output_file
    from irl_envs.datasets import generate_dataset

    if args.tie_break is not None and args.env != "grid":
        raise ValueError(f"--tie-break is a grid option (env={args.env!r}); the ant expert is "
                         "deterministic at --noise 0")
    check_options(args, {"episodes": 1, "num_envs": 1}, fractions=("noise",))
    check_seed("--seed", args.seed, args.num_envs)  # sub-environment i uses seed + i
    if args.relabel and args.noise == 0:
        raise ValueError("--relabel needs --noise > 0: without noise the labels are the actions")
    name = f"{args.env}-{args.task_set}-{args.episodes}-s{args.seed}.safetensors"
    out = check_output_file("--out", args.out or Path("data") / name)  # before the work
    options = {"tie_break": args.tie_break} if args.tie_break else {}
    data = generate_dataset(args.env, args.task_set, args.episodes, args.seed, args.noise,
                            args.num_envs, progress=not args.no_progress,
                            relabel=args.relabel, **options)
    data.save(out)
    lengths = data.episode_lengths
    summary = {
        "file": str(out),
        "episodes": data.num_episodes,
        "steps": data.num_steps,
        "tasks": len(data.tasks),
        "success_rate": float(data.success.mean()),
        "mean_length": float(lengths.mean()),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "obs_dim": data.obs_dim,
        "seconds": data.meta["seconds"],
        "episodes_per_second": round(data.num_episodes / max(data.meta["seconds"], 1e-9), 1),
        "file_MB": round(out.stat().st_size / 2**20, 2),
        "subgoal_share": [round(float(v), 3) for v in
                          np.bincount(data.subgoals, minlength=int(data.subgoals.max()) + 1)
                          / data.num_steps],
    }
    if args.minari:
        from irl_envs.minari_export import export_minari

        export_minari(data, args.minari)
        summary["minari"] = args.minari
    print(key_values(summary))
    if args.json:
        write_json(args.json, summary)
    return 0
