"""Run folders: one command, one configuration, one writer at a time.

Every command that writes a folder of results (``irl pretrain``, ``discover``,
``segment-codes``, ``internal-rl``, ``demo``, ``compare``, the baselines, the ant expert's
training) claims it first with :func:`claim_run`::

    with claim_run(cfg.out_dir, "internal-rl", config, overwrite=cfg.overwrite) as run:
        ...  # run.fresh: start from scratch (else continue what the folder holds)

The claim

- records the command and the settings that define the run in ``OUT/run.json``;
- refuses a folder that holds another command's run, a run with other settings, or files it
  did not write, naming the difference, unless ``overwrite`` is set: then a recorded run is
  deleted first (a folder without ``run.json`` is written into, nothing deleted);
- holds an exclusive lock (``OUT/.lock``, released when the process ends, however it ends),
  so a second process writing the same folder is refused instead of mixing its files in.

Settings that only control how far or how a run goes (step or episode budgets, progress bars,
thread counts) are left out of the recorded configuration, so a finished run can be extended.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from irl_envs.atomic import remove_orphans, write_json
from irl_envs.versions import versions

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
_FORMAT = "internal-rl-run"


class RunFolderError(ValueError):
    """A run folder that this command may not write (the CLI prints it as a usage error)."""


def run_config(config: Mapping[str, Any], ignore: Iterable[str] = ()) -> dict[str, Any]:
    """``config`` as plain JSON data (tuples become lists), without the ``ignore`` keys."""
    skip = set(ignore)
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in skip}))


class _Lock:
    """An exclusive, non-blocking lock on a file, held until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            self._acquire()
        except OSError:
            holder = self._holder()
            os.close(self.fd)
            raise RunFolderError(
                f"{path.parent} is being written by another process ({holder}); wait for it "
                "to finish or choose another output folder") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()}: {' '.join(sys.argv)}\n".encode())

    def _acquire(self) -> None:
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(self.fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _holder(self) -> str:
        try:
            return os.pread(self.fd, 500, 0).decode(errors="replace").strip() or "unknown"
        except (OSError, AttributeError):  # pragma: no cover - no pread (Windows)
            return "unknown"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = -1


class RunFolder:
    """A claimed run folder (see the module docstring); a context manager.

    Attributes:
        path: the folder.
        fresh: True when the run starts from scratch (new or emptied folder, or
            ``overwrite``); False when the folder holds this command's run with the same
            settings (or an older version's run of this command), which may be continued.
    """

    def __init__(self, path: Path, fresh: bool, lock: _Lock, created: bool) -> None:
        self.path, self.fresh, self._lock, self._created = path, fresh, lock, created

    def release(self) -> None:
        """Give up the lock (the files stay)."""
        self._lock.release()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is not None and self.fresh:
            self._forget_if_empty()
        self.release()

    def _forget_if_empty(self) -> None:
        """A fresh run that failed before writing anything (a missing input file, say) leaves
        no record behind, so that a corrected command is not refused as "other settings"."""
        names = {p.name for p in self.path.iterdir()}
        if names <= {RUN_FILE, LOCK_FILE}:
            (self.path / RUN_FILE).unlink(missing_ok=True)
            if self._created:
                (self.path / LOCK_FILE).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.path.rmdir()


def records(path: Path, key: str) -> bool:
    """Whether the JSON file ``path`` is an object with ``key`` (for ``legacy`` checks)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and key in data


def claim_run(out: str | os.PathLike, command: str, config: Mapping[str, Any], *,
              overwrite: bool = False,
              legacy: Iterable[str] | Callable[[Path], bool] = (),
              defaults: Mapping[str, Any] | None = None) -> RunFolder:
    """Claim ``out`` for a run of ``command`` with ``config``; see the module docstring.

    Args:
        out: the output folder (created if missing).
        command: the ``irl`` subcommand (or library function) writing it.
        config: the settings that define the run, as :func:`run_config` returns them.
        overwrite: replace whatever run the folder holds instead of refusing.
        legacy: files (or a test of the folder) that mark a run of ``command`` written
            before run folders were recorded; such a folder is adopted (the command checks
            its own checkpoint).
        defaults: the default of every setting. A setting added to the library after a run
            was recorded is missing from its record; it matches when ``config`` has its
            default, so a new option does not lock old runs out.

    Raises:
        RunFolderError: the folder belongs to another run, or another process holds it.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"output folder {path} exists and is not a folder")
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    config = run_config(config)
    if not callable(legacy):
        legacy = _holds_any(tuple(legacy))
    lock = _Lock(path / LOCK_FILE)
    try:
        remove_orphans(path)  # temporary files of a writer killed mid-write
        fresh = _check(path, command, config, overwrite, legacy, run_config(defaults or {}))
        if fresh or not (path / RUN_FILE).is_file():
            write_json(path / RUN_FILE, {"format": _FORMAT, "command": command,
                                         "config": config, "versions": versions()})
    except BaseException:
        lock.release()
        raise
    return RunFolder(path, fresh, lock, created)


