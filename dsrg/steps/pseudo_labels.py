"""``dsrg pseudo-labels``: the retraining targets (reference, "Schedules").

The step-1 model on every training image at the square input sizes ``pseudo.sizes`` (241/321/401 at
paper scale), logits upsampled to the image and summed, softmax, test-time CRF (s = 1), argmax over
all classes (``pseudo.restrict_to_labels=true``: over the image's labelled classes only, an option).
Output: ``labels/<id>.png`` (VOC palette) and, when the split has label maps, their mIoU against the
ground truth in ``done.json``. ``--resume`` keeps the labels an interrupted run wrote. Under torchrun every
process labels its share of the images (:func:`dsrg.run.dist.share`); the confusion matrices are summed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..data.dataset import open_split
from ..data.voc import read_label_png, write_label_png
from ..method.metrics import ConfusionMeter
from ..profile import Profile
from ..run import folders
from ..run.checkpoints import load_model
from ..run.dist import all_reduce_sum, gather, share
from .common import begin, build_seg_net, predictions, resume_note, setup


def run(cfg: Profile, resume: bool = False) -> Path:
    ctx = setup(cfg)
    folder, done = begin(ctx, "pseudo")
    if done:
        return folder
    started = time.perf_counter()
    ds = open_split(cfg.data, cfg.data.train_split)
    model = load_model(folders.require(cfg, "seg") / "model.pt", build_seg_net(cfg, ds.num_classes, ctx.device, "none"),
                       ctx.device)
    out = folder / "labels"
    out.mkdir(exist_ok=True)
    meter = ConfusionMeter(ds.num_classes) if ds.has_masks else None
    mine = share(len(ds), ctx.world)
    before = {i for i in mine if (out / f"{ds.ids[i]}.png").is_file()}     # an interrupted run's
    kept = before if resume else set()
    for i in sorted(kept) if meter is not None else ():     # written before an interruption: they count too
        meter.update(read_label_png(out / f"{ds.ids[i]}.png", ds.num_classes), ds.mask(i))
    todo = [i for i in mine if i not in kept]
    resume_note(ctx, "pseudo-labels", len(before), len(mine), "labelled", resume)
    if cfg.pseudo.restrict_to_labels:
        images = ((ds.ids[i], ds.image(i), ds.labels(i)) for i in todo)
    else:
        images = ((ds.ids[i], ds.image(i)) for i in todo)
    sizes = [(s, s) for s in cfg.pseudo.sizes]
    index = {image_id: i for i, image_id in enumerate(ds.ids)}
    written, clock = len(kept), folders.Clock()
    try:
        with predictions(ctx, model, images, lambda h, w: sizes, cfg.pseudo) as labels:
            for image_id, label in tqdm(labels, total=len(todo), desc="pseudo-labels", unit="img",
                                        disable=not (cfg.progress and ctx.world.main)):
                write_label_png(out / f"{image_id}.png", label)
                written += 1
                clock.tick()
                if meter is not None:
                    meter.update(label, ds.mask(index[image_id]))
    except KeyboardInterrupt:
        print(f"pseudo-labels: interrupted with {written} of {len(mine)} images labelled; `--resume` continues from "
              f"there (the labels written are kept), without it the step starts over", file=sys.stderr, flush=True)
        raise
    if meter is not None:                            # every process's images
        meter.conf = all_reduce_sum(meter.conf, ctx.world)
    times = gather(clock.timed(), ctx.world)
    if not ctx.world.main:
        return folder
    summary = meter.summary() if meter is not None else None
    folders.finish(folder, started, images=len(ds), quality=summary, timed=folders.combined(times))
    return folder
