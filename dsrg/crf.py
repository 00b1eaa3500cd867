"""Dense CRF (Kraehenbuehl & Koltun, NIPS 2011) over pydensecrf2, batched over images.

Two uses in DSRG, both with the parameters of the authors' code (10 mean-field iterations):
bilateral Potts weight 10 with ``theta_alpha = 80 / s`` and ``theta_beta = 13`` (RGB), Gaussian Potts
weight 3 with ``theta_gamma = 3 / s``.

- Training time (:func:`crf_train`): on the network's output grid (41 x 41 at paper scale) with the
  image resized to that grid and ``s = 12``. It gives the ``Q`` of the boundary loss and, through
  :func:`refine_for_growing`, the probabilities region growing reads (step 1 of the reference's
  "Region growing" recipe). Unary: ``prob`` (the DSRG code feeds the probabilities themselves as
  energy, ``-p``) or ``logprob`` (``-log p``, as SEC and the usual CRF do).
- Test time (:func:`crf_test`): at full image resolution, ``s = 1``, unary ``-log p``.

Inputs are torch tensors on any device; the CRF runs on the CPU (NumPy) and the result returns on the
input's device. Many images go through a process pool (``workers``).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .checks import expect_shape
from .io import InputError

UNARIES = ("prob", "logprob")
CLIP = 1e-4


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


TRAIN_PARAMS = CRFParams(scale=12.0)
TEST_PARAMS = CRFParams(scale=1.0)


def _dense_crf_one(unary: np.ndarray, image: np.ndarray, p: CRFParams) -> np.ndarray:
    """Mean-field inference for one image. unary: float32 (C, H, W) energy; image: uint8 (H, W, 3)."""
    from pydensecrf import densecrf as dcrf  # imported here: worker processes import it themselves

    c, h, w = unary.shape
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(np.ascontiguousarray(unary.reshape(c, -1), dtype=np.float32))
    d.addPairwiseGaussian(sxy=p.theta_gamma / p.scale, compat=p.gaussian_weight)
    d.addPairwiseBilateral(sxy=p.theta_alpha / p.scale, srgb=p.theta_beta,
                           rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=p.bilateral_weight)
    return np.asarray(d.inference(p.iterations), dtype=np.float32).reshape(c, h, w)


def _one(args):
    return _dense_crf_one(*args)


def _images_hwc(images: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(B, 3, H, W)`` images -> uint8 ``(B, h, w, 3)`` resized (bilinear) to ``size``."""
    x = images.detach()
    if tuple(x.shape[2:]) != tuple(size):
        x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False).round().clamp(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def dense_crf(probs: torch.Tensor, images: torch.Tensor, params: CRFParams, unary: str = "logprob",
              workers: int | None = None) -> torch.Tensor:
    """Dense-CRF marginals for a batch.

    Args:
        probs: float ``(B, C, H, W)`` class probabilities.
        images: uint8 ``(B, 3, H', W')`` RGB images; resized to ``(H, W)`` if their size differs.
        params: pairwise parameters and scale.
        unary: ``"logprob"`` (energy ``-log p``) or ``"prob"`` (energy ``-p``, the DSRG code's choice).
        workers: processes for the batch; None = ``min(B, os.cpu_count())`` when B > 1, else 1.
    Returns:
        float ``(B, C, H, W)`` marginals on ``probs``' device and dtype.
    """
    expect_shape("probs", probs, (None, None, None, None))
    b, c, h, w = probs.shape
    expect_shape("images", images, (b, 3, None, None))
    if images.dtype != torch.uint8:
        raise InputError(f"images: expected uint8 RGB values, got {images.dtype}")
    if unary not in UNARIES:
        raise InputError(f"unary: expected one of {UNARIES}, got {unary!r}")
    p = probs.detach().float().cpu().numpy()
    energy = -np.log(np.clip(p, 1e-12, None)) if unary == "logprob" else -p
    rgb = _images_hwc(images, (h, w))
    jobs = [(energy[i], rgb[i], params) for i in range(b)]
    workers = min(b, os.cpu_count() or 1) if workers is None else workers
    if workers > 1 and b > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            out = list(pool.map(_one, jobs))
    else:
        out = [_one(j) for j in jobs]
    return torch.from_numpy(np.stack(out)).to(device=probs.device, dtype=probs.dtype)


def crf_train(probs: torch.Tensor, images: torch.Tensor, unary: str = "prob", workers: int | None = 1,
              params: CRFParams = TRAIN_PARAMS) -> torch.Tensor:
    """Training-time CRF on the output grid (s = 12); the images are resized to the grid.

    Default unary ``prob``: the DSRG code's energy ``-p``. Shapes as :func:`dense_crf`.
    """
    return dense_crf(probs, images, params, unary, workers)


def refine_for_growing(probs: torch.Tensor, images: torch.Tensor, unary: str = "prob",
                       workers: int | None = 1) -> torch.Tensor:
    """Step 1 of region growing: CRF-refine the smoothed softmax at the output grid, clip to >= 1e-4,
    renormalise over classes. ``(B, C, h, w)`` in, ``(B, C, h, w)`` out."""
    q = crf_train(probs, images, unary, workers).clamp(min=CLIP)
    return q / q.sum(dim=1, keepdim=True)


def crf_test(probs: torch.Tensor, images: torch.Tensor, workers: int | None = None,
             params: CRFParams = TEST_PARAMS) -> torch.Tensor:
    """Test-time CRF at full resolution (s = 1), unary ``-log p``. Shapes as :func:`dense_crf`."""
    return dense_crf(probs, images, params, "logprob", workers)
