"""Where the networks run: the device, bf16 and memory layout, the processes of a torchrun launch (their world,
collectives and random states), and the machine a number came from.

With torchrun (``WORLD_SIZE > 1``) each process joins a process group (gloo on CPU, NCCL on CUDA) and a CPU
group that the waits and the gathers use, with a 30-day timeout: the inference steps are shared out
(:func:`share`), but what is not (process 0 reading the authors' cues, measuring and writing a step's output)
keeps the others waiting at the step's end, and NCCL's watchdog would abort a long wait.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from ..errors import InputError, expect_choice, plural
from ..profile import DEVICES


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device=cuda but torch sees no CUDA device (use device=cpu or device=auto)")
    expect_choice("device", name, DEVICES)
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


def use_deterministic_kernels(on: bool) -> None:
    """Deterministic kernels only (``deterministic=true``), or torch's defaults again, from here on in the
    process: cuDNN's deterministic algorithms, and torch's deterministic implementation of every op that has
    one (a warning for one that has none); on, also cuBLAS with a fixed workspace, which cuBLAS reads at its
    first use in the process: where CUDA has already been used, a note says how to make sure of it."""
    torch.backends.cudnn.deterministic = on
    torch.use_deterministic_algorithms(on, warn_only=True)
    if on and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            print("[dsrg] deterministic=true: CUDA was used in this process before, so cuBLAS may keep the "
                  "workspace it began with; for runs that repeat bit for bit, start Python with "
                  "CUBLAS_WORKSPACE_CONFIG=:4096:8 set", file=sys.stderr, flush=True)
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


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
    """This process's place among the processes of a torchrun launch (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """True for the process that writes (rank 0)."""
        return self.rank == 0


WAIT_TIMEOUT = datetime.timedelta(days=30)   # how long processes wait for each other (module docstring)
_wait_group = None


def init_world(device: torch.device) -> World:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, NCCL on CUDA), and the CPU
    group that :func:`barrier` and :func:`rng_states` use."""
    global _wait_group
    size = processes()
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


def share(n: int, world: World) -> range:
    """This process's share of ``n`` items (the images of an inference step): every ``size``-th one from its
    rank, so that each process gets images of every part of the split. One process: all of them."""
    return range(world.rank, n, world.size)


def gather(obj, world: World) -> list | None:
    """Every process's ``obj`` (picklable), in rank order, on process 0; None on the others. Called by
    every process (over the CPU group). One process: ``[obj]``."""
    if world.size == 1:
        return [obj]
    every: list | None = [None] * world.size if world.main else None
    tdist.gather_object(obj, every, dst=0, group=_wait_group)
    return every


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
    """The sum of ``t`` over the processes, on ``t``'s device (``t`` itself is left as it is). A CPU tensor
    (an inference step's confusion matrix) is summed on the CPU group, which waits without NCCL's timeout
    for a process whose share of the images took far longer."""
    if world.size > 1:
        cpu = t.device.type == "cpu" and _wait_group is not None
        u = t.to("cpu" if cpu else collective_device(), copy=True)
        tdist.all_reduce(u, group=_wait_group if cpu else None)
        t = u.to(t.device)
    return t


# ----------------------------------------------------------------------------- the machine

def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """Where a number comes from, in one line: CPU (cores), GPU if any, Python, torch and its CPU threads (on
    the CPU the thread count changes the numbers, as floats round)."""
    parts = [f"{cpu_name()} ({os.cpu_count()} cores)"]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(0))
    parts.append(f"Python {platform.python_version()}, torch {torch.__version__} ({plural(threads(), 'thread')})")
    if processes() > 1:
        parts.append(f"torchrun, {processes()} processes")
    return "; ".join(parts)


def threads() -> int:
    """torch's CPU threads in this process (``OMP_NUM_THREADS``, or the cores): a CPU step's numbers depend on
    it, so each ``done.json`` keeps it."""
    return torch.get_num_threads()


def processes() -> int:
    """The processes of this torchrun (``WORLD_SIZE``; 1 without torchrun): they split each batch, so their
    count changes the numbers as floats round, as the thread count does; each ``done.json`` keeps it."""
    return int(os.environ.get("WORLD_SIZE", 1))
