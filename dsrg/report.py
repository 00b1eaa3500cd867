"""Ours beside the paper's: the comparison tables and plots of the book's result chapters.

Tables are pandas DataFrames saved as CSV (:func:`save_table`); figures are matplotlib Figures saved as
PNG and SVG (:func:`dsrg.plots.save_figure`). Every figure labels which values are the paper's and which
are ours; the caption with dataset, profile and machine comes from
:meth:`dsrg.experiments.Experiment.provenance`.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .io import atomic_path

PAPER, OURS = "#7f7f7f", "#1f77b4"


def beside(paper: pd.Series, ours: pd.Series, paper_label: str = "paper", ours_label: str = "ours") -> pd.DataFrame:
    """Rows = the union of both indexes (paper's order first); columns paper, ours and ours - paper."""
    index = list(paper.index) + [k for k in ours.index if k not in paper.index]
    df = pd.DataFrame({paper_label: paper.reindex(index), ours_label: ours.reindex(index)})
    df[f"{ours_label} - {paper_label}"] = df[ours_label] - df[paper_label]
    return df


def save_table(df: pd.DataFrame, path_stem: str | os.PathLike, digits: int = 2) -> Path:
    """Write ``df`` (rounded to ``digits``) to ``<stem>.csv`` atomically; returns the path."""
    path = Path(path_stem).with_suffix(".csv")
    with atomic_path(path) as tmp:
        df.round(digits).to_csv(tmp)
    return path


def bars_beside(df: pd.DataFrame, ylabel: str, title: str, paper_col: str = "paper", ours_col: str = "ours"):
    """Grouped bars, one group per row of ``df``: the paper's value (grey) and ours (blue)."""
    x = np.arange(len(df))
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(df), 3.4))
    for dx, col, colour in ((-0.2, paper_col, PAPER), (0.2, ours_col, OURS)):
        vals = df[col].to_numpy(dtype=float)
        bars = ax.bar(x + dx, np.nan_to_num(vals), 0.38, color=colour, label=col)
        for b, v in zip(bars, vals):
            if np.isfinite(v):
                ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [textwrap.fill(str(i), 12) for i in df.index])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, max(100.0, np.nanmax(df[[paper_col, ours_col]].to_numpy(dtype=float)) * 1.1))
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def supervision_curves(ours: pd.DataFrame, paper: pd.DataFrame, paper_epochs: float, paper_label: str | None = None):
    """Fig. 4: precision, recall and IoU (%) of the supervision over training, ours against the paper's.

    ``ours``: rows per epoch (``epoch`` column, fractions in [0, 1]); ``paper``: percent, indexed by epoch.
    The x axis is the fraction of training done, so runs of different lengths share it; the paper's
    points sit at ``epoch / paper_epochs``. The paper does not say how many epochs it trained:
    ``paper_epochs`` is the caller's assumption (the book uses :func:`dsrg.paper.authors_step1_epochs`, the
    authors' public schedule), and ``paper_label`` (default: the epochs and that total) says so in the legend.
    """
    last = max(int(ours["epoch"].max()), 1)
    if paper_label is None:
        shown = ", ".join(str(int(e)) for e in paper.index)
        paper_label = f"paper: epochs {shown} of {paper_epochs:.1f} (length assumed)"
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), sharey=True)
    for ax, key in zip(axes, ("precision", "recall", "iou")):
        ax.plot(ours["epoch"] / last, 100 * ours[key], "o-", color=OURS, label=f"ours ({last} epochs)")
        ax.plot(paper.index / paper_epochs, paper[key], "s--", color=PAPER, label=paper_label)
        ax.set_title({"iou": "IoU"}.get(key, key.capitalize()), fontsize=10)
        ax.set_xlabel("fraction of training (epoch / last epoch)")
        ax.set_xlim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    axes[0].set_ylim(0, 100)
    axes[0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def heatmap(grid: pd.DataFrame, title: str, fmt: str = "{:.1f}"):
    """A labelled heat map of a 2-D table (rows and columns from the DataFrame's index and columns)."""
    values = grid.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * values.shape[1], 1.0 + 0.6 * values.shape[0]))
    im = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(values.shape[0]), [str(r) for r in grid.index])
    ax.set_xlabel(str(grid.columns.name or ""))
    ax.set_ylabel(str(grid.index.name or ""))
    finite = values[np.isfinite(values)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=8, color="white" if v < mid else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def eval_setting(cfg) -> str:
    """How a profile's ``evaluate`` step tests a model, in words, from ``cfg.eval`` (so an override such as
    ``eval.crf=false`` or ``eval.scales=[1.0]`` is what the page says).

    E.g. ``"scales 0.75, 1, 1.25 of the image size (logits summed), then the dense CRF (s = 4)"``.
    """
    scales = [float(s) for s in cfg.eval.scales]
    sizes = ", ".join(f"{s:g}" for s in scales)
    text = (f"scales {sizes} of the image size (logits summed)" if len(scales) > 1
            else f"one scale, {sizes}x the image size")
    return text + (f", then the dense CRF (s = {float(cfg.eval.crf_scale):g})" if cfg.eval.crf else ", no CRF")


def label_shares(experiment) -> pd.DataFrame:
    """Share of each class among the evaluated pixels: in ``experiment``'s predictions and in the ground truth.

    Reads the prediction PNGs that ``evaluate`` wrote and the split's label maps (pixels labelled 255 in
    the ground truth are left out of both). Returns a DataFrame indexed by class name with columns
    ``predicted`` and ``ground truth`` (fractions summing to 1).
    """
    from .data.voc import IGNORE, read_label_png

    split = experiment.metrics()["split"]
    ds = experiment.dataset(split)
    pred_dir = experiment.predictions()
    k = ds.num_classes
    pred = np.zeros(k, np.int64)
    true = np.zeros(k, np.int64)
    for i, image_id in enumerate(ds.ids):
        gt = np.asarray(ds.mask(i))
        p = read_label_png(pred_dir / f"{image_id}.png", k)
        valid = gt != IGNORE
        pred += np.bincount(np.asarray(p)[valid].ravel(), minlength=k)[:k]
        true += np.bincount(gt[valid].ravel(), minlength=k)[:k]
    return pd.DataFrame({"predicted": pred / max(pred.sum(), 1), "ground truth": true / max(true.sum(), 1)},
                        index=pd.Index(ds.class_names, name="class"))


def compare_word(a: float, b: float, higher: str = "higher", lower: str = "lower", same: str = "the same",
                 tol: float = 0.05) -> str:
    """``higher`` if ``a > b + tol``, ``lower`` if ``a < b - tol``, else ``same``: for sentences glued from
    measured numbers, so that the words follow the numbers of the run."""
    return higher if a > b + tol else lower if a < b - tol else same
