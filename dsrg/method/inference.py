"""Multi-scale inference with a dense CRF: the pseudo labels and the final test (the authors' recipe).

For one image: the network's logits at each input size, upsampled (bilinear) to the image, summed
(:func:`multiscale_probs`); softmax; optionally the test-time CRF (s = 1, unary -log p); argmax over all
classes (:func:`crf_label` with pydensecrf, :func:`lattice_labels` with the lattice over a batch of images).
:func:`dsrg.run.predict.predict` runs them over a split.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from . import transforms as T
from .crf import CRFParams, crf_test_energy, pydensecrf_one
from .crf_lattice import lattice_crf

#: How many pixels the lattice CRF takes at once on a GPU (11 images of 500 x 375, a few hundred MB of working
#: memory). On the CPU one image at a time is faster (``benchmarks/crf.py --test-time``).
LATTICE_BATCH_PIXELS = 1 << 21


def multiscale_probs(model: torch.nn.Module, image: np.ndarray, sizes: Sequence[tuple[int, int]],
                     device: torch.device, normalize: str, amp: bool = True, on_device: bool = False) -> torch.Tensor:
    """Softmax of the summed logits ``(C, H, W)`` (float32, on the CPU unless ``on_device``) of ``image``
    uint8 ``(H, W, 3)``, the network run at each ``(h, w)`` in ``sizes``; under bf16 autocast where ``amp``
    and ``device`` is a GPU (the caller asks only where it computes bf16 natively,
    :func:`dsrg.run.dist.bf16_native`)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image: expected uint8 (H, W, 3) RGB, got shape {image.shape}")
    if not sizes:
        raise InputError("sizes: expected at least one input size, got none")
    h, w = image.shape[:2]
    total = None
    with torch.no_grad():
        for size in sizes:
            x = T.to_chw(T.resize_image(image, size)).unsqueeze(0).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                logits = model(T.normalize(x, normalize))
            up = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=True)
            total = up if total is None else total + up
    probs = total[0].softmax(0)
    return probs if on_device else probs.cpu()


def crf_label(probs: np.ndarray, image: np.ndarray, params: CRFParams) -> np.ndarray:
    """The label map uint8 ``(H, W)`` of one image: the argmax of pydensecrf's test-time CRF of ``probs``
    float ``(C, H, W)`` on ``image`` uint8 ``(H, W, 3)``, probabilities floored at
    :data:`~dsrg.method.crf.PROB_FLOOR`."""
    if image.ndim != 3 or image.shape[2] != 3 or probs.shape[1:] != image.shape[:2]:
        raise InputError(f"crf_label: expected probs (C, H, W) and an RGB image (H, W, 3) of the same H, W, got "
                         f"{tuple(probs.shape)} and {tuple(image.shape)}")
    q = pydensecrf_one(crf_test_energy(probs), image, params)
    return q.argmax(0).astype(np.uint8)


def lattice_labels(items, params: CRFParams, device: torch.device, budget: int):
    """``(id, image, probs)`` -> ``(id, label)`` in order, the CRF on ``device`` over batches of images of
    at most ``budget`` pixels (at least one image)."""
    batch, pixels = [], 0

    def flush():
        energies = [crf_test_energy(p.to(device)) for _, _, p in batch]
        rgbs = [torch.as_tensor(np.array(image, copy=True)).to(device) for _, image, _ in batch]
        with torch.no_grad():
            qs = lattice_crf(energies, rgbs, params)
        return [(image_id, q.argmax(0).to(torch.uint8).cpu().numpy()) for (image_id, _, _), q in zip(batch, qs)]

    for item in items:
        h, w = item[1].shape[:2]
        if batch and pixels + h * w > budget:
            yield from flush()
            batch, pixels = [], 0
        batch.append(item)
        pixels += h * w
    if batch:
        yield from flush()
