"""``irl discover``: train metacontrollers (one, or an alpha sweep) and score switching."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from irl_agents.commands import add_common, add_overwrite
from irl_agents.reporting import table
from irl_envs.atomic import write_json


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.discovery import DiscoverConfig

    d = DiscoverConfig()
    p = sub.add_parser("discover", help="train the metacontroller (unsupervised)",
                       description="Train a metacontroller on a frozen (or co-trained) base "
                                   "model and score its switching against subgoal boundaries.")
    p.add_argument("--base", required=True, help="pretrained base model folder")
    p.add_argument("--dataset", required=True, help="demonstrations")
    p.add_argument("--out", default=d.out_dir,
                   help="output folder (a run with the same settings there is continued)")
    p.add_argument("--alpha", type=float, nargs="+", default=[d.alpha],
                   help="KL weight(s); several values run a sweep into OUT/alpha-A")
    p.add_argument("--layer", type=int, default=None, help="boundary (default L/2)")
    p.add_argument("--kl-warmup", type=int, default=d.kl_warmup,
                   help="steps of linear KL-weight warm-up from 0 to alpha")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--rank", type=int, default=d.rank)
    p.add_argument("--n-z", type=int, default=d.n_z)
    p.add_argument("--force-switch", action="store_true", help="ablation: beta = 1 always")
    p.add_argument("--embedding", choices=["global", "per_step"], default=d.embedding,
                   help="encoder's non-causal input: one episode summary (paper) or per step")
    p.add_argument("--codebook", type=int, default=d.codebook, metavar="K",
                   help="decoder: 0 = continuous hypernetwork (paper), K > 0 = one of K "
                        "learned controllers chosen by z")
    p.add_argument("--cotrain", choices=["frozen", "pretrained", "scratch"], default=d.cotrain)
    p.add_argument("--plot", metavar="PNG", help="write rate (KL) vs distortion (action NLL)")
    p.add_argument("--traces", metavar="PNG",
                   help="write beta traces of 5 held-out episodes (last alpha)")
    add_overwrite(p)
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.discovery import DiscoverConfig, discover

    def config(alpha: float) -> DiscoverConfig:
        out = Path(args.out) if len(args.alpha) == 1 else Path(args.out) / f"alpha-{alpha:g}"
        return DiscoverConfig(base=args.base, dataset=args.dataset, out_dir=str(out),
                              alpha=alpha, layer=args.layer, kl_warmup=args.kl_warmup,
                              steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                              rank=args.rank, n_z=args.n_z, force_switch=args.force_switch,
                              embedding=args.embedding, codebook=args.codebook,
                              cotrain=args.cotrain, seed=args.seed, overwrite=args.overwrite,
                              progress=not args.no_progress)

    configs = [config(alpha) for alpha in args.alpha]  # every setting checked before any work
    rows = []
    for cfg in configs:
        alpha, out = cfg.alpha, Path(cfg.out_dir)
        summary = discover(cfg)
        rows.append({"alpha": alpha, **{k: round(v, 4) for k, v in summary["alignment"].items()},
                     "seconds": summary["seconds"], "out": str(out)})
    print(table(rows))
    if args.plot:
        from irl_agents.plots import plot_rate_distortion

        plot_rate_distortion({args.cotrain: rows}, args.plot)
    if args.traces:
        from irl_agents.discovery import load_metacontroller, plot_beta_traces
        from irl_agents.episodes import split_episodes
        from irl_agents.models import load_model
        from irl_envs.datasets import load_dataset

        data = load_dataset(args.dataset)
        base = load_model(out / "base" if args.cotrain != "frozen" else args.base)
        _, held_out = split_episodes(data.num_episodes, 0.1, args.seed)  # as discover() does
        plot_beta_traces(base, load_metacontroller(out).eval(), data, held_out[:5], args.traces)
    if args.json:
        write_json(args.json, {"rows": rows, "config": dataclasses.asdict(cfg)})
    return 0

