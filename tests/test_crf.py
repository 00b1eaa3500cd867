"""Dense CRF: it sharpens a noisy two-region map along the image's edge."""

import numpy as np
import pytest
import torch

from dsrg.crf import crf_test, crf_train, refine_for_growing
from dsrg.io import InputError


def two_region_case(h=24, w=24, noise=0.25, seed=0):
    """Left half dark, right half bright; probabilities right on average but noisy per pixel."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8); img[:, w // 2:] = 220
    truth = np.zeros((h, w), np.int64); truth[:, w // 2:] = 1
    p1 = np.where(truth == 1, 0.65, 0.35) + rng.normal(0, noise, (h, w))
    p1 = np.clip(p1, 0.02, 0.98)
    probs = torch.from_numpy(np.stack([1 - p1, p1]).astype(np.float32))[None]
    images = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    return probs, images, torch.from_numpy(truth)


@pytest.mark.parametrize("run", [lambda p, i: crf_test(p, i, workers=1),
                                 lambda p, i: crf_train(p, i, unary="logprob"),
                                 lambda p, i: refine_for_growing(p, i)],
                         ids=["test_time", "train_time_logprob", "refine_for_growing"])
def test_crf_sharpens_a_noisy_two_region_map(run):
    probs, images, truth = two_region_case()
    before = (probs.argmax(1)[0] != truth).float().mean().item()
    q = run(probs, images)
    after = (q.argmax(1)[0] != truth).float().mean().item()
    assert before > 0.1                                  # the noise really flips pixels
    assert after < before / 4                            # the CRF removes most of them
    assert torch.allclose(q.sum(1), torch.ones(1, *q.shape[2:]), atol=1e-4)


def test_refinement_is_clipped_and_renormalised():
    probs, images, _ = two_region_case()
    q = refine_for_growing(probs, images)
    assert q.min().item() >= 1e-4 / (1 + 2e-4) - 1e-7


def test_images_are_resized_to_the_probability_grid():
    probs, images, truth = two_region_case(h=12, w=12)
    big = torch.nn.functional.interpolate(images.float(), size=(48, 48), mode="nearest").to(torch.uint8)
    q = crf_train(probs, big, unary="logprob")
    assert q.shape == probs.shape
    assert (q.argmax(1)[0] != truth).float().mean().item() < 0.1


def test_a_batch_in_a_process_pool_equals_one_by_one():
    cases = [two_region_case(seed=s) for s in range(3)]
    probs = torch.cat([c[0] for c in cases]); images = torch.cat([c[1] for c in cases])
    pooled = crf_test(probs, images, workers=2)
    single = torch.cat([crf_test(c[0], c[1], workers=1) for c in cases])
    assert torch.allclose(pooled, single)


def test_bad_crf_inputs_are_named():
    probs, images, _ = two_region_case()
    with pytest.raises(InputError, match="images: expected uint8"):
        crf_test(probs, images.float())
    with pytest.raises(InputError, match="unary: expected one of"):
        crf_train(probs, images, unary="energy")
    with pytest.raises(InputError, match="images: expected shape"):
        crf_test(probs, images[:, :1])
