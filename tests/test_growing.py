"""Region growing (Section 3.3, Eq. 3): hand-checkable cases, the sequential reference, invariants."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from dsrg.errors import InputError
from dsrg.method import growing, reach
from dsrg.method.growing import grow, grow_every_plane, label_map
from dsrg.method.reach import reach_scipy, reach_torch, reach_triton

INF = float("inf")


def _probs_from_argmax(argmax: np.ndarray, conf: np.ndarray, c: int) -> torch.Tensor:
    """(H, W) argmax class + its probability -> (1, C, H, W) probabilities summing to 1."""
    h, w = argmax.shape
    p = np.zeros((c, h, w), np.float32)
    rest = (1.0 - conf) / (c - 1)
    p[:] = rest
    np.put_along_axis(p, argmax[None], conf[None].astype(np.float32), axis=0)
    return torch.from_numpy(p)[None]


def test_six_by_six_two_classes_and_a_blocked_pixel():
    # Classes: 0 background, 1 "cat", 2 "dog" (absent). One cat seed at (1,1), one bg seed at (5,5).
    # The network is confident of "cat" on the 3x3 block rows 0-2 x cols 0-2, except (0,2)
    # which is a background seed (a seed of exactly one OTHER class: never added to cat).
    # (2,4) is cat with high confidence but not connected to the block (col 3 is low confidence).
    # The bottom-right 2x2 block is confident background and touches the bg seed at (5,5).
    argmax = np.zeros((6, 6), np.int64)
    conf = np.full((6, 6), 0.5)
    argmax[0:3, 0:3] = 1; conf[0:3, 0:3] = 0.9
    argmax[2, 4] = 1; conf[2, 4] = 0.95
    conf[4:6, 4:6] = 0.995
    probs = _probs_from_argmax(argmax, conf, 3)
    seeds = torch.zeros(1, 3, 6, 6, dtype=torch.bool)
    seeds[0, 1, 1, 1] = True
    seeds[0, 0, 5, 5] = True
    seeds[0, 0, 0, 2] = True
    labels = torch.tensor([[True, True, False]])

    out = grow(seeds, probs, labels, theta_fg=0.85, theta_bg=0.99)[0]

    cat = np.zeros((6, 6), bool); cat[0:3, 0:3] = True; cat[0, 2] = False  # the blocked pixel
    # (0,2) was labelled cat by the network (0.9 > 0.85) so it is in cat's component, but it is a
    # background seed only, so it is never added to cat; the component still reaches through it
    # only via its 8-neighbours, which are in the block anyway.
    bg = np.zeros((6, 6), bool); bg[4:6, 4:6] = True; bg[0, 2] = True
    np.testing.assert_array_equal(out[1].numpy(), cat)
    np.testing.assert_array_equal(out[0].numpy(), bg)
    assert not out[2].any()                     # absent class never grows


def test_strict_threshold_and_one_sided_variants():
    argmax = np.array([[1, 1, 1, 0, 0, 0]]); conf = np.array([[0.85, 0.9, 0.9, 0.995, 0.99, 0.995]])
    probs = _probs_from_argmax(argmax, conf, 2)
    seeds = torch.zeros(1, 2, 1, 6, dtype=torch.bool)
    seeds[0, 1, 0, 0] = True   # cat seed where p = 0.85 exactly: stays a seed, the label map keeps cat
    seeds[0, 0, 0, 5] = True
    labels = torch.tensor([[True, True]])
    out = grow(seeds, probs, labels)[0]
    assert out[1, 0].tolist() == [True, True, True, False, False, False]
    # (0,4) has p = 0.99, not > 0.99: it breaks the background run, so only (0,5) (the seed) stays.
    assert out[0, 0].tolist() == [False, False, False, False, False, True]
    fg_only = grow(seeds, probs, labels, theta_bg=INF)[0]
    assert fg_only[0, 0].tolist() == [False] * 5 + [True]
    bg_only = grow(seeds, probs, labels, theta_fg=INF)[0]
    assert bg_only[1, 0].tolist() == [True] + [False] * 5


def test_seed_label_map_takes_the_highest_seeded_class():
    seeds = torch.zeros(1, 3, 1, 2, dtype=torch.bool)
    seeds[0, 1, 0, 0] = seeds[0, 2, 0, 0] = True
    probs = torch.full((1, 3, 1, 2), 1 / 3)
    lab = label_map(seeds, probs, torch.tensor([[True, True, True]]))
    assert lab.tolist() == [[[2, -1]]]


def test_bad_inputs_name_the_argument():
    seeds = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    probs = torch.rand(2, 3, 4, 4)
    labels = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(InputError, match="probs: expected shape"):
        grow(seeds, probs[:, :2], labels)
    with pytest.raises(InputError, match="seeds: expected dtype torch.bool"):
        grow(seeds.float(), probs, labels)
    with pytest.raises(InputError, match="background"):
        grow(seeds, probs, labels & torch.tensor([False, True, True]))
    with pytest.raises(InputError, match="theta_fg"):
        grow(seeds, probs, labels, theta_fg=1.5)
    with pytest.raises(InputError, match="method: expected one of"):
        grow(seeds, probs, labels, method="cuda")


# ---- the literal sequential reference: per image, per class in order, as the public code reads ----

def reference_grow(seeds, probs, labels, theta_fg, theta_bg):
    seeds = seeds.numpy().copy(); probs = probs.numpy(); labels = labels.numpy()
    out = seeds.copy()
    b, c = labels.shape
    for i in range(b):
        present = np.flatnonzero(labels[i])
        sub = probs[i][present]
        k = present[sub.argmax(0)]
        pmax = sub.max(0)
        lab = np.full(k.shape, -1)
        for cls in range(c):                       # highest seeded class wins
            lab[seeds[i, cls]] = cls
        lab[(k > 0) & (pmax > theta_fg)] = k[(k > 0) & (pmax > theta_fg)]
        lab[(k == 0) & (pmax > theta_bg)] = 0
        for cls in present:                        # in order; earlier growth visible to later classes
            comp, n = ndi.label(lab == cls, structure=np.ones((3, 3)))
            for j in range(1, n + 1):
                region = comp == j
                if not (region & seeds[i, cls]).any():
                    continue
                for y, x in zip(*np.nonzero(region)):
                    held = out[i, :, y, x]
                    if held.sum() == 1 and not held[cls]:
                        continue
                    out[i, cls, y, x] = True
    return torch.from_numpy(out)


@st.composite
def growing_inputs(draw):
    b = draw(st.integers(1, 3)); c = draw(st.integers(2, 5))
    h = draw(st.integers(1, 9)); w = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g) * draw(st.sampled_from([1.0, 3.0, 8.0]))
    probs = logits.softmax(1)
    seeds = torch.rand(b, c, h, w, generator=g) < draw(st.sampled_from([0.05, 0.2, 0.5]))
    labels = torch.rand(b, c, generator=g) < 0.6
    labels[:, 0] = True
    seeds &= labels[:, :, None, None]               # cues only for present classes, as seeds.py makes them
    theta_fg = draw(st.sampled_from([0.3, 0.5, 0.85, INF]))
    theta_bg = draw(st.sampled_from([0.3, 0.6, 0.99, INF]))
    return seeds, probs, labels, theta_fg, theta_bg


@settings(max_examples=150, deadline=None)
@given(growing_inputs())
def test_batched_grow_equals_the_sequential_reference(inputs):
    assert torch.equal(grow(*inputs), reference_grow(*inputs))


@settings(max_examples=100, deadline=None)
@given(growing_inputs())
def test_growing_never_removes_a_seed_nor_grows_an_absent_class(inputs):
    seeds, probs, labels, tf, tb = inputs
    out = grow(seeds, probs, labels, tf, tb)
    assert not (seeds & ~out).any()
    absent = ~labels[:, :, None, None].expand_as(out)
    assert torch.equal(out[absent], seeds[absent])


@settings(max_examples=100, deadline=None)
@given(growing_inputs())
def test_growth_stays_in_components_touching_a_seed_of_its_class(inputs):
    seeds, probs, labels, tf, tb = inputs
    out = grow(seeds, probs, labels, tf, tb).numpy()
    lab = label_map(seeds, probs, labels, tf, tb).numpy()
    new = out & ~seeds.numpy()
    b, c = labels.shape
    for i in range(b):
        for cls in range(c):
            comp, _ = ndi.label(lab[i] == cls, structure=np.ones((3, 3)))
            seeded = set(np.unique(comp[seeds[i, cls].numpy()])) - {0}
            assert set(np.unique(comp[new[i, cls]])) <= seeded


def _agree_with_seeds(seeds, probs, labels):
    """Make the network's argmax equal the seed label at every seed pixel."""
    lab = label_map(seeds, probs, labels, INF, INF)          # the seed label map alone
    onehot = torch.nn.functional.one_hot(lab.clamp(min=0), probs.shape[1]).permute(0, 3, 1, 2).bool()
    boosted = torch.where(onehot, probs + 2.0, probs)
    boosted = boosted / boosted.sum(1, keepdim=True)
    return torch.where((lab >= 0).unsqueeze(1), boosted, probs)


