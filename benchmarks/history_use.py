"""Does a base model use its history, and is it the task state it uses?

Prints held-out action NLL with the full context vs each step alone, and action accuracy on
steps whose target is fully determined by the last visit (odd colours, partners of the colour
just entered) vs the others.

Usage: python benchmarks/history_use.py --model DIR --dataset FILE [--episodes 300]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from irl_agents.episodes import pad_episodes
from irl_agents.models import load_model
from irl_envs.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--episodes", type=int, default=300)
    args = parser.parse_args()
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
    print(f"action NLL, full context: {float(-(full * mask).sum() / mask.sum()):.3f}")
    print(f"action NLL, each step alone: {float(-(alone * mask).sum() / mask.sum()):.3f}")
    print(f"accuracy, target = partner of the colour just entered: "
          f"{float(correct[odd].float().mean()):.3f}")
    print(f"accuracy, other steps: {float(correct[even].float().mean()):.3f}")


if __name__ == "__main__":
    main()
