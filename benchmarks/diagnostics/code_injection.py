"""Do a metacontroller's latent codes mean "go to colour pair k"? (the paper's Fig. A4)

Codes from four sources are injected at the first step of new episodes whose task is a single
pair (2k, 2k+1), in layouts never seen, and held (no switching). Reported per pair: how often
the agent reaches colour 2k first and completes the pair, against no injection (the base model
alone picks a pair by chance, ~0.25).

- ``prior``: roll out the latent env on the pretraining tasks with z ~ N(0, I) at every
  switch; the code active when a pair is completed is labelled with that pair (the paper's
  protocol, injected at the start instead of mid-episode);
- ``posterior``: the encoder's code at the first step of held-out expert episodes, labelled
  with the episode's first pair;
- ``fitted``: one code per pair fitted by action NLL through the frozen decoder, using the
  labels: the best any single code can do, i.e. whether the decoder can express the subgoal;
- ``own layout``: for each new episode, the encoder's first code of an expert episode in
  *that same* layout and start: what a latent policy that computed the encoder's code from
  the first observation would get (an upper bound for layout-specific codes);
- ``codebook`` (a metacontroller with ``codebook = K``): each of its K controllers, injected
  into every pair's task, as a K x 4 table;
- ``ground truth`` (``--controller-steps N``): the labelled controllers of PAPER §4 at the
  same layer, for reference.

Usage: python benchmarks/diagnostics/code_injection.py --meta irl_agents/weights/grid/metacontroller
       [--base irl_agents/weights/grid/base] [--dataset data/grid-pretrain-20k.safetensors]
       [--episodes 256] [--codes 8] [--fit-steps 200] [--controller-steps 500]

Backs docs/results/metacontroller.md, "Latent codes: do they mean "go to colour pair k"? (Fig.
A4)" and "Two more attempts at colour codes", and docs/results/internal_rl.md, "One decision
per episode: the single pair 0-1" and "An oracle code space" (the injection rows).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from irl_agents.controllers import ControllerConfig, train_controllers
from irl_agents.discovery import elbo_terms
from irl_agents.episodes import pad_episodes, similar_length_batch, split_episodes
from irl_agents.latent_env import LatentCore
from irl_agents.model_rollout import rollout_success
from irl_agents.models import BaseModel, load_metacontroller, load_model
from irl_agents.raw_batch import make_raw_batch
from irl_agents.reporting import table
from irl_envs.colour_sequence import ColourSequenceVectorEnv
from irl_envs.datasets import Demonstrations, load_dataset
from irl_envs.experts.grid_expert import GridExpert
from irl_envs.rollout import run_episodes

PAIRS = 4


@torch.no_grad()
def prior_codes(base: BaseModel, meta, episodes: int, threshold: float, seed: int
                ) -> dict[int, list[torch.Tensor]]:
    """Codes active when a pair is completed, from prior rollouts on the pretraining tasks."""
    core = LatentCore(base, meta, make_raw_batch("grid", "pretrain", episodes), threshold)
    gen = torch.Generator().manual_seed(seed)
    core.reset(np.arange(episodes), [seed * 100_000 + i for i in range(episodes)])
    found: dict[int, list[torch.Tensor]] = {k: [] for k in range(PAIRS)}
    need, done = np.arange(episodes), np.zeros(episodes, dtype=bool)
    while not done.all():
        if len(need):
            core.begin(need, torch.randn(len(need), meta.cfg.n_z, generator=gen).numpy())
        before = core.raw.progress()
        stopped = core.raw_step()
        after = core.raw.progress()
        for row in np.flatnonzero((after > before) & (after % 2 == 0)).tolist():
            colour = int(core.info(row)["task"][after[row] - 1])
            found[colour // 2].append(core.z[row].clone())
        done[stopped[core.terminated[stopped] | core.truncated[stopped]]] = True
        need = stopped[~done[stopped]]
    return found


@torch.no_grad()
def posterior_codes(base: BaseModel, meta, data: Demonstrations, index: np.ndarray
                    ) -> dict[int, list[torch.Tensor]]:
    """The encoder's first-step code of expert episodes, by the episode's first pair."""
    batch = pad_episodes(data, index)
    _, _, post = elbo_terms(base, meta, batch, 0.0, sample=False)
    first = batch.subgoals[:, 0]
    return {k: list(post.z[first == k, 0]) for k in range(PAIRS)}


def fitted_codes(base: BaseModel, meta, data: Demonstrations, index: np.ndarray, steps: int,
                 seed: int) -> tuple[dict[int, list[torch.Tensor]], float]:
    """One code per pair minimising the labelled action NLL through the frozen decoder."""
    codes = torch.zeros(PAIRS, meta.cfg.n_z, requires_grad=True)
    opt = torch.optim.Adam([codes], lr=0.05)
    rng = np.random.default_rng(seed)
    nll = float("nan")
    for _ in range(steps):
        batch = pad_episodes(data, similar_length_batch(data, index, 64, rng))
        z = codes[batch.subgoals.clamp_min(0)]
        loss, parts = base.loss(batch.obs, batch.actions, batch.mask, 0.0,
                                controller=lambda e, z=z: meta.decode(z)(e),
                                layer=meta.cfg.write_boundary)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        nll = float(parts["action_nll"])
    return {k: [codes[k].detach()] for k in range(PAIRS)}, nll


def codebook_codes(meta) -> list[torch.Tensor]:
    """For each of a codebook decoder's K controllers, a code that selects it."""
    return list(meta.hyper.selecting_codes())


