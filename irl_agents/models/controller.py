"""Linear residual-stream controllers ``e <- e + U e`` (PAPER §4-§6).

Shapes use ``...`` for the leading dims of the residual: ``(B, T)`` in the full forward,
``(B,)`` in :meth:`BaseModel.step`. Factors broadcast against them, so the same object
works on both paths as long as its factors carry matching leading dims (or none).

- :class:`LinearController`: per-step matrices given as tensors, low-rank
  ``U = A B^T`` with ``A, B (..., d, r)`` or full ``U (..., d, d)``. This is what a
  metacontroller's hypernetwork outputs.
- :class:`ControllerBank`: ``K`` learnable, time-invariant controllers (low-rank or full)
  selected per step by an integer index, e.g. ground-truth subgoal labels (PAPER §4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def apply_linear_control(
    e: Tensor, a: Tensor | None = None, b: Tensor | None = None, u: Tensor | None = None
) -> Tensor:
    """``e + A (B^T e)`` (low-rank) or ``e + U e`` (full). ``e (..., d)``."""
    if u is not None:
        if a is not None or b is not None:
            raise ValueError("give either low-rank factors (a, b) or a full matrix u, not both")
        return e + torch.einsum("...ij,...j->...i", u, e)
    if a is None or b is None:
        raise ValueError("low-rank control needs both factors a and b")
    coeff = torch.einsum("...dr,...d->...r", b, e)
    return e + torch.einsum("...dr,...r->...d", a, coeff)


class LinearController:
    """Callable controller ``e -> e + U e`` with fixed per-step factors.

    :param a: left factor ``(..., d, r)`` (low-rank) or ``None``.
    :param b: right factor ``(..., d, r)`` (low-rank) or ``None``.
    :param u: full matrix ``(..., d, d)`` or ``None``.

    With ``a`` or ``b`` (or ``u``) all zero the controller is the identity.
    """

    def __init__(self, a: Tensor | None = None, b: Tensor | None = None, u: Tensor | None = None):
        if u is None and (a is None or b is None):
            raise ValueError("LinearController needs (a, b) low-rank factors or a full u")
        if u is not None and (a is not None or b is not None):
            raise ValueError("LinearController takes either (a, b) or u, not both")
        if a is not None and (a.shape != b.shape):
            raise ValueError(f"factor shapes differ: a {tuple(a.shape)} vs b {tuple(b.shape)}")
        self.a, self.b, self.u = a, b, u

    @property
    def is_full(self) -> bool:
        """True for a full ``U``, False for low-rank factors."""
        return self.u is not None

    def __call__(self, e: Tensor) -> Tensor:
        return apply_linear_control(e, self.a, self.b, self.u)

    def at(self, t: int) -> LinearController:
        """Controller for time step ``t`` of per-step factors ``(B, T, ...)`` (for ``step``)."""
        if self.u is not None:
            return LinearController(u=self.u[:, t])
        return LinearController(self.a[:, t], self.b[:, t])


class ControllerBank(nn.Module):
    """``K`` learnable time-invariant linear controllers selected by an index per step.

    Low-rank (``rank`` given): ``U_k = A_k B_k^T``, ``A`` initialised to zero and ``B``
    randomly (LoRA-style), so the bank starts as the identity while still receiving
    gradients. Full (``rank=None``): ``U_k`` initialised to zero.

    :param num_controllers: K.
    :param d_model: residual width d.
    :param rank: factor rank r, or ``None`` for full ``d x d`` matrices.
    """

    def __init__(self, num_controllers: int, d_model: int, rank: int | None = 16) -> None:
        super().__init__()
        self.num_controllers, self.d_model, self.rank = num_controllers, d_model, rank
        if rank is None:
            self.u = nn.Parameter(torch.zeros(num_controllers, d_model, d_model))
        else:
            self.a = nn.Parameter(torch.zeros(num_controllers, d_model, rank))
            self.b = nn.Parameter(torch.randn(num_controllers, d_model, rank) / math.sqrt(d_model))

    def controller(self, index: Tensor | int) -> LinearController:
        """Controller using ``U_{index}``; ``index`` has the residual's leading dims
        (``(B, T)`` for forward, ``(B,)`` for step) or is a scalar (same for all)."""
        index = torch.as_tensor(index, device=self._param().device, dtype=torch.long)
        if self.rank is None:
            return LinearController(u=self.u[index])
        return LinearController(self.a[index], self.b[index])

    def _param(self) -> Tensor:
        return self.u if self.rank is None else self.a

    def forward(self, e: Tensor, index: Tensor | int) -> Tensor:
        """``e + U_{index} e``."""
        return self.controller(index)(e)
