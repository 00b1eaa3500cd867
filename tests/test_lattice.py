"""The permutohedral lattice in torch: it builds pydensecrf's lattice (the same marginals to float rounding
on photographs), approximates the exact dense CRF as closely as pydensecrf does, and filters a batch of
images of different sizes as it filters each alone."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dsrg.errors import InputError
from dsrg.method import lattice as L
from dsrg.method.crf import CRFParams, choose_test_backend, crf_train, dense_crf, pydensecrf_one, unary_energy
from dsrg.method.crf_lattice import lattice_crf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from crf import make_photos, make_scenes  # noqa: E402  (benchmarks/crf.py)

def photo_case(k, h, w, seed=0):
    """Photograph ``k`` of ``benchmarks/crf.py``'s ``make_photos`` at ``h`` x ``w`` with its smooth random
    21-class probabilities."""
    images, probs = make_photos(k + 1, h, w, seed=seed)
    return images[k], probs[k]


def test_each_pixel_has_distinct_vertices_and_weights_that_sum_to_one():
    f = torch.rand(500, 5) * 4
    lattice = L.build(f)
    assert lattice.vertex.shape == (500, 6) and lattice.weight.shape == (500, 6)
    assert torch.all(lattice.weight >= -1e-6)
    torch.testing.assert_close(lattice.weight.sum(1), torch.ones(500))
    assert torch.all(lattice.vertex.sort(1).values.diff(dim=1) > 0)      # d + 1 different vertices
    assert lattice.vertices == int(lattice.vertex.max()) + 1
    assert lattice.alpha == pytest.approx(1 / (1 + 2 ** -5))


def test_its_sparse_matrices_are_csr_as_torch_and_cusparse_take_it():
    """Each row's columns increasing and distinct: torch checks that only on request, cuSPARSE assumes it."""
    lattice = L.build(torch.rand(400, 5) * 4, torch.arange(400) % 2, origin=torch.tensor([1]))
    for m in (lattice.splat, lattice.slice, *lattice.blur):
        with torch.sparse.check_sparse_tensor_invariants():             # raises where a row is out of order
            torch.sparse_csr_tensor(m.crow_indices(), m.col_indices(), m.values(), m.shape)


def test_a_lone_pixel_at_the_origin_by_hand():
    """d = 1, one pixel at 0: it lies on vertex 0 (weight 1; vertex 1 weight 0). Blur along axis 0 (vertex
    k's neighbours k + 1, k - 1): vertex 0 keeps 1, vertex 1 gets 0.5; along axis 1 (k - 1, k + 1): vertex 0
    gets 1 + 0.5 * 0.5 = 1.25. Slice: 1.25 times alpha = 1 / (1 + 1/2): 5/6 (the exact Gaussian gives 1)."""
    lattice = L.build(torch.tensor([[0.0]]))
    assert lattice.vertices == 2 and lattice.weight.tolist() == [[1.0, 0.0]]
    assert L.filter(lattice, torch.tensor([[1.0]])).item() == pytest.approx(5 / 6)
    assert L.filter(lattice, torch.tensor([[3.0]])).item() == pytest.approx(5 / 2)     # linear


def test_far_apart_pixels_do_not_see_each_other_and_groups_never_do():
    f = torch.tensor([[0.0, 0.0], [0.1, 0.0], [50.0, 0.0]])
    v = torch.tensor([[1.0], [0.0], [1.0]])
    out = L.filter(L.build(f), v)
    alone = L.filter(L.build(f[2:]), v[2:])
    torch.testing.assert_close(out[2], alone[0])        # 50 standard deviations away: nothing arrives
    assert out[1].item() > 0                            # a neighbour 0.1 away receives from pixel 0
    same = torch.tensor([[0.0, 0.0], [0.1, 0.0]])
    grouped = L.filter(L.build(same, torch.tensor([0, 1])), torch.tensor([[1.0], [0.0]]))
    assert grouped[1].item() == 0                       # same place, other image: nothing arrives


def test_features_too_wide_to_index_are_named():
    with pytest.raises(InputError, match="lattice: the features span"):
        L.build(torch.tensor([[0.0] * 5, [1e4] * 5]))
    with pytest.raises(InputError, match="features: expected"):
        L.build(torch.zeros(4))


@pytest.mark.parametrize("k,h,w", [(0, 96, 128), (1, 120, 90), (2, 75, 150), (3, 63, 65)])
def test_lattice_crf_is_pydensecrf_on_photographs(k, h, w):
    """The same lattice, the same update: the marginals agree to float rounding, the labels everywhere.
    75 x 150 and 63 x 65 pixels are not multiples of 4: pydensecrf's lattice then also holds the vertices
    around the origin (lattice.build), which dark pixels' blur passes through (1e-3 apart without them)."""
    img, probs = photo_case(k, h, w)
    energy = unary_energy(probs, "logprob", 1e-5)
    ref = pydensecrf_one(energy.numpy(), img, CRFParams())
    q = lattice_crf([energy], [torch.from_numpy(img)], CRFParams())[0].numpy()
    assert np.abs(q - ref).max() < 1e-5
    assert (q.argmax(0) == ref.argmax(0)).all()


