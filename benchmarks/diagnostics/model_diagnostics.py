"""Diagnostics of a gridworld base model on held-out expert episodes.

- Does it use its history? Action NLL with the full context vs each step alone.
- Is it the task state it uses? Accuracy on steps whose target is fully determined by the
  last visit (odd colours, partners of the colour just entered) vs the others.
- How safe is it? Probability it puts on moves that enter a wrong colour (fatal moves).

Usage: python benchmarks/diagnostics/model_diagnostics.py --model DIR --dataset FILE
       [--episodes 300]

Backs docs/results/base_models.md, "How we got there: the paper's linear embedding and two CNNs
plateau at CPU scale" (history use, target-determined steps, fatal moves).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

import irl_envs  # noqa: F401  (registers the environments)
from irl_agents.episodes import pad_episodes
from irl_agents.models import load_model
from irl_envs import grid_logic
from irl_envs.datasets import load_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--episodes", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, data = load_model(args.model).eval(), load_dataset(args.dataset)
    batch = pad_episodes(data, np.arange(data.num_episodes - args.episodes, data.num_episodes))
    b, t, d = batch.obs.shape
    mask = batch.mask
    with torch.no_grad():
        out = model(batch.obs)
        full = model.action_distribution(out).log_prob(batch.actions)
        alone = model.action_distribution(model(batch.obs.reshape(b * t, 1, d)))
        alone = alone.log_prob(batch.actions.reshape(b * t, 1)).reshape(b, t)
    correct = out.logits.argmax(-1) == batch.actions
    odd = (batch.targets % 2 == 1) & mask
    even = (batch.targets % 2 == 0) & mask
    # The step right after entering colour 2k: the agent stands on it, so the target (2k+1)
    # is in the current observation; no memory needed.
    entered_even = torch.zeros_like(mask)
    entered_even[:, 1:] = (batch.targets[:, 1:] != batch.targets[:, :-1]) & mask[:, 1:]
    entered_even &= batch.targets % 2 == 1
    print(f"action NLL, full context: {float(-(full * mask).sum() / mask.sum()):.3f}")
    print(f"action NLL, each step alone: {float(-(alone * mask).sum() / mask.sum()):.3f}")
    print(f"accuracy, target = partner of the colour just entered: "
          f"{float(correct[odd].float().mean()):.3f}")
    print(f"accuracy, other steps: {float(correct[even].float().mean()):.3f}")
    print(f"accuracy, first step on colour 2k (target 2k+1 in view): "
          f"{float(correct[entered_even].float().mean()):.3f}")
    core = gym.make(data.meta["env_id"]).unwrapped.core
    cells, agent = grid_logic.layout_from_obs(batch.obs.numpy(), core.g)
    fatal = grid_logic.fatal_moves(cells, agent, batch.targets.numpy(), core.g, core.o)
    fatal = (out.logits.softmax(-1).numpy() * fatal).sum(-1)[mask.numpy()]
    print(f"probability of a fatal move per step: mean {fatal.mean():.3f}, "
          f"median {np.median(fatal):.3f}, 90th percentile {np.percentile(fatal, 90):.3f}")


if __name__ == "__main__":
    main()
