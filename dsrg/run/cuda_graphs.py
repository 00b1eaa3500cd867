"""Work of a training step replayed as one CUDA graph: the CRF and region growing of a DSRG step launch a
few hundred small kernels, each of which costs the host some microseconds to launch; captured once, they
launch as one (``seg.cuda_graph``).

:func:`replay` captures ``fn`` the first time it meets a key (the caller's settings and the inputs' shapes,
dtypes and device) and checks the capture against ``fn`` run op by op on the same inputs; after that, each
call copies its inputs into the graph's and replays it. Where ``fn`` cannot be captured (it waits for the
device, to read a value back say: the op-by-op warm-up runs with such waits made errors) or its replay
differs, ``fn`` runs op by op for that key from then on, and stderr says why, once. Tensors off CUDA always
run op by op.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Hashable

import torch

from ..errors import InputError, first_line

#: At most this many graphs are kept (each holds its inputs, outputs and the memory its work allocated);
#: further keys run op by op.
MAX_GRAPHS = 4


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    outputs: tuple[torch.Tensor, ...]


_graphs: dict[Hashable, _Graph | str] = {}      # key -> the graph, or why there is none


def replay(fn: Callable[..., tuple[torch.Tensor, ...]], key: Hashable, *inputs: torch.Tensor,
           what: str = "the work") -> tuple[torch.Tensor, ...]:
    """``fn(*inputs)`` (a tuple of tensors, no gradient), replayed as a CUDA graph captured for ``key`` and the
    inputs' shapes; the outputs are the caller's own (copies). ``what`` names the work in the message that
    says why it runs op by op."""
    if not inputs[0].is_cuda:
        return fn(*inputs)
    full = (key, tuple((t.shape, t.dtype, t.device) for t in inputs))
    entry = _graphs.get(full)
    if entry is None:
        if len(_graphs) >= MAX_GRAPHS:
            return fn(*inputs)
        entry = _graphs[full] = _capture(fn, inputs)
        if isinstance(entry, str):
            print(f"[dsrg] {what} runs op by op, not as one CUDA graph: {entry}", file=sys.stderr, flush=True)
    if isinstance(entry, str):
        return fn(*inputs)
    for mine, given in zip(entry.inputs, inputs):
        mine.copy_(given)
    entry.graph.replay()
    return tuple(t.clone() for t in entry.outputs)


def captured() -> int:
    """How many graphs are held (work that runs op by op holds none)."""
    return sum(isinstance(entry, _Graph) for entry in _graphs.values())


def forget() -> None:
    """Drop every captured graph (and the memory each holds)."""
    _graphs.clear()


def _capture(fn, inputs: tuple[torch.Tensor, ...]) -> _Graph | str:
    """The graph of ``fn`` on copies of ``inputs``, checked against ``fn`` op by op; or why not. An InputError
    of ``fn`` (its inputs are wrong) is raised as it is."""
    device = inputs[0].device
    current = torch.cuda.current_stream(device)
    sync_mode = torch.cuda.get_sync_debug_mode()
    try:
        mine = tuple(t.detach().clone() for t in inputs)
        side = torch.cuda.Stream(device)
        side.wait_stream(current)
        # warm-up (lazy set-up, library handles, probes), where work that waits for the device fails
        torch.cuda.set_sync_debug_mode("error")
        with torch.cuda.stream(side), torch.no_grad():
            expected = fn(*mine)
        torch.cuda.set_sync_debug_mode(sync_mode)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: a loader's pinning thread may allocate while this thread captures
        with torch.cuda.graph(graph, capture_error_mode="thread_local"), torch.no_grad():
            outputs = fn(*mine)
        graph.replay()
        for got, want in zip(outputs, expected):
            if not torch.equal(got, want):
                return (f"its replay differs from op by op (largest difference "
                        f"{(got.double() - want.double()).abs().max().item():.2e})")
        return _Graph(graph, mine, tuple(outputs))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 (any capture error: the work still runs, op by op)
        return f"{type(exc).__name__}: {first_line(exc)}"
    finally:
        torch.cuda.set_sync_debug_mode(sync_mode)
        torch.cuda.set_stream(current)        # a failed capture can leave its stream the current one
