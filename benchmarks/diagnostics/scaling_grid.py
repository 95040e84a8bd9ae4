"""The gridworld base model's scaling curve: what each training milestone can do
(docs/results.md, "Base-model compute campaign (grid)", and its page docs/scaling_grid.md).

A pretraining run with ``--milestones`` keeps its model at those steps
(``RUN/milestones/step-NNNNNNNN/``). For each milestone this measures, and writes next to it
as ``scaling.json`` (skipped when present, so the script resumes):

- held-out action NLL (recorded by the run itself), tokens seen and training hours;
- linear-probe accuracy of the current subgoal at every layer boundary;
- ground-truth controllers (one per colour pair, trained on ``--dataset``) at each of
  ``--layers``: success on the post-training task 0-1-2-3-4-5-6-7-0-1-2-3 with sampled and
  argmax raw actions, on the pretraining tasks and on ``SEEN_12`` (twelve colours, every
  transition seen in pretraining) with sampled actions, and success per colour pair split by
  how the pair is entered: from the start, through a transition seen in pretraining, or
  through an unseen one (1->2, 3->4, 5->6, 7->0).

``table`` prints the measures as Markdown, ``plot`` draws the curves of one or more runs
against training tokens (``docs/scaling_grid.png``), ``ship`` copies chosen milestones into
``irl_agents/weights/grid/scaling`` with an ``index.json`` of their measures. Commands:

    python benchmarks/diagnostics/scaling_grid.py eval runs/grid-scale \
        --dataset data/grid-pretrain-20k.safetensors
    python benchmarks/diagnostics/scaling_grid.py table runs/grid-scale runs/grid-relabel
    python benchmarks/diagnostics/scaling_grid.py plot runs/grid-scale runs/grid-relabel
    python benchmarks/diagnostics/scaling_grid.py ship runs/grid-scale:1000,4000,16000,40000 \
        runs/grid-relabel:28000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from irl_agents.controllers import ControllerConfig, evaluate_controllers, train_controllers
from irl_agents.models import load_model
from irl_agents.probe import probe_subgoals
from irl_agents.reporting import table
from irl_envs.atomic import write_json

SEEN_12 = (0, 1, 4, 5, 0, 1, 6, 7, 2, 3, 0, 1)
"""A task as long as the post-training task whose every transition occurs in pretraining:
it separates the cost of length from the cost of unseen transitions."""
ROLL_KEYS = ("success_rate", "mean_progress", "colour_rate", "start_rate", "seen_rate",
             "unseen_rate")


def milestones(run: Path) -> list[Path]:
    """The milestone model folders of a pretraining run, in step order."""
    return sorted(p for p in (run / "milestones").glob("step-*") if p.is_dir())


def evaluate_milestone(folder: Path, data, layers: list[int], episodes: int,
                       controller_steps: int, seed: int) -> dict:
    """Every measure of one milestone (see module docstring)."""
    start = time.perf_counter()
    model = load_model(folder)
    extra = json.loads((folder / "config.json").read_text())["extra"]
    probe = probe_subgoals(model, data, episodes=1500, seed=seed)
    seconds = extra.get("train_seconds")
    row = {"step": extra.get("step"), "tokens_seen": extra.get("tokens_seen"),
           "train_hours": seconds / 3600 if seconds is not None else None,
           "val_action_nll": extra.get("val_action_nll"),
           "val_action_acc": extra.get("val_action_acc"),
           "params": model.num_params(), "probe": probe.accuracy, "probe_chance": probe.chance,
           "controllers": {}}
    for layer in layers:
        cfg = ControllerConfig(layer=layer, steps=controller_steps, eval_episodes=episodes,
                               seed=seed)
        bank, info = train_controllers(model, data, cfg, progress=False)
        res = {"train_nll": info["final_action_nll"]}
        for name, task_set, task, greedy in (("post_sampled", "posttrain", None, False),
                                             ("post_greedy", "posttrain", None, True),
                                             ("pre_sampled", "pretrain", None, False),
                                             ("seen12_sampled", "posttrain", SEEN_12, False)):
            cfg.greedy = greedy
            out = evaluate_controllers(model, bank, cfg, task_set=task_set, task=task)
            res[name] = {k: out[k] for k in ROLL_KEYS}
        row["controllers"][str(layer)] = res
        print(f"  {folder.name} layer {layer}: post sampled "
              f"{res['post_sampled']['success_rate']:.3f} greedy "
              f"{res['post_greedy']['success_rate']:.3f}, pre sampled "
              f"{res['pre_sampled']['success_rate']:.3f}", flush=True)
    best = max(row["controllers"].values(), key=lambda r: r["post_sampled"]["success_rate"])
    row["best_layer"] = int(max(row["controllers"], key=lambda k: row["controllers"][k]
                                ["post_sampled"]["success_rate"]))
    row["best"] = best
    row["eval_seconds"] = round(time.perf_counter() - start, 1)
    return row


def cmd_eval(args: argparse.Namespace) -> None:
    from irl_envs.datasets import load_dataset

    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    for run in args.runs:
        for folder in milestones(Path(run)):
            target = folder / "scaling.json"
            if target.exists() or (args.steps and int(folder.name[5:]) not in args.steps):
                continue
            row = evaluate_milestone(folder, data, args.layers, args.episodes,
                                     args.controller_steps, args.seed)
            write_json(target, row | {"dataset": args.dataset, "seed": args.seed})
            print(f"{run} {folder.name}: val NLL {row['val_action_nll']}, best layer "
                  f"{row['best_layer']} post {row['best']['post_sampled']['success_rate']:.3f} "
                  f"({row['eval_seconds']:.0f} s)", flush=True)


def load_rows(run: Path) -> list[dict]:
    return [json.loads((f / "scaling.json").read_text()) for f in milestones(run)
            if (f / "scaling.json").exists()]


def pair_rate(row: dict, key: str) -> float:
    """Per-pair success entered through a seen (``SEEN_12``, else the pretraining tasks) or an
    unseen transition (the post-training task), at the best boundary."""
    if key == "unseen_rate":
        return row["best"]["post_sampled"][key]
    return row["best"].get("seen12_sampled", row["best"]["pre_sampled"])[key]


def fmt(x: float | None, spec: str = ".3f") -> str:
    """``x`` formatted, or "-" where a measure is missing (a pair never reached)."""
    return "-" if x is None else format(x, spec)


def cmd_table(args: argparse.Namespace) -> None:
    """The measures of every evaluated milestone as one Markdown table."""
    rows = []
    for run in args.runs:
        for r in load_rows(Path(run)):
            b = r["best"]
            hours, tokens = r["train_hours"], r["tokens_seen"]
            rows.append({
                "run": Path(run).name, "step": r["step"],
                "tokens (M)": fmt(tokens and tokens / 1e6, ".0f"), "CPU-h": fmt(hours, ".2f"),
                "val NLL": fmt(r["val_action_nll"]),
                "probes by boundary": " ".join(f"{p:.2f}" for p in r["probe"]),
                "layer": r["best_layer"],
                "post sampled": fmt(b["post_sampled"]["success_rate"]),
                "post argmax": fmt(b["post_greedy"]["success_rate"]),
                "pre sampled": fmt(b["pre_sampled"]["success_rate"]),
                "SEEN_12 sampled": fmt(b.get("seen12_sampled", {}).get("success_rate")),
                "pair: start / seen / unseen": " / ".join(
                    fmt(x, ".2f") for x in (b["post_sampled"]["start_rate"],
                                            pair_rate(r, "seen_rate"),
                                            b["post_sampled"]["unseen_rate"]))})
    print(table(rows))


def cmd_ship(args: argparse.Namespace) -> None:
    """Copy chosen milestones into a weights folder with an ``index.json`` of their measures."""
    import shutil

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for spec in args.milestones:
        run, _, steps = spec.partition(":")
        for step in steps.split(","):
            src = Path(run) / "milestones" / f"step-{int(step):08d}"
            extra = json.loads((src / "config.json").read_text())["extra"]
            recipe = "relabel" if extra["pretrain"].get("stream_relabel") else "expert"
            name = f"{recipe}-{extra['tokens_seen'] / 1e6:03.0f}M"
            (out / name).mkdir(exist_ok=True)
            for f in ("config.json", "model.safetensors"):
                shutil.copyfile(src / f, out / name / f)
            entry = {"folder": name, "run": Path(run).name, "step": extra["step"],
                     "tokens_seen": extra["tokens_seen"],
                     "train_hours": round(extra["train_seconds"] / 3600, 3),
                     "val_action_nll": round(extra["val_action_nll"], 4), "data": recipe}
            if (src / "scaling.json").exists():
                row = json.loads((src / "scaling.json").read_text())
                entry |= {"best_layer": row["best_layer"],
                          "probe": [round(p, 3) for p in row["probe"]]} | {
                    f"{k}_success": v["success_rate"] and round(v["success_rate"], 3)
                    for k, v in row["best"].items() if isinstance(v, dict)}
            index.append(entry)
    write_json(out / "index.json", {"about": "milestones of the grid scaling curve "
                                    "(docs/scaling_grid.md)", "checkpoints": index})
    print(f"wrote {len(index)} checkpoints to {out}")


PLOT_LABELS = {"post_sampled": "post-training, sampled", "post_greedy": "post-training, argmax",
               "seen12_sampled": "SEEN_12, sampled"}


def cmd_plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for k, run in enumerate(args.runs):
        rows = load_rows(Path(run))
        if not rows:
            continue
        name = args.labels[k] if args.labels else Path(run).name
        colour = f"C{k}"  # one colour per run, one line style per measure
        x = [r["tokens_seen"] or r["step"] or 1 for r in rows]  # models without a run log
        axes[0].plot(x, [r["val_action_nll"] for r in rows], marker="o", color=colour, label=name)
        axes[1].plot(x, [max(r["probe"][1:]) for r in rows], marker="o", color=colour, label=name)
        for key, style in (("post_sampled", "-"), ("post_greedy", "--"), ("seen12_sampled", ":")):
            y = [r["best"].get(key, {}).get("success_rate") for r in rows]
            axes[2].plot(x, [float("nan") if v is None else v for v in y], style, marker="o",
                         color=colour, label=f"{name}: {PLOT_LABELS[key]}")
        for key, style in (("seen_rate", ":"), ("unseen_rate", "-")):
            axes[3].plot(x, [pair_rate(r, key) for r in rows], style, marker="o", color=colour,
                         label=f"{name}: {key.split('_')[0]}")
    axes[2].axhline(0.5, color="grey", ls="-", lw=0.8)
    titles = ("held-out action NLL", "best probe accuracy (boundary >= 1)",
              "GT controllers: success (grey: target 0.5)",
              "GT controllers: per-pair success by entry")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training tokens")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
    axes[2].set_ylim(-0.02, 1.02)
    axes[3].set_ylim(0.6, 1.0)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser("eval", help="measure every milestone of the runs")
    ev.add_argument("runs", nargs="+", help="pretraining run folders")
    ev.add_argument("--dataset", required=True, help="expert data for probes and controllers")
    ev.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2])
    ev.add_argument("--episodes", type=int, default=300, help="rollouts per measure")
    ev.add_argument("--controller-steps", type=int, default=2000)
    ev.add_argument("--threads", type=int, default=1)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--steps", type=int, nargs="*", help="only these milestones (default: all)")
    ev.set_defaults(func=cmd_eval)
    tb = sub.add_parser("table", help="print the measures as a Markdown table")
    tb.add_argument("runs", nargs="+")
    tb.set_defaults(func=cmd_table)
    sh = sub.add_parser("ship", help="copy milestones into the package's weights")
    sh.add_argument("milestones", nargs="+", metavar="RUN:STEP[,STEP...]")
    sh.add_argument("--out", default="irl_agents/weights/grid/scaling")
    sh.set_defaults(func=cmd_ship)
    pl = sub.add_parser("plot", help="plot the curves")
    pl.add_argument("runs", nargs="+")
    pl.add_argument("--labels", nargs="*")
    pl.add_argument("--out", default="docs/scaling_grid.png")
    pl.set_defaults(func=cmd_plot)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
