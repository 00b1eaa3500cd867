"""Seed cues from CAMs and saliency, on maps whose answer can be read off."""

import pytest
import torch

from dsrg.errors import InputError
from dsrg.method.seeds import cam_foreground_cues, make_cues, saliency_background_cues, stack_cues


def one_by_five_cam():
    cams = torch.zeros(1, 3, 1, 5)
    cams[0, 1, 0] = torch.tensor([0.0, 1.0, 3.0, 10.0, 0.5])   # class 1 present
    cams[0, 2, 0] = torch.tensor([9.0, 9.0, 9.0, 9.0, 9.0])    # class 2 absent
    return cams, torch.tensor([[True, True, False]])


def test_fraction_of_max_keeps_pixels_above_a_fifth_of_the_peak():
    cams, labels = one_by_five_cam()
    cue = cam_foreground_cues(cams, labels)                 # 0.2 * 10 = 2: only 3 and 10 are above
    assert cue[0, 1, 0].tolist() == [False, False, True, True, False]
    assert not cue[0, 0].any() and not cue[0, 2].any()       # background channel and absent class


def test_a_pixel_at_exactly_a_fifth_of_the_peak_is_not_a_seed():
    cams = torch.tensor([0.0, 2.0, 2.5, 10.0]).view(1, 1, 1, 4)         # 0.2 * 10 = 2: strictly above
    assert cam_foreground_cues(torch.cat([cams, cams], 1), torch.tensor([[True, True]]))[0, 1, 0].tolist() == \
        [False, False, True, True]


def test_top_fraction_keeps_the_highest_ranked_pixels():
    cams, labels = one_by_five_cam()
    cue = cam_foreground_cues(cams, labels, rule="top_fraction", fraction=0.4)   # top 2 of 5
    assert cue[0, 1, 0].tolist() == [False, False, True, True, False]
    cue = cam_foreground_cues(cams, labels, rule="top_fraction", fraction=0.2)   # top 1 of 5
    assert cue[0, 1, 0].tolist() == [False, False, False, True, False]


def test_a_cam_with_no_positive_value_gives_no_cue():
    cams = -torch.ones(1, 2, 2, 2)
    assert not cam_foreground_cues(cams, torch.tensor([[True, True]])).any()


def test_background_cues_are_the_least_salient_pixels_after_normalisation():
    sal = torch.tensor([[[10.0, 10.5, 20.0], [30.0, 60.0, 110.0]]])   # (x - 10) / 100 < 0.06 -> x < 16
    assert saliency_background_cues(sal)[0].tolist() == [[True, True, False], [False, False, False]]
    assert not saliency_background_cues(torch.full((1, 2, 2), 0.5)).any()   # a flat map: no cue


def test_a_pixel_at_exactly_the_threshold_is_not_background():
    sal = torch.tensor([[[0.0, 5.0, 6.0, 100.0]]])                     # normalised: 0, 0.05, 0.06, 1
    assert saliency_background_cues(sal)[0, 0].tolist() == [True, True, False, False]


def test_background_cues_are_resized_to_the_grid():
    sal = torch.ones(1, 8, 8); sal[0, :4, :4] = 0.0
    bg = saliency_background_cues(sal, size=(2, 2))
    assert bg[0].tolist() == [[True, False], [False, False]]


def test_stacked_cues_put_background_in_channel_zero_and_only_present_classes():
    cams, labels = one_by_five_cam()
    sal = torch.tensor([[[0.0, 0.01, 1.0, 1.0, 0.02]]])
    cues = make_cues(cams, sal, labels)
    assert cues.shape == (1, 3, 1, 5) and cues.dtype == torch.bool
    assert cues[0, 0, 0].tolist() == [True, True, False, False, True]
    assert cues[0, 1, 0].tolist() == [False, False, True, True, False]
    assert not cues[0, 2].any()


def test_bad_arguments_are_named():
    cams, labels = one_by_five_cam()
    with pytest.raises(InputError, match="rule: expected one of"):
        cam_foreground_cues(cams, labels, rule="top20")
    with pytest.raises(InputError, match="labels: expected shape"):
        cam_foreground_cues(cams, labels[:, :2])
    with pytest.raises(InputError, match="background: expected shape"):
        stack_cues(torch.zeros(1, 3, 2, 2, dtype=torch.bool), torch.zeros(1, 3, 3, dtype=torch.bool), labels)
