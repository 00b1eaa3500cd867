"""Tests for dsrg.models: shapes, torchvision-compatible names, CAMs, weight loading, LR groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dsrg.errors import InputError
from dsrg.models import (ASPP_DILATIONS, CAFFE_VGG16_KEYMAP, CAMNet, DeepLabASPP, ResNet101, VGG16Features, decimate_vgg16_fc,
                         load_backbone, load_vgg16_fc, output_size, rename_keys)

SMALL = 0.125
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def torchvision_vgg16_feature_shapes() -> dict[str, tuple[int, ...]]:
    """Expected ``features.*`` keys/shapes of torchvision's vgg16, built from the VGG16 config."""
    shapes, idx, in_ch = {}, 0, 3
    for item in VGG16_CFG:
        if item == "M":
            idx += 1
            continue
        shapes[f"features.{idx}.weight"] = (item, in_ch, 3, 3)
        shapes[f"features.{idx}.bias"] = (item,)
        idx += 2  # conv + ReLU
        in_ch = item
    return shapes


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---- output grids -------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["vgg16", "resnet101"])
def test_deeplab_321_input_gives_41x41_logits(backbone):
    model = DeepLabASPP(backbone, num_classes=21, width=SMALL).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 321, 321))
    assert out.shape == (1, 21, 41, 41)
    assert model.output_size(321) == 41 == output_size(321, backbone)


@pytest.mark.parametrize("backbone", ["vgg16", "resnet101"])
@pytest.mark.parametrize("size", [33, 40, 65, 96])
def test_output_size_helper_matches_forward(backbone, size):
    model = DeepLabASPP(backbone, num_classes=3, width=SMALL).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size + 8))
    assert out.shape[2:] == (output_size(size, backbone), output_size(size + 8, backbone))


def test_vgg_trunk_pool4_pool5_keep_resolution_and_conv5_is_dilated():
    f = VGG16Features(width=SMALL).features
    pools = [m for m in f if isinstance(m, nn.MaxPool2d)]
    assert [p.stride for p in pools] == [2, 2, 2, 1, 1]
    assert all(p.ceil_mode for p in pools[:3])
    assert [f[i].dilation for i in (24, 26, 28)] == [(2, 2)] * 3
    assert [f[i].padding for i in (24, 26, 28)] == [(2, 2)] * 3


def test_width_scales_vgg_channels():
    convs = [m for m in VGG16Features(width=SMALL).features if isinstance(m, nn.Conv2d)]
    assert sorted({c.out_channels for c in convs}) == [8, 16, 32, 64]
    assert convs[-1].out_channels == 64


def test_bad_input_and_arguments_raise_input_error():
    model = DeepLabASPP("vgg16", num_classes=3, width=SMALL)
    with pytest.raises(InputError, match="images"):
        model(torch.randn(1, 1, 33, 33))
    with pytest.raises(InputError, match="floating"):
        model(torch.zeros(1, 3, 33, 33, dtype=torch.uint8))
    with pytest.raises(InputError, match="backbone"):
        DeepLabASPP("alexnet")
    with pytest.raises(InputError, match="width"):
        VGG16Features(width=0)


# ---- torchvision-compatible names ---------------------------------------------------------------

def test_vgg16_state_dict_equals_torchvision_features_keys_and_shapes():
    got = {k: tuple(v.shape) for k, v in VGG16Features(width=1.0).state_dict().items()}
    expected = torchvision_vgg16_feature_shapes()
    assert list(got) == list(expected)  # same keys, same order
    assert got == expected
    assert list(expected)[0] == "features.0.weight" and list(expected)[-1] == "features.28.bias"


