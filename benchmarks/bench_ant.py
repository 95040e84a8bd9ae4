"""Throughput of AntSubgoals next to Gymnasium's Ant-v5, in one process, random actions.

All environments are made with ``gym.make`` (Gymnasium's default wrappers), step the same
pre-drawn uniform random actions, and are reset whenever an episode ends. Short rounds of the
environments alternate so that all see the same machine load; the ratio to Ant-v5 is taken
within each round and its median reported, which keeps it meaningful on a shared machine.
Reported: steps per second including resets (what data collection sees) and of ``step`` alone,
medians over rounds.

    python benchmarks/bench_ant.py                      # prints a table
    python benchmarks/bench_ant.py --json results.json  # also writes the numbers
    python benchmarks/bench_ant.py --tours 2000         # adds the cell-size study

The cell-size study (``--tours N``) resets the env N times, takes the grid-level shortest tour
of each episode's task (``grid_logic.tour_length``, in cell moves), and converts it to env
steps for a few cell sizes and walking speeds, assuming the torso walks (moves - 0.5) cell
sides (it starts inside a cell and only has to cross into the last colour).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import irl_envs  # noqa: F401  (registers InternalRL/*)
from irl_envs import grid_logic
from irl_envs.versions import versions

ENVS = {"Ant-v5": "Ant-v5", "AntSubgoals-v0": "InternalRL/AntSubgoals-v0",
        "AntSubgoalsPretrain-v0": "InternalRL/AntSubgoalsPretrain-v0"}


class Runner:
    """Steps one env through pre-drawn actions, resetting when an episode ends."""

    def __init__(self, env: gym.Env, seed: int):
        self.env, self.episodes = env, 0
        env.reset(seed=seed)

    def run(self, actions: np.ndarray) -> dict[str, float]:
        """Wall times of the steps and of the resets over ``actions``."""
        clock, env = time.perf_counter, self.env
        step_time = reset_time = 0.0
        for action in actions:
            t0 = clock()
            _, _, terminated, truncated, _ = env.step(action)
            t1 = clock()
            step_time += t1 - t0
            if terminated or truncated:
                env.reset()
                reset_time += clock() - t1
                self.episodes += 1
        return {"step_time": step_time, "reset_time": reset_time}


def tour_study(env_id: str, episodes: int, seed: int, cell_sizes=(0.75, 1.0, 1.5, 2.0),
               speeds=(0.5, 0.75, 1.0, 2.0)) -> dict:
    """Env steps an ideal walker needs per episode, for several cell sizes and speeds."""
    env = gym.make(env_id).unwrapped
    dt, g = env.dt, env.grid_size
    moves = []
    for k in range(episodes):
        _, info = env.reset(seed=seed + k)
        row, col = info["agent"]
        task = np.array([info["task"]])
        moves.append(int(grid_logic.tour_length(env.cells[None], np.array([row * g + col]),
                                                task, np.array([task.shape[1]]), g)[0]))
    moves = np.array(moves)
    out = {"mean_moves": float(moves.mean()), "p90_moves": float(np.percentile(moves, 90)),
           "steps": {}}
    for cell in cell_sizes:
        for v in speeds:
            steps = (moves - 0.5) * cell / v / dt
            out["steps"][f"{cell}m@{v}m/s"] = {"mean": float(steps.mean()),
                                               "p90": float(np.percentile(steps, 90))}
    env.close()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per round and env")
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds per env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--tours", type=int, default=0,
                        help="episodes for the cell-size study (0: skip it)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be >= 1")

    envs = {name: gym.make(env_id) for name, env_id in ENVS.items()}
    runners = {name: Runner(env, args.seed) for name, env in envs.items()}
    rng = np.random.default_rng(args.seed)
    actions = rng.uniform(-1, 1, size=(args.rounds, args.steps, 8)).astype(np.float32)
    for runner in runners.values():  # warm-up: first-call overheads out of the timings
        runner.run(actions[0, :200])
        runner.episodes = 0
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in envs}
    for r in range(args.rounds):  # short alternating rounds: both envs see the same load
        for name, runner in runners.items():
            rounds[name].append(runner.run(actions[r]))

    results = {}
    for name, runs in rounds.items():
        total = [args.steps / (x["step_time"] + x["reset_time"]) for x in runs]
        results[name] = {
            "steps_per_s": statistics.median(total),
            "step_only_steps_per_s": statistics.median(args.steps / x["step_time"]
                                                       for x in runs),
            "mean_episode_length": args.steps * args.rounds / max(1, runners[name].episodes),
            "_per_round": total,
        }
    base = results["Ant-v5"]["_per_round"]
    for name in results:  # paired: the ratio within each round, then the median
        per_round = results[name].pop("_per_round")
        results[name]["ratio_vs_ant_v5"] = statistics.median(
            x / b for x, b in zip(per_round, base, strict=True))

    print(f"{args.rounds} alternating rounds x {args.steps} random-action steps per env; "
          f"medians over rounds; resets included except in 'step only'; ratio = paired "
          f"median of per-round ratios to Ant-v5")
    header = f"{'env':<24}{'steps/s':>10}{'step only':>11}{'ratio':>8}{'ep. len':>9}"
    print(header)
    print("-" * len(header))
    for name, res in results.items():
        print(f"{name:<24}{res['steps_per_s']:>10.0f}{res['step_only_steps_per_s']:>11.0f}"
              f"{res['ratio_vs_ant_v5']:>8.2f}{res['mean_episode_length']:>9.0f}")
    out = {"results": results, "steps": args.steps, "rounds": args.rounds, "seed": args.seed,
           "machine": platform.processor() or platform.machine(), "versions": versions()}
    if args.tours > 0:
        out["tours"] = {}
        for name in ("AntSubgoalsPretrain-v0", "AntSubgoals-v0"):
            study = tour_study(ENVS[name], args.tours, args.seed)
            out["tours"][name] = study
            print(f"\n{name}: grid-level shortest tour {study['mean_moves']:.2f} cell moves on "
                  f"average, {study['p90_moves']:.0f} at the 90th percentile; env steps needed "
                  f"(mean / p90) at T={gym.make(ENVS[name]).unwrapped.max_steps}:")
            for key, val in study["steps"].items():
                print(f"  cell {key:<14} {val['mean']:6.0f} / {val['p90']:4.0f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    for env in envs.values():
        env.close()
    return out


if __name__ == "__main__":
    main()
