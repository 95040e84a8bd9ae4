"""The outer loop shared by every critic-free PPO run: collect a batch of whole episodes,
update, log, checkpoint, repeat until the episode budget is spent.

Internal RL (a policy over latent codes) and the raw-action baseline (the base model itself)
differ only in how a batch of episodes is collected, so both hand :func:`train_episodic` a
``collect(seeds, generator)`` function. It writes::

    out_dir/run.json                the command and settings of the run (irl_agents.run_folder)
    out_dir/curve.csv               episodes, the collector's statistics, seconds (one row a batch)
    out_dir/tb/, metrics.csv        TensorBoard and long-format CSV (charts/..., losses/...)
    out_dir/checkpoint.safetensors  policy, optimizer and random states after the last batch,
                                    one atomic file: a resumable checkpoint
    out_dir/policy.safetensors      the final policy's weights
    out_dir/summary.json            config, versions, success before RL and at the end, wall time

A run claimed with the same settings continues from its checkpoint exactly as if it had not
been interrupted (the random states are part of it, and rows logged after the checkpoint are
dropped); the episode budget may grow, so a finished run can be extended.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from irl_agents.models.checkpoint import (
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors_atomic,
)
from irl_agents.rl import EpisodicPolicy, PPOConfig, Trajectories, ppo_update
from irl_agents.run_folder import (
    RunFolder,
    RunFolderError,
    check_resume_budget,
    claim_run,
    run_config,
)
from irl_agents.run_logger import RunLogger, keep_csv_rows
from irl_envs.atomic import write_json
from irl_envs.validation import check_int, check_tensors
from irl_envs.versions import versions

Collector = Callable[[list[int], torch.Generator], tuple[Trajectories, dict]]
"""Plays one episode per seed with the current policy; returns the trajectories and batch
statistics (the same keys every batch, ``success_rate`` among them)."""

CHECKPOINT = "checkpoint.safetensors"
RUN_SETTINGS = ("out_dir", "episodes", "progress", "overwrite", "env_workers", "device",
                "precision")
"""Config fields that do not define a run: it may continue with other values (where it runs
and in what precision change results only by rounding)."""
MAX_SEED = 2**32 - 2
"""Episode seeds are ``seed * 2**32 + index``: unsigned 64-bit integers."""
_LEGACY_MARKER = "policy.json"
"""The checkpoint marker of versions before ``checkpoint.safetensors`` (weights only)."""


def claim_episodic_run(command: str, cfg: Any) -> RunFolder:
    """Claim ``cfg.out_dir`` for a critic-free RL run of ``command`` (see
    :mod:`irl_agents.run_folder`); ``cfg`` is the run's config dataclass."""
    return claim_run(cfg.out_dir, command, run_config(dataclasses.asdict(cfg), RUN_SETTINGS),
                     overwrite=cfg.overwrite, legacy=(CHECKPOINT, _LEGACY_MARKER),
                     defaults=dataclasses.asdict(type(cfg)()))  # runs from before an option


def _save_checkpoint(out: Path, policy: EpisodicPolicy, opt: torch.optim.Optimizer,
                     generator: torch.Generator, rng: np.random.Generator, config: dict,
                     batches: int) -> None:
    """Everything a resumed run needs, in one file, so that it is complete or absent."""
    opt_tensors, layout = optimizer_to_tensors(opt)
    tensors = {**{f"policy.{k}": v for k, v in policy.state_dict().items()},
               **{f"optimizer.{k}": v for k, v in opt_tensors.items()},
               "rng.torch": generator.get_state()}
    save_tensors_atomic(out / CHECKPOINT, tensors, metadata={
        "config": json.dumps(config), "batches": str(batches), "optimizer": layout,
        "rng.numpy": json.dumps(rng.bit_generator.state)})


def _load_checkpoint(out: Path, policy: EpisodicPolicy, opt: torch.optim.Optimizer,
                     generator: torch.Generator, rng: np.random.Generator, config: dict,
                     seed: int) -> int:
    """Restore the run in ``out`` into the given objects; returns its number of batches
    (0 when there is no checkpoint)."""
    path = out / CHECKPOINT
    if not path.is_file():
        return _load_legacy(out, policy, generator, rng, config, seed)
    tensors, meta = load_tensors(path)
    try:
        saved, batches = json.loads(meta["config"]), int(meta["batches"])
        numpy_state = json.loads(meta["rng.numpy"])
        layout = meta["optimizer"]
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a checkpoint of this trainer ({err})") from None
    if saved != config:
        raise RunFolderError(f"{path} is a checkpoint of other settings; pass --overwrite "
                             "(overwrite=True) to start again")
    weights = {k.removeprefix("policy."): v for k, v in tensors.items()
               if k.startswith("policy.")}
    check_tensors(str(path), weights, policy.state_dict())
    policy.load_state_dict(weights)
    try:
        optimizer_from_tensors(opt, {k.removeprefix("optimizer."): v for k, v in tensors.items()
                                     if k.startswith("optimizer.")}, layout)
        generator.set_state(tensors["rng.torch"])
        rng.bit_generator.state = numpy_state
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path}: corrupt optimizer or random state ({err})") from None
    return batches


