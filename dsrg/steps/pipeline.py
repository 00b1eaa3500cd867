"""``dsrg run``: every step of the pipeline in order; steps whose output is complete are skipped."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Sequence

from .. import runs
from ..preflight import check_inputs
from ..profile import Profile
from ..train import barrier
from . import evaluate, pseudo_labels, retrain, seeds, train_cls, train_seg
from .common import setup

MODULES = {"cls": train_cls, "seeds": seeds, "seg": train_seg, "pseudo": pseudo_labels, "retrain": retrain,
           "eval": evaluate}


def planned_steps(cfg: Profile) -> list[str]:
    steps = ["cls"] if cfg.seeds.source == "cam" or cfg.seg.init == "cls" else []
    steps += ["seeds", "seg"]
    if cfg.retrain.enabled or runs.eval_source(cfg) == "retrain":
        steps += ["pseudo", "retrain"]
    return steps + ["eval"]


def run(cfg: Profile, resume: bool = False, only: Sequence[str] | None = None) -> dict[str, Path]:
    """Run (or skip) each planned step (or those of them in ``only``); return ``{step: folder}``.
    Prints one line per step. The inputs of the steps to run are checked first (:mod:`dsrg.preflight`)."""
    steps = [step for step in planned_steps(cfg) if only is None or step in only]
    check_inputs(cfg, steps)
    ctx = setup(cfg)
    folders = {}
    for step in steps:
        folder = runs.step_dir(cfg, step)
        # One process per step folder: another one running this step (a notebook beside this one) is
        # waited for, and its output reused. Under torchrun the ranks run the step together, unlocked.
        with runs.step_lock(cfg, step) if ctx.world.size == 1 else contextlib.nullcontext():
            skipped = runs.is_done(folder)
            tick = time.perf_counter()
            folders[step] = MODULES[step].run(cfg, resume=resume)
        barrier(ctx.world)
        if ctx.world.main:
            wall = "done before" if skipped else f"{time.perf_counter() - tick:.1f} s"
            print(f"[dsrg run] {runs.COMMANDS[step]:<14} {folder}  ({wall})", flush=True)
    return folders
