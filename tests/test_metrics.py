"""Metrics on maps small enough to count by hand."""

import math

import numpy as np
import pytest
import torch

from dsrg.errors import InputError
from dsrg.method.metrics import (ConfusionMeter, average_precision, confusion_matrix, iou_per_class, mean_iou,
                                 pixel_accuracy, precision_per_class, recall_per_class, supervision_counts,
                                 supervision_quality)


def test_confusion_iou_and_accuracy_by_hand():
    gt = np.array([[0, 0, 1, 1], [0, 255, 1, 2]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 2]])
    conf = confusion_matrix(pred, gt, 4)
    # gt 0: pred 0,1,0 ; gt 1: pred 1,1,0 ; gt 2: pred 2 ; the 255 pixel is ignored.
    assert conf.tolist() == [[2, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    iou = iou_per_class(conf)
    assert iou[0].item() == pytest.approx(2 / 4) and iou[1].item() == pytest.approx(2 / 4)
    assert iou[2].item() == 1.0 and math.isnan(iou[3].item())        # class 3: in neither -> left out
    assert mean_iou(conf) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert pixel_accuracy(conf) == pytest.approx(5 / 7)


def test_precision_and_recall_per_class_by_hand():
    """Rows ground truth, columns prediction: class 0 is 4 pixels, 3 found, 5 predicted; class 1 is 6
    pixels, 4 found, 5 predicted; class 2 neither predicted nor present."""
    conf = torch.tensor([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    p, r = precision_per_class(conf), recall_per_class(conf)
    assert p[:2].tolist() == pytest.approx([3 / 5, 4 / 5]) and math.isnan(p[2].item())
    assert r[:2].tolist() == pytest.approx([3 / 4, 4 / 6]) and math.isnan(r[2].item())
    meter = ConfusionMeter(3)
    meter.conf = conf
    s = meter.summary()
    assert s["precision"] == pytest.approx(0.7) and s["recall"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert s["class_recall"][:2] == pytest.approx([3 / 4, 4 / 6])


def test_a_class_only_predicted_counts_with_iou_zero():
    conf = confusion_matrix(np.array([0, 3]), np.array([0, 0]), 4)
    assert mean_iou(conf) == pytest.approx((0.5 + 0.0) / 2)


def test_meter_accumulates_over_images():
    m = ConfusionMeter(2)
    m.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    m.update(torch.tensor([1, 1]), torch.tensor([0, 1]))
    s = m.summary()
    assert s["pixel_accuracy"] == pytest.approx(3 / 4) and s["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_bad_values_are_named():
    with pytest.raises(InputError, match="gt: class value 7"):
        confusion_matrix(np.array([0]), np.array([7]), 3)
    with pytest.raises(InputError, match="shapes differ"):
        confusion_matrix(np.zeros(2), np.zeros(3), 3)


def test_supervision_quality_counts_labelled_pixels_only():
    # 1 image, classes bg/cat, 2x3 ground truth:  bg bg cat / bg cat 255
    gt = torch.tensor([[[0, 0, 1], [0, 1, 255]]])
    cues = torch.zeros(1, 2, 2, 3, dtype=torch.bool)
    cues[0, 0, 0, 0] = True              # bg cue on bg: TP
    cues[0, 1, 0, 2] = True              # cat cue on cat: TP
    cues[0, 1, 0, 1] = True              # cat cue on bg: FP for cat
    cues[0, 1, 1, 2] = True              # on an ignored pixel: left out
    cues[0, 0, 0, 2] = True              # bg cue on the cat pixel that has a cat cue too: FP for bg
    counts = supervision_counts(cues, gt)
    assert counts.tolist() == [[1, 1], [2, 2], [3, 2], [2, 1]]
    q = supervision_quality(counts)
    assert q["precision"] == pytest.approx((0.5 + 0.5) / 2)
    assert q["recall"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert q["iou"] == pytest.approx((1 / 4 + 1 / 3) / 2)   # bg 1/(2+3-1), cat 1/(2+2-1)
    assert q["labelled_fraction"] == pytest.approx(3 / 5)   # 3 of the 5 scored pixels: the doubly-labelled once


def test_float_predictions_are_refused_not_truncated():
    with pytest.raises(InputError, match="pred: expected integer class ids, got torch.float32"):
        confusion_matrix(torch.tensor([0.9, 1.2]), torch.tensor([1, 1]), 2)


def test_average_precision_by_hand():
    # class 0: positives ranked 1st and 3rd -> AP = (1/1 + 2/3) / 2; class 1: its one positive ranked 2nd -> 1/2;
    # class 2 has no positive: left out of the mean
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4], [0.1, 0.9, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert average_precision(scores, targets) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)


def test_tied_scores_count_together_whatever_the_order_of_the_images():
    # one positive among four images that score the same: precision 1/4 at the only threshold, wherever it is listed
    first, last = np.array([[1], [0], [0], [0]]), np.array([[0], [0], [0], [1]])
    assert average_precision(np.full((4, 1), 0.5), first) == average_precision(np.full((4, 1), 0.5), last) == 0.25
    # a tie between the two positives' ranks 2 and 3 (a negative above): precision 2/3 at that threshold
    scores, targets = np.array([[0.9], [0.5], [0.5], [0.1]]), np.array([[0], [1], [1], [0]])
    assert average_precision(scores, targets) == pytest.approx(2 / 3)
