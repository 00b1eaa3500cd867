"""Image-level labels of their own (``ImageLabels/<split>.txt``): a training split of a weakly-supervised dataset
needs no label maps; each line names an image's classes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import tiny_profile
from PIL import Image

from dsrg.data.synthetic import SynthConfig, write_dataset
from dsrg.data.voc import VOCSegmentation, labels_from_mask
from dsrg.errors import InputError
from dsrg.overrides import apply_overrides
from dsrg.steps import pipeline


def _root(root, lines: str):
    """Three black images a, b, c of split 'train', no label maps, classes background, traffic light, ball."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageLabels").mkdir()
    for image_id in "abc":
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\nc\n")
    (root / "class_names.txt").write_text("background\ntraffic light\nball\n")
    (root / "ImageLabels" / "train.txt").write_text(lines)
    return root


def test_each_line_gives_its_images_classes_by_name_or_index(tmp_path):
    ds = VOCSegmentation(_root(tmp_path / "mine", "a traffic_light ball\nb 2\n\nc\n"), "train")
    assert [ds.labels(i).tolist() for i in range(3)] == [[True, True, True], [True, False, True],
                                                         [True, False, False]]       # c: background alone
    assert ds[0]["labels"].tolist() == [True, True, True] and ds[0]["mask"] is None


def test_data_check_takes_a_tagged_split_without_label_maps_for_training(tmp_path):
    from dsrg.data.check import check_voc_root

    root = _root(tmp_path / "mine", "a 1\nb 2\nc\n")
    report, problems = check_voc_root(root)
    assert problems == [] and report[0] == ("split 'train': 3 images, 3 opened, 0 problems, image-level labels from "
                                            "ImageLabels/train.txt, no label maps (training only: evaluation needs "
                                            "them)")
    (root / "ImageLabels" / "train.txt").write_text("a 1\nb 2\nc\nzz 1\n")        # an id of no image of the split
    (root / "ImageLabels" / "training.txt").write_text("a 1\n")                    # a file of no split
    report, problems = check_voc_root(root)
    assert "ImageLabels/train.txt (which also lists 1 id of no image of the split, e.g. zz)" in report[0]
    assert len(problems) == 1 and "ImageLabels/training.txt names no split (the splits: train)" in problems[0]


def test_a_class_that_is_not_one_and_an_image_without_a_line_are_named(tmp_path):
    with pytest.raises(InputError, match=r"ImageLabels/train.txt, line 2: 'dog' is not one of the 3 classes; "
                                         r"expected a class name \(background, traffic_light, ball; a space written "
                                         r"_\) or an index 0\.\.2"):
        VOCSegmentation(_root(tmp_path / "dog", "a ball\nb dog\nc\n"), "train")
    with pytest.raises(InputError, match=r"line 1: 'bal' is not one of the 3 classes; did you mean 'ball'\?"):
        VOCSegmentation(_root(tmp_path / "bal", "a bal\nb 1\nc\n"), "train")
    with pytest.raises(InputError, match=r"lines 1 and 4: id 'a' is given two different sets of classes"):
        VOCSegmentation(_root(tmp_path / "twice", "a ball\nb 1\nc\na 1\n"), "train")
    assert VOCSegmentation(_root(tmp_path / "same", "a ball\nb 1\nc\na 2\n"), "train").labels(0)[2]
    with pytest.raises(InputError, match=r"line 1: '²' is not one of the 3 classes"):     # a digit, not a number
        VOCSegmentation(_root(tmp_path / "two", "a ²\nb 1\nc\n"), "train")
    with pytest.raises(InputError, match=r"gives no classes for 1 of the 3 images of split 'train' \(e\.g\. c\)"):
        VOCSegmentation(_root(tmp_path / "short", "a ball\nb 1\n"), "train")


def test_a_tagged_split_has_label_maps_for_all_its_images_or_none(tmp_path):
    """They are read to score and measure; some of them only would be read as a test split's, unscored."""
    from dsrg.data.voc import write_label_png

    root = _root(tmp_path / "mine", "a 1\nb 2\nc\n")
    (root / "SegmentationClass").mkdir()            # the folder of another split's maps: this one has none
    assert not VOCSegmentation(root, "train").has_masks
    write_label_png(root / "SegmentationClass" / "a.png", np.zeros((8, 10), np.uint8))
    with pytest.raises(InputError, match=r"label maps in .*SegmentationClass for 1 of its 3 images; expected a "
                                         r"label map for every image .* or for none"):
        VOCSegmentation(root, "train")
    for image_id in "bc":
        write_label_png(root / "SegmentationClass" / f"{image_id}.png", np.zeros((8, 10), np.uint8))
    assert VOCSegmentation(root, "train").has_masks


def test_editing_the_image_level_labels_is_a_new_run_and_the_embedded_sets_keep_their_folders(tmp_path):
    from dsrg.profile import load_profile
    from dsrg.run import folders

    root = _root(tmp_path / "mine", "a 1\nb 2\nc\n")
    cfg = load_profile("voc-vgg16", [f"data.root={root}", "data.train_split=train", "data.val_split=train"])
    before = folders.step_hash(cfg, "cls")
    (root / "ImageLabels" / "train.txt").write_text("c\n\nb ball\na traffic_light\n")   # the same labels, as read
    assert folders.step_hash(cfg, "cls") == before
    (root / "ImageLabels" / "train.txt").write_text("a 1\nb 1\nc\n")
    assert folders.step_hash(cfg, "cls") != before
    embedded = write_dataset(tmp_path / "synth", apply_overrides(SynthConfig(), ["n_train=2", "n_val=1", "size=32"]),
                             progress=False)
    assert folders.own_classes(load_profile("voc-vgg16", [f"data.root={embedded}"])) is None


def test_a_tagged_training_split_without_label_maps_trains_the_networks_its_label_maps_would(tmp_path):
    """The embedded set twice: once as written, once with its training images' classes in ImageLabels/train.txt
    and their label maps deleted (val keeps its own, to be scored). Same classes, same seed: the same networks;
    what needs the training split's ground truth (the seeds' and pseudo labels' quality) is left out."""
    first = write_dataset(tmp_path / "maps", apply_overrides(SynthConfig(), ["n_train=16", "n_val=4", "size=64"]),
                          progress=False)
    second = tmp_path / "tags"
    shutil.copytree(first, second)
    ds = VOCSegmentation(first, "train")
    lines = [" ".join([image_id, *map(str, np.flatnonzero(labels_from_mask(ds.mask(i), ds.num_classes))[1:])])
             for i, image_id in enumerate(ds.ids)]
    (second / "ImageLabels").mkdir()
    (second / "ImageLabels" / "train.txt").write_text("\n".join(lines) + "\n")
    for image_id in ds.ids:
        (second / "SegmentationClass" / f"{image_id}.png").unlink()
    runs = {}
    for name, root in (("maps", first), ("tags", second)):
        cfg = tiny_profile(root, tmp_path / f"run-{name}", "data.dataset=voc")
        runs[name] = pipeline.run(cfg)
    weights = [torch.load(runs[name]["seg"] / "model.pt", weights_only=False)["state_dict"] for name in runs]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    from dsrg.run.folders import done_info

    assert done_info(runs["maps"]["pseudo"])["quality"] and done_info(runs["tags"]["pseudo"])["quality"] is None
    assert done_info(runs["tags"]["eval"])["miou"] == done_info(runs["maps"]["eval"])["miou"]
