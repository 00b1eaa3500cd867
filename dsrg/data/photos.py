"""Photographs that ship with scikit-image, at a chosen size: real images for the test-time CRF's checks
(``benchmarks/crf.py --test-time``, the performance chapter), no download needed."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: The colour photographs of ``skimage.data`` used, in order.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photographs(n: int, h: int, w: int) -> list[tuple[str, np.ndarray]]:
    """``n`` photographs (cycling through :data:`PHOTOS`), each scaled (bilinear, antialiased) to cover
    ``h`` x ``w`` and centre-cropped: ``(name, uint8 (h, w, 3))``."""
    from skimage import data

    out = []
    for k in range(n):
        name = PHOTOS[k % len(PHOTOS)]
        x = torch.from_numpy(np.ascontiguousarray(getattr(data, name)()[..., :3])).permute(2, 0, 1)[None].float()
        scale = max(h / x.shape[2], w / x.shape[3])
        x = F.interpolate(x, size=(max(h, round(x.shape[2] * scale)), max(w, round(x.shape[3] * scale))),
                          mode="bilinear", align_corners=False, antialias=True)
        top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        x = x[0, :, top:top + h, left:left + w].round().clamp(0, 255).to(torch.uint8)
        out.append((name, np.ascontiguousarray(x.permute(1, 2, 0).numpy())))
    return out
