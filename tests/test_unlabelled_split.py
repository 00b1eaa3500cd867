"""Splits without label maps (VOC 2012 test): predicted for the evaluation server and reported as test splits
by ``dsrg data check``; a split where only some images have a label map is refused and reported."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_profile
from PIL import Image

from dsrg.data.check import check_voc_root
from dsrg.data.voc import VOCSegmentation, write_label_png
from dsrg.errors import InputError
from dsrg.steps.evaluate import split_has_labels


def _voc_root(root, splits: dict[str, list[str]], unlabelled=()):
    """A VOC-layout root of 3 classes and 8 x 10 black images, one split file per entry of ``splits``;
    every image has a label map (class 1 in a corner) except those of ``unlabelled``."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for image_id in ids:
            Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
            if image_id not in unlabelled:
                mask = np.zeros((8, 10), np.uint8)
                mask[:2, :2] = 1
                write_label_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    (root / "class_names.txt").write_text("background\nbox\nball\n")
    return root


def test_a_split_whose_every_image_has_a_label_map_is_scored(tmp_path):
    root = _voc_root(tmp_path / "voc", {"val": ["a", "b", "c"]})
    assert split_has_labels(VOCSegmentation(root, "val")) is True


def test_a_split_without_any_label_map_is_predicted_for_the_server(tmp_path):
    root = _voc_root(tmp_path / "voc", {"train": ["a", "b"], "test": ["t1", "t2", "t3"]}, unlabelled={"t1", "t2", "t3"})
    assert split_has_labels(VOCSegmentation(root, "test")) is False
    (root / "SegmentationClass").rename(tmp_path / "moved")          # no label folder at all
    assert split_has_labels(VOCSegmentation(root, "test")) is False


@pytest.mark.parametrize("order", [["a", "b", "c", "d"], ["d", "c", "b", "a"]])
def test_a_split_where_some_images_lack_a_label_map_is_refused_with_the_counts(tmp_path, order):
    """Whichever id comes first: 3 with a label map, 1 without (named, the smaller group)."""
    root = _voc_root(tmp_path / "voc", {"val": order}, unlabelled={"d"})
    with pytest.raises(InputError, match=r"split 'val' .*: 3 images have a label map in .*SegmentationClass "
                                         r"and 1 have none \(ids without one: d\); expected a label map for "
                                         r"every image .* or for none"):
        split_has_labels(VOCSegmentation(root, "val"))


def test_a_mostly_unlabelled_split_names_the_few_ids_that_have_a_label_map(tmp_path):
    root = _voc_root(tmp_path / "voc", {"val": ["a", "b", "c", "d"]}, unlabelled={"a", "b", "d"})
    with pytest.raises(InputError, match=r"1 images have a label map .* and 3 have none \(ids with one: c\)"):
        split_has_labels(VOCSegmentation(root, "val"))


def test_data_check_reports_a_test_split_without_problems(tmp_path):
    root = _voc_root(tmp_path / "voc", {"train": ["a", "b"], "test": ["t1", "t2", "t3"]}, unlabelled={"t1", "t2", "t3"})
    report, problems = check_voc_root(root)
    assert problems == []
    line = next(line for line in report if line.startswith("split 'test'"))
    assert line.startswith("split 'test': 3 images, 3 opened, 0 problems, no label maps (a test split: "
                           "`dsrg evaluate --profile P eval.split=test` writes predictions)")     # the ids are not VOC's


def test_data_check_still_reports_a_missing_image_of_a_test_split(tmp_path):
    root = _voc_root(tmp_path / "voc", {"train": ["a"], "test": ["t1", "t2"]}, unlabelled={"t1", "t2"})
    (root / "JPEGImages" / "t2.jpg").unlink()
    _, problems = check_voc_root(root)
    assert len(problems) == 1 and "image of id 't2' (split 'test') not found" in problems[0]


def test_data_check_reports_a_split_where_some_images_lack_a_label_map_once(tmp_path):
    root = _voc_root(tmp_path / "voc", {"val": ["a", "b", "c"]}, unlabelled={"b"})
    report, problems = check_voc_root(root)
    assert problems == [f"split 'val': 1 of 3 images have no label map in {root / 'SegmentationClass'} (b); "
                        f"expected one for every image (a split to train on or score) or for none (a test split)"]
    assert report[0].startswith("split 'val': 3 images, 3 opened, 1 problem")


def test_evaluate_refuses_a_mixed_split_before_loading_the_model(tmp_path):
    """No model was trained here: the split's InputError comes first, before any model or inference."""
    from dsrg.steps import evaluate

    root = tmp_path / "synth"
    cfg = tiny_profile(root, tmp_path / "run", "eval.split=val", "data.synth=[n_train=1,n_val=3,size=64]")
    evaluate.open_split(cfg.data, "val")                               # writes the tiny dataset
    (root / "SegmentationClass" / "val_00001.png").unlink()
    with pytest.raises(InputError, match=r"split 'val' .*: 2 images have a label map .* and 1 have none "
                                         r"\(ids without one: val_00001\)") as refused:
        evaluate.run(cfg)
    assert refused.value.every_process           # under torchrun, every process finds it: process 0 says it


def test_a_validation_split_missing_label_maps_is_refused_for_the_classifier_with_both_ways_out(tmp_path):
    from dsrg.profile import load_profile
    from dsrg.run.preflight import check_inputs

    root = _voc_root(tmp_path / "voc", {"train": ["a", "b", "c", "d"], "val": ["e", "f"]}, unlabelled=("f",))
    cfg = load_profile("smoke", [f"data.root={root}", "data.dataset=voc", "data.val_split=val",
                                 f"out={tmp_path / 'run'}"])
    with pytest.raises(InputError) as err:
        check_inputs(cfg, ["cls"], remember=False)
    said = str(err.value)
    assert "data.val_split=val: 1 of its 2 images have no label map" in said
    assert "the classifier's validation reads each image's classes from its label map: expected one for every " \
           "image, or the classes of every image in" in said and "training reads" not in said
