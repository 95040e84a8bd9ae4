"""Rate-distortion of metacontrollers (the paper's Fig. 7) from finished ``irl discover`` runs.

Re-scores every given run folder on the same 500 held-out episodes (KL per step = rate,
action NLL per step = distortion, switching F1) and plots frozen vs co-trained runs, filled
markers where switching is aligned (F1 >= 0.9).

Usage: python benchmarks/diagnostics/rate_distortion.py --frozen runs/rd-frozen/alpha-* ...
       --cotrained runs/rd-cotrain/alpha-* --out docs/rate_distortion.png

Backs docs/results/metacontroller.md, "Metacontroller at CPU scale" (Fig. 7,
docs/rate_distortion.png) and "Three seeds at alpha 0.02".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from irl_agents.discovery import score_switching
from irl_agents.episodes import split_episodes
from irl_agents.models import load_metacontroller, load_model
from irl_agents.plots import plot_rate_distortion
from irl_agents.reporting import table
from irl_envs.datasets import load_dataset


def score(folder: Path, data, threshold: float = 0.5) -> dict:
    cfg = json.loads((folder / "summary.json").read_text())["config"]
    base = load_model(folder / "base" if cfg["cotrain"] != "frozen" else cfg["base"]).eval()
    _, val = split_episodes(data.num_episodes, 0.1, cfg["seed"])
    res = score_switching(base, load_metacontroller(folder).eval(), data, val[:500],
                          threshold=threshold)
    return {"alpha": cfg["alpha"], "steps": cfg["steps"], **{k: round(v, 4) for k, v in
                                                             res.items()}, "run": str(folder)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen", nargs="*", default=[])
    parser.add_argument("--cotrained", nargs="*", default=[])
    parser.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    parser.add_argument("--out", default="docs/rate_distortion.png")
    parser.add_argument("--threshold", type=float, default=0.5, help="beta binarisation")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset(args.dataset)
    runs = {}
    for label, folders in (("frozen base", args.frozen), ("co-trained", args.cotrained)):
        if folders:
            runs[label] = [score(Path(f), data, args.threshold) for f in folders]
            print(f"\n{label}\n" + table(sorted(runs[label], key=lambda r: r["alpha"])))
    plot_rate_distortion(runs, args.out)


if __name__ == "__main__":
    main()
