"""Linear probes of the current subgoal from the residual stream (PAPER §3, Fig. 3 / A1).

For every layer boundary ``l`` a multinomial logistic regression reads ``e_{t,l}`` and predicts
the subgoal being pursued at step ``t`` (side information of the dataset). Probes are fitted
on some episodes and scored on held-out episodes, so a probe cannot memorise a layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from irl_agents.episodes import iterate_batches, split_episodes
from irl_agents.models import BaseModel
from irl_envs.datasets import Demonstrations


@dataclass
class ProbeResult:
    """Held-out accuracy per layer boundary, and the majority-class baseline."""

    accuracy: list[float]
    """``accuracy[l]``: validation accuracy of the probe at boundary ``l`` (0..L)."""
    train_accuracy: list[float]
    """Training accuracy per boundary (a large gap means the probe overfits)."""
    chance: float
    """Accuracy of always predicting the most frequent training label."""
    train_steps: int
    val_steps: int

    def rows(self) -> list[dict]:
        return [{"layer": i, "val_accuracy": round(a, 4), "train_accuracy": round(t, 4)}
                for i, (a, t) in enumerate(zip(self.accuracy, self.train_accuracy, strict=True))]


@torch.no_grad()
def residual_features(model: BaseModel, data: Demonstrations, index: np.ndarray,
                      batch_size: int = 64) -> tuple[list[Tensor], Tensor]:
    """Residuals at every boundary for all valid steps of episodes ``index``.

    Returns:
        ``([ (N, d) for l in 0..L ], labels (N,))``.
    """
    model.eval()
    feats: list[list[Tensor]] = [[] for _ in range(model.n_layers + 1)]
    labels = []
    for batch in iterate_batches(data, index, batch_size, device=model.device):
        stream = model.residual_stream(batch.obs)
        for layer, e in enumerate(stream):  # the probes are fitted on the CPU
            feats[layer].append(e[batch.mask].cpu())
        labels.append(batch.subgoals[batch.mask].cpu())
    return [torch.cat(f) for f in feats], torch.cat(labels)


def fit_linear_probe(x: Tensor, y: Tensor, num_classes: int, l2: float = 1e-3,
                     iters: int = 100) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised features, fitted with L-BFGS."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    probe = torch.nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=iters,
                            line_search_fn="strong_wolfe")
    xs = (x - mean) / std

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(xs), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    # Fold the standardisation into the layer so it applies to raw residuals.
    with torch.no_grad():
        probe.weight /= std
        probe.bias -= (probe.weight * mean).sum(1)
    return probe


def probe_subgoals(model: BaseModel, data: Demonstrations, episodes: int | None = None,
                   val_fraction: float = 0.3, seed: int = 0, l2: float = 1e-3) -> ProbeResult:
    """Fit and score one probe per layer boundary.

    Args:
        model: base model (frozen; run in eval mode).
        data: demonstrations with subgoal side information.
        episodes: use only the first ``episodes`` episodes (all if None).
        val_fraction: share of episodes held out for scoring.
        seed: episode split seed.
        l2: weight penalty of the probes.
    """
    n = data.num_episodes if episodes is None else min(episodes, data.num_episodes)
    train, val = split_episodes(n, val_fraction, seed)
    x_tr, y_tr = residual_features(model, data, train)
    x_va, y_va = residual_features(model, data, val)
    num_classes = int(max(y_tr.max(), y_va.max())) + 1
    acc, train_acc = [], []
    for layer in range(model.n_layers + 1):
        probe = fit_linear_probe(x_tr[layer], y_tr, num_classes, l2)
        with torch.no_grad():
            acc.append(float((probe(x_va[layer]).argmax(1) == y_va).float().mean()))
            train_acc.append(float((probe(x_tr[layer]).argmax(1) == y_tr).float().mean()))
    majority = torch.bincount(y_tr, minlength=num_classes).argmax()
    chance = float((y_va == majority).float().mean())
    return ProbeResult(acc, train_acc, chance, len(y_tr), len(y_va))


def plot_probe(results: dict[str, list[ProbeResult]], path: str, title: str = "") -> None:
    """Accuracy vs layer, one line per model (median and range over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, runs in results.items():
        acc = np.array([r.accuracy for r in runs])
        layers = np.arange(acc.shape[1])
        ax.plot(layers, np.median(acc, 0), marker="o", label=name)
        if len(runs) > 1:
            ax.fill_between(layers, acc.min(0), acc.max(0), alpha=0.2)
    chance = np.mean([r.chance for runs in results.values() for r in runs])
    ax.axhline(chance, color="grey", ls="--", lw=1, label="majority class")
    ax.set_xlabel("layer boundary l")
    ax.set_ylabel("held-out subgoal accuracy")
    ax.set_title(title or "Linear probe of the current subgoal")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
