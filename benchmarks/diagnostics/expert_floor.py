"""Best achievable imitation of the gridworld expert by a model that knows the current target.

The expert moves uniformly among the k optimal moves, so a perfect model scores action NLL
E[log k] and accuracy E[1/k] on expert data.

Usage: python benchmarks/diagnostics/expert_floor.py [--episodes 2000] [--seed 0]

Backs docs/results/base_models.md, "Gridworld expert" (the imitation floor of the expert data).
"""

from __future__ import annotations

import argparse

import numpy as np

from irl_envs import grid_logic
from irl_envs.colour_sequence import ColourSequenceVectorEnv
from irl_envs.experts.grid_expert import GridExpert
from irl_envs.tasks import GRID_PRETRAIN_TASKS


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    episodes, seed = args.episodes, args.seed
    venv = ColourSequenceVectorEnv(num_envs=episodes, tasks=GRID_PRETRAIN_TASKS)
    expert = GridExpert(seed=seed)
    venv.reset(seed=seed)
    done = np.zeros(episodes, dtype=bool)
    log_k, inv_k = [], []
    while not done.all():
        core = venv.core
        cost = grid_logic.action_costs(core.cells, core.agent, core.target_cell(), core.g)
        k = (cost == cost.min(1, keepdims=True)).sum(1)
        log_k.append(np.log(k)[~done])
        inv_k.append((1 / k)[~done])
        _, _, terminated, truncated, _ = venv.step(expert.act(venv))
        done |= terminated | truncated
    print(f"action NLL floor {np.concatenate(log_k).mean():.3f} nats, "
          f"accuracy ceiling {np.concatenate(inv_k).mean():.3f} ({episodes} episodes)")


if __name__ == "__main__":
    main()
