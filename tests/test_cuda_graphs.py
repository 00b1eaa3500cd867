"""The CRF and growing of a training step replayed as one CUDA graph (seg.cuda_graph): the same results as op by
op, new inputs followed, work that cannot be captured run op by op with the reason said."""

import pytest
import torch

from dsrg.method import reach
from dsrg.profile import SegConfig
from dsrg.run import cuda_graphs
from dsrg.steps.train_seg import graphed, refine_and_grow, supervision

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(autouse=True)
def no_graphs_left():
    cuda_graphs.forget()
    yield
    cuda_graphs.forget()


def test_off_cuda_the_work_runs_as_it_is_and_nothing_is_kept():
    x = torch.arange(4.0)
    assert cuda_graphs.replay(lambda t: (t * 2,), "double", x)[0].tolist() == [0, 2, 4, 6]
    assert not cuda_graphs._graphs
    assert not graphed(SegConfig(crf_backend="exact", grow_method="triton"), torch.zeros(1, 2, 9, 9))


def _batch(device, b=4, c=21, s=41, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.nn.functional.avg_pool2d(torch.randn(b, c, s, s, generator=g), 5, 1, 2) * 8
    images = torch.randint(0, 256, (b, 3, 8 * s, 8 * s), generator=g, dtype=torch.uint8)
    labels = torch.zeros(b, c, dtype=torch.bool)
    labels[:, 0] = True
    labels[:, 1 + torch.randperm(c - 1, generator=g)[:3]] = True
    cues = (torch.rand(b, c, s, s, generator=g) < 0.05) & labels[:, :, None, None]
    return [t.to(device) for t in (logits, images, cues, labels)]


@pytest.mark.gpu
@CUDA
def test_a_replayed_graph_gives_what_op_by_op_gives_for_each_new_input():
    def work(x, y):
        return x * 2 + y, (x > 0)
    for seed in range(3):
        x, y = torch.randn(2, 5, generator=torch.Generator().manual_seed(seed)).cuda().unbind()
        got = cuda_graphs.replay(work, "work", x, y)
        want = work(x, y)
        assert all(torch.equal(a, b) for a, b in zip(got, want)), seed
    assert cuda_graphs.captured() == 1, "captured once, replayed for the other inputs"
    got[0].zero_()                                            # the caller's copy: the graph's output stays
    assert torch.equal(cuda_graphs.replay(work, "work", x, y)[0], want[0])


@pytest.mark.gpu
@CUDA
def test_work_that_reads_a_value_back_runs_op_by_op_and_says_why_once(capsys):
    def work(x):
        return (x * float(x.sum()),)                          # a read back: no capture
    x = torch.ones(3, device="cuda")
    assert cuda_graphs.replay(work, "reads", x, what="the test's work")[0].tolist() == [3, 3, 3]
    assert "the test's work runs op by op, not as one CUDA graph:" in capsys.readouterr().err
    assert torch.cuda.current_stream() == torch.cuda.default_stream(), "the work after it runs where it ran before"
    assert not cuda_graphs.captured()
    assert cuda_graphs.replay(work, "reads", 2 * x)[0].tolist() == [12, 12, 12]
    assert capsys.readouterr().err == ""


@pytest.mark.gpu
@CUDA
@pytest.mark.parametrize("method", ["triton", "auto"])
def test_the_training_steps_crf_and_growing_as_one_graph_equal_them_op_by_op(method):
    """``triton`` by name too: its check on the device runs before the capture, whose warm-up refuses
    the check's host syncs."""
    reach.triton_works.cache_clear()                     # as in a new process: the check not yet made
    seg = SegConfig(crf_backend="auto", grow_method=method)
    logits, images, cues, labels = _batch(torch.device("cuda"))
    assert graphed(seg, logits), "the exact CRF and triton growing on CUDA: one graph"

    class Cfg:
        pass
    on, off = Cfg(), Cfg()
    on.seg, off.seg = seg, SegConfig(crf_backend="auto", grow_method=method, cuda_graph=False)
    for seed in range(2):
        logits, images, cues, labels = _batch(torch.device("cuda"), seed=seed)
        p1, q1, g1 = supervision(on, logits, images, cues, labels)
        p2, q2, g2 = supervision(off, logits, images, cues, labels)
        assert torch.equal(q1, q2) and torch.equal(g1, g2), seed
    assert cuda_graphs.captured() == 1
    q, grown = refine_and_grow(seg, p1.detach(), images, cues, labels)
    assert torch.equal(q, q1) and torch.equal(grown, g1)
