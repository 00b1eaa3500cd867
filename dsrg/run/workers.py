"""Pools of worker processes that end with the command that started them.

A worker forked from a process that is then killed (``kill -KILL``, an out-of-memory kill, a cluster's
pre-emption) would otherwise wait on its pipe for ever. Each worker of :func:`process_pool` asks the kernel
for SIGKILL when its parent ends (Linux's ``PR_SET_PDEATHSIG``), and leaves Ctrl-C to its parent, which
says where the run stands and closes the pool.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

_PR_SET_PDEATHSIG = 1     # linux/prctl.h


def die_with_parent(parent: int | None = None) -> None:
    """In a worker: be killed when the parent ends, and ignore Ctrl-C (the terminal sends it to the whole
    process group; the parent handles it). ``parent``: the pid the worker was forked from, if known, to
    catch a parent that ended before the request took effect. Where ``prctl`` does not exist, only the latter.
    The kernel watches the thread that forked the worker: pools are made and used from the main thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)     # not the command's handler, copied by the fork
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), or the machine's where that cannot be read."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_workers(asked: int, cap: int = 12) -> int:
    """Worker processes: ``asked``, or with -1 the cores this process may use, less one for the process
    itself, at most ``cap``; where it may use every core of the machine, they are shared with the other torchrun
    processes on it (a process pinned to its own cores keeps them)."""
    if asked >= 0:
        return asked
    total = os.cpu_count() or 1
    cores = usable_cores()
    if cores >= total:
        cores //= int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(cores - 1, cap))


def _start_worker(parent: int | None = None, nice: int = 0) -> None:
    """A pool worker: :func:`die_with_parent`, and one thread for torch (OpenMP) and OpenCV: the pool is the
    parallelism, and a thread pool that the parent had running, copied by the fork without its threads, hangs
    the worker's first parallel call (tests/test_signals.py shows one). ``nice``: added to its niceness."""
    die_with_parent(parent)
    if nice:
        os.nice(nice)
    import cv2
    import torch

    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def process_pool(workers: int, preload: Sequence[str] = (), nice: int = 0) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that end with this one (:func:`die_with_parent`). They are forked
    from this process, unless CUDA is initialised here: a fork of a process holding a CUDA context and its
    threads can deadlock, so they then come from a fork server that imports the modules ``preload`` once
    (it ends when this process does, and its workers with it). ``nice`` 19: workers that the kernel serves after
    every other process (work done while this process trains)."""
    import torch

    if torch.cuda.is_initialized():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_start_worker,
                                   initargs=(None, nice))
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(os.getpid(), nice))


@contextlib.contextmanager
def mapper(workers: int, preload: Sequence[str] = ()) -> Iterator[Callable]:
    """``map`` where ``workers`` <= 1, else the ``map`` of a :func:`process_pool` of ``workers`` processes,
    shut down when the block ends (what it maps, and the arguments, must pickle)."""
    if workers <= 1:
        yield map
        return
    with process_pool(workers, preload=preload) as pool:
        yield pool.map


def in_order(pool: ProcessPoolExecutor, jobs: Iterable[tuple[Any, Callable, tuple]],
             ahead: int) -> Iterator[tuple[Any, Any]]:
    """Run ``(tag, fn, args)`` jobs in ``pool`` and yield ``(tag, fn(*args))`` in the jobs' order, each as soon
    as it is ready, with at most ``ahead`` submitted beyond the oldest one not yet yielded. An error, an
    interruption or closing the generator cancels the jobs not started."""
    pending: deque = deque()
    try:
        for tag, fn, args in jobs:
            pending.append((tag, pool.submit(fn, *args)))
            while len(pending) > ahead or (pending and pending[0][1].done()):
                done, result = pending.popleft()
                yield done, result.result()
        while pending:
            done, result = pending.popleft()
            yield done, result.result()
    except BaseException:
        stop(pool)
        raise


def stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the jobs of ``pool`` not started and wait for those running (a CRF, a chunk of saliency maps: a
    second or so) and for its manager thread to end. A pool left closing as the interpreter exits races Python
    3.11's exit hook, which writes to the manager's pipes as it closes them ("OSError: [Errno 9] Bad file
    descriptor" after an interruption); a worker ended mid-job could leave the manager reading half a result."""
    pool.shutdown(wait=True, cancel_futures=True)
