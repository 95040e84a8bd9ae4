"""Success rate and episode length of a family's expert."""

from __future__ import annotations

import time

import numpy as np

from irl_envs.families import env_id, family
from irl_envs.rollout import run_episodes


def evaluate_expert(env: str = "grid", task_set: str = "pretrain", episodes: int = 1000,
                    seed: int = 0, noise: float = 0.0, num_envs: int = 256,
                    progress: bool = True) -> dict:
    """Run the expert for ``episodes`` episodes; return success rate and lengths per task.

    Returns:
        A dict with ``success_rate``, ``mean_length``, ``episodes``, ``seconds``,
        ``episodes_per_second`` and ``per_task`` (the same figures per task).
    """
    fam = family(env)
    venv = fam.make_vec(env_id(env, task_set), min(num_envs, episodes))
    expert = fam.make_expert(noise, seed)
    start = time.perf_counter()
    eps = run_episodes(venv, expert.act, episodes, seed, record=False, progress=progress,
                       desc=f"{env} expert")
    seconds = time.perf_counter() - start
    venv.close()
    per_task = {}
    for task in sorted(set(eps.tasks)):
        mask = np.array([t == task for t in eps.tasks])
        per_task["-".join(map(str, task))] = {
            "episodes": int(mask.sum()),
            "success_rate": float(eps.success[mask].mean()),
            "mean_length": float(eps.lengths[mask].mean()),
        }
    return {
        "env": env, "task_set": task_set, "episodes": episodes, "seed": seed, "noise": noise,
        "success_rate": float(eps.success.mean()),
        "mean_length": float(eps.lengths.mean()),
        "seconds": round(seconds, 3),
        "episodes_per_second": round(episodes / seconds, 1),
        "per_task": per_task,
    }
