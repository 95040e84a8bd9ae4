"""Throughput of the batched latent-action environment (raw environment steps per second).

Usage: python benchmarks/bench_latent.py [--env grid|ant] [--num-envs 256] [--env-workers 1]
       [--base DIR --meta DIR] [--json PATH]

Without ``--base/--meta`` it builds untrained models of the default gridworld size (the cost
of a step does not depend on the weights, only the number of raw steps per latent step does).
Each raw step is one batched base-model step for the sub-environments still inside their
latent step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from irl_agents.latent_env import LatentVecEnv
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model, load_metacontroller, load_model
from irl_agents.raw_batch import make_raw_batch
from irl_agents.reporting import key_values
from irl_envs.atomic import write_json
from irl_envs.versions import versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=["grid", "ant"], default="grid")
    parser.add_argument("--env-workers", type=int, default=1,
                        help="processes stepping the raw envs (ant)")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--latent-steps", type=int, default=40)
    parser.add_argument("--base")
    parser.add_argument("--meta")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.base:
        base, meta = load_model(args.base), load_metacontroller(args.meta)
    elif args.env == "ant":
        parser.error("--env ant needs --base and --meta")
    else:
        torch.manual_seed(0)
        base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=128, n_layers=4,
                                       obs_encoder="grid_conv", obs_shape=[13, 7, 7]))
        meta = Metacontroller(MetacontrollerConfig(d_model=128, layer=2))
        with torch.no_grad():  # switch about every 5 raw steps, like a trained one
            meta.switch[-1].bias.fill_(-1.4)
    venv = LatentVecEnv(base, meta, make_raw_batch(args.env, "posttrain", args.num_envs,
                                                   workers=args.env_workers))
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    raw = latent = 0
    start = time.perf_counter()
    for _ in range(args.latent_steps):
        _, _, _, infos = venv.step(rng.standard_normal((args.num_envs, meta.cfg.n_z)))
        raw += sum(i["raw_steps"] for i in infos)
        latent += args.num_envs
    seconds = time.perf_counter() - start
    venv.close()
    res = {"env": args.env, "env_workers": args.env_workers, "num_envs": args.num_envs,
           "raw_steps_per_s": round(raw / seconds),
           "latent_steps_per_s": round(latent / seconds),
           "raw_steps_per_latent_step": round(raw / latent, 2), "seconds": round(seconds, 1),
           "threads": args.threads, "params": base.num_params()}
    print(key_values(res))
    if args.json:
        write_json(args.json, res | {"versions": versions()})


if __name__ == "__main__":
    main()
