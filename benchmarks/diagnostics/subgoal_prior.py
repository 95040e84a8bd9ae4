"""How much of the current subgoal the colours already visited reveal, with no look at the scene.

A subgoal probe reads the residual stream at every step of a dataset's episodes. Part of what
it can decode needs no perception of where the agent is heading: the task set's structure. In
the ant's pretraining tasks, for example, the first colour is uniform over four, but once the
first colour is visited only two tasks remain possible for most prefixes. This script scores
two predictors that see only the task structure, on the same steps as ``irl probe``:

- chance: always the most frequent subgoal;
- the Bayes prediction from the prefix: the most frequent subgoal, among episodes of the
  dataset, that follows the same sequence of already visited colours (counted on half of the
  episodes, scored on the other half).

A probe above the prefix prediction decodes something the history of visited colours alone
does not give (the heading, the layout); a probe below it has not learnt even the task
structure. With ``--mlp-steps N`` (ant datasets) an MLP is also fitted on the same halves,
from the current observation in the heading frame, from the prefix, and from both: what a
model that perceives the present step and remembers the visited colours could decode.
Backs docs/results/ant.md, "The heading frame inside the model".

Usage: python benchmarks/diagnostics/subgoal_prior.py \
    --dataset data/ant-pretrain-2k-mean.safetensors
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from irl_envs.datasets import load_dataset


def prefixes(targets: Sequence[int]) -> list[tuple[int, ...]]:
    """Per step, the colours visited so far: the targets before each change of target."""
    out, seen = [], ()
    for t in range(len(targets)):
        if t and targets[t] != targets[t - 1]:
            seen = (*seen, int(targets[t - 1]))
        out.append(seen)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, help="demonstrations with subgoal labels")
    p.add_argument("--episodes", type=int, default=2000, help="episodes used (default 2000)")
    p.add_argument("--mlp-steps", type=int, default=0,
                   help="ant: also fit MLP ceilings for this many steps (default 0: no)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    data = load_dataset(args.dataset)
    n = min(args.episodes, data.num_episodes)
    steps = []  # (episode, prefix, subgoal) for every step
    for e in range(n):
        s, length = int(data.episode_starts[e]), int(data.episode_lengths[e])
        sub = np.asarray(data.subgoals[s:s + length])
        for prefix, label in zip(prefixes(np.asarray(data.targets[s:s + length])), sub,
                                 strict=True):
            steps.append((e, prefix, int(label)))
    fit = [(pre, y) for e, pre, y in steps if e % 2 == 0]
    test = [(pre, y) for e, pre, y in steps if e % 2 == 1]
    if not fit or not test:
        raise SystemExit("--episodes: need at least 2 episodes (half fit, half scored)")
    overall = Counter(y for _, y in fit)
    by_prefix: dict[tuple[int, ...], Counter] = defaultdict(Counter)
    for pre, y in fit:
        by_prefix[pre][y] += 1
    majority = overall.most_common(1)[0][0]
    chance = np.mean([y == majority for _, y in test])
    predict = {pre: c.most_common(1)[0][0] for pre, c in by_prefix.items()}
    hits = [predict.get(pre, majority) == y for pre, y in test]
    by_visited = defaultdict(list)
    for (pre, _), hit in zip(test, hits, strict=True):
        by_visited[len(pre)].append(hit)
    out = {"dataset": args.dataset, "episodes": n, "scored_steps": len(test),
           "chance": round(float(chance), 4), "prefix_bayes": round(float(np.mean(hits)), 4),
           "by_colours_visited": {k: {"share": round(len(v) / len(test), 3),
                                      "accuracy": round(float(np.mean(v)), 4)}
                                  for k, v in sorted(by_visited.items())}}
    if args.mlp_steps:
        out["mlp"] = mlp_ceilings(data, steps, args.mlp_steps, args.seed)
    print(json.dumps(out))


def mlp_ceilings(data, steps: list, train_steps: int, seed: int) -> dict[str, float]:
    """Held-out accuracy of MLPs reading the present observation (heading frame), the prefix
    of visited colours (one-hot per slot), or both."""
    import torch
    from torch import nn

    from irl_envs.ant_heading import heading_frame

    torch.manual_seed(seed)
    n = len(steps)  # episodes are stored back to back: the first n rows are these steps
    obs = heading_frame(np.asarray(data.observations[:n]))
    colours = int(max(y for *_, y in steps)) + 1
    slots = max(len(pre) for _, pre, _ in steps)
    prefix = np.zeros((n, max(slots, 1) * (colours + 1)), np.float32)
    for i, (_, pre, _) in enumerate(steps):
        for j in range(slots):
            prefix[i, j * (colours + 1) + (pre[j] if j < len(pre) else colours)] = 1
    labels = torch.tensor([y for *_, y in steps])
    fit = torch.tensor([e % 2 == 0 for e, *_ in steps])
    inputs = {"obs": obs, "prefix": prefix, "obs+prefix": np.concatenate([obs, prefix], 1)}
    result = {}
    for name, x in inputs.items():
        x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        net = nn.Sequential(nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 256),
                            nn.ReLU(), nn.Linear(256, colours))
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        xf, yf = x[fit], labels[fit]
        for _ in range(train_steps):
            idx = torch.randint(len(xf), (1024,))
            loss = nn.functional.cross_entropy(net(xf[idx]), yf[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = net(x[~fit]).argmax(1)
        result[name] = round(float((pred == labels[~fit]).float().mean()), 4)
    return result


if __name__ == "__main__":
    main()
