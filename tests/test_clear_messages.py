"""Fail in seconds, with one message: weights of another network and every other problem found by the pre-flight
check at once, files that are cut short or would run code refused by name, damaged run records named by the dry
run. Every file here is written in its real format."""

from __future__ import annotations

import errno
import json
import os
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dsrg.cli import main
from dsrg.data.cues import load_authors_cues
from dsrg.errors import InputError
from dsrg.files import write_json
from dsrg.models import ResNet101
from dsrg.profile import load_profile
from dsrg.run import folders
from dsrg.run.checkpoints import load_model

# the smoke profile on a root of its own, checked and planned, nothing run
DRY = ["run", "--profile", "smoke", "--dry-run"]


class Marker:
    """A pickled object whose loading would create a file: what a hostile checkpoint does."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _dry(capsys, tmp_path, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*DRY, f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_weights_of_another_network_stop_the_dry_run_and_name_the_network(tmp_path, capsys):
    torch.save(ResNet101(width=0.0625).state_dict(), tmp_path / "resnet.pth")
    rc, _, err = _dry(capsys, tmp_path, "seg.init=imagenet", f"seg.backbone_weights={tmp_path / 'resnet.pth'}")
    assert rc == 2
    assert "seg.backbone_weights: backbone weights" in err
    assert "the file looks like a torchvision resnet101 state dict, and this trunk is a vgg16_bn" in err
    assert "choose the file's with seg.backbone" in err
    assert not (tmp_path / "run").exists()
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'resnet.pth'}")    # the CAM net's
    assert rc == 2 and "the classifier is always a VGG16: give cls.backbone_weights a torchvision vgg16_bn file" \
        in err                                                          # smoke's classifier has BatchNorm
    assert "seg.backbone" not in err.partition("cls.backbone_weights")[2].partition("\n")[0]


def test_the_pre_flight_check_lists_every_problem_at_once(tmp_path, capsys):
    rc, _, err = _dry(capsys, tmp_path, "data.train_split=trian", f"cls.backbone_weights={tmp_path / 'no.pth'}")
    assert rc == 2
    assert "2 problems with the inputs, found before any step ran" in err
    assert f"cls.backbone_weights: file not found: {tmp_path / 'no.pth'}" in err
    assert "data.train_split: the embedded dataset (data.dataset=synthetic) has the splits" in err


def test_a_whole_pickled_model_is_refused_with_the_way_out_and_no_unsafe_advice(tmp_path, capsys):
    torch.save(nn.Linear(2, 2), tmp_path / "model.pth")
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'model.pth'}")
    assert rc == 2
    assert "holds torch.nn.modules.linear.Linear, a Python object and not only tensors" in err
    assert "torch.save(model.state_dict(), path)" in err
    assert "weights_only=False" not in err and "\x1b" not in err


def test_one_unreadable_weights_file_given_to_both_networks_is_said_once_for_both(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("hello\n")
    rc, _, err = _dry(capsys, tmp_path, "seg.init=imagenet", f"cls.backbone_weights={tmp_path / 'notes.pth'}",
                      f"seg.backbone_weights={tmp_path / 'notes.pth'}")
    assert rc == 2 and "problems with the inputs" not in err and err.count("is not a file written by torch.save") == 1
    assert "cls.backbone_weights and seg.backbone_weights: " in err


def test_the_keys_of_a_misfit_weights_file_are_listed_up_to_eight(tmp_path, capsys):
    torch.save(ResNet101(width=0.0625).state_dict(), tmp_path / "resnet.pth")
    rc, _, err = _dry(capsys, tmp_path, "seg.init=imagenet", f"seg.backbone_weights={tmp_path / 'resnet.pth'}")
    missing = err.split("missing keys (", 1)[1].split(";", 1)[0]          # "26): a, b, ..., and 18 more"
    count, names = int(missing.split(")")[0]), missing.split("): ", 1)[1]
    assert count > 8 and names.count(", ") == 8 and names.endswith(f", and {count - 8} more")


def test_a_weights_file_with_caffes_layer_names_asks_for_caffes_inputs_once(tmp_path, capsys):
    from dsrg.models.vgg import VGG16Features

    names = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
    convs = [m for m in VGG16Features(1.0).features if isinstance(m, torch.nn.Conv2d)]
    state = {f"{name}.{p}": getattr(conv, p).detach() for name, conv in zip(names, convs) for p in ("weight", "bias")}
    torch.save({**state, "fc6.weight": torch.zeros(1), "fc7.weight": torch.zeros(1)}, tmp_path / "caffe.pth")
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'caffe.pth'}", "cls.width=1.0",
                      "cls.batch_norm=false", "seg.init=imagenet")
    assert rc == 2 and "are a Caffe VGG16's (layers conv1_1 ... conv5_3), which expects Caffe's inputs (BGR in " \
                       "0..255 minus the mean 104, 117, 123); set data.normalize=caffe" in err
    assert err.count("data.normalize=caffe") == 1                     # asked once, and fc6/fc7's problem said too
    assert "fc6/fc7 but not all of them: fc6.bias, fc7.bias missing; set cls.fc_init=random" in err
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'caffe.pth'}", "cls.width=1.0",
                      "cls.batch_norm=false", "seg.init=imagenet", f"seg.backbone_weights={tmp_path / 'caffe.pth'}",
                      "seg.width=1.0", "seg.batch_norm=false", "cls.fc_init=random", "seg.fc_init=random")
    assert rc == 2 and err.count("data.normalize=caffe") == 1 and \
        "cls.backbone_weights and seg.backbone_weights: backbone weights" in err, "once for a file both networks read"


def test_the_dry_run_says_how_a_caffe_init_that_fits_is_read(tmp_path, capsys):
    from dsrg.models import CAFFE_VGG16_KEYMAP, CAMNet

    caffe = {ours: theirs for theirs, ours in CAFFE_VGG16_KEYMAP.items()}
    net = CAMNet(20, 0.0625)                                  # the smoke profile's width
    torch.save({f"{caffe[layer]}.{p}": v for k, v in net.state_dict().items() for layer, _, p in [k.rpartition(".")]
                if layer in caffe}, tmp_path / "init.pth")
    rc, out, _ = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'init.pth'}", "cls.batch_norm=false",
                      "seg.init=imagenet", "cls.fc_init=imagenet", "data.normalize=caffe")
    assert rc == 0 and f"# weights: cls.backbone_weights: {tmp_path / 'init.pth'}, a Caffe VGG16's (layers conv1_1 " \
                       f"... conv5_3): the trunk, and fc6/fc7 of the CAM net as the file has them" in out


def test_a_weights_file_that_would_run_code_runs_nothing(tmp_path, capsys):
    torch.save({"features.0.weight": Marker(tmp_path / "ran")}, tmp_path / "evil.pth")
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'evil.pth'}")
    assert rc == 2 and "a Python object and not only tensors" in err
    assert not (tmp_path / "ran").exists()


def test_a_text_file_given_as_weights_is_called_what_it_is(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("hello, these are my notes\n")
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'notes.pth'}")
    assert rc == 2 and f"{tmp_path / 'notes.pth'} is not a file written by torch.save (it begins with b'hell')" in err


def test_a_model_file_cut_short_is_a_message_that_says_how_to_make_it_again(tmp_path):
    step = tmp_path / "seg-0123456789"
    step.mkdir()
    torch.save({"state_dict": nn.Linear(4, 4).state_dict()}, step / "model.pt")
    (step / "model.pt").write_bytes((step / "model.pt").read_bytes()[:100])
    with pytest.raises(InputError, match=r"model\.pt .*cut short or damaged.*delete the step folder .*seg-0123456789"):
        load_model(step / "model.pt", nn.Linear(4, 4), torch.device("cpu"))


def test_a_long_reason_quoted_from_a_library_is_cut_after_a_sentence_or_a_word():
    from dsrg.files import _clipped

    long = "failed finding central directory. This can happen if the file was truncated and there is a high " * 3
    assert _clipped(long) == "failed finding central directory. This can happen if the file was truncated and there " \
                             "is a high failed finding central directory."
    assert _clipped("word " * 50).endswith("word ...") and len(_clipped("word " * 50)) <= 164


def test_a_model_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    torch.save({"state_dict": {"weight": Marker(tmp_path / "ran")}}, tmp_path / "model.pt")
    with pytest.raises(InputError, match="holds .*, a Python object and not only tensors"):
        load_model(tmp_path / "model.pt", nn.Linear(1, 1), torch.device("cpu"))
    assert not (tmp_path / "ran").exists()


def _step_folder(tmp_path, step: str) -> Path:
    cfg = load_profile("smoke", [f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}"])
    folder = folders.step_dir(cfg, step)
    folder.mkdir(parents=True)
    return folder


def test_a_damaged_done_json_is_named_by_the_dry_run_and_by_whoever_reads_it(tmp_path, capsys):
    folder = _step_folder(tmp_path, "cls")
    (folder / "done.json").write_text("")
    rc, out, _ = _dry(capsys, tmp_path)
    assert rc == 0
    assert "done, but its done.json is unreadable: delete the folder to run the step again" in out
    with pytest.raises(InputError, match=r"done\.json is not valid JSON .*delete the step folder"):
        folders.done_info(folder)


def test_a_checkpoint_cut_short_is_not_offered_to_resume(tmp_path, capsys):
    folder = _step_folder(tmp_path, "cls")
    (folder / "ckpt.pt").write_bytes(b"PK\x03\x04 cut")
    rc, out, _ = _dry(capsys, tmp_path)
    assert rc == 0
    line = next(line for line in out.splitlines() if line.startswith("train-cls"))
    assert "its checkpoint ckpt.pt is unreadable (cut short?): --resume stops at it; without --resume (or with " \
           "ckpt.pt deleted) the step starts over" in line
    assert "--resume continues" not in line


def test_an_authors_list_that_is_not_utf8_names_the_file_and_line(tmp_path):
    (tmp_path / "list.txt").write_bytes(b"2008_000001.jpg 0\n\xff\xfe 1\n")
    with open(tmp_path / "cues.pickle", "wb") as f:
        pickle.dump({"0_labels": np.array([1]), "0_cues": np.zeros((3, 1), np.int64)}, f)
    with pytest.raises(InputError, match=r"list\.txt, line 2: byte 0xff is not UTF-8"):
        load_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt")


def test_a_cue_pickle_of_strings_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "list.txt").write_text("2008_000001.jpg 0\n")
    with open(tmp_path / "cues.pickle", "wb") as f:
        pickle.dump({"0_labels": np.array(["3"]), "0_cues": np.array([["0"], ["1"], ["2"]])}, f)
    with pytest.raises(InputError, match=r"image 2008_000001 \(key 0\): labels hold <U1 values; expected integers"):
        load_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt")


def test_an_undefined_measure_is_written_as_json_null(tmp_path):
    write_json(tmp_path / "done.json", {"iou": [0.5, float("nan")], "miou": float("nan")})

    def strict(name):
        raise ValueError(f"not strict JSON: {name}")

    assert json.loads((tmp_path / "done.json").read_text(), parse_constant=strict) == {"iou": [0.5, None],
                                                                                       "miou": None}


# ----------------------------------------------------------------------------- the files of a split

def _voc_root(root: Path, n: int = 4) -> Path:
    """A VOC-layout root of 3 classes and ``n`` 8 x 10 images, each label map holding class 1 in a corner."""
    from PIL import Image

    from dsrg.data.voc import write_label_png

    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    ids = [f"im{i}" for i in range(n)]
    for image_id in ids:
        Image.fromarray(np.full((8, 10, 3), 90, np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        mask = np.zeros((8, 10), np.uint8)
        mask[:2, :2] = 1
        write_label_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    (root / "class_names.txt").write_text("background\nbox\nball\n")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def _voc_dry(capsys, tmp_path, root: Path, *extra: str) -> tuple[int, str, str]:
    return _dry(capsys, tmp_path, "data.dataset=voc", f"data.root={root}", "data.val_split=train",
                "eval.split=train", "cls.batch_size=2", "seg.batch_size=2", "retrain.batch_size=2", *extra)


def test_the_dry_run_and_the_data_check_say_which_classes_the_networks_learn(tmp_path, capsys):
    """A root's own class_names.txt is named with its classes; without one, the networks learn VOC 2012's 21,
    which the dry run and pre-flight note for a split that is not one of VOC's (label 1 would be aeroplane)."""
    root = _voc_root(tmp_path / "voc")
    rc, out, err = _voc_dry(capsys, tmp_path, root)
    assert rc == 0 and f"# classes: 3, from {root / 'class_names.txt'}: background, box, ball" in out
    assert "no class_names.txt" not in err
    (root / "class_names.txt").unlink()
    rc, out, err = _voc_dry(capsys, tmp_path, root)
    assert rc == 0 and "# classes: 21, PASCAL VOC 2012's (no class_names.txt" in out
    assert f"note: {root} has no class_names.txt, so the networks learn PASCAL VOC 2012's 21 classes" in err
    assert main(["data", "check", "--root", str(root)]) == 0
    assert "classes: 21, PASCAL VOC 2012's (no class_names.txt" in capsys.readouterr().out


