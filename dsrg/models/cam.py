"""Classification network for class activation maps (DSRG Section 3.1; SEC [14]'s modified VGG16).

Architecture: the modified VGG16 trunk of :mod:`dsrg.models.vgg` (pool4/pool5 stride 1, conv5
dilation 2, output stride 8) -> ``fc6`` (3x3 conv, 1024 x width, dilation 1, padding 1) -> ReLU
-> dropout 0.5 -> ``fc7`` (1x1 conv, 1024 x width) -> ReLU -> dropout 0.5 -> global average
pooling -> ``fc8`` (Linear, ``num_classes`` foreground classes, no background).

"the fully-connected classifier is applied to conv7 to generate a heatmap for each object class"
(paper, Section 3.1): :meth:`CAMNet.cams` applies ``fc8`` (weights and bias) at every position of
the fc7 map, so by linearity the spatial mean of the CAMs equals the image-level logits exactly.
Call it in eval mode (dropout off) for deterministic maps.

State-dict keys: ``features.*`` (torchvision VGG16 names), ``fc6.*``, ``fc7.*``, ``fc8.*``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import expect_positive_int
from .deeplab import caffe_param_groups
from .vgg import VGG16Features, check_images, init_conv_, make_vgg16_features, scale_channels


class CAMNet(nn.Module):
    """Image classifier whose linear head yields CAMs.

    ``forward``: ``(B, 3, H, W)`` -> ``(B, num_classes)`` logits (multi-label; use a sigmoid/BCE).
    ``cams``: ``(B, 3, H, W)`` -> ``(B, num_classes, h, w)``, ``h = output_size(H)`` (41 for 321).
    """

    def __init__(self, num_classes: int = 20, width: float = 1.0, dropout: float = 0.5,
                 batch_norm: bool = False) -> None:
        super().__init__()
        expect_positive_int("num_classes", num_classes)
        self.num_classes = num_classes
        self.features = make_vgg16_features(width, batch_norm)
        trunk_ch, hidden = scale_channels(512, width), scale_channels(1024, width)
        self.fc6 = nn.Conv2d(trunk_ch, hidden, 3, padding=1)
        self.fc7 = nn.Conv2d(hidden, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.fc8 = nn.Linear(hidden, num_classes)
        init_conv_(self)
        nn.init.normal_(self.fc8.weight, std=0.01)
        nn.init.zeros_(self.fc8.bias)

    output_size = staticmethod(VGG16Features.output_size)

    def fc7_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, 1024 x width, h, w)``: the map that GAP and the CAMs read."""
        check_images(x)
        x = self.drop(self.relu(self.fc6(self.features(x))))
        return self.drop(self.relu(self.fc7(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.fc7_features(x).mean(dim=(2, 3)))

    def cams(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps ``(B, num_classes, h, w)``: ``fc8`` applied at every fc7 position."""
        feats = self.fc7_features(x)
        maps = torch.einsum("kc,bchw->bkhw", self.fc8.weight, feats)
        return maps + self.fc8.bias[None, :, None, None]

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Caffe multipliers as in :func:`dsrg.models.deeplab.caffe_param_groups`; ``fc8`` is the last layer."""
        return caffe_param_groups(self.named_parameters(), lambda n: n.startswith("fc8."), lr, weight_decay)
