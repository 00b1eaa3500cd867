"""Networks for DSRG: VGG16 / ResNet-101 trunks, DeepLab-ASPP, the CAM classifier, weight loading."""

from .cam import CAMNet
from .deeplab import ASPP_DILATIONS, DeepLabASPP, caffe_param_groups, output_size
from .resnet import Bottleneck, ResNet101
from .vgg import VGG16_CONFIG, VGG16Features, make_vgg16_features, scale_channels
from .weights import (CAFFE_VGG16_KEYMAP, HEAD_PREFIXES, architecture, check_backbone, check_vgg16_fc,
                      decimate_vgg16_fc, load_backbone, load_vgg16_fc, rename_keys)

__all__ = [
    "ASPP_DILATIONS", "Bottleneck", "CAFFE_VGG16_KEYMAP", "CAMNet", "DeepLabASPP", "HEAD_PREFIXES",
    "ResNet101", "VGG16_CONFIG", "VGG16Features", "architecture", "caffe_param_groups", "check_backbone",
    "check_vgg16_fc", "decimate_vgg16_fc", "load_backbone", "load_vgg16_fc", "make_vgg16_features", "output_size",
    "rename_keys", "scale_channels",
]
