"""The training loop shared by ``train-cls``, ``train-seg`` and ``retrain``; devices and torchrun.

One iteration = one global batch of ``batch_size`` images, drawn without replacement from a per-epoch
permutation fixed by ``(seed, epoch)``; each item's random flip/crop is drawn from its own seed
(:mod:`dsrg.data.dataset`). With torchrun (``WORLD_SIZE > 1``) every process takes its slice of the
global batch and DistributedDataParallel averages the gradients. Each process normalises its loss over
its own slice (the seed pixels of the seeding loss, the valid pixels of the cross-entropy), so the update
is close to, not bit-equal with, the one-process update on the same global batch
(``tests/test_training.py`` bounds the difference of the losses). Trainable BatchNorm layers (the demo
profiles) share their batch statistics across CUDA processes (SyncBatchNorm); CPU processes (gloo)
normalise over their own slice. Checkpoints (model, optimizer, RNG state, the step's records) are written
atomically every ``ckpt_every`` iterations; ``resume=True`` continues from the last one and ends with the
same weights as an uninterrupted run (CPU, same thread count).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as tdist
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .data.dataset import collate
from .io import InputError, atomic_path, first_line, write_text


# ----------------------------------------------------------------------------- devices, processes

def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device=cuda but torch sees no CUDA device (use device=cpu or device=auto)")
    if name not in ("cpu", "cuda"):
        raise InputError(f"device: expected one of ['auto', 'cpu', 'cuda'], got {name!r}")
    if name == "cuda":
        # modulo: a scheduler may show each process only its own GPU (then every process sees cuda:0)
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively: CUDA compute capability 8.0 and up (A100, H100, RTX 30xx
    and later). Older GPUs emulate it, slowly if at all."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on a CUDA device with native bf16 when ``enabled`` (``amp``); float32 otherwise, and
    always on the CPU (deterministic)."""
    if enabled and bf16_native(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Store the model's 4-D weights channels-last (NHWC), in place; returns the model.

    Convolutions then run, and hand their outputs on, in NHWC: oneDNN on the CPU and cuDNN's tensor-core
    kernels are faster that way (``benchmarks/step.py``: about 1.3x for a whole demo training step on two
    CPU cores). Inputs need no conversion. Values are the same up to float rounding, like a change of
    thread count; checkpoints load into a model of either layout.
    """
    return model.to(memory_format=torch.channels_last)


@dataclass
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


# The processes of a torchrun launch wait for each other (between steps, and while process 0 alone makes the
# seeds, the pseudo labels or the evaluation, which can take longer than a day on COCO) on a CPU group with
# a long timeout, not on the NCCL group: NCCL's watchdog would abort a wait past its timeout.
WAIT_TIMEOUT = datetime.timedelta(days=30)
_wait_group = None


def init_world(device: torch.device) -> World:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, NCCL on CUDA), and the CPU
    group that :func:`barrier` and :func:`rng_states` use."""
    global _wait_group
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size > 1 and not tdist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                 timeout=datetime.timedelta(hours=12))
    if tdist.is_initialized():
        if _wait_group is None:
            _wait_group = tdist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
        return World(tdist.get_rank(), tdist.get_world_size())
    return World()


def leave_world() -> None:
    """Leave the process groups :func:`init_world` joined (if any)."""
    global _wait_group
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
    _wait_group = None


def barrier(world: World) -> None:
    """Wait for every process (on the CPU group: no NCCL timeout however long process 0 works alone)."""
    if world.size > 1:
        tdist.barrier(group=_wait_group)


def rng_states(device: torch.device, world: World) -> list[dict]:
    """Every process's random-number states (``cpu``, ``cuda``), in rank order: each process draws its
    own dropout masks, so a checkpoint keeps them all. Called by every process."""
    mine = {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    if world.size == 1:
        return [mine]
    every: list = [None] * world.size
    tdist.all_gather_object(every, mine, group=_wait_group)
    return every


def collective_device() -> torch.device:
    """Where the process group reduces: NCCL takes CUDA tensors only, gloo CPU tensors."""
    if tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(values: dict[str, float], world: World) -> dict[str, float]:
    """The mean of each value over the processes."""
    if world.size == 1 or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=collective_device())
    tdist.all_reduce(t)
    return dict(zip(values, (t / world.size).tolist()))


def all_reduce_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of ``t`` over the processes, on ``t``'s device (``t`` itself is left as it is)."""
    if world.size > 1:
        u = t.to(collective_device(), copy=True)
        tdist.all_reduce(u)
        t = u.to(t.device)
    return t


# ----------------------------------------------------------------------------- schedule and batches

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


