"""Training the ant expert's locomotion policy with Stable-Baselines3 (``irl train-ant-expert``).

:func:`train_locomotion` trains PPO (or SAC) on :class:`~.command_env.AntCommandEnv` and writes
a run folder: ``config.json``, ``progress.csv`` (command following evaluated every
``eval_every_s`` seconds), pickle-free checkpoints (:mod:`.sb3_io`), the exported weights
``ant_locomotion.safetensors`` (+ ``.json``, loadable by
:func:`irl_envs.experts.ant_locomotion.load_policy`) and ``summary.json``. ``docs/ant_expert.md``
records the runs behind the shipped weights.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from irl_agents.ant_expert_training.command_env import (
    AntCommandEnv,
    CommandEnvConfig,
    evaluate_commands,
)
from irl_agents.ant_expert_training.sb3_io import (
    load_training_state,
    policy_from_sb3,
    save_training_state,
)
from irl_agents.run_folder import RunFolderError, check_resume_budget, claim_run, run_config
from irl_agents.run_logger import keep_csv_rows
from irl_envs.atomic import write_json
from irl_envs.experts.ant_locomotion import ACTIVATIONS, save_policy
from irl_envs.validation import check_choice, check_device, check_float, check_int, check_seed
from irl_envs.versions import versions


@dataclass
class TrainConfig:
    """Options of :func:`train_locomotion` (``irl train-ant-expert`` derives its flags from these
    fields: :mod:`irl_agents.commands.options`)."""

    out: str = "runs/ant_locomotion"
    """Output folder: config.json, progress.csv, checkpoints/, ant_locomotion.safetensors."""
    steps: int = 5_000_000
    """Environment steps to train for (all sub-environments together)."""
    seed: int = 0
    """Seed of the environments and of SB3."""
    algo: Literal["ppo", "sac"] = "ppo"
    """``"ppo"`` or ``"sac"``."""
    n_envs: int = 8
    """Training sub-environments."""
    subproc: bool = False
    """Step the sub-environments in worker processes (SubprocVecEnv, one per env) instead of
    in this process (DummyVecEnv). Worth it only with spare cores."""
    threads: int = 1
    """torch threads (``torch.set_num_threads``)."""
    device: str = "cpu"
    """torch device for SB3 (``"cpu"``, ``"cuda"``, ``"auto"``)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor (and of the critic)."""
    activation: Literal["tanh", "relu", "elu"] = "tanh"
    """Hidden activation: ``"tanh"``, ``"relu"``, ``"elu"``."""
    learning_rate: float = 3e-4
    """Adam learning rate (PPO and SAC)."""
    gamma: float = 0.99
    """Discount factor."""
    normalize: bool | None = None
    """VecNormalize observations (and rewards for PPO); None: on for PPO, off for SAC."""
    # PPO
    n_steps: int = 256
    """PPO: steps per sub-environment per rollout (rollout = n_steps * n_envs)."""
    batch_size: int = 256
    """PPO/SAC minibatch size."""
    n_epochs: int = 10
    """PPO: passes over each rollout."""
    gae_lambda: float = 0.95
    """PPO: GAE lambda."""
    clip_range: float = 0.2
    """PPO: ratio clip."""
    ent_coef: float = 0.0
    """PPO: entropy bonus."""
    vf_coef: float = 0.5
    """PPO: value loss weight."""
    max_grad_norm: float = 0.5
    """PPO: gradient norm clip."""
    log_std_init: float = -0.5
    """PPO: initial log standard deviation of the actions."""
    target_kl: float | None = None
    """PPO: early-stop an update beyond this KL (None: never)."""
    # SAC
    buffer_size: int = 1_000_000
    """SAC: replay buffer size."""
    learning_starts: int = 5_000
    """SAC: random steps before learning."""
    tau: float = 0.005
    """SAC: target network update rate."""
    train_freq: int = 1
    """SAC: env steps (per sub-env) between updates."""
    gradient_steps: int = 1
    """SAC: gradient steps per update."""
    # environment
    env: CommandEnvConfig = field(default_factory=CommandEnvConfig)
    """Reward and command schedule (CLI: ``--env.FIELD VALUE``)."""
    # bookkeeping
    eval_every_s: float = 60.0
    """Evaluate command following (fixed seeds) every this many wall seconds."""
    eval_episodes: int = 3
    """Episodes per evaluation (400 steps each)."""
    checkpoint_every: int = 500_000
    """Save a resumable checkpoint (``checkpoints/last_state.safetensors``: networks,
    optimizers, normalisation statistics, step count) and the exported weights every N
    steps."""
    time_limit_s: float = 0.0
    """Stop (checkpoint and export as usual) after this many wall seconds; 0: no limit."""
    resume: bool = False
    """Continue from ``out/checkpoints/last_state.safetensors`` (safetensors + JSON: nothing is
    unpickled). Without it, a folder that holds a checkpoint is refused."""
    overwrite: bool = False
    """Replace a run with other settings (or a checkpoint not resumed) in ``out``."""
    status: str = "trained"
    """``status`` written into the exported weights' JSON."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_choice("algo", self.algo, ("ppo", "sac"))
        check_choice("activation", self.activation, sorted(ACTIVATIONS))
        for name in ("steps", "n_envs", "threads", "n_steps", "batch_size", "n_epochs",
                     "buffer_size", "train_freq", "gradient_steps", "eval_episodes",
                     "checkpoint_every"):
            check_int(name, getattr(self, name), 1)
        check_int("learning_starts", self.learning_starts, 0)
        check_seed("seed", self.seed, self.n_envs)
        for width in self.hidden:
            check_int("hidden", width, 1)
        for name in ("learning_rate", "clip_range", "max_grad_norm", "eval_every_s"):
            check_float(name, getattr(self, name), positive=True)
        for name in ("gamma", "tau"):
            check_float(name, getattr(self, name), positive=True, high=1.0)
        check_float("gae_lambda", self.gae_lambda, low=0.0, high=1.0)
        for name in ("ent_coef", "vf_coef", "time_limit_s"):
            check_float(name, getattr(self, name), low=0.0)
        check_float("log_std_init", self.log_std_init)
        if self.device != "auto":
            check_device(self.device)
        if self.target_kl is not None:
            check_float("target_kl", self.target_kl, positive=True)


