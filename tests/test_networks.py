"""dsrg.run.networks: a profile's weights file read, loaded into its networks, and a misfit said in the profile's
keys (the key that names the file, the setting that would make it fit)."""

from __future__ import annotations

import pytest
import torch

from dsrg.errors import InputError
from dsrg.models import CAMNet, VGG16Features
from dsrg.profile import load_profile
from dsrg.run.networks import build_cls_net, read_weights, weights_misfit

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


def test_a_file_without_some_of_the_trunks_entries_is_said_to_be_incomplete_not_of_another_width():
    state = {k: v for k, v in VGG16Features(width=SMALL).state_dict().items() if not k.startswith("features.28.")}
    (problem,) = weights_misfit(_profile("w.pth", False), "cls.backbone_weights", state)
    assert "(a torchvision vgg16 state dict without some of its entries: a file cut short, or a part of one?)" \
           in problem and "missing keys (2): features.28.bias, features.28.weight" in problem
