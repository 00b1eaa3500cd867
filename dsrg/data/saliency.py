"""Precomputed saliency maps read from a folder (DRFI's, or any others), one file per image id, as dsrg's own
are made: ``float32 (H, W)`` in ``[0, 1]``, each min-max normalised on its own
(:func:`dsrg.method.saliency.normalize`; Section 3.1: the background seeds threshold a normalised map).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import InputError
from ..files import load_image
from ..method.saliency import normalize


def _check_size(size: Sequence[int] | None, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"{what}: size must be (H, W); got {size!r}") from None
    if h <= 0 or w <= 0:
        raise InputError(f"{what}: size must be positive (H, W); got {size!r}")
    return h, w


def _resize_bilinear(sal: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a float map ``(h, w)`` to ``size = (H, W)``, clipped to ``[0, 1]``."""
    h, w = size
    out = Image.fromarray(sal.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def read_saliency_png(path: str | os.PathLike, size: Sequence[int] | None = None,
                      resize: bool = False) -> np.ndarray:
    """Read a saliency map file as ``float32 (H, W)`` in ``[0, 1]`` (min-max normalised).

    Accepts 8-bit or 16-bit grayscale PNGs (and JPEGs, 32-bit integer or float TIFF-like modes);
    colour files are turned to luminance. ``size = (H, W)`` is the image's size: a map of another
    size raises :class:`~dsrg.errors.InputError` naming the file and both sizes, unless ``resize=True``, which
    bilinearly resizes it (after normalisation). A missing or unreadable file raises
    :class:`~dsrg.errors.InputError`.
    """
    path = Path(path)
    size = _check_size(size, f"saliency map {path}")
    im = load_image(path, "saliency map", "a grayscale PNG")
    if im.mode in ("L", "I", "F") or im.mode.startswith("I;16"):
        arr = np.asarray(im)
    else:  # palette, RGB(A), LA, 1, CMYK, ...: luminance
        arr = np.asarray(im.convert("L"))
    if arr.ndim != 2:
        raise InputError(f"saliency map {path} has shape {arr.shape}; expected a single-channel image")
    try:
        sal = normalize(arr)
    except InputError as exc:
        raise InputError(f"saliency map {path}: {exc}") from None
    if size is not None and sal.shape != size:
        if not resize:
            raise InputError(f"saliency map {path} has size (H, W) = {sal.shape} but the image has "
                             f"{size}; to resize such maps bilinearly: seeds.saliency_resize=true "
                             f"(in Python: resize=True)")
        sal = _resize_bilinear(sal, size)
    return sal


class SaliencyFolder:
    """Precomputed saliency maps, one file ``<folder>/<image_id><suffix>`` per image.

    ``SaliencyFolder(folder)(image_id, size)`` returns the map as :func:`read_saliency_png` does
    (``float32 (H, W)`` in ``[0, 1]``). A missing folder or file raises :class:`~dsrg.errors.InputError` naming
    it; a size mismatch raises unless ``resize=True``.
    """

    def __init__(self, folder: str | os.PathLike, suffix: str = ".png", resize: bool = False) -> None:
        self.folder = Path(folder)
        self.suffix = suffix
        self.resize = resize
        if not self.folder.is_dir():
            raise InputError(f"saliency folder not found: {self.folder} "
                             f"(expected a folder of <image_id>{suffix} maps)")

    def path(self, image_id: str) -> Path:
        """The file that holds ``image_id``'s map."""
        return self.folder / f"{image_id}{self.suffix}"

    def __call__(self, image_id: str, size: Sequence[int] | None = None) -> np.ndarray:
        path = self.path(image_id)
        if not path.is_file():
            raise InputError(f"no saliency map for image {image_id!r}: {path} not found "
                             f"in saliency folder {self.folder}")
        return read_saliency_png(path, size=size, resize=self.resize)

    def __repr__(self) -> str:
        return f"SaliencyFolder({str(self.folder)!r}, suffix={self.suffix!r}, resize={self.resize})"
