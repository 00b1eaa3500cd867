"""Image and label transforms of the training and test pipelines.

Resizing warps to a square (the authors' step 1 feeds 321 x 321 without cropping); label maps are
resized by nearest neighbour. Normalisation runs on batches on the device:

- ``torchvision``: RGB in [0, 1], minus ImageNet mean, over ImageNet std (torchvision checkpoints);
- ``caffe``: BGR in 0..255 minus (104, 117, 123) (the authors' Caffe models, DeepLab inits).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import expect_choice
from . import IGNORE, NORMALIZE

_TV_MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
_TV_STD = torch.tensor([0.229, 0.224, 0.225]) * 255
#: The mean the Caffe models subtract, BGR (ImageNet's, within one level).
CAFFE_MEAN_BGR = (104, 117, 123)
_CAFFE_MEAN_BGR = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32)
#: The RGB colour that pads crops, the Caffe mean; padding then normalises to about 0, as in the authors'
#: pipeline (mean subtracted, then zero-padded).
PAD_RGB = CAFFE_MEAN_BGR[::-1]


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> uint8 ``(h, w, 3)`` (bilinear); ``size`` an int (square) or ``(h, w)``."""
    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(H, W)`` -> ``(h, w)``: the pixel under each cell of an output grid laid over the whole image,
    corner-aligned as :func:`subsample_labels` (no new class values)."""
    if label.shape == tuple(size):
        return label
    return subsample_labels(torch.from_numpy(np.ascontiguousarray(label))[None], size)[0].numpy()


def subsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Label maps ``(B, H, W)`` -> ``(B, h, w)`` sampled at the rows and columns ``round(i (H-1) / (h-1))``:
    the pixel under each cell of the network's output grid (pixel 8i for 321 -> 41), as DeepLab's
    ``label_shrink``. No new values, 255 stays 255."""
    h, w = size
    rows = torch.linspace(0, labels.shape[1] - 1, h, device=labels.device).round().long()
    cols = torch.linspace(0, labels.shape[2] - 1, w, device=labels.device).round().long()
    return labels[:, rows][:, :, cols]


def to_chw(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` NumPy -> uint8 ``(3, H, W)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def normalize(images: torch.Tensor, mode: str = "torchvision") -> torch.Tensor:
    """uint8 RGB ``(B, 3, H, W)`` -> float32 network input, on the same device."""
    expect_choice("normalize", mode, NORMALIZE)
    x = images.float()
    if mode == "torchvision":
        return (x - _TV_MEAN.to(x.device).view(1, 3, 1, 1)) / _TV_STD.to(x.device).view(1, 3, 1, 1)
    return x.flip(1) - _CAFFE_MEAN_BGR.to(x.device).view(1, 3, 1, 1)


def random_crop(image: np.ndarray, label: np.ndarray, crop: int, rng: np.random.Generator):
    """DeepLab's training crop: pad to at least ``crop`` (image with :data:`PAD_RGB`, label with IGNORE), take a random
    ``crop x crop`` window, mirror with probability 1/2. ``(H, W, 3)`` and ``(H, W)`` in; ``(crop, crop, 3)``
    and ``(crop, crop)`` out."""
    h, w = label.shape
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    if ph or pw:
        image = np.stack([np.pad(image[..., k], ((0, ph), (0, pw)), constant_values=PAD_RGB[k]) for k in range(3)], -1)
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE)
    y = int(rng.integers(0, image.shape[0] - crop + 1))
    x = int(rng.integers(0, image.shape[1] - crop + 1))
    image, label = image[y:y + crop, x:x + crop], label[y:y + crop, x:x + crop]
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)
