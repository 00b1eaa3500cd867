"""``dsrg run``: every step of the pipeline in order; steps whose output is complete are skipped."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

from ..errors import same_in_every_process
from ..profile import Profile
from ..run import folders
from ..run.dist import barrier
from ..run.preflight import check_inputs
from . import evaluate, pseudo_labels, retrain, seeds, train_cls, train_seg  # noqa: F401 (found by MODULES)
from ..run.context import setup

# Each step's module, by the table's rule (dsrg.steps.<command>, "-" written "_"); each has run(cfg, resume).
MODULES = {name: globals()[step.module] for name, step in folders.STEPS.items()}


def planned_steps(cfg: Profile) -> list[str]:
    """The steps ``dsrg run`` runs for ``cfg``, in order: ``cls`` only where CAMs or its trunk are needed,
    ``pseudo`` and ``retrain`` only where the retrained model is used."""
    steps = ["cls"] if cfg.seeds.source == "cam" or cfg.seg.init == "cls" else []
    steps += ["seeds", "seg"]
    if cfg.retrain.enabled or folders.eval_source(cfg) == "retrain":
        steps += ["pseudo", "retrain"]
    return steps + ["eval"]


def run(cfg: Profile, resume: bool = False, only: Sequence[str] | None = None) -> dict[str, Path]:
    """Run (or skip) each planned step (or those of them in ``only``); return ``{step: folder}``.
    Prints one line per step. The inputs of the steps to run are checked first (:mod:`dsrg.run.preflight`)."""
    steps = [step for step in planned_steps(cfg) if only is None or step in only]
    with folders.run_folder(cfg):
        return _run(cfg, steps, resume)


def _run(cfg: Profile, steps: list[str], resume: bool) -> dict[str, Path]:
    with same_in_every_process():
        check_inputs(cfg, steps, resume=resume)
    ctx = setup(cfg)
    out = {}
    early = seeds.start_early(cfg, ctx.device, ctx.world, steps)   # the seeds' saliency, while train-cls trains
    ran = False                                  # a step ran in this command: the later ones never have
    try:
        for step in steps:
            folder = folders.step_dir(cfg, step)
            with folders.step_lock(cfg, step, ctx.world):
                skipped = folders.is_done(folder)
                # --resume of a step no run has touched would only say so, once a step each
                mine = resume and not (ran and not folders.has_progress(folder))
                ran = ran or not skipped
                if not skipped and ctx.world.main:          # its line on stdout comes when it ends
                    how = "resuming" if mine and folders.has_progress(folder) else "starting"
                    print(f"[dsrg run] {folders.STEPS[step].command:<14} {folder}  ({how})", file=sys.stderr,
                          flush=True)
                tick = time.perf_counter()
                given = {"early": early} if step == "seeds" and early is not None else {}
                out[step] = MODULES[step].run(cfg, resume=mine, **given)
            barrier(ctx.world)
            if ctx.world.main:
                wall = "done, reused" if skipped else \
                    folders.took(folders.done_info(folder), time.perf_counter() - tick)
                print(f"[dsrg run] {folders.STEPS[step].command:<14} {folder}  ({wall})", flush=True)
            if step == "seeds" and early is not None:
                early.close()
                early = None
    finally:
        if early is not None:
            early.close()
    return out
