"""Does the ant base model navigate when the target colour is *given*?

A diagnostic, not a method: no real model sees the target. It separates the two things the
base model must learn, inferring the current target from the history and walking to a
chosen colour, by handing it the first.

1. ``make-data``: append the one-hot of the expert's current target colour to every
   observation of an ant dataset (the final observation gets zeros: the task is over).
2. Train with the usual ``irl pretrain --dataset OUT`` (obs_dim grows from 41 to 45).
3. ``rollout``: play the model closed loop with the env's true current target appended,
   on the pretraining tasks or on 0-1-2-3, and report success and colours visited.

Usage:
    python benchmarks/ant_oracle_target.py make-data --dataset IN --out OUT
    python benchmarks/ant_oracle_target.py rollout --model DIR [--task-set posttrain]
           [--episodes 200] [--greedy] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from dataclasses import replace

import numpy as np
import torch

from irl_agents.model_rollout import rollout_success
from irl_agents.models import load_model
from irl_envs.datasets import load_dataset
from irl_envs.families import env_id, family
from irl_envs.rollout import current_targets

COLOURS = 4


def one_hot(targets: np.ndarray) -> np.ndarray:
    """(N,) colour indices, -1 for none, to (N, COLOURS) float32 one-hots (zeros for -1)."""
    out = np.zeros((len(targets), COLOURS), dtype=np.float32)
    live = targets >= 0
    out[np.flatnonzero(live), targets[live]] = 1.0
    return out


def make_data(src: str, out: str) -> None:
    data = load_dataset(src)
    augmented = replace(
        data,
        observations=np.concatenate([data.observations, one_hot(data.targets)], 1),
        final_observations=np.concatenate(
            [data.final_observations, np.zeros((data.num_episodes, COLOURS), np.float32)], 1),
        meta={**data.meta, "oracle_target": "one-hot of the current target appended"})
    augmented.save(out)
    print(json.dumps({"file": out, "obs_dim": augmented.obs_dim, "steps": data.num_steps}))


def rollout(model_dir: str, task_set: str, episodes: int, greedy: bool, seed: int) -> None:
    torch.set_num_threads(1)
    model = load_model(model_dir).eval()
    start = time.perf_counter()
    venv = family("ant").make_vec(env_id("ant", task_set), episodes)
    res = rollout_success(model, venv, seed=10_000 + seed, greedy=greedy,
                          obs_fn=lambda obs, info: np.concatenate(
                              [obs, one_hot(current_targets(info))], 1))
    venv.close()
    ends = collections.Counter("success" if ok else (ev or "time limit")
                               for ok, ev in zip(res["success"], res["event"], strict=True))
    print(json.dumps({"model": model_dir, "oracle_target": True, "task_set": task_set,
                      "greedy": greedy, "success_rate": float(res["success"].mean()),
                      "mean_progress": float(res["progress"].mean()),
                      "mean_length": float(res["length"].mean()), "ends": dict(ends),
                      "seconds": round(time.perf_counter() - start, 1)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("make-data")
    d.add_argument("--dataset", required=True)
    d.add_argument("--out", required=True)
    r = sub.add_parser("rollout")
    r.add_argument("--model", required=True)
    r.add_argument("--task-set", choices=["pretrain", "posttrain"], default="pretrain")
    r.add_argument("--episodes", type=int, default=200)
    r.add_argument("--greedy", action="store_true")
    r.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.command == "make-data":
        make_data(args.dataset, args.out)
    else:
        rollout(args.model, args.task_set, args.episodes, args.greedy, args.seed)


if __name__ == "__main__":
    main()
