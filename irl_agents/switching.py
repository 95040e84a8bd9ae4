"""How well switching gates line up with the true subgoal boundaries (PAPER §5, Fig. 6)."""

from __future__ import annotations

import numpy as np


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Steps ``t >= 1`` where the label changes (the subgoal boundaries of one episode)."""
    labels = np.asarray(labels)
    return np.flatnonzero(labels[1:] != labels[:-1]) + 1


def switch_times(beta: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Steps ``t >= 1`` where the binarised gate fires (step 0 always switches; not scored)."""
    return np.flatnonzero(np.asarray(beta)[1:] >= threshold) + 1


def match_counts(pred: np.ndarray, true: np.ndarray, tolerance: int = 1) -> tuple[int, int]:
    """Greedy one-to-one matching within ``tolerance`` steps.

    Returns:
        ``(matched predictions, matched true boundaries)``; equal under one-to-one matching.
    """
    used = np.zeros(len(true), dtype=bool)
    matched = 0
    for p in pred:
        dist = np.abs(true - p)
        candidates = np.flatnonzero((dist <= tolerance) & ~used)
        if len(candidates):
            used[candidates[np.argmin(dist[candidates])]] = True
            matched += 1
    return matched, matched


def alignment(betas: list[np.ndarray], labels: list[np.ndarray], threshold: float = 0.5,
              tolerance: int = 1) -> dict[str, float]:
    """Precision, recall and F1 of switch times against true boundaries, over episodes.

    Also reports ``quasi_binary`` (share of gate values outside [0.1, 0.9]), the mean number
    of switches and of true boundaries per episode.
    """
    tp = n_pred = n_true = 0
    inside = total = 0
    for beta, lab in zip(betas, labels, strict=True):
        pred, true = switch_times(beta, threshold), boundaries(lab)
        m, _ = match_counts(pred, true, tolerance)
        tp, n_pred, n_true = tp + m, n_pred + len(pred), n_true + len(true)
        inner = np.asarray(beta)[1:]
        inside += int(((inner > 0.1) & (inner < 0.9)).sum())
        total += len(inner)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    episodes = max(len(betas), 1)
    return {"precision": precision, "recall": recall, "f1": f1,
            "quasi_binary": 1.0 - inside / max(total, 1),
            "switches_per_episode": n_pred / episodes,
            "boundaries_per_episode": n_true / episodes}
