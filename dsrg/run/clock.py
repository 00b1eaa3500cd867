"""What an inference step spends on its images, kept in its ``done.json`` as ``timed`` and read by the
paper-scale projection (``benchmarks/paper_scale.py``), and its wall time over the sessions of a resumed run."""

from __future__ import annotations

import bisect
import math
import time
from pathlib import Path
from typing import Callable

from ..errors import InputError
from ..files import read_json, write_json
from . import step_files


class Clock:
    """What an inference step spends on its images, its setup (reading the model) not counted, and how many
    were done when the first quarter of them was: that part holds the start-up that a longer split pays once
    (worker processes starting, CUDA's first kernels, a pool filling up), so a projection rates the images
    after it (``benchmarks/paper_scale.py``). ``done.json`` keeps :meth:`timed` as ``timed``."""

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self.now = now
        self.start, self.done = now(), []          # the time each image was done

    def tick(self, images: int = 1) -> None:
        """``images`` more done (a batch's at once)."""
        self.done += [self.now()] * images

    def timed(self, images: int = 0) -> dict:
        """``{"images", "s", "start": {"images", "s"}}``: the images ticked, in ``s`` seconds up to the last
        (what comes after, a pool closing, is setup); ``start``: the images done by the time the first quarter
        of them was (a batch counts whole), and that time; no ``start`` under four images. Nothing ticked:
        ``images`` in the seconds until now."""
        if not self.done:
            return {"images": images, "s": round(self.now() - self.start, 3)}
        n = len(self.done)
        out = {"images": n, "s": round(self.done[-1] - self.start, 3)}
        if n >= 4:
            at = self.done[n // 4 - 1]
            out["start"] = {"images": bisect.bisect_right(self.done, at), "s": round(at - self.start, 3)}
        return out


def combined(times: list[dict]) -> dict:
    """The :meth:`Clock.timed` of the processes that split a step, as one: all their images in the slowest
    one's seconds, and ``start`` as the images every process had done by the latest of their start times."""
    out = {"images": sum(t["images"] for t in times), "s": max(t["s"] for t in times)}
    if times and all("start" in t for t in times):
        out["start"] = {"images": sum(t["start"]["images"] for t in times),
                        "s": max(t["start"]["s"] for t in times)}
    return out


class Sessions:
    """The wall seconds an inference step has spent on the output it keeps, over the sessions of a resumed run.
    While it runs, ``<folder>/elapsed.json`` holds the earlier sessions' seconds plus this one's up to its last
    output kept (:meth:`kept`, written at most every ``every`` seconds, and by :meth:`save` as the session ends,
    by an interruption too), and over how many sessions, this one included (:func:`next_count`). ``resume`` goes
    on from the file (``earlier`` seconds over ``before`` sessions, 0 where it does not say); a run that starts
    over removes it.
    ``write``: this process keeps the file (torchrun's first, whose time stands for the session's: the others'
    outputs after its last are not counted)."""

    def __init__(self, folder: Path, started: float, resume: bool, write: bool = True, every: float = 5.0,
                 now: Callable[[], float] = time.perf_counter) -> None:
        self.path, self.started, self.write, self.every, self.now = folder / step_files.ELAPSED, started, write, \
            every, now
        self.earlier, self.before = _earlier(self.path) if resume else (0.0, 0)
        if write and not resume:
            self.path.unlink(missing_ok=True)
        self.last = self.saved = None

    def kept(self) -> None:
        """Output kept up to now (an image's label written, a file of cues): saved if the last save is old."""
        self.last = self.now()
        if self.saved is None or self.last - self.saved >= self.every:
            self.save()

    def save(self) -> None:
        """Write the seconds up to the last output kept and their sessions (nothing kept yet: nothing written)."""
        if self.write and self.last is not None:
            write_json(self.path, {"wall_s": round(self.earlier + self.last - self.started, 2),
                                   "sessions": next_count(self.before, self.earlier)})
            self.saved = self.last


def next_count(before: int, earlier_s: float) -> int:
    """The sessions that a step's time over its sessions adds up once this one keeps output (a checkpoint, an
    image's label): ``before`` and this one; this one alone where no earlier time is known (``earlier_s`` 0);
    0, not known, where an earlier time is known but not over how many sessions (a file written before the
    count). A session that kept nothing, or whose time was lost, is not one."""
    return before + 1 if before or not earlier_s else 0


def known_count(value) -> int:
    """A session count as a checkpoint or ``elapsed.json`` holds it: a whole number above 0, else 0 (not known)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _earlier(path: Path) -> tuple[float, int]:
    """The seconds an ``elapsed.json`` holds and over how many sessions (:func:`known_count`). No seconds (0, 0)
    where there is no file (a session killed before it wrote one, a run made before the file), it cannot be
    read, or its seconds are not a finite number of 0 or more."""
    try:
        info = read_json(path, "an interrupted step's seconds") if path.is_file() else {}
        wall, count = info.get("wall_s", 0.0), info.get("sessions", 0)
    except (OSError, InputError, AttributeError):
        return 0.0, 0
    if not isinstance(wall, (int, float)) or isinstance(wall, bool) or not math.isfinite(wall) or wall <= 0:
        return 0.0, 0
    return float(wall), known_count(count)
