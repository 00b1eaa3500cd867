"""The book's figures: label maps in the VOC palette, image grids, cue overlays, training curves, and ours
beside the paper's (bars, Fig. 4's curves, heat maps; the paper's values grey, ours blue).

Functions return matplotlib Figures; :func:`save_figure` writes PNG and SVG atomically.
"""

from __future__ import annotations

import difflib
import os
import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data.voc import IGNORE, voc_palette
from ..errors import InputError
from ..files import atomic_path
from ..profile import is_profile_file
from ..run.train import LOG_COUNTERS
from . import sources

PAPER, OURS = "#7f7f7f", "#1f77b4"     # the paper's values grey, ours blue, in every figure


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


def class_legend(fig, label_maps: Sequence[np.ndarray], class_names: Sequence[str], unlabelled: bool = False) -> None:
    """A legend under ``fig`` of the colour of each class that the uint8 ``label_maps`` hold (in class order; a
    value with no name is shown by its number), the label maps' ignored pixels (255) where they have any, and
    white for unlabelled pixels where ``unlabelled`` (cue images, :func:`cue_image`)."""
    from matplotlib.patches import Patch

    present = sorted({int(v) for m in label_maps for v in np.unique(np.asarray(m))})
    palette = voc_palette()
    names = {c: class_names[c] if c < len(class_names) else f"class {c}" for c in present if c != IGNORE}
    handles = [Patch(facecolor=palette[c] / 255, edgecolor="0.6", label=name) for c, name in names.items()]
    if IGNORE in present:
        handles.append(Patch(facecolor=palette[IGNORE] / 255, edgecolor="0.6", label="not scored (255)"))
    if unlabelled:
        handles.append(Patch(facecolor="white", edgecolor="0.6", label="unlabelled"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=min(len(handles), 6),
               fontsize=7, frameon=False)


CURVE_TITLES = {"loss": "total loss", "seed_loss": "seeding loss", "boundary_loss": "boundary loss",
                "grown_fraction": "labelled pixels (fraction)"}


def curve_keys(log: pd.DataFrame) -> list[str]:
    """The quantities a training log holds: its columns but the counters (:data:`dsrg.run.train.LOG_COUNTERS`)."""
    return [k for k in log.columns if k not in LOG_COUNTERS]


def curve_window(n: int, window: int | None = None) -> int:
    """The moving-average window of :func:`training_curves` for a log of ``n`` iterations: ``window`` where
    given, cut to ``n``; else n / 20, at least 1."""
    return max(1, n // 20) if window is None else min(int(window), n)


def smoothed(values: pd.Series, window: int) -> pd.Series:
    """The trailing mean of the last ``window`` values (fewer at the start)."""
    return values.rolling(window, min_periods=1).mean()


def curve_checks(logs: dict[str, pd.DataFrame], keys: Sequence[str] | None = None,
                 window: int | None = None) -> list[str]:
    """The keys :func:`training_curves` plots (its default where ``keys`` is None); InputError for no logs, a log
    without iterations, a key a log lacks or a window that is not a positive count."""
    if not logs:
        raise InputError("training_curves: expected at least one log, got none")
    for label, log in logs.items():
        if len(log) == 0 or "it" not in log:
            raise InputError(f"training_curves: the log of {label!r} has no iterations")
    if keys is None:
        keys = [k for k in curve_keys(next(iter(logs.values()))) if all(k in log for log in logs.values())]
        if not keys:
            raise InputError("the logs share no quantity to plot: " + "; ".join(
                f"{label!r} logs {', '.join(curve_keys(log))}" for label, log in logs.items()))
    keys = list(keys)
    if not keys:
        raise InputError("keys: expected at least one logged quantity to plot, got none")
    missing = {label: [k for k in keys if k not in log] for label, log in logs.items()}
    if any(missing.values()):
        label, absent = next((lab, ks) for lab, ks in missing.items() if ks)
        has = curve_keys(logs[label])
        near = difflib.get_close_matches(absent[0], has, n=1, cutoff=0.75)
        raise InputError(f"keys: the log of {label!r} has no {', '.join(absent)}"
                         + (f" (did you mean {near[0]!r}?)" if near else "") + f"; it logs {', '.join(has)}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
        raise InputError(f"window: expected a positive number of iterations, got {window!r}")
    return keys


def training_curves(logs: dict[str, pd.DataFrame], keys: Sequence[str] | None = None, window: int | None = None):
    """Training curves: one panel per logged quantity, one colour per run, against the iteration.

    ``logs``: run label -> its log (:meth:`dsrg.reproduce.experiments.Experiment.log`, :func:`dsrg.run.train.read_log`).
    ``keys``: the columns to plot (default: every quantity that all the logs hold, in the first log's order:
    runs of different steps share ``loss``). Thin lines are the values of each iteration; thick ones their trailing mean
    over ``window`` iterations (default :func:`curve_window` of each log; a given one is cut to a log's length), which
    the legend says.
    """
    keys = curve_checks(logs, keys, window)
    windows = {label: curve_window(len(log), window) for label, log in logs.items()}
    shared = len(set(windows.values())) == 1
    shown = {label: label if shared or windows[label] == 1 else f"{label} (mean of {windows[label]} it.)"
             for label in logs}
    # the legend below the panels, where it hides no curve: as many columns as its labels fit across (about
    # 0.075 inch a character at its size, 0.6 for the line beside each)
    width = 3.4 * len(keys) + 0.6
    columns = max(1, min(len(logs), 3, int(width // (0.075 * max(len(str(t)) for t in shown.values()) + 0.6))))
    rows = -(-len(logs) // columns)
    fig, axes = plt.subplots(1, len(keys), figsize=(width, 3.0 + 0.22 * rows), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (label, log) in enumerate(logs.items()):
            colour = f"C{i % 10}"
            ax.plot(log["it"], log[key], color=colour, alpha=0.25, linewidth=0.7)
            ax.plot(log["it"], smoothed(log[key], windows[label]), color=colour, linewidth=1.8, label=shown[label],
                    marker="o" if len(log) <= 20 else None, markersize=3)     # a short run: its few points seen
        ax.set_title(CURVE_TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    legend = fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=columns, fontsize=8,
                        frameon=False, title_fontsize=7,
                        title=f"mean of {max(windows.values())} it." if shared and max(windows.values()) > 1 else None)
    fig.tight_layout(rect=(0, legend.get_window_extent().height / fig.bbox.height, 1, 1))
    return fig


# ----------------------------------------------------------------------------- ours beside the paper's

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
    ``paper_epochs`` is the caller's assumption (the book uses :func:`dsrg.reproduce.paper.authors_step1_epochs`, the
    authors' public schedule), and ``paper_label`` (default: the epochs and that total) says so in the legend.
    """
    last = max(int(ours["epoch"].max()), 1)
    if paper_label is None:
        shown = ", ".join(str(int(e)) for e in paper.index)
        paper_label = f"paper: epochs {shown} of {paper_epochs:.1f} (length assumed)"
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.8), sharey=True)      # legible at a page's width
    for ax, key in zip(axes, ("precision", "recall", "iou")):
        ax.plot(ours["epoch"] / last, 100 * ours[key], "o-", color=OURS, label=f"ours ({last} epochs)")
        ax.plot(paper.index / paper_epochs, paper[key], "s--", color=PAPER, label=paper_label)
        ax.set_title({"iou": "IoU"}.get(key, key.capitalize()), fontsize=12)
        ax.set_xlim(-0.03, 1.03)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
    axes[1].set_xlabel("fraction of training done", fontsize=11)
    axes[0].set_ylabel("% (mean over classes)", fontsize=11)
    axes[0].set_ylim(0, 100)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=10, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def supervision_spread(records: list[dict]):
    """Fig. 4 over seeds: the +DSRG row's precision and recall (%) per epoch, one line per seed (records of
    :mod:`dsrg.reproduce.spread`)."""
    curves = [r for r in records if r.get("row") == "+DSRG" and "supervision" in r]
    if not curves:
        raise InputError("no +DSRG spread record with a supervision curve: `make spread` writes them")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, key in zip(axes, ("precision", "recall")):
        for r in curves:
            c = r["supervision"]
            ax.plot(c["epoch"], [100 * v for v in c[key]], "o-", ms=3, label=f"seed {r['seed']}")
        ax.set_title(key.capitalize(), fontsize=12)
        ax.set_xlabel("epoch (0 = the seeds)", fontsize=11)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% (+DSRG's supervision)", fontsize=11)
    axes[0].set_ylim(0, 100)
    axes[1].legend(fontsize=10)
    fig.tight_layout()
    return fig


def growing_over_seeds(table: pd.DataFrame):
    """What region growing changes in each seed: an arrow from +BSL (its supervision, the seeds, against its
    mIoU) to +DSRG (its grown supervision at the last epoch, against its mIoU), one per seed
    (:func:`dsrg.reproduce.spread.supervision_and_miou`'s table, %)."""
    if table.empty:
        raise InputError("no seed with both +BSL's and +DSRG's spread records: `make spread` writes them")
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    for i, (seed, r) in enumerate(table.iterrows()):
        colour = f"C{i % 10}"
        start, end = (r["+BSL supervision"], r["+BSL mIoU"]), (r["+DSRG supervision"], r["+DSRG mIoU"])
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.4})
        ax.plot(*start, "o", color=colour, ms=6)
        ax.plot(*end, "^", color=colour, ms=7, label=f"seed {seed}")
    ax.plot([], [], "o", color="grey", label="+BSL (the seeds)")
    ax.plot([], [], "^", color="grey", label="+DSRG (grown, last epoch)")
    ax.set_xlabel("supervision at training's end: IoU (%)", fontsize=11)
    ax.set_ylabel("mIoU (%)", fontsize=11)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.margins(0.12)
    fig.tight_layout()
    return fig


def heatmap(grid: pd.DataFrame, title: str, fmt: str = "{:.1f}", min_span: float = 1.0):
    """A labelled heat map of a 2-D table (rows and columns from the DataFrame's index and columns). Its colours
    span ``min_span`` at least, centred on the values: cells that differ by a few hundredths (or tie) are not
    drawn at the two ends of the scale."""
    values = grid.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * values.shape[1], 1.0 + 0.6 * values.shape[0]))
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    half = max(high - low, min_span) / 2
    im = ax.imshow(values, cmap="viridis", aspect="auto", vmin=(low + high) / 2 - half, vmax=(low + high) / 2 + half)
    ax.set_xticks(range(values.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(values.shape[0]), [str(r) for r in grid.index])
    ax.set_xlabel(str(grid.columns.name or ""))
    ax.set_ylabel(str(grid.index.name or ""))
    mid = (low + high) / 2
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=8, color="white" if v < mid else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def caption(what: str, paths: Sequence[os.PathLike], base: str | os.PathLike = "..") -> str:
    """A page's caption of a figure: ``what`` it shows and on which data, then its files (:func:`save_figure`'s
    ``paths``, written from the project root, ``base``), whose metadata says what made them."""
    files = ", ".join(os.path.relpath(p, base) for p in paths)
    return f"{what} Files: {files} (their metadata names what made them)."


def other_data(cfg) -> str:
    """For a caption of ours beside the paper's: a sentence where ``cfg``'s data is not a real dataset in the VOC
    layout (VOC 2012, or COCO converted to it) but the embedded one, else ""."""
    return "" if cfg.data.dataset == "voc" else " Other data than the paper's: compare our bars with each other."


def figures_folder(folder: str | os.PathLike | None, profile: str, base: str | os.PathLike = "..") -> Path:
    """Where a page saves its figures and tables: ``folder`` where given, else ``<base>/figures`` for the demo
    book (profile ``demo``) and ``<base>/figures/<profile>`` for any other (a YAML path: its stem, even
    ``demo``), so that a page run with another profile never overwrites the demo book's files. A profile's
    COCO twin (``<name>-coco``, Table 3's) saves beside it."""
    if folder is not None:
        return Path(folder)
    if is_profile_file(profile):
        return Path(base) / "figures" / Path(profile).stem.removesuffix("-coco")
    name = str(profile).removesuffix("-coco")
    return Path(base) / "figures" / ("" if name == "demo" else name)


def save_figure(fig, path_stem: str | os.PathLike, source: str, index: bool = True) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (atomic); returns the paths. ``source``, what made
    it (its page's caption line), goes into both files' metadata and, with ``index``, the folder's
    ``sources.json``."""
    out = []
    for ext in (".png", ".svg"):
        path = Path(f"{path_stem}{ext}")                     # appended: a stem may hold a dot (curves-lr0.01)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext[1:], dpi=150, bbox_inches="tight", metadata={"Source": source})
        out.append(path)
    if index:
        sources.record(out, source)
    return out
