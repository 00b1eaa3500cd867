"""What the seeds step's saliency begun early (``seeds.overlap``) costs train-cls, and what it gets done meanwhile.

    python benchmarks/overlap.py [--profile demo] [--iterations 150] [--rounds 2] [--workers 2] [--json PATH]
                                 [key=value ...]

train-cls of ``--profile`` (its validation included) for ``--iterations`` iterations, in a fresh run folder each
time, alone and beside the early pool of ``--workers`` lowest-priority processes
(:class:`dsrg.steps.seeds.EarlyBackgrounds`, every training image submitted), alternately for ``--rounds``
rounds so that the machine's drift falls on both. Prints each round's wall time, the median ratio (beside /
alone) and how many cues the pool had made when train-cls ended.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

from grow import machine_info, print_machine, write_json  # benchmarks/ is sys.path[0]

from dsrg.data.dataset import open_split
from dsrg.profile import load_profile
from dsrg.steps import seeds, train_cls


def one_round(profile: str, overrides: list[str], workers: int) -> tuple[float, int]:
    """Seconds of train-cls in a fresh run folder, and the cues the early pool (``workers`` > 0) made meanwhile."""
    out = tempfile.mkdtemp(prefix="dsrg-overlap-")
    try:
        cfg = load_profile(profile, [*overrides, f"out={out}", "progress=false"])
        early = None
        if workers:
            ds = open_split(cfg.data, cfg.data.train_split)
            early = seeds.EarlyBackgrounds(ds, range(len(ds)), cfg.seeds, seeds.cam_grid(cfg), workers)
        try:
            start = time.perf_counter()
            train_cls.run(cfg)
            seconds = time.perf_counter() - start
            made = 0 if early is None else sum(
                1 for future, _ in early.parts.values()
                if future.done() and not future.cancelled() and future.exception() is None)
        finally:
            if early is not None:
                early.close()
        return seconds, made
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="early saliency processes")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("overrides", nargs="*", help="key=value for the profile")
    a = ap.parse_args()
    overrides = [f"cls.iterations={a.iterations}", *a.overrides]
    info = machine_info()
    print_machine(info)
    alone, beside, made = [], [], []
    for k in range(a.rounds):
        s, _ = one_round(a.profile, overrides, 0)
        alone.append(s)
        s, n = one_round(a.profile, overrides, a.workers)
        beside.append(s)
        made.append(n)
        print(f"round {k + 1}: train-cls alone {alone[-1]:.1f} s, beside {a.workers} early processes "
              f"{beside[-1]:.1f} s, which made {n} cues meanwhile", flush=True)
    ratio = statistics.median(b / s for b, s in zip(beside, alone))
    print(f"train-cls ({a.profile}, {a.iterations} iterations) beside the early pool: {ratio:.3f}x its time "
          f"alone (median of {a.rounds} rounds); the pool made {statistics.median(made):.0f} cues meanwhile")
    write_json(a.json, {"benchmark": "overlap", "profile": a.profile, "iterations": a.iterations,
                        "workers": a.workers, "overrides": a.overrides, "alone_s": alone, "beside_s": beside,
                        "cues_made": made, "ratio": ratio, "machine": info})


if __name__ == "__main__":
    main()
