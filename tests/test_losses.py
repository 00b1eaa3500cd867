"""Losses (Eq. 1, SEC's seeding loss, the boundary loss) on inputs small enough to check by hand."""

import math

import pytest
import torch

from dsrg.errors import InputError
from dsrg.method.losses import balanced_seed_loss, boundary_loss, sec_seed_loss, smoothed_softmax


def three_pixel_case():
    """One image, 2 classes, 3 pixels in a row.

    p(bg) = 0.5, 0.8, 0.1 ; p(cat) = 0.5, 0.2, 0.9.
    Seeds: background at pixel 1, cat at pixels 0 and 2.
    """
    probs = torch.tensor([[0.5, 0.8, 0.1], [0.5, 0.2, 0.9]]).view(1, 2, 1, 3)
    cues = torch.tensor([[False, True, False], [True, False, True]]).view(1, 2, 1, 3)
    return probs, cues


def test_balanced_seed_loss_on_three_pixels_by_hand():
    probs, cues = three_pixel_case()
    bg = -math.log(0.8)                                   # one background seed
    fg = -(math.log(0.5) + math.log(0.9)) / 2             # two foreground seeds
    assert balanced_seed_loss(probs, cues).item() == pytest.approx(bg + fg, rel=1e-6)


def test_balanced_seed_loss_pools_the_foreground_classes_in_one_mean():
    """Eq. (1) divides by sum_c |S_c| over the foreground classes, not by each class's own count.

    One image, 3 classes, 5 pixels: background seed at pixel 0 (p = 0.9), cat at pixel 1 (p = 0.5),
    dog at pixels 2-4 (p = 0.8 each).
    """
    probs = torch.tensor([[0.9, 0.25, 0.1, 0.1, 0.1],
                          [0.05, 0.5, 0.1, 0.1, 0.1],
                          [0.05, 0.25, 0.8, 0.8, 0.8]]).view(1, 3, 1, 5)
    cues = torch.zeros(1, 3, 1, 5, dtype=torch.bool)
    cues[0, 0, 0, 0] = True; cues[0, 1, 0, 1] = True; cues[0, 2, 0, 2:] = True
    pooled = -(math.log(0.5) + 3 * math.log(0.8)) / 4                  # 4 foreground seeds in one mean
    per_class = -(math.log(0.5) + math.log(0.8)) / 2                  # what Eq. (1) is not
    assert balanced_seed_loss(probs, cues).item() == pytest.approx(-math.log(0.9) + pooled, rel=1e-6)
    assert pooled != pytest.approx(per_class, rel=1e-3)


def test_sec_seed_loss_pools_all_seeds_in_one_mean():
    probs, cues = three_pixel_case()
    expected = -(math.log(0.8) + math.log(0.5) + math.log(0.9)) / 3
    assert sec_seed_loss(probs, cues).item() == pytest.approx(expected, rel=1e-6)


def test_balanced_loss_weighs_background_and_foreground_equally():
    # 1 background seed vs 100 foreground seeds: each side still counts for half of the loss.
    probs = torch.full((1, 2, 1, 101), 0.5)
    probs[0, 0, 0, 0] = 0.01; probs[0, 1, 0, 0] = 0.99    # the background seed is badly wrong
    cues = torch.zeros(1, 2, 1, 101, dtype=torch.bool)
    cues[0, 0, 0, 0] = True; cues[0, 1, 0, 1:] = True
    assert balanced_seed_loss(probs, cues).item() == pytest.approx(-math.log(0.01) - math.log(0.5), rel=1e-6)
    assert sec_seed_loss(probs, cues).item() < 1.0         # SEC's loss hardly sees the one wrong pixel


def test_empty_seed_sets_are_safe_and_averaged_over_the_batch():
    probs, cues = three_pixel_case()
    probs2 = torch.cat([probs, probs]); cues2 = torch.cat([cues, torch.zeros_like(cues)])
    bal = balanced_seed_loss(probs2, cues2)
    assert torch.isfinite(bal) and bal.item() == pytest.approx(balanced_seed_loss(probs, cues).item() / 2)
    only_fg = cues.clone(); only_fg[:, 0] = False
    assert balanced_seed_loss(probs, only_fg).item() == pytest.approx(-(math.log(0.5) + math.log(0.9)) / 2)
    assert sec_seed_loss(probs, torch.zeros_like(cues)).item() == 0.0


def test_seed_loss_gradients_flow_into_the_logits_only():
    logits = torch.zeros(1, 2, 1, 3, requires_grad=True)
    _, cues = three_pixel_case()
    balanced_seed_loss(smoothed_softmax(logits), cues).backward()
    g = logits.grad[0, :, 0]
    assert g[1, 0] < 0 and g[0, 1] < 0 and g[1, 2] < 0     # raises each seed's class logit


def test_smoothed_softmax_is_bounded_away_from_zero():
    p = smoothed_softmax(torch.tensor([[[[100.0]], [[-100.0]]]]))
    assert p.sum().item() == pytest.approx(1.0)
    assert p.min().item() == pytest.approx(1e-4 / (1 + 2e-4), rel=1e-4)


def test_boundary_loss_is_kl_of_crf_from_network():
    p = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    q = torch.tensor([0.9, 0.1]).view(1, 2, 1, 1)
    kl = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert boundary_loss(p, q).item() == pytest.approx(kl, rel=1e-6)
    assert boundary_loss(q, q).item() == pytest.approx(0.0, abs=1e-7)
    # The DSRG code's clamp of Q/P to [0.05, 20]: Q/P = 0.2 / 0.001 = 200 is cut to 20.
    p2 = torch.tensor([0.999, 0.001]).view(1, 2, 1, 1); q2 = torch.tensor([0.8, 0.2]).view(1, 2, 1, 1)
    clipped = 0.8 * math.log(0.8 / 0.999) + 0.2 * math.log(20)
    assert boundary_loss(p2, q2, ratio_clip=(0.05, 20)).item() == pytest.approx(clipped, rel=1e-6)


def test_boundary_loss_is_the_mean_over_pixels_and_images():
    """Two images of two pixels: KL is log 2 at one pixel (Q = (1, 0) against P = (0.5, 0.5)), 0 at the
    three others (Q = P), so the mean is log(2) / 4."""
    p = torch.full((2, 2, 1, 2), 0.5)
    q = p.clone()
    q[1, :, 0, 1] = torch.tensor([1.0, 0.0])
    assert boundary_loss(p, q).item() == pytest.approx(math.log(2) / 4, rel=1e-6)


def test_boundary_loss_treats_the_crf_output_as_a_constant():
    p = torch.tensor([0.3, 0.7]).view(1, 2, 1, 1).requires_grad_()
    q = torch.tensor([0.6, 0.4]).view(1, 2, 1, 1).requires_grad_()
    boundary_loss(p, q).backward()
    assert q.grad is None and p.grad is not None


def test_loss_shape_mismatch_names_the_argument():
    probs, cues = three_pixel_case()
    with pytest.raises(InputError, match="cues: expected shape"):
        balanced_seed_loss(probs, cues[:, :1])
    with pytest.raises(InputError, match="crf_probs"):
        boundary_loss(probs, probs[:, :, :, :2])


def test_boundary_loss_counts_a_class_the_crf_rules_out_as_zero_not_nan():
    p = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    q = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)            # KL = 1 log(1 / 0.5) + 0 = log 2
    assert torch.isclose(boundary_loss(p, q), torch.log(torch.tensor(2.0)))
