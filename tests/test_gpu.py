"""The pipeline on CUDA (bf16 autocast): skipped without a GPU; run with `make test-all` on a GPU machine."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_profile

from dsrg.steps import pipeline

# GPU images often carry opencv-python without the contrib modules (cv2.saliency): our own RBD saliency
NO_CONTRIB = ("seeds.saliency=rbd",)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_the_tiny_pipeline_runs_on_cuda_with_bf16_autocast(tmp_path):
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run", "device=cuda", "amp=true", *NO_CONTRIB)
    folders = pipeline.run(cfg)
    metrics = json.loads((folders["eval"] / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0
    log = [json.loads(x) for x in (folders["seg"] / "log.jsonl").read_text().splitlines()]
    assert all(x["loss"] == x["loss"] for x in log), "no NaN loss under bf16"
    assert all(0 < x["gpu"] <= x["s"] + 1e-3 for x in log), "the GPU's work, within each iteration's wall time"


def test_cpu_and_cuda_give_close_first_losses(tmp_path):
    extra = ("cls.batch_norm=false", "seg.batch_norm=false", "cls.dropout=0", "amp=false", *NO_CONTRIB)
    losses = {}
    for device in ("cpu", "cuda"):
        cfg = tiny_profile(tmp_path / "synth", tmp_path / device, f"device={device}", *extra)
        folder = pipeline.MODULES["cls"].run(cfg)
        losses[device] = json.loads((folder / "log.jsonl").read_text().splitlines()[0])["loss"]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-3)
