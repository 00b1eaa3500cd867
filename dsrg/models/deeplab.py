"""DeepLab-ASPP segmentation networks (DSRG step 1 and the retraining step).

* ``backbone="vgg16"`` follows the authors' Caffe model (reference "Network" section; DeepLab v2
  ASPP-L, Chen et al. 2017): modified VGG16 trunk (:mod:`dsrg.models.vgg`, pool5 included) ->
  ``pool5a`` 3x3 average pool stride 1 padding 1 -> four branches, one per dilation
  6/12/18/24, each ``fc6`` (3x3 conv, 1024 x width, that dilation) -> ReLU -> dropout 0.5 ->
  ``fc7`` (1x1, 1024 x width) -> ReLU -> dropout 0.5 -> ``fc8`` (1x1, num_classes); the branch
  logits are summed.
* ``backbone="resnet101"`` follows DeepLab v2 ResNet-101 (:mod:`dsrg.models.resnet`): four 3x3
  convolutions on the layer4 output with dilations 6/12/18/24 straight to num_classes, summed.
* ``head`` swaps the heads (not the paper's; Table 1's page takes its rows apart with it): ``"vgg16"`` puts
  VGG16's ``pool5a`` and four fc6-fc7-fc8 branches on either trunk, ``"resnet101"`` ResNet-101's four 3x3
  convolutions; None keeps the backbone's own.

Forward: ``(B, 3, H, W)`` float -> ``(B, num_classes, h, w)`` logits on the output-stride-8 grid
(``h = output_size(H)``; 41 for 321). No softmax, no upsampling.

Learning rates (:meth:`DeepLabASPP.param_groups`) follow the Caffe prototxts: every layer has
``lr_mult 1`` for weights and ``lr_mult 2, decay_mult 0`` for biases, except the last
classifier layer(s) (VGG ``fc8`` of each branch; ResNet's four ASPP convs), which get weights
x10 and biases x20 (paper's code, reference "Hyper-parameters": "last layer lr x10 (bias x20)").
Frozen parameters (ResNet BatchNorm by default) are left out.
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from torch import nn

from ..errors import InputError, expect_choice, expect_positive_int
from ..method import BACKBONES
from .resnet import ResNet101
from .vgg import VGG16Features, check_images, init_conv_, scale_channels

#: Dilation rates of the four ASPP branches (ASPP-L).
ASPP_DILATIONS: tuple[int, ...] = (6, 12, 18, 24)


class VGGASPPBranch(nn.Module):
    """One ASPP-L branch: fc6 (3x3, dilation d) -> ReLU -> drop -> fc7 (1x1) -> ReLU -> drop -> fc8 (1x1).

    ``(B, in_ch, h, w) -> (B, num_classes, h, w)``.
    """

    def __init__(self, in_ch: int, hidden: int, num_classes: int, dilation: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc6 = nn.Conv2d(in_ch, hidden, 3, padding=dilation, dilation=dilation)
        self.fc7 = nn.Conv2d(hidden, hidden, 1)
        self.fc8 = nn.Conv2d(hidden, num_classes, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.relu(self.fc6(x)))
        x = self.drop(self.relu(self.fc7(x)))
        return self.fc8(x)


def caffe_param_groups(named_params: Iterable[tuple[str, nn.Parameter]], is_last_layer, lr: float,
                       weight_decay: float) -> list[dict]:
    """SGD groups with Caffe's multipliers.

    Weights: lr x1 (x10 where ``is_last_layer(name)``), decay x1. Biases: lr x2 (x20 on the last
    layer), decay 0 (DeepLab's ``decay_mult: 0``). Parameters without ``requires_grad`` are skipped;
    empty groups are dropped. Each group carries a ``"name"`` and its ``"lr_mult"``.
    """
    buckets: dict[str, list[nn.Parameter]] = {"weight": [], "bias": [], "last_weight": [], "last_bias": []}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        kind = "bias" if name.endswith("bias") else "weight"
        buckets[("last_" if is_last_layer(name) else "") + kind].append(p)
    mults = {"weight": (1.0, 1.0), "bias": (2.0, 0.0), "last_weight": (10.0, 1.0), "last_bias": (20.0, 0.0)}
    return [{"name": k, "params": ps, "lr": lr * mults[k][0], "lr_mult": mults[k][0],
             "weight_decay": weight_decay * mults[k][1]} for k, ps in buckets.items() if ps]


class DeepLabASPP(nn.Module):
    """DeepLab-ASPP on a VGG16 or ResNet-101 trunk; ``(B,3,H,W) -> (B,num_classes,h,w)`` logits.

    Attributes: ``backbone`` (load pretrained weights into it with
    :func:`dsrg.models.weights.load_backbone`), ``aspp`` (``nn.ModuleList`` of four branches),
    ``pool5a`` (VGG16's head only), ``head_name`` (whose head it is: ``"vgg16"`` or ``"resnet101"``).
    """

    def __init__(self, backbone: Literal["vgg16", "resnet101"] = "vgg16", num_classes: int = 21,
                 width: float = 1.0, freeze_bn: bool = True, dropout: float = 0.5, batch_norm: bool = False,
                 head: Literal["vgg16", "resnet101"] | None = None) -> None:
        super().__init__()
        expect_choice("backbone", backbone, BACKBONES)
        expect_positive_int("num_classes", num_classes)
        head = head or backbone
        expect_choice("head", head, BACKBONES)
        self.backbone_name, self.head_name = backbone, head
        self.num_classes = num_classes
        if backbone == "vgg16":
            self.backbone: nn.Module = VGG16Features(width, batch_norm)
        else:
            if batch_norm:
                raise InputError("batch_norm: the vgg16_bn option is for backbone='vgg16' (ResNet-101 has its own)")
            self.backbone = ResNet101(width, freeze_bn=freeze_bn)
        if head == "vgg16":
            self.pool5a: nn.Module = nn.AvgPool2d(3, stride=1, padding=1)
            hidden = scale_channels(1024, width)
            self.aspp = nn.ModuleList(VGGASPPBranch(self.backbone.out_channels, hidden, num_classes, d, dropout)
                                      for d in ASPP_DILATIONS)
            last_layers = [b.fc8 for b in self.aspp]
            for branch in self.aspp:
                for conv in (branch.fc6, branch.fc7):
                    init_conv_(conv)
        else:
            self.pool5a = nn.Identity()
            self.aspp = nn.ModuleList(nn.Conv2d(self.backbone.out_channels, num_classes, 3, padding=d, dilation=d)
                                      for d in ASPP_DILATIONS)
            last_layers = list(self.aspp)
        for conv in last_layers:  # DeepLab: gaussian std 0.01, zero bias
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        self._last_layer_ids = {id(p) for conv in last_layers for p in conv.parameters()}

    def output_size(self, input_size: int) -> int:
        """Side of the logit grid for an input side of ``input_size`` (41 for 321)."""
        return self.backbone.output_size(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        feats = self.pool5a(self.backbone(x))
        out = self.aspp[0](feats)
        for branch in self.aspp[1:]:
            out = out + branch(feats)
        return out

    def is_last_layer(self, param: nn.Parameter) -> bool:
        return id(param) in self._last_layer_ids

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """SGD parameter groups: backbone/hidden weights lr, biases 2 lr (no decay); last layer 10 lr / 20 lr."""
        params = dict(self.named_parameters())
        return caffe_param_groups(params.items(), lambda n: self.is_last_layer(params[n]), lr, weight_decay)


def output_size(input_size: int, backbone: Literal["vgg16", "resnet101"] = "vgg16") -> int:
    """Side of DeepLabASPP's logit grid for an input side of ``input_size`` (41 for 321, both backbones)."""
    expect_choice("backbone", backbone, BACKBONES)
    return (VGG16Features if backbone == "vgg16" else ResNet101).output_size(input_size)
