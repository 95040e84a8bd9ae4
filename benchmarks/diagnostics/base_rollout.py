"""Closed-loop success of a base model acting alone (no controller) on a family's task set.

Does behaviour cloning walk? The model samples (or, with ``--greedy``, takes the mean/argmax
of) its own action distribution, one episode per sub-environment. Reported: success,
colours visited, episode length, and how the episodes ended (the env's ``info["event"]``),
beside the ceiling of any policy that cannot see the task (``irl_envs.tasks.blind_ceiling``):
a base model acting alone must guess the task, so it cannot beat that on the pretraining set.

Usage: python benchmarks/diagnostics/base_rollout.py --model DIR --env ant [--task-set pretrain]
       [--episodes 200] [--greedy] [--seed 0] [--env-workers 2] [--frame heading]

``--frame heading``: the model was trained on heading-frame observations
(:mod:`irl_envs.ant_heading`); the env's observations are rewritten the same way.

Backs docs/results/ant.md, "Ant-pinpad: the pipeline at CPU scale" (the base model alone, beside the
blind ceiling), "Five times the data, and the target handed to the model", "DAgger" and "The
heading frame".
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from irl_agents.model_rollout import rollout_success, rollout_summary
from irl_agents.models import load_model
from irl_envs.ant_heading import FRAMES
from irl_envs.families import env_id, family
from irl_envs.tasks import blind_ceiling, task_set


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--env", choices=["grid", "ant"], default="ant")
    p.add_argument("--task-set", choices=["pretrain", "posttrain"], default="pretrain")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env-workers", type=int, default=2,
                   help="ant: processes stepping the environments (1: this process only)")
    p.add_argument("--frame", choices=sorted(FRAMES), default="world",
                   help="ant: observation frame the model was trained in")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model).eval()
    start = time.perf_counter()
    venv = family(args.env).make_vec(env_id(args.env, args.task_set), args.episodes,
                                     workers=args.env_workers)
    transform = FRAMES[args.frame]
    obs_fn = (lambda obs, info: transform(obs)) if args.frame != "world" else None
    res = rollout_success(model, venv, seed=10_000 + args.seed, greedy=args.greedy,
                          obs_fn=obs_fn)
    venv.close()
    print(json.dumps({"model": args.model, "task_set": args.task_set, "greedy": args.greedy,
                      "frame": args.frame,
                      **rollout_summary(res),
                      "blind_ceiling": dict(zip(("success_rate", "mean_progress"),
                                                blind_ceiling(task_set(args.env, args.task_set)),
                                                strict=True)),
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