@settings(max_examples=100, deadline=None)
@given(growing_inputs(), st.floats(0.0, 0.2))
def test_growth_is_monotone_in_the_thresholds_where_the_network_agrees_with_the_seeds(inputs, delta):
    seeds, probs, labels, tf, tb = inputs
    probs = _agree_with_seeds(seeds, probs, labels)
    loose = grow(seeds, probs, labels, tf, tb)
    tight = grow(seeds, probs, labels, min(tf + delta, 1.0) if tf < INF else tf,
                 min(tb + delta, 1.0) if tb < INF else tb)
    assert not (tight & ~loose).any()             # a higher threshold never grows more


def test_a_lower_threshold_can_grow_less_when_it_overwrites_a_seed():
    # Row: cat seed | cat seed | cat 0.9 (not a seed). The middle seed pixel is confidently background
    # (0.995). With theta_bg = 0.99 it is relabelled background, which cuts the right pixel off the
    # left seed; with theta_bg = inf it keeps its seed label and the right pixel is reached.
    argmax = np.array([[1, 0, 1]]); conf = np.array([[0.9, 0.995, 0.9]])
    probs = _probs_from_argmax(argmax, conf, 2)
    seeds = torch.zeros(1, 2, 1, 3, dtype=torch.bool); seeds[0, 1, 0, :2] = True
    labels = torch.ones(1, 2, dtype=torch.bool)
    assert grow(seeds, probs, labels, 0.85, 0.99)[0, 1, 0].tolist() == [True, True, False]
    assert grow(seeds, probs, labels, 0.85, INF)[0, 1, 0].tolist() == [True, True, True]


