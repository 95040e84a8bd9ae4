"""Do a metacontroller's codes contain the subgoal? Probe z_t -> current subgoal label.

The posterior codes (means) of expert episodes are standardised and a linear (or, with
``--mlp``, a one-hidden-layer) classifier is fit to a label at every step, then scored on
held-out episodes against the majority class. For a codebook metacontroller it also prints how
the held-out steps' chosen controllers split over the labels. Labels (``--label``):

- ``subgoal``: the true subgoal (grid: colour pair);
- ``target_cell``: the grid cell of the next target colour in this episode's layout
  (gridworld only; "where to go" rather than "which colour").

Usage: python benchmarks/diagnostics/code_probe.py --meta irl_agents/weights/grid/metacontroller
       [--mlp] [--base irl_agents/weights/grid/base] [--dataset data/grid-pretrain-20k.safetensors]
       [--label subgoal|target_cell]

Backs docs/results/metacontroller.md, "Latent codes: do they mean "go to colour pair k"? (Fig.
A4)" (the probes of z_t) and "Two more attempts at colour codes".
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from irl_agents.discovery import elbo_terms
from irl_agents.episodes import pad_episodes
from irl_agents.models import load_metacontroller, load_model
from irl_agents.reporting import table
from irl_envs.datasets import load_dataset
from irl_envs.grid_logic import colour_cell, layout_from_obs


@torch.no_grad()
def codes_and_labels(base, meta, data, index: np.ndarray, label: str = "subgoal"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior-mean codes and labels of every valid step of ``index``'s episodes."""
    zs, ys = [], []
    shape = data.meta.get("obs_shape")
    if label == "target_cell" and not shape:
        raise ValueError("label 'target_cell' needs a gridworld dataset (meta obs_shape)")
    for start in range(0, len(index), 200):
        batch = pad_episodes(data, index[start : start + 200])
        _, _, post = elbo_terms(base, meta, batch, 0.0, sample=False)
        zs.append(post.z[batch.mask])
        if label == "subgoal":
            y = batch.subgoals
        else:  # the cell of each step's target colour
            cells, _ = layout_from_obs(batch.obs.numpy(), shape[1])
            y = torch.from_numpy(colour_cell(cells, batch.targets.clamp_min(0).numpy()))
        ys.append(y[batch.mask])
    return torch.cat(zs), torch.cat(ys).long()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True)
    p.add_argument("--base", default="irl_agents/weights/grid/base")
    p.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    p.add_argument("--train-episodes", type=int, default=3000)
    p.add_argument("--test-episodes", type=int, default=500)
    p.add_argument("--mlp", action="store_true", help="one hidden layer of 128 instead of linear")
    p.add_argument("--label", choices=["subgoal", "target_cell"], default="subgoal")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    base, meta = load_model(args.base).eval(), load_metacontroller(args.meta).eval()
    data = load_dataset(args.dataset)
    # the first episodes for fitting, the last ones (held out by every training split's tail)
    z_train, y_train = codes_and_labels(base, meta, data, np.arange(args.train_episodes),
                                        args.label)
    z_test, y_test = codes_and_labels(
        base, meta, data, np.arange(data.num_episodes - args.test_episodes, data.num_episodes),
        args.label)
    mean, std = z_train.mean(0), z_train.std(0) + 1e-6
    z_train, z_test = (z_train - mean) / std, (z_test - mean) / std
    classes = int(y_train.max()) + 1
    probe = (nn.Sequential(nn.Linear(z_train.shape[1], 128), nn.ReLU(), nn.Linear(128, classes))
             if args.mlp else nn.Linear(z_train.shape[1], classes))
    opt = torch.optim.Adam(probe.parameters(), lr=0.01 if args.mlp else 0.05)
    for _ in range(1000 if args.mlp else 300):  # full-batch: a few thousand steps of data
        loss = nn.functional.cross_entropy(probe(z_train), y_train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = float((probe(z_test).argmax(-1) == y_test).float().mean())
    majority = max(float((y_test == k).float().mean()) for k in range(classes))
    kind = "MLP" if args.mlp else "linear"
    print(f"{args.meta}: {kind} probe z_t -> {args.label}, held-out accuracy {acc:.3f} "
          f"(majority class {majority:.3f})")
    if meta.cfg.codebook and args.label == "subgoal":
        with torch.no_grad():
            chosen = meta.hyper.select(z_test * std + mean).argmax(-1)
        print(table([{"controller": k, **{f"subgoal {c}": int(((chosen == k) & (y_test == c)).sum())
                                          for c in range(classes)}}
                     for k in range(meta.cfg.codebook)]))


if __name__ == "__main__":
    main()
