"""Objects living in worker processes, called over one pipe each: the shared plumbing of the
batches of environments that step in parallel.

:class:`WorkerPool` starts W processes; worker ``k`` builds one object with ``factories[k]()``
and answers ``(method, args, kwargs)`` messages by calling that method. A request sends one
message to each chosen worker first and only then waits for the answers, so the workers run
at the same time. Used by :class:`irl_envs.experts.ant_expert.AntVectorEnv` (each worker holds
a ``SyncVectorEnv``) and :class:`irl_agents.raw_batch.ProcessRawBatch` (each holds a list of
environments stepped row by row).

The default start method is ``fork`` on Linux: workers start in milliseconds and scripts need
no ``if __name__ == "__main__"`` guard (as with Gymnasium's ``AsyncVectorEnv``). The workers
run only MuJoCo and numpy, never torch, so forking a parent with torch threads is safe.
Elsewhere it is ``spawn``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Call = tuple[str, tuple, dict]
"""A method name, its positional and its keyword arguments."""


def split_rows(num_rows: int, workers: int) -> np.ndarray:
    """Bounds ``(W + 1,)`` of W contiguous, near-equal slices of ``num_rows`` (W <= rows)."""
    if num_rows < 1 or workers < 1:
        raise ValueError(f"num_envs and workers must be >= 1, got {num_rows}, {workers}")
    return np.linspace(0, num_rows, min(workers, num_rows) + 1).round().astype(int)


def _serve(pipe, parent_pipe, factory: Callable[[], Any]) -> None:
    """Worker loop: build the object, then answer calls until ``close``."""
    parent_pipe.close()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import irl_envs  # noqa: F401  (registers the ids in a spawned process)

    obj = None
    try:
        obj = factory()
        while True:
            method, args, kwargs = pipe.recv()
            if method == "close":
                pipe.send((True, None))
                break
            try:
                pipe.send((True, getattr(obj, method)(*args, **kwargs)))
            except Exception as err:  # report to the parent, keep serving
                pipe.send((False, f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    finally:
        if obj is not None and hasattr(obj, "close"):
            obj.close()
        pipe.close()


class WorkerPool:
    """One object per worker process, built by a picklable factory (see the module docstring).

    Args:
        factories: one factory per worker.
        name: how errors name the pool's owner.
        context: multiprocessing start method (default ``fork`` on Linux, else ``spawn``).
    """

    def __init__(self, factories: Sequence[Callable[[], Any]], name: str = "worker pool",
                 context: str | None = None) -> None:
        ctx = mp.get_context(context or ("fork" if sys.platform.startswith("linux") else "spawn"))
        self.name = name
        self._pipes, self._procs = [], []
        for factory in factories:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, daemon=True, args=(child, parent, factory))
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)

    def __len__(self) -> int:
        return len(self._pipes)

    def request(self, calls: Mapping[int, Call]) -> dict[int, Any]:
        """Send ``calls[k]`` to worker ``k`` for every key at once, then gather the answers;
        ``RuntimeError`` with the worker's traceback if one failed."""
        for k, msg in calls.items():
            self._pipes[k].send(msg)
        out, errors = {}, []
        for k in calls:
            try:
                ok, value = self._pipes[k].recv()
            except EOFError:
                raise RuntimeError(f"{self.name}: worker {k} died") from None
            if ok:
                out[k] = value
            else:
                errors.append(f"{self.name}: worker {k} failed:\n{value}")
        if errors:  # every answer was read first, so the pipes stay in step
            raise RuntimeError(errors[0])
        return out

    def call_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """The same call on every worker; the answers in worker order."""
        out = self.request({k: (method, args, kwargs) for k in range(len(self))})
        return [out[k] for k in range(len(self))]

    def close(self) -> None:
        """Stop the workers (daemons: they also stop when the parent exits)."""
        for pipe in self._pipes:
            with contextlib.suppress(BrokenPipeError, EOFError, OSError):
                pipe.send(("close", (), {}))
                pipe.recv()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        for pipe in self._pipes:
            pipe.close()
        self._pipes, self._procs = [], []
