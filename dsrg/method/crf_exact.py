"""The dense CRF's ``exact`` backend: its two Gaussian kernels written out as dense ``(B, N, N)`` matrices in
torch (``N = h * w``), batched over the images of one grid, for small grids (the training-time output grid);
``exact_bf16`` keeps the appearance kernel in bfloat16 for its matmuls. Inference:
:mod:`dsrg.method.mean_field`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .crf_params import CRFParams
from .mean_field import Kernel, _normalisation

EXP_CUT = -69.0   # exp(-69) = 1e-30: smaller kernel entries are set to 0 (see _exp_cut_)
_KEEP_ABOVE = float(np.nextafter(np.float32(EXP_CUT), np.float32(-np.inf)))   # the float32 just below


def _exp_cut_(arg: torch.Tensor) -> torch.Tensor:
    """``exp`` in place, with ``exp(arg) < 1e-30`` (``arg < EXP_CUT``) set to exactly 0: below float32's and
    float64's resolution beside the self term, and subnormal (slow on CPUs) if kept (the fidelity chapter).
    ``threshold_`` keeps ``arg > t``, ``t`` the float32 just below ``EXP_CUT``."""
    return F.threshold_(arg, _KEEP_ABOVE, -float("inf")).exp_()


def _squared_distances(rgb: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``a`` ``(B, N, 9)``, ``b`` ``(B, 9, N)`` with ``a @ b = |c_i - c_j|^2`` for the uint8 colours of
    ``rgb`` ``(B, h, w, 3)``: ``-2 c_i . c_j + |c_i|^2 + |c_j|^2``, the squared norms split into base-256
    digits. Every entry is a power of two times an integer below 256, exact in bfloat16, TF32 and float32,
    and every partial sum an integer below 2^24: the product is exact whatever precision the matmul runs in."""
    b = rgb.shape[0]
    col = rgb.reshape(b, -1, 3).to(torch.int64)
    sq = col.square().sum(-1, keepdim=True)                                             # (B, N, 1) <= 195075
    hi, mid, lo = sq // 65536, sq // 256 % 256, sq % 256                                 # base-256 digits
    one = torch.ones_like(sq)
    left = torch.cat([col, hi, mid, lo, one, one, one], -1)
    right = torch.cat([-2 * col, 65536 * one, 256 * one, one, 65536 * hi, 256 * mid, lo], -1)
    return left.to(dtype), right.to(dtype).transpose(1, 2)