@pytest.mark.slow
def test_lattice_crf_is_pydensecrf_on_a_voc_sized_photograph():
    img, probs = photo_case(0, 375, 500)
    energy = unary_energy(probs, "logprob", 1e-5)
    ref = pydensecrf_one(energy.numpy(), img, CRFParams())
    q = lattice_crf([energy], [torch.from_numpy(img)], CRFParams())[0].numpy()
    assert np.abs(q - ref).max() < 1e-5 and (q.argmax(0) == ref.argmax(0)).all()


@pytest.mark.parametrize("unary", ["prob", "logprob"])
def test_lattice_backend_of_dense_crf_equals_pydensecrf_on_the_training_grid(unary):
    images, probs = make_scenes(3, 21, 41, margin=2.5, seed=41)
    lattice = crf_train(probs, images, unary=unary, backend="lattice")
    ref = crf_train(probs, images, unary=unary, backend="pydensecrf")
    torch.testing.assert_close(lattice, ref, rtol=0, atol=1e-5)


def test_lattice_approximates_the_exact_crf_as_pydensecrf_does():
    """Against the exact dense CRF (the model without the lattice's approximation) on tiny scenes: the
    lattice differs from it exactly as pydensecrf does (its bounds: tests/test_crf.py, confident regime)."""
    images, probs = make_scenes(3, 21, 17, margin=2.5, seed=17)
    exact = crf_train(probs.double(), images, unary="logprob", backend="exact")
    lattice = crf_train(probs, images, unary="logprob", backend="lattice").double()
    d = (exact - lattice).abs().amax(dim=1).flatten()
    assert d.mean().item() <= 3e-3 and d.quantile(0.99).item() <= 1e-3
    assert (exact.argmax(1) == lattice.argmax(1)).float().mean().item() >= 0.995


def test_images_of_different_sizes_in_one_batch_equal_each_alone():
    """Equal to float rounding (the sparse products sum in another order on larger matrices)."""
    cases = [photo_case(0, 40, 56, seed=1), photo_case(1, 33, 47, seed=2), photo_case(2, 48, 30, seed=3)]
    energies = [unary_energy(p, "logprob", 1e-5) for _, p in cases]
    rgbs = [torch.from_numpy(img) for img, _ in cases]
    together = lattice_crf(energies, rgbs, CRFParams())
    for k in range(3):
        alone = lattice_crf([energies[k]], [rgbs[k]], CRFParams())[0]
        assert together[k].shape == energies[k].shape
        torch.testing.assert_close(together[k], alone, rtol=0, atol=1e-5)
        assert torch.equal(together[k].argmax(0), alone.argmax(0))


def test_test_time_backend_auto_is_the_lattice_on_cuda_and_pydensecrf_on_the_cpu():
    assert choose_test_backend("auto", cuda=True) == "lattice"
    assert choose_test_backend("auto", cuda=False) == "pydensecrf"
    assert choose_test_backend("lattice", cuda=False) == "lattice"
    with pytest.raises(InputError, match="test-time CRF backend: expected one of"):
        choose_test_backend("exact", cuda=True)


def test_dense_crf_names_an_unknown_backend():
    images, probs = make_scenes(1, 3, 9)
    with pytest.raises(InputError, match="backend: expected one of"):
        dense_crf(probs, images, CRFParams(), backend="permuto")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lattice_crf_on_cuda_equals_the_cpu():
    img, probs = photo_case(0, 375, 500)
    energy = unary_energy(probs, "logprob", 1e-5)
    cpu = lattice_crf([energy], [torch.from_numpy(img)], CRFParams())[0]
    cuda = lattice_crf([energy.cuda()], [torch.from_numpy(img).cuda()], CRFParams())[0]
    assert cuda.is_cuda
    assert (cuda.cpu() - cpu).abs().max().item() < 1e-4
    assert (cuda.cpu().argmax(0) == cpu.argmax(0)).float().mean().item() >= 0.9999


def test_the_agreement_table_compares_the_backends_on_a_trained_models_probabilities(tiny_run):
    from dsrg.data.photos import photographs
    from dsrg.reproduce.crf_agreement import agreement
    from dsrg.reproduce.experiments import Experiment

    cfg, folders = tiny_run
    exp = Experiment(cfg, folders)
    ds = exp.dataset(cfg.eval.split)
    table = agreement(exp, [(ds.ids[0], ds.image(0)), *photographs(1, 50, 70)], "mixed")
    assert list(table["image"]) == [ds.ids[0], "astronaut"]
    assert list(table["pixels"]) == [64 * 64, 50 * 70]
    assert (table["labels equal %"] == 100).all() and (table["max |dQ|"] < 1e-5).all()
