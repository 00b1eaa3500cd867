"""Our VGG16 and ResNet-101 trunks against torchvision's, on the same random weights saved as a torchvision
checkpoint and loaded the way a user's is (dsrg.run.networks.read_weights, then dsrg.models.weights.load_backbone):
a torchvision file then means the same network in dsrg. torchvision's models get DeepLab's changes first (3x3
pools, stride-1 pool4 and pool5, dilated conv5; ResNet's dilated layer3 and layer4 in every block, Caffe's
ceil-mode stem pool), since ours are DeepLab's. torchvision's CUDA-only wheels import only beside a CUDA torch,
hence a `gpu` test; beside a CPU torch, `make torchvision-check` runs it on torchvision's model definitions alone
(DSRG_TORCHVISION_SOURCE: an unpacked wheel, loaded without the package's ``__init__``, which registers the
compiled operators that fail beside a CPU torch and that these models never call)."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from dsrg.models.resnet import ResNet101
from dsrg.models.vgg import VGG16Features
from dsrg.models.weights import load_backbone
from dsrg.run.networks import read_weights


def _torchvision():
    """torchvision; else, with DSRG_TORCHVISION_SOURCE set, its pure-Python ``models`` package from that
    unpacked wheel, without the package's ``__init__`` (which registers the compiled operators); else None."""
    try:
        import torchvision
        return torchvision
    except Exception:  # noqa: BLE001 (ImportError, or RuntimeError beside a CPU torch)
        pass
    source = os.environ.get("DSRG_TORCHVISION_SOURCE")
    if not source or not (Path(source) / "torchvision" / "models").is_dir():
        return None
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]                  # what a failed import of an installed torchvision left behind
    where = str(Path(source) / "torchvision")
    package = types.ModuleType("torchvision")
    package.__path__ = [where]
    package.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    package.__spec__.submodule_search_locations = [where]
    sys.modules["torchvision"] = package
    package.models = importlib.import_module("torchvision.models")
    return package


torchvision = _torchvision()

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(torchvision is None, reason="torchvision does not import here")]
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def deeplab_vgg16(tv: torch.nn.Module) -> torch.nn.Sequential:
    """torchvision's vgg16 ``features`` with DeepLab's pools and conv5 dilation."""
    features, pools = tv.features, 0
    for i, layer in enumerate(features):
        if isinstance(layer, torch.nn.MaxPool2d):
            pools += 1
            stride = 2 if pools <= 3 else 1
            features[i] = torch.nn.MaxPool2d(3, stride=stride, padding=1, ceil_mode=stride == 2)
        elif isinstance(layer, torch.nn.Conv2d) and pools == 4:
            layer.dilation, layer.padding = (2, 2), (2, 2)
    return features


def deeplab_resnet101(tv: torch.nn.Module) -> torch.nn.Module:
    """torchvision's resnet101 at output stride 8, dilated in every block of layer3 (2) and layer4 (4)."""
    tv.maxpool.ceil_mode = True
    for layer, rate in ((tv.layer3, 2), (tv.layer4, 4)):
        for block in layer:
            block.conv2.dilation, block.conv2.padding = (rate, rate), (rate, rate)
    return tv


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.fixture(autouse=True)
def no_tf32():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    scale = theirs.abs().max().item()
    assert scale > 0 and (ours - theirs).abs().max().item() <= 1e-5 * scale


def test_our_vgg16_trunk_is_torchvisions_with_deeplabs_changes(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.vgg16(weights=None)
    torch.save(tv.state_dict(), tmp_path / "vgg16.pth")
    ours = VGG16Features()
    loaded = load_backbone(ours, read_weights(tmp_path / "vgg16.pth"))
    assert len(loaded) == 26, "13 convolutions, weight and bias"
    theirs = deeplab_vgg16(tv)
    x = torch.randn(2, 3, 97, 97, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _same(ours.to(DEVICE).eval()(x.to(DEVICE)), theirs.to(DEVICE).eval()(x.to(DEVICE)))


def test_our_resnet101_trunk_is_torchvisions_with_deeplabs_dilations(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet101(weights=None, replace_stride_with_dilation=[False, True, True])
    _randomise_batchnorm(tv)
    torch.save(tv.state_dict(), tmp_path / "resnet101.pth")
    ours = ResNet101()
    load_backbone(ours, read_weights(tmp_path / "resnet101.pth"))
    theirs = deeplab_resnet101(tv)
    trunk = torch.nn.Sequential(theirs.conv1, theirs.bn1, theirs.relu, theirs.maxpool, theirs.layer1, theirs.layer2,
                                theirs.layer3, theirs.layer4)
    x = torch.randn(2, 3, 97, 97, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _same(ours.to(DEVICE).eval()(x.to(DEVICE)), trunk.to(DEVICE).eval()(x.to(DEVICE)))
