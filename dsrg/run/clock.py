"""What an inference step spends on its images, kept in its ``done.json`` as ``timed`` and read by the
paper-scale projection (``benchmarks/paper_scale.py``)."""

from __future__ import annotations

import bisect
import time
from typing import Callable


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
