"""What made each file the book's pages save: ``sources.json`` in the folder, file name -> source and time.

A figure or table taken to a slide or a paper keeps the line that its page prints under it (data,
profile, machine, seeds, code, the command that remakes it). Pages that run side by side (``make book``)
take the index's lock in turn; an entry whose file is gone is not listed.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from ..files import atomic_path, locked

INDEX = "sources.json"


def read(folder: str | os.PathLike) -> dict[str, dict]:
    """``{file name: {"source": ..., "written": ISO time}}`` for the files of ``folder`` that are still there."""
    path = Path(folder) / INDEX
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):                       # not an index this module wrote: started again
        return {}
    return {name: e for name, e in entries.items() if isinstance(e, dict) and (Path(folder) / name).is_file()}


def record(paths: Iterable[str | os.PathLike], source: str) -> None:
    """Note ``source`` as what made each of ``paths`` (files of one folder) in that folder's index."""
    paths = [Path(p) for p in paths]
    if not paths:
        return
    folder = paths[0].parent
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with locked(folder / f".{INDEX}.lock"):
        entries = read(folder)
        entries.update({p.name: {"source": source, "written": written} for p in paths})
        with atomic_path(folder / INDEX) as tmp:
            Path(tmp).write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
