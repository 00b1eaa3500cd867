"""DSRG step 1's loss for a batch (Eq. 2): the seeding loss on the GROWN cues plus the boundary loss.

One image, background + one class on a 5 x 5 grid, a flat grey image. The network is sure of the class
everywhere (logit 10 against 0) except at its seed pixel (2, 2) (logit 3: p = 0.95); the background seed
is pixel (0, 0). With growing, the class takes every pixel but the background seed (Q > 0.85 everywhere,
all 8-connected to its seed; a pixel seeded by one other class is never taken), so the foreground term
of Eq. (1) is the mean over 24 pixels instead of the one seed pixel.
"""

import pytest
import torch

from dsrg.method.losses import balanced_seed_loss, sec_seed_loss, smoothed_softmax
from dsrg.profile import load_profile
from dsrg.steps.train_seg import losses


def _case():
    logits = torch.zeros(1, 2, 5, 5)
    logits[0, 1] = 10.0
    logits[0, 1, 2, 2] = 3.0
    images = torch.full((1, 3, 41, 41), 128, dtype=torch.uint8)
    cues = torch.zeros(1, 2, 5, 5, dtype=torch.bool)
    cues[0, 0, 0, 0] = True
    cues[0, 1, 2, 2] = True
    labels = torch.tensor([[True, True]])
    return logits, images, cues, labels


def _cfg(*overrides):
    return load_profile("demo", ["seg.crf_workers=1", *overrides])


def _grown_by_hand():
    grown = torch.zeros(1, 2, 5, 5, dtype=torch.bool)
    grown[0, 0, 0, 0] = True
    grown[0, 1] = True
    grown[0, 1, 0, 0] = False
    return grown


def test_with_growing_the_seeding_loss_is_taken_on_the_grown_cues():
    logits, images, cues, labels = _case()
    out, grown = losses(_cfg("seg.growing=true", "seg.boundary_weight=0"), logits, images, cues, labels)
    assert torch.equal(grown, _grown_by_hand())
    p = smoothed_softmax(logits)
    by_hand = -torch.log(p[0, 0, 0, 0]) - torch.log(p[0, 1]).sum() / 24 + torch.log(p[0, 1, 0, 0]) / 24
    assert torch.isclose(out["seed_loss"], by_hand)
    assert torch.isclose(out["loss"], out["seed_loss"])                 # boundary_weight = 0
    assert out["grown_fraction"].item() == 1.0                        # every pixel has a label


def test_without_growing_the_seeding_loss_is_taken_on_the_seeds():
    logits, images, cues, labels = _case()
    out, grown = losses(_cfg("seg.growing=false"), logits, images, cues, labels)
    assert torch.equal(grown, cues)
    p = smoothed_softmax(logits)
    assert torch.isclose(out["seed_loss"], -torch.log(p[0, 0, 0, 0]) - torch.log(p[0, 1, 2, 2]))
    assert out["grown_fraction"].item() == pytest.approx(2 / 25)


def test_sec_seed_loss_is_the_baselines_choice():
    logits, images, cues, labels = _case()
    out, grown = losses(_cfg("seg.seed_loss=sec"), logits, images, cues, labels)
    p = smoothed_softmax(logits)
    assert torch.isclose(out["seed_loss"], sec_seed_loss(p, grown))
    assert not torch.isclose(out["seed_loss"], balanced_seed_loss(p, grown))


def test_the_boundary_loss_is_added_with_its_weight():
    logits, images, cues, labels = _case()
    out, _ = losses(_cfg("seg.boundary_weight=0.5"), logits, images, cues, labels)
    assert out["boundary_loss"] > 0
    assert torch.isclose(out["loss"], out["seed_loss"] + 0.5 * out["boundary_loss"])
    logits.requires_grad_()
    out, _ = losses(_cfg(), logits, images, cues, labels)
    out["loss"].backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0

