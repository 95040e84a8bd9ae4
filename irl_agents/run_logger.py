"""Scalar logs of a training run: TensorBoard plus a long-format CSV, resumable.

``metrics.csv`` has one row per scalar: ``step, wall_time, tag, value``; tags are grouped as
in CleanRL (``losses/...``, ``charts/...``). A run resumed at step ``s`` keeps the rows it
already wrote and TensorBoard drops any events past ``s`` (``purge_step``).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class RunLogger:
    """Write scalars to ``out/tb`` and ``out/metrics.csv``.

    Args:
        out: the run's folder.
        resume_step: the step a resumed run continues from (0 for a fresh run).
    """

    def __init__(self, out: str | Path, resume_step: int = 0) -> None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(out / "tb"), purge_step=resume_step or None)
        self.csv_path = out / "metrics.csv"
        if resume_step == 0 or not self.csv_path.exists():
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(["step", "wall_time", "tag", "value"])
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
