"""dsrg.run.networks: a profile's weights file read, loaded into its networks, and a misfit said in the profile's
keys (the key that names the file, the setting that would make it fit)."""

from __future__ import annotations

import pytest
import torch

from dsrg.errors import InputError
from dsrg.models import CAFFE_VGG16_KEYMAP, CAMNet, ResNet101, VGG16Features
from dsrg.profile import load_profile
from dsrg.run.networks import build_cls_net, build_seg_net, how_read, read_weights, weights_misfit

SMALL = 0.125


def _profile(path, batch_norm: bool, *extra):
    """The demo's profile with a classifier of width 1/8 started from ``path``."""
    bn = str(batch_norm).lower()
    return load_profile("demo", [f"cls.backbone_weights={path}", "cls.fc_init=random", f"cls.batch_norm={bn}",
                                 f"seg.batch_norm={bn}", *extra])


def test_a_weights_file_reads_as_its_state_dict_or_the_one_it_wraps(tmp_path):
    state = VGG16Features(width=SMALL).state_dict()
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    assert read_weights(tmp_path / "wrapped.pth").keys() == state.keys()


def test_a_missing_or_foreign_weights_file_is_named(tmp_path):
    with pytest.raises(InputError, match="backbone weights file not found: .*nope.pth"):
        read_weights(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"junk.pth is not a file written by torch.save \(it begins with b'not '\)"):
        read_weights(tmp_path / "junk.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(InputError, match="expected a dict of name -> tensor, got list"):
        read_weights(tmp_path / "list.pth")


def test_the_classifier_starts_from_its_file(tmp_path):
    src = CAMNet(20, SMALL, batch_norm=True)
    torch.save(src.features.state_dict(prefix="features."), tmp_path / "w.pth")
    net = build_cls_net(_profile(tmp_path / "w.pth", True), 21)
    ours, theirs = net.features.state_dict().values(), src.features.state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_a_file_of_another_width_says_which_widths_fit(tmp_path):
    state = VGG16Features(width=0.25).state_dict()
    (problem,) = weights_misfit(_profile("w.pth", False), "cls.backbone_weights", state)
    assert problem.startswith("cls.backbone_weights: backbone weights w.pth do not fit the network's trunk (")
    assert "fit cls.width=1 and cls.batch_norm=false" in problem and "shape mismatches (26)" in problem


def test_a_vgg16_bn_file_for_a_plain_vgg16_names_the_setting_of_the_layout():
    state = VGG16Features(width=SMALL, batch_norm=True).state_dict()
    (problem,) = weights_misfit(_profile("w.pth", False), "cls.backbone_weights", state)
    assert "looks like a torchvision vgg16_bn state dict, and this trunk is a vgg16: cls.batch_norm chooses the " \
           "layout" in problem


def test_fc_init_imagenet_without_vggs_classifier_says_how_to_start_fc6_at_random():
    state = VGG16Features(width=SMALL).state_dict()
    cfg = _profile("w.pth", False, "cls.fc_init=imagenet")
    (problem,) = weights_misfit(cfg, "cls.backbone_weights", state)
    assert "classifier.0.weight missing" in problem and problem.endswith("set cls.fc_init=random to start fc6/fc7 "
                                                                          "at random")
    assert weights_misfit(_profile("w.pth", False), "cls.backbone_weights", state) == []


def test_fc6_and_fc7_start_from_a_vgg16_file_only_under_vgg16s_head_on_its_trunk():
    state = VGG16Features(width=SMALL).state_dict()            # a trunk without VGG16's classifier
    own = load_profile("demo", ["seg.init=imagenet", "seg.batch_norm=false", "seg.backbone_weights=w.pth"])
    (problem,) = weights_misfit(own, "seg.backbone_weights", state)
    assert problem.endswith("set seg.fc_init=random to start fc6/fc7 at random"), "its own head has fc6/fc7"
    other = load_profile("demo", ["seg.init=imagenet", "seg.batch_norm=false", "seg.backbone_weights=w.pth",
                                  "seg.head=resnet101"])
    assert weights_misfit(other, "seg.backbone_weights", state) == []
    assert how_read(other, "seg.backbone_weights", state) == ("w.pth, a torchvision vgg16's: the trunk, resnet101's "
                                                              "head at random (seg.head=resnet101)")
    net = build_seg_net(other, 3, torch.device("cpu"), init="none")
    assert net.head_name == "resnet101" and not hasattr(net.aspp[0], "fc6")


def test_a_resnet101_file_starts_the_resnet_trunk_under_vgg16s_head_whose_fc6_and_fc7_start_at_random(tmp_path):
    torch.save(ResNet101(SMALL).state_dict(), tmp_path / "r.pth")
    cfg = load_profile("demo", ["seg.init=imagenet", "seg.batch_norm=false", "seg.backbone=resnet101",
                                "seg.freeze_bn=false", f"seg.backbone_weights={tmp_path / 'r.pth'}", "seg.head=vgg16"])
    state = read_weights(tmp_path / "r.pth")
    assert weights_misfit(cfg, "seg.backbone_weights", state) == []
    assert how_read(cfg, "seg.backbone_weights", state) == (f"{tmp_path / 'r.pth'}, a torchvision resnet101's: the "
                                                            "trunk, vgg16's head at random (seg.head=vgg16)")
    torch.manual_seed(0)
    net = build_seg_net(cfg, 3, torch.device("cpu"))
    assert torch.equal(net.backbone.conv1.weight, state["conv1.weight"]) and net.aspp[0].fc6.in_channels == 256


def test_a_file_without_some_of_the_trunks_entries_is_said_to_be_incomplete_not_of_another_width():
    state = {k: v for k, v in VGG16Features(width=SMALL).state_dict().items() if not k.startswith("features.28.")}
    (problem,) = weights_misfit(_profile("w.pth", False), "cls.backbone_weights", state)
    assert "(a torchvision vgg16 state dict without some of its entries: a file cut short, or a part of one?)" \
           in problem and "missing keys (2): features.28.bias, features.28.weight" in problem


def _as_caffe(net: CAMNet) -> dict[str, torch.Tensor]:
    """A CAM net's trunk and fc6/fc7 under Caffe's layer names (conv1_1 ... conv5_3, fc6, fc7), as a DeepLab init
    converted from Caffe names them, with a classifier of Caffe's too."""
    caffe = {module: layer for layer, module in CAFFE_VGG16_KEYMAP.items()}
    state = {f"{caffe[layer]}.{p}": v for k, v in net.state_dict().items()
             for layer, _, p in [k.rpartition(".")] if layer in caffe}
    return {**state, "fc8_voc12.weight": torch.zeros(21, 1024, 1, 1)}


def test_a_caffe_vgg16_file_starts_both_networks_with_its_own_fc6_and_fc7_and_caffes_inputs(tmp_path):
    """DeepLab's init (vgg16_20M) as converted from Caffe: its fc6/fc7 are reduced already, and it expects BGR."""
    src = CAMNet(20, SMALL)
    torch.save(_as_caffe(src), tmp_path / "init.pth")
    cfg = _profile(tmp_path / "init.pth", False, "cls.fc_init=imagenet")
    (problem,) = weights_misfit(cfg, "cls.backbone_weights", _as_caffe(src))
    assert problem.endswith("are a Caffe VGG16's (layers conv1_1 ... conv5_3), which expects Caffe's inputs (BGR in "
                            "0..255 minus the mean 104, 117, 123); set data.normalize=caffe")
    caffe = ["data.normalize=caffe", "seg.init=imagenet", f"seg.backbone_weights={tmp_path / 'init.pth'}",
             f"seg.width={SMALL}", "seg.fc_init=imagenet"]
    cls_net = build_cls_net(_profile(tmp_path / "init.pth", False, "cls.fc_init=imagenet", *caffe), 21)
    seg_net = build_seg_net(_profile(tmp_path / "init.pth", False, *caffe), 21, torch.device("cpu"))
    for ours in (cls_net.features, seg_net.backbone.features):
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), src.features.state_dict().values()))
    for fc in (cls_net, *seg_net.aspp):
        assert torch.equal(fc.fc6.weight, src.fc6.weight) and torch.equal(fc.fc7.bias, src.fc7.bias)


