"""Where a step runs, and its start and end: the device, torchrun world and seeds (:func:`setup`), its folder
(:func:`begin`), a training step's last act (:func:`finish_training`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..files import remove_stale_temporaries
from ..profile import Profile
from . import folders, split_lists, step_files
from .checkpoints import SET_ASIDE, save_model
from .dist import World, barrier, bf16_native, init_world, resolve_device, use_deterministic_kernels
from .train import Resumed


@dataclass
class Context:
    """Where a step runs: its profile, device and torchrun world."""

    cfg: Profile
    device: torch.device
    world: World

    @property
    def amp(self) -> bool:
        """True where the networks run under bf16 autocast (``amp`` asked for, on a GPU with native bf16)."""
        return self.cfg.amp and bf16_native(self.device)


def setup(cfg: Profile) -> Context:
    """Pick the device, join torchrun's process group if launched by it, seed torch.

    Each process seeds with ``seed + rank``, so processes draw different dropout masks (rank 0, and a
    single process, with ``seed``); DistributedDataParallel gives every process rank 0's initial weights.
    Denormal floats are flushed to zero on the CPU: tiny activations late in training otherwise slow
    CPU kernels by an order of magnitude (results stay deterministic). ``deterministic`` decides whether
    only deterministic kernels run (:func:`~dsrg.run.dist.use_deterministic_kernels`)."""
    torch.set_flush_denormal(True)
    device, world = join_world(cfg)
    torch.manual_seed(cfg.seed + world.rank)
    if cfg.amp and device.type == "cuda" and not bf16_native(device) and world.main:
        major, minor = torch.cuda.get_device_capability(device)
        print(f"[dsrg] amp=true, but {torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) "
              "has no native bf16: training and testing in float32", file=sys.stderr)
    return Context(cfg, device, world)


def join_world(cfg: Profile) -> tuple[torch.device, World]:
    """The step's device and torchrun world (joined if launched by torchrun), deterministic kernels set first
    as ``cfg.deterministic`` asks (before CUDA starts)."""
    use_deterministic_kernels(cfg.deterministic)
    device = resolve_device(cfg.device)
    return device, init_world(device)


def begin(ctx: Context, step: str) -> tuple[Path, bool]:
    """The step's folder and whether it is already complete (then the step returns at once)."""
    folder = folders.step_dir(ctx.cfg, step)
    if folders.is_done(folder):
        return folder, True
    prev = folders.upstream(ctx.cfg, step)
    if prev is not None:            # before the folder exists: a step that cannot start leaves nothing behind
        folders.require(ctx.cfg, prev)
    if ctx.world.main:
        folders.start(ctx.cfg, step, split_lists.to_keep(ctx.cfg, step))
        remove_stale_temporaries(folder)         # what a killed run of this step left half-written
    barrier(ctx.world)
    return folder, False


def finish_training(folder: Path, started: float, model: nn.Module, ds, resumed: Resumed = Resumed(),
                    **summary) -> dict:
    """End of a training step: save the final weights, drop the checkpoints they supersede, write done.json
    (with where a resumed run started, :class:`~dsrg.run.train.Resumed`: its ``wall_s`` is that session's, its
    ``wall_s_total`` adds the earlier sessions' training up to that checkpoint)."""
    save_model(folder / step_files.MODEL, model, num_classes=ds.num_classes, class_names=ds.class_names)
    for name in (step_files.CHECKPOINT, *SET_ASIDE.values()):    # and an earlier run's, set aside at a new start
        (folder / name).unlink(missing_ok=True)
    return folders.finish(folder, started, resumed_at_iteration=resumed.iteration, earlier_s=resumed.earlier_s,
                          sessions_before=resumed.sessions_before,
                          **summary)