def test_an_image_listed_twice_in_a_split_is_refused_before_any_step_as_the_data_check_does(tmp_path, capsys):
    root = _voc_root(tmp_path / "voc")
    split = root / "ImageSets" / "Segmentation" / "train.txt"
    split.write_text(split.read_text() + "im0\n")
    rc, _, err = _voc_dry(capsys, tmp_path, root)
    assert rc == 2 and "data.train_split=train: im0 listed more than once in its split file" in err
    assert err.count("listed more than once") == 1          # not once more for each key that names the split
    assert main(["data", "check", "--root", str(root)]) == 1
    assert "id 'im0' is listed twice in split 'train'" in capsys.readouterr().out


def test_a_list_of_problems_cut_short_counts_the_ones_left_out(tmp_path, capsys):
    root = _voc_root(tmp_path / "voc", n=14)
    for i in range(12):
        (root / "JPEGImages" / f"im{i}.jpg").unlink()
    rc, _, err = _voc_dry(capsys, tmp_path, root)
    assert rc == 2 and "12 problems with the inputs" in err and "... and 2 more problems with the files" in err


def test_broken_images_and_label_maps_of_every_kind_are_listed_before_any_step(tmp_path, capsys):
    from PIL import Image

    from dsrg.data.voc import write_label_png

    root = _voc_root(tmp_path / "voc", n=6)
    jpeg = (root / "JPEGImages" / "im0.jpg").read_bytes()
    (root / "JPEGImages" / "im0.jpg").write_bytes(jpeg[:len(jpeg) // 2])                 # cut short
    Image.fromarray(np.zeros((5, 5), np.uint8), "P").save(root / "SegmentationClass" / "im1.png")  # another size
    Image.fromarray(np.full((8, 10, 3), 7, np.uint8)).save(root / "SegmentationClass" / "im2.png")  # no VOC colour
    write_label_png(root / "SegmentationClass" / "im3.png", np.full((8, 10), 42, np.uint8))  # no class
    (root / "JPEGImages" / "im4.jpg").unlink()                                             # a label, no image
    rc, _, err = _voc_dry(capsys, tmp_path, root)
    assert rc == 2 and "5 problems with the inputs, found before any step ran" in err   # the note on them uncounted
    assert "image of id 'im0'" in err and "im0.jpg" in err
    assert "id 'im1': label map" in err and "is 5x5 (HxW) but its image is 8x10" in err
    assert "im2.png: colour (7, 7, 7)" in err and "is not a VOC palette colour" in err
    assert "im3.png holds value 42, which is not a class" in err
    assert f"image of id 'im4' (split 'train'): not found: {root / 'JPEGImages' / 'im4.jpg'}" in err
    assert "dsrg data check --root" in err and "--all" in err
    assert not (tmp_path / "run").exists()


def test_clean_files_are_checked_once_per_run_folder_and_never_by_the_dry_run(tmp_path, monkeypatch):
    from dsrg.run import preflight

    root = _voc_root(tmp_path / "voc")
    cfg = load_profile("smoke", ["data.dataset=voc", f"data.root={root}", f"out={tmp_path / 'run'}",
                                 "data.val_split=train", "eval.split=train", "cls.batch_size=2", "seg.batch_size=2",
                                 "retrain.batch_size=2"])
    calls = []
    monkeypatch.setattr(preflight, "file_problems", lambda *a: calls.append(a) or [])
    preflight.check_inputs(cfg, ["cls"], remember=False)
    assert len(calls) == 1 and not (tmp_path / "run").exists(), "the dry run checks and writes nothing"
    preflight.check_inputs(cfg, ["cls"])
    preflight.check_inputs(cfg, ["cls", "seeds", "seg"])
    assert len(calls) == 2, "checked once, then remembered"
    (root / "JPEGImages" / "im0.jpg").write_bytes((root / "JPEGImages" / "im0.jpg").read_bytes() + b"\0")
    preflight.check_inputs(cfg, ["cls"])
    assert len(calls) == 3, "a changed file is checked again"


# ----------------------------------------------------------------------------- the command line

def test_triton_growing_on_the_cpu_is_refused_before_any_step_runs(tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "--dry-run", "device=cpu", "seg.grow_method=triton",
                 f"data.root={tmp_path / 'data'}", f"out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "seg.grow_method=triton: the Triton kernel grows regions on CUDA, and this run's device is the CPU " \
           "(device=cpu); expected numba, scipy, torch or auto there" in err
    assert main(["run", "--profile", "smoke", "--dry-run", "device=cpu", "seg.grow_method=numba",
                 f"data.root={tmp_path / 'data'}", f"out={tmp_path / 'run'}"]) == 0


def test_the_pre_flight_check_lists_random_weights_and_a_missing_root_together(tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", "--profile", "voc-vgg16", "--dry-run", f"data.root={tmp_path / 'VOC2012'}",
                 f"out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "2 problems with the inputs" in err
    assert "cls.backbone_weights and seg.backbone_weights: no weights file" in err
    assert f"data.root: dataset root not found: {tmp_path / 'VOC2012'}; expected a folder in the PASCAL VOC layout, " \
           "given as data.root=<folder> (" in err
    assert "`dsrg data download` and `dsrg data train-aug` make VOC 2012's" in err          # how to get it


def test_a_run_folder_that_cannot_be_made_is_named_before_anything_runs(tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    for out, why in [(tmp_path / "a-file", "it is not a folder you can write to"),
                     (tmp_path / "a-file" / "run", "it cannot be created (Not a directory)")]:
        rc, _, err = _dry(capsys, tmp_path, f"out={out}")
        assert rc == 2 and f"out: cannot keep the run folder in {out}: {why}" in err
    rc, _, _ = _dry(capsys, tmp_path, f"out={tmp_path / 'new' / 'run'}")
    assert rc == 0 and not (tmp_path / "new").exists(), "the dry run leaves no folder behind"


def test_the_dry_run_finds_an_embedded_dataset_written_with_another_config(tmp_path, capsys):
    from dsrg.data.synthetic import SynthConfig, write_dataset

    write_dataset(tmp_path / "synth", SynthConfig(n_train=3, n_val=2, size=32), progress=False)
    rc, _, err = _dry(capsys, tmp_path)
    assert rc == 2 and f"{tmp_path / 'synth'} holds a synthetic dataset with another config (n_train: 3 there" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, expected", [
    ("seed=-1", "seed: expected an integer in [0, 2^31), got -1"),
    ("seg.iterations=2.5", "seg.iterations: expected an integer, got '2.5'"),
    ("seg.iterations=1e3", "seg.iterations: expected an integer, got '1e3'"),      # as typed, not YAML's 1000.0
    ("amp=maybe", "amp: expected true or false, got 'maybe'"),
    ("amp=2", "amp: expected true or false, got 2"),
    (("eval.model=retrain", "retrain.enabled=false"),
     "eval.model: expected seg or auto where retrain.enabled=false (no retrained model to evaluate), got 'retrain'"),
    ("name=../elsewhere", "name: expected a name for runs/<name> (not a path; out=... puts a run in any folder), got "
                          "'../elsewhere'"),
    ("=3", "override '=3': expected key=value"),
    ("[seg.theta_fg=0.9]", "override '[seg.theta_fg=0.9]': overrides are key=value words, each on its own, not a list"),
    ("pseudo.sizes={a: 1}", "pseudo.sizes: expected a list, e.g. pseudo.sizes=[241,321,401]; got a mapping"),
    ("seg.theta_fg=[1,2]", "seg.theta_fg: expected one value such as 0.85 (its default); got a list"),
    ("pseudo.sizes=[{a: 1}]", "pseudo.sizes: expected a list of single values, e.g. pseudo.sizes=[241,321,401]; "
                              "got a list holding a mapping"),
    ("eval.scales=[1,[2]]", "eval.scales: expected a list of single values"),
    (("pseudo.sizes=[1,2]", "pseudo.sizes={a: 1}"),
     "pseudo.sizes: 'pseudo.sizes={a: 1}' does not fit what an override before it set"),
    (("pseudo.sizes=[1,2]", "pseudo.sizes.x=3"), "pseudo.sizes.x: 'pseudo.sizes.x=3' does not fit"),
])
def test_a_value_of_the_wrong_kind_says_what_was_expected(tmp_path, capsys, override, expected):
    rc, _, err = _dry(capsys, tmp_path, *(override if isinstance(override, tuple) else (override,)))
    assert rc == 2 and expected in err and "Traceback" not in err


def test_resume_with_nothing_to_resume_says_it_starts_over(tmp_path, capsys):
    from test_bad_input import _fit

    capsys.readouterr()
    _fit(tmp_path, resume=True, iterations=2)
    assert f"train-cls: --resume: nothing to resume in {tmp_path} (this step has not run before); starting" \
        in capsys.readouterr().err
    _fit(tmp_path, resume=True, iterations=2)                  # it ran, and wrote no checkpoint in 2 iterations
    assert "--resume, but" in capsys.readouterr().err


def test_a_resumed_run_says_nothing_to_resume_once_not_for_each_step_after_it(tmp_path, capsys):
    """Once a step has run in the command, the steps after it have never run: their --resume has nothing to
    say."""
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}",
                 "--resume"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "--resume" in line]
    assert len(err) == 1 and err[0].startswith("train-cls: --resume: nothing to resume in"), err


def test_a_later_step_of_a_resumed_run_keeps_resume_where_an_earlier_run_left_something(tmp_path):
    """What --resume would say of a step (an earlier run set aside, a log without a checkpoint) is said even
    after another step ran in the same command."""
    from dsrg.run.folders import has_progress

    assert not has_progress(tmp_path)
    for name in ("ckpt.prev.pt", "log.jsonl", "ckpt.pt"):
        (tmp_path / name).write_bytes(b"")
        assert has_progress(tmp_path), name
        (tmp_path / name).unlink()


def test_overrides_may_stand_before_and_after_an_option(tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", f"data.root={tmp_path / 'synth'}", "--dry-run",
                 f"out={tmp_path / 'run'}", "seg.theta_fg=0.9"]) == 0
    out = capsys.readouterr().out
    assert "theta_fg: 0.9" in out and f"out: {tmp_path / 'run'}" in out


