"""Closed-loop success of a base model acting alone (no controller) on a family's task set.

Does behaviour cloning walk? The model samples (or, with ``--greedy``, takes the mean/argmax
of) its own action distribution, one episode per sub-environment.

Usage: python benchmarks/base_rollout.py --model DIR --env ant [--task-set pretrain]
       [--episodes 200] [--greedy] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from irl_agents.controllers import ControllerConfig, evaluate_controllers
from irl_agents.models import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--env", choices=["grid", "ant"], default="ant")
    p.add_argument("--task-set", choices=["pretrain", "posttrain"], default="pretrain")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model).eval()
    start = time.perf_counter()
    cfg = ControllerConfig(eval_episodes=args.episodes, greedy=args.greedy, seed=args.seed)
    res = evaluate_controllers(model, None, cfg, env=args.env, task_set=args.task_set)
    print(json.dumps({"model": args.model, "task_set": args.task_set, "greedy": args.greedy,
                      **res, "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