def resnet_expected_param_count(blocks=(3, 4, 23, 3), widths=(64, 128, 256, 512), classes=1000) -> int:
    """Parameter count of torchvision's resnet101 from the architecture.

    By hand: stem conv 3*64*49 = 9,408 + bn 128. A Bottleneck(in, p) has in*p + 9p^2 + 4p^2
    conv weights and 2p + 2p + 8p BN params; a downsample adds in*4p + 8p.
      layer1 (p=64):  75,008 + 2 * 70,400          =    215,808
      layer2 (p=128): 379,392 + 3 * 280,064        =  1,219,584
      layer3 (p=256): 1,512,448 + 22 * 1,117,184   = 26,090,496
      layer4 (p=512): 6,039,552 + 2 * 4,462,592    = 14,964,736
      fc: 2048 * 1000 + 1000                       =  2,049,000
    Total 9,536 + 215,808 + 1,219,584 + 26,090,496 + 14,964,736 + 2,049,000 = 44,549,160.
    """
    total, inp = 3 * 64 * 49 + 2 * 64, 64
    for n, p in zip(blocks, widths):
        for i in range(n):
            total += inp * p + 9 * p * p + 4 * p * p + 12 * p
            if i == 0:
                total += inp * 4 * p + 8 * p
            inp = 4 * p
    return total + inp * classes + classes


def test_resnet101_parameter_count_equals_torchvision():
    model = ResNet101(width=1.0)
    assert resnet_expected_param_count() == 44_549_160
    assert sum(p.numel() for p in model.parameters()) + 2048 * 1000 + 1000 == 44_549_160, "torchvision's, less fc"


def test_resnet101_state_dict_has_torchvision_names():
    sd = ResNet101(width=1.0).state_dict()
    for layer, n in zip(range(1, 5), (3, 4, 23, 3)):
        assert {k.split(".")[1] for k in sd if k.startswith(f"layer{layer}.")} == {str(i) for i in range(n)}
        assert [k for k in sd if k.startswith(f"layer{layer}.") and ".downsample." in k] == [
            f"layer{layer}.0.downsample.{s}" for s in (
                "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked")]
    assert tuple(sd["layer3.22.bn3.running_var"].shape) == (1024,)
    assert tuple(sd["layer4.0.downsample.1.weight"].shape) == (2048,)
    assert tuple(sd["layer4.0.downsample.0.weight"].shape) == (2048, 1024, 1, 1)
    assert tuple(sd["conv1.weight"].shape) == (64, 3, 7, 7)
    assert not any(k.startswith("fc.") for k in sd), "torchvision's ImageNet head is not the trunk's"
    assert "bn1.num_batches_tracked" in sd and "layer1.0.conv2.weight" in sd
    # 104 BatchNorms (1 stem + 33 blocks * 3 + 4 downsamples) * 5 entries, 104 convs
    assert len(sd) == 104 * 5 + 104


def test_frozen_resnet_batchnorm_stays_frozen_after_conversion_to_sync_batchnorm():
    """Multi-GPU training converts BatchNorm to SyncBatchNorm (dsrg.run.train.fit); the freeze must survive it."""
    m = ResNet101(width=SMALL)
    keys = list(m.state_dict())
    torch.nn.SyncBatchNorm.convert_sync_batchnorm(m)
    assert isinstance(m.bn1, torch.nn.SyncBatchNorm) and list(m.state_dict()) == keys
    m.train()
    assert m.batchnorms() and not any(bn.training for bn in m.batchnorms())
    assert not m.bn1.weight.requires_grad


def test_resnet_layer3_layer4_are_dilated_not_strided():
    m = ResNet101(width=SMALL)
    assert m.layer3[0].conv2.stride == (1, 1) and m.layer3[5].conv2.dilation == (2, 2)
    assert m.layer4[0].conv2.stride == (1, 1) and m.layer4[2].conv2.dilation == (4, 4)
    assert m.layer2[0].conv2.stride == (2, 2)


def test_resnet_batchnorm_frozen_by_default_and_unfreezable():
    m = ResNet101(width=SMALL).train()
    assert not any(bn.training for bn in m.batchnorms())
    assert not m.bn1.weight.requires_grad
    before = m.bn1.running_mean.clone()
    m(torch.randn(2, 3, 33, 33))
    assert torch.equal(m.bn1.running_mean, before)
    m = ResNet101(width=SMALL, freeze_bn=False).train()
    assert all(bn.training for bn in m.batchnorms()) and m.bn1.weight.requires_grad
    before = m.bn1.running_mean.clone()
    m(torch.randn(2, 3, 33, 33))
    assert not torch.equal(m.bn1.running_mean, before)


# ---- CAM net ------------------------------------------------------------------------------------

def test_cam_global_average_equals_logits():
    net = CAMNet(num_classes=20, width=SMALL).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        cams, logits = net.cams(x), net(x)
    assert logits.shape == (2, 20)
    assert cams.shape == (2, 20, net.output_size(64), net.output_size(48))
    torch.testing.assert_close(cams.mean(dim=(2, 3)), logits, rtol=1e-5, atol=1e-5)


