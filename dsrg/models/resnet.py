"""ResNet-101 in the DeepLab v2 variant (output stride 8), with torchvision's parameter names.

Architecture (He et al. 2016, Bottleneck blocks, layers ``[3, 4, 23, 3]``), as DeepLab v2
(Chen et al. 2017) uses it for the "DSRG (ResNet101)" rows of the paper (Table 2/3):

* stem: ``conv1`` 7x7 stride 2 padding 3 (no bias) -> ``bn1`` -> ReLU -> 3x3 max pool stride 2
  padding 1 with ``ceil_mode=True`` (Caffe rounding; identical to floor for odd input sizes);
* ``layer1`` (64 planes, stride 1), ``layer2`` (128 planes, stride 2),
  ``layer3`` (256 planes, stride 1, **dilation 2** in every block),
  ``layer4`` (512 planes, stride 1, **dilation 4** in every block); 4x channel expansion;
* each Bottleneck: ``conv1`` 1x1 -> ``bn1`` -> ReLU -> ``conv2`` 3x3 (stride, dilation) ->
  ``bn2`` -> ReLU -> ``conv3`` 1x1 -> ``bn3`` -> + shortcut -> ReLU. The shortcut is
  ``downsample`` (``0``: 1x1 conv with the block's stride, ``1``: BatchNorm) where the shape
  changes. The stride sits on the 3x3 conv (torchvision's "v1.5"; Caffe's original puts it on
  the first 1x1 - same parameters, so weights load either way);
* optional ``fc`` (Linear 2048 -> 1000) after global average pooling, only so that the state
  dict can equal torchvision's ``resnet101`` exactly; segmentation does not use it.

BatchNorm is frozen by default (``freeze_bn=True``): the BN layers stay in eval mode (running
statistics used, never updated) even under ``model.train()``, and their affine parameters do not
require gradients - as DeepLab trains with ``use_global_stats: true`` and fixed scale layers.

``width`` scales every channel count (``round(c * width)``, at least 1) keeping the topology.
"""

from __future__ import annotations

import torch
from torch import nn

from .vgg import check_images, pool_output_size, scale_channels

#: Bottleneck blocks per stage of ResNet-101.
RESNET101_LAYERS: tuple[int, int, int, int] = (3, 4, 23, 3)
#: Channel expansion of a Bottleneck block (output = 4 x planes).
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 residual block; ``(B, inplanes, H, W) -> (B, 4*planes, H/s, W/s)``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


def make_stage(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """``blocks`` Bottlenecks; only the first one strides (and owns the ``downsample`` shortcut)."""
    layers = [Bottleneck(inplanes, planes, stride, dilation)]
    layers += [Bottleneck(planes * EXPANSION, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet101(nn.Module):
    """DeepLab v2 ResNet-101 trunk (output stride 8).

    Forward: ``(B, 3, H, W)`` float -> ``(B, out_channels, h, w)`` (layer4 features, 2048 x width
    channels, ``h = output_size(H)``, 41 for 321). Its state dict is a torchvision resnet101's without ``fc``.
    """

    def __init__(self, width: float = 1.0, freeze_bn: bool = True) -> None:
        super().__init__()
        self.width = float(width)
        self.freeze_bn = bool(freeze_bn)
        stem = scale_channels(64, width)
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        planes = [scale_channels(p, width) for p in (64, 128, 256, 512)]
        strides, dilations = (1, 2, 1, 1), (1, 1, 2, 4)
        inplanes = stem
        for i, (p, n, s, d) in enumerate(zip(planes, RESNET101_LAYERS, strides, dilations), start=1):
            setattr(self, f"layer{i}", make_stage(inplanes, p, n, s, d))
            inplanes = p * EXPANSION
        self.out_channels = inplanes
        self._init_weights()
        self._apply_bn_freeze()

    def _init_weights(self) -> None:
        """He-normal convolutions, unit BatchNorm, and a zero scale on each block's last BatchNorm.

        The zero scale (Goyal et al. 2017, torchvision's ``zero_init_residual``) makes every block start as
        the identity. It only matters without ImageNet weights (the demo's ResNet-101 row): with unit
        scales the 33 blocks' outputs add up on the shortcut path, and training from random weights
        diverges within a few iterations (the seeding loss jumps to its clip). Loaded weights replace it."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)

    def batchnorms(self) -> list[nn.modules.batchnorm._BatchNorm]:
        """Every BatchNorm layer, SyncBatchNorm included (multi-GPU training converts them)."""
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def _apply_bn_freeze(self) -> None:
        for bn in self.batchnorms():
            bn.weight.requires_grad_(not self.freeze_bn)
            bn.bias.requires_grad_(not self.freeze_bn)
            if self.freeze_bn:
                bn.eval()

    def train(self, mode: bool = True) -> "ResNet101":
        super().train(mode)
        if self.freeze_bn:
            for bn in self.batchnorms():
                bn.eval()
        return self

    @staticmethod
    def output_size(input_size: int) -> int:
        """Spatial size of the layer4 output for an input side of ``input_size`` pixels."""
        n = pool_output_size(int(input_size), 7, 2, 3, ceil_mode=False)  # conv1
        n = pool_output_size(n, 3, 2, 1, ceil_mode=True)  # maxpool
        return pool_output_size(n, 3, 2, 1, ceil_mode=False)  # layer2's strided 3x3 conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
