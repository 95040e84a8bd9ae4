"""Is target-conditioned navigation learnable fast when the target is *given*?

Trains the grid_ego transformer (d=128, L=4) for 600 steps with the true next colour appended
to every observation as a one-hot (an oracle input no real model gets) and prints the
held-out action NLL every 100 steps (``--eval-every``). Compare with the same model without
the oracle in docs/results/base_models.md.

Usage: python benchmarks/diagnostics/oracle_target.py [--dataset data/grid-pretrain-20k.safetensors]

Backs docs/results/base_models.md, "The default: an object-centric encoder" (the oracle rows)
and "How we got there: the paper's linear embedding and two CNNs plateau at CPU scale".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import Tensor, nn

from irl_agents.episodes import EpisodeBatch, pad_episodes, similar_length_batch, split_episodes
from irl_agents.models import ModelConfig, build_model
from irl_agents.models.encoders import EgocentricGridEncoder, EgocentricObjectEncoder
from irl_envs.datasets import load_dataset

OBS, COLOURS, D = 637, 8, 128


class EgoPlusTarget(nn.Module):
    """An agent-centred encoder plus a linear embedding of the oracle target colour."""

    def __init__(self, encoder: str) -> None:
        super().__init__()
        if encoder == "grid_objects":
            self.ego = EgocentricObjectEncoder((13, 7, 7), D, 16, COLOURS)
        else:
            self.ego = EgocentricGridEncoder((13, 7, 7), D, 32)
        self.target = nn.Linear(COLOURS, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.ego(x[..., :OBS]) + self.target(x[..., OBS:])


def with_target(batch: EpisodeBatch, oracle: bool = True) -> Tensor:
    onehot = nn.functional.one_hot(batch.targets.clamp_min(0), COLOURS).float() * oracle
    return torch.cat([batch.obs, onehot * batch.mask[..., None]], -1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--mlp", choices=["relu", "swiglu"], default="relu")
    parser.add_argument("--oracle", type=int, default=1, help="1: give the target; 0: do not")
    parser.add_argument("--encoder", choices=["grid_ego", "grid_objects"], default="grid_ego")
    parser.add_argument("--eval-every", type=int, default=100, help="validation every N steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset(args.dataset)
    model = build_model(ModelConfig(obs_dim=OBS + COLOURS, action_dim=4, d_model=D, n_layers=4,
                                    n_heads=4, d_mlp=256, mlp=args.mlp))
    model.embed = EgoPlusTarget(args.encoder)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.03)
    train, val = split_episodes(data.num_episodes, 0.05, 0)
    val_batch = pad_episodes(data, val[:256])
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        rng = np.random.default_rng([0, step])
        batch = pad_episodes(data, similar_length_batch(data, train, 64, rng))
        loss, _ = model.loss(with_target(batch, bool(args.oracle)), batch.actions, batch.mask, 0.0)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.eval_every == 0:
            with torch.no_grad():
                _, parts = model.loss(with_target(val_batch, bool(args.oracle)),
                                      val_batch.actions, val_batch.mask)
            print(f"step {step} ({time.perf_counter() - start:.0f} s): val action NLL "
                  f"{float(parts['action_nll']):.3f}, accuracy {float(parts['action_acc']):.3f}")


if __name__ == "__main__":
    main()
