"""Time writing the embedded dataset with the default config (1000 train + 200 val, 128 px).

    python benchmarks/synth.py [--out DIR] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

from dsrg.data.synthetic import SynthConfig, write_dataset
from dsrg.overrides import apply_overrides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="folder to write (default: a temporary folder, removed afterwards)")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    cfg = apply_overrides(SynthConfig(), a.overrides)
    tmp = None if a.out else tempfile.mkdtemp()
    out = a.out or os.path.join(tmp, "synth")
    try:
        t = time.perf_counter()
        write_dataset(out, cfg, progress=False)
        dt = time.perf_counter() - t
    finally:
        if tmp:
            shutil.rmtree(tmp)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    print("| dataset | images | wall time (s) |\n|---|---|---|")
    print(f"| embedded, {cfg.size}x{cfg.size}, seed {cfg.seed} | {cfg.n_train} train + {cfg.n_val} val | {dt:.1f} |")


if __name__ == "__main__":
    main()
