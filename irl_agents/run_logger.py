"""Scalar logs of a training run: TensorBoard plus a long-format CSV, resumable.

``metrics.csv`` has one row per scalar: ``step, wall_time, tag, value``; tags are grouped as
in CleanRL (``losses/...``, ``charts/...``). A run resumed at step ``s`` keeps the rows it
wrote up to ``s`` and drops later ones (written after the checkpoint it resumes from, they
would be written again), and TensorBoard drops its events past ``s`` (``purge_step``), so a
resumed run's logs equal an uninterrupted run's.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from irl_envs.atomic import atomic_path

HEADER = ["step", "wall_time", "tag", "value"]


def keep_csv_rows(path: Path, header: list[str], keep) -> None:
    """Rewrite the CSV file ``path`` (atomically) with ``header`` and the rows for which
    ``keep(row)`` is true; rows that do not parse are dropped (a line cut short by a kill)."""
    rows = []
    if path.is_file():
        with open(path, newline="") as f:
            reader = csv.reader(f)
            if next(reader, None) == header:
                for row in reader:
                    try:
                        if len(row) == len(header) and keep(row):
                            rows.append(row)
                    except ValueError:
                        continue
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


class RunLogger:
    """Write scalars to ``out/tb`` and ``out/metrics.csv``.

    Args:
        out: the run's folder.
        resume_step: the step a resumed run continues from (0 for a fresh run, which starts
            a new ``metrics.csv``).
    """

    def __init__(self, out: str | Path, resume_step: int = 0) -> None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(out / "tb"), purge_step=resume_step or None)
        self.csv_path = out / "metrics.csv"
        keep_csv_rows(self.csv_path, HEADER,
                      lambda row: resume_step > 0 and int(row[0]) <= resume_step)
        self.start = time.time()

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Record ``tag -> value`` at ``step``."""
        elapsed = f"{time.time() - self.start:.2f}"
        with open(self.csv_path, "a", newline="") as f:
            rows = csv.writer(f)
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, float(value), step)
                rows.writerow([step, elapsed, tag, f"{float(value):.6g}"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
