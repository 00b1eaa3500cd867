"""Evaluation: confusion matrix, per-class IoU, mIoU, pixel accuracy (Section 4.1), the quality of the
dynamic supervision against ground truth (Section 4.5, Fig. 4) and of the background seeds.

mIoU is the standard one: the mean over classes present in the ground truth or the prediction
(classes with neither are NaN and left out), ground-truth 255 ignored (how the authors' evaluator differs:
the fidelity chapter).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError, expect_shape
from . import BACKGROUND_THRESHOLD, IGNORE
from .seeds import background_cues


def _as_tensor(x) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x


def confusion_matrix(pred, gt, num_classes: int, ignore: int = IGNORE) -> torch.Tensor:
    """Counts ``M[g, p]`` of pixels with ground truth ``g`` predicted ``p``.

    Args:
        pred: integer ``(...)`` predicted classes (tensor or array, any shape).
        gt: integer, same shape; pixels equal to ``ignore`` are left out.
        num_classes: C.
    Returns:
        int64 ``(C, C)`` on ``gt``'s device.
    """
    pred, gt = _as_tensor(pred), _as_tensor(gt)
    if pred.shape != gt.shape:
        raise InputError(f"pred and gt: shapes differ, {tuple(pred.shape)} vs {tuple(gt.shape)}")
    for name, t in (("pred", pred), ("gt", gt)):
        if t.is_floating_point() or t.is_complex():
            raise InputError(f"{name}: expected integer class ids, got {t.dtype} (take the argmax of scores first)")
    gt = gt.long().reshape(-1); pred = pred.long().reshape(-1).to(gt.device)
    keep = gt != ignore
    gt, pred = gt[keep], pred[keep]
    bad = (gt < 0) | (gt >= num_classes)
    if bad.any():
        raise InputError(f"gt: class value {int(gt[bad][0])} outside 0..{num_classes - 1} (and {ignore} = ignore)")
    bad = (pred < 0) | (pred >= num_classes)
    if bad.any():
        raise InputError(f"pred: class value {int(pred[bad][0])} outside 0..{num_classes - 1}")
    return torch.bincount(gt * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` per class, NaN where ``den`` is 0 (a measure that is undefined there)."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.tensor(float("nan"), dtype=num.dtype))


def iou_per_class(conf: torch.Tensor) -> torch.Tensor:
    """IoU of each class from a confusion matrix; NaN for a class absent from both gt and prediction."""
    conf = conf.double()
    tp = conf.diag()
    return _ratio(tp, conf.sum(0) + conf.sum(1) - tp)


def precision_per_class(conf: torch.Tensor) -> torch.Tensor:
    """Per class, the share of the pixels predicted as it that are it (``TP / predicted``); NaN where none
    is predicted as it. ``conf``: ``(C, C)``, rows ground truth, columns prediction."""
    conf = conf.double()
    return _ratio(conf.diag(), conf.sum(0))


def recall_per_class(conf: torch.Tensor) -> torch.Tensor:
    """Per class, the share of its pixels predicted as it (``TP / ground truth``); NaN where it has none."""
    conf = conf.double()
    return _ratio(conf.diag(), conf.sum(1))


def mean_iou(conf: torch.Tensor) -> float:
    """Mean IoU over the classes present in ground truth or prediction."""
    return float(torch.nanmean(iou_per_class(conf)))


def pixel_accuracy(conf: torch.Tensor) -> float:
    """Fraction of non-ignored pixels predicted right."""
    total = conf.sum()
    return float(conf.diag().sum().double() / total) if total > 0 else float("nan")


@dataclass
class ConfusionMeter:
    """Accumulates a confusion matrix over a dataset: ``update(pred, gt)`` then ``summary()``."""

    num_classes: int
    conf: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.conf = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, pred, gt) -> None:
        self.conf += confusion_matrix(pred, gt, self.num_classes).cpu()

    def summary(self) -> dict:
        """IoU per class (``iou``) and its mean (``miou``), pixel accuracy, and precision and recall per class
        (``class_precision``, ``class_recall``) with their means over the classes where they are defined
        (``precision``, ``recall``)."""
        precision, recall = precision_per_class(self.conf), recall_per_class(self.conf)
        return {"iou": iou_per_class(self.conf).tolist(), "miou": mean_iou(self.conf),
                "pixel_accuracy": pixel_accuracy(self.conf),
                "precision": float(torch.nanmean(precision)), "recall": float(torch.nanmean(recall)),
                "class_precision": precision.tolist(), "class_recall": recall.tolist()}


def supervision_counts(cues: torch.Tensor, gt: torch.Tensor, ignore: int = IGNORE) -> torch.Tensor:
    """Per-class counts for the quality of a (multi-hot) cue map against ground truth, Section 4.5.

    Only labelled pixels count as predictions: an unlabelled pixel (no cue) predicts nothing, so it is
    neither a false positive nor a true positive; a ground-truth pixel left unlabelled is a miss.
    Pixels whose ground truth is ``ignore`` are left out.

    Args:
        cues: bool ``(B, C, H, W)``, the supervision (seed cues or grown cues).
        gt: integer ``(B, H, W)`` ground truth.
    Returns:
        int64 ``(4, C)`` on ``cues``' device: rows = true positives, labelled pixels, ground-truth pixels of
        each class, and the labelled pixels whose first label is the class (each labelled pixel once, however
        many classes label it: their sum is the pixels that carry a label).
    """
    expect_shape("cues", cues, (None, None, None, None), torch.bool)
    b, c, h, w = cues.shape
    gt = _as_tensor(gt).to(cues.device)
    expect_shape("gt", gt, (b, h, w))
    valid = (gt != ignore).unsqueeze(1)
    onehot = (gt.long().unsqueeze(1) == torch.arange(c, device=cues.device).view(1, c, 1, 1)) & valid
    labelled = cues & valid
    first = labelled & (labelled.cumsum(1) == 1)
    dims = (0, 2, 3)
    return torch.stack([(labelled & onehot).sum(dims), labelled.sum(dims), onehot.sum(dims), first.sum(dims)])


def supervision_quality(counts: torch.Tensor) -> dict:
    """Mean precision, recall and IoU over classes (Fig. 4) from summed :func:`supervision_counts`.

    Per class c: precision = TP / labelled, recall = TP / ground truth, IoU = TP / (labelled + gt - TP);
    each averaged over the classes that have labelled or ground-truth pixels (a class with no labelled
    pixel has undefined precision and is left out of that mean). ``labelled_fraction``: the share of the scored
    pixels that carry a label (Section 3.3's "about 40% pixels have labels"), a pixel of two labels once.
    """
    tp, lab, gtc, carried = counts.double()
    prec, rec, iou = _ratio(tp, lab), _ratio(tp, gtc), _ratio(tp, lab + gtc - tp)
    return {"precision": float(torch.nanmean(prec)), "recall": float(torch.nanmean(rec)),
            "iou": float(torch.nanmean(iou)), "labelled_fraction": float(carried.sum() / gtc.sum().clamp(min=1))}


def background_cue_counts(sal: np.ndarray, mask: np.ndarray, threshold: float = BACKGROUND_THRESHOLD,
                          ignore: int = IGNORE) -> tuple[int, int, int, int]:
    """Pixel counts of one image's background cue against its ground truth ``mask`` (0 = background).

    Returns ``(cue pixels on background, cue pixels, background pixels, scored pixels)``; pixels whose
    ground truth is ``ignore`` are not scored.
    """
    valid = mask != ignore
    if np.shape(sal) != np.shape(mask):
        raise InputError(f"background_cue_counts: the saliency map is {np.shape(sal)}, its label map {np.shape(mask)}; "
                         "expected the same (H, W)")
    cue = background_cues(sal, threshold) & valid
    is_bg = (mask == 0) & valid
    return int((cue & is_bg).sum()), int(cue.sum()), int(is_bg.sum()), int(valid.sum())


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes (with at least one positive) of the average precision of ``scores`` (N, K): the sum of
    precision times the gain in recall over the distinct scores taken as thresholds, so tied scores count
    together whatever the images' order."""
    aps = []
    for k in range(scores.shape[1]):
        pos = targets[:, k].astype(bool)
        if not pos.any():
            continue
        order = np.argsort(-scores[:, k], kind="stable")
        ranked = scores[order, k]
        ends = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1]   # last of each tied run
        hits = np.cumsum(pos[order])[ends]
        gain = np.diff(np.r_[0, hits]) / pos.sum()
        aps.append(float((gain * hits / (ends + 1)).sum()))
    return float(np.mean(aps)) if aps else float("nan")
