"""Throughput of gridworld-pinpad: single env, native batched env, and the DP expert.

Usage: python benchmarks/bench_grid.py [--num-envs 4096] [--json PATH]
Random actions end many episodes early, so the batched figure includes plenty of autoresets
(layout sampling with the solvability check), the expensive part.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import irl_envs  # noqa: F401
from irl_agents.reporting import table
from irl_envs.atomic import write_json
from irl_envs.experts.evaluation import evaluate_expert
from irl_envs.versions import versions


def single_env_steps_per_second(env_id: str, steps: int) -> float:
    env = gym.make(env_id).unwrapped  # no checker wrappers: measure the env itself
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 4, steps)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def batched_steps_per_second(env_id: str, num_envs: int, steps: int, copy: bool) -> float:
    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        copy=copy)
    venv.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 4, (steps, num_envs))
    venv.step(actions[0])  # warm-up
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    return steps * num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=300, help="batched steps to time")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    rows = []
    for task_set, env_id in (("pretrain", "InternalRL/ColourSequencePretrain-v0"),
                             ("posttrain", "InternalRL/ColourSequence-v0")):
        rows.append({"measure": f"single env steps/s ({task_set})",
                     "value": round(single_env_steps_per_second(env_id, 20_000))})
        for copy in (True, False):
            rows.append({"measure": f"batched steps/s, N={args.num_envs}, copy={copy} ({task_set})",
                         "value": round(batched_steps_per_second(env_id, args.num_envs,
                                                                 args.steps, copy))})
        res = evaluate_expert("grid", task_set, episodes=20_000, seed=0, num_envs=1024,
                              progress=False)
        rows.append({"measure": f"expert episodes/s, N=1024 ({task_set})",
                     "value": res["episodes_per_second"]})
    print(table(rows))
    if args.json:
        write_json(args.json, {"rows": rows, "machine": platform.processor() or platform.machine(),
                               "versions": versions()})


if __name__ == "__main__":
    main()
