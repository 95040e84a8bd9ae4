"""Roll out a base model as a policy in a vector environment, one episode per sub-env."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from irl_agents.models import BaseModel
from irl_agents.models.base import Controller
from irl_envs.rollout import current_targets, task_row

ControllerFn = Callable[[dict], Controller | None]
"""Maps the vector env's info (task, progress) to a controller for this step, or None."""


@torch.no_grad()
def rollout_success(model: BaseModel, venv: gym.vector.VectorEnv, seed: int,
                    controller_fn: ControllerFn | None = None, layer: int | None = None,
                    greedy: bool = False, max_steps: int = 10_000,
                    obs_fn: Callable[[np.ndarray, dict], np.ndarray] | None = None,
                    ) -> dict[str, np.ndarray]:
    """Play one episode in every sub-environment with the model's own action distribution.

    Args:
        model: base model (its incremental ``step`` is used).
        venv: vector env with next-step autoreset (only each sub-env's first episode counts).
        seed: environment reset seed; the action sampler uses ``torch.Generator(seed)``.
        controller_fn: per-step controller from the env info (e.g. ground-truth subgoals).
        layer: boundary where the controller acts.
        greedy: take the most likely action instead of sampling.
        obs_fn: maps the env's observation and info to the model's input (for instance, an
            oracle input appended); default: the observation itself.

    Returns:
        ``{"success": (N,) bool, "length": (N,) int, "progress": (N,) int, "event": (N,)
        str, "task": (N,) tuple}`` where progress is the number of task colours visited, event
        is how the episode ended, where the env's info says (the ant's ``"wrong_colour"``,
        ``"wall"``, ...; else empty), and task is the episode's colour sequence.
    """
    model.eval()
    n = venv.num_envs
    obs, info = venv.reset(seed=seed)
    tasks = np.empty(n, dtype=object)
    tasks[:] = [task_row(info, i) for i in range(n)]
    gen = torch.Generator().manual_seed(seed)
    state = model.initial_state(n)
    done = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    length = np.zeros(n, dtype=np.int64)
    progress = np.zeros(n, dtype=np.int64)
    event = np.full(n, "", dtype=object)
    for _ in range(max_steps):
        ctrl = controller_fn(info) if controller_fn is not None else None
        x = obs if obs_fn is None else obs_fn(obs, info)
        x = torch.as_tensor(x, dtype=torch.float32, device=model.device)
        out, state = model.step(x, state, controller=ctrl,
                                layer=layer if ctrl is not None else None)
        if model.config.discrete:  # sampled on the CPU, as the generator: the same anywhere
            logits = out.logits.cpu()
            actions = (logits.argmax(-1) if greedy else
                       torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0])
        else:
            mean = out.mean.cpu()
            noise = torch.randn(mean.shape, generator=gen)
            actions = mean if greedy else mean + noise * out.log_std.exp().cpu()
        obs, reward, terminated, truncated, info = venv.step(actions.numpy())
        live = ~done
        length += live
        progress = np.where(live, np.asarray(info["next_index"]), progress)
        success |= live & (np.asarray(reward) > 0)
        ends = live & (terminated | truncated)
        if "event" in info:
            event[ends] = np.asarray(info["event"], dtype=object)[ends]
        done |= terminated | truncated
        if done.all():
            break
    return {"success": success, "length": length, "progress": progress, "event": event,
            "task": tasks}


def rollout_summary(res: dict[str, np.ndarray]) -> dict:
    """Success rate, mean progress and length, and a tally of how episodes ended, from
    :func:`rollout_success`'s result (JSON-ready)."""
    ends = Counter("success" if ok else (ev or "time limit")
                   for ok, ev in zip(res["success"], res["event"], strict=True))
    return {"success_rate": float(res["success"].mean()),
            "mean_progress": float(res["progress"].mean()),
            "mean_length": float(res["length"].mean()), "ends": dict(ends)}


def subgoal_indices(info: dict, subgoal_of: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Ground-truth subgoal per sub-env from the info's task and progress."""
    targets = current_targets(info)
    return torch.as_tensor(subgoal_of(np.maximum(targets, 0)), dtype=torch.long)


def subgoal_breakdown(res: dict[str, np.ndarray], seen: set[tuple[int, int]],
                      colours_per_subgoal: int = 2) -> dict[str, float | int | None]:
    """Success per subgoal of :func:`rollout_success`'s episodes, by how the subgoal is entered.

    Subgoal ``j`` of a task covers colours ``j*k .. j*k + k - 1`` (``k = colours_per_subgoal``:
    the gridworld's colour pairs, the ant's single colours). It counts as *reached* when the
    episode visited every colour before it and *completed* when it visited its last colour.
    It is entered from the start (``j = 0``), through a transition (previous colour, first
    colour) that occurs in ``seen`` (the pretraining tasks' transitions), or through an unseen
    one. Per kind: ``reached``, ``completed`` and their ratio ``rate``; and ``colour_rate``,
    the share of reached colours that were then visited, over all colours of all tasks.
    Rates of kinds that never occur are ``None``.
    """
    k = colours_per_subgoal
    counts = {kind: [0, 0] for kind in ("start", "seen", "unseen")}
    colours = [0, 0]
    for task, progress in zip(res["task"], res["progress"], strict=True):
        for j in range(len(task) // k):
            first = j * k
            if progress < first:
                break
            kind = ("start" if j == 0 else
                    "seen" if (task[first - 1], task[first]) in seen else "unseen")
            counts[kind][0] += 1
            counts[kind][1] += int(progress >= first + k)
        colours[0] += min(int(progress) + 1, len(task))
        colours[1] += int(progress)
    out: dict[str, float | int | None] = {}
    for kind, (reached, completed) in counts.items():
        out |= {f"{kind}_reached": reached, f"{kind}_completed": completed,
                f"{kind}_rate": completed / reached if reached else None}
    out["colour_rate"] = colours[1] / colours[0] if colours[0] else None
    return out
