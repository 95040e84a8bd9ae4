"""The methods compared in the paper's Fig. 8 (PAPER §7), each as a prepare and a train step.

``prepare`` builds what a method needs once per sweep (a metacontroller variant, a CompILE
model); ``train`` runs one seed of RL on the sparse-reward task and writes ``curve.csv`` and
``summary.json`` into its folder. Every RL run uses the same episode budget and batch size.

=========================  ==================================================================
internal-rl                the method: critic-free PPO on the metacontroller's latent codes
prior                      the same latent env, codes drawn from N(0, I), no learning
raw-action                 critic-free PPO fine-tuning the base model's own raw actions
no-temporal-abstraction    metacontroller trained with beta = 1 forced, then internal RL
cotrained                  base model and metacontroller trained jointly, then internal RL
compile                    CompILE's codes and boundaries (Kipf et al., 2019), then internal RL
segment-codes              the metacontroller's switching with codes named by where its
                           segments end (``irl segment-codes``, no labels), then internal RL
flat-ppo                   SB3 PPO from scratch on raw actions (the sanity floor)
=========================  ==================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Setup:
    """What every method of one sweep shares (plain data: it crosses process boundaries)."""

    env: str
    """Environment family."""
    task_set: str
    """Task set of the RL runs."""
    task: str | None
    """A single task replacing the task set's tasks, or None."""
    episodes: int
    """Episode budget per RL run."""
    batch_episodes: int
    """Episodes per PPO batch (and per curve row)."""
    base: str
    """Pretrained base model folder."""
    meta: str
    """Trained metacontroller folder (the method's)."""
    dataset: str
    """Expert demonstrations for the prepare steps."""
    prepared: str
    """Folder of the prepared artifacts (one subfolder per method)."""
    prepare_steps: int
    """Gradient steps of each prepare step (metacontroller variants, CompILE)."""
    alpha: float
    """KL weight of the metacontroller variants (the method's own alpha)."""
    layer: int
    """Controlled layer boundary (the method's metacontroller's)."""
    threshold: float
    """Switch threshold of the latent environments."""
    segment_layer: int | None
    """Boundary the segment codes' controllers write (None: ``layer``)."""
    eval_episodes: int
    """Held-out episodes scored by the prepare steps."""
    device: str = "cpu"
    """Torch device of every stage's models."""
    precision: str | None = None
    """Training precision of every stage (None: each stage's own default)."""
    greedy: bool = False
    """Latent methods take the base model's most likely raw action."""

    def run_options(self, precision: bool = True) -> dict[str, str]:
        """``device`` (and ``precision`` unless None) for a stage's settings."""
        options = {"device": self.device}
        if precision and self.precision is not None:
            options["precision"] = self.precision
        return options


def _internal(setup: Setup, seed: int, out: Path, base: str, meta: str, epochs: int = 2,
              threshold: float | None = None, meta_module=None) -> dict:
    from irl_agents.internal_rl import InternalRLConfig, internal_rl

    cfg = InternalRLConfig(base=base, meta=meta, env=setup.env, task_set=setup.task_set,
                           task=setup.task, episodes=setup.episodes,
                           batch_episodes=setup.batch_episodes, epochs=epochs,
                           threshold=setup.threshold if threshold is None else threshold,
                           greedy=setup.greedy, seed=seed, out_dir=str(out), progress=False,
                           **setup.run_options())
    return internal_rl(cfg, meta=meta_module)


def _prepared(setup: Setup, name: str) -> Path:
    return Path(setup.prepared) / name


def _discover(setup: Setup, name: str, **variant) -> None:
    from irl_agents.discovery import DiscoverConfig, discover

    discover(DiscoverConfig(base=setup.base, dataset=setup.dataset,
                            out_dir=str(_prepared(setup, name)), alpha=setup.alpha,
                            layer=setup.layer, steps=setup.prepare_steps,
                            eval_episodes=setup.eval_episodes, progress=False,
                            **setup.run_options(), **variant))


