"""Do a metacontroller's first codes say *where* to go? Regress z_0 -> target offset.

At the first step of held-out expert episodes (where the first code is chosen), a linear
regression from the posterior-mean code z_0 to the first target's offset from the agent
(dx, dy, in cells: egocentric) and to its absolute cell (x, y) is fit on the first 3,000
episodes and scored by R^2 on the last 500. Gridworld datasets only. For a codebook
metacontroller it also prints, per controller, how often z_0 chooses it and the mean offset of
the target then.

Usage: python benchmarks/diagnostics/code_offset.py --meta DIR [--base DIR] [--dataset FILE]

Backs docs/results/metacontroller.md, "Latent codes: do they mean "go to colour pair k"? (Fig.
A4)" (R^2 of the target's offset) and "Two more attempts at colour codes".
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from irl_agents.discovery import elbo_terms
from irl_agents.episodes import pad_episodes
from irl_agents.models import load_metacontroller, load_model
from irl_agents.reporting import table
from irl_envs.datasets import load_dataset
from irl_envs.grid_logic import colour_cell, layout_from_obs


@torch.no_grad()
def first_codes(base, meta, data, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``z_0`` and ``(dx, dy, x, y)`` of the first target, per episode of ``index``."""
    g = data.meta["obs_shape"][1]
    zs, ys = [], []
    for start in range(0, len(index), 200):
        batch = pad_episodes(data, index[start : start + 200])
        _, _, post = elbo_terms(base, meta, batch, 0.0, sample=False)
        cells, agent = layout_from_obs(batch.obs[:, 0].numpy(), g)
        target = torch.from_numpy(colour_cell(cells, batch.targets[:, 0].numpy()))
        agent = torch.from_numpy(agent)
        zs.append(post.z[:, 0])
        ys.append(torch.stack([target % g - agent % g, target // g - agent // g,
                               target % g, target // g], 1).float())
    return torch.cat(zs), torch.cat(ys)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True)
    p.add_argument("--base", default="irl_agents/weights/grid/base")
    p.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    p.add_argument("--train-episodes", type=int, default=3000, help="the first N are fitted on")
    p.add_argument("--test-episodes", type=int, default=500, help="the last N are scored")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    base, meta = load_model(args.base).eval(), load_metacontroller(args.meta).eval()
    data = load_dataset(args.dataset)
    n = data.num_episodes
    z, y = first_codes(base, meta, data, np.arange(args.train_episodes))
    zt, yt = first_codes(base, meta, data, np.arange(n - args.test_episodes, n))
    ones = torch.ones(len(z), 1)
    w = torch.linalg.lstsq(torch.cat([z, ones], 1), y).solution
    pred = torch.cat([zt, torch.ones(len(zt), 1)], 1) @ w
    r2 = (1 - ((pred - yt) ** 2).mean(0) / yt.var(0)).tolist()
    print(json.dumps({"meta": args.meta, "dataset": args.dataset,
                      **{f"r2_{k}": round(v, 3) for k, v in zip(["dx", "dy", "x", "y"], r2,
                                                                strict=True)}}))
    if meta.cfg.codebook:
        chosen = meta.hyper.select(zt).argmax(-1)
        print(table([{"controller": k, "episodes": int((chosen == k).sum()),
                      "mean dx": round(float(yt[chosen == k, 0].mean()), 2),
                      "mean dy": round(float(yt[chosen == k, 1].mean()), 2),
                      "P(dy < 0)": round(float((yt[chosen == k, 1] < 0).float().mean()), 2)}
                     for k in range(meta.cfg.codebook)]))


if __name__ == "__main__":
    main()
