"""What every step sets up: device, torchrun world and seeds; its folder; the networks of a profile; its end."""

from __future__ import annotations

import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tqdm.auto import tqdm

from ..data.voc import read_label_png, write_label_png
from ..method.crf import choose_test_backend
from ..models.cam import CAMNet
from ..models.deeplab import DeepLabASPP
from ..models.weights import load_backbone, load_vgg16_fc, read_state_dict
from ..files import remove_stale_temporaries
from ..profile import Profile
from ..run import folders
from ..run.clock import Clock
from ..run.checkpoints import SET_ASIDE, load_model, save_model
from ..run.predict import predict
from ..run.dist import World, barrier, bf16_native, init_world, resolve_device, share, use_deterministic_kernels
from ..run.preflight import require_resnet_weights
from ..run.workers import auto_workers
from ..run import step_files


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
        folders.start(ctx.cfg, step)
        remove_stale_temporaries(folder)         # what a killed run of this step left half-written
    barrier(ctx.world)
    return folder, False


def resume_note(ctx: Context, command: str, before: int, share: int, done: str, resume: bool = True) -> None:
    """What an inference step does with the ``before`` of this process's ``share`` of the images ``done``
    (e.g. "predicted") by an interrupted run: with ``--resume`` they are kept, without it (where there are
    any) done again; on stderr, each process of a torchrun its own."""
    who = f" (process {ctx.world.rank})" if ctx.world.size > 1 else ""
    if not resume:
        if before:
            print(f"{command}{who}: {before} of {share} images {done} by an interrupted run are done again "
                  f"(without --resume the step starts over; --resume keeps them)", file=sys.stderr, flush=True)
        return
    elsewhere = folders.interrupted_elsewhere(folders.step_dir(ctx.cfg, folders.step_of(command))) if not before \
        else ""
    said = (f"{before} of {share} images {done} before, kept; {share - before} to go" if before else
            f"none of its {share} images {done} before: starting")
    print(f"{command}: --resume{who}: {said}{elsewhere}", file=sys.stderr, flush=True)


def build_cls_net(cfg: Profile, num_classes: int, backbone_weights: bool = True) -> CAMNet:
    """The CAM classifier over the ``num_classes - 1`` foreground classes; ``cls.backbone_weights`` are
    loaded unless ``backbone_weights`` is False (a trained model is about to be read into it), with
    fc6/fc7 reduced from the file's classifier when ``cls.fc_init=imagenet``."""
    net = CAMNet(num_classes - 1, cfg.cls.width, cfg.cls.dropout, cfg.cls.batch_norm)
    if backbone_weights and cfg.cls.backbone_weights:
        trunk = nn.Module()
        trunk.features = net.features
        state = read_state_dict(cfg.cls.backbone_weights)      # read once for the trunk and fc6/fc7
        load_backbone(trunk, cfg.cls.backbone_weights, state=state)
        if cfg.cls.fc_init == "imagenet":
            load_vgg16_fc([net], cfg.cls.backbone_weights, state)
    return net


def build_seg_net(cfg: Profile, num_classes: int, device: torch.device, init: str = "imagenet") -> DeepLabASPP:
    """DeepLab-ASPP of the profile; ``init``: ``imagenet`` (``seg.backbone_weights`` if given), ``cls``
    (the trained CAM net's trunk, the demo's stand-in for ImageNet weights) or ``none`` (random weights,
    for a trained model to be read into). With ImageNet VGG16 weights and ``seg.fc_init=imagenet`` every
    ASPP branch's fc6/fc7 start from the file's reduced classifier, as DeepLab's init model."""
    s = cfg.seg
    require_resnet_weights(cfg, init)
    net = DeepLabASPP(s.backbone, num_classes, s.width, freeze_bn=s.freeze_bn, dropout=s.dropout,
                      batch_norm=s.batch_norm)
    if init == "imagenet" and s.backbone_weights:
        state = read_state_dict(s.backbone_weights)
        load_backbone(net.backbone, s.backbone_weights, state=state)
        if s.backbone == "vgg16" and s.fc_init == "imagenet":
            load_vgg16_fc(list(net.aspp), s.backbone_weights, state)
    elif init == "cls":
        cls_net = load_model(folders.require(cfg, "cls") / step_files.MODEL, build_cls_net(cfg, num_classes, False),
                             device)
        net.backbone.features.load_state_dict(cls_net.features.state_dict())
    return net.to(device)



