"""Where does a base model walk into a wrong colour? Teacher-forced, on expert episodes.

For every step of held-out expert episodes this computes the probability the model puts on
*fatal* moves (moves onto a colour that is not the current target), split by phase:

- odd target: the agent just entered colour 2k and must reach its partner 2k+1, which the
  history determines;
- even target: a new colour pair starts (or the episode does); which pair comes next is
  ambiguous from the past alone.

With ``--controller-steps N`` it also trains ground-truth subgoal controllers at ``--layer``
(as ``irl controllers`` does) and reports the same figures with them switched on.

Usage: python benchmarks/diagnostics/fatal_moves.py --model irl_agents/weights/grid/base
       [--dataset data/grid-pretrain-20k.safetensors] [--layer 1] [--controller-steps 500]

Backs docs/results/base_models.md, "Ground-truth controllers: they steer, but not well enough
for the 12-colour task" (where the model walks into a wrong colour).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from irl_agents.controllers import ControllerConfig, train_controllers
from irl_agents.episodes import EpisodeBatch, pad_episodes
from irl_agents.models import load_model
from irl_agents.reporting import table
from irl_envs import grid_logic
from irl_envs.datasets import load_dataset


def fatal_moves(batch: EpisodeBatch, colours: int, grid_size: int) -> torch.Tensor:
    """``(B, T, A)`` bool: action a at step t moves onto a colour other than the target."""
    cells, agent = grid_logic.layout_from_obs(batch.obs.numpy(), grid_size)
    return torch.from_numpy(grid_logic.fatal_moves(cells, agent, batch.targets.numpy(),
                                                   grid_size, colours))


def phase_rows(name: str, logits: torch.Tensor, batch: EpisodeBatch,
               fatal: torch.Tensor) -> list[dict]:
    probs = logits.softmax(-1)
    p_fatal = (probs * fatal).sum(-1)
    correct = probs.argmax(-1) == batch.actions
    rows = []
    for phase, sel in (("odd target (within pair)", batch.targets % 2 == 1),
                       ("even target (new pair)", batch.targets % 2 == 0)):
        s = sel & batch.mask
        rows.append({"model": name, "phase": phase, "steps": int(s.sum()),
                     "mean P(fatal move)": round(float(p_fatal[s].mean()), 4),
                     "accuracy": round(float(correct[s].float().mean()), 3)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    parser.add_argument("--episodes", type=int, default=300, help="last N episodes are scored")
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--controller-steps", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model).eval()
    data = load_dataset(args.dataset)
    batch = pad_episodes(data, np.arange(data.num_episodes - args.episodes, data.num_episodes))
    fatal = fatal_moves(batch, model.config.grid_colours, model.config.obs_shape[1])
    expert = fatal.gather(2, batch.actions.clamp_min(0)[..., None])[..., 0] & batch.mask
    assert not expert.any(), "the expert never makes a fatal move: action convention mismatch"
    with torch.no_grad():
        rows = phase_rows("base", model(batch.obs).logits, batch, fatal)
    if args.controller_steps:
        cfg = ControllerConfig(layer=args.layer, steps=args.controller_steps)
        bank, _ = train_controllers(model, data, cfg, progress=False)
        with torch.no_grad():
            steered = model(batch.obs, controller=lambda e: bank(e, batch.subgoals.clamp_min(0)),
                            layer=args.layer).logits
        rows += phase_rows(f"+ ground-truth controllers @ {args.layer}", steered, batch, fatal)
    print(table(rows))


if __name__ == "__main__":
    main()