def test_a_caffe_file_without_some_of_its_layers_says_what_the_trunk_reads():
    state = {k: v for k, v in _as_caffe(CAMNet(20, SMALL)).items() if k != "conv5_3.bias"}
    (problem,) = weights_misfit(_profile("w.pth", False, "data.normalize=caffe"), "cls.backbone_weights", state)
    assert "its keys are Caffe's layer names, but not a VGG16's conv1_1 ... conv5_3 each with its weight and bias" \
        in problem
    state = {k: v for k, v in _as_caffe(CAMNet(20, SMALL)).items() if k != "fc7.bias"}
    (problem,) = weights_misfit(_profile("w.pth", False, "data.normalize=caffe", "cls.fc_init=imagenet"),
                                "cls.backbone_weights", state)
    assert "the state dict has fc6/fc7 but not all of them: fc7.bias missing; set cls.fc_init=random" in problem


def test_a_caffe_file_for_a_batch_norm_trunk_with_torchvisions_inputs_says_both_settings():
    (inputs, layout) = weights_misfit(_profile("w.pth", True), "cls.backbone_weights", _as_caffe(CAMNet(20, SMALL)))
    assert inputs.endswith("set data.normalize=caffe")
    assert layout == ("cls.backbone_weights: backbone weights w.pth are a Caffe VGG16's without BatchNorm at width "
                      "0.125, and the network's trunk is a vgg16_bn at width 0.125: set cls.batch_norm=false "
                      "seg.batch_norm=false")
    (_, layout) = weights_misfit(_profile("w.pth", True), "cls.backbone_weights", _as_caffe(CAMNet(20, 1.0)))
    assert layout.endswith("a vgg16_bn at width 0.125: set cls.batch_norm=false seg.batch_norm=false cls.width=1 "
                           "seg.width=1"), "every setting at once, both networks' with seg.init=cls"


