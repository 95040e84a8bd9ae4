"""Replay a trained internal-RL policy through the Gymnasium API, on layouts it never saw.

Training scores success with the batched, event-driven collector. This plays the run's saved
policy (``checkpoint.safetensors``) one episode at a time through
:class:`irl_agents.latent_env.LatentActionEnv` (what ``gym.make("InternalRL/...Latent-v0")``
returns), with the run's base model, metacontroller, task and threshold from its
``run.json``, on environment seeds far from training's, and reports the success rate with its
binomial standard error.

Usage: python benchmarks/diagnostics/gym_policy_eval.py --run runs/s10/post-seg-t03-s0
       [--episodes 300] [--seed 50000000]

Backs docs/results/internal_rl.md, "Issue 18", point 7.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from irl_agents.latent_env import LatentActionEnv
from irl_agents.latent_policy import LatentPolicy
from irl_agents.models import load_metacontroller, load_model
from irl_agents.models.checkpoint import load_tensors
from irl_agents.raw_batch import make_raw_batch


def load_run(run: Path) -> tuple[LatentActionEnv, LatentPolicy, dict]:
    """The run's latent env (one raw env) and its policy at the last checkpoint."""
    info = json.loads((run / "run.json").read_text())
    if info.get("command") != "internal-rl":
        raise ValueError(f"--run must be an `irl internal-rl` run folder, got {run} "
                         f"(command {info.get('command')!r})")
    cfg = info["config"]
    base, meta = load_model(cfg["base"]).eval(), load_metacontroller(cfg["meta"]).eval()
    raw = make_raw_batch(cfg["env"], cfg["task_set"], 1, cfg["task"])
    env = LatentActionEnv(base, meta, raw, cfg["threshold"], cfg["z_bound"], cfg["greedy"])
    policy = LatentPolicy(env.observation_space.shape[0], env.action_space.shape[0],
                          cfg["hidden"])
    tensors, _ = load_tensors(run / "checkpoint.safetensors")
    policy.load_state_dict({k.removeprefix("policy."): v for k, v in tensors.items()
                            if k.startswith("policy.")})
    return env, policy.eval(), cfg


@torch.no_grad()
def evaluate(env: LatentActionEnv, policy: LatentPolicy, episodes: int, seed: int) -> dict:
    """Success rate over ``episodes`` layouts (env seeds ``seed, seed + 1, ...``)."""
    generator = torch.Generator().manual_seed(seed)
    low, high = env.action_space.low, env.action_space.high
    wins, latent_steps = 0, 0
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        state, done = policy.initial_state(1), False
        while not done:
            z, _, state = policy.act(torch.as_tensor(obs)[None], state, generator)
            obs, _, term, trunc, info = env.step(np.clip(z[0].numpy(), low, high))
            done, latent_steps = term or trunc, latent_steps + 1
        wins += bool(info["is_success"])
    rate = wins / episodes
    return {"episodes": episodes, "success": round(rate, 3),
            "standard error": round((rate * (1 - rate) / episodes) ** 0.5, 3),
            "latent steps / episode": round(latent_steps / episodes, 2)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="an `irl internal-rl` run folder")
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--seed", type=int, default=50_000_000,
                   help="first environment seed; training plays seeds run_seed * 2**32 + i "
                        "(i below its episode count), so the default is a held-out layout "
                        "for runs of fewer than 50M episodes")
    args = p.parse_args(argv)
    env, policy, cfg = load_run(Path(args.run))
    result = evaluate(env, policy, args.episodes, args.seed)
    task = cfg["task"] or cfg["task_set"]
    print(f"{args.run} ({task}, threshold {cfg['threshold']}): {json.dumps(result)}")


if __name__ == "__main__":
    main()
