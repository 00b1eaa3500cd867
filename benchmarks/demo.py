"""The demo's targets: `dsrg run --profile demo` wall time from nothing, and the paper's story on the embedded data.

    python benchmarks/demo.py [--out runs/bench-demo] [--data data/bench-synthetic] [key=value ...]

1. Deletes ``--out`` and ``--data`` and times ``dsrg run --profile demo`` (dataset generation included),
   step by step (the ``done.json`` of each step).
2. Runs the Table 2 ablation rows on the same classifier and seeds (shared step folders):
   baseline (SEC seeding loss, no growing), +BSL (balanced seeding loss), +DSRG (growing), +Retrain
   (the full pipeline of step 1), each evaluated on the embedded val split.
3. Prints one table and writes ``<out>/demo_benchmark.json``: seed precision / recall / IoU, the
   supervision quality at each epoch of +DSRG (Fig. 4), mIoU per row, wall time per step, machine.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dsrg.files import write_json
from dsrg.profile import load_profile
from dsrg.run import folders as runs
from dsrg.run import step_files
from dsrg.run.dist import machine

ROWS = {
    "baseline": ["seg.seed_loss=sec", "seg.growing=false", "retrain.enabled=false"],
    "+BSL": ["seg.seed_loss=balanced", "seg.growing=false", "retrain.enabled=false"],
    "+DSRG": ["seg.seed_loss=balanced", "seg.growing=true", "retrain.enabled=false"],
    "+Retrain": ["seg.seed_loss=balanced", "seg.growing=true", "retrain.enabled=true"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-demo")
    parser.add_argument("--data", default="data/bench-synthetic")
    parser.add_argument("--skip-fresh", action="store_true", help="reuse what is there (no timing from nothing)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    base = [f"out={args.out}", f"data.root={args.data}", "progress=false", *args.overrides]
    dsrg = [sys.executable, "-m", "dsrg.cli"]

    fresh_s = None
    if not args.skip_fresh:
        shutil.rmtree(args.out, ignore_errors=True)
        shutil.rmtree(args.data, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([*dsrg, "run", "--profile", "demo", *base], check=True)
        fresh_s = time.perf_counter() - start
    results = {}
    for row, extra in ROWS.items():
        subprocess.run([*dsrg, "run", "--profile", "demo", *base, *extra], check=True)
        cfg = load_profile("demo", [*base, *extra])
        results[row] = runs.done_info(runs.step_dir(cfg, "eval"))
    full = load_profile("demo", base)
    steps = {s: runs.done_info(runs.step_dir(full, s))["wall_s"] for s in runs.STEPS}
    seeds_q = runs.done_info(runs.step_dir(full, "seeds"))["quality"]
    with open(runs.step_dir(full, "seg") / step_files.SUPERVISION) as f:
        fig4 = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    report = {"machine": machine(), "profile": "demo", "overrides": base, "fresh_run_s": fresh_s,
              "step_wall_s": steps, "seeds": seeds_q, "supervision_per_epoch": fig4,
              "miou": {row: r["miou"] for row, r in results.items()},
              "cls": runs.done_info(runs.step_dir(full, "cls"))}
    write_json(Path(args.out) / "demo_benchmark.json", report)

    print(f"\nmachine: {report['machine']}")
    if fresh_s is not None:
        print(f"dsrg run --profile demo from nothing: {fresh_s / 60:.1f} min")
    print("step wall times (s): " + ", ".join(f"{runs.COMMANDS[s]} {t:.0f}" for s, t in steps.items()))
    print(f"seeds:        precision {seeds_q['precision']:.3f}  recall {seeds_q['recall']:.3f}  IoU {seeds_q['iou']:.3f}")
    for r in fig4:
        print(f"epoch {int(r['epoch']):>2}:     precision {r['precision']:.3f}  recall {r['recall']:.3f}  IoU {r['iou']:.3f}")
    for row, value in report["miou"].items():
        print(f"{row:<10} mIoU {100 * value:.1f}")


if __name__ == "__main__":
    main()