@pytest.mark.parametrize("method", ["scipy", "numba", "torch"])
def test_grow_takes_probabilities_inside_the_autograd_graph(method):
    """The network's output still carries its graph when it reaches growing: grow reads it, detached."""
    logits = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    seeds = torch.zeros(1, 2, 3, 3, dtype=torch.bool); seeds[0, 1, 1, 1] = True
    labels = torch.ones(1, 2, dtype=torch.bool)
    out = grow(seeds, logits.softmax(1), labels, 0.0, 0.0, method=method)
    assert out.dtype == torch.bool
    assert torch.equal(out, grow(seeds, logits.detach().softmax(1), labels, 0.0, 0.0, method="scipy"))


# ---- the device path (geodesic dilation in torch) gives the scipy path's result exactly ----

@settings(max_examples=150, deadline=None)
@given(growing_inputs())
def test_torch_and_numba_growing_equal_scipy_growing(inputs):
    scipy_out = grow(*inputs, method="scipy")
    for method in ("torch", "numba"):
        out = grow(*inputs, method=method)
        assert out.dtype == torch.bool and torch.equal(out, scipy_out), method
    assert torch.equal(grow(*inputs), scipy_out)                  # auto = numba on the CPU
    seeds, probs, labels, tf, tb = inputs
    assert torch.equal(grow_every_plane(seeds, label_map(seeds, probs, labels, tf, tb), labels), scipy_out)


