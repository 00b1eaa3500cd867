"""Dense CRF (Kraehenbuehl & Koltun, NIPS 2011), batched over images, with the parameters of the authors' code
(Section 4.1: bilateral Potts weight 10, theta_alpha = 80 / s, theta_beta = 13; Gaussian weight 3,
theta_gamma = 3 / s; 10 mean-field iterations).

At training time (:func:`refine_for_growing`) on the output grid with ``s = 12``: the ``Q`` of the boundary
loss (Eq. 2) and of region growing (Eq. 3). At test time (:func:`crf_test`) at full resolution, ``s = 1``.
Three backends: ``pydensecrf`` (the permutohedral lattice, CPU, one image at a time; here), ``lattice`` (the
same lattice in torch, batched over images of any sizes, on the input's device: :mod:`dsrg.method.crf_lattice`)
and ``exact`` (the same model with dense ``(N, N)`` kernels in torch, batched; small grids only; ``exact_bf16``
keeps its appearance kernel in bfloat16 for the matmuls: :mod:`dsrg.method.crf_exact`). At training time
``auto`` runs ``exact`` on CUDA, at test time ``lattice``; ``pydensecrf`` elsewhere. The model they follow, read
from pydensecrf's sources, and how closely they agree: the book's fidelity chapter.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, expect_choice, expect_shape
from . import CRF_BACKENDS as BACKENDS
from . import CRF_UNARIES as UNARIES
from . import TEST_CRF_BACKENDS as TEST_BACKENDS
from . import TRAIN_CRF_SCALE
from .crf_exact import crf_kernels
from .crf_params import CRFParams
from .crf_lattice import lattice_crf
from .mean_field import mean_field

EXACT = ("exact", "exact_bf16")                        # the dense backends, and their limit below
CLIP = 1e-4
# The exact backend holds (images, N, N) matrices: cap N (128 x 128; 1 GiB per image in float32 beyond).
EXACT_MAX_POSITIONS = 128 * 128
# Working memory the exact backend allows itself for one chunk of images (one (b, N, N) kernel).
EXACT_CHUNK_BYTES = 1 << 30


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
