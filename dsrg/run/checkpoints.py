"""Checkpoints of a training step (model, optimizer, every process's RNG states, the step's records), written
atomically every ``ckpt_every`` iterations so that ``--resume`` continues where a run stopped, and the final
weights of a step with what built them.

Both are read as data only (tensors, NumPy arrays, plain values): a run folder copied from someone else
cannot run code when it is loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from ..errors import InputError, first_line
from ..files import read_torch, write_torch
from .dist import World, channels_last
from . import step_files


def checkpoint_iteration(ckpt: Path) -> int | None:
    """The iteration a checkpoint continues from (memory-mapped: the weights are not read); None when the
    file is missing or unreadable."""
    try:
        return int(read_torch(ckpt, "a checkpoint", mmap=True)["iteration"])
    except (OSError, InputError, KeyError, TypeError, ValueError):     # OSError: no such file
        return None


#: Where :func:`set_aside` keeps an interrupted run's checkpoint and training log when a run starts over.
PREV_CHECKPOINT, PREV_LOG = "ckpt.prev.pt", "log.prev.jsonl"
SET_ASIDE = {step_files.CHECKPOINT: PREV_CHECKPOINT, step_files.LOG: PREV_LOG}


def set_aside(ckpt: Path, desc: str) -> None:
    """Without --resume: the interrupted run's checkpoint and log become ``ckpt.prev.pt`` and ``log.prev.jsonl``
    (a later --resume must not continue it under this run's log), in place of a pair set aside before (said),
    and a note says so."""
    it = checkpoint_iteration(ckpt)
    what = f"an interrupted run at iteration {it}" if it is not None else "an unreadable checkpoint"
    before = checkpoint_iteration(ckpt.parent / PREV_CHECKPOINT)
    for name, prev in SET_ASIDE.items():
        (ckpt.parent / prev).unlink(missing_ok=True)               # never one run's checkpoint beside another's log
        if (ckpt.parent / name).is_file():
            os.replace(ckpt.parent / name, ckpt.parent / prev)
    replaced = f", in place of the run set aside before at iteration {before}" if before is not None else ""
    print(f"{desc}: note: {ckpt} held {what}; starting over, and it is kept as {PREV_CHECKPOINT} with its "
          f"log {PREV_LOG} until this run completes{replaced} (to continue it instead: stop this run, "
          f"{how_to_continue(ckpt.parent)}, and run again with --resume)", file=sys.stderr, flush=True)


def how_to_continue(folder: Path) -> str:
    """The moves that bring back the run :func:`set_aside` kept in ``folder`` (a log it did not keep, as before
    it kept logs: the log removed, so that no other run's lines stay in it)."""
    moves = [f"move {prev} back to {name}" for name, prev in SET_ASIDE.items() if (folder / prev).is_file()]
    if not (folder / PREV_LOG).is_file():
        moves.append("delete log.jsonl")
    return " and ".join(moves)


def set_aside_note(folder: Path) -> str:
    """``; ckpt.prev.pt holds an earlier run set aside at iteration N (...)`` where one is kept, else ``""``."""
    it = checkpoint_iteration(folder / PREV_CHECKPOINT)
    return "" if it is None else (f"; {PREV_CHECKPOINT} holds an earlier run set aside at iteration {it} (to "
                                  f"continue it: {how_to_continue(folder)}, then --resume)")


def load_checkpoint(ckpt: Path, model, optimizer, records) -> dict:
    """Restore model, optimizer and records from ``ckpt``; an unusable file is an InputError with the ways out."""
    # on the CPU: the RNG states must stay there, and the records' counters are CPU tensors;
    # load_state_dict copies the weights and the optimizer's state onto the parameters' device
    try:
        state = read_torch(ckpt, "a ckpt.pt written by this step")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if records is not None and state.get("records") is not None:
            records.load_state_dict(state["records"])
        int(state["iteration"])
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 (unreadable, missing keys, other shapes...)
        why = str(exc) if isinstance(exc, InputError) else \
            f"{type(exc).__name__}: {first_line(exc)} (expected a ckpt.pt written by this step)"
        raise InputError(f"cannot resume from the checkpoint {ckpt}: {why}. "
                         f"Delete it to start the step over, or run without --resume") from None
    return state


def save_checkpoint(path: Path, model, optimizer, iteration: int, rngs: list[dict],
                    records: dict | None = None, elapsed_s: float = 0.0, sessions: int = 0) -> None:
    """Weights, optimizer, every process's RNG states (:func:`~dsrg.run.dist.rng_states`), the step's ``records``
    state, the seconds its training has taken so far (``elapsed_s``, over every session) and in how many
    sessions, this one included (``sessions``, :func:`~dsrg.run.clock.next_count`; 0: not known),
    atomically."""
    state = {"iteration": iteration, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rngs, "records": records, "elapsed_s": elapsed_s, "sessions": sessions}
    write_torch(path, state)


def saved_rng(state: dict, world: World) -> dict:
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
    write_torch(path, {"state_dict": model.state_dict(), **meta})


def load_model(path: Path, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` with the weights a finished step saved in ``path`` (:func:`save_model`), on ``device``;
    an unreadable file, or one of another network, is an InputError saying how to make it again."""
    path = Path(path)
    again = f"delete the step folder {path.parent} and run the step again"
    if not path.is_file():
        raise InputError(f"model file not found: {path}; {again}")
    try:
        state = read_torch(path, "the model.pt of a finished step")
        model.load_state_dict(state["state_dict"])
    except InputError as exc:
        raise InputError(f"{exc}; {again}") from None
    except (KeyError, TypeError, RuntimeError) as exc:
        raise InputError(f"{path} does not hold the weights of this profile's network ({type(exc).__name__}: "
                         f"{first_line(exc)[:200]}); {again}") from None
    return channels_last(model.to(device))