def test_numba_growing_takes_float64_and_half_probabilities():
    seeds, probs, labels = _blobby_batch(seed=5, b=3, s=17)
    want = grow(seeds, probs, labels, method="scipy")
    for dtype in (torch.float64, torch.float16):
        p = probs.to(dtype)
        assert torch.equal(grow(seeds, p, labels, method="numba"), grow(seeds, p, labels, method="scipy")), dtype
    assert torch.equal(grow(seeds, probs, labels, method="numba"), want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_a_probability_equal_to_the_threshold_in_its_precision_does_not_grow(dtype):
    # theta_fg = 0.85 rounded to the tensor's precision; "> theta" is strict in every method.
    at = torch.tensor(0.85, dtype=dtype)
    probs = torch.stack([1 - at, at]).view(1, 2, 1, 1).expand(1, 2, 1, 2).contiguous()
    seeds = torch.zeros(1, 2, 1, 2, dtype=torch.bool); seeds[0, 1, 0, 0] = True
    labels = torch.ones(1, 2, dtype=torch.bool)
    for method in ("scipy", "numba", "torch"):
        assert grow(seeds, probs, labels, 0.85, 0.99, method=method)[0, 1, 0].tolist() == [True, False], method
        assert grow(seeds, probs, labels, 0.84, 0.99, method=method)[0, 1, 0].tolist() == [True, True], method


def test_without_numba_auto_falls_back_to_scipy_and_numba_says_what_is_missing(monkeypatch):
    import dsrg.method.growing as growing
    seeds, probs, labels = _blobby_batch(seed=6, b=2, s=9)
    monkeypatch.setattr(growing, "_numba_kernel", lambda: None)
    assert torch.equal(grow(seeds, probs, labels), grow(seeds, probs, labels, method="scipy"))
    with pytest.raises(InputError, match="needs the numba package"):
        grow(seeds, probs, labels, method="numba")


def _blobby_batch(seed: int, b: int = 6, c: int = 21, s: int = 41):
    """A training-shaped batch: 3 present foreground classes per image, smooth (blobby) probabilities."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(b, c, dtype=torch.bool)
    labels[:, 0] = True
    for i in range(b):
        labels[i, 1 + torch.randperm(c - 1, generator=g)[:3]] = True
    logits = torch.nn.functional.avg_pool2d(torch.randn(b, c, s, s, generator=g), 5, 1, 2) * 12
    probs = logits.softmax(1)
    seeds = (torch.rand(b, c, s, s, generator=g) < 0.03) & labels[:, :, None, None]
    return seeds, probs, labels


@pytest.mark.parametrize("check_every", [1, 3, 8])
def test_torch_and_numba_growing_equal_scipy_on_training_shaped_batches(check_every):
    """Batch 6 x 21 classes x 41 x 41 with smooth (blobby) probabilities: long components and many seeds."""
    seeds, probs, labels = _blobby_batch(seed=check_every)          # a batch of its own for each
    for tf, tb in [(0.85, 0.99), (0.3, 0.3), (INF, 0.5)]:
        lab = label_map(seeds, probs, labels, tf, tb)
        img, cls = torch.nonzero(labels, as_tuple=True)
        cand = lab[img] == cls.view(-1, 1, 1)
        ps = seeds[img, cls]
        expected = torch.from_numpy(reach_scipy(cand.numpy(), ps.numpy()))
        assert torch.equal(reach_torch(cand, ps, check_every=check_every), expected)
        want = grow(seeds, probs, labels, tf, tb, method="scipy")
        assert torch.equal(grow(seeds, probs, labels, tf, tb, method="torch"), want)
        assert torch.equal(grow(seeds, probs, labels, tf, tb, method="numba"), want)
        assert torch.equal(grow_every_plane(seeds, lab, labels), want), "CUDA's path, every plane"


def test_torch_reachability_follows_a_serpentine_and_never_crosses_planes():
    """A one-pixel-wide serpentine (a geodesic path of ~n^2/2 pixels) is reached end to end; a diagonal
    line (8-connected only through corners) too; the serpentine in a plane without a seed stays
    unreached although the plane before it is fully reached."""
    n = 15
    snake = np.zeros((n, n), bool)
    snake[0::2] = True                                         # full rows 0, 2, 4, ...
    for r in range(1, n, 2):                                   # one connector per gap, alternating ends
        snake[r, n - 1 if (r // 2) % 2 == 0 else 0] = True
    diag = np.eye(n, dtype=bool)
    cand = np.stack([snake, snake, diag])
    seeds = np.zeros_like(cand); seeds[0, 0, 0] = True; seeds[2, n - 1, n - 1] = True
    expected = reach_scipy(cand, seeds)
    assert expected[0].sum() == snake.sum() and not expected[1].any() and expected[2].sum() == n
    for k in (1, 5, 64):
        got = reach_torch(torch.from_numpy(cand), torch.from_numpy(seeds), check_every=k)
        np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_growing_on_cuda_stays_on_the_device_and_equals_scipy():
    g = torch.Generator().manual_seed(0)
    b, c, s = 4, 21, 41
    labels = torch.rand(b, c, generator=g) < 0.2
    labels[:, 0] = True
    probs = (torch.nn.functional.avg_pool2d(torch.randn(b, c, s, s, generator=g), 5, 1, 2) * 12).softmax(1)
    seeds = (torch.rand(b, c, s, s, generator=g) < 0.05) & labels[:, :, None, None]
    want = grow(seeds, probs, labels, method="scipy")
    got = grow(seeds.cuda(), probs.cuda(), labels.cuda())          # auto on CUDA: triton (or torch)
    assert got.is_cuda and torch.equal(got.cpu(), want)


@pytest.fixture
def interpreted_triton():
    """Triton's interpreter: the CUDA kernel of method='triton' run on CPU tensors (conftest.py turns it on
    where there is no CUDA)."""
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton's interpreter is off (CUDA runs the kernel itself: the gpu tests)")


def test_triton_reaches_through_a_spiral_a_staircase_and_blobs(interpreted_triton):
    """The check planes of ``triton_works``: a corridor that turns 4 times per lap (one round of row and column
    fills cannot finish it), a chain joined only at corners, random blobs with scattered seeds, an empty
    plane; and random planes of other shapes (sides not powers of two, a single row)."""
    cand, seeds = reach._check_planes(torch.device("cpu"), 13)
    expected = reach_scipy(cand.numpy(), seeds.numpy())
    assert expected[0].sum() == cand[0].sum() and expected[1].sum() == cand[1].sum(), "spiral and stairs: whole"
    np.testing.assert_array_equal(reach_triton(cand, seeds).numpy(), expected)
    rng = np.random.default_rng(1)
    for p, h, w in [(3, 5, 12), (2, 1, 9), (1, 11, 3)]:
        cand = rng.random((p, h, w)) < 0.6
        seeds = rng.random((p, h, w)) < 0.1
        got = reach_triton(torch.from_numpy(cand), torch.from_numpy(seeds))
        np.testing.assert_array_equal(got.numpy(), reach_scipy(cand, seeds), err_msg=f"{p} x {h} x {w}")


def test_triton_growing_equals_scipy_growing(interpreted_triton):
    seeds, probs, labels = _blobby_batch(seed=3, b=2, c=4, s=11)
    for tf, tb in [(0.85, 0.99), (0.3, 0.3)]:
        assert torch.equal(grow(seeds, probs, labels, tf, tb, method="triton"),
                           grow(seeds, probs, labels, tf, tb, method="scipy")), (tf, tb)


def test_the_triton_kernel_compiles_for_hopper_and_ampere():
    """What the CPU can tell of the CUDA build: Triton compiles the kernel to a cubin for sm_90 (H100, H200)
    and sm_80 (A100) at the block shapes that ``reach_triton`` launches, with a block barrier between the
    round's store of its reached set and the reads of its neighbours (in a process of its own: the
    interpreter, on in this one, defines Triton's functions for the CPU)."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    built = subprocess.run([sys.executable, "-c", COMPILE_FOR_CUDA], env=env, capture_output=True, text=True)
    if "no CUDA build:" in built.stdout:
        pytest.skip(built.stdout.strip())
    assert built.returncode == 0 and built.stdout.split() == ["90-64:ok", "90-128:ok", "80-16:ok"], \
        built.stdout + built.stderr


