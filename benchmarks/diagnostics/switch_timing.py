"""Is the switching unit or the code space what caps a scripted latent policy?

A scripted policy names the pair of the next target colour at every new segment, over a
codebook metacontroller (segment codes or oracle codes). It runs twice on the same layouts:
once switching where the metacontroller's gate fires (what internal RL gets), once switching
exactly when a pair is completed (ground-truth timing). For the gate it also reports how often
it fired within one step of a completed pair, and how often it fired elsewhere.

Usage: python benchmarks/diagnostics/switch_timing.py --meta runs/i18/seg-split
       --base irl_agents/weights/grid/scaling/relabel-073M --task 0-1-2-3 [--episodes 512]

Backs docs/results/internal_rl.md, "Issue 18".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from irl_agents.latent_env import LatentCore
from irl_agents.models import load_metacontroller, load_model
from irl_agents.raw_batch import make_raw_batch
from irl_agents.reporting import table


def pair_codes(meta, pairs: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Codes that select controller ``perm[pair]`` of a codebook decoder."""
    return meta.hyper.selecting_codes()[perm[pairs]].numpy()


@torch.no_grad()
def run(base, meta, task: str, episodes: int, seed: int, truth_timing: bool,
        perm: np.ndarray, threshold: float, greedy: bool = False) -> dict:
    colours = [int(c) for c in task.split("-")]
    core = LatentCore(base, meta, make_raw_batch("grid", "posttrain", episodes, task),
                      threshold=1.0 if truth_timing else threshold, z_bound=1e6, greedy=greedy)
    rows = np.arange(episodes)
    core.reset(rows, [seed + i for i in range(episodes)])

    def next_pairs(r):
        return np.array([colours[min(i, len(colours) - 1)] // 2 for i in core.raw.progress()[r]])

    core.begin(rows, pair_codes(meta, next_pairs(rows), perm))
    fired_at_pair = fired_elsewhere = pairs_done = 0
    while core.running.any():
        before = core.raw.progress().copy()
        stopped = core.raw_step()
        after = core.raw.progress()
        done = core.terminated | core.truncated
        completed = np.flatnonzero((after > before) & (after % 2 == 0) & ~done)
        pairs_done += len(completed)
        switched = stopped[~done[stopped]]
        if truth_timing:  # a saturated gate (beta = 1.0) still stops a row: restart it too
            switched = np.union1d(completed, switched)
        else:
            fired_at_pair += len(np.intersect1d(switched, completed))
            fired_elsewhere += len(np.setdiff1d(switched, completed))
        if len(switched):
            core.begin(switched, pair_codes(meta, next_pairs(switched), perm))
    success = np.mean([core.info(i)["is_success"] for i in range(episodes)])
    out = {"timing": "ground truth" if truth_timing else "gate", "success": round(success, 3),
           "mean colours": round(float(core.raw.progress().mean()), 2)}
    if not truth_timing:
        out |= {"gate fired at a completed pair": round(fired_at_pair / max(pairs_done, 1), 3),
                "gate fired elsewhere / episode": round(fired_elsewhere / episodes, 3)}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True,
                   help="codebook metacontroller (segment or oracle codes)")
    p.add_argument("--base", default="irl_agents/weights/grid/base")
    p.add_argument("--task", default="0-1-2-3")
    p.add_argument("--episodes", type=int, default=512)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--perm", default=None,
                   help="controller of each pair, e.g. 3-0-1-2 (default: from the metacontroller"
                        "'s segment-code contingency, else the identity)")
    p.add_argument("--seed", type=int, default=10_000_000)
    p.add_argument("--greedy", action="store_true",
                   help="take the base model's most likely raw action instead of sampling it")
    args = p.parse_args(argv)
    base, meta = load_model(args.base).eval(), load_metacontroller(args.meta).eval()
    summary = Path(args.meta) / "summary.json"  # written by irl segment-codes
    if args.perm:
        perm = np.array([int(x) for x in args.perm.split("-")])
    elif summary.is_file() and "contingency" in json.loads(summary.read_text()):
        # the group that holds most of each pair's steps (labels used only to script)
        perm = np.asarray(json.loads(summary.read_text())["contingency"]).argmax(0)
    else:
        perm = np.arange(meta.cfg.codebook)
    rows = [run(base, meta, args.task, args.episodes, args.seed, truth, perm, args.threshold,
                args.greedy) for truth in (False, True)]
    decoding = "argmax" if args.greedy else "sampled"
    print(f"{args.task}, scripted codes (controller per pair {perm.tolist()}), {decoding} actions:")
    print(table(rows))


if __name__ == "__main__":
    main()
