"""Synthetic demo dataset: VOC layout, deterministic, atomic, and shaped like the paper's problem."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import dsrg.data.synthetic as synthetic
from dsrg.cli import main
from dsrg.data.synthetic import (CLASS_NAMES, MAX_CLASSES, PART_CROSSED, PART_HUES, PART_STRIPE_ANGLES, PARTNERS,
                                 SYNTH_CLASSES, SynthConfig, border_band, class_names, pick_classes, render_image,
                                 render_scene, write_dataset)
from dsrg.data.voc import IGNORE, VOCSegmentation, read_label_png
from dsrg.errors import InputError

TINY = SynthConfig(n_train=6, n_val=3, size=64)
SAMPLE = SynthConfig(size=64)  # for render_scene only: counts do not matter


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def scenes(n: int, cfg: SynthConfig = SAMPLE):
    return [render_scene(cfg, "train", i) for i in range(n)]


# ----------------------------------------------------------------------------- writing

def test_same_config_gives_byte_identical_files(tmp_path):
    first = files_of(write_dataset(tmp_path / "a", TINY, progress=False))
    second = files_of(write_dataset(tmp_path / "b", TINY, progress=False))
    assert first.keys() == second.keys() and first == second


def test_an_image_does_not_depend_on_the_counts(tmp_path):
    small = write_dataset(tmp_path / "a", replace(TINY, n_train=3), progress=False)
    large = write_dataset(tmp_path / "b", TINY, progress=False)
    for name in ("JPEGImages/train_00002.jpg", "SegmentationClass/train_00002.png", "JPEGImages/val_00001.jpg"):
        assert (small / name).read_bytes() == (large / name).read_bytes()


def test_layout_counts_and_metadata(tmp_path):
    root = write_dataset(tmp_path / "synth", TINY, progress=False)
    assert len(list((root / "JPEGImages").glob("*.jpg"))) == 9
    assert len(list((root / "SegmentationClass").glob("*.png"))) == 9
    assert (root / "class_names.txt").read_text().split() == SYNTH_CLASSES
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["generator"] == "dsrg.data.synthetic" and meta["counts"] == {"train": 6, "val": 3}
    assert meta["config"]["size"] == 64 and meta["config"]["n_train"] == 6
    train, val = VOCSegmentation(root, "train"), VOCSegmentation(root, "val")
    assert (len(train), len(val)) == (6, 3) and train.class_names == SYNTH_CLASSES
    assert train.check() == [] and val.check() == []


def test_masks_read_back_with_objects_and_border_band(tmp_path):
    ds = VOCSegmentation(write_dataset(tmp_path / "synth", TINY, progress=False), "train")
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (64, 64, 3) and item["mask"].shape == (64, 64)
        assert 1 <= item["labels"][1:].sum() <= 3
        assert (item["mask"] == IGNORE).any() and (item["mask"] == 0).any()
        np.testing.assert_array_equal(item["mask"], render_image(TINY, "train", i)[1])


def test_rewriting_the_same_config_is_a_no_op(tmp_path):
    root = write_dataset(tmp_path / "synth", TINY, progress=False)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert write_dataset(root, TINY, progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_rewriting_with_another_config_raises(tmp_path):
    root = write_dataset(tmp_path / "synth", TINY, progress=False)
    with pytest.raises(InputError, match="another config.*seed"):
        write_dataset(root, replace(TINY, seed=1), progress=False)


def test_existing_folder_without_metadata_raises(tmp_path):
    (tmp_path / "synth").mkdir()
    with pytest.raises(InputError, match="no dataset.json"):
        write_dataset(tmp_path / "synth", TINY, progress=False)


@pytest.mark.parametrize("field, value", [("n_train", 0), ("size", 8), ("border", -1), ("pair_prob", 1.5),
                                          ("part_max", 0.05), ("max_objects", 4), ("seed", True),
                                          ("jpeg_quality", 0)])
def test_bad_config_value_names_the_field(tmp_path, field, value):
    with pytest.raises(InputError, match=rf"{field}={value!r}.*expected"):
        write_dataset(tmp_path / "synth", replace(TINY, **{field: value}), progress=False)
    assert not (tmp_path / "synth").exists()


def test_numpy_scalars_in_the_config_are_stored_as_json(tmp_path):
    root = write_dataset(tmp_path / "synth", replace(TINY, n_val=np.int64(2), clutter=np.float32(0.5)), progress=False)
    assert json.loads((root / "dataset.json").read_text())["config"]["n_val"] == 2
    assert write_dataset(root, replace(TINY, n_val=2, clutter=0.5), progress=False) == root


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(cfg, split, index):
        calls.append(index)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return render_image(cfg, split, index)

    monkeypatch.setattr(synthetic, "render_image", failing)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "synth", TINY, progress=False)
    assert list(tmp_path.iterdir()) == [], "no dataset, no temporary folder, no lock file"


def test_unknown_split_is_refused():
    with pytest.raises(InputError, match="'test'"):
        render_image(TINY, "test", 0)


# ----------------------------------------------------------------------------- what the data shows

def test_each_scene_has_one_to_three_objects_and_consistent_mask():
    for scene in scenes(40):
        assert 1 <= len(scene.objects) <= 3
        for k, obj in enumerate(scene.objects, start=1):
            labelled = (scene.instances == k) & (scene.mask != IGNORE)
            assert labelled.any() and (scene.mask[labelled] == obj.cls).all()
            assert (scene.instances == k).sum() >= 0.6 * obj.body.sum()  # later objects hide at most 40%
        assert np.isin(scene.mask[scene.instances == 0], [0, IGNORE]).all()
        np.testing.assert_array_equal(scene.mask == IGNORE, border_band(scene.instances, SAMPLE.border))


def test_border_band_is_as_wide_as_asked():
    instances = np.zeros((10, 20), np.uint8)
    instances[:, 10:] = 1
    for width in (0, 1, 2, 3, 4):
        band = border_band(instances, width)
        assert band.sum(axis=1).tolist() == [width] * 10
    assert not border_band(np.ones((5, 5), np.uint8), 3).any()  # the image edge is no boundary


def test_every_class_appears_in_a_moderate_sample():
    present = Counter(obj.cls for scene in scenes(80) for obj in scene.objects)
    assert set(present) == set(range(1, len(SYNTH_CLASSES)))


def test_partner_classes_co_occur_more_than_others():
    pairs, singles = Counter(), Counter()
    for scene in scenes(200):
        present = sorted({SYNTH_CLASSES[o.cls] for o in scene.objects})
        singles.update(present)
        pairs.update(itertools.combinations(present, 2))
    for a, b in [("cat", "dog"), ("fox", "gnu")]:
        assert PARTNERS[a] == b
        assert pairs[(a, b)] / singles[a] > 0.35  # like horse -> person in VOC
    assert max(pairs[p] for p in pairs if not set(p) <= {"cat", "dog"} and not set(p) <= {"fox", "gnu"}) \
        < min(pairs[("cat", "dog")], pairs[("fox", "gnu")]) / 2


def test_discriminative_part_is_small_and_visible():
    visible_fractions = []
    for scene in scenes(40):
        for k, obj in enumerate(scene.objects, start=1):
            visible = scene.instances == k
            assert 0.19 <= obj.part.sum() / obj.body.sum() <= 0.31  # part_min..part_max of the whole body
            assert (obj.part <= visible).all()  # never hidden by a later object
            visible_fractions.append(obj.part.sum() / visible.sum())
    assert 0.20 <= np.median(visible_fractions) <= 0.32 and max(visible_fractions) < 0.55


def test_parts_differ_by_class_far_more_than_bodies():
    """Mean head colour separates classes far more than mean body colour does (bodies carry a weak hint)."""
    heads, bodies = {}, {}
    for scene in scenes(120):
        for k, obj in enumerate(scene.objects, start=1):
            body_only = (scene.instances == k) & ~obj.part
            heads.setdefault(obj.cls, []).append(scene.image[obj.part].mean(0))
            bodies.setdefault(obj.cls, []).append(scene.image[body_only].mean(0))

    def spread(groups):  # spread of the class means relative to the spread within classes
        means = np.array([np.mean(v, 0) for v in groups.values()])
        within = np.mean([np.std(v, 0).mean() for v in groups.values()])
        return means.std(0).mean() / within

    assert spread(heads) > 3 * spread(bodies)


def test_objects_are_more_saturated_than_background():
    def saturation(pixels):
        return (pixels.max(1).astype(float) - pixels.min(1)) / np.maximum(pixels.max(1), 1)

    for scene in scenes(20):
        objects = scene.image[(scene.mask > 0) & (scene.mask != IGNORE)]
        background = scene.image[scene.mask == 0]
        assert np.median(saturation(objects)) > np.median(saturation(background)) + 0.15
        assert background.std() > 5  # not a flat colour


def test_read_back_masks_match_rendered_masks_through_png(tmp_path):
    root = write_dataset(tmp_path / "synth", TINY, progress=False)
    mask = read_label_png(root / "SegmentationClass" / "val_00002.png", len(SYNTH_CLASSES))
    np.testing.assert_array_equal(mask, render_image(TINY, "val", 2)[1])


# ----------------------------------------------------------------------------- number of classes

def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


# Computed before ``SynthConfig.classes`` existed: the default 7-class output must not change (the demo's
# measured numbers depend on it). Hashes of the raw rendered arrays (no JPEG/PNG encoder involved).
PINNED = {
    ("train", 3): ("0badb8feacd4ea57919337a1989e029de00ff2266256f3339bc91b7a814fb962",
                   "e2abbc521a159a362feaab657078e7ff670417191382c88d4691e5a2337cdf6b"),
    ("val", 1): ("0cfbe1bbb805e5d91a8cf2fad06a1873e5ed9d4cfb658966ff41a9798235892d",
                 "f7aebfdee151b15eda85f8c8718e7a158ef04254e60a28c37cd09f63d91c2acc"),
}


@pytest.mark.parametrize("split, index", sorted(PINNED))
def test_default_seven_class_scenes_are_unchanged(split, index):
    image, mask = render_image(SynthConfig(size=64), split, index)
    assert (sha256(image), sha256(mask)) == PINNED[(split, index)]
    assert render_image(SynthConfig(size=64, classes=7), split, index)[1].tobytes() == mask.tobytes()


def test_the_first_seven_classes_keep_their_names_and_heads():
    assert SYNTH_CLASSES == ["background", "ant", "bee", "cat", "dog", "eel", "fox", "gnu"] == class_names()
    assert PART_HUES[:8] == [None, 80.0, 120.0, 165.0, 205.0, 245.0, 285.0, 325.0]
    assert PART_STRIPE_ANGLES[:8] == [None, 0.0, 26.0, 51.0, 77.0, 103.0, 129.0, 154.0]
    assert PART_CROSSED[1:8] == [False] * 7


def test_every_class_has_a_unique_name_and_a_unique_head():
    assert len(CLASS_NAMES) == MAX_CLASSES + 1 >= 21 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    heads = {(PART_HUES[c], PART_STRIPE_ANGLES[c], PART_CROSSED[c]) for c in range(1, MAX_CLASSES + 1)}
    assert len(heads) == MAX_CLASSES
    assert all(0 <= PART_STRIPE_ANGLES[c] < 180 for c in range(1, MAX_CLASSES + 1))
    for c in range(1, MAX_CLASSES + 1):  # body hues are 15..45 degrees; head hues vary by +-6
        assert min(abs((PART_HUES[c] - h + 180) % 360 - 180) for h in (15, 45)) >= 24


@pytest.mark.parametrize("classes", [1, 3, 15, 20, MAX_CLASSES])
def test_n_class_scenes_only_hold_class_ids_up_to_n(classes):
    cfg = SynthConfig(size=48, classes=classes)
    seen = set()
    for i in range(30):
        scene = render_scene(cfg, "train", i)
        ids = set(np.unique(scene.mask).tolist())
        assert ids <= set(range(classes + 1)) | {IGNORE}
        seen |= ids - {0, IGNORE}
        assert all(1 <= obj.cls <= classes for obj in scene.objects)
    assert max(seen) <= classes


@pytest.mark.parametrize("classes, n_scenes", [(3, 30), (15, 80), (20, 120), (MAX_CLASSES, 150)])
def test_every_one_of_n_classes_appears_in_a_modest_sample(classes, n_scenes):
    present = Counter(obj.cls for i in range(n_scenes)
                      for obj in render_scene(SynthConfig(size=48, classes=classes), "train", i).objects)
    assert set(present) == set(range(1, classes + 1))


def test_pick_classes_keeps_partners_within_the_classes():
    rng = np.random.default_rng(0)
    for _ in range(300):  # 3 classes: cat's partner (dog, 4) is not among them
        picked = pick_classes(3, 1.0, rng, 3)
        assert set(picked) <= {1, 2, 3}
    partners = Counter()
    for _ in range(600):  # 15 classes: jay (10) and owl (15) are partners, like cat and dog
        picked = pick_classes(2, 1.0, rng, 15)
        assert set(picked) <= set(range(1, 16))
        partners[tuple(sorted(picked))] += 1
    assert PARTNERS["jay"] == "owl" and partners[(10, 15)] > 10 and partners[(3, 4)] > 10
    others = [n for pair, n in partners.items() if pair not in {(3, 4), (6, 7), (10, 15)}]
    assert min(partners[(10, 15)], partners[(3, 4)]) > 2 * max(others)


@pytest.mark.parametrize("value", [0, MAX_CLASSES + 1, -3, 2.5, True, "7", None])
def test_bad_class_count_names_the_field_and_the_range(tmp_path, value):
    expected = rf"classes={value!r} is not allowed; expected an integer in 1\.\.{MAX_CLASSES}"
    with pytest.raises(InputError, match=expected):
        write_dataset(tmp_path / "synth", replace(TINY, classes=value), progress=False)
    assert not (tmp_path / "synth").exists()
    with pytest.raises(InputError, match=rf"classes={value!r} is not allowed"):
        class_names(value)


def test_n_class_dataset_lists_its_classes(tmp_path):
    root = write_dataset(tmp_path / "synth", replace(TINY, classes=12), progress=False)
    assert (root / "class_names.txt").read_text().split() == CLASS_NAMES[:13]
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["config"]["classes"] == 12 and list(meta["images_per_class"]["train"]) == CLASS_NAMES[1:13]
    assert VOCSegmentation(root, "train").num_classes == 13 and VOCSegmentation(root, "val").check() == []


def test_a_dataset_written_before_the_classes_field_counts_as_7_classes(tmp_path):
    root = write_dataset(tmp_path / "synth", TINY, progress=False)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["config"]["classes"]  # as written before SynthConfig had it
    (root / "dataset.json").write_text(json.dumps(meta))
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert write_dataset(root, TINY, progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    with pytest.raises(InputError, match="another config.*classes: 7 there, 9 asked"):
        write_dataset(root, replace(TINY, classes=9), progress=False)


def test_cli_synth_takes_the_class_count(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--quiet", "n_train=2", "n_val=1", "size=32", "classes=4"]) == 0
    assert (out / "class_names.txt").read_text().split() == CLASS_NAMES[:5]
