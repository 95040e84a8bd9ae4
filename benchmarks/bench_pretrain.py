"""Cost of gridworld base-model pretraining: the loop before the compute campaign against now.

Two measures, each for both loops, in one run:

1. **Tokens per second** of one training step (forward, backward, AdamW) of the shipped
   architecture (transformer d=128, L=4, ``grid_objects`` encoder), batches of 64 episodes.
2. **Seconds to the shipped model's held-out action NLL** (0.393): a fresh run of each loop,
   lr 1e-3, batch 64, validated every 250 steps on 1,024 held-out episodes; the training
   seconds (validation excluded) at the first validation at or below the target.

The loops:

- ``before``: a 20,000-episode dataset file (``irl data --episodes 20000 --seed 0``), fp32,
  the object encoder's dense window product (how the shipped model was trained).
- ``now``: fresh expert episodes streamed while training (each used once), bf16 autocast,
  the encoder's column lookup on one-hot planes.

Usage: ``python benchmarks/bench_pretrain.py [--threads 2] [--max-steps 4000] [--json PATH]``
(about 15 minutes on 2 cores; ``--skip-curve`` for the throughput table alone).
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import torch

from irl_agents.episode_sources import ExpertStream
from irl_agents.models import ModelConfig, build_model
from irl_agents.models.encoders import EgocentricObjectEncoder
from irl_agents.pretrain import PretrainConfig, pretrain
from irl_agents.reporting import table
from irl_envs.atomic import write_json
from irl_envs.datasets import generate_dataset
from irl_envs.versions import versions

TARGET_NLL = 0.393
LOOPS = {"before": {"precision": "fp32", "lookup": False, "stream": False},
         "now": {"precision": "bf16", "lookup": True, "stream": True}}


def model_config() -> ModelConfig:
    return ModelConfig(obs_encoder="grid_objects", obs_shape=[13, 7, 7])


def tokens_per_second(loop: dict, steps: int, batch_size: int = 64) -> float:
    """Training tokens per second of one loop on stream batches (warm-up excluded)."""
    EgocentricObjectEncoder.lookup = loop["lookup"]
    torch.manual_seed(0)
    model = build_model(model_config()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    stream = ExpertStream("grid", batch_size, seed=0, val_episodes=1, chunk_episodes=4096)
    batches = [stream.train_batch(i) for i in range(steps + 5)]
    amp = loop["precision"] == "bf16"
    tokens, start = 0, 0.0
    for i, b in enumerate(batches):
        if i == 5:
            tokens, start = 0, time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss, _ = model.loss(b.obs, b.actions, b.mask, 0.01)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += int(b.mask.sum())
    return tokens / (time.perf_counter() - start)


def time_to_target(loop: dict, dataset: str, out: Path, max_steps: int, threads: int,
                   every: int = 250) -> dict:
    """Train from scratch until the held-out action NLL reaches the target (or max_steps).

    The run is extended ``every`` steps at a time; resuming is exact, so this is one run.
    """
    EgocentricObjectEncoder.lookup = loop["lookup"]
    data = {"stream": "grid"} if loop["stream"] else {"dataset": dataset}
    for steps in range(every, max_steps + 1, every):
        cfg = PretrainConfig(**data, out_dir=str(out), model=model_config(), lr=1e-3,
                             batch_size=64, steps=steps, val_episodes=1024, log_every=every,
                             eval_every=every, checkpoint_every=every,
                             precision=loop["precision"], num_threads=threads, progress=False)
        pretrain(cfg)
        with open(out / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        val = {int(r["step"]): float(r["value"]) for r in rows
               if r["tag"] == "losses/val_action_nll"}
        if val[steps] <= TARGET_NLL:
            break
    hours = {int(r["step"]): float(r["value"]) for r in rows if r["tag"] == "charts/train_hours"}
    hit = steps if val[steps] <= TARGET_NLL else None
    return {"steps": hit, "seconds": round(hours[steps] * 3600) if hit else None,
            "last_step": steps, "last_val_nll": val[steps],
            "last_seconds": round(hours[steps] * 3600)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="steps timed for tokens/s")
    parser.add_argument("--max-steps", type=int, default=4000)
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [{"loop": name, "tokens/s": round(tokens_per_second(loop, args.steps))}
            for name, loop in LOOPS.items()]
    if not args.skip_curve:
        with tempfile.TemporaryDirectory() as tmp:
            dataset = str(Path(tmp) / "grid-20k.safetensors")
            generate_dataset("grid", "pretrain", 20_000, seed=0, progress=False).save(dataset)
            for row in rows:
                res = time_to_target(LOOPS[row["loop"]], dataset, Path(tmp) / row["loop"],
                                     args.max_steps, args.threads)
                row |= {f"steps to {TARGET_NLL}": res["steps"],
                        f"seconds to {TARGET_NLL}": res["seconds"],
                        "last val NLL (step, seconds)": f"{res['last_val_nll']:.3f} "
                        f"({res['last_step']}, {res['last_seconds']})"}
    EgocentricObjectEncoder.lookup = True
    print(table(rows))
    if args.json:
        write_json(args.json, {"rows": rows, "threads": args.threads, "versions": versions(),
                               "machine": platform.processor() or platform.machine()})


if __name__ == "__main__":
    main()
