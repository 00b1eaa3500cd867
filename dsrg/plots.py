"""Figures for the book: label maps in the VOC palette, image/mask grids, cue overlays.

Functions return matplotlib Figures; :func:`save_figure` writes PNG and SVG atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .data.voc import IGNORE, voc_palette
from .io import atomic_path


def colorize(mask: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)`` class map (255 = ignore) -> uint8 ``(H, W, 3)`` in the VOC palette."""
    return voc_palette()[np.asarray(mask, dtype=np.uint8)]


def cue_image(cues: np.ndarray) -> np.ndarray:
    """bool ``(C, H, W)`` multi-hot cues -> RGB: a pixel takes its highest seeded class's colour,
    white where unlabelled (the paper's Fig. 1 convention: black background, white unlabelled)."""
    cues = np.asarray(cues, dtype=bool)
    top = np.where(cues.any(0), cues.shape[0] - 1 - np.argmax(cues[::-1], axis=0), IGNORE)
    rgb = colorize(top.astype(np.uint8))
    rgb[top == IGNORE] = 255
    return rgb


def image_grid(panels: Sequence[Sequence[np.ndarray]], titles: Sequence[str], row_labels: Sequence[str] = (),
               size: float = 1.8):
    """A grid of images: ``panels[r][c]`` is an ``(H, W, 3)`` or ``(H, W)`` array; ``titles`` name the columns."""
    rows, cols = len(panels), len(titles)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            img = panels[r][c]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1 if img.ndim == 2 else None,
                      interpolation="nearest")
            ax.set_xticks([]); ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig, path_stem: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (atomic); returns the paths."""
    out = []
    for ext in (".png", ".svg"):
        path = Path(path_stem).with_suffix(ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext[1:], dpi=150, bbox_inches="tight")
        out.append(path)
    return out
