"""Multi-scale inference with a dense CRF: the pseudo labels and the final test (the authors' recipe).

For one image: the network's logits at each input size, upsampled (bilinear) to the image, summed;
softmax; optionally the test-time CRF (s = 1, unary -log p); argmax over all classes. With pydensecrf the
CRF of image k runs in a process pool while the network works on image k + 1; with the lattice backend
the CRF runs on the network's device, over a batch of images at once.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data import transforms as T
from ..workers import in_order, process_pool
from .crf import PROB_FLOOR, CRFParams, _dense_crf_one, lattice_crf, unary_energy

#: How many pixels the lattice CRF takes at once on a GPU (11 images of 500 x 375, a few hundred MB of working
#: memory). On the CPU one image at a time is faster (``benchmarks/crf.py --test-time``).
LATTICE_BATCH_PIXELS = 1 << 21


def multiscale_probs(model: torch.nn.Module, image: np.ndarray, sizes: Sequence[tuple[int, int]],
                     device: torch.device, normalize: str, amp: bool = True, on_device: bool = False) -> torch.Tensor:
    """Softmax of the summed logits ``(C, H, W)`` (float32, on the CPU unless ``on_device``) of ``image``
    uint8 ``(H, W, 3)``, the network run at each ``(h, w)`` in ``sizes``; under bf16 autocast where ``amp``
    and ``device`` is a GPU (the caller asks only where it computes bf16 natively,
    :func:`dsrg.run.dist.bf16_native`)."""
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


def _crf_label(probs: np.ndarray, image: np.ndarray, params: CRFParams) -> np.ndarray:
    q = _dense_crf_one(unary_energy(probs, "logprob", PROB_FLOOR), image, params)
    return q.argmax(0).astype(np.uint8)


def _lattice_labels(items, params: CRFParams, device: torch.device, budget: int):
    """``(id, image, probs)`` -> ``(id, label)`` in order, the CRF on ``device`` over batches of images of
    at most ``budget`` pixels (at least one image)."""
    batch, pixels = [], 0

    def flush():
        energies = [unary_energy(p.to(device), "logprob", PROB_FLOOR) for _, _, p in batch]
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


def predict(model: torch.nn.Module, images: Iterable[tuple[str, np.ndarray]], sizes_of, device: torch.device,
            normalize: str, crf: bool = True, workers: int = 2, amp: bool = True, crf_scale: float = 1.0,
            crf_backend: str = "pydensecrf", batch_pixels: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(id, label uint8 (H, W))`` for each ``(id, image)`` or ``(id, image, allowed)``;
    ``sizes_of(h, w)`` gives the input sizes. ``allowed`` (bool ``(C,)``, optional) restricts the
    prediction to those classes (their probabilities renormalised before the CRF). ``crf_scale`` is the
    test-time CRF's ``s`` (1 in the paper: its pixel distances are meant for VOC's ~500 px images).
    ``crf_backend``: ``"pydensecrf"`` (``workers`` processes) or ``"lattice"`` (on ``device``, images
    batched up to ``batch_pixels`` pixels; None: :data:`LATTICE_BATCH_PIXELS` on CUDA, one image elsewhere)."""
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
        yield from _lattice_labels(map(probs_of, images), params, device, batch_pixels)
        return
    with process_pool(max(1, workers), preload=[__name__]) as pool:
        yield from in_order(pool, ((image_id, _crf_label, (p.numpy(), image, params))
                                   for image_id, image, p in map(probs_of, images)), ahead)
