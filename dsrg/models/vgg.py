"""VGG16 convolutional trunk in the DeepLab-LargeFOV / SEC variant that the paper (Section 4.1) and the authors'
code use for both networks, with torchvision's parameter names.

13 3x3 convolutions with ReLU (channels :data:`VGG16_CONFIG`); pool1-pool3 3x3, stride 2, padding 1,
``ceil_mode=True`` (Caffe's rounding: 321 -> 161 -> 81 -> 41); pool4 and pool5 stride 1 (output stride 8);
conv5_1..conv5_3 dilated by 2. The ``features`` indices are torchvision's ``vgg16`` ones (``vgg16_bn``'s with
``batch_norm=True``, the demo's option), so a torchvision state dict's ``features.*`` loads as is; its
``classifier.*`` is not part of the trunk. ``width`` scales every channel count (``round(c * width)``, at least 1)
for fast CPU demos and tests. Input ``(B, 3, H, W)``; output ``(B, round(512 * width), h, w)``, each side through
the three strided pools (:func:`pool_output_size`: 321 -> 41, 128 -> 17).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InputError, expect_shape

#: VGG16 ("configuration D"): output channels of each 3x3 conv, ``"M"`` for a max pool.
VGG16_CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                       512, 512, 512, "M", 512, 512, 512, "M")

#: Number of stride-2 pools (pool1-pool3); pool4/pool5 have stride 1.
_STRIDED_POOLS = 3


def scale_channels(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1; ``width`` must be a positive number."""
    check_width(width)
    return max(1, int(round(channels * width)))


def check_width(width: float) -> None:
    """Raise InputError unless ``width`` is a finite number > 0."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise InputError(f"width: expected a positive number (channel scale factor), got {width!r}")


def pool_output_size(n: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of PyTorch's max/avg pool (and of a convolution when ``ceil_mode`` is False)."""
    span = n + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + padding:  # last window must start inside the input
        out -= 1
    return out


def make_vgg16_features(width: float = 1.0, batch_norm: bool = False) -> nn.Sequential:
    """The modified VGG16 trunk as one ``nn.Sequential`` (torchvision indices of ``vgg16``, or of
    ``vgg16_bn`` with ``batch_norm``), ``(B,3,H,W) -> (B,C,h,w)``."""
    layers: list[nn.Module] = []
    in_ch, pools_seen = 3, 0
    for item in VGG16_CONFIG:
        if item == "M":
            pools_seen += 1
            stride = 2 if pools_seen <= _STRIDED_POOLS else 1
            layers.append(nn.MaxPool2d(3, stride=stride, padding=1, ceil_mode=stride == 2))
        else:
            dilation = 2 if pools_seen == 4 else 1  # conv5 block follows pool4
            out_ch = scale_channels(int(item), width)
            layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
            in_ch = out_ch
    return nn.Sequential(*layers)


def init_conv_(module: nn.Module) -> None:
    """He-normal convolution weights and zero biases (only used before pretrained weights load)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VGG16Features(nn.Module):
    """Modified VGG16 trunk (conv1_1 .. pool5), output stride 8.

    Forward: ``(B, 3, H, W)`` float -> ``(B, out_channels, h, w)`` with ``h = output_size(H)``
    (41 for 321). State-dict keys: ``features.0.weight`` ... ``features.28.bias``.
    """

    def __init__(self, width: float = 1.0, batch_norm: bool = False) -> None:
        super().__init__()
        self.width = float(width)
        self.features = make_vgg16_features(width, batch_norm)
        self.out_channels = scale_channels(512, width)
        init_conv_(self)

    @staticmethod
    def output_size(input_size: int) -> int:
        """Spatial size of the output for an input side of ``input_size`` pixels."""
        n = int(input_size)
        for _ in range(_STRIDED_POOLS):
            n = pool_output_size(n, 3, 2, 1, ceil_mode=True)
        return n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return self.features(x)


def check_images(x: torch.Tensor) -> None:
    """Raise InputError unless ``x`` is a float image batch ``(B, 3, H, W)``."""
    expect_shape("images", x, (None, 3, None, None))
    if not x.is_floating_point():
        raise InputError(f"images: expected a floating-point tensor, got {x.dtype}")
