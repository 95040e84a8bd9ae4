"""An oracle code space: what internal RL gets if the codes meant "go to colour pair k".

The unsupervised metacontroller's codes name displacements, not subgoals
(docs/results/metacontroller.md). This builds the metacontroller it was meant to discover, to
measure the RL half of the method on its own. The switching unit, history GRU and encoder are
the given metacontroller's, learnt without labels; the decoder is a codebook (``codebook = 4``)
whose four controllers are the ground-truth per-pair controllers of PAPER §4, trained with the
labels at the same boundary. The code z picks controller ``argmax(z_1..z_4)``, so the prior
N(0, I) picks a pair uniformly. The result is an ordinary metacontroller folder for
``irl internal-rl --meta``.

It also reports, on ``--task``, the success of codes from the prior (where internal RL starts)
and of a scripted latent policy that names the pair of the next target colour at every switch:
the best any latent policy can do with this switching unit and these controllers.

Usage: python benchmarks/diagnostics/oracle_codes.py --meta irl_agents/weights/grid/metacontroller
       --out runs/oracle-meta [--base irl_agents/weights/grid/base]
       [--dataset data/grid-pretrain-20k.safetensors] [--steps 500] [--layer L] [--seed 0]
       [--task 0-1-2-3] [--episodes 1024]

Backs docs/results/internal_rl.md, "An oracle code space: with colour codes, internal RL does work".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from irl_agents.controllers import ControllerConfig, train_controllers
from irl_agents.latent_env import LatentCore
from irl_agents.metacontroller import Metacontroller, codebook_metacontroller
from irl_agents.models import BaseModel, load_metacontroller, load_model, save_metacontroller
from irl_agents.raw_batch import make_raw_batch
from irl_envs.datasets import load_dataset


@torch.no_grad()
def latent_success(base: BaseModel, oracle: Metacontroller, task: str, episodes: int,
                   seed: int, scripted: bool) -> float:
    """Success on ``task`` with codes from N(0, I), or naming the next target's pair."""
    core = LatentCore(base, oracle, make_raw_batch("grid", "posttrain", episodes, task))
    core.reset(np.arange(episodes), [seed + i for i in range(episodes)])
    gen = torch.Generator().manual_seed(seed)
    colours = [int(c) for c in task.split("-")]
    need = np.arange(episodes)
    while len(need) or core.running.any():
        if len(need):
            z = torch.randn(len(need), oracle.cfg.n_z, generator=gen)
            if scripted:
                pairs = [colours[min(i, len(colours) - 1)] // 2 for i in core.raw.progress()[need]]
                z = 3.0 * torch.nn.functional.one_hot(torch.as_tensor(pairs), z.shape[1]).float()
            core.begin(need, z.numpy())
        stopped = core.raw_step()
        need = stopped[~(core.terminated[stopped] | core.truncated[stopped])]
    return float(np.mean([core.info(i)["is_success"] for i in range(episodes)]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True, help="metacontroller whose switching unit is used")
    p.add_argument("--out", required=True)
    p.add_argument("--base", default="irl_agents/weights/grid/base")
    p.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    p.add_argument("--steps", type=int, default=500, help="ground-truth controller steps")
    p.add_argument("--layer", type=int, default=None,
                   help="boundary of the controllers (default: the metacontroller's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="0-1-2-3", help="task for the prior and scripted success")
    p.add_argument("--episodes", type=int, default=1024)
    args = p.parse_args(argv)
    start = time.perf_counter()
    base, meta = load_model(args.base), load_metacontroller(args.meta)
    data = load_dataset(args.dataset)
    layer = meta.cfg.layer if args.layer is None else args.layer
    bank, info = train_controllers(base, data, ControllerConfig(
        layer=layer, rank=meta.cfg.rank, steps=args.steps, seed=args.seed), progress=False)
    oracle = codebook_metacontroller(meta, bank, write_layer=layer)
    save_metacontroller(oracle, args.out, extra={
        "oracle": {"switching_from": args.meta, "controller_steps": args.steps, "layer": layer,
                   "seed": args.seed, "controller_nll": info["final_action_nll"]}})
    print(f"oracle metacontroller -> {args.out}; ground-truth controller NLL "
          f"{info['final_action_nll']:.3f}")
    for name, scripted in (("prior codes", False), ("scripted: next target's pair", True)):
        rate = latent_success(base.eval(), oracle.eval(), args.task, args.episodes,
                              10_000_000 + args.seed, scripted)
        print(f"{args.task}, {name}: success {rate:.3f} ({args.episodes} episodes)")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
