"""Dense CRF: it sharpens a noisy two-region map along the image's edge; the exact batched backend solves
pydensecrf's model (its kernels, normalisation and update), batched, in float32 and float64."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dsrg.errors import InputError
from dsrg.method.crf import (EXACT_MAX_POSITIONS, TRAIN_PARAMS, CRFParams, crf_test, crf_train, dense_crf,
                             refine_for_growing, resolve_backend, unary_energy)
from dsrg.method.crf_exact import (_rounded_inputs_float32_sums, _squared_distances, bilateral_kernel, crf_kernels,
                                   pairwise_matrix)
from dsrg.method.mean_field import mean_field
from dsrg.run.workers import mapper, process_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from crf import graph_time, make_scenes  # noqa: E402  (benchmarks/crf.py)


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


@pytest.mark.parametrize("run", [lambda p, i: crf_test(p, i),
                                 lambda p, i: crf_train(p, i, unary="logprob"),
                                 lambda p, i: refine_for_growing(p, i),
                                 lambda p, i: crf_train(p, i, unary="logprob", backend="exact"),
                                 lambda p, i: refine_for_growing(p, i, backend="exact")],
                         ids=["test_time", "train_time_logprob", "refine_for_growing", "exact_logprob",
                              "exact_refine_for_growing"])
def test_crf_sharpens_a_noisy_two_region_map(run):
    probs, images, truth = two_region_case()
    before = (probs.argmax(1)[0] != truth).float().mean().item()
    q = run(probs, images)
    after = (q.argmax(1)[0] != truth).float().mean().item()
    assert before > 0.1                                  # the noise really flips pixels
    assert after < before / 4                            # the CRF removes most of them
    assert torch.allclose(q.sum(1), torch.ones(1, *q.shape[2:]), atol=1e-4)


@pytest.mark.parametrize("backend", ["pydensecrf", "lattice"])
def test_the_test_time_crf_overturns_an_isolated_confident_patch_as_the_pipeline_does(backend):
    """A flat grey image, class 0 at 0.9 everywhere but a 2 x 2 patch where the network is all but sure of
    class 1 (p0 = 1e-8). Floored at PROB_FLOOR = 1e-5 (unary at most 11.5) the CRF overturns the patch, as
    the labels dsrg.run.predict.predict writes; floored at 1e-12 (unary 27.6) it would keep it."""
    from dsrg.method.inference import crf_label, lattice_labels

    image = np.full((20, 30, 3), 40, np.uint8)
    p0 = np.full((20, 30), 0.9)
    p0[8:10, 12:14] = 1e-8
    probs = torch.from_numpy(np.stack([p0, 1 - p0]).astype(np.float32))[None]
    images = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
    params = CRFParams(scale=1.0)
    if backend == "pydensecrf":
        written = crf_label(probs[0].numpy(), image, params)
    else:
        [(_, written)] = list(lattice_labels([("x", image, probs[0])], params, torch.device("cpu"), 0))
    labels = crf_test(probs, images, backend=backend).argmax(1)[0].numpy()
    assert np.array_equal(labels, written) and (labels == 0).all()
    kept = dense_crf(probs, images, params, backend=backend, floor=1e-12).argmax(1)[0].numpy()
    assert (kept[8:10, 12:14] == 1).all()


def test_refinement_is_clipped_and_renormalised():
    probs, images, _ = two_region_case()
    q = refine_for_growing(probs, images)
    assert q.min().item() >= 1e-4 / (1 + 2e-4) - 1e-7
    torch.testing.assert_close(q.sum(1), torch.ones(1, *q.shape[2:]), rtol=0, atol=1e-6)


def test_images_are_resized_to_the_probability_grid():
    probs, images, truth = two_region_case(h=12, w=12)
    big = torch.nn.functional.interpolate(images.float(), size=(48, 48), mode="nearest").to(torch.uint8)
    q = crf_train(probs, big, unary="logprob")
    assert q.shape == probs.shape
    assert (q.argmax(1)[0] != truth).float().mean().item() < 0.1


def test_a_batch_in_a_process_pool_equals_one_by_one():
    cases = [two_region_case(seed=s) for s in range(3)]
    probs = torch.cat([c[0] for c in cases]); images = torch.cat([c[1] for c in cases])
    with mapper(2, preload=["dsrg.method.crf"]) as pool_map:
        pooled = crf_test(probs, images, pool_map)
    single = torch.cat([crf_test(c[0], c[1]) for c in cases])
    assert torch.allclose(pooled, single)


def test_once_cuda_is_initialised_the_pool_workers_come_from_a_fork_server(monkeypatch):
    """Forking a process that holds a CUDA context can deadlock the child, so the pydensecrf workers are
    started by a fork server then, with the same results."""
    assert process_pool(1)._mp_context.get_start_method() != "forkserver"   # the default (fork on Linux)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert process_pool(1)._mp_context.get_start_method() == "forkserver"
    cases = [two_region_case(seed=s) for s in range(2)]
    probs = torch.cat([c[0] for c in cases]); images = torch.cat([c[1] for c in cases])
    with mapper(2, preload=["dsrg.method.crf"]) as pool_map:
        assert torch.allclose(crf_test(probs, images, pool_map), crf_test(probs, images))


def test_bad_crf_inputs_are_named():
    probs, images, _ = two_region_case()
    with pytest.raises(InputError, match="images: expected uint8"):
        crf_test(probs, images.float())
    with pytest.raises(InputError, match="unary: expected one of"):
        crf_train(probs, images, unary="energy")
    with pytest.raises(InputError, match="images: expected shape"):
        crf_test(probs, images[:, :1])


def test_the_unary_energy_is_minus_p_or_minus_log_p_and_nothing_else():
    p = torch.tensor([1.0, 0.5])
    assert torch.equal(unary_energy(p, "prob"), -p)
    assert torch.allclose(unary_energy(p, "logprob"), torch.tensor([0.0, math.log(2)]))
    with pytest.raises(InputError, match="unary: expected one of prob, logprob, got 'logprb'"):
        unary_energy(p, "logprb")                            # a typo was taken for "prob"


# ---- the exact batched CRF (backend="exact") against pydensecrf's permutohedral lattice ----


def scene(b, c, size, sharp, seed):
    """The CRF benchmark's scenes (``benchmarks/crf.py``: ``make_scenes``): ``b`` images with a colour
    gradient and 3 shaded discs, probabilities favouring each disc's class by ``sharp`` over N(0, 1)
    noise. float32 ``(b, c, s, s)``, uint8 ``(b, 3, s, s)``."""
    images, probs = make_scenes(b, c, size, margin=sharp, seed=seed)
    return probs, images


# Per regime: the logit margin of the scene, and the bounds asserted on the per-position difference
# d = max over classes |Q_exact - Q_pydensecrf| (mean, fraction of positions with d > 0.01, 99th
# percentile, argmax agreement). Measured, worst over seeds 0-9, both unaries, 17 x 17 and 41 x 41:
# confident: mean 1.2e-3, fraction 0.22 %, 99th percentile 1.5e-4, argmax agreement 99.88 %;
# weak:      mean 5.8e-3, fraction 1.04 %, 99th percentile 7.0e-3, argmax agreement 98.27 %.
REGIMES = {"confident": ({"prob": 4.0, "logprob": 2.5}, 3e-3, 5e-3, 1e-3, 0.995),
           "weak": ({"prob": 1.0, "logprob": 1.0}, 1.5e-2, 3e-2, 2e-2, 0.97)}


@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("unary", ["prob", "logprob"])
@pytest.mark.parametrize("size", [17, 41])
def test_exact_crf_agrees_with_pydensecrf(size, unary, regime):
    """The exact CRF and pydensecrf solve the same model; they differ only by the lattice's approximation
    of the Gaussian kernels (entries of the normalised filter differ by up to ~15 % relative, RMS ~1e-3;
    the best-fitting bandwidth of the lattice is the nominal one within 5 %).

    Tolerance. On 99 % of the positions the marginals agree to 1.5e-4 (confident maps) or 7e-3 (weak
    maps, logit margin 1), and the argmax agrees on >= 98 % (bounds above). The MAXIMUM difference,
    however, is not small: mean field with Potts weight 10 amplifies small kernel differences at
    positions near a tie (a boundary pixel whose unary is split between classes), where one backend
    settles on one label and the other on another. Measured max |difference| over seeds 0-9: 0.0016
    (17 x 17, prob, confident), but up to 0.84 (41 x 41) and 0.999 (17 x 17) at single positions of other
    scenes. pydensecrf is just as sensitive to itself: a +-1 grey-level change of the image moves its
    own marginals by up to 0.99 on weak scenes. So we assert bounds on the distribution of the
    difference, not on its maximum, and print the maximum (``pytest -s``)."""
    margins, mean_tol, frac_tol, q99_tol, agree_tol = REGIMES[regime]
    probs, images = scene(3, 21, size, margins[unary], seed=size)
    lattice = crf_train(probs, images, unary=unary).double()
    exact = crf_train(probs.double(), images, unary=unary, backend="exact")
    d = (exact - lattice).abs().amax(dim=1).flatten()
    print(f"{size}x{size} {unary} {regime}: max {d.max():.4f} mean {d.mean():.1e} q99 {d.quantile(0.99):.1e}")
    assert d.mean().item() <= mean_tol
    assert (d > 0.01).float().mean().item() <= frac_tol
    assert d.quantile(0.99).item() <= q99_tol
    assert (exact.argmax(1) == lattice.argmax(1)).float().mean().item() >= agree_tol


def test_exact_pairwise_matrix_is_the_documented_formula():
    """The filter equals ``sum_k w_k D_k K_k D_k`` written out with explicit loops on a 3 x 4 image."""
    g = np.random.default_rng(0)
    rgb = g.integers(0, 256, (1, 3, 4, 3)).astype(np.uint8)
    p = CRFParams(scale=2.0)
    a = pairwise_matrix(torch.from_numpy(rgb), p, torch.float64)[0].numpy()
    pos = [(y, x) for y in range(3) for x in range(4)]
    col = rgb[0].reshape(12, 3).astype(np.float64)

    def normalised(k):
        n = 1 / np.sqrt(k.sum(1))
        return n[:, None] * k * n[None]

    kb = np.array([[np.exp(-((pi[0] - pj[0]) ** 2 + (pi[1] - pj[1]) ** 2) / (2 * (p.theta_alpha / p.scale) ** 2)
                           - ((col[i] - col[j]) ** 2).sum() / (2 * p.theta_beta ** 2))
                    for j, pj in enumerate(pos)] for i, pi in enumerate(pos)])
    kg = np.array([[np.exp(-((pi[0] - pj[0]) ** 2 + (pi[1] - pj[1]) ** 2) / (2 * (p.theta_gamma / p.scale) ** 2))
                    for pj in pos] for pi in pos])
    want = p.bilateral_weight * normalised(kb) + p.gaussian_weight * normalised(kg)
    np.testing.assert_allclose(a, want, rtol=1e-12, atol=1e-14)


def test_colour_distances_are_exact_integers_from_factors_that_every_matmul_precision_holds():
    """Black, white, pure and odd colours: ``a @ b`` is ``|c_i - c_j|^2`` exactly, and bfloat16 (8 significant
    bits, fewer than TF32's 11) holds every factor without rounding."""
    rgb = torch.tensor([[[[0, 0, 0], [255, 255, 255], [255, 0, 0], [1, 128, 254], [37, 200, 99]]]], dtype=torch.uint8)
    a, b = _squared_distances(rgb, torch.float32)
    col = rgb.reshape(5, 3).long()
    want = (col[:, None] - col[None]).square().sum(-1)
    assert torch.equal((a @ b)[0].long(), want)
    assert want[0, 1] == 3 * 255 ** 2
    assert torch.equal(a.bfloat16().float(), a) and torch.equal(b.bfloat16().float(), b)


def test_the_float32_filter_is_the_float64_one_to_float32_rounding():
    """At the paper's grid and scale the colour distances reach 3 x 255^2 and cancel against the squared norms:
    computed as exact integers before any scaling, float32 keeps the filter to a few ulps of float64 (a
    matmul that scales its terms before summing them loses two more digits)."""
    _, images = scene(2, 21, 41, 2.5, seed=6)
    rgb = images.permute(0, 2, 3, 1).contiguous()
    a32 = pairwise_matrix(rgb, CRFParams(scale=12.0), torch.float32).double()
    a64 = pairwise_matrix(rgb, CRFParams(scale=12.0), torch.float64)
    assert (a32 - a64).abs().max().item() <= 1e-5


def test_kernels_and_mean_field_ignore_autocast():
    probs, images = scene(2, 21, 17, 2.5, seed=5)
    rgb = images.permute(0, 2, 3, 1).contiguous()
    energy = -probs.reshape(2, 21, -1)
    plain = mean_field(energy, crf_kernels(rgb, CRFParams(scale=12.0)), 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = mean_field(energy, crf_kernels(rgb, CRFParams(scale=12.0)), 3)
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)


def test_factored_kernels_filter_as_the_dense_matrix():
    """The backend's kernels (bilateral dense, Gaussian separable, normalisation on the marginals) give the
    mean field of the written-out filter ``sum_k w_k D_k K_k D_k``."""
    probs, images = scene(3, 5, 15, 2.0, seed=4)
    rgb = torch.nn.functional.interpolate(images.float(), size=(15, 15), mode="bilinear", align_corners=True)
    rgb = rgb.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    energy = -probs.double().reshape(3, 5, -1)
    p = CRFParams(scale=2.0)
    factored = mean_field(energy, crf_kernels(rgb, p, torch.float64), 5)
    dense = mean_field(energy, pairwise_matrix(rgb, p, torch.float64), 5)
    torch.testing.assert_close(factored, dense, rtol=0, atol=1e-13)


@pytest.mark.parametrize("unary", ["prob", "logprob"])
def test_exact_crf_without_pairwise_terms_is_the_softmax_of_the_negative_unary(unary):
    probs, images = scene(2, 5, 9, 2.0, seed=1)
    p = CRFParams(scale=12.0, bilateral_weight=0.0, gaussian_weight=0.0)
    q = dense_crf(probs.double(), images, p, unary, backend="exact")
    energy = -probs.double().clamp(min=1e-12).log() if unary == "logprob" else -probs.double()
    torch.testing.assert_close(q, (-energy).softmax(1), rtol=0, atol=1e-12)
    if unary == "logprob":                                      # softmax(log p) = p
        torch.testing.assert_close(q, probs.double(), rtol=0, atol=1e-7)


def test_exact_crf_batched_equals_one_image_at_a_time():
    probs, images = scene(4, 21, 17, 2.0, seed=2)
    batched = crf_train(probs, images, backend="exact")
    single = torch.cat([crf_train(probs[i:i + 1], images[i:i + 1], backend="exact") for i in range(4)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)


def test_exact_crf_in_float32_and_float64():
    probs, images = scene(2, 21, 17, 2.5, seed=3)
    q32 = crf_train(probs, images, unary="logprob", backend="exact")
    q64 = crf_train(probs.double(), images, unary="logprob", backend="exact")
    assert q32.dtype == torch.float32 and q64.dtype == torch.float64
    torch.testing.assert_close(q32.double(), q64, rtol=0, atol=1e-4)
    torch.testing.assert_close(q64.sum(1), torch.ones_like(q64.sum(1)), rtol=0, atol=1e-12)
    half = crf_train(probs.half(), images, unary="logprob", backend="exact")     # computed in float32
    assert half.dtype == torch.float16


def test_exact_crf_ignores_autocast():
    probs, images = scene(2, 21, 17, 2.5, seed=5)
    plain = crf_train(probs, images, backend="exact")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = crf_train(probs, images, backend="exact")
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain, rtol=0, atol=0)


def test_exact_crf_resizes_images_and_refines_for_growing():
    probs, images, truth = two_region_case(h=12, w=12)
    big = torch.nn.functional.interpolate(images.float(), size=(48, 48), mode="nearest").to(torch.uint8)
    q = crf_train(probs, big, unary="logprob", backend="exact")
    assert q.shape == probs.shape and (q.argmax(1)[0] != truth).float().mean().item() < 0.1
    r = refine_for_growing(probs, images, backend="exact")
    assert r.min().item() >= 1e-4 / (1 + 2e-4) - 1e-7
    torch.testing.assert_close(r.sum(1), torch.ones(1, 12, 12), rtol=0, atol=1e-5)


def test_one_mean_field_step_by_hand():
    """Two positions, two classes, U = -log p with p = (0.8, 0.2) and (0.3, 0.7), A = [[0, 1], [1, 0]]:
    Q0 = softmax(-U) = p, and one step gives Q1[u] = softmax(-U[u] + sum_v A[u, v] Q0[v])."""
    p = torch.tensor([[0.8, 0.3], [0.2, 0.7]], dtype=torch.float64)           # (C, N)
    energy = -p.log().unsqueeze(0)                                             # (1, C, N)
    a = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(mean_field(energy, a, 0)[0], p)
    # position 0 receives position 1's marginals (0.3, 0.7) and the reverse
    q0 = torch.tensor([0.8 * math.exp(0.3), 0.2 * math.exp(0.7)], dtype=torch.float64)
    q1 = torch.tensor([0.3 * math.exp(0.8), 0.7 * math.exp(0.2)], dtype=torch.float64)
    by_hand = torch.stack([q0 / q0.sum(), q1 / q1.sum()], dim=1)
    torch.testing.assert_close(mean_field(energy, a, 1)[0], by_hand)


def test_mean_field_of_a_batch_equals_one_image_at_a_time():
    energy = torch.randn(3, 4, 10, dtype=torch.float64)
    a = torch.rand(3, 10, 10, dtype=torch.float64); a = a + a.transpose(1, 2)
    one_by_one = torch.cat([mean_field(energy[i:i + 1], a[i], 5) for i in range(3)])
    torch.testing.assert_close(mean_field(energy, a, 5), one_by_one, rtol=0, atol=1e-12)
    shared = torch.cat([mean_field(energy[i:i + 1], a[0], 5) for i in range(3)])
    torch.testing.assert_close(mean_field(energy, a[0], 5), shared, rtol=0, atol=1e-12)


def test_backend_is_validated_and_auto_keeps_pydensecrf_on_the_cpu():
    probs, images, _ = two_region_case()
    with pytest.raises(InputError, match="backend: expected one of"):
        crf_train(probs, images, backend="permuto")
    assert resolve_backend("auto", probs) == "pydensecrf"
    assert torch.equal(crf_train(probs, images, backend="auto"), crf_train(probs, images))
    side = int(EXACT_MAX_POSITIONS ** 0.5) + 1
    big = torch.full((1, 2, side, side), 0.5)
    with pytest.raises(InputError, match="backend='exact' holds dense"):
        resolve_backend("exact", big)
    with pytest.raises(InputError, match="backend='exact_bf16' holds dense"):
        resolve_backend("exact_bf16", big)


# exact_bf16 against exact on these scenes (41 x 41, seed 41, 3 images), per-position mean of max_c |dQ|:
# 3.3e-8 to 1.2e-5 (largest: weak maps, unary prob), 17 to 170 times less than pydensecrf's; argmax agreement
# 99.96 % (weak, prob) to 100 %.
@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("unary", ["prob", "logprob"])
def test_the_bf16_appearance_kernel_moves_the_marginals_far_less_than_the_lattice_does(unary, regime):
    """exact_bf16 rounds the appearance kernel and the marginals it filters to bfloat16 for the matmul: its
    marginals stay within rounding of the exact ones, ten times closer than pydensecrf's lattice is."""
    margins = REGIMES[regime][0]
    probs, images = scene(3, 21, 41, margins[unary], seed=41)
    exact = crf_train(probs, images, unary=unary, backend="exact")
    bf16 = crf_train(probs, images, unary=unary, backend="exact_bf16")
    lattice = crf_train(probs, images, unary=unary)
    assert bf16.dtype == torch.float32
    to_exact = (bf16 - exact).abs().amax(dim=1).mean().item()
    assert to_exact <= 3e-5
    assert to_exact <= (lattice - exact).abs().amax(dim=1).mean().item() / 10
    assert (bf16.argmax(1) == exact.argmax(1)).float().mean().item() >= 0.999


def test_the_bf16_appearance_kernel_sums_products_of_rounded_numbers_in_float32():
    """The filter of :func:`bilateral_kernel` with ``matmul_dtype=bfloat16``, against the same sums in float64
    of the float32 kernel's entries and of the marginals, each rounded to bfloat16 first."""
    _, images = scene(2, 3, 9, 2.0, seed=0)
    rgb = images.permute(0, 2, 3, 1).contiguous()
    q = torch.rand(2, 81, 3, generator=torch.Generator().manual_seed(0))
    k32 = bilateral_kernel(rgb, TRAIN_PARAMS)
    k16 = bilateral_kernel(rgb, TRAIN_PARAMS, matmul_dtype=torch.bfloat16)
    assert torch.equal(k16.norm, k32.norm), "the normalisation is the float32 kernel's"
    dense = k32.apply(torch.eye(81).expand(2, 81, 81).contiguous())         # the float32 entries
    rounded = torch.bmm(dense.bfloat16().double(), q.bfloat16().double())
    assert not torch.equal(rounded, torch.bmm(dense.double(), q.double())), "bfloat16 rounds these entries"
    torch.testing.assert_close(k16.apply(q).double(), rounded, rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_exact_crf_on_cuda_equals_the_cpu_and_auto_selects_it():
    probs, images = scene(4, 21, 41, 2.5, seed=4)
    cpu = crf_train(probs.double(), images, backend="exact")
    cuda = crf_train(probs.double().cuda(), images.cuda(), backend="auto")
    assert cuda.is_cuda and resolve_backend("auto", probs.cuda()) == "exact"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-9)
    assert _rounded_inputs_float32_sums(torch.device("cuda", 0), torch.bfloat16), "bf16 in, float32 out on CUDA"
    bf16 = crf_train(probs.cuda(), images.cuda(), backend="exact_bf16")
    assert (bf16.cpu() - cpu).abs().amax(dim=1).mean().item() <= 3e-5, "bf16 on CUDA: within rounding of exact"
    emulated = crf_train(probs, images, backend="exact_bf16")               # the CPU's float32 sums
    torch.testing.assert_close(bf16.cpu(), emulated, rtol=0, atol=1e-5)


def test_the_cuda_graph_timing_of_the_crf_benchmark_is_left_out_off_cuda():
    assert graph_time(lambda: torch.zeros(1), 3, torch.device("cpu")) is None