def _prepare_compile(setup: Setup) -> None:
    from baselines.compile import CompileConfig, train_compile

    train_compile(CompileConfig(base=setup.base, dataset=setup.dataset,
                                out_dir=str(_prepared(setup, "compile")), layer=setup.layer,
                                steps=setup.prepare_steps, eval_episodes=setup.eval_episodes,
                                progress=False, **setup.run_options()))


def _train_compile(setup: Setup, seed: int, out: Path) -> dict:
    """Internal RL on CompILE's codes, switching where its own gate puts boundaries.

    CompILE's gate is a calibrated hazard that rarely reaches 0.5, so its switch fires at the
    label-free threshold at which it fires as often as its segmentation has boundaries."""
    from baselines.compile import load_compile

    folder = _prepared(setup, "compile")
    summary = json.loads((folder / "summary.json").read_text())
    threshold = summary["alignment"]["gate_threshold"]
    return _internal(setup, seed, out, setup.base, str(folder), threshold=threshold,
                     meta_module=load_compile(folder))


def _prepare_segments(setup: Setup) -> None:
    """Segment codes from the method's own metacontroller. Controllers get a third of the
    prepare steps: 500 in the default sweep, as for the shipped segment codes."""
    from irl_agents.segment_codes import SegmentCodesConfig, segment_codes

    segment_codes(SegmentCodesConfig(base=setup.base, meta=setup.meta, dataset=setup.dataset,
                                     out_dir=str(_prepared(setup, "segment-codes")),
                                     threshold=setup.threshold,
                                     controller_layer=setup.segment_layer,
                                     controller_steps=max(1, setup.prepare_steps // 3),
                                     progress=False, **setup.run_options()))


def _train_raw(setup: Setup, seed: int, out: Path) -> dict:
    from baselines.raw_action import RawActionConfig, raw_action_rl

    return raw_action_rl(RawActionConfig(base=setup.base, env=setup.env,
                                         task_set=setup.task_set, task=setup.task,
                                         episodes=setup.episodes,
                                         batch_episodes=setup.batch_episodes, seed=seed,
                                         out_dir=str(out), progress=False,
                                         **setup.run_options()))


def _train_flat(setup: Setup, seed: int, out: Path) -> dict:
    from baselines.flat_ppo import FlatPPOConfig, flat_ppo

    return flat_ppo(FlatPPOConfig(env=setup.env, task_set=setup.task_set, task=setup.task,
                                  episodes=setup.episodes, batch_episodes=setup.batch_episodes,
                                  seed=seed, out_dir=str(out), progress=False,
                                  **setup.run_options(precision=False)))


@dataclass(frozen=True)
class Method:
    """One line of the comparison."""

    name: str
    train: Callable[[Setup, int, Path], dict]
    """Runs one seed into a folder; returns its summary."""
    prepare: Callable[[Setup], None] | None = None
    """Builds the method's artifacts under ``Setup.prepared/<name>`` (None: nothing to do)."""


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("internal-rl", lambda s, seed, out: _internal(s, seed, out, s.base, s.meta)),
    Method("prior", lambda s, seed, out: _internal(s, seed, out, s.base, s.meta, epochs=0)),
    Method("raw-action", _train_raw),
    Method("no-temporal-abstraction",
           lambda s, seed, out: _internal(s, seed, out, s.base,
                                          str(_prepared(s, "no-temporal-abstraction"))),
           prepare=lambda s: _discover(s, "no-temporal-abstraction", force_switch=True)),
    Method("cotrained",
           lambda s, seed, out: _internal(s, seed, out, str(_prepared(s, "cotrained") / "base"),
                                          str(_prepared(s, "cotrained"))),
           prepare=lambda s: _discover(s, "cotrained", cotrain="pretrained")),
    Method("compile", _train_compile, prepare=_prepare_compile),
    Method("segment-codes",
           lambda s, seed, out: _internal(s, seed, out, s.base, str(_prepared(s, "segment-codes"))),
           prepare=_prepare_segments),
    Method("flat-ppo", _train_flat),
)}
"""Every method, in the order of the tables and plots."""


def prepared_done(setup: Setup, name: str) -> bool:
    """True when ``name``'s prepare step finished (its ``summary.json`` exists)."""
    path = _prepared(setup, name) / "summary.json"
    return path.is_file() and bool(json.loads(path.read_text()))
