"""The training loop shared by ``train-cls``, ``train-seg`` and ``retrain`` (:func:`fit`): the learning-rate
schedule, the batches, the log (``log.jsonl``, written here and read by :func:`read_log`) and checkpoints.

One iteration = one global batch of ``batch_size`` images, drawn without replacement from a per-epoch
permutation fixed by ``(seed, epoch)``; each item's random flip or crop is drawn from its own seed
(:mod:`dsrg.data.dataset`), so a resumed run draws the batches of an uninterrupted one and ends with its
weights (CPU, same thread count). Under torchrun each process takes its slice of the global batch and
DistributedDataParallel averages the gradients; trainable BatchNorm layers share their statistics across
CUDA processes (SyncBatchNorm).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.dataset import collate
from ..errors import InputError, plural
from ..files import write_text
from .workers import auto_workers, die_with_parent
from .clock import known_count, next_count
from .checkpoints import (checkpoint_iteration, load_checkpoint, save_checkpoint, saved_rng, set_aside,
                          set_aside_note)
from .dist import World, all_reduce_mean, channels_last, rng_states
from .folders import interrupted_elsewhere, step_of
from . import step_files


class Resumed(NamedTuple):
    """Where :func:`fit` started: the ``iteration`` (0 for a fresh run), the seconds earlier sessions trained
    up to the checkpoint it resumed from (``earlier_s``), for the step's wall time over every session, and how
    many sessions those were (``sessions_before``; 0 where an older checkpoint does not say)."""
    iteration: int = 0
    earlier_s: float = 0.0
    sessions_before: int = 0


def lr_factor(sec, it: int) -> float:
    """Multiplier of the base lr at iteration ``it``: ``step`` (x ``lr_gamma`` every ``lr_step``) or
    ``poly`` (``(1 - it / iterations) ** lr_power``, DeepLab's)."""
    if sec.lr_policy == "step":
        return sec.lr_gamma ** (it // sec.lr_step)
    return max(0.0, 1.0 - it / max(1, sec.iterations)) ** sec.lr_power


def make_optimizer(groups: list[dict], sec) -> torch.optim.Optimizer:
    """SGD with momentum (the paper), or Adam (a demo option); ``groups`` carry their own lr / decay."""
    if sec.optimizer == "adam":
        return torch.optim.Adam(groups, lr=sec.lr)
    return torch.optim.SGD(groups, lr=sec.lr, momentum=sec.momentum)


def iterations_per_epoch(n: int, batch_size: int, key: str = "batch_size", split: str | None = None) -> int:
    """Whole batches per epoch; ``key`` (and the ``split``'s name) in the error when the split is too small."""
    if n < batch_size:
        named = f" '{split}'" if split else ""
        raise InputError(f"{key}={batch_size} but the training split{named} has only {n} images; "
                         f"expected {key} <= {n}")
    return n // batch_size


def require_shared(batch_size: int, processes: int, key: str = "batch_size") -> None:
    """Each of the ``processes`` takes an equal share of one global batch: InputError naming ``key`` when
    ``batch_size`` does not divide, with the process counts that would."""
    if batch_size % processes:
        divisors = [d for d in range(1, batch_size + 1) if batch_size % d == 0]
        raise InputError(f"{key}={batch_size} is not divisible by the {processes} torchrun processes (each takes "
                         f"an equal share of one global batch): launch {', '.join(map(str, divisors))} "
                         f"processes, or set {key} to a multiple of {processes}")


def batch_keys(n: int, batch_size: int, seed: int, start: int, stop: int, world: World) -> Iterator[list]:
    """For each iteration in ``[start, stop)``, this process's ``(index, aug_seed)`` items, drawn as training
    goes (an epoch's permutation at a time)."""
    per_epoch = iterations_per_epoch(n, batch_size)              # these two raise here, not at the first batch
    require_shared(batch_size, world.size)

    def drawn():
        perm, perm_epoch = None, -1
        for it in range(start, stop):
            epoch, pos = divmod(it, per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
                perm_epoch = epoch
            items = [(perm[pos * batch_size + k], (seed * 1_000_003 + it) * 4096 + k) for k in range(batch_size)]
            yield items[world.rank::world.size]
    return drawn()


# ----------------------------------------------------------------------------- the log

#: The timing columns of ``log.jsonl``: an iteration's wall seconds ``s``, of which ``wait`` went to waiting for
#: its batch; on CUDA ``gpu``, the seconds between CUDA events around the step's work on the GPU's timeline
#: (``1 - gpu / s``: the share the GPU stood idle).
TIMING = ("s", "wait", "gpu")
#: The columns of ``log.jsonl`` that are not a logged quantity of the step: the iteration, its epoch and lr,
#: and :data:`TIMING`.
LOG_COUNTERS = ("it", "epoch", "lr", *TIMING)


def read_log(path: str | Path) -> list[dict]:
    """The iterations a training step logged, in order: ``log.jsonl``, one JSON object per line with ``it``,
    ``epoch``, ``lr``, the step's losses and ``s`` (seconds). ``path``: the file or its step folder. A line
    cut short (a killed run) ends the log; the file is read as it stands, so a step still training works.
    The timing columns are described at :data:`TIMING`."""
    path = Path(path)
    if path.is_file() and path.suffix != ".jsonl":
        raise InputError(f"{path}: not a training log; expected a training step's folder or its log.jsonl")
    if path.is_dir() or path.suffix != ".jsonl":
        path = path / step_files.LOG
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such folder; expected the step folder of a training step "
                         f"(runs/<profile>/<step>-<hash>/)")
    if not path.is_file():
        raise InputError(f"{path}: no training log here; train-cls, train-seg and retrain write log.jsonl "
                         f"in their step folder (runs/<profile>/<step>-<hash>/)")
    rows = []
    lines = path.read_text(errors="replace").splitlines()       # bytes not UTF-8: a line that is no entry
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            int(row["it"])
        except (ValueError, KeyError, TypeError):
            if any(rest.strip() for rest in lines[n:]):
                raise InputError(f"{path}, line {n}: not a log entry; expected a JSON object with the iteration "
                                 f"'it' on each line (a line cut short by a killed run can only be the last)") from None
            break
        odd = [k for k, v in row.items() if not (v is None or isinstance(v, (int, float)))]
        if odd:
            raise InputError(f"{path}, line {n}: {odd[0]!r} is {row[odd[0]]!r}; expected numbers in a log entry")
        rows.append(row)
    return rows


def _read_log(path: Path, before: int) -> list[str]:
    """The lines of ``log.jsonl`` before iteration ``before`` (what a resumed run keeps)."""
    return [json.dumps(row) for row in read_log(path) if row["it"] < before] if path.is_file() else []


# ----------------------------------------------------------------------------- the loop

def _loader_worker(_: int) -> None:
    """A forked DataLoader worker resizes with OpenCV; OpenCV's thread pool, copied from the parent by the
    fork, can deadlock it, so the worker runs OpenCV on its own thread. It ends with its parent at once
    (:func:`dsrg.run.workers.die_with_parent`), not at torch's next check of it, and ends quietly (exit 0) on
    a SIGTERM: one to the whole process group (``timeout``, Slurm) killed it, and the parent, saying where the
    run stood, then failed on "DataLoader worker is killed by signal"."""
    import cv2

    cv2.setNumThreads(0)
    die_with_parent()
    _quiet_on_sigterm()


#: Seconds a worker told to end by SIGTERM has to leave torch's loop before it is ended where it stands.
SIGTERM_GRACE_S = 2.0


def _quiet_on_sigterm() -> None:
    """In a DataLoader worker: the first SIGTERM raises KeyboardInterrupt, on which torch's worker loop ends
    (exit 0), and any later one is ignored; a thread woken by the signal itself (Python's wakeup fd) ends the
    worker with exit 0 after :data:`SIGTERM_GRACE_S` where it is stuck in native code and never sees it."""
    import os
    import signal
    import threading

    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)

    def first(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    def backstop():
        os.read(read, 1)
        time.sleep(SIGTERM_GRACE_S)
        os._exit(0)

    signal.signal(signal.SIGTERM, first)
    threading.Thread(target=backstop, daemon=True, name="sigterm-backstop").start()


def _diverged(desc: str, it: int, sec, factor: float, stats: dict[str, float]) -> InputError:
    key = step_of(desc)
    losses = ", ".join(f"{k}={v}" for k, v in stats.items() if "loss" in k)
    return InputError(f"{desc}: the loss is not finite at iteration {it} ({losses}; {key}.lr={sec.lr:g}, "
                      f"lr at this iteration {sec.lr * factor:g}); training stopped and no model was saved. "
                      f"Try a lower learning rate, e.g. {key}.lr={sec.lr / 10:g}")


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, sec, cfg, folder: Path, dataset: Dataset,
        step: Callable[[torch.nn.Module, list, int], dict], *, device: torch.device, world: World,
        desc: str, resume: bool = False, records: Any = None) -> Resumed:
    """Train ``model`` for ``sec.iterations`` iterations; returns where it started (:class:`Resumed`: iteration 0,
    or where a resumed run's checkpoint stood, and the seconds the earlier sessions trained up to it, and how many
    sessions those were).

    Args:
        sec: the step's config section (batch_size, iterations, lr policy fields).
        cfg: the profile (seed, ckpt_every, progress, data.loader_workers).
        step: ``step(model, batch, it) -> {"loss": tensor, name: float, ...}`` (forward and losses; the
            loop does backward and the update). ``batch`` is the collated list of the dataset's fields.
        records: optional object with ``epoch_end(model, epoch)``, ``state_dict()``, ``load_state_dict()``
            (the step's per-epoch records, checkpointed with the weights). Every process calls each of
            them, so they may reduce across processes; only the main process writes.
    Writes ``log.jsonl`` (one line per iteration: it, lr, losses, seconds: :data:`LOG_COUNTERS`) and ``ckpt.pt``.
    """
    session = time.perf_counter()
    ckpt, log_path = folder / step_files.CHECKPOINT, folder / step_files.LOG
    channels_last(model)
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
    start, state = _starting_point(model, optimizer, sec, cfg, folder, desc, resume, records, world)
    earlier = float(state.get("elapsed_s", 0.0)) if state is not None else 0.0   # (0 in an older checkpoint)
    before = known_count(state.get("sessions")) if state is not None else 0       # (0: not said)
    if world.main:
        kept = _read_log(log_path, start)
        write_text(log_path, "".join(line + "\n" for line in kept))
    net = _parallel(model, device, world)
    n = len(dataset)
    per_epoch = iterations_per_epoch(n, sec.batch_size, f"{step_of(desc)}.batch_size")
    keys = batch_keys(n, sec.batch_size, cfg.seed, start, sec.iterations, world)
    loader = iter(DataLoader(dataset, batch_sampler=keys, num_workers=auto_workers(cfg.data.loader_workers),
                             collate_fn=collate, pin_memory=device.type == "cuda", worker_init_fn=_loader_worker))
    events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if device.type == "cuda" else None
    if state is not None:  # after the loader drew its base seed, as the uninterrupted run did at iteration 0
        mine = saved_rng(state, world)
        torch.set_rng_state(mine["cpu"])
        if device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], device)
    bar = tqdm(total=sec.iterations, initial=start, desc=desc, unit="it", disable=not (cfg.progress and world.main),
               dynamic_ncols=True)
    log = open(log_path, "a") if world.main else None
    it = done = start
    try:
        tick = time.perf_counter()
        for it in range(start, sec.iterations):
            asked = time.perf_counter()
            batch = next(loader)
            waited = time.perf_counter() - asked
            factor = lr_factor(sec, it)
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * factor
            net.train()
            if events is not None:
                events[0].record()
            batch = [b.to(device, non_blocking=True) for b in batch]
            out = step(net, batch, it)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            if events is not None:
                events[1].record()
            stats = all_reduce_mean({k: float(v.detach()) if torch.is_tensor(v) else float(v)
                                     for k, v in out.items()}, world)
            if not math.isfinite(stats["loss"]):   # read above for the log: no extra sync; same on every rank
                raise _diverged(desc, it, sec, factor, stats)
            now = time.perf_counter()
            seconds, tick = now - tick, now
            if log is not None:
                _log_line(log, it, it // per_epoch, sec.lr * factor, stats, seconds, waited, events)
            bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{sec.batch_size / max(seconds, 1e-9):.1f}")
            bar.update(1)
            done = it + 1
            if records is not None and (it + 1) % per_epoch == 0:
                records.epoch_end(model, (it + 1) // per_epoch)
            if (it + 1) % cfg.ckpt_every == 0 and it + 1 < sec.iterations:
                kept = records.state_dict() if records is not None else None   # every process: may reduce
                rngs = rng_states(device, world)                               # every process: gathers
                if world.main:
                    save_checkpoint(ckpt, model, optimizer, it + 1, rngs, kept,
                                    elapsed_s=earlier + time.perf_counter() - session,
                                    sessions=next_count(before, earlier))
    except KeyboardInterrupt as exc:
        saved = checkpoint_iteration(ckpt)
        exc.starts_over = saved is None              # the command's last line offers no --resume then
        done = max(done, saved or 0)
        if world.main:
            again = f" ({plural(done - saved, 'iteration')} after it done again)" if saved and done > saved else ""
            where = (f"`--resume` continues from its checkpoint at iteration {saved}{again}" if saved is not None else
                     f"no checkpoint yet (one every ckpt_every={cfg.ckpt_every} iterations): it starts over"
                     + set_aside_note(ckpt.parent))          # an earlier run's, set aside as this one started
            bar.close()                   # first: a bar drawn after the message would hide it
            print(f"{desc}: interrupted with {done} of {sec.iterations} iterations done; {where}", file=sys.stderr,
                  flush=True)
        raise
    finally:
        bar.close()
        if log is not None:
            log.close()
    return Resumed(start, earlier, before)


def _starting_point(model, optimizer, sec, cfg, folder: Path, desc: str, resume: bool, records, world: World
                    ) -> tuple[int, dict | None]:
    """Where :func:`fit` starts: with ``resume`` and a checkpoint, at its iteration, its state loaded into
    ``model``, ``optimizer`` and ``records`` (and returned, for its RNG states); else at 0, an earlier run's
    checkpoint set aside. stderr (the main process) says which, and why where ``--resume`` found nothing."""
    ckpt = folder / step_files.CHECKPOINT
    if resume and ckpt.is_file():
        state = load_checkpoint(ckpt, model, optimizer, records)
        start = int(state["iteration"])
        if world.main:
            print(f"{desc}: resuming from {ckpt} at iteration {start} of {sec.iterations}", file=sys.stderr,
                  flush=True)
        return start, state
    if ckpt.is_file() and world.main:
        set_aside(ckpt, desc)
    elif resume and world.main and not (folder / step_files.LOG).is_file() and not set_aside_note(folder):
        print(f"{desc}: --resume: nothing to resume in {folder} (this step has not run before); starting"
              f"{interrupted_elsewhere(folder)}", file=sys.stderr, flush=True)
    elif resume and world.main:
        print(f"{desc}: --resume, but {folder} holds no checkpoint (none is written before iteration "
              f"{min(cfg.ckpt_every, sec.iterations)}): starting at iteration 0{set_aside_note(folder)}",
              file=sys.stderr, flush=True)
    return 0, None


def _parallel(model: torch.nn.Module, device: torch.device, world: World) -> torch.nn.Module:
    """``model`` as the training loop calls it: wrapped in DistributedDataParallel under torchrun (its BatchNorm
    synchronised across GPUs first), itself on one process."""
    if world.size == 1:
        return model
    if device.type == "cuda":
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)   # in place below the top module
    return torch.nn.parallel.DistributedDataParallel(model,
                                                     device_ids=[device.index] if device.type == "cuda" else None)


def _log_line(log, it: int, epoch: int, lr: float, stats: dict, seconds: float, waited: float, events) -> None:
    """One iteration's line of ``log.jsonl``: its losses, the wall seconds it took, those it waited for its batch,
    and on CUDA its GPU seconds (``events``: the iteration's start and end)."""
    timing = {"s": round(seconds, 4), "wait": round(waited, 4)}
    if events is not None:     # the loss read before waited for the stream: no wait here
        events[1].synchronize()
        timing["gpu"] = round(events[0].elapsed_time(events[1]) / 1000, 4)
    log.write(json.dumps({"it": it, "epoch": epoch, "lr": lr, **{k: round(v, 6) for k, v in stats.items()},
                          **timing}) + "\n")
    log.flush()