@pytest.mark.parametrize("override, expected", [
    ("seg=1", "seg: seg is a section, not a value; set one of its keys, e.g. seg.batch_size=..."),
    ("seg.theta_fg=", "seg.theta_fg: no value after '='; expected a value such as seg.theta_fg=0.85"),
    ("seg.iterations=", "expected a value such as seg.iterations=8 (its value without it)"),    # smoke's, not 20000
    ("cls.backbone_weights=", "no value after '='; an empty text is written cls.backbone_weights=\"\" (in a shell: "
                              "'cls.backbone_weights=\"\"')"),
])
def test_a_section_given_a_value_or_a_key_given_none_is_named(tmp_path, capsys, override, expected):
    rc, _, err = _dry(capsys, tmp_path, override)
    assert rc == 2 and expected in err


@pytest.mark.parametrize("text, expected", [
    ("seg: 3", "seg: seg is a section: expected its keys, e.g. seg: {batch_size: ...} in YAML or "
               "seg.batch_size=... on the command line; got 3"),
    ("seg: [1, 2]", "seg: seg is a section: expected its keys, e.g. seg: {batch_size: ...} in YAML"),
    ("seg:\n", "seg: seg is a section: expected its keys, e.g. seg: {batch_size: ...} in YAML"),
    ("seg:\n  theta_fg: {a: 1}\n", "seg.theta_fg: expected one value such as 0.85 (its default); got a mapping"),
    ("'seg.lr': [1]", "seg.lr: unknown key 'seg.lr'"),                # a dotted name is no path in YAML
    ("pseudo:\n  sizes: [[1], 2]\n", "pseudo.sizes: expected a list of single values"),
    ("seg:\n  theta_fg: 1.5\n", "seg.theta_fg: expected a probability in [0, 1]"),   # merges, but is no profile
])
def test_a_profile_file_with_a_section_or_value_of_the_wrong_kind_names_its_key(tmp_path, capsys, text, expected):
    (tmp_path / "p.yaml").write_text(text)
    capsys.readouterr()
    assert main(["run", "--profile", str(tmp_path / "p.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "does not load as written; the keys a profile takes, with the demo's values: dsrg run " \
        "--profile demo --dry-run)" in err, err


def test_an_empty_profile_file_is_refused(tmp_path, capsys):
    (tmp_path / "empty.yaml").write_text("")
    capsys.readouterr()
    assert main(["run", "--profile", str(tmp_path / "empty.yaml"), "--dry-run"]) == 2
    assert f"profile {tmp_path / 'empty.yaml'} is empty" in capsys.readouterr().err


@pytest.mark.parametrize("command, words", [(["run"], "Run every step of the pipeline in order"),
                                            (["data", "check"], "Validate a dataset root before training")])
def test_run_and_data_check_describe_themselves(capsys, command, words):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0 and words in capsys.readouterr().out


def test_curves_refuse_an_image_format_they_do_not_write(tmp_path, capsys):
    (tmp_path / "seg-x").mkdir()
    (tmp_path / "seg-x" / "log.jsonl").write_text('{"it": 0, "loss": 1.0}\n')
    capsys.readouterr()
    assert main(["curves", str(tmp_path / "seg-x"), "--out", str(tmp_path / "c.jpg")]) == 2
    assert "give FILE, FILE.png or FILE.svg" in capsys.readouterr().err
    assert not list(tmp_path.glob("c.*"))


# ----------------------------------------------------------------------------- interrupted work

def test_resuming_says_where_it_continues_even_without_progress_bars(tmp_path, capsys):
    from test_bad_input import _fit

    from dsrg.run.checkpoints import save_checkpoint
    from dsrg.run.dist import World, rng_states

    model, optimizer = _fit(tmp_path / "first", iterations=4)
    save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, 3, rng_states(torch.device("cpu"), World()))
    capsys.readouterr()
    _fit(tmp_path, resume=True, iterations=4)
    assert f"train-cls: resuming from {tmp_path / 'ckpt.pt'} at iteration 3 of 4" in capsys.readouterr().err


def test_starting_over_says_how_to_continue_the_run_it_set_aside(tmp_path, capsys):
    from test_bad_input import _fit

    from dsrg.run.checkpoints import save_checkpoint
    from dsrg.run.dist import World, rng_states

    model, optimizer = _fit(tmp_path / "first")
    save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, 3, rng_states(torch.device("cpu"), World()))
    first = [{"it": it, "loss": 100.0 + it} for it in range(5)]              # the interrupted run's log
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in first))
    capsys.readouterr()
    _fit(tmp_path, iterations=2)                                               # starts over, and ends
    advice = "move ckpt.prev.pt back to ckpt.pt and move log.prev.jsonl back to log.jsonl, and run again with --resume"
    assert advice in capsys.readouterr().err
    for name, prev in (("ckpt.pt", "ckpt.prev.pt"), ("log.jsonl", "log.prev.jsonl")):
        (tmp_path / prev).replace(tmp_path / name)                             # the advice, followed
    _fit(tmp_path, resume=True, iterations=5)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["it"] for row in log] == [0, 1, 2, 3, 4], "one run's log: no line of the run that started over"
    assert [row["loss"] for row in log[:3]] == [100.0, 101.0, 102.0]