COMPILE_FOR_CUDA = """
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, compile
from dsrg.method._reach_triton import reach_kernel
signature = {"cand_ptr": "*u8", "seed_ptr": "*u8", "padded_ptr": "*u8", "out_ptr": "*u8", "h": "i32", "w": "i32",
             "BH": "constexpr", "BW": "constexpr"}
for arch, side, warps in [(90, 64, 4), (90, 128, 8), (80, 16, 4)]:
    try:
        built = compile(ASTSource(fn=reach_kernel, signature=signature, constexprs={"BH": side, "BW": side}),
                        target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
    except (FileNotFoundError, ImportError) as exc:           # a triton without its NVIDIA tools
        raise SystemExit(print(f"no CUDA build: {exc}"))
    ptx = built.asm["ptx"]
    first_store = ptx.index("st.global")                      # the loop's first store of its reached set
    barrier, next_load = ptx.find("bar.sync", first_store), ptx.find("ld.global", first_store)
    print(f"{arch}-{side}:" + ("ok" if built.asm["cubin"] and -1 < barrier < next_load else "no-barrier"))
"""


def test_triton_growing_says_what_it_needs(monkeypatch):
    seeds, probs, labels = _blobby_batch(seed=4, b=1, c=3, s=9)
    monkeypatch.setattr(reach, "_triton_kernel", lambda: None)
    with pytest.raises(InputError, match="needs the triton package"):
        grow(seeds, probs, labels, method="triton")
    monkeypatch.setattr(reach, "_triton_kernel", lambda: object())     # a compiled (not interpreted) kernel
    with pytest.raises(InputError, match="runs on CUDA tensors"):
        grow(seeds, probs, labels, method="triton")
    big = torch.zeros(1, 129, 3, dtype=torch.bool)
    monkeypatch.setattr(reach, "_interpreted", lambda kernel: True)
    with pytest.raises(InputError, match="at most 128 x 128"):
        reach_triton(big, big)


