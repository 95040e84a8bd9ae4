"""The ``irl`` subcommands, one module each: argument parsing and printing only; the work is
done by library functions they call.

Every module has ``add_subcommand(subparsers)``, which registers its parser and sets
``run(args) -> int``; :data:`COMMANDS` lists them in the order of ``irl --help``. The CLI is
the top layer of the project: it may import ``irl_envs``, ``irl_agents`` and ``baselines``
(``irl compare``), and no library module imports it.

Options are derived from the settings dataclass the command fills
(:mod:`irl_agents.commands.options`), so a flag, its default and its help are defined once, by
the field. The same flags mean the same everywhere:

- ``--seed``, ``--json PATH`` (the command's figures as one JSON object), ``--no-progress`` and
  ``--threads N`` (torch CPU threads; 0 keeps torch's default) on every subcommand;
- ``--device`` (``cpu``, ``cuda``, ``cuda:1``, ...) on every subcommand that trains or runs a
  model, and ``--precision auto|fp32|bf16`` on those that train (:mod:`irl_agents.precision`);
- ``--base`` is the base model folder (``--model`` is kept as its alias), ``--meta`` the
  metacontroller folder, ``--dataset`` a demonstration file;
- ``--out`` is where the command writes: the dataset file for ``irl data``, the run folder for
  every command that trains (which a second call with the same settings continues and other
  settings are refused from unless ``--overwrite``, see :mod:`irl_agents.run_folder`).

Counts and ranges are checked where they enter: by the settings dataclasses' ``__post_init__``
(so that the Python API checks them too) or, for options that go straight to a function, by
:func:`check_options` at the start of the command; either way before any work, reported as
``irl COMMAND: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse

from irl_agents.commands.options import has_option
from irl_envs.validation import check_float, check_int

COMMANDS = ("data", "expert_eval", "train_ant_expert", "pretrain", "probe", "controllers",
            "discover", "segment_codes", "internal_rl", "demo", "compare")
"""Modules of this package, one per subcommand."""


def add_common(parser: argparse.ArgumentParser, *, json: bool = True, device: bool = False,
               precision: str | None = None) -> None:
    """The options every subcommand shares, where its settings do not already define them:
    ``--seed``, ``--no-progress``, ``--threads``, ``--json`` (unless ``json=False``), and
    ``--device`` / ``--precision`` (default ``precision``) when asked for."""
    if not has_option(parser, "--seed"):
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    if not has_option(parser, "--no-progress"):
        parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    if not has_option(parser, "--threads"):
        parser.add_argument("--threads", type=int, default=0,
                            help="torch CPU threads (default: 0, torch's own choice)")
    if json and not has_option(parser, "--json"):
        parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    if device and not has_option(parser, "--device"):
        parser.add_argument("--device", default="cpu",
                            help="torch device: cpu, cuda, cuda:1, ... (default: cpu)")
    if precision is not None and not has_option(parser, "--precision"):
        from irl_agents.precision import PRECISIONS

        parser.add_argument("--precision", choices=PRECISIONS, default=precision,
                            help="training forward passes in bf16 autocast, fp32, or auto: bf16 "
                                 f"where the device has it natively (default: {precision})")


def check_options(args: argparse.Namespace, at_least: dict[str, int] | None = None,
                  fractions: tuple[str, ...] = ()) -> None:
    """``ValueError`` naming the option unless each ``at_least`` option is an int at least
    its bound and each of ``fractions`` a number in [0, 1] (options given by ``dest`` name;
    None values are skipped; list values are checked item by item)."""
    for dest, low in (at_least or {}).items():
        for value in _values(getattr(args, dest)):
            check_int(_flag(dest), value, low)
    for dest in fractions:
        for value in _values(getattr(args, dest)):
            check_float(_flag(dest), value, low=0.0, high=1.0)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _values(value: object) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
