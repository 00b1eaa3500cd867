"""Multi-scale inference with a dense CRF: the pseudo labels and the final test (the authors' recipe).

For one image: the network's logits at each input size, upsampled (bilinear) to the image, summed;
softmax; optionally the test-time CRF (s = 1, unary -log p); argmax over all classes. The CRF of image k
runs in a process pool while the network works on image k + 1.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data import transforms as T
from ..workers import in_order, process_pool
from .crf import CRFParams, _dense_crf_one, unary_energy

#: The floor probabilities are clipped to before the test-time CRF's unary -log p, as the authors'
#: eps; the unary is then at most 11.5, so the CRF can still overturn a confident but isolated pixel.
PROB_FLOOR = 1e-5


def multiscale_probs(model: torch.nn.Module, image: np.ndarray, sizes: Sequence[tuple[int, int]],
                     device: torch.device, normalize: str, amp: bool = True) -> torch.Tensor:
    """Softmax of the summed logits ``(C, H, W)`` (float32, CPU) of ``image`` uint8 ``(H, W, 3)``,
    the network run at each ``(h, w)`` in ``sizes``; under bf16 autocast where ``amp`` and ``device`` is a
    GPU (the caller asks only where it computes bf16 natively, :func:`dsrg.run.dist.bf16_native`)."""
    h, w = image.shape[:2]
    total = None
    with torch.no_grad():
        for size in sizes:
            x = T.to_chw(T.resize_image(image, size)).unsqueeze(0).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                logits = model(T.normalize(x, normalize))
            up = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=True)
            total = up if total is None else total + up
    return total[0].softmax(0).cpu()


def _crf_label(probs: np.ndarray, image: np.ndarray, params: CRFParams) -> np.ndarray:
    q = _dense_crf_one(unary_energy(probs, "logprob", PROB_FLOOR), image, params)
    return q.argmax(0).astype(np.uint8)


def predict(model: torch.nn.Module, images: Iterable[tuple[str, np.ndarray]], sizes_of, device: torch.device,
            normalize: str, crf: bool = True, workers: int = 2, amp: bool = True,
            crf_scale: float = 1.0) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(id, label uint8 (H, W))`` for each ``(id, image)`` or ``(id, image, allowed)``;
    ``sizes_of(h, w)`` gives the input sizes. ``allowed`` (bool ``(C,)``, optional) restricts the
    prediction to those classes (their probabilities renormalised before the CRF). ``crf_scale`` is the
    test-time CRF's ``s`` (1 in the paper: its pixel distances are meant for VOC's ~500 px images)."""
    model.eval()

    def probs_of(item):
        image_id, image, *allowed = item
        p = multiscale_probs(model, image, sizes_of(*image.shape[:2]), device, normalize, amp)
        if allowed:
            keep = torch.as_tensor(allowed[0], dtype=torch.bool).view(-1, 1, 1)
            p = torch.where(keep, p, torch.zeros_like(p))
            p = p / p.sum(0, keepdim=True).clamp(min=1e-12)
        return image_id, image, p

    if not crf:
        for item in images:
            image_id, _, p = probs_of(item)
            yield image_id, p.argmax(0).numpy().astype(np.uint8)
        return
    params, ahead = CRFParams(scale=crf_scale), 2 * max(1, workers)
    with process_pool(max(1, workers), preload=[__name__]) as pool:
        yield from in_order(pool, ((image_id, _crf_label, (p.numpy(), image, params))
                                   for image_id, image, p in map(probs_of, images)), ahead)
