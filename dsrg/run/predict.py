"""The inference loop of pseudo-labels and evaluate: a split's images through the network
(:func:`dsrg.method.inference.multiscale_probs`), their test-time CRF in worker processes while the network
works on the next image (pydensecrf) or on the network's device over a batch of images (the lattice)."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from ..method.crf import CRFParams
from ..method.inference import LATTICE_BATCH_PIXELS, crf_label, lattice_labels, multiscale_probs
from .workers import in_order, process_pool


def predict(model: torch.nn.Module, images: Iterable[tuple[str, np.ndarray]], sizes_of, device: torch.device,
            normalize: str, crf: bool = True, workers: int = 2, amp: bool = True, crf_scale: float = 1.0,
            crf_backend: str = "pydensecrf", batch_pixels: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(id, label uint8 (H, W))`` for each ``(id, image)`` or ``(id, image, allowed)``;
    ``sizes_of(h, w)`` gives the input sizes. ``allowed`` (bool ``(C,)``, optional) restricts the
    prediction to those classes (their probabilities renormalised before the CRF). ``crf_scale`` is the
    test-time CRF's ``s`` (1 in the paper: its pixel distances are meant for VOC's ~500 px images).
    ``crf_backend``: ``"pydensecrf"`` (``workers`` processes) or ``"lattice"`` (on ``device``, images
    batched up to ``batch_pixels`` pixels; None: :data:`~dsrg.method.inference.LATTICE_BATCH_PIXELS` on CUDA,
    one image elsewhere)."""
    model.eval()
    on_device = crf and crf_backend == "lattice"

    def probs_of(item):
        image_id, image, *allowed = item
        p = multiscale_probs(model, image, sizes_of(*image.shape[:2]), device, normalize, amp, on_device)
        if allowed:
            keep = torch.as_tensor(allowed[0], dtype=torch.bool, device=p.device).view(-1, 1, 1)
            p = torch.where(keep, p, torch.zeros_like(p))
            p = p / p.sum(0, keepdim=True).clamp(min=1e-12)
        return image_id, image, p

    if not crf:
        for item in images:
            image_id, _, p = probs_of(item)
            yield image_id, p.argmax(0).numpy().astype(np.uint8)
        return
    params, ahead = CRFParams(scale=crf_scale), 2 * max(1, workers)
    if crf_backend == "lattice":
        if batch_pixels is None:
            batch_pixels = LATTICE_BATCH_PIXELS if device.type == "cuda" else 0
        yield from lattice_labels(map(probs_of, images), params, device, batch_pixels)
        return
    with process_pool(max(1, workers), preload=[crf_label.__module__]) as pool:
        yield from in_order(pool, ((image_id, crf_label, (p.numpy(), image, params))
                                   for image_id, image, p in map(probs_of, images)), ahead)