def test_a_caffe_file_of_another_width_names_the_width_to_set():
    (problem,) = weights_misfit(_profile("w.pth", False, "data.normalize=caffe"), "cls.backbone_weights",
                                _as_caffe(CAMNet(20, 0.25)))
    assert problem == ("cls.backbone_weights: backbone weights w.pth are a Caffe VGG16's without BatchNorm at width "
                       "0.25, and the network's trunk is a vgg16 at width 0.125: set cls.width=0.25 seg.width=0.25")


def test_a_caffe_file_whose_layers_do_not_fit_is_listed_under_its_own_layer_names():
    state = _as_caffe(CAMNet(20, SMALL))
    state["conv3_1.weight"] = state["conv3_1.weight"][:, :4]
    (problem,) = weights_misfit(_profile("w.pth", False, "data.normalize=caffe"), "cls.backbone_weights", state)
    assert "shape mismatches (1): conv3_1.weight: expected (32, 16, 3, 3), found (32, 4, 3, 3)" in problem
    assert "(a Caffe VGG16's layer names, but shapes that no VGG16 at its conv1_1's width has: a file cut or " \
           "changed?)" in problem and "another width" not in problem


def test_a_caffe_file_without_fc6_and_fc7_says_so_not_torchvisions_classifier():
    state = {k: v for k, v in _as_caffe(CAMNet(20, SMALL)).items() if not k.startswith(("fc6", "fc7"))}
    (problem,) = weights_misfit(_profile("w.pth", False, "data.normalize=caffe", "cls.fc_init=imagenet"),
                                "cls.backbone_weights", state)
    assert "this Caffe VGG16 file has no fc6/fc7" in problem and "classifier.0" not in problem
    assert problem.endswith("set cls.fc_init=random to start fc6/fc7 at random")


def test_a_caffe_file_for_a_batch_norm_classifier_alone_names_its_own_setting():
    (problem,) = weights_misfit(_profile("w.pth", True, "data.normalize=caffe", "seg.init=imagenet"),
                                "cls.backbone_weights", _as_caffe(CAMNet(20, SMALL)))
    assert problem.endswith("the network's trunk is a vgg16_bn at width 0.125: set cls.batch_norm=false")