def test_auto_growing_on_cuda_takes_triton_where_it_works_and_the_planes_fit(monkeypatch):
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(growing, "triton_works", lambda device: True)
    assert growing.resolve_method("auto", cuda, 41) == "triton"
    assert growing.resolve_method("auto", cuda, reach.TRITON_MAX_SIDE + 1) == "torch"
    assert growing.resolve_method("auto", cuda) == "torch", "planes not known to fit"
    monkeypatch.setattr(growing, "triton_works", lambda device: False)
    assert growing.resolve_method("auto", cuda, 41) == "torch"
    assert growing.resolve_method("auto", torch.device("cpu"), 41) == "numba"
    monkeypatch.setattr(growing, "_numba_kernel", lambda: None)
    assert growing.resolve_method("auto", torch.device("cpu"), 41) == "scipy"


def test_a_triton_kernel_that_fails_or_disagrees_is_not_used_and_the_reason_is_said(monkeypatch, capsys):
    monkeypatch.setattr(reach, "_triton_kernel", lambda: object())
    # the reference it compares with, as reach_scipy (equal, tested above): reach_torch's thousands of dilations
    # along the 121 x 121 spiral take a minute on a busy CPU, and this test is about the decision
    monkeypatch.setattr(reach, "reach_torch", lambda c, s: torch.from_numpy(reach_scipy(c.numpy(), s.numpy())))
    works = reach.triton_works.__wrapped__                     # not the answer cached per device

    def broken(candidate, seeds):
        raise RuntimeError("PTX .version 9.1 does not support .target sm_120\nmore lines")
    monkeypatch.setattr(reach, "reach_triton", broken)
    assert works(torch.device("cpu")) is False
    assert "not used (RuntimeError: PTX .version 9.1 does not support .target sm_120); growing runs " \
           "method='torch'" in capsys.readouterr().err
    monkeypatch.setattr(reach, "reach_triton", lambda candidate, seeds: candidate & seeds)   # never grows
    assert works(torch.device("cpu")) is False
    assert "grew other regions than method='torch' on the 41 x 41 check planes" in capsys.readouterr().err
    sides = []

    def right_at_41_only(candidate, seeds):
        sides.append(candidate.shape[-1])
        return reach.reach_torch(candidate, seeds) if candidate.shape[-1] == 41 else candidate & seeds
    monkeypatch.setattr(reach, "reach_triton", right_at_41_only)
    assert works(torch.device("cpu")) is False and sides == [41, 121], "the largest block is checked too"
    assert "on the 121 x 121 check planes" in capsys.readouterr().err
    monkeypatch.setattr(reach, "reach_triton", reach.reach_torch)
    assert works(torch.device("cpu")) is True
    monkeypatch.setattr(reach, "_triton_kernel", lambda: None)
    assert works(torch.device("cpu")) is False
    assert "not used (triton cannot be imported)" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_growing_on_cuda_equals_scipy_and_is_what_auto_runs():
    pytest.importorskip("triton")
    cuda = torch.device("cuda")
    assert reach.triton_works(cuda), "the Triton kernel failed its check on this GPU (stderr says why)"
    assert growing.resolve_method("auto", cuda, 41) == "triton"
    rng = np.random.default_rng(2)
    for p, h, w in [(64, 41, 41), (8, 17, 17), (4, 5, 128), (3, 100, 7)]:
        cand = rng.random((p, h, w)) < rng.uniform(0.4, 0.7)
        seeds = rng.random((p, h, w)) < 0.02
        got = reach_triton(torch.from_numpy(cand).to(cuda), torch.from_numpy(seeds).to(cuda))
        np.testing.assert_array_equal(got.cpu().numpy(), reach_scipy(cand, seeds), err_msg=f"{p} x {h} x {w}")
    seeds, probs, labels = _blobby_batch(seed=7, b=20, c=21, s=41)
    want = grow(seeds, probs, labels, method="scipy")
    got = grow(seeds.to(cuda), probs.to(cuda), labels.to(cuda), method="triton")
    assert got.is_cuda and torch.equal(got.cpu(), want)
    if torch.cuda.device_count() > 1:                       # launched on the tensors' GPU, not the current one
        other = torch.device("cuda", 1)
        got = grow(seeds.to(other), probs.to(other), labels.to(other), method="triton")
        assert got.device == other and torch.equal(got.cpu(), want)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_growing_asked_for_where_it_failed_its_check_is_refused(monkeypatch):
    monkeypatch.setattr(growing, "triton_works", lambda device: False)
    seeds, probs, labels = (t.cuda() for t in _blobby_batch(seed=8, b=1, c=3, s=9))
    with pytest.raises(InputError, match="method='triton' failed its check on cuda"):
        grow(seeds, probs, labels, method="triton")


@pytest.mark.parametrize("method", ["scipy", "numba", "torch"])
def test_a_tie_between_two_classes_goes_to_the_lower_class(method):
    # One image, classes 0 (background), 1 and 2; every pixel is 0.5 / 0.5 between classes 1 and 2.
    seeds = torch.zeros(1, 3, 1, 3, dtype=torch.bool)
    seeds[0, 1, 0, 0] = True                     # a class-1 seed at the left end
    seeds[0, 2, 0, 2] = True                     # a class-2 seed at the right end
    probs = torch.tensor([0.0, 0.5, 0.5]).view(1, 3, 1, 1).expand(1, 3, 1, 3).contiguous()
    labels = torch.ones(1, 3, dtype=torch.bool)
    grown = grow(seeds, probs, labels, theta_fg=0.4, theta_bg=0.99, method=method)
    # The middle pixel is labelled 1 (the tie's lower class) and touches the class-1 seed: it joins class 1.
    assert grown[0, 1, 0].tolist() == [True, True, False]
    assert grown[0, 2, 0].tolist() == [False, False, True]