def _load_legacy(out: Path, policy: EpisodicPolicy, generator: torch.Generator,
                 rng: np.random.Generator, config: dict, seed: int) -> int:
    """Continue a run of an older version (weights only: the optimizer restarts)."""
    marker = out / _LEGACY_MARKER
    if not marker.is_file():
        return 0
    try:
        saved = json.loads(marker.read_text())
        batches = int(saved["batches"])
        same = run_config(saved["config"], RUN_SETTINGS) == config
        weights = load_file(str(out / "policy.safetensors"))
    except Exception as err:  # noqa: BLE001  (missing, corrupt or foreign files alike)
        raise ValueError(f"{marker}: unreadable checkpoint ({err})") from None
    if not same:
        raise RunFolderError(f"{marker} is a checkpoint of other settings; pass --overwrite "
                             "(overwrite=True) to start again")
    check_tensors(str(out / "policy.safetensors"), weights, policy.state_dict())
    policy.load_state_dict(weights)
    generator.manual_seed(seed * 7919 + batches)  # what older versions did on resume
    rng.bit_generator.state = np.random.default_rng([seed, batches]).bit_generator.state
    return batches


def _append_row(path: Path, header: list[str], row: list) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        if new:
            csv.writer(f).writerow(header)
        csv.writer(f).writerow(row)


def _summary(curve_path: Path, config: dict, seconds: float) -> dict:
    """Success before RL (first batch) and at the end (last batch), read from the curve, so
    that a resumed or re-run finished run reports the same as an uninterrupted one."""
    with open(curve_path, newline="") as f:
        rates = [float(r["success_rate"]) for r in csv.DictReader(f)]
    return {"config": config, "versions": versions(),
            "success_before_rl": rates[0], "final_success_rate": rates[-1],
            "seconds": round(seconds, 1)}


def train_episodic(policy: EpisodicPolicy, collect: Collector, *, episodes: int,
                   batch_episodes: int, ppo: PPOConfig, seed: int, run: RunFolder,
                   config: dict, progress: bool = True, desc: str = "RL") -> dict:
    """Critic-free PPO on ``policy`` for ``episodes`` episodes, one batch at a time.

    Args:
        policy: the policy ``collect`` samples from (updated in place).
        collect: see :data:`Collector`; called with ``batch_episodes`` seeds.
        episodes: budget (rounded down to whole batches; at least ``batch_episodes``).
        batch_episodes: episodes per PPO batch.
        ppo: the update's settings (``epochs=0`` evaluates the initial policy, no learning).
        seed: seeds the environments, the action sampler and the minibatch order.
        run: the claimed output folder (:func:`claim_episodic_run`); see the module
            docstring for what it receives. ``run.fresh`` starts over.
        config: the run's settings (``dataclasses.asdict`` of its config); stored with the
            summary, and without :data:`RUN_SETTINGS` with the checkpoint.
        progress: show a progress bar.
        desc: progress-bar label.

    Returns:
        the summary written to ``summary.json``: ``config``, ``versions``,
        ``success_before_rl``, ``final_success_rate``, ``seconds``.
    """
    batch_episodes = check_int("batch_episodes", batch_episodes, 1)
    episodes = check_int("episodes", episodes, batch_episodes)
    seed = check_int("seed", seed, 0, MAX_SEED)
    start = time.perf_counter()
    out = run.path
    identity = run_config(config, RUN_SETTINGS)
    opt = torch.optim.Adam(policy.parameters(), lr=ppo.lr)
    # every batch's randomness continues these two streams; the checkpoint carries them
    generator = torch.Generator().manual_seed(seed * 7919)
    rng = np.random.default_rng([seed, 0])
    done_batches = 0 if run.fresh else _load_checkpoint(out, policy, opt, generator, rng,
                                                        identity, seed)
    total_batches = episodes // batch_episodes
    check_resume_budget("episodes", total_batches * batch_episodes,
                        done_batches * batch_episodes, out)
    curve_path = out / "curve.csv"
    if done_batches == 0:
        curve_path.unlink(missing_ok=True)
    elif curve_path.is_file():  # rows of batches after the checkpoint will be written again
        with open(curve_path, newline="") as f:
            header = next(csv.reader(f), [])
        seen = done_batches * batch_episodes
        keep_csv_rows(curve_path, header, lambda row: float(row[0]) <= seen)
    logger = RunLogger(out, resume_step=done_batches * batch_episodes)
    bar = tqdm(total=total_batches * batch_episodes, initial=done_batches * batch_episodes,
               unit="ep", desc=desc, disable=not progress)
    for k in range(done_batches, total_batches):
        seeds = [seed * 2**32 + k * batch_episodes + i for i in range(batch_episodes)]
        batch, stats = collect(seeds, generator)
        losses = (ppo_update(policy, opt, batch, ppo, rng) if ppo.epochs > 0 else {})
        seen = (k + 1) * batch_episodes
        elapsed = time.perf_counter() - start
        _append_row(curve_path, ["episodes", *stats, "seconds"],
                    [seen, *stats.values(), round(elapsed, 1)])
        logger.log(seen, {**{f"charts/{name}": v for name, v in stats.items()},
                          **{f"losses/{name}": v for name, v in losses.items()}})
        _save_checkpoint(out, policy, opt, generator, rng, identity, k + 1)
        bar.update(batch_episodes)
        bar.set_postfix(success=f"{stats['success_rate']:.3f}")
    bar.close()
    logger.close()
    save_tensors_atomic(out / "policy.safetensors", policy.state_dict())
    summary = _summary(curve_path, config, time.perf_counter() - start)
    write_json(out / "summary.json", summary)
    return summary
