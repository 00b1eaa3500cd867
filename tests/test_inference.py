"""Multi-scale inference: logits summed over sizes, optional restriction to the labelled classes, CRF."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dsrg.method.inference import multiscale_probs, predict


class Constant(nn.Module):
    """Logits favouring class 2 everywhere, then class 1; a 4 x 4 grid whatever the input size."""

    def forward(self, x):
        logits = torch.tensor([0.0, 1.0, 3.0]).view(1, 3, 1, 1)
        return logits.expand(x.shape[0], 3, 4, 4)


def _image():
    return np.full((10, 12, 3), 128, np.uint8)


def test_probabilities_are_upsampled_to_the_image_and_sum_to_one():
    p = multiscale_probs(Constant(), _image(), [(8, 8), (16, 16)], torch.device("cpu"), "torchvision")
    assert p.shape == (3, 10, 12)
    assert torch.allclose(p.sum(0), torch.ones(10, 12))
    assert torch.allclose(p[:, 0, 0], torch.tensor([0.0, 1.0, 3.0]).mul(2).softmax(0), atol=1e-6)


def test_the_argmax_is_taken_over_all_classes_unless_restricted_to_the_labels():
    free = dict(predict(Constant(), [("a", _image())], lambda h, w: [(h, w)], torch.device("cpu"), "torchvision",
                        crf=False))
    assert (free["a"] == 2).all()
    allowed = np.array([True, True, False])
    kept = dict(predict(Constant(), [("a", _image(), allowed)], lambda h, w: [(h, w)], torch.device("cpu"),
                        "torchvision", crf=True, workers=1))
    assert (kept["a"] == 1).all()