class _Monitor:
    """SB3 callback: periodic evaluation, progress.csv, checkpoints, exported weights."""

    def __init__(self, cfg: TrainConfig, out: Path, start: float, wall_before: float):
        from stable_baselines3.common.callbacks import BaseCallback

        monitor = self

        class Callback(BaseCallback):
            def _on_step(self) -> bool:
                return monitor.on_step(self.model)

        self.callback = Callback()
        self.cfg, self.out, self.start, self.wall_before = cfg, out, start, wall_before
        self.next_eval = time.perf_counter() + cfg.eval_every_s
        self.next_ckpt = None
        self.rows: list[dict[str, Any]] = []

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.start

    def on_step(self, model) -> bool:
        steps = model.num_timesteps
        if self.next_ckpt is None:
            self.next_ckpt = (steps // self.cfg.checkpoint_every + 1) * self.cfg.checkpoint_every
        if steps >= self.next_ckpt:
            self.checkpoint(model)
            self.next_ckpt += self.cfg.checkpoint_every
        if time.perf_counter() >= self.next_eval:
            self.evaluate(model)
            self.next_eval = time.perf_counter() + self.cfg.eval_every_s
        return not (self.cfg.time_limit_s and self.wall() >= self.cfg.time_limit_s)

    def evaluate(self, model) -> dict[str, Any]:
        t0 = time.perf_counter()
        policy = policy_from_sb3(model, model.get_vec_normalize_env())
        res = evaluate_commands(policy, self.cfg.eval_episodes, env_config=self.cfg.env)
        eval_s = time.perf_counter() - t0
        self.start += eval_s  # evaluation time is not training time
        ep = [e["r"] for e in model.ep_info_buffer] if model.ep_info_buffer else [float("nan")]
        row = {"steps": model.num_timesteps, "wall_s": round(self.wall(), 1),
               "ep_return": round(float(np.mean(ep)), 2),
               **{k: round(v, 4) for k, v in res.items()}, "eval_s": round(eval_s, 2)}
        self.rows.append(row)
        path = self.out / PROGRESS_FILE
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if not self.cfg.progress:
            print(json.dumps(row), flush=True)
        return row

    def checkpoint(self, model) -> None:
        ckpt = self.out / "checkpoints"
        save_training_state(model, ckpt / STATE_FILE, self.wall())
        write_json(ckpt / "last.json", {"steps": model.num_timesteps,
                                        "wall_s": round(self.wall(), 1)})
        self.export(model, self.out / f"weights_{model.num_timesteps}.safetensors")

    def export(self, model, path: Path) -> Path:
        meta = {"status": self.cfg.status,
                "train": {"algo": self.cfg.algo, "seed": self.cfg.seed,
                          "steps": int(model.num_timesteps), "wall_s": round(self.wall(), 1),
                          "command": shlex.join(sys.argv),
                          "config": _jsonable(asdict(self.cfg))},
                "versions": versions()}
        return save_policy(policy_from_sb3(model, model.get_vec_normalize_env()), path, meta)


STATE_FILE = "last_state.safetensors"
"""The resumable checkpoint in ``out/checkpoints/``: safetensors + JSON metadata, no pickle."""
PROGRESS_FILE = "progress.csv"
_RUN_SETTINGS = ("out", "steps", "subproc", "threads", "device", "eval_every_s",
                 "eval_episodes", "checkpoint_every", "time_limit_s", "resume", "overwrite",
                 "status", "progress")
"""Settings that do not define the run: a run may be resumed with other values."""


def _progress_header(out: Path) -> list[str]:
    path = out / PROGRESS_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def train_locomotion(cfg: TrainConfig) -> dict[str, Any]:
    """Train the direction-conditioned walker with SB3; returns the run summary.

    Writes to ``cfg.out``: ``config.json`` (config, versions, command line), ``progress.csv``
    (steps, wall time, training return, evaluation), ``checkpoints/`` (the resumable state of
    :func:`save_training_state`: no pickle), ``ant_locomotion.safetensors`` + ``.json`` (the
    exported policy, loadable by :func:`load_policy`) and ``summary.json`` (wall time, steps,
    final evaluation). Wall times exclude the periodic evaluations. A resumed run continues
    the networks, optimizers, normalisation statistics and step count; its environments
    start new episodes, so it is not step-for-step the uninterrupted run.
    """
    config = run_config(_jsonable(asdict(cfg)), _RUN_SETTINGS)
    with claim_run(cfg.out, "train-ant-expert", config, overwrite=cfg.overwrite,
                   legacy=("config.json", "checkpoints/last.json")) as run:
        return _train_locomotion(cfg, run.fresh)


def _train_locomotion(cfg: TrainConfig, fresh: bool) -> dict[str, Any]:
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    ckpt = out / "checkpoints" / STATE_FILE
    if not fresh and not ckpt.is_file() and (out / "checkpoints" / "last.zip").is_file():
        raise RunFolderError(f"{out / 'checkpoints'} holds only an SB3 pickle checkpoint "
                             "(last.zip) of an older version, which is never loaded: it could "
                             "run code. Start again with --overwrite or another --out")
    resuming = not fresh and ckpt.is_file()
    if resuming and not cfg.resume:
        raise RunFolderError(f"{out} holds a checkpoint of this run; pass --resume to "
                             "continue it, or --overwrite to start again")
    if not resuming:
        (out / PROGRESS_FILE).unlink(missing_ok=True)
    write_json(out / ("config_resumed.json" if resuming else "config.json"),
               {"config": _jsonable(asdict(cfg)), "versions": versions(),
                "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})

    env_cfg = cfg.env
    vec_cls = SubprocVecEnv if cfg.subproc else DummyVecEnv
    venv = make_vec_env(AntCommandEnv, n_envs=cfg.n_envs, seed=cfg.seed, vec_env_cls=vec_cls,
                        env_kwargs={"config": env_cfg})
    normalize = cfg.algo == "ppo" if cfg.normalize is None else cfg.normalize
    if normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=cfg.algo == "ppo", gamma=cfg.gamma)
    act = ACTIVATIONS[cfg.activation]
    hidden = list(cfg.hidden)
    if cfg.algo == "ppo":
        model = PPO("MlpPolicy", venv, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
                    batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma,
                    gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
                    vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                    target_kl=cfg.target_kl, seed=cfg.seed, device=cfg.device, verbose=0,
                    policy_kwargs={"net_arch": {"pi": hidden, "vf": hidden},
                                   "activation_fn": act, "log_std_init": cfg.log_std_init})
    else:
        model = SAC("MlpPolicy", venv, learning_rate=cfg.learning_rate,
                    buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts,
                    batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
                    train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps,
                    seed=cfg.seed, device=cfg.device, verbose=0,
                    policy_kwargs={"net_arch": hidden, "activation_fn": act})
    wall_before = 0.0
    if resuming:  # the freshly built model takes the checkpoint's weights and statistics
        wall_before = load_training_state(model, ckpt)
        done = model.num_timesteps
        check_resume_budget("steps", cfg.steps, done, ckpt)
        keep_csv_rows(out / PROGRESS_FILE, _progress_header(out),
                      lambda row: int(row[0]) <= done)
    start = time.perf_counter()
    monitor = _Monitor(cfg, out, start, wall_before)
    remaining = max(cfg.steps - (model.num_timesteps if resuming else 0), 0)
    try:
        model.learn(total_timesteps=remaining, callback=monitor.callback,
                    progress_bar=cfg.progress, reset_num_timesteps=not resuming)
    finally:
        monitor.checkpoint(model)
    final = monitor.evaluate(model)
    weights = monitor.export(model, out / "ant_locomotion.safetensors")
    summary = {"steps": int(model.num_timesteps), "wall_s": round(monitor.wall(), 1),
               "steps_per_s": round((model.num_timesteps) / max(monitor.wall(), 1e-9), 1),
               "final_eval": final, "weights": str(weights), "config": _jsonable(asdict(cfg)),
               "versions": versions()}
    write_json(out / "summary.json", summary)
    venv.close()
    return summary
