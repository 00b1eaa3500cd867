"""Dense CRF (Kraehenbuehl & Koltun, NIPS 2011), batched over images, with the parameters of the authors' code
(Section 4.1: bilateral Potts weight 10, theta_alpha = 80 / s, theta_beta = 13; Gaussian weight 3,
theta_gamma = 3 / s; 10 mean-field iterations).

At training time (:func:`refine_for_growing`) on the output grid with ``s = 12``: the ``Q`` of the boundary
loss (Eq. 2) and of region growing (Eq. 3). At test time (:func:`crf_test`) at full resolution, ``s = 1``.
Three backends: ``pydensecrf`` (the permutohedral lattice, CPU, one image at a time), ``lattice`` (the same
lattice in torch, :mod:`dsrg.method.lattice`, batched over images of any sizes, on the input's device) and
``exact`` (the same model with dense ``(N, N)`` kernels in torch, batched; small grids only; ``exact_bf16``
keeps its appearance kernel in bfloat16 for the matmuls). At training time ``auto`` runs ``exact`` on CUDA, at
test time ``lattice``; ``pydensecrf`` elsewhere. The model they
follow, read from pydensecrf's sources, and how closely they agree: the book's fidelity chapter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, expect_choice, expect_shape
from . import CRF_BACKENDS as BACKENDS
from . import CRF_UNARIES as UNARIES
from . import TEST_CRF_BACKENDS as TEST_BACKENDS
from . import TRAIN_CRF_SCALE
from . import lattice as lat

EXACT = ("exact", "exact_bf16")                        # the dense backends, and their limit below
CLIP = 1e-4
# The exact backend holds (images, N, N) matrices: cap N (128 x 128; 1 GiB per image in float32 beyond).
EXACT_MAX_POSITIONS = 128 * 128
# Working memory the exact backend allows itself for one chunk of images (one (b, N, N) kernel).
EXACT_CHUNK_BYTES = 1 << 30
EXP_CUT = -69.0   # exp(-69) = 1e-30: smaller kernel entries are set to 0 (see _exp_cut_)
_KEEP_ABOVE = float(np.nextafter(np.float32(EXP_CUT), np.float32(-np.inf)))   # the float32 just below


@dataclass(frozen=True)
class CRFParams:
    """Pairwise parameters at scale ``s`` (Section 4.1: "the default values from the Koltun public
    implementation"; the values and the scale ``s`` are those of the authors' code)."""

    scale: float = 1.0
    iterations: int = 10
    bilateral_weight: float = 10.0
    theta_alpha: float = 80.0
    theta_beta: float = 13.0
    gaussian_weight: float = 3.0
    theta_gamma: float = 3.0


TRAIN_PARAMS = CRFParams(scale=TRAIN_CRF_SCALE)
TEST_PARAMS = CRFParams(scale=1.0)
#: The floor probabilities are clipped to before the test-time CRF's unary -log p, as the authors' eps; the
#: unary is then at most 11.5, so the CRF can still overturn a confident but isolated pixel.
PROB_FLOOR = 1e-5


def pydensecrf_one(unary: np.ndarray, image: np.ndarray, p: CRFParams) -> np.ndarray:
    """pydensecrf's mean-field marginals ``(C, H, W)`` float32 of one image: ``unary`` float32 ``(C, H, W)``
    energy, ``image`` uint8 ``(H, W, 3)``."""
    from pydensecrf import densecrf as dcrf  # imported here: worker processes import it themselves

    c, h, w = unary.shape
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(np.require(unary.reshape(c, -1), np.float32, ["C", "W"]))
    d.addPairwiseGaussian(sxy=p.theta_gamma / p.scale, compat=p.gaussian_weight)
    d.addPairwiseBilateral(sxy=p.theta_alpha / p.scale, srgb=p.theta_beta,
                           rgbim=np.require(image, np.uint8, ["C", "W"]), compat=p.bilateral_weight)
    return np.asarray(d.inference(p.iterations), dtype=np.float32).reshape(c, h, w)


def _one(args):
    return pydensecrf_one(*args)


def _resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` images -> uint8 ``(B, h, w, 3)`` resized (bilinear) to ``size``, same device."""
    x = images.detach()
    if tuple(x.shape[2:]) != tuple(size):
        x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=True).round().clamp(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _images_hwc(images: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(B, 3, H, W)`` images -> NumPy uint8 ``(B, h, w, 3)`` resized (bilinear) to ``size``."""
    return _resize_images(images, size).cpu().numpy()


def choose_backend(backend: str, positions: int, cuda: bool) -> str:
    """The backend that ``backend`` runs as on a grid of ``positions`` (``h * w``) positions, on CUDA or not:
    ``"auto"`` is ``"exact"`` on CUDA with at most ``EXACT_MAX_POSITIONS`` positions, else ``"pydensecrf"``.
    Raises InputError for an unknown name, or a dense backend on a grid too large."""
    expect_choice("backend", backend, BACKENDS)
    if backend == "auto":
        return "exact" if cuda and positions <= EXACT_MAX_POSITIONS else "pydensecrf"
    if backend in EXACT and positions > EXACT_MAX_POSITIONS:
        raise InputError(f"backend='{backend}' holds dense (h*w) x (h*w) kernels: at most {EXACT_MAX_POSITIONS} "
                         f"positions, got {positions}; use backend='pydensecrf'")
    return backend


def choose_test_backend(backend: str, cuda: bool) -> str:
    """The backend of the test-time CRF: ``"auto"`` is ``"lattice"`` on CUDA, else ``"pydensecrf"`` (faster
    on CPU cores, ``benchmarks/crf.py --test-time``). Raises InputError for an unknown name."""
    expect_choice("test-time CRF backend", backend, TEST_BACKENDS)
    if backend == "auto":
        return "lattice" if cuda else "pydensecrf"
    return backend


def resolve_backend(backend: str, probs: torch.Tensor) -> str:
    """The backend :func:`dense_crf` uses for ``probs`` (``(B, C, h, w)``): :func:`choose_backend` of its grid
    and device."""
    n = int(probs.shape[-2]) * int(probs.shape[-1]) if probs.dim() >= 2 else 0
    return choose_backend(backend, n, probs.is_cuda)


def unary_energy(probs, unary: str, floor: float = 1e-12):
    """The CRF's unary energy ``U``: ``-log max(p, floor)`` (``"logprob"``) or ``-p`` (``"prob"``, the authors'
    training-time choice). ``probs``: a tensor or a NumPy array, any shape; the result is of the same kind
    and dtype. The test-time CRF floors at :data:`PROB_FLOOR`."""
    expect_choice("unary", unary, UNARIES)
    if unary == "prob":
        return -probs
    if isinstance(probs, np.ndarray):
        return -np.log(np.clip(probs, floor, None))
    return -probs.clamp(min=floor).log()


def crf_test_energy(probs):
    """The test-time CRF's unary, ``-log max(p, PROB_FLOOR)``: tensor or NumPy array, any shape."""
    return unary_energy(probs, "logprob", PROB_FLOOR)


def _exp_cut_(arg: torch.Tensor) -> torch.Tensor:
    """``exp`` in place, with ``exp(arg) < 1e-30`` (``arg < EXP_CUT``) set to exactly 0: below float32's and
    float64's resolution beside the self term, and subnormal (slow on CPUs) if kept (the fidelity chapter).
    ``threshold_`` keeps ``arg > t``, ``t`` the float32 just below ``EXP_CUT``."""
    return F.threshold_(arg, _KEEP_ABOVE, -float("inf")).exp_()


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


def _normalisation(row_sums: torch.Tensor) -> torch.Tensor:
    """pydensecrf's ``NORMALIZE_SYMMETRIC``: ``1 / sqrt(sum_j k(i, j) + 1e-20)``."""
    return row_sums.add(1e-20).rsqrt_()


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

    ``A = w_b D_b K_b D_b + w_g D_g K_g D_g`` (module docstring: bilateral ``K_b``, Gaussian ``K_g``, their
    symmetric normalisations ``D``), so that one step reads ``Q <- softmax(-U + A Q)``. The backend itself
    keeps the kernels factored (:func:`crf_kernels`); this writes them out, for checks and figures.

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


def mean_field(energy: torch.Tensor, pairwise: torch.Tensor | list[Kernel], iterations: int) -> torch.Tensor:
    """Mean-field inference as pydensecrf's ``DenseCRF::inference``, batched.

    Args:
        energy: ``(B, C, N)`` unary energy ``U``.
        pairwise: the kernels of :func:`crf_kernels`, or a dense ``(B, N, N)`` (or ``(N, N)``) filter ``A``
            as :func:`pairwise_matrix`, same dtype.
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
    the last axis of ``neg_u`` (``-U``): the update of :func:`mean_field` and :func:`lattice_crf` alike."""
    q = neg_u.softmax(-1)
    for _ in range(iterations):
        t = neg_u
        for kernel in kernels:
            t = kernel.add_message(t, q)
        q = t.softmax(-1)
    return q


def _dense_crf_exact(probs: torch.Tensor, images: torch.Tensor, params: CRFParams, unary: str,
                     matmul_dtype: torch.dtype | None = None, floor: float = 1e-12) -> torch.Tensor:
    b, c, h, w = probs.shape
    n = h * w
    dtype = torch.float64 if probs.dtype == torch.float64 else torch.float32
    energy = unary_energy(probs.detach().to(dtype), unary, floor).reshape(b, c, n)
    rgb = _resize_images(images.to(probs.device), (h, w))
    chunk = max(1, EXACT_CHUNK_BYTES // max(n * n * torch.finfo(dtype).bits // 8, 1))
    out = []
    for i in range(0, b, chunk):
        kernels = crf_kernels(rgb[i:i + chunk], params, dtype, matmul_dtype)
        out.append(mean_field(energy[i:i + chunk], kernels, params.iterations))
        del kernels
    return torch.cat(out).reshape(b, c, h, w).to(probs.dtype)


def _features(h: int, w: int, sxy: float, device: torch.device, rgb: torch.Tensor | None = None,
              srgb: float = 1.0) -> torch.Tensor:
    """pydensecrf's kernel features of an ``h x w`` grid, row-major: ``(x, y) / sxy`` and, with ``rgb``
    (uint8 ``(h, w, 3)``), ``(r, g, b) / srgb``; float32 ``(h * w, 2 or 5)``, float32 divisions as its."""
    sx = torch.tensor(float(np.float32(sxy)), device=device)
    yy, xx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    cols = [xx.reshape(-1) / sx, yy.reshape(-1) / sx]
    if rgb is not None:
        sr = torch.tensor(float(np.float32(srgb)), device=device)
        cols += list((rgb.reshape(-1, 3).float() / sr).unbind(1))
    return torch.stack(cols, 1)


def lattice_crf(energies: list[torch.Tensor], rgbs: list[torch.Tensor], params: CRFParams) -> list[torch.Tensor]:
    """Mean-field inference on the permutohedral lattice (:mod:`dsrg.method.lattice`) for images of any
    sizes at once, as pydensecrf computes it for each (its Gaussian kernel, then its bilateral one).

    Args:
        energies: float32 unary energies ``(C, h_k, w_k)``, one per image, all on one device.
        rgbs: uint8 ``(h_k, w_k, 3)`` images on that device.
        params: pairwise parameters and scale.
    Returns:
        the marginals ``Q``, float32 ``(C, h_k, w_k)`` per image.
    """
    dev = energies[0].device
    sizes = [e.shape[1] * e.shape[2] for e in energies]
    group = torch.cat([torch.full((n,), k, dtype=torch.long, device=dev) for k, n in enumerate(sizes)])
    origin = torch.tensor([k for k, n in enumerate(sizes) if n % 4], device=dev, dtype=torch.long)  # lattice.build
    kernels = []
    for weight, sxy, srgb in ((params.gaussian_weight, params.theta_gamma / params.scale, None),
                              (params.bilateral_weight, params.theta_alpha / params.scale, params.theta_beta)):
        if weight == 0:
            continue
        features = [_features(e.shape[1], e.shape[2], sxy, dev, None if srgb is None else im, srgb or 1.0)
                    for e, im in zip(energies, rgbs)]
        grid = lat.build(torch.cat(features), group, origin)
        norm = _normalisation(lat.filter(grid, torch.ones(group.shape[0], 1, device=dev)))
        kernels.append(Kernel(lambda q, grid=grid: lat.filter(grid, q), norm, weight))
    neg_u = -torch.cat([e.reshape(e.shape[0], -1).T for e in energies]).float()     # (P, C)
    q = _mean_field_steps(neg_u, kernels, params.iterations)
    return [part.T.reshape(e.shape) for part, e in zip(q.split(sizes), energies)]


def _dense_crf_pydensecrf(probs: torch.Tensor, images: torch.Tensor, params: CRFParams, unary: str,
                          map_fn: Callable, floor: float) -> torch.Tensor:
    b, c, h, w = probs.shape
    energy = unary_energy(probs.detach().float().cpu().numpy(), unary, floor)
    rgb = _images_hwc(images, (h, w))
    out = list(map_fn(_one, [(energy[i], rgb[i], params) for i in range(b)]))
    return torch.from_numpy(np.stack(out)).to(device=probs.device, dtype=probs.dtype)


def dense_crf(probs: torch.Tensor, images: torch.Tensor, params: CRFParams, unary: str = "logprob",
              map_fn: Callable = map, backend: str = "pydensecrf", floor: float = 1e-12) -> torch.Tensor:
    """Dense-CRF marginals for a batch.

    Args:
        probs: float ``(B, C, H, W)`` class probabilities.
        images: uint8 ``(B, 3, H', W')`` RGB images; resized to ``(H, W)`` if their size differs.
        params: pairwise parameters and scale.
        unary: ``"logprob"`` (energy ``-log p``) or ``"prob"`` (energy ``-p``, the DSRG code's choice).
        map_fn: how pydensecrf goes over the images: ``map``, one after another, or a process pool's ``map``
            (:func:`dsrg.run.workers.mapper`).
        backend: ``"pydensecrf"``, ``"exact"``, ``"exact_bf16"``, ``"lattice"`` or ``"auto"`` (module
            docstring).
        floor: the probability ``logprob`` clips to before the log.
    Returns:
        float ``(B, C, H, W)`` marginals on ``probs``' device and dtype. No gradient.
    """
    expect_shape("probs", probs, (None, None, None, None))
    b, c, h, w = probs.shape
    expect_shape("images", images, (b, 3, None, None))
    if images.dtype != torch.uint8:
        raise InputError(f"images: expected uint8 RGB values, got {images.dtype}")
    expect_choice("unary", unary, UNARIES)
    backend = resolve_backend(backend, probs)
    if backend in EXACT:
        # No autocast: only exact_bf16's appearance kernel multiplies in bf16 (the fidelity chapter's figures)
        with torch.no_grad(), torch.autocast(probs.device.type, enabled=False):
            return _dense_crf_exact(probs, images, params, unary,
                                    torch.bfloat16 if backend == "exact_bf16" else None, floor)
    if backend == "lattice":
        energy = unary_energy(probs.detach().float(), unary, floor)
        rgb = _resize_images(images.to(probs.device), (h, w))
        with torch.no_grad(), torch.autocast(probs.device.type, enabled=False):
            return torch.stack(lattice_crf(list(energy), list(rgb), params)).to(probs.dtype)
    return _dense_crf_pydensecrf(probs, images, params, unary, map_fn, floor)


def crf_train(probs: torch.Tensor, images: torch.Tensor, unary: str = "prob", map_fn: Callable = map,
              params: CRFParams = TRAIN_PARAMS, backend: str = "pydensecrf") -> torch.Tensor:
    """Training-time CRF on the output grid (s = 12); the images are resized to the grid.

    Default unary ``prob``: the DSRG code's energy ``-p``. ``backend`` as :func:`dense_crf`
    (``"auto"`` runs the exact batched CRF on CUDA). Shapes as :func:`dense_crf`.
    """
    return dense_crf(probs, images, params, unary, map_fn, backend)


def refine_for_growing(probs: torch.Tensor, images: torch.Tensor, unary: str = "prob",
                       map_fn: Callable = map, backend: str = "pydensecrf",
                       params: CRFParams = TRAIN_PARAMS) -> torch.Tensor:
    """Step 1 of region growing, as the authors' CRF layer: CRF-refine the smoothed softmax at the output
    grid, clip to >= 1e-4, renormalise over classes; the boundary loss takes the same ``Q``.
    ``(B, C, h, w)`` in, ``(B, C, h, w)`` out; ``backend`` as :func:`dense_crf`."""
    q = crf_train(probs, images, unary, map_fn, params=params, backend=backend).clamp(min=CLIP)
    return q / q.sum(dim=1, keepdim=True)


def crf_test(probs: torch.Tensor, images: torch.Tensor, map_fn: Callable = map,
             params: CRFParams = TEST_PARAMS, backend: str = "pydensecrf") -> torch.Tensor:
    """Test-time CRF at full resolution (s = 1), unary ``-log max(p, PROB_FLOOR)``, over a batch of images of one
    size. The pipeline computes the same per image (:func:`dsrg.method.inference.crf_label`) or over batches of
    images of any size (:func:`dsrg.method.inference.lattice_labels`), a test holding them equal. ``backend``:
    ``"pydensecrf"``, ``"lattice"`` or ``"auto"`` (:func:`choose_test_backend`; a full-resolution image is far
    too large for the dense kernels).
    Shapes as :func:`dense_crf`."""
    backend = choose_test_backend(backend, probs.is_cuda)
    return dense_crf(probs, images, params, "logprob", map_fn, backend, PROB_FLOOR)
