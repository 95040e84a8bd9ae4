"""The comparison runner: every method of :mod:`baselines.methods`, N seeds, equal budgets.

``compare(cfg)`` spreads two kinds of jobs over a process pool (both CPU cores by default, one
torch thread per job) or a Ray cluster:

- prepare: each method's artifacts (metacontroller variants, CompILE) under
  ``out_dir/prepared/``, trained on ``out_dir/data.safetensors`` unless a dataset is given;
- train: one RL run per (method, seed) under ``out_dir/<task>/runs/<method>/seed<k>/``, started
  as soon as a worker is free and the method's prepare job (if any) has finished.

Prepared artifacts do not depend on the RL task, so sweeps over several tasks share one
``out_dir``. A job whose ``summary.json`` exists is skipped, and the RL runs resume from their
own checkpoints, so an interrupted sweep continues where it stopped. Then it gathers, in
``out_dir/<task>/``::

    results.json, results.csv       per run: method, seed, curve, episodes to 0.5/0.9, time
    table.md                        median over seeds (25-75%) at fixed budgets
    success.png, success_log.png    median success vs episodes with the 25-75% band
    compare.json                    the sweep's config, versions and wall time
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.util
import json
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from baselines.methods import METHODS, Setup, prepared_done
from irl_agents.configs import DictConfig
from irl_agents.curves import episodes_to, read_curve
from irl_agents.episodic_trainer import MAX_SEED
from irl_agents.precision import PRECISIONS
from irl_agents.run_folder import check_output_file, claim_run, run_config
from irl_envs.atomic import atomic_path, write_json
from irl_envs.families import FAMILIES
from irl_envs.tasks import parse_task
from irl_envs.validation import check_choice, check_device, check_float, check_int
from irl_envs.versions import versions


@dataclass
class CompareConfig(DictConfig):
    """One comparison sweep."""

    env: str = "grid"
    """Environment family."""
    task_set: Literal["pretrain", "posttrain"] = "posttrain"
    """Task set of the RL runs (the sparse-reward post-training task)."""
    task: str | None = None
    """A single task such as ``"0-1-2-3"`` replacing the task set's tasks."""
    methods: Sequence[str] = tuple(METHODS)
    """Methods to run (names of :data:`baselines.methods.METHODS`)."""
    seeds: int = 3
    """RL seeds per method: ``seed .. seed + seeds - 1``."""
    seed: int = 0
    """The first RL seed."""
    episodes: int = 20_480
    """Episode budget of every RL run."""
    batch_episodes: int = 256
    """Episodes per PPO batch and per curve point."""
    base: str | None = None
    """Base model folder (None: the shipped one)."""
    meta: str | None = None
    """Metacontroller folder (None: the shipped one)."""
    dataset: str | None = None
    """Expert demonstrations for the prepare steps (None: generate ``data_episodes``)."""
    data_episodes: int = 20_000
    """Episodes generated when ``dataset`` is None."""
    prepare_steps: int = 1500
    """Gradient steps of each prepare step (the shipped metacontroller's)."""
    alpha: float | None = None
    """KL weight of the metacontroller variants (None: the metacontroller's own)."""
    threshold: float = 0.5
    """Switch threshold of every latent environment."""
    greedy: bool = False
    """Latent methods take the base model's most likely raw action instead of sampling it (the
    paper samples). Raw-action RL and flat PPO always sample: their policy is the action
    distribution."""
    segment_layer: int | None = None
    """Boundary the segment codes' controllers write (None: the metacontroller's own; 0 is the
    shipped grid segment codes' recipe, docs/results/internal_rl.md, "Issue 18")."""
    eval_episodes: int = 500
    """Held-out episodes scored by each prepare step."""
    workers: int = 2
    """Parallel jobs (processes, or Ray tasks in flight)."""
    ray_address: str | None = None
    """Run the jobs on this Ray cluster (``"local"`` starts one here; needs the ``ray``
    extra); None: a process pool here."""
    device: str = "cpu"
    """Torch device of every job's models."""
    precision: str | None = None
    """Training precision of every job (``"auto"``, ``"fp32"``, ``"bf16"``); None: each
    stage's own default."""
    out_dir: str = "runs/compare"
    """Output folder."""
    docs: str | None = None
    """Markdown file whose comparison section (between markers) gets the table."""
    progress: bool = True
    """Show a progress bar over jobs."""
    budgets: Sequence[int] = field(default_factory=tuple)
    """Episode counts of the table's columns (empty: powers of 4 up to the budget)."""
    overwrite: bool = False
    """Replace a sweep with other settings in ``out_dir`` instead of refusing to start."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """``ValueError`` naming the first setting out of range."""
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ValueError(f"methods: unknown {unknown}; choose from {list(METHODS)}")
        check_choice("env", self.env, tuple(FAMILIES))
        check_int("seed", self.seed, 0, MAX_SEED - self.seeds)
        check_device(self.device)
        if self.precision is not None:
            check_choice("precision", self.precision, PRECISIONS)
        if self.ray_address and importlib.util.find_spec("ray") is None:
            raise ValueError("ray_address needs the optional extra 'ray': "
                             'pip install "internal-rl[ray]"')
        check_choice("task_set", self.task_set, ("pretrain", "posttrain"))
        if self.task is not None:
            parse_task(self.task)
        for name in ("seeds", "batch_episodes", "workers", "prepare_steps", "data_episodes",
                     "eval_episodes"):
            check_int(name, getattr(self, name), 1)
        check_int("episodes", self.episodes, self.batch_episodes)
        check_float("threshold", self.threshold, positive=True, high=1.0)
        if self.segment_layer is not None:
            check_int("segment_layer", self.segment_layer, 0)
        if self.alpha is not None:
            check_float("alpha", self.alpha, low=0.0)
        for budget in self.budgets:
            check_int("budgets", budget, 1)


SWEEP_SETTINGS = ("out_dir", "task_set", "task", "methods", "seeds", "seed", "episodes",
                  "workers", "ray_address", "docs", "progress", "budgets", "overwrite", "device",
                  "precision")
"""Settings that may differ between sweeps sharing one ``out_dir`` (the prepared artifacts and
the RL runs' batch size do not depend on them)."""

QUICK = {"seeds": 1, "episodes": 256, "batch_episodes": 128, "prepare_steps": 10,
         "eval_episodes": 16, "data_episodes": 200}
"""Overrides of ``--quick``: every code path, tiny budgets (CI)."""


# --------------------------------------------------------------------------- jobs
def _run_job(kind: str, method: str, setup: dict, seed: int | None, out: str) -> dict:
    """One prepare or train job (a top-level function: it crosses process boundaries)."""
    import torch

    torch.set_num_threads(1)  # one core per job: the pool provides the parallelism
    s = Setup(**setup)
    m = METHODS[method]
    start = time.perf_counter()
    if kind == "prepare":
        m.prepare(s)
        return {"kind": kind, "method": method, "seconds": time.perf_counter() - start}
    summary = m.train(s, seed, Path(out))
    return {"kind": kind, "method": method, "seed": seed, "summary": summary}


def _execute(jobs: list[tuple], cfg: CompareConfig) -> list[dict]:
    """Run ``jobs`` (argument tuples of :func:`_run_job`) in parallel; returns their results.

    A method's train jobs wait for its prepare job (if it has one in ``jobs``); every other
    job starts as soon as a worker is free, so training never idles behind a long prepare.
    """
    if not jobs:
        return []
    preparing = {job[1] for job in jobs if job[0] == "prepare"}
    waiting = list(jobs)
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not cfg.progress)
    results: list[dict] = []

    def ready() -> list[tuple]:
        out = [j for j in waiting if j[0] == "prepare" or j[1] not in preparing]
        for job in out:
            waiting.remove(job)
        return out

    def finished(result: dict) -> None:
        results.append(result)
        if result["kind"] == "prepare":
            preparing.discard(result["method"])
        bar.update()

    if cfg.ray_address:
        import ray  # optional extra: pip install internal-rl[ray]

        if not ray.is_initialized():
            ray.init(address=None if cfg.ray_address == "local" else cfg.ray_address,
                     include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(_run_job)
        pending = [remote.remote(*job) for job in ready()]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            finished(ray.get(done[0]))
            pending += [remote.remote(*job) for job in ready()]
    else:
        import multiprocessing as mp

        # spawn: a fresh interpreter per worker, no forked torch thread pools
        with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool, \
                _workers_die_with(pool):
            pending = {pool.submit(_run_job, *job) for job in ready()}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    finished(fut.result())
                pending |= {pool.submit(_run_job, *job) for job in ready()}
    bar.close()
    return results


@contextlib.contextmanager
def _workers_die_with(pool: ProcessPoolExecutor) -> Iterator[None]:
    """Terminate the pool's workers when the sweep stops on an exception, Ctrl-C or SIGTERM.

    A worker is a separate interpreter running one job for up to hours; left alone after its
    parent was killed it would go on writing into a run folder that a resumed sweep writes
    too. ``ProcessPoolExecutor`` only waits for running jobs (Python < 3.14 has no public
    way to stop them), so the workers are terminated here; their runs resume from their last
    checkpoint.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main else None
    try:
        yield
    except BaseException:
        for process in dict(getattr(pool, "_processes", None) or {}).values():
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame) -> None:
    sys.exit(128 + signum)


def _setup(cfg: CompareConfig, out: Path) -> Setup:
    """Resolve defaults (shipped models, the data path) into the sweep's :class:`Setup`."""
    from irl_agents.models import load_metacontroller
    from irl_agents.shipped import shipped

    base = cfg.base or str(shipped(cfg.env, "base"))
    meta = cfg.meta or str(shipped(cfg.env, "metacontroller"))
    meta_info = json.loads((Path(meta) / "metacontroller.json").read_text())
    alpha = cfg.alpha if cfg.alpha is not None else meta_info.get("discover", {}).get("alpha")
    if alpha is None:
        raise ValueError(f"alpha: {meta} does not record its alpha; pass alpha explicitly")
    return Setup(env=cfg.env, task_set=cfg.task_set, task=cfg.task, episodes=cfg.episodes,
                 batch_episodes=cfg.batch_episodes, base=base, meta=meta,
                 dataset=cfg.dataset or str(out / "data.safetensors"),
                 prepared=str(out / "prepared"), prepare_steps=cfg.prepare_steps,
                 alpha=float(alpha), layer=load_metacontroller(meta).cfg.layer,
                 threshold=cfg.threshold, greedy=cfg.greedy, segment_layer=cfg.segment_layer,
                 eval_episodes=cfg.eval_episodes, device=cfg.device,
                 precision=cfg.precision)


def _run_dir(out: Path, method: str, seed: int) -> Path:
    return out / "runs" / method / f"seed{seed}"


def task_label(cfg: CompareConfig) -> str:
    """The RL task's name in paths and titles: the task itself, or the task set's name."""
    return cfg.task or cfg.task_set


def _finished(folder: Path, setup: Setup) -> bool:
    """A run is finished when its summary exists and ran this sweep's budget."""
    path = folder / "summary.json"
    if not path.is_file():
        return False
    config = json.loads(path.read_text()).get("config", {})
    return config.get("episodes") == setup.episodes and config.get("task") == setup.task


def compare(cfg: CompareConfig) -> dict:
    """Run (or resume) the sweep and write its results; returns ``results.json``'s content."""
    cfg.validate()
    if cfg.docs:
        check_output_file("docs", cfg.docs)
    config = run_config(dataclasses.asdict(cfg), SWEEP_SETTINGS)
    with claim_run(cfg.out_dir, "compare", config, overwrite=cfg.overwrite,
                   legacy=("prepared", "data.safetensors"),
                   defaults=dataclasses.asdict(CompareConfig())):  # sweeps from before an option
        return _compare(cfg)


def _compare(cfg: CompareConfig) -> dict:
    start = time.perf_counter()
    out = Path(cfg.out_dir)
    setup = _setup(cfg, out)
    plain = dataclasses.asdict(setup)
    report = out / task_label(cfg)
    prepare = [("prepare", name, plain, None, "") for name in cfg.methods
               if METHODS[name].prepare is not None and not prepared_done(setup, name)]
    if prepare and not Path(setup.dataset).is_file():
        if cfg.dataset is not None:
            raise ValueError(f"dataset: {cfg.dataset} does not exist")
        from irl_envs.datasets import generate_dataset

        generate_dataset(cfg.env, "pretrain", cfg.data_episodes, seed=0,
                         progress=cfg.progress).save(setup.dataset)
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    train = [("train", name, plain, seed, str(_run_dir(report, name, seed)))
             for name in cfg.methods for seed in seeds
             if not _finished(_run_dir(report, name, seed), setup)]
    _execute(prepare + train, cfg)
    runs = gather(report, cfg.methods, seeds)
    budgets = list(cfg.budgets) or default_budgets(cfg.episodes, cfg.batch_episodes)
    table = markdown_table(runs, cfg.methods, budgets)
    with atomic_path(report / "table.md") as tmp:
        tmp.write_text(table)
    from baselines.plots import plot_comparison_figures  # success.png, success_log.png

    plot_comparison_figures(runs, cfg.methods, report, title=_title(cfg))
    write_json(report / "results.json", {"runs": runs})
    _write_csv(report / "results.csv", runs)
    write_json(report / "compare.json", {"config": dataclasses.asdict(cfg), "setup": plain,
                                      "versions": versions(),
                                      "seconds": round(time.perf_counter() - start, 1)})
    if cfg.docs:
        update_docs(cfg.docs, _marker(cfg), f"{_title(cfg)}\n\n{table}")
    return {"runs": runs, "table": table}


# --------------------------------------------------------------------------- results
def gather(out: Path, methods: Sequence[str], seeds: int | Iterable[int]) -> list[dict]:
    """One record per finished run of ``seeds`` (a count N: seeds 0..N-1): curve, episodes to
    0.5 and 0.9, final success, time."""
    seeds = range(seeds) if isinstance(seeds, int) else list(seeds)
    return [run_record(_run_dir(out, name, seed), name, seed) for name in methods
            for seed in seeds if (_run_dir(out, name, seed) / "summary.json").is_file()]


def run_record(folder: Path, method: str, seed: int) -> dict:
    """A run folder (``curve.csv``, and ``summary.json`` once finished) as one record of the
    tables; an unfinished run counts as far as its curve goes."""
    curve = read_curve(folder / "curve.csv")
    path = folder / "summary.json"
    summary = (json.loads(path.read_text()) if path.is_file()
               else {"seconds": curve["seconds"][-1] if "seconds" in curve else None})
    return {"method": method, "seed": seed, "episodes": curve["episodes"],
            "success_rate": curve["success_rate"],
            "final_success_rate": curve["success_rate"][-1],
            "episodes_to_0.5": episodes_to(curve, 0.5),
            "episodes_to_0.9": episodes_to(curve, 0.9),
            "seconds": summary.get("seconds")}


def default_budgets(episodes: int, batch: int) -> list[int]:
    """Powers of 4 times the batch size up to the budget, and the budget itself."""
    budgets, b = [], batch
    while b < episodes:
        budgets.append(b)
        b *= 4
    return [*budgets, episodes]


def success_at(run: dict, budget: int, window: int = 4) -> float:
    """Success rate at ``budget`` episodes: the mean over the last ``window`` curve points at or
    before it (one batch of 256 episodes alone has a standard error of ~0.01 at 2%)."""
    eps = np.asarray(run["episodes"])
    i = max(int(np.searchsorted(eps, budget, side="right")), 1)
    return float(np.mean(run["success_rate"][max(i - window, 0) : i]))


def _median_iqr(values: Sequence[float]) -> str:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return f"{q50:.3f}" if len(values) == 1 else f"{q50:.3f} ({q25:.2f}-{q75:.2f})"


def _median_episodes(values: Sequence[float | None]) -> str:
    """Median of episodes-to-level where runs that never got there count as infinite."""
    finite = sorted(np.inf if v is None else v for v in values)
    med = float(np.median(finite))
    reached = sum(v is not None for v in values)
    return ("never" if not np.isfinite(med) else f"{med:,.0f}") + f" ({reached}/{len(values)})"


def markdown_table(runs: list[dict], methods: Sequence[str], budgets: Sequence[int]) -> str:
    """Median over seeds (25-75%) of the success at each budget (:func:`success_at`), episodes
    to 0.5 / 0.9 (first batch at that level), median wall time."""
    head = ["method", "seeds", *[f"success @ {b:,}" for b in budgets], "episodes to 0.5",
            "episodes to 0.9", "wall s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in methods:
        mine = [r for r in runs if r["method"] == name]
        if not mine:
            continue
        cells = [name, str(len(mine)), *[_median_iqr([success_at(r, b) for r in mine])
                                          for b in budgets],
                 _median_episodes([r["episodes_to_0.5"] for r in mine]),
                 _median_episodes([r["episodes_to_0.9"] for r in mine]),
                 f"{np.median([r['seconds'] or 0 for r in mine]):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, runs: list[dict]) -> None:
    columns = ["method", "seed", "final_success_rate", "episodes_to_0.5", "episodes_to_0.9",
               "seconds"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in runs:
            writer.writerow(["" if r[c] is None else r[c] for c in columns])


def _title(cfg: CompareConfig) -> str:
    decoding = ", argmax raw actions in the latent methods" if cfg.greedy else ""
    return (f"{cfg.env}, task {task_label(cfg)}: {cfg.seeds} seeds x {cfg.episodes:,} "
            f"episodes{decoding}")


def _marker(cfg: CompareConfig) -> str:
    return f"compare:{cfg.env}:{task_label(cfg)}" + (":argmax" if cfg.greedy else "")


def update_docs(path: str | Path, marker: str, body: str) -> None:
    """Replace the text between ``<!-- {marker} begin -->`` and ``<!-- {marker} end -->`` in
    ``path`` (appending the block if the markers are missing); written atomically."""
    path = Path(path)
    begin, end = f"<!-- {marker} begin -->", f"<!-- {marker} end -->"
    text = path.read_text() if path.is_file() else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


