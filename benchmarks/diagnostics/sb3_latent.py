"""Internal RL with an off-the-shelf Stable-Baselines3 algorithm on the latent-action env.

Runs SB3 PPO (or sb3-contrib RecurrentPPO) on ``LatentVecEnv`` over the shipped gridworld
base model and a metacontroller (default: the shipped one; ``--meta`` any folder, e.g. segment
codes) on the post-training task or one ``--task``, and prints the success rate per block of
finished episodes: the same problem ``irl internal-rl`` solves with the paper's critic-free
PPO, through SB3's generic interface.

Usage: python benchmarks/diagnostics/sb3_latent.py [--algo PPO|RecurrentPPO] [--episodes 10000]
       [--seed 0] [--base DIR] [--meta DIR] [--task 0-1-2-3]

Backs docs/results/internal_rl.md, "Internal RL at CPU scale" and "Without labels: codes named
by where a segment ends" (SB3 PPO on the latent env).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from irl_agents.latent_env import LatentVecEnv
from irl_agents.models import load_metacontroller, load_model
from irl_agents.raw_batch import make_raw_batch
from irl_agents.reporting import table
from irl_agents.shipped import shipped


class EpisodeBudget(BaseCallback):
    """Records ``is_success`` of finished episodes; stops at the episode budget."""

    def __init__(self, episodes: int) -> None:
        super().__init__()
        self.budget, self.success = episodes, []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done:
                self.success.append(bool(info["is_success"]))
        return len(self.success) < self.budget


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["PPO", "RecurrentPPO"], default="PPO")
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=str(shipped("grid", "base")))
    parser.add_argument("--meta", default=str(shipped("grid", "metacontroller")))
    parser.add_argument("--task", default=None, help="one task, e.g. 0-1-2-3 (default: the set)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base, meta = load_model(args.base), load_metacontroller(args.meta)
    venv = LatentVecEnv(base.eval(), meta.eval(), make_raw_batch("grid", "posttrain",
                                                                 args.num_envs, args.task))
    venv.seed(args.seed)
    if args.algo == "PPO":
        from stable_baselines3 import PPO as cls
        policy = "MlpPolicy"
    else:
        from sb3_contrib import RecurrentPPO as cls
        policy = "MlpLstmPolicy"
    model = cls(policy, venv, n_steps=16, batch_size=256, seed=args.seed, device="cpu")
    budget = EpisodeBudget(args.episodes)
    start = time.perf_counter()
    model.learn(total_timesteps=10**9, callback=budget)
    seconds = time.perf_counter() - start
    s = np.asarray(budget.success[: args.episodes], dtype=float)
    block = max(1, len(s) // 10)
    rows = [{"episodes": f"{i * block}-{(i + 1) * block}",
             "success_rate": round(float(s[i * block:(i + 1) * block].mean()), 4)}
            for i in range(len(s) // block)]
    print(table(rows))
    print(f"{args.algo}, {len(s)} episodes, {seconds:.0f} s")


if __name__ == "__main__":
    main()
