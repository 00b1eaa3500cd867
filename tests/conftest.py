"""Shared fixtures: a tiny profile whose whole pipeline runs in seconds on a CPU."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from hypothesis import settings

from dsrg.profile import load_profile

# Without CUDA, Triton's interpreter runs region growing's CUDA kernel on CPU tensors (tests/test_growing.py).
# Set before anything imports triton, which reads it as it defines its own functions.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Property tests draw the same examples on every run (a run passes or fails on the code, not on luck) and
# keep no example database in the working tree.
settings.register_profile("dsrg", derandomize=True, database=None)
settings.load_profile("dsrg")

# 16 training images of 64 x 64 (a 9 x 9 output grid), networks at 1/16 width, a few iterations per step.
TINY = ["data.synth=[n_train=16,n_val=4,size=64]", "cls.width=0.0625", "seg.width=0.0625", "cls.input_size=64",
        "seg.input_size=64", "cls.batch_size=4", "seg.batch_size=4", "retrain.batch_size=4", "cls.iterations=4",
        "seg.iterations=8", "retrain.iterations=4", "retrain.crop_size=48", "pseudo.sizes=[48,64]",
        "seg.record_images=2", "progress=false", "ckpt_every=3", "seeds.saliency=spectral_residual"]


def torchrun(processes: int, tmp_path) -> list[str]:
    """``python -m torch.distributed.run`` with ``processes`` on this machine (``--standalone``: a free port of its
    own), its log folder in ``tmp_path`` (else each launch leaves a ``torchelastic_*`` folder in /tmp)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "--log-dir", str(tmp_path / "torchelastic")]


def tiny_overrides(root, out, *extra: str) -> list[str]:
    return [f"data.root={root}", f"out={out}", *TINY, *extra]


def tiny_profile(root, out, *extra: str):
    return load_profile("demo", tiny_overrides(root, out, *extra))


@pytest.fixture(autouse=True)
def default_floating_point():
    """Each test starts with subnormal floats kept: a step run in-process flushes them to zero for the whole
    process (dsrg.run.context.setup), which Hypothesis refuses to draw floats under."""
    yield
    import torch

    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One complete tiny pipeline run: ``(cfg, {step: folder})``."""
    from dsrg.steps import pipeline

    base = tmp_path_factory.mktemp("tiny")
    cfg = tiny_profile(base / "synth", base / "run")
    return cfg, pipeline.run(cfg)