def test_a_second_start_over_says_it_replaces_the_run_set_aside_before(tmp_path, capsys):
    from test_bad_input import _fit

    from dsrg.run.checkpoints import save_checkpoint
    from dsrg.run.dist import World, rng_states

    model, optimizer = _fit(tmp_path / "first")
    for iteration in (3, 2):                     # interrupted at 3, started over; interrupted at 2, started over
        save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, iteration, rng_states(torch.device("cpu"), World()))
        (tmp_path / "log.jsonl").write_text(json.dumps({"it": iteration, "loss": 1.0}) + "\n")
        capsys.readouterr()
        _fit(tmp_path, iterations=2)
    assert "in place of the run set aside before at iteration 3" in capsys.readouterr().err
    assert json.loads((tmp_path / "log.prev.jsonl").read_text())["it"] == 2, "the pair is one run's"


def test_resume_without_a_checkpoint_names_the_run_that_was_set_aside(tmp_path, capsys):
    from test_bad_input import _fit

    from dsrg.run.checkpoints import save_checkpoint
    from dsrg.run.dist import World, rng_states
    from dsrg.run.folders import step_state

    model, optimizer = _fit(tmp_path / "first")
    save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, 3, rng_states(torch.device("cpu"), World()))
    (tmp_path / "log.jsonl").write_text("".join(json.dumps({"it": it, "loss": 1.0}) + "\n" for it in range(4)))
    _fit(tmp_path, iterations=2)
    (tmp_path / "ckpt.pt").unlink(missing_ok=True)
    note = ("ckpt.prev.pt holds an earlier run set aside at iteration 3 (to continue it: move ckpt.prev.pt back "
            "to ckpt.pt and move log.prev.jsonl back to log.jsonl, then --resume)")
    assert note in step_state(tmp_path)
    capsys.readouterr()
    _fit(tmp_path, resume=True, iterations=2)
    assert note in capsys.readouterr().err
    (tmp_path / "log.prev.jsonl").unlink()                  # as set aside before logs were kept with it
    assert "(to continue it: move ckpt.prev.pt back to ckpt.pt and delete log.jsonl, then --resume)" in \
        step_state(tmp_path)


def test_a_file_given_as_a_training_log_that_is_not_one_says_so(tmp_path):
    from dsrg.run.train import read_log

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="config.json: not a training log; expected a training step's folder"):
        read_log(tmp_path / "config.json")


def test_what_a_killed_writer_left_is_removed_but_not_a_file_being_written(tmp_path):
    from dsrg.files import atomic_path, remove_stale_temporaries

    stale = tmp_path / "labels" / ".a.png.k3j9x_2q.png"        # the temporary file of a killed atomic write
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    (tmp_path / ".notes.txt").write_text("a hidden file of the user's")
    with atomic_path(tmp_path / "model.pt") as live:
        live.write_bytes(b"being written")
        assert remove_stale_temporaries(tmp_path) == [stale]
        assert live.exists()
    assert not stale.exists() and (tmp_path / ".notes.txt").exists() and (tmp_path / "model.pt").exists()


def test_a_folder_given_for_a_profile_or_a_weights_file_is_called_a_folder_not_missing(tmp_path, capsys):
    (tmp_path / "mine.yaml").mkdir()
    with pytest.raises(InputError, match=rf"profile '{tmp_path}/mine.yaml' is a folder, not a file: expected the "
                                         r"path of a YAML file or a bundled profile \(coco-vgg16, "):
        load_profile(str(tmp_path / "mine.yaml"))
    assert main(["run", "--profile", "smoke", "--dry-run", f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}",
                 f"cls.backbone_weights={tmp_path}"]) == 2
    assert f"cls.backbone_weights: {tmp_path} is a folder, not a file" in capsys.readouterr().err


def test_a_place_that_cannot_be_written_is_named_not_a_traceback(tmp_path, monkeypatch):
    from dsrg.files import atomic_dir, atomic_path, locked

    (tmp_path / "a_file").write_text("not a folder")
    for write, what in ((atomic_path, "the file"), (atomic_dir, "the folder"), (locked, "the lock file")):
        with pytest.raises(InputError, match=rf"cannot write {what} {tmp_path}/a_file/x \({tmp_path}/a_file is a "
                                             rf"file, not a folder\); expected a place you can write to"):
            with write(tmp_path / "a_file" / "x"):
                pass
    for write, what in ((atomic_path, "the file"), (atomic_dir, "the folder")):      # a disk that fills up
        with pytest.raises(InputError, match=rf"cannot write {what} {tmp_path}/full \(No space left on device\)"):
            with write(tmp_path / "full"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]      # nothing half-written
    with pytest.raises(PermissionError):              # a writer's own error while the disk has room: its own
        with atomic_path(tmp_path / "x"):
            raise PermissionError(errno.EACCES, "the writer's")
    done = tmp_path / "run" / "cls-0123456789"           # a finished step on a disk that cannot be written
    done.mkdir(parents=True)
    (done / "done.json").write_text("{}")
    monkeypatch.setattr(folders, "step_dir", lambda cfg, step: done)
    monkeypatch.setattr(folders.os, "access", lambda path, mode: False)
    with folders.step_lock(load_profile("smoke"), "cls"):            # read, with no lock file to make
        assert not (tmp_path / "run" / ".cls-0123456789.lock").exists()


