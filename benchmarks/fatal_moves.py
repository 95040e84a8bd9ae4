"""Where does a base model walk into a wrong colour? Teacher-forced, on expert episodes.

For every step of held-out expert episodes this computes the probability the model puts on
*fatal* moves (moves onto a colour that is not the current target), split by phase:

- odd target: the agent just entered colour 2k and must reach its partner 2k+1, which the
  history determines;
- even target: a new colour pair starts (or the episode does); which pair comes next is
  ambiguous from the past alone.

With ``--controller-steps N`` it also trains ground-truth subgoal controllers at ``--layer``
(as ``irl controllers`` does) and reports the same figures with them switched on.

Usage: python benchmarks/fatal_moves.py --model irl_agents/weights/grid/base
       [--dataset data/grid-pretrain-20k.safetensors] [--layer 1] [--controller-steps 500]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from irl_agents.controllers import ControllerConfig, train_controllers
from irl_agents.episodes import EpisodeBatch, pad_episodes
from irl_agents.models import load_model
from irl_agents.reporting import table
from irl_envs.datasets import load_dataset
from irl_envs.grid_logic import DELTAS


def fatal_moves(batch: EpisodeBatch, colours: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """``(B, T, A)`` bool: action a at step t moves onto a colour other than the target."""
    c, g, _ = shape
    planes = batch.obs.view(*batch.obs.shape[:2], c, g * g)
    agent = planes[:, :, -1].argmax(-1)
    r, q = agent // g, agent % g
    colour_at = planes[:, :, :colours].argmax(2)
    occupied = planes[:, :, :colours].sum(2) > 0
    out = torch.zeros(*batch.obs.shape[:2], len(DELTAS), dtype=torch.bool)
    for a, (dr, dq) in enumerate(DELTAS.tolist()):
        rr, qq = r + dr, q + dq
        inside = (rr >= 0) & (rr < g) & (qq >= 0) & (qq < g)
        cell = (rr.clamp(0, g - 1) * g + qq.clamp(0, g - 1))[..., None]
        out[..., a] = (occupied.gather(2, cell)[..., 0] & inside
                       & (colour_at.gather(2, cell)[..., 0] != batch.targets))
    return out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    parser.add_argument("--episodes", type=int, default=300, help="last N episodes are scored")
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--controller-steps", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model).eval()
    data = load_dataset(args.dataset)
    shape = tuple(model.config.obs_shape)
    batch = pad_episodes(data, np.arange(data.num_episodes - args.episodes, data.num_episodes))
    fatal = fatal_moves(batch, model.config.grid_colours, shape)
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
