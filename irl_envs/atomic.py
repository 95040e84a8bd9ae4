"""Atomic file writes: write a temporary file beside the target, then rename over it.

A reader (or a run resumed after Ctrl-C) sees either the old file or the new one, never a
half-written one: the temporary file is flushed to disk (fsync) before ``os.replace``, which
is atomic on POSIX and Windows, and removed if writing fails.

The file gets the permissions a plain ``open(path, "w")`` would give it: those of the file it
replaces, or ``0o666`` less the umask for a new file. Temporary files left behind by a killed
writer (named after its process id) are removed by the next write of the same target.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

_TMP_SUFFIX = ".tmp"
_LEGACY_ORPHAN_AGE_S = 3600.0
"""Temporary files without a process id in their name (older versions) count as orphaned
once this old."""


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but is not ours (or the check is unsupported)
        return True
    return True


def _orphaned(tmp: Path) -> bool:
    """Whether ``tmp`` (``.NAME.PID.HEX.tmp``, or ``.NAME.RANDOM.tmp`` from older versions)
    is a temporary file whose writer is gone."""
    parts = tmp.name[: -len(_TMP_SUFFIX)].rsplit(".", 2)
    if len(parts) == 3 and parts[1].isdigit() and len(parts[2]) == 8:
        return not _alive(int(parts[1]))
    return time.time() - tmp.stat().st_mtime >= _LEGACY_ORPHAN_AGE_S


def _remove(tmps: Iterator[Path]) -> None:
    for tmp in tmps:
        with suppress(OSError):
            if tmp.is_file() and _orphaned(tmp):
                tmp.unlink()


def _remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` whose writer is gone (killed mid-write)."""
    with suppress(OSError):
        _remove(path.parent.glob(f".{glob.escape(path.name)}.*{_TMP_SUFFIX}"))


def remove_orphans(folder: str | os.PathLike) -> None:
    """Delete every orphaned temporary file under ``folder``: for a run folder whose lock is
    held, where no other writer can have files in flight."""
    with suppress(OSError):
        _remove(Path(folder).rglob(f".*{_TMP_SUFFIX}"))


def _create_temporary(path: Path) -> Path:
    """A new empty file beside ``path`` with the mode ``open(path, "w")`` would give."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
        try:  # os.open applies the umask, unlike tempfile.mkstemp (always 0o600)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        with suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # keep the replaced file's mode
        return tmp


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is synced and renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a file")
    _remove_orphans(path)
    tmp = _create_temporary(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)
