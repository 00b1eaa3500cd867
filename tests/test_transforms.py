"""Image and label transforms: where a cell of the 41 x 41 output grid sits on a 321 x 321 input."""

from __future__ import annotations

import numpy as np
import torch

from dsrg.method import transforms as T
from dsrg.method.crf import _resize_images
from dsrg.method.losses import pixel_loss


def test_labels_subsampled_to_the_output_grid_take_pixel_8i_of_a_321_crop():
    labels = torch.randint(0, 21, (2, 321, 321), dtype=torch.uint8)
    labels[0, 8, 16] = T.IGNORE
    out = T.subsample_labels(labels.long(), (41, 41))
    assert out.shape == (2, 41, 41)
    assert torch.equal(out, labels[:, ::8, ::8].long())
    assert out[0, 1, 2] == T.IGNORE


def test_a_label_map_resized_to_the_grid_takes_the_pixel_under_each_cell_corners_aligned():
    """A 375 x 500 image on the 41 x 41 grid: cell i sits on row 9.35 i and column 12.475 i, the last on the last
    pixel (a floor of i H / h would take row 365 for the last cell, a cell too high)."""
    rows = np.repeat((np.arange(375) // 5).astype(np.uint8)[:, None], 500, axis=1)
    out = T.resize_label(rows, (41, 41))
    assert out.shape == (41, 41) and out.dtype == np.uint8
    assert [out[i, 0] for i in (0, 1, 20, 40)] == [0, 9 // 5, 187 // 5, 374 // 5]
    cols = np.repeat((np.arange(500) // 5).astype(np.uint8)[None], 375, axis=0)
    assert list(T.resize_label(cols, (41, 41))[0, [0, 40]]) == [0, 499 // 5]


def test_the_training_crf_sees_the_pixel_under_each_cell():
    images = torch.randint(0, 256, (1, 3, 321, 321), dtype=torch.uint8)
    small = _resize_images(images, (41, 41))               # (B, h, w, 3)
    assert torch.equal(small[0].permute(2, 0, 1), images[0, :, ::8, ::8])


def test_a_crop_larger_than_the_image_pads_it_with_the_mean_colour_and_the_label_with_ignore():
    image = np.full((2, 3, 3), 7, np.uint8)
    label = np.ones((2, 3), np.uint8)
    crop_image, crop_label = T.random_crop(image, label, 4, np.random.default_rng(0))
    assert crop_image.shape == (4, 4, 3) and crop_label.shape == (4, 4)
    padded = crop_label == T.IGNORE
    assert padded.sum() == 16 - 6
    assert (crop_image[padded] == T.PAD_RGB).all() and (crop_image[~padded] == 7).all()


def test_the_retraining_loss_reads_the_labels_under_the_grid_cells_or_upsamples_the_logits():
    logits = torch.zeros(1, 2, 3, 3)
    logits[0, 1] = 10.0                                    # class 1 everywhere, surely
    labels = torch.ones(1, 17, 17, dtype=torch.long)       # cells sit on pixels 0, 8, 16
    labels[0, 1:8] = 0                                     # rows between the cells: class 0
    labels[0, :, 16] = T.IGNORE                            # the last column of cells: ignored
    assert pixel_loss(logits, labels, "output") < 1e-3     # the 6 counted cells all read class 1
    assert pixel_loss(logits, labels, "input") > 3.0       # 7 of 16 labelled rows are class 0: ~10 x 7/16
