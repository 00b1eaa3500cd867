"""Figures for the book: label maps in the VOC palette, image/mask grids, cue overlays, training curves.

Functions return matplotlib Figures; :func:`save_figure` writes PNG and SVG atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data.voc import IGNORE, voc_palette
from .io import InputError, atomic_path


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


CURVE_TITLES = {"loss": "total loss", "seed_loss": "seeding loss", "boundary_loss": "boundary loss",
                "grown_fraction": "labelled pixels (fraction)"}


def curve_keys(log: pd.DataFrame) -> list[str]:
    """The quantities a training log holds (its columns but ``it``, ``epoch``, ``lr`` and ``s``)."""
    return [k for k in log.columns if k not in ("it", "epoch", "lr", "s")]


def curve_window(n: int) -> int:
    """The moving-average window of :func:`training_curves` for a log of ``n`` iterations: n / 20, at least 1."""
    return max(1, n // 20)


def smoothed(values: pd.Series, window: int) -> pd.Series:
    """The trailing mean of the last ``window`` values (fewer at the start)."""
    return values.rolling(window, min_periods=1).mean()


def training_curves(logs: dict[str, pd.DataFrame], keys: Sequence[str] | None = None, window: int | None = None):
    """Training curves: one panel per logged quantity, one colour per run, against the iteration.

    ``logs``: run label -> its log (:meth:`dsrg.experiments.Experiment.log`, :func:`dsrg.runs.read_log`).
    ``keys``: the columns to plot (default: every logged quantity but ``it``, ``epoch``, ``lr`` and ``s``,
    in the first log's order). Thin lines are the values of each iteration; thick ones their trailing mean
    over ``window`` iterations (default :func:`curve_window` of the longest log).
    """
    if not logs:
        raise InputError("training_curves: expected at least one log, got none")
    for label, log in logs.items():
        if len(log) == 0 or "it" not in log:
            raise InputError(f"training_curves: the log of {label!r} has no iterations")
    keys = curve_keys(next(iter(logs.values()))) if keys is None else list(keys)
    if not keys:
        raise InputError("training_curves: expected at least one logged quantity to plot, got none")
    missing = {label: [k for k in keys if k not in log] for label, log in logs.items()}
    if any(missing.values()):
        label, absent = next((lab, ks) for lab, ks in missing.items() if ks)
        raise InputError(f"training_curves: the log of {label!r} has no {absent} "
                         f"(it has {curve_keys(logs[label])})")
    window = curve_window(max(len(log) for log in logs.values())) if window is None else window
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise InputError(f"window: expected a positive number of iterations, got {window!r}")
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys) + 0.6, 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (label, log) in enumerate(logs.items()):
            colour = f"C{i % 10}"
            ax.plot(log["it"], log[key], color=colour, alpha=0.25, linewidth=0.7)
            ax.plot(log["it"], smoothed(log[key], window), color=colour, linewidth=1.8, label=label)
        ax.set_title(CURVE_TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best", title=f"mean of {window} it." if window > 1 else None,
                      title_fontsize=7)
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