def predictions(ctx: Context, model: nn.Module, images, sizes_of, section):
    """:func:`dsrg.run.predict.predict` of ``model`` on ``images`` with a step's test-time CRF
    (``section``: ``cfg.pseudo`` or ``cfg.eval``: ``crf``, ``crf_scale``, ``crf_backend``, the backend chosen
    for the step's device), closed (and its CRF workers with it) when the caller's loop ends, even on an
    error."""
    cfg = ctx.cfg
    backend = choose_test_backend(section.crf_backend, ctx.device.type == "cuda")
    return closing(predict(model, images, sizes_of, ctx.device, cfg.data.normalize, section.crf,
                           auto_workers(cfg.seg.crf_workers), ctx.amp, section.crf_scale, backend))


def label_split(ctx: Context, command: str, model: nn.Module, ds, out: Path, section, sizes_of, resume: bool,
                on_label=None, restrict: bool = False) -> dict:
    """The loop of ``pseudo-labels`` and ``evaluate``: this process's share of the split ``ds``
    (:func:`dsrg.run.dist.share`) labelled by ``model`` (:func:`predictions`, ``restrict``: over each image's
    labelled classes only), each label written to ``out/<id>.png`` and handed to ``on_label(index, label)``.
    With ``resume`` the labels an interrupted run wrote are kept (read back and handed on), else done again.
    Returns the loop's timings (:meth:`dsrg.run.clock.Clock.timed`) and how many of its images a resumed run
    kept (its wall time is then the time it took for the others)."""
    verb, noun = ("labelled", "labels") if command == "pseudo-labels" else ("predicted", "predictions")
    mine = share(len(ds), ctx.world)
    before = [i for i in mine if (out / f"{ds.ids[i]}.png").is_file()]     # an interrupted run's
    kept = set(before) if resume else set()
    for i in sorted(kept) if on_label is not None else ():   # written before an interruption: they count too
        on_label(i, read_label_png(out / f"{ds.ids[i]}.png", ds.num_classes))
    todo = [i for i in mine if i not in kept]
    resume_note(ctx, command, len(before), len(mine), verb, resume)
    images = ((ds.ids[i], ds.image(i), *((ds.labels(i),) if restrict else ())) for i in todo)
    index = {image_id: i for i, image_id in enumerate(ds.ids)}
    written, clock = len(kept), Clock()
    bar = tqdm(total=len(todo), desc=command, unit="img", disable=not (ctx.cfg.progress and ctx.world.main))
    try:
        with predictions(ctx, model, images, sizes_of, section) as labels:
            for image_id, label in labels:
                write_label_png(out / f"{image_id}.png", label)
                written += 1
                clock.tick()
                bar.update(1)
                if on_label is not None:
                    on_label(index[image_id], label)
    except KeyboardInterrupt:
        bar.close()                       # first: a bar drawn after the message would hide it
        print(f"{command}: interrupted with {written} of {len(mine)} images {verb}; `--resume` continues from "
              f"there (the {noun} written are kept), without it the step starts over", file=sys.stderr, flush=True)
        raise
    finally:
        bar.close()
    return clock.timed(), len(kept)


def finish_training(folder: Path, started: float, model: nn.Module, ds, resumed_at: int = 0, **summary) -> dict:
    """End of a training step: save the final weights, drop the checkpoints they supersede, write done.json
    (with ``resumed_at``, the iteration a resumed run started at: its wall time is that session's)."""
    save_model(folder / step_files.MODEL, model, num_classes=ds.num_classes, class_names=ds.class_names)
    for name in (step_files.CHECKPOINT, *SET_ASIDE.values()):    # and an earlier run's, set aside at a new start
        (folder / name).unlink(missing_ok=True)
    return folders.finish(folder, started, resumed_at_iteration=resumed_at, **summary)
