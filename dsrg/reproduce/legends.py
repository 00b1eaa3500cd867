"""Labels for plots of several step folders (``dsrg curves``): the settings in which each differs from the others,
read from the folders' ``config.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..run.folders import COMMANDS, HASH_DIGITS, STEPS, flat_settings
from ..run import step_files


def setting_labels(folders: list[Path]) -> list[str]:
    """A label per step folder for plots: the settings in which it differs from the other folders of its step
    (``seg.theta_fg=0.9``), its own ``config.json`` and those of the steps upstream of it in its run folder
    (a retrain that differs by its train-seg's iterations says ``seg.iterations=4``); led by the step where
    the folders are of several steps; the folder's name where nothing else tells them apart."""
    flat = [_settings(Path(folder)) for folder in folders]
    step_of_each = [f.get("step") if f is not None and isinstance(f.get("step"), str) else None for f in flat]
    several = len({s for s in step_of_each if s is not None}) > 1
    differ: dict[str | None, list[str]] = {}
    for step in set(step_of_each):
        group = [f for f, s in zip(flat, step_of_each) if s == step and f is not None]
        keys = sorted({k for f in group for k in f} - {"step", "upstream", "init_from"})
        shared = [k for k in keys if all(k in f for f in group)]     # what one run has not set is no difference
        differ[step] = [k for k in shared if len({json.dumps(f[k], sort_keys=True, default=str) for f in group}) > 1]
    def label(folder, f, step, most: int | None) -> str:
        own = flat_settings(_own_config(Path(folder)) or {})
        # the step's own section first, then its other settings, then its upstream steps'
        keys = sorted(differ[step], key=lambda k: (not k.startswith(f"{step}."), k not in own, k))
        cut = most is not None and len(keys) > most
        shown = ", ".join(f"{k}={f[k]}" for k in keys[:most]) + (", ..." if cut else "") if f else ""
        if several and step is not None:
            shown = COMMANDS.get(step, step) + (f": {shown}" if shown else "")
        return shown or Path(folder).name

    labels = [label(*each, 3) for each in zip(folders, flat, step_of_each)]
    # three settings each, unless that leaves two folders with one label: then those show all they differ in
    return [label(*each, None) if labels.count(text) > 1 else text
            for each, text in zip(zip(folders, flat, step_of_each), labels)]


_HASH = re.compile(f"[0-9a-f]{{{HASH_DIGITS}}}")


def _own_config(folder: Path) -> dict | None:
    """The ``config`` of a step folder's ``config.json``; None without a readable one."""
    try:
        config = json.loads((folder / step_files.CONFIG).read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return None
    return config if isinstance(config, dict) else {}


def _settings(folder: Path, depth: int = 0) -> dict | None:
    """The flattened ``config`` of a step folder's ``config.json``, with its upstream steps' (the folder beside
    it named ``<step>-<its hash>``) where it does not set a key itself; None without a readable config."""
    config = _own_config(folder)
    if config is None:
        return None
    flat = flat_settings(config)
    up = flat.get("upstream")
    if isinstance(up, str) and _HASH.fullmatch(up) and depth < len(STEPS):
        above = next((folder.parent / f"{step}-{up}" for step in STEPS
                      if (folder.parent / f"{step}-{up}").is_dir()), None)
        if above is not None:
            flat = {**(_settings(above, depth + 1) or {}), **flat}
    return flat
