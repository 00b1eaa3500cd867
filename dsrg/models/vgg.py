"""VGG16 convolutional trunk in the DeepLab / SEC variant, with torchvision's parameter names.

Architecture (Simonyan & Zisserman 2015, modified as in DeepLab-LargeFOV / SEC [14], which the
DSRG paper (Section 4.1) and the authors' Caffe code use for both networks):

* 13 3x3 convolutions (padding 1) with ReLU, channels from :data:`VGG16_CONFIG`;
* pool1-pool3: 3x3 max pool, stride 2, padding 1, ``ceil_mode=True`` (Caffe rounding), so a
  321x321 input becomes 161 -> 81 -> 41;
* pool4, pool5: 3x3 max pool, stride 1, padding 1 (resolution kept: output stride 8);
* conv5_1..conv5_3: dilation 2, padding 2 (compensates for the stride-1 pool4).

Module indices inside the ``features`` ``nn.Sequential`` are torchvision's ``vgg16`` ones
(convolutions at 0,2,5,7,10,12,14,17,19,21,24,26,28; ReLU and max-pool modules in between,
pool5 at 30), so a torchvision ``vgg16`` state dict's ``features.*`` entries load directly.
The fully connected ``classifier.*`` of torchvision (25088->4096->4096->1000) is not part of
this trunk.

``batch_norm=True`` inserts a BatchNorm after every convolution, in torchvision's ``vgg16_bn`` layout
(so a ``vgg16_bn`` state dict's ``features.*`` loads). It is not the paper's network: it is an
option for the CPU demo, where the trunk trains from random weights and BatchNorm makes that fast.

``width`` scales every channel count (``round(c * width)``, at least 1) keeping the topology,
for fast CPU demos and tests: ``width=0.125`` gives 8, 16, 32, 64, 64 channels.
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
