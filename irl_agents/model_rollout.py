"""Roll out a base model as a policy in a vector environment, one episode per sub-env."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from irl_agents.models import BaseModel
from irl_agents.models.base import Controller, StepOutput
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
        actions = sample_actions(model, out, gen, greedy)
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


def sample_actions(model: BaseModel, out: StepOutput, gen: torch.Generator,
                   greedy: bool = False) -> torch.Tensor:
    """Actions from one :meth:`BaseModel.step` output: sampled from the model's distribution
    with ``gen``, or its most likely action (``greedy``); on the CPU, as the generator, so the
    draws are the same on any device."""
    if model.config.discrete:
        logits = out.logits.cpu()
        return (logits.argmax(-1) if greedy else
                torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0])
    mean = out.mean.cpu()
    if greedy:
        return mean
    return mean + torch.randn(mean.shape, generator=gen) * out.log_std.exp().cpu()


class DaggerMixture:
    """DAgger's acting policy (Ross et al., 2011): the expert with probability ``beta``, else
    the base model, for a whole episode (``mix="episode"``) or drawn afresh at every step
    (``"step"``). With ``mix="handover"``, an episode the model plays opens with the expert
    for a number of steps drawn uniformly from ``[0, handover]``, so that the history the
    model then acts on shows where the expert was heading (a model that sees only observations
    cannot know its first target otherwise). A :class:`irl_envs.datasets.Behaviour` for
    ``generate_dataset``, which labels every visited state with the expert's noise-free action
    for the true current target.

    The model acts from the observations the vector env last returned (``last_obs`` of an
    :class:`~irl_envs.experts.ant_expert.AntVectorEnv` or a ``RecordLastStep`` wrapper),
    batched over the sub-environments with incremental inference; its state is reset where an
    episode starts. It steps on every sub-environment, also where the expert acts, so that in
    a step mixture its history holds every observation of the episode.

    Args:
        model: the base model (conditions on observations only).
        beta: probability that the expert acts, in [0, 1].
        seed: seed of the mixture's draws and of the model's action sampler.
        mix: ``"episode"``, ``"step"`` or ``"handover"``.
        handover: ``mix="handover"``: the most steps the expert opens a model episode with.
        greedy: the model takes its most likely action instead of sampling.
        source: what the metadata names as the model (e.g. its folder).
    """

    MIXES = ("episode", "step", "handover")

    def __init__(self, model: BaseModel, beta: float, seed: int = 0, mix: str = "episode",
                 greedy: bool = False, source: str = "", handover: int = 50):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if mix not in self.MIXES:
            raise ValueError(f"mix must be one of {list(self.MIXES)}, got {mix!r}")
        if not (isinstance(handover, int) and handover >= 0):
            raise ValueError(f"handover must be an int >= 0, got {handover!r}")
        self.handover = handover
        self.model, self.beta, self.mix, self.greedy = model.eval(), float(beta), mix, greedy
        self.source = source
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.state = None
        self.expert_rows = np.zeros(0, dtype=bool)
        self.t = self.prefix = np.zeros(0, dtype=np.int64)  # handover: step, expert's steps
        self.episode_expert: list[bool] = []
        """Per episode, in start order: whether the expert played it (``mix="episode"``,
        ``"handover"``)."""
        self.steps = {"expert": 0, "model": 0}

    def start(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        if self.state is None or len(self.expert_rows) != len(mask):
            self.state = self.model.initial_state(len(mask))
            self.expert_rows = np.zeros(len(mask), dtype=bool)
            self.t, self.prefix = (np.zeros(len(mask), dtype=np.int64) for _ in range(2))
        else:
            self.model.reset_state_rows(self.state, torch.as_tensor(mask, device=self.model.device))
        draws = self.rng.random(int(mask.sum())) < self.beta
        self.expert_rows[mask] = draws
        self.t[mask] = 0
        if self.mix == "handover":
            self.prefix[mask] = self.rng.integers(0, self.handover + 1, int(mask.sum()))
        self.episode_expert.extend(draws.tolist())

    @torch.no_grad()
    def __call__(self, venv: gym.vector.VectorEnv, expert_actions: np.ndarray) -> np.ndarray:
        from irl_envs.experts.ant_expert import last_step

        if self.state is None:
            raise RuntimeError("DaggerMixture: start() must be called when episodes begin")
        obs, _ = last_step(venv)
        if obs is None:
            raise TypeError("DaggerMixture acts from the vector env's last observation: use "
                            "AntVectorEnv or wrap the vector env in RecordLastStep")
        obs, expert_actions = np.asarray(obs), np.asarray(expert_actions)
        cfg = self.model.config
        if obs.shape[1:] != (cfg.obs_dim,) or cfg.discrete != (expert_actions.ndim == 1):
            raise ValueError(
                f"DaggerMixture: the model takes observations of {cfg.obs_dim} features and "
                f"{'discrete' if cfg.discrete else 'continuous'} actions; the env gives "
                f"{obs.shape[1:]} and {'discrete' if expert_actions.ndim == 1 else 'continuous'}"
                " actions (a model of another env, or one trained with extra inputs?)")
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.model.device)
        out, self.state = self.model.step(x, self.state, predict_obs=False)
        if self.mix == "episode":
            use = self.expert_rows
        elif self.mix == "handover":
            use = self.expert_rows | (self.t < self.prefix)
        else:
            use = self.rng.random(len(expert_actions)) < self.beta
        self.t += 1
        self.steps["expert"] += int(use.sum())
        self.steps["model"] += int((~use).sum())
        model_actions = sample_actions(self.model, out, self.gen, self.greedy).numpy()
        use = use.reshape(-1, *[1] * (expert_actions.ndim - 1))
        return np.where(use, expert_actions, model_actions.astype(expert_actions.dtype))

    def metadata(self, episodes) -> dict:
        """The mixture's settings and, per acting policy, episodes and success (unless ``mix
        = "step"``; in a handover episode the model acts after the expert's opening), for the
        dataset's metadata."""
        meta = {"dagger_model": self.source, "dagger_beta": self.beta, "dagger_mix": self.mix,
                "dagger_greedy": self.greedy,
                **({"dagger_handover": self.handover} if self.mix == "handover" else {}),
                "dagger_steps_acted": dict(self.steps)}  # all steps run, recorded or not
        if self.mix != "step":
            by_expert = np.array(self.episode_expert[:len(episodes.lengths)], dtype=bool)
            for name, rows in (("expert", by_expert), ("model", ~by_expert)):
                meta[f"dagger_{name}_episodes"] = int(rows.sum())
                meta[f"dagger_{name}_success"] = (float(episodes.success[rows].mean())
                                                  if rows.any() else None)
                meta[f"dagger_{name}_steps"] = int(episodes.lengths[rows].sum())
        return meta


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