def test_a_caffe_files_own_classifier_is_no_part_of_the_trunk_even_without_fc6_and_fc7():
    state = {k: v for k, v in _as_caffe(CAMNet(20, SMALL)).items() if not k.startswith(("fc6", "fc7"))}
    assert "fc8_voc12.weight" in state
    assert weights_misfit(_profile("w.pth", False, "data.normalize=caffe"), "cls.backbone_weights", state) == []


def test_a_caffe_file_whose_keys_collide_once_renamed_is_said_not_raised():
    state = _as_caffe(CAMNet(20, SMALL))
    state["features.0.weight"] = state["conv1_1.weight"]
    (problem,) = weights_misfit(_profile("w.pth", False, "data.normalize=caffe"), "cls.backbone_weights", state)
    assert problem.startswith("cls.backbone_weights: backbone weights w.pth do not fit the network's trunk (two of "
                              "its keys name the same entry") and \
        "two keys, conv1_1.weight and features.0.weight, name the same entry 'features.0.weight'" in problem


def test_a_caffe_file_for_a_resnet_trunk_names_the_backbone_not_the_inputs():
    cfg = _profile("w.pth", False, "seg.init=imagenet", "seg.backbone=resnet101", "seg.width=0.0625",
                   "seg.freeze_bn=false", "seg.backbone_weights=w.pth")
    (problem,) = weights_misfit(cfg, "seg.backbone_weights", _as_caffe(CAMNet(20, SMALL)))
    assert "(a Caffe VGG16's file, conv1_1 ... conv5_3, and this trunk is a resnet101: give seg.backbone=vgg16, or " \
           "a torchvision resnet101 file)" in problem and "normalize" not in problem


def test_a_caffe_init_renamed_to_torchvisions_names_keeps_its_fc6_and_fc7(tmp_path):
    """rename_keys(state, CAFFE_VGG16_KEYMAP) in Python gives features.<n> and DeepLab's fc6/fc7: read as such."""
    from dsrg.models import rename_keys

    src = CAMNet(20, SMALL)
    torch.save(rename_keys(_as_caffe(src), CAFFE_VGG16_KEYMAP), tmp_path / "renamed.pth")
    net = build_cls_net(_profile(tmp_path / "renamed.pth", False, "cls.fc_init=imagenet", "data.normalize=caffe"), 21)
    assert torch.equal(net.fc6.weight, src.fc6.weight) and torch.equal(net.features[0].weight, src.features[0].weight)


def test_how_a_file_that_fits_is_read_is_said_for_the_dry_run():
    caffe, torchvision = _as_caffe(CAMNet(20, SMALL)), CAMNet(20, SMALL).features.state_dict(prefix="features.")
    cfg = _profile("init.pth", False, "data.normalize=caffe", "cls.fc_init=imagenet")
    assert how_read(cfg, "cls.backbone_weights", caffe) == ("init.pth, a Caffe VGG16's (layers conv1_1 ... conv5_3): "
                                                            "the trunk, and fc6/fc7 of the CAM net as the file has "
                                                            "them (DeepLab's reduced ones)")
    assert how_read(_profile("w.pth", False), "cls.backbone_weights", torchvision) == \
        "w.pth, a torchvision vgg16's: the trunk, fc6/fc7 at random (cls.fc_init=random)"
    own = CAMNet(20, SMALL).state_dict()                 # a CAM net train-cls saved, given as a start
    said = how_read(_profile("w.pth", False, "cls.fc_init=imagenet"), "cls.backbone_weights", own)
    assert said.startswith("w.pth, a torchvision vgg16's with its fc6/fc7 (a dsrg CAM net's, as train-cls saves it): "
                           "the trunk, and fc6/fc7 of the CAM net") and "Caffe" not in said


def test_a_caffe_file_with_a_linear_fc8_is_called_caffes_not_a_dsrg_cam_nets():
    """A Caffe classifier converted as an InnerProduct layer is 2-D, as train-cls's is: the layer names say Caffe."""
    caffe = {**_as_caffe(CAMNet(20, SMALL)), "fc8.weight": torch.zeros(21, 1024)}
    said = how_read(_profile("init.pth", False, "data.normalize=caffe"), "cls.backbone_weights", caffe)
    assert said.startswith("init.pth, a Caffe VGG16's (layers conv1_1 ... conv5_3): the trunk") and "dsrg" not in said