def test_cam_net_321_gives_41x41_maps_and_fc6_is_undilated_3x3():
    net = CAMNet(num_classes=20, width=SMALL).eval()
    with torch.no_grad():
        assert net.cams(torch.randn(1, 3, 321, 321)).shape == (1, 20, 41, 41)
    assert net.fc6.kernel_size == (3, 3) and net.fc6.dilation == (1, 1)
    assert net.fc6.out_channels == net.fc7.out_channels == 128


# ---- weight loading -----------------------------------------------------------------------------

def test_load_backbone_round_trip_ignores_classifier_keys():
    src = VGG16Features(width=SMALL)
    state = dict(src.state_dict())
    state["classifier.0.weight"] = torch.randn(4, 4)  # torchvision head: ignored
    state["classifier.6.bias"] = torch.randn(10)
    dst = VGG16Features(width=SMALL)
    loaded = load_backbone(dst, state)
    assert loaded == sorted(src.state_dict())
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)


def test_load_backbone_takes_a_torchvision_resnet_with_its_fc_into_a_trunk_without():
    src = ResNet101(width=SMALL)
    state = {**src.state_dict(), "fc.weight": torch.randn(1000, src.out_channels), "fc.bias": torch.randn(1000)}
    dst = DeepLabASPP("resnet101", num_classes=3, width=SMALL)
    load_backbone(dst.backbone, state)
    assert torch.equal(dst.backbone.layer3[22].bn3.running_var, src.layer3[22].bn3.running_var)
    assert torch.equal(dst.backbone.conv1.weight, src.conv1.weight)


