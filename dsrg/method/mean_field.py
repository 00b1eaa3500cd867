"""Mean-field inference of the dense CRF as pydensecrf's ``DenseCRF::inference``: ``Q = softmax(-U)``, then
``Q <- softmax(-U + sum_k w_k D_k K_k D_k Q)`` for each Gaussian kernel ``K_k`` of weight ``w_k`` and symmetric
normalisation ``D_k`` (:class:`Kernel`), filtered as dense matrices (:mod:`dsrg.method.crf_exact`) or on the
permutohedral lattice (:mod:`dsrg.method.crf_lattice`).
"""

from __future__ import annotations

from typing import Callable

import torch


class Kernel:
    """One normalised Gaussian kernel of the mean field, ``weight * D K D`` with ``D = diag(norm)``, kept
    factored: ``apply`` filters marginals (positions by classes, batched or not) ``q -> K q`` without ``D``;
    ``norm`` broadcasts against ``q`` (``(B or 1, N, 1)`` dense, ``(P, 1)`` on the lattice)."""

    def __init__(self, apply: Callable[[torch.Tensor], torch.Tensor], norm: torch.Tensor, weight: float):
        self.apply, self.norm, self.weight = apply, norm, weight
        self.scale = norm * weight

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """``weight * D K D q`` for ``q`` ``(B, N, C)``."""
        return self.apply(q * self.norm).mul_(self.scale)

    def add_message(self, t: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``t + weight * D K D q`` (a new tensor; one fused multiply-add after the filtering)."""
        return torch.addcmul(t, self.apply(q * self.norm), self.scale)


def _normalisation(row_sums: torch.Tensor) -> torch.Tensor:
    """pydensecrf's ``NORMALIZE_SYMMETRIC``: ``1 / sqrt(sum_j k(i, j) + 1e-20)``."""
    return row_sums.add(1e-20).rsqrt_()


def mean_field(energy: torch.Tensor, pairwise: torch.Tensor | list[Kernel], iterations: int) -> torch.Tensor:
    """Mean-field inference as pydensecrf's ``DenseCRF::inference``, batched.

    Args:
        energy: ``(B, C, N)`` unary energy ``U``.
        pairwise: the kernels of :func:`~dsrg.method.crf_exact.crf_kernels`, or a dense ``(B, N, N)`` (or
            ``(N, N)``) filter ``A`` as :func:`~dsrg.method.crf_exact.pairwise_matrix`, same dtype.
        iterations: mean-field steps; 0 returns ``softmax(-U)``.
    Returns:
        ``(B, C, N)`` marginals ``Q``, in the inputs' dtype whatever autocast is on.
    """
    if torch.is_tensor(pairwise):                    # the filter written out: one kernel, D = I, weight 1
        a = pairwise
        pairwise = [Kernel(lambda q: torch.matmul(a, q), torch.ones((), dtype=a.dtype, device=a.device), 1.0)]
    with torch.autocast(energy.device.type, enabled=False):
        q = _mean_field_steps(-energy.transpose(1, 2), pairwise, iterations)   # positions as rows for matmul
    return q.transpose(1, 2)


def _mean_field_steps(neg_u: torch.Tensor, kernels: list[Kernel], iterations: int) -> torch.Tensor:
    """``Q = softmax(-U)``, then ``iterations`` times ``Q <- softmax(-U + sum_k w_k D_k K_k D_k Q)``, classes on
    the last axis of ``neg_u`` (``-U``): the update of :func:`mean_field` and
    :func:`~dsrg.method.crf_lattice.lattice_crf` alike."""
    q = neg_u.softmax(-1)
    for _ in range(iterations):
        t = neg_u
        for kernel in kernels:
            t = kernel.add_message(t, q)
        q = t.softmax(-1)
    return q
