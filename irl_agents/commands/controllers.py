"""``irl controllers``: ground-truth subgoal controllers, success vs insertion layer."""

from __future__ import annotations

import argparse

from irl_agents.commands import add_common, check_options
from irl_agents.commands.options import add_options, from_args
from irl_agents.reporting import table
from irl_envs.atomic import write_json
from irl_envs.families import FAMILIES
from irl_envs.validation import check_device, check_int

_OPTIONS = ("rank", "steps", "eval_episodes", "greedy", "seed", "precision")
"""The fields of ``ControllerConfig`` set on the command line (``layer``: from ``--layers``)."""


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    from irl_agents.controllers import ControllerConfig

    p = sub.add_parser("controllers", help="steer the base model with ground-truth controllers",
                       description="Train one linear controller per subgoal at each layer, "
                                   "switch them on in the true order of the post-training task "
                                   "and report success (the paper's Fig. 4).")
    p.add_argument("--base", "--model", dest="base", required=True, help="base model folder")
    p.add_argument("--dataset", required=True, help="clean expert demonstrations")
    p.add_argument("--env", choices=sorted(FAMILIES), default="grid")
    p.add_argument("--layers", type=int, nargs="*", help="boundaries to sweep (default all)")
    add_options(p, ControllerConfig, only=_OPTIONS)
    p.add_argument("--plot", metavar="PNG", help="write success vs layer")
    add_common(p, device=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from irl_agents.controllers import (
        ControllerConfig,
        evaluate_controllers,
        plot_layer_sweep,
        train_controllers,
    )
    from irl_agents.models import load_model
    from irl_envs.datasets import load_dataset

    check_options(args, {"layers": 0, "rank": 0, "steps": 1, "eval_episodes": 1, "seed": 0})
    check_device(args.device, "--device")
    model, data = load_model(args.base, device=args.device), load_dataset(args.dataset)
    layers = args.layers if args.layers else list(range(model.n_layers + 1))
    for layer in layers:
        check_int("--layers", layer, 0, model.n_layers)  # boundaries of this model
    base = evaluate_controllers(model, None, from_args(ControllerConfig, args, only=_OPTIONS),
                                env=args.env)
    rows = [{"layer": "none", **base}]
    for layer in layers:
        cfg = from_args(ControllerConfig, args, only=_OPTIONS, layer=layer)
        bank, info = train_controllers(model, data, cfg, progress=not args.no_progress)
        rows.append({"layer": layer, **evaluate_controllers(model, bank, cfg, env=args.env),
                     **info})
    print(table(rows))
    if args.plot:
        plot_layer_sweep(rows, args.plot)
    if args.json:
        write_json(args.json, {"rows": rows, "model": args.base, "seed": args.seed})
    return 0