def _holds_any(markers: tuple[str, ...]) -> Callable[[Path], bool]:
    def test(folder: Path) -> bool:
        return any((folder / marker).exists() for marker in markers)

    return test


def _check(path: Path, command: str, config: dict, overwrite: bool,
           legacy: Callable[[Path], bool], defaults: dict) -> bool:
    """Whether the run starts fresh; raises if the folder may not be written."""
    hint = "choose another output folder, or pass --overwrite (overwrite=True) to replace it"
    record = path / RUN_FILE
    if record.is_file():
        try:
            saved = json.loads(record.read_text())
            old_command, old_config = saved["command"], saved["config"]
            old_config = {k: defaults[k] for k in config if k not in old_config
                          and k in defaults} | old_config
        except (OSError, ValueError, KeyError, TypeError) as err:
            if not overwrite:
                raise RunFolderError(f"{record} is unreadable ({err}); {hint}") from None
            _empty(path)
            return True
        if old_command != command and not overwrite:
            raise RunFolderError(f"{path} holds a `{old_command}` run, not a `{command}` run; "
                                 f"{hint}")
        if old_config != config and not overwrite:
            raise RunFolderError(f"{path} holds a `{command}` run with other settings "
                                 f"({_difference(old_config, config)}); {hint}")
        if overwrite:
            _empty(path)
        return overwrite
    others = [p for p in path.iterdir() if p.name != LOCK_FILE]
    if not others:
        return True
    if legacy(path):
        return overwrite  # an older version's run of this command: it checks its own files
    if not overwrite:
        names = sorted(p.name for p in others)
        raise RunFolderError(f"{path} already holds files not written by `{command}` "
                             f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); "
                             f"{hint}")
    return True  # written into as asked; files of unknown origin are not deleted


def _empty(path: Path) -> None:
    """Delete a recorded run's files (everything in its folder but the lock)."""
    for p in path.iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _difference(old: dict, new: dict, limit: int = 4) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = [f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:limit]]
    return "; ".join(parts) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


def check_resume_budget(name: str, requested: int, done: int, folder: str | os.PathLike) -> None:
    """Refuse a budget below what the folder's checkpoint has already done: continuing would
    label a longer-trained model with the shorter budget."""
    if requested < done:
        raise RunFolderError(f"{name}={requested} is below the {done} already done by the "
                             f"checkpoint in {folder}; pass {name} >= {done} to continue it, "
                             "or --overwrite (overwrite=True) to start again")


def check_output_file(name: str, path: str | os.PathLike) -> Path:
    """``path`` if a file can be written there, else ``ValueError`` naming the option: check
    output paths before the work that fills them, not after."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a folder, not a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{name}: cannot create {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write {path}: no write permission in {folder}")
    return path
