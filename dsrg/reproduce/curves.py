"""``dsrg curves``: the training curves of step folders, read from their ``log.jsonl`` (also while they train)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import InputError
from ..files import read_json
from ..run import folders as run_folders
from ..run import step_files
from ..run.train import read_log
from .figures import curve_checks, curve_keys, curve_window, save_figure, smoothed, training_curves
from .legends import setting_labels

#: Image formats other than the two the curves are written in, refused as ``--out``'s suffix.
OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".pdf", ".eps", ".gif", ".tif", ".tiff", ".bmp", ".webp")


def curves(step_folders: Sequence[str], out: str | None, keys: Sequence[str] | None = None,
           window: int | None = None) -> list[Path]:
    """Plot the logged quantities (``keys``; default: those every log holds) of ``step_folders`` (or their
    ``log.jsonl``), one colour per folder, each a moving average over ``window`` iterations, into ``out`` as PNG
    and SVG (``None``: no figure); print each log's last averaged values. Returns the files written. Folders
    that logged nothing yet are skipped with a line on stderr."""
    if out is not None:
        _check_out(out)
    folders = [Path(f).parent if Path(f).suffix == ".jsonl" else Path(f) for f in step_folders]
    if len(set(map(str, folders))) < len(folders):
        raise InputError("curves: a step folder is given twice")
    read = {f: _read_log_or_none(f) for f in folders}
    have = [f for f in folders if read[f]]
    if not have:
        read_log(folders[0])                  # the error that names the first folder and what it lacks
        raise InputError(f"curves: {folders[0]} has logged no iteration yet")
    for f in folders:
        if f not in have:
            print(f"curves: skipped {f} (no logged iteration: a step that did not start, or no training step)",
                  file=sys.stderr)
    labels = setting_labels(have)
    if len(set(labels)) < len(labels):       # the same settings in two run folders
        labels = [f"{label} ({f.parent.name}/{f.name})" for label, f in zip(labels, have)]
    if len(set(labels)) < len(labels):       # the same step folder name in two copies of a run
        labels = [f"{label} ({f})" for label, f in zip(setting_labels(have), have)]
    logs = dict(zip(labels, (pd.DataFrame(read[f]) for f in have)))
    paths = []
    if out is not None:
        fig = training_curves(logs, keys, window)
        made_by = "dsrg curves of " + "; ".join(f"{f} ({len(logs[label])} iterations)"
                                                for label, f in zip(labels, have))
        stem = Path(out).with_suffix("") if Path(out).suffix.lower() in (".png", ".svg") else Path(out)
        paths = save_figure(fig, stem, made_by, index=False)    # FILE.png, FILE.svg; no index beside a user's file
    else:
        curve_checks(logs, keys, window)      # the same messages for a key a log lacks, without a figure
    for (label, log), folder in zip(logs.items(), have):     # each log's window, as the figure's
        last_window = curve_window(len(log), window)
        last = ", ".join(f"{k} {smoothed(log[k], last_window).iloc[-1]:.4g}" for k in (keys or curve_keys(log)))
        planned = _planned_iterations(folder)
        state = "" if run_folders.is_done(folder) or not (folder / step_files.CONFIG).is_file() else \
            "; training now" if run_folders.is_running(folder) else "; not training: interrupted, or failed"
        print(f"{label}: {len(log)}{f' of {planned:,}' if planned else ''} iterations logged (the last: iteration "
              f"{int(log['it'].iloc[-1])}{state}); mean of the last {last_window}: {last}")
    if paths:
        print("curves: " + ", ".join(str(p) for p in paths))
    return paths


def _check_out(out: str) -> None:
    """``--out`` names a file to write FILE.png and FILE.svg from; InputError otherwise."""
    if Path(out).exists() and not Path(out).is_file() or out.endswith(("/", os.sep)):
        raise InputError(f"--out {out}: not a file name; expected FILE, FILE.png or FILE.svg (the figure is "
                         f"written as FILE.png and FILE.svg)")
    if Path(out).suffix.lower() in OTHER_IMAGE_SUFFIXES:
        raise InputError(f"--out {out}: the curves are written as PNG and SVG; give FILE, FILE.png or FILE.svg")


def _planned_iterations(folder: Path) -> int | None:
    """The iterations the step in ``folder`` trains for (its ``config.json``); None where it does not say."""
    try:
        config = read_json(folder / step_files.CONFIG, "a step's config")["config"]
        return int(config[config["step"]]["iterations"])
    except (InputError, OSError, KeyError, TypeError, ValueError):
        return None


def _read_log_or_none(folder: Path) -> list[dict] | None:
    """A step folder's log, or None where it has none (a step that did not start); a damaged log is said."""
    try:
        return read_log(folder)
    except InputError:
        if (Path(folder) / step_files.LOG).is_file():
            raise
        return None
