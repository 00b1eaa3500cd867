"""Multi-scale inference: logits summed over sizes, optional restriction to the labelled classes, CRF."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dsrg.method.inference import multiscale_probs
from dsrg.run.predict import predict


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


class Blobs(nn.Module):
    """Logits that depend on the image: a fixed random 1x1 convolution of the colours, so that the
    probabilities vary within and between images and the CRF has something to change."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(5, 3, 1, 1, generator=torch.Generator().manual_seed(0)) * 2)
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


def _photos():
    from skimage import data
    return [("astronaut", data.astronaut()[:48, :64].copy()), ("coffee", data.coffee()[100:140, 200:230].copy()),
            ("chelsea", data.chelsea()[:30, :50].copy())]


def test_the_lattice_backend_labels_as_pydensecrf_in_batches_of_any_size():
    def run(**kw):
        return dict(predict(Blobs(), _photos(), lambda h, w: [(h, w)], torch.device("cpu"), "torchvision",
                            crf=True, workers=1, **kw))

    reference = run(crf_backend="pydensecrf")
    no_crf = dict(predict(Blobs(), _photos(), lambda h, w: [(h, w)], torch.device("cpu"), "torchvision", crf=False))
    assert any((reference[k] != no_crf[k]).any() for k in reference)         # the CRF changed something
    for budget in (1, 48 * 64 + 40 * 30, 10 ** 6):                             # one image, two, all at once
        lattice = run(crf_backend="lattice", batch_pixels=budget)
        assert list(lattice) == list(reference)
        for k in reference:
            assert (lattice[k] == reference[k]).all()