def test_load_backbone_tolerates_missing_num_batches_tracked():
    state = {k: v for k, v in ResNet101(width=SMALL).state_dict().items() if not k.endswith("num_batches_tracked")}
    dst = ResNet101(width=SMALL)
    load_backbone(dst, state)
    assert torch.equal(dst.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_load_backbone_lists_missing_unexpected_and_shape_mismatch():
    state = dict(VGG16Features(width=SMALL).state_dict())
    del state["features.28.bias"]
    state["features.99.weight"] = torch.zeros(1)
    state["features.0.weight"] = torch.zeros(5, 3, 3, 3)
    dst = VGG16Features(width=SMALL)
    before = dst.features[2].weight.clone()
    with pytest.raises(InputError) as err:
        load_backbone(dst, state)
    msg = str(err.value)
    assert "missing keys (1): features.28.bias" in msg
    assert "unexpected keys (1): features.99.weight" in msg
    assert "features.0.weight: expected (8, 3, 3, 3), found (5, 3, 3, 3)" in msg
    assert torch.equal(dst.features[2].weight, before)  # nothing loaded


def test_load_backbone_width_mismatch_reports_every_conv():
    with pytest.raises(InputError, match=r"shape mismatches \(26\): features.0.bias: expected \(8,\), found \(16,\)"):
        load_backbone(VGG16Features(width=SMALL), VGG16Features(width=0.25).state_dict())


def test_caffe_keymap_points_at_vgg_convs_and_cam_fc_layers():
    cam = CAMNet(num_classes=20, width=SMALL)
    convs = [f"features.{i}" for i, m in enumerate(cam.features) if isinstance(m, nn.Conv2d)]
    assert [v for k, v in CAFFE_VGG16_KEYMAP.items() if k.startswith("conv")] == convs
    inverse = {v: k for k, v in CAFFE_VGG16_KEYMAP.items()}
    caffe_state = {}
    for key, value in cam.state_dict().items():
        layer, _, suffix = key.rpartition(".")
        if layer in inverse:
            caffe_state[f"{inverse[layer]}.{suffix}"] = value
    assert rename_keys(caffe_state, CAFFE_VGG16_KEYMAP).keys() <= cam.state_dict().keys()
    fresh = CAMNet(num_classes=20, width=SMALL)
    load_backbone(fresh, caffe_state, keymap=CAFFE_VGG16_KEYMAP)
    assert torch.equal(fresh.fc6.weight, cam.fc6.weight) and torch.equal(fresh.features[0].bias, cam.features[0].bias)


def _vgg16_classifier(n: int, in_ch: int) -> dict[str, torch.Tensor]:
    """A torchvision-style vgg16 classifier with ``n`` filters whose entries count up (index = value)."""
    return {"classifier.0.weight": torch.arange(n * in_ch * 49.0).view(n, in_ch * 49),
            "classifier.0.bias": torch.arange(float(n)),
            "classifier.3.weight": torch.arange(float(n * n)).view(n, n), "classifier.3.bias": -torch.arange(float(n))}


def test_decimated_fc6_takes_every_fourth_filter_and_taps_0_3_6_of_its_7x7_kernel():
    fc = decimate_vgg16_fc(_vgg16_classifier(8, 2))
    assert fc["fc6.weight"].shape == (2, 2, 3, 3) and fc["fc7.weight"].shape == (2, 2, 1, 1)
    w6 = torch.arange(8 * 2 * 49.0).view(8, 2, 7, 7)
    assert fc["fc6.weight"][1, 1, 2, 0] == w6[4, 1, 6, 0]           # filter 4, input 1, row 6, column 0
    assert fc["fc6.weight"][0, 0, 1, 2] == w6[0, 0, 3, 6]
    assert fc["fc7.weight"][1, 0, 0, 0] == 4 * 8 + 0 and fc["fc7.weight"][0, 1, 0, 0] == 4  # W7[4, 0], W7[0, 4]
    assert fc["fc6.bias"].tolist() == [0.0, 4.0] and fc["fc7.bias"].tolist() == [0.0, -4.0]


def test_fc_layers_of_the_cam_net_and_every_aspp_branch_load_the_reduced_classifier():
    state = _vgg16_classifier(4 * 128, 64)                   # width 1/8: fc6 64 -> 128, fc7 128
    cam, seg = CAMNet(num_classes=20, width=SMALL), DeepLabASPP("vgg16", 21, width=SMALL)
    load_vgg16_fc([cam, *seg.aspp], state)
    fc = decimate_vgg16_fc(state)
    for module in (cam, *seg.aspp):
        assert torch.equal(module.fc6.weight, fc["fc6.weight"]) and torch.equal(module.fc7.bias, fc["fc7.bias"])


def test_the_full_fc6_and_fc7_of_a_converted_caffe_vgg16_are_reduced_as_torchvisions_classifier():
    """ILSVRC's VGG16 caffemodel converted keeps fc6 as (4096, 25088), or as a 7x7 convolution: DeepLab reduced it."""
    from dsrg.models.weights import vgg16_fc

    tv = _vgg16_classifier(8, 2)
    caffe = {"fc6.weight": tv["classifier.0.weight"], "fc6.bias": tv["classifier.0.bias"],
             "fc7.weight": tv["classifier.3.weight"], "fc7.bias": tv["classifier.3.bias"]}
    as_conv = {**caffe, "fc6.weight": caffe["fc6.weight"].view(8, 2, 7, 7),
               "fc7.weight": caffe["fc7.weight"][..., None, None]}
    expected = decimate_vgg16_fc(tv)
    for state in (caffe, as_conv):
        assert all(torch.equal(vgg16_fc(state)[k], expected[k]) for k in expected)
    reduced = {k: v.clone() for k, v in expected.items()}              # DeepLab's own: taken as they are
    assert all(torch.equal(vgg16_fc(reduced)[k], reduced[k]) for k in reduced)
    with pytest.raises(InputError, match=r"VGG16's full fc6/fc7 are .* but the state dict has fc6.weight \(8, 98\), "
                                         r"fc6.bias \(8,\), fc7.weight \(8, 8\), fc7.bias \(3,\)$"):
        vgg16_fc({**caffe, "fc7.bias": torch.zeros(3)})                  # said in the file's names


def test_a_state_dict_without_vgg16s_classifier_or_of_another_width_is_refused_for_the_fc_layers():
    with pytest.raises(InputError, match=r"the state dict has classifier\.0\.weight missing"):
        decimate_vgg16_fc(VGG16Features(width=SMALL).state_dict())
    cam = CAMNet(num_classes=20, width=SMALL)
    before = cam.fc6.weight.clone()
    with pytest.raises(InputError, match=r"fc6\.weight: expected \(128, 64, 3, 3\), found \(256, 64, 3, 3\)"):
        load_vgg16_fc([cam], _vgg16_classifier(1024, 64))
    assert torch.equal(cam.fc6.weight, before)           # nothing loaded


# ---- learning-rate groups -----------------------------------------------------------------------

def _groups_by_name(model, lr=1e-3, wd=5e-4):
    return {g["name"]: g for g in model.param_groups(lr, wd)}


def test_vgg_deeplab_param_groups_use_caffe_multipliers():
    model = DeepLabASPP("vgg16", num_classes=21, width=SMALL)
    groups = _groups_by_name(model, lr=1.0, wd=0.5)
    assert {n: (g["lr"], g["weight_decay"]) for n, g in groups.items()} == {
        "weight": (1.0, 0.5), "bias": (2.0, 0.0), "last_weight": (10.0, 0.5), "last_bias": (20.0, 0.0)}
    last = {id(p) for b in model.aspp for p in b.fc8.parameters()}
    assert {id(p) for p in groups["last_weight"]["params"] + groups["last_bias"]["params"]} == last
    assert any(p is model.aspp[0].fc6.weight for p in groups["weight"]["params"])
    all_ids = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    torch.optim.SGD(model.param_groups(1e-3, 5e-4), lr=1e-3, momentum=0.9)


def test_resnet_deeplab_param_groups_skip_frozen_bn_and_boost_aspp():
    model = DeepLabASPP("resnet101", num_classes=21, width=SMALL)
    groups = _groups_by_name(model)
    assert {id(p) for p in groups["last_weight"]["params"]} == {id(c.weight) for c in model.aspp}
    assert {id(p) for p in groups["last_bias"]["params"]} == {id(c.bias) for c in model.aspp}
    assert "bias" not in groups  # backbone convs have no bias; BN affine params are frozen
    grouped = {id(p) for g in groups.values() for p in g["params"]}
    assert id(model.backbone.bn1.weight) not in grouped


def test_each_head_goes_on_the_other_trunk_with_its_own_last_layers():
    vgg_head = DeepLabASPP("resnet101", num_classes=21, width=SMALL, freeze_bn=False, head="vgg16")
    assert vgg_head.head_name == "vgg16" and isinstance(vgg_head.pool5a, nn.AvgPool2d)
    assert vgg_head.aspp[0].fc6.in_channels == vgg_head.backbone.out_channels == 256, "ResNet's 2048 x 1/8"
    assert vgg_head(torch.rand(1, 3, 65, 65)).shape == (1, 21, 9, 9)
    groups = _groups_by_name(vgg_head)
    assert {id(p) for p in groups["last_weight"]["params"]} == {id(b.fc8.weight) for b in vgg_head.aspp}
    resnet_head = DeepLabASPP("vgg16", num_classes=21, width=SMALL, head="resnet101")
    assert isinstance(resnet_head.pool5a, nn.Identity)
    groups = _groups_by_name(resnet_head)
    assert {id(p) for p in groups["last_weight"]["params"]} == {id(c.weight) for c in resnet_head.aspp}
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.dilation[0]) for c in resnet_head.aspp] == \
        [(64, 21, (3, 3), d) for d in ASPP_DILATIONS]
    assert resnet_head(torch.rand(1, 3, 65, 65)).shape == (1, 21, 9, 9)
    torch.manual_seed(0)
    own = DeepLabASPP("vgg16", num_classes=21, width=SMALL).state_dict()
    torch.manual_seed(0)
    named = DeepLabASPP("vgg16", num_classes=21, width=SMALL, head="vgg16").state_dict()
    assert own.keys() == named.keys() and all(torch.equal(own[k], named[k]) for k in own), "its own head, named"
    with pytest.raises(InputError, match=r"^head: expected one of vgg16, resnet101, got 'aspp'$"):
        DeepLabASPP("vgg16", head="aspp")


def test_cam_param_groups_boost_fc8():
    net = CAMNet(num_classes=20, width=SMALL)
    groups = _groups_by_name(net, lr=1.0, wd=1.0)
    assert groups["last_weight"]["params"] == [net.fc8.weight] and groups["last_weight"]["lr"] == 10.0
    assert groups["last_bias"]["params"] == [net.fc8.bias] and groups["last_bias"]["lr"] == 20.0
