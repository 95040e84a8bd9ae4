"""Does the ant base model navigate when the target colour is *given*?

A diagnostic, not a method: no real model sees the target. It separates the two things the
base model must learn, inferring the current target from the history and walking to a
chosen colour, by handing it the first.

1. ``make-data``: append the one-hot of the expert's current target colour to every
   observation of an ant dataset (the final observation gets zeros: the task is over).
   ``--frame heading`` first rewrites the observations in the ant's heading frame
   (:func:`irl_envs.ant_heading.heading_frame`); the file's metadata records the frame and
   the rollouts below apply the same transform.
2. Train with the usual ``irl pretrain --dataset OUT`` (obs_dim grows from 41 to 45).
3. ``rollout``: play the model closed loop with the env's true current target appended,
   on the pretraining tasks or on 0-1-2-3, and report success and colours visited.
4. ``sensitivity``: held-out action NLL (the episodes ``irl pretrain`` held out) with the
   true target, with a wrong one (colour + 1 mod 4) and with none: does the model use it?
5. ``markov``: the same question for a memoryless MLP policy (current observation + target
   only, like the expert itself), trained here on single steps, then played closed loop.
   With no history there is no way to copy the expert's current heading from the past.
6. ``expert``: the ceiling of (4) and (5): how far the expert's own action distribution
   moves with a wrong target, as the KL between the two Gaussians (pre-squash), which is the
   expected action-NLL gap on data the expert generated; and the mean squared error of the
   expert's mean action (true and wrong target) to the recorded actions, to set beside a
   model's ``val_action_mse`` (the true-target figure is the noise floor).

Usage:
    python benchmarks/diagnostics/ant_oracle_target.py make-data --dataset IN --out OUT
           [--frame heading]
    python benchmarks/diagnostics/ant_oracle_target.py rollout --model DIR [--task-set posttrain]
           [--episodes 200] [--greedy] [--seed 0] [--env-workers 2]
    python benchmarks/diagnostics/ant_oracle_target.py sensitivity --model DIR --dataset OUT
    python benchmarks/diagnostics/ant_oracle_target.py markov --dataset OUT [--steps 4000]
           [--env-workers 2]
    python benchmarks/diagnostics/ant_oracle_target.py expert --dataset IN

Backs docs/results/ant.md, "Ant-pinpad: the pipeline at CPU scale" / "Five times the data, and the
target handed to the model" (the "target given" rows and the Markov policy) and "The heading
frame".
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from irl_agents.episodes import pad_episodes, split_episodes
from irl_agents.model_rollout import rollout_success, rollout_summary
from irl_agents.models import load_model
from irl_envs.ant_heading import FRAMES
from irl_envs.datasets import load_dataset
from irl_envs.families import env_id, family
from irl_envs.rollout import current_targets

COLOURS = 4


def one_hot(targets: np.ndarray) -> np.ndarray:
    """(N,) colour indices, -1 for none, to (N, COLOURS) float32 one-hots (zeros for -1)."""
    out = np.zeros((len(targets), COLOURS), dtype=np.float32)
    live = targets >= 0
    out[np.flatnonzero(live), targets[live]] = 1.0
    return out


def near_new_target(targets: np.ndarray, window: int) -> np.ndarray:
    """Steps within ``window`` of a new target along the last axis (episode start included):
    where the expert turns."""
    t = np.arange(targets.shape[-1])
    changed = np.ones(targets.shape, dtype=bool)
    changed[..., 1:] = targets[..., 1:] != targets[..., :-1]
    return t - np.maximum.accumulate(np.where(changed, t, 0), axis=-1) < window


def make_data(src: str, out: str, frame: str = "world") -> None:
    data = load_dataset(src)
    transform = FRAMES[frame]
    augmented = replace(
        data,
        observations=np.concatenate([transform(data.observations), one_hot(data.targets)], 1),
        final_observations=np.concatenate(
            [transform(data.final_observations),
             np.zeros((data.num_episodes, COLOURS), np.float32)], 1),
        meta={**data.meta, "oracle_target": "one-hot of the current target appended",
              "obs_frame": frame})
    augmented.save(out)
    print(json.dumps({"file": out, "obs_dim": augmented.obs_dim, "steps": data.num_steps}))


def rollout(model_dir: str, task_set: str, episodes: int, greedy: bool, seed: int,
            workers: int = 2, frame: str = "world") -> None:
    torch.set_num_threads(1)
    _print_rollout(load_model(model_dir).eval(), model_dir, task_set, episodes, greedy, seed,
                   workers, frame)


def _print_rollout(model, name: str, task_set: str, episodes: int, greedy: bool,
                   seed: int, workers: int = 2, frame: str = "world") -> None:
    start = time.perf_counter()
    transform = FRAMES[frame]
    venv = family("ant").make_vec(env_id("ant", task_set), episodes, workers=workers)
    res = rollout_success(model, venv, seed=10_000 + seed, greedy=greedy,
                          obs_fn=lambda obs, info: np.concatenate(
                              [transform(obs), one_hot(current_targets(info))], 1))
    venv.close()
    print(json.dumps({"model": name, "oracle_target": True, "task_set": task_set,
                      "frame": frame, "greedy": greedy, **rollout_summary(res),
                      "seconds": round(time.perf_counter() - start, 1)}))


@torch.no_grad()
def sensitivity(model_dir: str, dataset: str, episodes: int = 256, window: int = 20) -> None:
    torch.set_num_threads(1)
    model = load_model(model_dir).eval()
    data = load_dataset(dataset)
    _, val = split_episodes(data.num_episodes, 0.05, 0)  # irl pretrain's held-out episodes
    batch = pad_episodes(data, val[:episodes])
    near = torch.from_numpy(near_new_target(batch.targets.numpy(), window)) & batch.mask
    target = batch.obs[..., -COLOURS:]
    inputs = {"true": target, "wrong": target.roll(1, dims=-1), "none": torch.zeros_like(target)}
    nll = {}
    for name, onehot in inputs.items():
        obs = torch.cat([batch.obs[..., :-COLOURS], onehot], -1)
        logp = model.action_distribution(model(obs)).log_prob(batch.actions)
        nll[name] = {"all steps": float(-logp[batch.mask].mean()),
                     f"first {window} steps of a target": float(-logp[near].mean()),
                     "later steps": float(-logp[batch.mask & ~near].mean())}
    print(json.dumps({"model": model_dir, "held_out_action_nll": nll}))


class MarkovPolicy(nn.Module):
    """A Gaussian MLP policy on the current observation, with the hooks ``rollout_success``
    uses (``config.discrete``, ``device``, ``initial_state``, ``step``)."""

    config = SimpleNamespace(discrete=False)

    def __init__(self, obs_dim: int, action_dim: int, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, width), nn.ReLU(), nn.Linear(width, width),
                                 nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, 2 * action_dim))

    def forward(self, obs: Tensor) -> SimpleNamespace:
        mean, log_std = self.net(obs).chunk(2, -1)
        return SimpleNamespace(mean=mean, log_std=log_std.clamp(-5.0, 2.0))

    def nll(self, obs: Tensor, actions: Tensor) -> Tensor:
        out = self(obs)
        return -Independent(Normal(out.mean, out.log_std.exp()), 1).log_prob(actions).mean()

    @property
    def device(self) -> torch.device:
        return self.net[0].weight.device

    def initial_state(self, n: int) -> None:
        return None

    def step(self, obs: Tensor, state: None, **_) -> tuple[SimpleNamespace, None]:
        return self(obs), None


def markov(dataset: str, steps: int, batch_size: int = 4096, episodes: int = 200,
           workers: int = 2) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset(dataset)
    train, val = split_episodes(data.num_episodes, 0.05, 0)
    in_val = np.zeros(data.num_steps, dtype=bool)
    for i in val[:256]:
        in_val[data.episode_starts[i]:data.episode_starts[i] + data.episode_lengths[i]] = True
    obs, actions = torch.from_numpy(data.observations), torch.from_numpy(data.actions)
    train_steps = torch.from_numpy(np.flatnonzero(~in_val))
    policy = MarkovPolicy(data.obs_dim, data.num_actions)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=0.03)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start = time.perf_counter()
    for _ in range(steps):
        idx = train_steps[torch.randint(len(train_steps), (batch_size,))]
        loss = policy.nll(obs[idx], actions[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    train_seconds = time.perf_counter() - start
    with torch.no_grad():
        held, acts = obs[torch.from_numpy(in_val)], actions[torch.from_numpy(in_val)]
        target = held[:, -COLOURS:]
        nll = {name: float(policy.nll(torch.cat([held[:, :-COLOURS], onehot], -1), acts))
               for name, onehot in (("true", target), ("wrong", target.roll(1, dims=-1)))}
    frame = data.meta.get("obs_frame", "world")
    print(json.dumps({"policy": "markov MLP 3 x 256", "frame": frame, "steps": steps,
                      "train_seconds": round(train_seconds, 1), "held_out_action_nll": nll}))
    for task_set in ("pretrain", "posttrain"):
        _print_rollout(policy, "markov MLP", task_set, episodes, greedy=True, seed=0,
                       workers=workers, frame=frame)


@torch.no_grad()
def expert_sensitivity(dataset: str, episodes: int = 256, window: int = 20) -> None:
    from irl_envs.experts.ant_expert import AntExpert, layout_from_obs
    from irl_envs.experts.ant_locomotion import policy_features, proprio_from_obs

    data = load_dataset(dataset)
    _, val = split_episodes(data.num_episodes, 0.05, 0)
    expert, geometry = AntExpert(), (4, 1.0, 4, 1)
    kl, near, se = [], [], {"true": [], "wrong": []}
    for i in val[:episodes]:
        ep = data.episode(i)
        obs, target = ep["observations"].astype(np.float64), ep["targets"]
        cells, xy = layout_from_obs(obs, *geometry)
        proprio = proprio_from_obs(obs)
        moments = []
        for tgt in (target, (target + 1) % COLOURS):
            direction = expert.planner(geometry).plan(cells, xy, tgt).direction
            features = torch.as_tensor(policy_features(proprio, direction), dtype=torch.float32)
            moments.append(expert.policy(features))
        (mu, log_std), (mu_wrong, _) = moments
        for name, m in (("true", mu), ("wrong", mu_wrong)):
            err = expert.policy.bound(m).numpy() - ep["actions"]
            se[name].append((err**2).mean(-1))
        kl.append((0.5 * ((mu - mu_wrong) / log_std.exp()).pow(2)).sum(-1).numpy())
        near.append(near_new_target(target, window))
    kl, near = np.concatenate(kl), np.concatenate(near)
    print(json.dumps({"expert_kl_wrong_target_nats": {
        "all steps": float(kl.mean()), f"first {window} steps of a target": float(kl[near].mean()),
        "later steps": float(kl[~near].mean())},
        "expert_mean_action_mse": {k: float(np.concatenate(v).mean()) for k, v in se.items()}}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("make-data")
    d.add_argument("--dataset", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--frame", choices=sorted(FRAMES), default="world",
                   help="observation frame before the one-hot is appended")
    r = sub.add_parser("rollout")
    r.add_argument("--model", required=True)
    r.add_argument("--task-set", choices=["pretrain", "posttrain"], default="pretrain")
    r.add_argument("--episodes", type=int, default=200)
    r.add_argument("--greedy", action="store_true")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--env-workers", type=int, default=2,
                   help="processes stepping the environments (1: this process only)")
    r.add_argument("--frame", choices=sorted(FRAMES), default="world",
                   help="observation frame the model was trained in")
    s = sub.add_parser("sensitivity")
    s.add_argument("--model", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--episodes", type=int, default=256, help="held-out episodes scored")
    m = sub.add_parser("markov")
    m.add_argument("--dataset", required=True)
    m.add_argument("--steps", type=int, default=4000)
    m.add_argument("--batch-size", type=int, default=4096, help="steps per gradient step")
    m.add_argument("--episodes", type=int, default=200, help="closed-loop episodes per task set")
    m.add_argument("--env-workers", type=int, default=2,
                   help="processes stepping the environments (1: this process only)")
    e = sub.add_parser("expert")
    e.add_argument("--dataset", required=True)
    e.add_argument("--episodes", type=int, default=256, help="held-out episodes scored")
    args = p.parse_args(argv)
    if args.command == "make-data":
        make_data(args.dataset, args.out, args.frame)
    elif args.command == "rollout":
        rollout(args.model, args.task_set, args.episodes, args.greedy, args.seed,
                args.env_workers, args.frame)
    elif args.command == "sensitivity":
        sensitivity(args.model, args.dataset, args.episodes)
    elif args.command == "markov":
        markov(args.dataset, args.steps, args.batch_size, args.episodes, args.env_workers)
    else:
        expert_sensitivity(args.dataset, args.episodes)


if __name__ == "__main__":
    main()
