"""``dsrg evaluate``: multi-scale inference + test-time CRF on a split; per-class IoU, mIoU, pixel accuracy.

Scales ``eval.scales`` of the original size (0.75/1/1.25), logits summed, CRF (s = 1). The mIoU is
the standard one: mean over the classes present in the ground truth or the prediction, 255 ignored
(:mod:`dsrg.method.metrics`). Output: ``metrics.json``, ``per_image.csv`` (each image's mIoU, for picking
failure cases by rule), ``pred/<id>.png``. Splits without label maps get predictions only; VOC's test split's
in the layout the PASCAL evaluation server takes: ``results/VOC2012/Segmentation/comp6_test_cls/<id>.png``
(``tar -czf results.tgz -C <eval folder> results``). A split where only some images have a label map is
refused before any inference (:func:`split_has_labels`). ``--resume`` keeps the predictions an interrupted run
wrote (they are scored again from their files). Under torchrun every process predicts its share of
the images (:func:`dsrg.run.dist.share`); the confusion matrices are summed, process 0 writes the scores.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..data.check import unlabelled_indices, voc_images
from ..data.dataset import open_split
from ..data.voc import VOCSegmentation
from ..errors import InputError, name_some, same_in_every_process
from ..files import write_csv, write_json
from ..method.metrics import ConfusionMeter, confusion_matrix, mean_iou
from ..profile import Profile
from ..run import folders
from ..run.clock import Sessions, combined
from ..run.checkpoints import load_model
from ..run.dist import all_reduce_sum, gather
from ..run.context import begin, setup
from ..run.labelling import label_split
from ..run.networks import build_seg_net
from ..run import step_files

SERVER_LAYOUT = "results/VOC2012/Segmentation/comp6_test_cls"


def split_has_labels(ds: VOCSegmentation) -> bool:
    """True when every image of the split has its label map (it is scored), False when none has (a test
    split: predictions for the evaluation server); InputError when only some have one."""
    unlabelled = unlabelled_indices(ds)
    if not unlabelled:
        return True
    if len(unlabelled) == len(ds):
        return False
    missing = set(unlabelled)
    without = [ds.ids[i] for i in unlabelled]
    with_maps = [image_id for i, image_id in enumerate(ds.ids) if i not in missing]
    few, which = (without, "ids without one") if len(without) <= len(with_maps) else (with_maps, "ids with one")
    raise InputError(
        f"split '{ds.split}' of {ds.root}: {len(with_maps)} images have a label map in {ds.root / ds.label_dir} "
        f"and {len(without)} have none ({which}: {name_some(few)}); "
        f"expected a label map for every image (a split to score) or for none (a test split, predicted "
        f"for the evaluation server)")


def input_sizes(scales, h: int, w: int) -> list[tuple[int, int]]:
    """The network's input sizes for an ``h`` x ``w`` image: each of ``scales`` of it, at least 8 pixels."""
    return [(max(8, round(h * s)), max(8, round(w * s))) for s in scales]


def run(cfg: Profile, resume: bool = False) -> Path:
    ctx = setup(cfg)
    if not folders.is_done(folders.step_dir(cfg, "eval")):
        with same_in_every_process():
            ds = open_split(cfg.data, cfg.eval.split)
            labelled = split_has_labels(ds)      # a split with only some label maps: refused before anything
    folder, done = begin(ctx, "eval")
    if done:
        return folder
    started = time.perf_counter()
    sessions = Sessions(folder, started, resume, write=ctx.world.main)
    source = folders.eval_source(cfg)
    model = load_model(folders.require(cfg, source) / step_files.MODEL,
                       build_seg_net(cfg, ds.num_classes, ctx.device, "none"), ctx.device)
    pred_dir = folder / (SERVER_LAYOUT if not labelled and voc_images(ds) else "pred")
    pred_dir.mkdir(parents=True, exist_ok=True)
    meter = ConfusionMeter(ds.num_classes) if labelled else None
    rows = []

    def sizes_of(h, w):
        return input_sizes(cfg.eval.scales, h, w)

    def score(i: int, label) -> None:
        gt = ds.mask(i)
        meter.update(label, gt)
        rows.append({"id": ds.ids[i], "miou": mean_iou(confusion_matrix(label, gt, ds.num_classes))})

    loop = label_split(ctx, "evaluate", model, ds, pred_dir, cfg.eval, sizes_of, resume, sessions,
                       score if meter is not None else None)
    if meter is not None:                            # every process's images, in the split's order
        meter.conf = all_reduce_sum(meter.conf, ctx.world)
    parts = gather((rows, loop), ctx.world)
    if not ctx.world.main:
        return folder
    index = {image_id: i for i, image_id in enumerate(ds.ids)}
    rows = sorted((row for part, _ in parts for row in part), key=lambda row: index[row["id"]])
    timed = combined([t for _, (t, _) in parts])
    kept = sum(k for _, (_, k) in parts)
    summary = {"model": source, "split": cfg.eval.split, "images": len(ds),
               "predictions": str(pred_dir.relative_to(folder))}           # within the step folder
    if meter is not None:
        result = meter.summary()
        summary.update(miou=result["miou"], pixel_accuracy=result["pixel_accuracy"],
                       iou={name: None if math.isnan(v) else v for name, v in zip(ds.class_names, result["iou"])})
        write_csv(folder / step_files.PER_IMAGE, rows)                  # columns id, miou
    write_json(folder / step_files.METRICS, summary, sort_keys=False)      # classes in the dataset's order
    folders.finish(folder, started, **{k: v for k, v in summary.items() if k != "iou"}, timed=timed,
                   resumed_with_images=kept, earlier_s=sessions.earlier,
                   sessions_before=sessions.before)
    return folder
