"""Tests for dsrg.method.saliency: normalisation, reading precomputed maps, and the built-in methods.

The built-in methods are checked on small synthetic images whose answer is known by construction:
a saturated disc in the middle of a dull background (flat, striped, or noisy).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dsrg.data.saliency import SaliencyFolder, read_saliency_png
from dsrg.method.saliency import normalize
from dsrg.errors import InputError
from dsrg.method.saliency import METHODS, compute_saliency
from dsrg.reproduce.background_seeds import saliency_maps
from dsrg.method.seeds import BACKGROUND_THRESHOLD, background_cues


def disc_image(size: int = 96, background: str = "flat", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8 (size, size, 3), disc bool (size, size))``: a red disc of radius size/5 in the centre."""
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 < (size / 5) ** 2
    image = np.empty((size, size, 3), np.float64)
    image[:] = (110, 115, 105)  # dull grey-green
    if background == "stripes":
        image += 25 * np.sin(2 * np.pi * (xx + 0.5 * yy) / 9.0)[..., None]
    elif background == "noise":
        image += np.random.default_rng(seed).normal(0, 12, image.shape)
    image[disc] = (220, 50, 40)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), disc


# ------------------------------------------------------------------------------------------ normalize

def test_normalize_min_max_known_values():
    out = normalize(np.array([[2, 4], [6, 10]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(normalize(np.array([[-1.0, 0.0, 3.0]])), [[0.0, 0.25, 1.0]])


def test_normalize_constant_map_gives_no_background_cue():
    for value in (0.0, 0.5, 7.0):
        out = normalize(np.full((3, 4), value))
        assert out.dtype == np.float32 and out.shape == (3, 4)
        assert (out == 1.0).all()
        assert not background_cues(out).any()


def test_normalize_rejects_bad_input():
    with pytest.raises(InputError, match="NaN"):
        normalize(np.array([[0.0, np.nan]]))
    with pytest.raises(InputError, match="2-D"):
        normalize(np.zeros((2, 2, 3)))


def test_background_cues_is_strictly_below_threshold():
    sal = np.array([[0.0, 0.059, BACKGROUND_THRESHOLD, 1.0]], np.float32)
    assert background_cues(sal).tolist() == [[True, True, False, False]]


# ------------------------------------------------------------------------------- reading map files

def test_read_8bit_png_round_trip(tmp_path):
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(values).save(tmp_path / "a.png")
    out = read_saliency_png(tmp_path / "a.png", size=(16, 16))
    assert out.dtype == np.float32 and out.shape == (16, 16)
    np.testing.assert_allclose(out, values / 255.0, atol=1e-6)


def test_read_16bit_png_keeps_16_bit_precision(tmp_path):
    values = np.array([[0, 1, 2], [1000, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode.startswith("I")  # really stored as 16 bit
    out = read_saliency_png(tmp_path / "b.png")
    np.testing.assert_allclose(out, values / 65535.0, rtol=1e-6, atol=1e-9)
    assert 0 < out[0, 1] < out[0, 2] < 1e-4


def test_read_rgb_png_uses_luminance(tmp_path):
    grey = np.array([[0, 128], [255, 64]], dtype=np.uint8)
    Image.fromarray(np.repeat(grey[..., None], 3, 2)).save(tmp_path / "c.png")
    np.testing.assert_allclose(read_saliency_png(tmp_path / "c.png"), grey / 255.0, atol=1e-6)


def test_read_size_mismatch_names_file_and_sizes(tmp_path):
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / "d.png")
    with pytest.raises(InputError) as err:
        read_saliency_png(tmp_path / "d.png", size=(5, 6))
    msg = str(err.value)
    assert "d.png" in msg and "(4, 6)" in msg and "(5, 6)" in msg


def test_read_resize_option_resizes_bilinearly(tmp_path):
    ramp = np.tile(np.array([0, 255], np.uint8), (2, 1))  # left 0, right 1
    Image.fromarray(ramp).save(tmp_path / "e.png")
    out = read_saliency_png(tmp_path / "e.png", size=(4, 8), resize=True)
    assert out.shape == (4, 8) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert (np.diff(out[0]) >= 0).all() and out[0, 0] < 0.1 and out[0, -1] > 0.9


def test_read_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="nope.png"):
        read_saliency_png(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"this is not a png")
    with pytest.raises(InputError, match="bad.png"):
        read_saliency_png(tmp_path / "bad.png")


def test_folder_errors_name_the_folder_and_file(tmp_path):
    with pytest.raises(InputError, match="missing_dir"):
        SaliencyFolder(tmp_path / "missing_dir")
    folder = SaliencyFolder(tmp_path)
    with pytest.raises(InputError) as err:
        folder("2007_000032", (4, 4))
    assert "2007_000032" in str(err.value) and str(tmp_path) in str(err.value)


def test_folder_reads_by_id_and_checks_size(tmp_path):
    Image.fromarray(np.array([[0, 51], [102, 255]], np.uint8)).save(tmp_path / "img1.png")
    folder = SaliencyFolder(tmp_path)
    np.testing.assert_allclose(folder("img1", (2, 2)), [[0.0, 0.2], [0.4, 1.0]], atol=1e-6)
    with pytest.raises(InputError, match="img1.png"):
        folder("img1", (3, 2))
    assert SaliencyFolder(tmp_path, resize=True)("img1", (3, 2)).shape == (3, 2)


# ------------------------------------------------------------------------------ built-in methods

@pytest.mark.parametrize("background", ["flat", "stripes", "noise"])
def test_rbd_finds_the_disc_and_cues_only_background(background):
    image, disc = disc_image(96, background)
    sal = compute_saliency(image, "rbd")
    cue = background_cues(sal)
    assert sal[disc].mean() > 0.7
    for corner in (sal[:8, :8], sal[:8, -8:], sal[-8:, :8], sal[-8:, -8:]):
        assert corner.max() < BACKGROUND_THRESHOLD
    assert not (cue & disc).any()  # precision 1: every cue pixel is outside the disc
    assert cue[~disc].mean() > 0.5  # and the cue covers most of the background


def test_rbd_weighs_an_edge_between_adjacent_border_superpixels_once():
    """Three superpixels in a row, all on the border: the adjacent pairs (0, 1), (1, 2) are also border
    pairs. Colour distances 3 (0-1), 4 (1-2), 6 (0-2): the geodesic 0-1 is 3, not 3 + 3."""
    from dsrg.method.saliency import _geodesic_distances

    d_app = np.array([[0.0, 3, 6], [3, 0, 4], [6, 4, 0]])
    d_geo = _geodesic_distances(d_app, np.array([[0, 1], [1, 2]]), np.array([0, 1, 2]))
    np.testing.assert_array_equal(d_geo, [[0, 3, 6], [3, 0, 4], [6, 4, 0]])
    inner = _geodesic_distances(d_app, np.array([[0, 1], [1, 2]]), np.array([0, 2]))   # 1 not on the border
    np.testing.assert_array_equal(inner, d_app)
    apart = _geodesic_distances(d_app, np.array([[0, 1]]), np.array([0]))              # 2 reached by nothing
    assert apart[0, 1] == 3 and np.isinf(apart[0, 2])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_a_normalised_map_of_the_image_shape(method):
    image, _ = disc_image(64, "stripes")
    image = np.ascontiguousarray(image[:40, :56])  # not square
    sal = compute_saliency(image, method)
    assert sal.dtype == np.float32 and sal.shape == (40, 56)
    assert sal.min() == 0.0 and sal.max() == 1.0
    np.testing.assert_array_equal(sal, compute_saliency(image.copy(), method))  # deterministic


@pytest.mark.parametrize("method", METHODS)
def test_flat_image_gives_no_background_cue(method):
    sal = compute_saliency(np.full((20, 30, 3), 90, np.uint8), method)
    assert sal.shape == (20, 30) and (sal == 1.0).all()


def test_compute_saliency_rejects_bad_input():
    with pytest.raises(InputError, match="method"):
        compute_saliency(np.zeros((8, 8, 3), np.uint8), "drfi")
    with pytest.raises(InputError, match="uint8 RGB"):
        compute_saliency(np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="uint8 RGB"):
        compute_saliency(np.zeros((8, 8, 3), np.float32))



# ------------------------------------------------------------------------------------- dispatch

def test_saliency_maps_dispatches_to_folder_or_method(tmp_path):
    images = [disc_image(48, "flat")[0], disc_image(48, "stripes")[0]]
    computed = list(saliency_maps(images, method="rbd"))
    assert len(computed) == 2
    np.testing.assert_array_equal(computed[1], compute_saliency(images[1], "rbd"))

    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(tmp_path / "x.png")
    Image.fromarray(np.eye(48, dtype=np.uint8) * 255).save(tmp_path / "y.png")
    read = list(saliency_maps(images, ["x", "y"], folder=tmp_path))
    assert (read[0] == 1.0).all()  # constant map file: no background cue
    np.testing.assert_allclose(read[1], np.eye(48))

    with pytest.raises(InputError, match="ids"):
        list(saliency_maps(images, folder=tmp_path))
    with pytest.raises(InputError, match="lengths"):
        list(saliency_maps(images, ["x"], folder=tmp_path))


def test_background_cue_quality_counts_cue_pixels_against_ground_truth(tmp_path):
    from dsrg.data.voc import VOCSegmentation, write_label_png
    from dsrg.reproduce.background_seeds import background_cue_quality

    # One 4x4 image; the saliency map marks the left column as the only cue (< 0.06).
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True); (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "JPEGImages" / "a.jpg")
    mask = np.zeros((4, 4), np.uint8); mask[0, 0] = 1; mask[:, 3] = 255    # 1 object pixel, 4 ignored
    write_label_png(root / "SegmentationClass" / "a.png", mask)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n")
    sal = np.ones((4, 4), np.uint8) * 255; sal[:, 0] = 0
    (tmp_path / "sal").mkdir(); Image.fromarray(sal).save(tmp_path / "sal" / "a.png")
    q = background_cue_quality(VOCSegmentation(root, "val"), folder=tmp_path / "sal", progress=False)
    # cue = left column (4 px), one of which is the object: precision 3/4; background = 11 px: recall 3/11.
    assert q["precision"] == pytest.approx(3 / 4) and q["recall"] == pytest.approx(3 / 11)
    assert q["cue_fraction"] == pytest.approx(4 / 12) and q["images"] == 1