def batch_keys(n: int, batch_size: int, seed: int, start: int, stop: int, world: World) -> list[list]:
    """For each iteration in ``[start, stop)``, this process's ``(index, aug_seed)`` items."""
    per_epoch = iterations_per_epoch(n, batch_size)
    require_shared(batch_size, world.size)
    out, perm, perm_epoch = [], None, -1
    for it in range(start, stop):
        epoch, pos = divmod(it, per_epoch)
        if epoch != perm_epoch:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
            perm_epoch = epoch
        items = [(perm[pos * batch_size + k], (seed * 1_000_003 + it) * 4096 + k) for k in range(batch_size)]
        out.append(items[world.rank::world.size])
    return out


# ----------------------------------------------------------------------------- the loop

def _loader_worker(_: int) -> None:
    """A forked DataLoader worker resizes with OpenCV; OpenCV's thread pool, copied from the parent by the
    fork, can deadlock it, so the worker runs OpenCV on its own thread."""
    import cv2

    cv2.setNumThreads(0)


def _read_log(path: Path, before: int) -> list[str]:
    """The lines of ``log.jsonl`` before iteration ``before`` (what a resumed run keeps)."""
    from .runs import read_log

    return [json.dumps(row) for row in read_log(path) if row["it"] < before] if path.is_file() else []


def _section(desc: str) -> str:
    """The config section of a training step from its command name (``train-seg`` -> ``seg``)."""
    from .runs import COMMANDS

    return next((step for step, command in COMMANDS.items() if command == desc), desc)


def _diverged(desc: str, it: int, sec, factor: float, stats: dict[str, float]) -> InputError:
    key = _section(desc)
    losses = ", ".join(f"{k}={v}" for k, v in stats.items() if "loss" in k)
    return InputError(f"{desc}: the loss is not finite at iteration {it} ({losses}; {key}.lr={sec.lr:g}, "
                      f"lr at this iteration {sec.lr * factor:g}); training stopped and no model was saved. "
                      f"Try a lower learning rate, e.g. {key}.lr={sec.lr / 10:g}")


def checkpoint_iteration(ckpt: Path) -> int | None:
    """The iteration a checkpoint continues from (memory-mapped: the weights are not read); None when the
    file is unreadable."""
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["iteration"])
    except Exception:  # noqa: BLE001 (a truncated or foreign file: the callers say so)
        return None


def _set_aside(ckpt: Path, desc: str) -> None:
    """Without --resume: the interrupted run's checkpoint becomes ``ckpt.prev.pt`` (a later --resume must not
    continue it under this run's log), and a note says so."""
    it = checkpoint_iteration(ckpt)
    what = f"an interrupted run at iteration {it}" if it is not None else "an unreadable checkpoint"
    prev = ckpt.with_name("ckpt.prev.pt")
    os.replace(ckpt, prev)
    print(f"{desc}: note: {ckpt} held {what}; starting over, and it is kept as {prev} "
          f"(`--resume` continues an interrupted run)", file=sys.stderr, flush=True)


