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
    p.add_argument("--dagger", metavar="MODEL_DIR", default=None,
                   help="DAgger (ant): the base model MODEL_DIR acts (mixed with the expert, see "
                        "--dagger-beta) and every visited state is labelled with the expert's "
                        "noise-free action for the true current target (docs/results/ant.md)")
    p.add_argument("--dagger-beta", type=float, default=None,
                   help="with --dagger: probability that the expert acts instead of the model "
                        "(default 0.5)")
    p.add_argument("--dagger-mix", choices=["episode", "step", "handover"], default=None,
                   help="with --dagger: draw the acting policy once per episode (default), at "
                        "every step, or per episode with the expert opening every model "
                        "episode (handover)")
    p.add_argument("--dagger-handover", type=int, default=None, metavar="STEPS",
                   help="with --dagger-mix handover: the expert opens a model episode with up "
                        "to STEPS steps, drawn uniformly (default 50)")
    p.add_argument("--dagger-greedy", action="store_true",
                   help="with --dagger: the model takes its mean action instead of sampling")
    p.add_argument("--merge", nargs="+", type=Path, metavar="FILE", default=None,
                   help="instead of generating: concatenate these datasets (same env) into "
                        "--out, e.g. DAgger data with the expert's")
    p.add_argument("--num-envs", type=int, default=256, help="sub-environments run together")
    p.add_argument("--env-workers", type=int, default=2,
                   help="ant: processes stepping the sub-environments (1: all in this "
                        "process; default 2)")
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

    if args.merge is not None:
        return _merge(args)
    dagger_options = [f for f, v in (("--dagger-beta", args.dagger_beta),
                                     ("--dagger-mix", args.dagger_mix),
                                     ("--dagger-greedy", args.dagger_greedy),
                                     ("--dagger-handover", args.dagger_handover))
                      if v not in (None, False)]
    if args.dagger is None and dagger_options:
        raise ValueError(f"{', '.join(dagger_options)} need --dagger MODEL_DIR")
    if args.dagger_handover is not None and args.dagger_mix != "handover":
        raise ValueError("--dagger-handover needs --dagger-mix handover")
    if args.dagger is not None and args.env != "ant":
        raise ValueError(f"--dagger supports --env ant only (env={args.env!r}): the model acts "
                         "from the last observation that the ant's vector env records")
    if args.tie_break is not None and args.env != "grid":
        raise ValueError(f"--tie-break is a grid option (env={args.env!r}); the ant expert is "
                         "deterministic at --noise 0")
    check_options(args, {"episodes": 1, "num_envs": 1, "env_workers": 1, "dagger_handover": 0},
                  fractions=("noise", "dagger_beta"))
    check_seed("--seed", args.seed, args.num_envs)  # sub-environment i uses seed + i
    if args.relabel and args.noise == 0 and args.dagger is None:
        raise ValueError("--relabel needs --noise > 0: without noise the labels are the actions")
    tag = "-dagger" if args.dagger is not None else ""
    name = f"{args.env}-{args.task_set}-{args.episodes}{tag}-s{args.seed}.safetensors"
    out = check_output_file("--out", args.out or Path("data") / name)  # before the work
    options = {"tie_break": args.tie_break} if args.tie_break else {}
    behaviour = None
    if args.dagger is not None:
        from irl_agents.model_rollout import DaggerMixture
        from irl_agents.models import load_model

        beta = 0.5 if args.dagger_beta is None else args.dagger_beta
        behaviour = DaggerMixture(load_model(args.dagger), beta, seed=args.seed,
                                  mix=args.dagger_mix or "episode",
                                  greedy=args.dagger_greedy, source=str(args.dagger),
                                  handover=50 if args.dagger_handover is None
                                  else args.dagger_handover)
    data = generate_dataset(args.env, args.task_set, args.episodes, args.seed, args.noise,
                            args.num_envs, progress=not args.no_progress,
                            relabel=args.relabel, behaviour=behaviour,
                            env_workers=args.env_workers, **options)
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
    summary |= {k: v for k, v in data.meta.items() if k.startswith("dagger_")}
    if args.minari:
        from irl_envs.minari_export import export_minari

        export_minari(data, args.minari)
        summary["minari"] = args.minari
    print(key_values(summary))
    if args.json:
        write_json(args.json, summary)
    return 0


def _merge(args: argparse.Namespace) -> int:
    """``irl data --merge A B ... --out C``."""
    from irl_agents.run_folder import check_output_file
    from irl_envs.datasets import load_dataset, merge_datasets

    if args.out is None:
        raise ValueError("--merge needs --out, the merged dataset's file")
    if args.dagger is not None or args.minari:
        raise ValueError("--merge concatenates existing files: it takes no --dagger or --minari")
    if len(args.merge) < 2:
        raise ValueError(f"--merge needs at least 2 files, got {len(args.merge)}")
    out = check_output_file("--out", args.out)
    if any(out.resolve() == f.resolve() for f in args.merge):
        raise ValueError(f"--out {out} is one of the merged files")
    parts = [load_dataset(f) for f in args.merge]
    data = merge_datasets(parts, [str(f) for f in args.merge])
    data.save(out)
    summary = {"file": str(out), "episodes": data.num_episodes, "steps": data.num_steps,
               "tasks": len(data.tasks), "success_rate": float(data.success.mean()),
               "parts": [f"{f}: {d.num_episodes} episodes, {d.num_steps} steps"
                         for f, d in zip(args.merge, parts, strict=True)],
               "file_MB": round(out.stat().st_size / 2**20, 2)}
    print(key_values(summary))
    if args.json:
        write_json(args.json, summary)
    return 0
