"""Stable-Baselines3 training throughput on the gridworld: SB3VecEnv vs DummyVecEnv.

The same SB3 algorithm trains on N gridworld environments given to it two ways: as
``DummyVecEnv`` over single environments (``make_vec_env``: each wrapped in ``Monitor``,
stepped one by one in Python) and as :class:`irl_envs.sb3.SB3VecEnv` over the native batched
core (``make_sb3_vec_env``: one numpy step for all N, ``VecMonitor``). Reported: env steps per
second of ``model.learn`` (collection and updates), medians over rounds, and the speed-up as
the median of per-round ratios. Rounds alternate between the two so both see the same machine
load (the reference machine is shared).

Configurations:

- ``env only``: ``VecEnv.step`` with uniform random actions, no learning.
- ``A2C, light policy`` / ``PPO, light policy``: the policy reads each object's (row, col)
  from the one-hot planes (a fixed linear map, :class:`ObjectCoordinates`) into a [64, 64]
  ReLU MLP, so that the learner costs less than the environment: what the adapter is for.
- ``PPO, MlpPolicy``: SB3's default [64, 64] tanh MLP on the raw 637 inputs; its matrix
  products on one thread cost more than the batched env, which bounds the speed-up.

Usage::

    python benchmarks/bench_sb3_grid.py                      # prints a Markdown table
    python benchmarks/bench_sb3_grid.py --json results.json  # also writes the numbers
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

import irl_envs  # noqa: F401  (registers InternalRL/*)
from irl_envs.sb3 import make_sb3_vec_env
from irl_envs.versions import versions

ENV_ID = "InternalRL/ColourSequencePretrain-v0"
POSTTRAIN_ID = "InternalRL/ColourSequence-v0"


class ObjectCoordinates(BaseFeaturesExtractor):
    """Features: the (row, col) of every plane's single marked cell, scaled to [0, 1], i.e.
    where each colour, wall and the agent are. A fixed linear map of the one-hot planes."""

    def __init__(self, observation_space, planes: int = 13, grid: int = 7):
        super().__init__(observation_space, 2 * planes)
        cells = torch.arange(grid * grid)
        coords = torch.stack([cells // grid, cells % grid], 1).float() / (grid - 1)
        self.register_buffer("coords", coords)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs.reshape(-1, self.coords.shape[0]) @ self.coords).view(len(obs), -1)


LIGHT = {"features_extractor_class": ObjectCoordinates, "net_arch": [64, 64],
         "activation_fn": nn.ReLU}
CONFIGS = {
    "env only": None,
    "A2C, light policy": (A2C, {"n_steps": 8, "policy_kwargs": LIGHT}),
    "PPO, light policy": (PPO, {"n_steps": 16, "batch_size": 8192, "n_epochs": 1,
                                "policy_kwargs": LIGHT}),
    "PPO, MlpPolicy": (PPO, {"n_steps": 16, "batch_size": 8192, "n_epochs": 1}),
    "DQN, light policy": (DQN, {"buffer_size": 65536, "learning_starts": 4096, "batch_size": 256,
                                "train_freq": 1, "gradient_steps": 1,
                                "policy_kwargs": {k: v for k, v in LIGHT.items()
                                                  if k != "net_arch"} | {"net_arch": [64, 64]}}),
}


class Runner:
    """One configuration on one VecEnv; ``run(steps)`` returns env steps per second."""

    def __init__(self, config, venv, seed: int) -> None:
        self.venv = venv
        self.rng = np.random.default_rng(seed)
        self.model = None
        if config is None:
            venv.reset()
        else:
            algo, kwargs = config
            self.model = algo("MlpPolicy", venv, seed=seed, device="cpu", **kwargs)

    def run(self, steps: int) -> float:
        if self.model is None:
            n = self.venv.num_envs
            actions = self.rng.integers(0, 4, (max(1, steps // n), n))
            start = time.perf_counter()
            for a in actions:
                self.venv.step(a)
            return actions.size / (time.perf_counter() - start)
        before = self.model.num_timesteps
        start = time.perf_counter()
        self.model.learn(steps, reset_num_timesteps=False)
        return (self.model.num_timesteps - before) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default=ENV_ID, choices=[ENV_ID, POSTTRAIN_ID])
    parser.add_argument("--envs", type=int, default=1024, help="sub-environments N")
    parser.add_argument("--steps", type=int, default=32768, help="env steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if min(args.envs, args.steps, args.rounds) < 1:
        parser.error("--envs, --steps and --rounds must be >= 1")
    torch.set_num_threads(args.threads)  # the same for both sides

    results = {}
    for name in args.configs:
        runners = {
            "DummyVecEnv": Runner(CONFIGS[name], make_vec_env(args.env_id, args.envs,
                                                              seed=args.seed), args.seed),
            "SB3VecEnv": Runner(CONFIGS[name], make_sb3_vec_env(args.env_id, args.envs,
                                                                seed=args.seed), args.seed),
        }
        for runner in runners.values():  # warm-up: first-call overheads out of the timings
            runner.run(args.steps // 4)
        rates: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(args.rounds):
            for key, runner in runners.items():
                rates[key].append(runner.run(args.steps))
        results[name] = {
            "dummy_steps_per_s": statistics.median(rates["DummyVecEnv"]),
            "native_steps_per_s": statistics.median(rates["SB3VecEnv"]),
            "speedup": statistics.median(b / a for a, b in zip(rates["DummyVecEnv"],
                                                                  rates["SB3VecEnv"],
                                                                  strict=True)),
        }
        for runner in runners.values():
            runner.venv.close()

    print(f"{args.env_id}, N={args.envs}, {args.rounds} alternating rounds of {args.steps:,} env "
          f"steps, torch on {args.threads} thread(s); medians over rounds")
    print("\n| configuration | DummyVecEnv steps/s | SB3VecEnv steps/s | speed-up |")
    print("|---|---|---|---|")
    for name, res in results.items():
        print(f"| {name} | {res['dummy_steps_per_s']:,.0f} | {res['native_steps_per_s']:,.0f} | "
              f"{res['speedup']:.1f}x |")
    out = {"results": results, "env_id": args.env_id, "envs": args.envs, "steps": args.steps,
           "rounds": args.rounds, "seed": args.seed, "threads": args.threads,
           "machine": platform.processor() or platform.machine(), "versions": versions()}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    main()