@torch.no_grad()
def own_layout_codes(base: BaseModel, meta, pair: int, episodes: int, seed: int
                     ) -> torch.Tensor:
    """``(episodes, n_z)``: the encoder's first code of an expert episode in each new layout."""
    venv = ColourSequenceVectorEnv(episodes, tasks=[(2 * pair, 2 * pair + 1)])
    eps = run_episodes(venv, GridExpert(seed=seed).act, episodes, seed, progress=False)
    starts = np.concatenate([[0], np.cumsum(eps.lengths)[:-1]])
    length = int(eps.lengths.max())
    obs = torch.zeros(episodes, length, eps.observations.shape[1])
    mask = torch.zeros(episodes, length, dtype=torch.bool)
    for i, (start, n) in enumerate(zip(starts, eps.lengths, strict=True)):
        obs[i, :n] = torch.as_tensor(eps.observations[start : start + n])
        mask[i, :n] = True
    e = base(obs, return_residual_at=meta.cfg.layer).residual
    return meta.posterior(e, mask, sample=False).z[:, 0]


@torch.no_grad()
def inject(base: BaseModel, meta, code: torch.Tensor | None, pair: int, episodes: int,
           seed: int) -> tuple[float, float]:
    """P(first colour reached is 2k), P(pair completed) with ``code`` held from t=0
    (one code ``(n_z,)`` for every episode, or one per episode ``(episodes, n_z)``)."""
    if code is None:  # no injection: the base model alone
        venv = ColourSequenceVectorEnv(episodes, tasks=[(2 * pair, 2 * pair + 1)])
        res = rollout_success(base, venv, seed=seed)
        return float(np.mean(res["progress"] >= 1)), float(res["success"].mean())
    core = LatentCore(base, meta, make_raw_batch("grid", "posttrain", episodes,
                                                 f"{2 * pair}-{2 * pair + 1}"),
                      threshold=1.0, z_bound=1e6)
    core.reset(np.arange(episodes), [seed + i for i in range(episodes)])
    core.begin(np.arange(episodes), code.expand(episodes, -1).numpy())
    while core.running.any():
        core.raw_step()
    progress = core.raw.progress()
    return float(np.mean(progress >= 1)), float(np.mean(progress >= 2))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True)
    p.add_argument("--base", default="irl_agents/weights/grid/base")
    p.add_argument("--dataset", default="data/grid-pretrain-20k.safetensors")
    p.add_argument("--episodes", type=int, default=256, help="new layouts per code")
    p.add_argument("--codes", type=int, default=8, help="codes per pair and source")
    p.add_argument("--prior-episodes", type=int, default=512)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--fit-steps", type=int, default=200)
    p.add_argument("--controller-steps", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    base, meta = load_model(args.base).eval(), load_metacontroller(args.meta).eval()
    for param in [*base.parameters(), *meta.parameters()]:
        param.requires_grad_(False)
    data = load_dataset(args.dataset)
    train, held_out = split_episodes(data.num_episodes, 0.1, args.seed)
    fitted, fit_nll = fitted_codes(base, meta, data, train, args.fit_steps, args.seed)
    sources = {"prior": prior_codes(base, meta, args.prior_episodes, args.threshold, args.seed),
               "posterior": posterior_codes(base, meta, data, held_out[:400]),
               "fitted": fitted}
    seed = 10_000_000 + args.seed  # layouts no training episode used
    rows = []
    for k in range(PAIRS):
        first, done = inject(base, meta, None, k, args.episodes, seed)
        rows.append({"source": "no injection", "pair": k, "codes": 0, "reach 2k first": first,
                     "best code": first, "pair done": done})
    for name, found in sources.items():
        for k in range(PAIRS):
            results = [inject(base, meta, z, k, args.episodes, seed)
                       for z in found[k][: args.codes]]
            if not results:
                continue
            firsts, dones = zip(*results, strict=True)
            rows.append({"source": name, "pair": k, "codes": len(results),
                         "reach 2k first": float(np.mean(firsts)), "best code": max(firsts),
                         "pair done": float(np.mean(dones))})
    for k in range(PAIRS):
        first, done = inject(base, meta, own_layout_codes(base, meta, k, args.episodes, seed), k,
                             args.episodes, seed)
        rows.append({"source": "own layout", "pair": k, "codes": args.episodes,
                     "reach 2k first": first, "best code": first, "pair done": done})
    if args.controller_steps:
        bank, _ = train_controllers(base, data, ControllerConfig(
            layer=meta.cfg.write_boundary, steps=args.controller_steps, seed=args.seed),
            progress=False)
        for k in range(PAIRS):
            venv = ColourSequenceVectorEnv(args.episodes, tasks=[(2 * k, 2 * k + 1)])
            index = torch.full((args.episodes,), k)
            res = rollout_success(base, venv, seed=seed, layer=meta.cfg.write_boundary,
                                  controller_fn=lambda info, i=index: bank.controller(i))
            first = float(np.mean(res["progress"] >= 1))
            rows.append({"source": "ground truth", "pair": k, "codes": 1,
                         "reach 2k first": first, "best code": first,
                         "pair done": float(res["success"].mean())})
    print(table([{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                 for r in rows]))
    if meta.cfg.codebook:
        print("codebook: how often each controller's code reaches pair k first")
        print(table([{"controller": j, **{f"pair {k}": round(inject(base, meta, z, k,
                                                                    args.episodes, seed)[0], 3)
                                          for k in range(PAIRS)}}
                     for j, z in enumerate(codebook_codes(meta))]))
    print(f"fitted codes: action NLL {fit_nll:.3f}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