def _grid_distances(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(N, N)`` squared distances between the positions of an ``h x w`` grid, row-major (exact integers)."""
    yy, xx = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    yy, xx = yy.reshape(-1), xx.reshape(-1)
    return (yy[:, None] - yy[None]).square_() + (xx[:, None] - xx[None]).square_()


def bilateral_kernel(rgb: torch.Tensor, params: CRFParams, dtype: torch.dtype = torch.float32,
                     matmul_dtype: torch.dtype | None = None) -> Kernel:
    """The appearance kernel ``k(i, j) = exp(-|p_i - p_j|^2 / 2 sxy^2 - |c_i - c_j|^2 / 2 srgb^2)`` of each image,
    ``sxy = theta_alpha / s``, ``srgb = theta_beta``, as dense ``(B, N, N)`` matrices: one exact integer matmul
    for the colour distances, scaled and added to the position term in one pass (after the sum: a matmul
    that scales its terms first rounds them), then the cut and ``exp`` in place.

    Args:
        rgb: uint8 ``(B, h, w, 3)`` images on the grid, on the device the kernel is built on.
        matmul_dtype: where given (bfloat16), the matrix and the marginals it filters are rounded to it, its
            normalisation taken before in ``dtype``; the products of those rounded numbers are summed in ``dtype``
            (on CUDA in float32 from a matrix stored in ``matmul_dtype``).
    """
    b, h, w, _ = rgb.shape
    sxy, srgb = params.theta_alpha / params.scale, params.theta_beta
    left, right = _squared_distances(rgb, dtype)
    position = _grid_distances(h, w, rgb.device, dtype).mul_(-0.5 / sxy ** 2)              # (N, N), shared
    k = torch.bmm(left, right)                                                            # exact integers
    k = _exp_cut_(torch.add(position, k, alpha=-0.5 / srgb ** 2, out=k))
    norm = _normalisation(k.sum(-1, keepdim=True))
    if matmul_dtype is None or matmul_dtype == dtype:
        return Kernel(lambda q: torch.bmm(k, q), norm, params.bilateral_weight)
    if dtype == torch.float32 and k.is_cuda and _rounded_inputs_float32_sums(k.device, matmul_dtype):
        k = k.to(matmul_dtype)               # half the bytes to read; a product in float32 from its inputs
        return Kernel(lambda q: torch.bmm(k, q.to(matmul_dtype), out_dtype=dtype), norm, params.bilateral_weight)
    k = k.to(matmul_dtype).to(dtype)         # the same numbers where no such product exists (the CPU)
    return Kernel(lambda q: torch.bmm(k, q.to(matmul_dtype).to(dtype)), norm, params.bilateral_weight)


@torch.compiler.disable
@functools.cache
def _rounded_inputs_float32_sums(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether CUDA ``device`` multiplies ``dtype`` matrices into float32 (``torch.bmm(..., out_dtype=float32)``):
    products of bfloat16 numbers summed in float32, as the emulation in float32 computes them. Asked once per
    device, outside any compiled graph (a traced probe would answer for a stand-in of the op)."""
    try:
        x = torch.ones(1, 1, 1, dtype=dtype, device=device)
        return torch.bmm(x, x, out_dtype=torch.float32).dtype == torch.float32
    except (NotImplementedError, RuntimeError, TypeError):
        return False


def gaussian_kernel(h: int, w: int, params: CRFParams, device: torch.device,
                    dtype: torch.dtype = torch.float32) -> Kernel:
    """The smoothness kernel ``k(i, j) = exp(-|p_i - p_j|^2 / 2 sxy^2)``, ``sxy = theta_gamma / s``, shared by
    the images of a grid: a product of one kernel along y and one along x, so it filters as two small
    matmuls (each factor cut at ``EXP_CUT`` on its own)."""
    sxy = params.theta_gamma / params.scale

    def axis(n: int) -> torch.Tensor:
        t = torch.arange(n, device=device, dtype=dtype)
        return _exp_cut_((t[:, None] - t[None]).square_().mul_(-0.5 / sxy ** 2))        # (n, n)

    gy, gx = axis(h), axis(w)

    def apply(q: torch.Tensor) -> torch.Tensor:
        b, n, c = q.shape
        t = torch.matmul(gx, q.reshape(b, h, w, c))                                      # along x
        return torch.matmul(gy, t.reshape(b, h, w * c)).reshape(b, n, c)                # along y

    norm = (gy.sum(1)[:, None] * gx.sum(1)[None]).reshape(1, h * w, 1)
    return Kernel(apply, _normalisation(norm), params.gaussian_weight)


def crf_kernels(rgb: torch.Tensor, params: CRFParams, dtype: torch.dtype = torch.float32,
                matmul_dtype: torch.dtype | None = None) -> list[Kernel]:
    """The exact backend's pairwise terms for images ``rgb`` (uint8 ``(B, h, w, 3)``), in pydensecrf's
    order (Gaussian, then bilateral); a kernel of weight 0 is left out. Built in ``dtype`` whatever autocast
    is on; the bilateral one multiplies in ``matmul_dtype`` where given (:func:`bilateral_kernel`)."""
    _, h, w, _ = rgb.shape
    out = []
    with torch.autocast(rgb.device.type, enabled=False):
        if params.gaussian_weight != 0:
            out.append(gaussian_kernel(h, w, params, rgb.device, dtype))
        if params.bilateral_weight != 0:
            out.append(bilateral_kernel(rgb, params, dtype, matmul_dtype))
    return out


def pairwise_matrix(rgb: torch.Tensor, params: CRFParams, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The exact, normalised pairwise filter of one mean-field step, weights included, as one dense matrix.

    ``A = w_b D_b K_b D_b + w_g D_g K_g D_g`` (bilateral ``K_b``, Gaussian ``K_g``, their symmetric
    normalisations ``D``), so that one step reads ``Q <- softmax(-U + A Q)``. The backend itself keeps the
    kernels factored (:func:`crf_kernels`); this writes them out, for checks and figures.

    Args:
        rgb: uint8 ``(B, h, w, 3)`` images on the grid.
    Returns:
        ``(B, N, N)`` with ``N = h * w``, positions in row-major (y, x) order; symmetric.
    """
    b, h, w, _ = rgb.shape
    n = h * w
    eye = torch.eye(n, device=rgb.device, dtype=dtype).expand(b, n, n)
    out = torch.zeros(b, n, n, device=rgb.device, dtype=dtype)
    for kernel in crf_kernels(rgb, params, dtype):
        out += kernel(eye)                                    # column j: the filter of the j-th unit vector
    return out
