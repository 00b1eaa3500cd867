"""``dsrg pseudo-labels``: the retraining targets (reference, "Schedules").

The step-1 model on every training image at the square input sizes ``pseudo.sizes`` (241/321/401 at
paper scale), logits upsampled to the image and summed, softmax, test-time CRF (s = 1), argmax over
all classes (``pseudo.restrict_to_labels=true``: over the image's labelled classes only, an option).
Output: ``labels/<id>.png`` (VOC palette) and, when the split has label maps, their mIoU against the
ground truth in ``done.json``. ``--resume`` keeps the labels an interrupted run wrote. Under torchrun every
process labels its share of the images (:func:`dsrg.run.dist.share`); the confusion matrices are summed.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..data.dataset import open_split
from ..method.metrics import ConfusionMeter
from ..profile import Profile
from ..run import folders
from ..run.clock import Sessions, combined
from ..run.checkpoints import load_model
from ..run.dist import all_reduce_sum, gather
from ..run.context import begin, setup
from ..run.labelling import label_split
from ..run.networks import build_seg_net
from ..run import step_files


def run(cfg: Profile, resume: bool = False) -> Path:
    ctx = setup(cfg)
    folder, done = begin(ctx, "pseudo")
    if done:
        return folder
    started = time.perf_counter()
    sessions = Sessions(folder, started, resume, write=ctx.world.main)
    ds = open_split(cfg.data, cfg.data.train_split)
    model = load_model(folders.require(cfg, "seg") / step_files.MODEL,
                       build_seg_net(cfg, ds.num_classes, ctx.device, "none"), ctx.device)
    out = folder / "labels"
    out.mkdir(exist_ok=True)
    meter = ConfusionMeter(ds.num_classes) if ds.has_masks else None
    sizes = [(s, s) for s in cfg.pseudo.sizes]
    loop = label_split(ctx, "pseudo-labels", model, ds, out, cfg.pseudo, lambda h, w: sizes, resume, sessions,
                       None if meter is None else lambda i, label: meter.update(label, ds.mask(i)),
                       restrict=cfg.pseudo.restrict_to_labels)
    if meter is not None:                            # every process's images
        meter.conf = all_reduce_sum(meter.conf, ctx.world)
    loops = gather(loop, ctx.world)                  # (timings, images kept) of each process
    if not ctx.world.main:
        return folder
    summary = {**meter.summary(), "classes": ds.class_names} if meter is not None else None   # names the lists
    kept = sum(k for _, k in loops)
    folders.finish(folder, started, images=len(ds), quality=summary, timed=combined([t for t, _ in loops]),
                   resumed_with_images=kept, earlier_s=sessions.earlier,
                   sessions_before=sessions.before)
    return folder
