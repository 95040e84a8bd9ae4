"""How much of a metacontroller's action-NLL gain do its codes carry?

On held-out expert episodes, the frozen base model's action NLL per step is measured with:

- ``own codes``: the posterior-mean codes of the episode itself (the trained behaviour);
- ``shuffled codes``: the code sequence of another episode (rolled by one in the batch);
- ``zero code``: z = 0 at every step (the decoder's code-independent controller);
- ``no controller``: the unsteered base model;
- ``own codes, bias part`` / ``own codes, state part``: own codes, with ``U_t`` applied only
  to the mean residual of the batch (``e + U_t e_mean``: a push that ignores the state) or
  only to the state's deviation from it (``e + U_t (e - e_mean)``).

If "zero code" is as good as "own codes", the gain is code-independent and the codes carry
nothing the decoder uses. If the bias part alone gives most of the gain, the codes act as
state-independent pushes (e.g. "go up"), not as "attend to colour k".

Usage: python benchmarks/diagnostics/code_ablation.py --meta DIR [--base DIR] [--dataset FILE]
       [--episodes 500]

Backs docs/results/metacontroller.md, "Latent codes: do they mean "go to colour pair k"? (Fig.
A4)" (the ablation table) and the ant's metacontroller in docs/results/ant.md, "Ant-pinpad: the
pipeline at CPU scale".
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from irl_agents.episodes import pad_episodes
from irl_agents.models import load_metacontroller, load_model
from irl_envs.datasets import load_dataset


@torch.no_grad()
def ablation_nll(base, meta, batch) -> dict[str, float]:
    """Action NLL per step of ``batch`` under the four code sources."""
    layer, mask = meta.cfg.layer, batch.mask
    codes: dict[str, torch.Tensor] = {}

    def own(e):
        codes["z"] = meta.posterior(e, mask, sample=False).z
        return meta.decode(codes["z"])(e)

    out = {"own codes": base.loss(batch.obs, batch.actions, mask, controller=own,
                                  layer=layer)[1]["action_nll"]}
    shuffled = codes["z"].roll(1, dims=0)
    for name, z in (("shuffled codes", shuffled), ("zero code", torch.zeros_like(shuffled))):
        out[name] = base.loss(batch.obs, batch.actions, mask, layer=layer,
                              controller=lambda e, z=z: meta.decode(z)(e))[1]["action_nll"]
    out["no controller"] = base.loss(batch.obs, batch.actions, mask)[1]["action_nll"]
    own_ctrl = meta.decode(codes["z"])
    for name, part in (("own codes, bias part", lambda e, m: m.expand_as(e)),
                       ("own codes, state part", lambda e, m: e - m)):

        def split(e, part=part):
            mean = e[mask].mean(0)
            return e + own_ctrl(part(e, mean)) - part(e, mean)

        out[name] = base.loss(batch.obs, batch.actions, mask, controller=split,
                              layer=layer)[1]["action_nll"]
    return {k: float(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True)
    p.add_argument("--base", default="irl_agents/weights/grid/base")
    p.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    p.add_argument("--episodes", type=int, default=500)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    base, meta = load_model(args.base).eval(), load_metacontroller(args.meta).eval()
    data = load_dataset(args.dataset)
    index = np.arange(data.num_episodes - args.episodes, data.num_episodes)  # held out
    rows, weights = [], []
    for start in range(0, len(index), 100):
        batch = pad_episodes(data, index[start : start + 100])
        rows.append(ablation_nll(base, meta, batch))
        weights.append(int(batch.mask.sum()))
    w = np.asarray(weights, dtype=float) / sum(weights)
    result = {k: round(float(sum(r[k] * wi for r, wi in zip(rows, w, strict=True))), 4)
              for k in rows[0]}
    print(json.dumps({"meta": args.meta, "dataset": args.dataset, **result}))


if __name__ == "__main__":
    main()