def test_the_temporary_folders_that_killed_writers_left_are_removed_by_the_next_writer(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from dsrg.files import atomic_dir

    def make(name: str) -> Path:        # a writer in another process, killed before it renamed its folder
        code = ("import os, sys\nfrom dsrg.files import atomic_dir\nwith atomic_dir(sys.argv[1]) as tmp:\n"
                "    (tmp / 'half.txt').write_text('half')\n    os._exit(1)\n")
        before = set(tmp_path.glob(f".{name}.*"))
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=False)
        return (set(tmp_path.glob(f".{name}.*")) - before).pop()

    hour_ago = time.time() - 3700
    killed, recent, other = make("data"), make("data"), make("other")
    os.utime(killed, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    old_style = tmp_path / ".data.abcd1234"          # no .writer file (an older version's), an hour old
    old_style.mkdir()
    os.utime(old_style, (hour_ago, hour_ago))
    live = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom dsrg.files import atomic_dir\n"
                             "with atomic_dir(sys.argv[1]) as tmp:\n    print(tmp, flush=True)\n    time.sleep(60)\n",
                             str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
    try:
        writing = Path(live.stdout.readline().strip())      # a live writer's folder, an hour old by its time
        os.utime(writing, (hour_ago, hour_ago))
        with atomic_dir(tmp_path / "data") as tmp:
            (tmp / "done.txt").write_text("whole")
            assert not killed.exists() and not old_style.exists()
            assert recent.exists() and other.exists()   # a minute may not have passed; another name's is not ours
            assert writing.is_dir()                     # its writer holds its lock
    finally:
        live.kill()
        live.wait()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["done.txt"]


def test_a_lock_whose_folder_is_removed_as_it_is_opened_is_taken_in_the_folder_made_again(tmp_path, monkeypatch):
    """Another process's first step failed and removed the run folder it had made, emptied, between this one's
    making it and opening its lock file there: the lock is taken in the folder made again, not a traceback."""
    import builtins
    import shutil

    import dsrg.files as files

    removed = []

    def racing(path, *args, **kwargs):
        if not removed:
            removed.append(path)
            shutil.rmtree(Path(path).parent)
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(files, "open", racing, raising=False)
    with files.locked(tmp_path / "run" / ".cls-0123456789.lock"):
        assert (tmp_path / "run" / ".cls-0123456789.lock").is_file()
    assert len(removed) == 1 and list((tmp_path / "run").iterdir()) == []


def test_writers_take_turns_under_a_lock_that_leaves_no_file_behind(tmp_path):
    """A holds the lock; B waits on A's file; A leaves (deleting its file): B goes in. C, arriving while B
    is in, must wait for B, although A's file is gone and C makes a new one."""
    import threading

    from dsrg.files import locked

    lock = tmp_path / "run" / ".seg.lock"
    inside, b_in, b_may_leave = [], threading.Event(), threading.Event()

    def writer(name, entered=None, leave=None):
        with locked(lock):
            inside.append(name)
            if entered is not None:
                entered.set()
                leave.wait(10)
            inside.remove(name)

    b = threading.Thread(target=writer, args=("B", b_in, b_may_leave))
    with locked(lock):
        assert lock.exists()
        b.start()
        assert not b_in.wait(0.3), "B waits while A holds the lock"
    assert b_in.wait(10), "B goes in once A leaves"
    c = threading.Thread(target=writer, args=("C",))
    c.start()
    c.join(0.3)
    assert c.is_alive() and inside == ["B"], "C waits for B"
    b_may_leave.set()
    b.join(10), c.join(10)
    assert not b.is_alive() and not c.is_alive() and inside == []
    assert list(lock.parent.iterdir()) == [], "nothing stays beside the output"


def test_a_lock_is_free_when_its_holder_leaves_though_a_child_forked_inside_still_runs(tmp_path):
    """A process forked inside the block (a DataLoader worker) shares the lock's open file: leaving the block
    must release the lock itself, not wait for the child to close its copy."""
    import os
    import subprocess
    import sys
    import time

    from dsrg.files import locked

    lock, waiter = tmp_path / ".seg.lock", None
    try:
        with locked(lock):                  # the waiter starts once the lock is held: it must wait
            waiter = subprocess.Popen([sys.executable, "-c", f"from dsrg.files import locked\nwith locked("
                                       f"{str(lock)!r}, waiting='waiting'):\n    print('in', flush=True)"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert waiter.stderr.readline() == "waiting\n"
            child = os.fork()
            if child == 0:                  # the worker: outlives the block by 20 s
                time.sleep(20)
                os._exit(0)
        start = time.monotonic()
        assert waiter.stdout.readline() == "in\n"
        assert time.monotonic() - start < 10, "the waiter got the lock only as the child ended"
    finally:
        if waiter is not None:
            waiter.kill()
        if "child" in locals() and child:
            os.kill(child, 9)
            os.waitpid(child, 0)


def test_a_writer_waiting_for_a_lock_whose_folder_was_removed_makes_it_again(tmp_path):
    import shutil
    import threading

    from dsrg.files import locked

    lock, errors = tmp_path / "run" / ".seg.lock", []

    def waiter():
        try:
            with locked(lock):
                pass
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=waiter)
    with locked(lock):
        t.start()
        t.join(0.3)
        shutil.rmtree(lock.parent)          # the user deletes the run folder while a notebook waits
    t.join(10)
    assert errors == [] and not t.is_alive()


def test_data_check_reports_a_corrupt_image_once_and_by_its_id(tmp_path, capsys):
    root = _voc_root(tmp_path / "voc")
    jpeg = (root / "JPEGImages" / "im1.jpg").read_bytes()
    (root / "JPEGImages" / "im1.jpg").write_bytes(jpeg[:20])
    capsys.readouterr()
    assert main(["data", "check", "--root", str(root)]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "image of id 'im1'" in problems[0]


def test_interrupted_pseudo_labels_say_where_they_stand_and_resume_keeps_their_quality(tiny_run, tmp_path, capsys,
                                                                                    monkeypatch):
    import shutil

    from conftest import tiny_profile

    from dsrg.run import labelling
    from dsrg.steps import pseudo_labels

    cfg, done = tiny_run
    mine = tiny_profile(cfg.data.root, tmp_path / "run")
    for step in ("cls", "seeds", "seg"):                       # the same settings: the same folders, reused
        shutil.copytree(done[step], tmp_path / "run" / done[step].name)
    real, calls = labelling.write_label_png, []

    def interrupted_at_the_fourth(path, label):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real(path, label)

    monkeypatch.setattr(labelling, "write_label_png", interrupted_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        pseudo_labels.run(mine)
    assert "pseudo-labels: interrupted with 3 of 16 images labelled; `--resume` continues" in capsys.readouterr().err
    folder = folders.step_dir(mine, "pseudo")
    assert folders.step_state(folder).startswith("interrupted (3 of 16 written): --resume continues")
    calls[:] = [None]                       # again, without --resume (it says it starts over), stopped at its third
    with pytest.raises(KeyboardInterrupt):
        pseudo_labels.run(mine)
    assert "pseudo-labels: 3 of 16 images labelled by an interrupted run are done again (without --resume the " \
           "step starts over; --resume keeps them)" in capsys.readouterr().err
    assert folders.step_state(folder).startswith("interrupted (2 of 16 written)"), "the first run's third removed"
    monkeypatch.setattr(labelling, "write_label_png", real)
    damaged = calls[1]                                         # one of them cut short: it is labelled again
    damaged.write_bytes(damaged.read_bytes()[:20])
    pseudo_labels.run(mine, resume=True)
    err = capsys.readouterr().err
    assert f"pseudo-labels: {damaged} is cut short or damaged: it is labelled again" in err
    assert "pseudo-labels: --resume: 1 of 16 images labelled before, kept; 15 to go" in err
    info = folders.done_info(folder)
    assert info["quality"] == folders.done_info(done["pseudo"])["quality"]
    assert info["wall_s_total"] > info["wall_s"], "the interrupted session's time, up to its last label, added"
    assert info["sessions"] == 2 and "with the session before" in folders.step_state(folder)
    assert not (folder / "elapsed.json").exists(), "in done.json now"


def _seeds_to_make_again(tiny_run, tmp_path):
    """A profile whose run folder holds a copy of the tiny run's train-cls (the same settings: the same folder),
    so that its seeds step runs again there."""
    import shutil

    from conftest import tiny_profile

    cfg, done = tiny_run
    mine = tiny_profile(cfg.data.root, tmp_path / "run")
    shutil.copytree(done["cls"], tmp_path / "run" / done["cls"].name)
    return mine


def _stack_cues_stopped_at(n: int, stop: BaseException):
    """seeds.stack_cues raising ``stop`` at its ``n``-th call, and the list of its calls (one item each)."""
    from dsrg.steps import seeds

    real, calls = seeds.stack_cues, []

    def stopped(*args):
        calls.append(1)
        if len(calls) == n:
            raise stop
        return real(*args)

    return stopped, calls


def test_a_seeds_step_stopped_by_an_error_keeps_the_cues_it_made_for_resume(tiny_run, tmp_path, capsys, monkeypatch):
    from dsrg.run import step_files
    from dsrg.steps import seeds

    mine, real = _seeds_to_make_again(tiny_run, tmp_path), seeds.stack_cues
    # at the sixth image, with no file of cues written yet (256 images a file)
    monkeypatch.setattr(seeds, "stack_cues", _stack_cues_stopped_at(6, OSError("a corrupt image"))[0])
    with pytest.raises(OSError):
        seeds.run(mine)
    assert "seeds: stopped by the error below with the cues of 5 of 16 images written" in capsys.readouterr().err
    folder = folders.step_dir(mine, "seeds")
    part, = (folder / step_files.CUE_PARTS).glob("*.npz")
    assert len(seeds.kept_cues(folder)) == 5
    part.write_bytes(part.read_bytes()[:100])                  # a damaged file of cues: its images are made again
    monkeypatch.setattr(seeds, "stack_cues", real)
    seeds.run(mine, resume=True)
    assert f"seeds: {part} is cut short or damaged: the cues of its images are made again" in capsys.readouterr().err
    assert folders.done_info(folder)["images"] == 16


def test_a_seeds_step_stopped_by_an_error_before_any_cue_says_nothing_of_cues(tiny_run, tmp_path, capsys, monkeypatch):
    from dsrg.steps import seeds

    mine = _seeds_to_make_again(tiny_run, tmp_path)
    monkeypatch.setattr(seeds, "stack_cues", _stack_cues_stopped_at(1, OSError("a setup error"))[0])
    with pytest.raises(OSError):
        seeds.run(mine)
    assert "cues" not in capsys.readouterr().err


def test_an_interrupted_seeds_step_keeps_the_cues_it_wrote_and_resume_makes_the_same_store(tiny_run, tmp_path, capsys,
                                                                                         monkeypatch):
    import numpy as np

    from dsrg.data.cues import CueStore
    from dsrg.run import step_files
    from dsrg.steps import seeds

    done = tiny_run[1]
    mine, real = _seeds_to_make_again(tiny_run, tmp_path), seeds.stack_cues
    monkeypatch.setattr(seeds, "PART_IMAGES", 2)                          # a file of cues every 2 images
    interrupted_at_the_sixth, calls = _stack_cues_stopped_at(6, KeyboardInterrupt())
    monkeypatch.setattr(seeds, "stack_cues", interrupted_at_the_sixth)
    with pytest.raises(KeyboardInterrupt):
        seeds.run(mine)
    assert "seeds: interrupted with the cues of 5 of 16 images written; `--resume` continues" in capsys.readouterr().err
    folder = folders.step_dir(mine, "seeds")
    assert len(list((folder / step_files.CUE_PARTS).glob("*.npz"))) == 3                # 2 + 2 + the last 1
    assert folders.step_state(folder).startswith("interrupted (5 of 16 written): --resume continues")
    calls[:] = [1, 1, 1]                                   # again without --resume, interrupted at its third image
    with pytest.raises(KeyboardInterrupt):
        seeds.run(mine)
    assert "seeds: 5 of 16 images given their cues by an interrupted run are done again (without --resume the " \
           "step starts over" in capsys.readouterr().err
    assert folders.step_state(folder).startswith("interrupted (2 of 16 written)")
    monkeypatch.setattr(seeds, "stack_cues", real)
    seeds.run(mine, resume=True)
    assert "seeds: --resume: 2 of 16 images given their cues before, kept; 14 to go" in capsys.readouterr().err
    ours, theirs = CueStore.load(folder / step_files.CUES), CueStore.load(done["seeds"] / step_files.CUES)
    assert ours.ids == theirs.ids and np.array_equal(ours.entries, theirs.entries) and \
        np.array_equal(ours.labels, theirs.labels), "the uninterrupted run's cues"
    assert not (folder / step_files.CUE_PARTS).exists() and folders.done_info(folder)["resumed_with_images"] == 2
    info = folders.done_info(folder)
    assert info["wall_s_total"] > info["wall_s"] and not (folder / step_files.ELAPSED).exists()


def test_an_interrupted_evaluation_says_where_it_stands_and_resume_scores_what_it_kept(tiny_run, tmp_path, capsys,
                                                                                     monkeypatch):
    import shutil

    from conftest import tiny_profile

    from dsrg.run import labelling
    from dsrg.steps import evaluate

    cfg, done = tiny_run
    mine = tiny_profile(cfg.data.root, tmp_path / "run")
    for step in done:                                          # every step but the evaluation, reused
        if step != "eval":
            shutil.copytree(done[step], tmp_path / "run" / done[step].name)
    real, calls = labelling.write_label_png, []

    def interrupted_at_the_third(path, label):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(path, label)

    monkeypatch.setattr(labelling, "write_label_png", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(mine, resume=True)                        # --resume where nothing was written before
    err = capsys.readouterr().err
    assert "evaluate: --resume: none of its 4 images predicted before: starting" in err
    assert "evaluate: interrupted with 2 of 4 images predicted; `--resume` continues" in err
    folder = folders.step_dir(mine, "eval")
    assert folders.step_state(folder).startswith("interrupted (2 of 4 written): --resume continues")
    monkeypatch.setattr(labelling, "write_label_png", real)
    evaluate.run(mine, resume=True)
    assert "evaluate: --resume: 2 of 4 images predicted before, kept; 2 to go" in capsys.readouterr().err
    assert re.fullmatch(r"done, reused \(took [\d.]+ s from its resume with 2 images written; [\d.]+ s with the session "
                        r"before\)", folders.step_state(folder)), "its time: the rest, and with the session before"
    ours = json.loads((folder / "metrics.json").read_text())
    theirs = json.loads((done["eval"] / "metrics.json").read_text())
    assert ours["miou"] == theirs["miou"] and ours["iou"] == theirs["iou"]
    assert (folder / "per_image.csv").read_text() == (done["eval"] / "per_image.csv").read_text()
    assert folders.done_info(folder)["timed"]["images"] == 2


def test_a_page_parameter_given_again_among_its_overrides_is_noted_and_the_last_holds(capsys):
    from dsrg.reproduce import parameters

    settings = parameters.notebook_overrides(seed=1, extra=["seed=2", "seg.theta_fg=0.9"])
    assert settings == ["progress=false", "seed=1", "seed=2", "seg.theta_fg=0.9"]
    assert capsys.readouterr().err == "note: seed given twice; the last, seed=2, holds\n"
    parameters.notebook_overrides(seed=2, extra=["seed=2"])
    assert capsys.readouterr().err == "", "the same value twice: nothing to note"


def test_notebook_parameters_of_the_wrong_kind_are_named_with_what_was_expected():
    from dsrg.reproduce import parameters

    assert parameters.notebook_overrides(extra="seg.theta_fg=0.9 eval.crf=false")[-2:] == ["seg.theta_fg=0.9", "eval.crf=false"]
    with pytest.raises(InputError, match=r"^overrides: expected key=value strings.*got \[3\]"):
        parameters.notebook_overrides(extra=[3])
    assert parameters.whole_number("n_first", 4) == 4 and parameters.whole_number("limit", None, 1, none=True) is None
    for name, call, expected in [("n_first", lambda: parameters.whole_number("n_first", "two"), ">= 0, got 'two'"),
                                 ("limit", lambda: parameters.whole_number("limit", 0, 1, none=True), ">= 1 or None, got 0"),
                                 ("n_best", lambda: parameters.whole_number("n_best", True), "got True"),
                                 ("one_sided", lambda: parameters.flag("one_sided", "no"), "True or False, got 'no'"),
                                 ("theta_b", lambda: parameters.numbers("theta_b", "[0.99, high]"), "one number"),
                                 ("theta_b", lambda: parameters.numbers("theta_b", "[]"), "at least one number"),
                                 ("theta_f", lambda: parameters.numbers("theta_f", "[0.9"), "got '[0.9'")]:
        with pytest.raises(InputError, match=f"^{name}: expected .*{re.escape(expected)}"):
            call()
    assert parameters.numbers("theta_f", 0.85) == [0.85] and parameters.numbers("theta_b", [0.99, 1]) == [0.99, 1.0]
    assert parameters.numbers("theta_b", "[0.99, 0.95, 0.9]") == [0.99, 0.95, 0.9]     # papermill -p passes a string
    assert parameters.numbers("theta_b", "[.inf]") == [math.inf] == parameters.numbers("theta_b", "inf")
    assert parameters.numbers("theta_f", "[1e-3, 0.5]") == [0.001, 0.5]


def test_a_papermill_parameter_the_page_lacks_is_refused_with_the_closest_one():
    from dsrg.reproduce.parameters import refuse_unknown_parameters

    parameters_cell = 'import os\nprofile = os.environ.get("P", "demo")  # demo | smoke\nseed = 0\n'
    papermill_cell = '# Parameters\nprofil = "smoke"\nseed = 1\n'          # -p profil smoke -p seed 1
    with pytest.raises(InputError, match=r"^papermill parameter 'profil' \(did you mean 'profile'\?\): not a "
                                         r"parameter of this page .*; its parameters: profile, seed$"):
        refuse_unknown_parameters(["", parameters_cell, papermill_cell, "notebook_overrides()"])
    with pytest.raises(InputError, match=r"^papermill parameters 'colour', 'profil' \(did you mean"):
        refuse_unknown_parameters(["", parameters_cell, papermill_cell + "colour = 1\n"])
    refuse_unknown_parameters(["", parameters_cell, '# Parameters\nprofile = "smoke"\n'])   # known: nothing said
    refuse_unknown_parameters(["", parameters_cell, '# Parameters\nPAPERMILL_INPUT_PATH = "-"\n'])  # --inject-paths
    refuse_unknown_parameters(["", parameters_cell, "profil = 1"])                     # no papermill cell: a user's
    refuse_unknown_parameters()                                                       # outside IPython: nothing


@pytest.mark.parametrize("threshold", ["abc", 7, True])
def test_a_background_threshold_that_is_no_probability_is_named(threshold):
    from dsrg.method.seeds import background_cues

    with pytest.raises(InputError, match=r"threshold: expected a value in \[0, 1\]"):
        background_cues(np.zeros((2, 2)), threshold)


def test_the_embedded_dataset_pointed_at_a_real_voc_root_says_which_profile_reads_it(tmp_path, capsys):
    from dsrg.cli import main
    from dsrg.data.synthetic import write_dataset

    (tmp_path / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(InputError, match=r"holds a dataset in the VOC layout.*\(voc-vgg16, voc-resnet101\)"):
        write_dataset(tmp_path / "VOC2012", progress=False)
    assert main(["data", "synth", "--out", str(tmp_path / "VOC2012"), "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "choose another folder" in said and "profile writes" not in said         # no profile in that command
    assert sorted(p.name for p in (tmp_path / "VOC2012").iterdir()) == ["JPEGImages"], "nothing written there"


def test_a_notebooks_profile_file_is_read_from_the_project_root_too(tmp_path, monkeypatch):
    from dsrg.reproduce import experiments

    (tmp_path / "mine.yaml").write_text("name: mine\nseg:\n  theta_fg: 0.7\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")                    # where a notebook runs
    assert experiments.profile("mine.yaml", base="..").seg.theta_fg == 0.7
    with pytest.raises(InputError, match=rf"profile 'other.yaml' not found: neither in {tmp_path / 'notebooks'} nor in "
                                         rf"base '..' \({tmp_path / 'other.yaml'}\)"):
        experiments.profile("other.yaml", base="..")


def test_the_command_that_remakes_a_run_names_a_profile_file_as_the_project_root_reaches_it(tmp_path, monkeypatch):
    from dsrg.reproduce.experiments import _profile_argument

    (tmp_path / "mine.yaml").write_text("name: custom\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "here.yaml").write_text("name: custom\n")
    monkeypatch.chdir(tmp_path / "notebooks")                    # where a notebook runs, base ".."
    assert _profile_argument("demo", "..") == "demo"
    assert _profile_argument("mine.yaml", "..") == "mine.yaml"           # found in base: as given
    assert _profile_argument("here.yaml", "..") == str(tmp_path / "notebooks" / "here.yaml")   # beside the page
    assert _profile_argument("here.yaml", None) == "here.yaml"           # the command's own folder


def test_table_3_runs_the_coco_twin_of_an_embedded_profile_and_refuses_a_voc_one(capsys):
    from dsrg.reproduce.experiments import coco_profile

    assert coco_profile("smoke") == "smoke-coco" and "its COCO twin smoke-coco runs" in capsys.readouterr().out
    assert coco_profile("demo-coco") == "demo-coco" and coco_profile("my.yaml") == "my.yaml"
    with pytest.raises(InputError, match="profile voc-vgg16: Table 3 is on COCO; expected coco-vgg16"):
        coco_profile("voc-vgg16")


def test_a_page_run_from_outside_its_folder_is_stopped_before_it_writes_beside_the_project(tmp_path, monkeypatch):
    from dsrg.reproduce import experiments

    monkeypatch.chdir(tmp_path)                     # papermill without --cwd notebooks, from the project root
    with pytest.raises(InputError, match=r"base '\.\.': .* has no notebooks/ folder; run papermill with --cwd "
                                         r"notebooks, jupytext --execute with --run-path notebooks"):
        experiments.profile("smoke", base="..")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert experiments.profile("smoke", base="..").name == "smoke"


def test_a_missing_real_dataset_path_given_to_an_embedded_profile_is_refused_before_anything_is_written(tmp_path,
                                                                                                      capsys):
    rc = main([*DRY, f"data.root={tmp_path / 'nothere' / 'VOC2012'}", f"out={tmp_path / 'run'}"])
    assert rc == 2 and "does not exist, and this profile would write the embedded dataset there" in \
        capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_override_given_to_a_profile_file_that_does_not_load_points_to_the_demo_not_to_that_file(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("name: bad\nseg:\n  theta_fg: 1.5\n")         # merges, but no profile
    assert main(["run", "--profile", str(tmp_path / "bad.yaml"), "--dry-run", "seg.theta_bg=0.1"]) == 2
    err = capsys.readouterr().err
    assert "which does not load as written; the keys a profile takes, with the demo's values: dsrg run --profile " \
           "demo --dry-run)" in err and "before the overrides" not in err


def test_an_override_error_with_a_profile_file_points_to_that_files_dry_run(tmp_path, capsys):
    (tmp_path / "mine.yaml").write_text("name: mine\nseg:\n  theta_fg: 0.7\n")
    assert main(["run", "--profile", str(tmp_path / "mine.yaml"), "--dry-run", "seg.theta_fgg=1"]) == 2
    assert f"; every key and its value before the overrides: dsrg run --profile {tmp_path / 'mine.yaml'} " \
           "--dry-run)" in capsys.readouterr().err


def test_the_embedded_set_is_not_written_into_a_missing_real_dataset_path_by_any_route(tmp_path):
    from dsrg.data.dataset import open_split

    cfg = load_profile("smoke", [f"data.root={tmp_path / 'nothere' / 'VOC2012'}"])
    with pytest.raises(InputError, match=r"data.root: .*VOC2012 does not exist, and this profile would write"):
        open_split(cfg.data, "train")
    assert not any(tmp_path.iterdir())


def test_the_dry_run_says_what_the_machine_dependent_settings_come_to_here(tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "--dry-run", f"data.root={tmp_path / 'synth'}", 'out=""', "device=auto",
                 "amp=true", "seeds.workers=0", "seg.crf_workers=2"]) == 0
    here = [line for line in capsys.readouterr().out.splitlines() if line.startswith("# here:")]
    assert here == ["# here: device cpu, float32 (amp: no native bf16 here), CRF pydensecrf in train-seg, pydensecrf "
                    "in pseudo-labels, pydensecrf in evaluate, run folder runs/smoke; processes: "
                    "data.loader_workers 0, seeds.workers 0, seg.crf_workers 2"]


def test_the_dry_run_names_the_crf_backends_that_auto_picks_on_cuda(monkeypatch):
    import torch

    from dsrg.run import dist
    from dsrg.steps.dry_run import resolved_here

    monkeypatch.setattr(dist, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(dist, "bf16_native", lambda device: True)
    here = resolved_here(load_profile("voc-vgg16", ["eval.crf_backend=pydensecrf"]))
    assert "bf16 autocast, CRF exact in train-seg, lattice in pseudo-labels, pydensecrf in evaluate," in here
    assert "lattice in pseudo-labels, none in evaluate," in resolved_here(load_profile("voc-vgg16", ["eval.crf=false"]))


def test_a_key_given_twice_on_the_command_line_is_noted_with_the_value_that_holds(tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "--dry-run", f"data.root={tmp_path / 'synth'}", "seg.theta_fg=0.9",
                 "seg.theta_fg=0.8", "seg.theta_bg=0.9"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "dsrg: note: seg.theta_fg given twice; the last, seg.theta_fg=0.8, holds"
    assert "  theta_fg: 0.8\n" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_a_dry_run_on_a_device_this_machine_lacks_says_so_before_any_setting(tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "device=cuda", "--dry-run", f"data.root={tmp_path / 'synth'}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "dsrg: error: device=cuda but torch sees no CUDA device (use device=cpu or " \
                                        "device=auto)"


def test_the_dry_run_says_the_work_of_the_steps_to_run(tmp_path):
    from dsrg.steps.dry_run import work

    root = tmp_path / "voc"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("a\nb\n\nc\n")      # a blank line
    cfg = load_profile("voc-vgg16", [f"data.root={root}", "seg.iterations=12000"])
    assert work(cfg, ["seeds", "seg", "eval"]) == ("# work: seeds 3 images of train_aug; train-seg 12,000 iterations "
                                                   "x 20 images; evaluate the images of val x 3 scales + CRF")
    assert work(cfg, []) == "# work: none"


def test_the_dry_run_of_a_resume_says_what_is_left_of_each_step_begun(tmp_path):
    from dsrg.files import write_torch
    from dsrg.run import folders
    from dsrg.steps.dry_run import work

    root = tmp_path / "voc"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("a\nb\nc\n")
    cfg = load_profile("voc-vgg16", [f"data.root={root}", f"out={tmp_path / 'run'}", "seg.iterations=12000"])
    folders.step_dir(cfg, "seg").mkdir(parents=True)
    write_torch(folders.step_dir(cfg, "seg") / "ckpt.pt", {"iteration": 3000})       # 3,000 iterations kept
    (folders.step_dir(cfg, "pseudo") / "labels").mkdir(parents=True)
    (folders.step_dir(cfg, "pseudo") / "labels" / "a.png").write_bytes(b"")          # 1 of 3 images written
    assert work(cfg, ["seg", "pseudo"], resume=True) == ("# work: train-seg 9,000 of 12,000 iterations to go x 20 "
                                                         "images; pseudo-labels 2 of 3 images of train_aug to go x 3 "
                                                         "input sizes + CRF")
    assert work(cfg, ["seg", "pseudo"]) == ("# work: train-seg 12,000 iterations x 20 images; pseudo-labels 3 images "
                                            "of train_aug x 3 input sizes + CRF"), "without --resume: all of it"
    for name in ("b", "c", "d"):                                  # more written than the split lists now
        (folders.step_dir(cfg, "pseudo") / "labels" / f"{name}.png").write_bytes(b"")
    (folders.step_dir(cfg, "seg") / "ckpt.pt").write_bytes(b"PK\x03\x04 cut")
    assert work(cfg, ["seg", "pseudo"], resume=True) == ("# work: train-seg 12,000 iterations (its ckpt.pt is "
                                                         "unreadable: --resume stops at it; delete it to start over) "
                                                         "x 20 images; pseudo-labels 0 of 3 images of train_aug to go "
                                                         "x 3 input sizes + CRF")


def test_a_single_steps_dry_run_gives_the_work_of_that_step_only(tmp_path, capsys):
    """`dsrg train-seg` runs train-seg alone (it refuses without the seeds): the steps before it are not its work."""
    rc, out, _ = _dry(capsys, tmp_path)
    assert rc == 0 and "# work: train-cls " in out
    capsys.readouterr()
    assert main(["train-seg", "--profile", "smoke", "--dry-run", f"data.root={tmp_path / 'synth'}",
                 f"out={tmp_path / 'run'}"]) == 0
    out = capsys.readouterr().out
    assert "# first run: train-cls, seeds (or dsrg run)" in out and "\n# work: train-seg 8 iterations x" in out, out


def test_a_single_steps_dry_run_lists_only_the_steps_it_reads(tmp_path, capsys):
    """`dsrg evaluate` of the first model (eval.model=seg) reads train-seg's chain, not pseudo-labels or retrain."""
    assert main(["evaluate", "--profile", "smoke", "--dry-run", f"data.root={tmp_path / 'synth'}",
                 f"out={tmp_path / 'run'}", "eval.model=seg"]) == 0
    out = capsys.readouterr().out
    assert "# first run: train-cls, seeds, train-seg (or dsrg run)" in out, out
    assert "\npseudo-labels " not in out and "\nretrain " not in out, out


def test_the_steps_a_step_reads_follow_its_inputs_not_the_pipelines_order():
    from dsrg.profile import load_profile
    from dsrg.run.folders import reads

    cfg = load_profile("smoke")                     # CAM seeds, train-seg starts from train-cls's trunk
    assert reads(cfg, "cls") == []
    assert reads(cfg, "seg") == ["cls", "seeds"]
    assert reads(cfg, "eval") == ["cls", "seeds", "seg", "pseudo", "retrain"]
    authors = load_profile("smoke", ["seeds.source=authors", "seeds.authors_pickle=c.pickle",
                                     "seeds.authors_list=l.txt", "seg.init=imagenet", "eval.model=seg"])
    assert reads(authors, "seg") == ["seeds"] and reads(authors, "eval") == ["seeds", "seg"]


def test_train_seg_from_the_cam_trunk_waits_for_train_cls_even_when_its_seeds_are_done(tmp_path):
    from dsrg.profile import load_profile
    from dsrg.run.folders import step_dir, why_to_run

    cfg = load_profile("smoke", ["seeds.source=authors", "seeds.authors_pickle=c.pickle", "seeds.authors_list=l.txt",
                                 f"out={tmp_path}"])
    seeds = step_dir(cfg, "seeds")
    seeds.mkdir(parents=True)
    (seeds / "done.json").write_text("{}")
    assert why_to_run(cfg, "seg") == "after train-cls, whose trunk it starts from (seg.init=cls)"


def test_a_page_interrupted_while_it_trains_names_its_resume_parameter(tmp_path, monkeypatch, capsys):
    from dsrg.reproduce import experiments
    from dsrg.steps import pipeline

    def interrupted(cfg, resume=False, only=None, starts_over=False):
        exc = KeyboardInterrupt()
        exc.starts_over = starts_over
        raise exc

    settings = [f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}"]
    monkeypatch.setattr(pipeline, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiments.run("smoke", settings)
    err = capsys.readouterr().err
    assert "experiments.run(..., resume=True)" in err and "papermill: -p resume True" in err
    monkeypatch.setattr(pipeline, "run", lambda cfg, resume=False, only=None: interrupted(cfg, starts_over=True))
    with pytest.raises(KeyboardInterrupt):
        experiments.run("smoke", settings)
    assert capsys.readouterr().err == "", "no checkpoint to continue from: nothing to resume"


def test_a_pages_error_about_a_path_says_it_is_written_from_the_pages_folder(tmp_path, monkeypatch):
    from dsrg.reproduce import experiments

    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    with pytest.raises(InputError) as err:
        experiments.run("smoke", ["data.dataset=voc", "data.root=data/none", "out=runs"], base="..")
    said = str(err.value)
    assert f"..{os.sep}data{os.sep}none" in said
    assert said.endswith(f"A page's paths are written from the project root (base='..'): data/x, not ..{os.sep}data/x; "
                         f"this message shows them from notebooks{os.sep}, where the page runs, as ..{os.sep}x")


def test_a_full_disk_under_torchs_writer_names_the_file_and_the_space_left(tmp_path, monkeypatch):
    """torch.save says a full disk in its own words, a RuntimeError ("unexpected pos"); nothing is left behind."""
    import torch

    from dsrg.files import write_torch

    def full(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 66368 vs 66264")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(InputError, match=r"^cannot write the file .*ckpt.pt \(torch's writer: \[enforce fail at "
                                         r"inline_container.cc:672\] . unexpected pos 66368 vs 66264; [\d.]+ MiB free "
                                         r"on its disk\); expected a place you can write to$"):
        write_torch(tmp_path / "ckpt.pt", {})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(torch, "save", lambda obj, f: (_ for _ in ()).throw(RuntimeError("another failure")))
    with pytest.raises(RuntimeError, match="another failure"):
        write_torch(tmp_path / "ckpt.pt", {})