def _load_checkpoint(ckpt: Path, model, optimizer, records) -> dict:
    """Restore model, optimizer and records from ``ckpt``; an unusable file is an InputError with the ways out."""
    # on the CPU: the RNG states must stay there, and the records' counters are CPU tensors;
    # load_state_dict copies the weights and the optimizer's state onto the parameters' device
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if records is not None and state.get("records") is not None:
            records.load_state_dict(state["records"])
        int(state["iteration"])
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 (a truncated zip, a pickle error, missing keys, other shapes...)
        raise InputError(f"cannot resume from the checkpoint {ckpt}: {type(exc).__name__}: "
                         f"{first_line(exc)} (expected a ckpt.pt written by this step). "
                         f"Delete it to start the step over, or run without --resume") from exc
    return state


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, sec, cfg, folder: Path, dataset: Dataset,
        step: Callable[[torch.nn.Module, list, int], dict], *, device: torch.device, world: World,
        desc: str, resume: bool = False, records: Any = None) -> None:
    """Train ``model`` for ``sec.iterations`` iterations.

    Args:
        sec: the step's config section (batch_size, iterations, lr policy fields).
        cfg: the profile (seed, ckpt_every, progress, data.loader_workers).
        step: ``step(model, batch, it) -> {"loss": tensor, name: float, ...}`` (forward and losses; the
            loop does backward and the update). ``batch`` is the collated list of the dataset's fields.
        records: optional object with ``epoch_end(model, epoch)``, ``state_dict()``, ``load_state_dict()``
            (the step's per-epoch records, checkpointed with the weights). Every process calls each of
            them, so they may reduce across processes; only the main process writes.
    Writes ``log.jsonl`` (one line per iteration: it, lr, losses, seconds) and ``ckpt.pt``.
    """
    ckpt, log_path = folder / "ckpt.pt", folder / "log.jsonl"
    channels_last(model)
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
    start, state = 0, None
    if resume and ckpt.is_file():
        state = _load_checkpoint(ckpt, model, optimizer, records)
        start = int(state["iteration"])
    elif ckpt.is_file() and world.main:
        _set_aside(ckpt, desc)
    if world.main:
        kept = _read_log(log_path, start)
        write_text(log_path, "".join(line + "\n" for line in kept))
    net = model
    if world.size > 1:
        if device.type == "cuda":
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)   # in place below the top module
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    n = len(dataset)
    per_epoch = iterations_per_epoch(n, sec.batch_size, f"{_section(desc)}.batch_size")
    keys = batch_keys(n, sec.batch_size, cfg.seed, start, sec.iterations, world)
    loader = iter(DataLoader(dataset, batch_sampler=keys, num_workers=cfg.data.loader_workers, collate_fn=collate,
                             pin_memory=device.type == "cuda", worker_init_fn=_loader_worker))
    if state is not None:  # after the loader drew its base seed, as the uninterrupted run did at iteration 0
        mine = _saved_rng(state, world)
        torch.set_rng_state(mine["cpu"])
        if device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], device)
    bar = tqdm(total=sec.iterations, initial=start, desc=desc, unit="it", disable=not (cfg.progress and world.main),
               dynamic_ncols=True)
    log = open(log_path, "a") if world.main else None
    it = start
    try:
        tick = time.perf_counter()
        for it, batch in zip(range(start, sec.iterations), loader):
            factor = lr_factor(sec, it)
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * factor
            net.train()
            batch = [b.to(device, non_blocking=True) for b in batch]
            out = step(net, batch, it)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            stats = all_reduce_mean({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()}, world)
            if not math.isfinite(stats["loss"]):   # read above for the log: no extra sync; same on every rank
                raise _diverged(desc, it, sec, factor, stats)
            now = time.perf_counter()
            seconds, tick = now - tick, now
            if log is not None:
                log.write(json.dumps({"it": it, "epoch": it // per_epoch, "lr": sec.lr * factor,
                                      **{k: round(v, 6) for k, v in stats.items()}, "s": round(seconds, 4)}) + "\n")
                log.flush()
            bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{sec.batch_size / max(seconds, 1e-9):.1f}")
            bar.update(1)
            if records is not None and (it + 1) % per_epoch == 0:
                records.epoch_end(model, (it + 1) // per_epoch)
            if (it + 1) % cfg.ckpt_every == 0 and it + 1 < sec.iterations:
                kept = records.state_dict() if records is not None else None   # every process: may reduce
                rngs = rng_states(device, world)                               # every process: gathers
                if world.main:
                    save_checkpoint(ckpt, model, optimizer, it + 1, rngs, kept)
    except KeyboardInterrupt:
        if world.main:
            saved = checkpoint_iteration(ckpt) if ckpt.is_file() else None
            where = (f"`--resume` continues from its checkpoint at iteration {saved}" if saved is not None else
                     f"no checkpoint yet (one every ckpt_every={cfg.ckpt_every} iterations): it starts over")
            bar.write(f"{desc}: interrupted during iteration {it} of {sec.iterations}; {where}", file=sys.stderr)
        raise
    finally:
        bar.close()
        if log is not None:
            log.close()


def save_checkpoint(path: Path, model, optimizer, iteration: int, rngs: list[dict],
                    records: dict | None = None) -> None:
    """Weights, optimizer, every process's RNG states (:func:`rng_states`) and the step's ``records``
    state, atomically."""
    state = {"iteration": iteration, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rngs, "records": records}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _saved_rng(state: dict, world: World) -> dict:
    """This process's RNG states in a checkpoint (``cpu``, ``cuda``)."""
    if "rng" not in state:                               # written before the states of every process were kept
        return {"cpu": state["rng_cpu"], "cuda": state.get("rng_cuda")}
    rngs = state["rng"]
    if len(rngs) != world.size and world.main:
        print(f"[dsrg] resuming with {world.size} processes from a checkpoint of {len(rngs)}: the batches "
              "are the same, the random streams (dropout) differ from an uninterrupted run", file=sys.stderr)
    return rngs[world.rank % len(rngs)]


def save_model(path: Path, model: torch.nn.Module, **meta) -> None:
    """The final weights (``state_dict``) and what built them, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), **meta}, tmp)


def load_model(path: Path, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not Path(path).is_file():
        raise InputError(f"model file not found: {path}")
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["state_dict"])
    return channels_last(model.to(device))
