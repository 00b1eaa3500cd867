"""The background seeds of a split, measured (the embedded-dataset page): saliency maps over many images,
computed or read from a folder, and the precision and recall of the background seeds they give against the
ground truth."""

from __future__ import annotations

import os
import time
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from ..data.saliency import SaliencyFolder
from ..errors import InputError
from ..method import BACKGROUND_THRESHOLD
from ..method.metrics import background_cue_counts
from ..method.saliency import compute_saliency


def saliency_maps(images: Iterable[np.ndarray], ids: Iterable[str] | None = None, *,
                  folder: str | os.PathLike | SaliencyFolder | None = None, method: str = "rbd",
                  resize: bool = False) -> Iterator[np.ndarray]:
    """Yield one normalised saliency map ``float32 (H, W)`` per image, lazily.

    With ``folder`` (a path or a :class:`~dsrg.data.saliency.SaliencyFolder`) the maps are read from it by image id
    (``ids`` is then required, in the same order as ``images``; each map must match its image's size
    unless ``resize``, which applies when ``folder`` is a path: a :class:`~dsrg.data.saliency.SaliencyFolder` keeps its
    own setting). Without it they are computed with ``method`` (see :func:`dsrg.method.saliency.compute_saliency`).
    """
    if folder is None:
        for image in images:
            yield compute_saliency(image, method)
        return
    if ids is None:
        raise InputError("saliency_maps: reading maps from a folder needs the image ids (ids=...)")
    source = folder if isinstance(folder, SaliencyFolder) else SaliencyFolder(folder, resize=resize)
    sentinel = object()
    ids_it, images_it = iter(ids), iter(images)
    while True:
        image, image_id = next(images_it, sentinel), next(ids_it, sentinel)
        if image is sentinel and image_id is sentinel:
            return
        if image is sentinel or image_id is sentinel:
            raise InputError("saliency_maps: images and ids have different lengths")
        yield source(image_id, np.asarray(image).shape[:2])


# --------------------------------------------------------------------------------------------------
# quality of the background cue


def background_cue_quality(dataset, method: str = "rbd", folder: str | os.PathLike | None = None,
                           threshold: float = BACKGROUND_THRESHOLD, limit: int | None = None,
                           progress: bool = True, resize: bool = False) -> dict:
    """Precision and recall of the background cue ``saliency < threshold`` against ground truth.

    Args:
        dataset: a :class:`dsrg.data.voc.VOCSegmentation` with masks (0 = background, 255 ignored).
        method / folder / resize: the saliency source, as in :func:`saliency_maps`.
        limit: score only the first ``limit`` images.
    Returns:
        dict with ``precision`` (cue pixels that are background, pooled over images), ``recall``
        (background pixels that are cues), ``cue_fraction`` (cue pixels / scored pixels),
        ``images`` and ``seconds_per_image``.
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    cue_bg = cue_all = bg_all = scored = 0
    start = time.perf_counter()
    maps = None if folder is None else SaliencyFolder(folder, resize=resize)
    for i in tqdm(range(n), desc=f"saliency ({folder or method})", disable=not progress):
        item = dataset[i]
        sal = compute_saliency(item["image"], method) if maps is None else maps(item["id"], item["mask"].shape)
        counts = background_cue_counts(sal, item["mask"], threshold)
        cue_bg += counts[0]; cue_all += counts[1]; bg_all += counts[2]; scored += counts[3]
    seconds = time.perf_counter() - start
    return {"precision": cue_bg / cue_all if cue_all else float("nan"),
            "recall": cue_bg / bg_all if bg_all else float("nan"),
            "cue_fraction": cue_all / scored if scored else float("nan"),
            "images": n, "seconds_per_image": seconds / max(n, 1)}
