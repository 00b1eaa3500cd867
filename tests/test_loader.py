"""The data path of training: loader processes sized to the machine, batches that do not depend on how many
there are, and the log's timing columns (the wait for each batch, on CUDA the GPU's work)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import tiny_profile
from torch.utils.data import DataLoader

from dsrg.run import workers
from dsrg.data.dataset import ClassificationSet, PseudoLabelSet, collate, open_split
from dsrg.reproduce.figures import curve_keys
from dsrg.run import train
from dsrg.run.dist import World
from dsrg.run.train import LOG_COUNTERS, batch_keys
from dsrg.run.workers import auto_workers


@pytest.mark.parametrize("cores, processes, expected", [(16, 1, 12), (8, 1, 7), (16, 2, 7), (2, 1, 1), (1, 1, 0)])
def test_minus_one_gives_each_process_its_cores_less_one(monkeypatch, cores, processes, expected):
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))
    assert auto_workers(-1) == expected
    assert auto_workers(3) == 3 and auto_workers(0) == 0


def _batches(dataset, keys, workers):
    loader = DataLoader(dataset, batch_sampler=keys, num_workers=workers, collate_fn=collate,
                        worker_init_fn=train._loader_worker)
    return list(loader)


def test_loader_processes_give_the_batches_of_none_and_a_resume_draws_the_same(tmp_path):
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run")
    ds = open_split(cfg.data, cfg.data.train_split)
    dataset = ClassificationSet(ds, 32)
    keys = list(batch_keys(len(ds), 4, seed=1, start=0, stop=6, world=World(0, 1)))
    alone, two = _batches(dataset, keys, 0), _batches(dataset, keys, 2)
    resumed = _batches(dataset, list(batch_keys(len(ds), 4, seed=1, start=3, stop=6, world=World(0, 1))), 2)
    for a, b in zip(alone, two):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    for a, b in zip(alone[3:], resumed):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    plain = [dataset[(i, None)][1] for batch in keys for i, _ in batch]
    drawn = [img for batch in alone for img in batch[1]]
    assert any(torch.equal(a, b.flip(-1)) and not torch.equal(a, b) for a, b in zip(plain, drawn)), \
        "some images were mirrored: the draws matter"


def test_random_crops_do_not_depend_on_the_loader_processes(tmp_path):
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run")
    ds = open_split(cfg.data, cfg.data.train_split)
    dataset = PseudoLabelSet(ds, ds.root / "SegmentationClass", 24)
    keys = list(batch_keys(len(ds), 2, seed=5, start=0, stop=4, world=World(0, 1)))
    for a, b in zip(_batches(dataset, keys, 0), _batches(dataset, keys, 2)):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_each_logged_iteration_says_how_long_it_waited_for_its_batch(tiny_run):
    _, folders = tiny_run
    for step in ("cls", "seg", "retrain"):
        rows = [json.loads(line) for line in (folders[step] / "log.jsonl").read_text().splitlines()]
        assert rows and all(0 <= r["wait"] <= r["s"] for r in rows), step
        assert all("gpu" not in r for r in rows), "GPU time only on CUDA"
    import pandas as pd

    assert not set(curve_keys(pd.DataFrame(rows))) & set(LOG_COUNTERS), "timing is not plotted as a loss"


def test_inference_steps_record_the_time_their_images_took(tiny_run):
    _, folders = tiny_run
    for step in ("seeds", "pseudo", "eval"):
        done = json.loads((folders[step] / "done.json").read_text())
        assert done["timed"]["images"] >= 1 and 0 < done["timed"]["s"] <= done["wall_s"], step


@pytest.mark.parametrize("method", ["rbd", "spectral_residual"])
def test_saliency_in_worker_processes_gives_the_cues_of_one_process(tiny_run, tmp_path, method):
    from dsrg.steps import seeds

    cfg, _ = tiny_run
    cues = {}
    for n in (0, 2):
        shutil.copytree(cfg.out, tmp_path / str(n))         # its cls step is reused, its seeds made again
        for done in (tmp_path / str(n)).glob("seeds-*"):
            shutil.rmtree(done)
        other = tiny_profile(cfg.data.root, tmp_path / str(n), f"seeds.saliency={method}", f"seeds.workers={n}")
        cues[n] = np.load(seeds.run(other) / "cues.npz")
    assert sorted(cues[0].files) == sorted(cues[2].files)
    assert all(np.array_equal(cues[0][k], cues[2][k]) for k in cues[0].files)


def test_a_process_pinned_to_its_own_cores_keeps_them(monkeypatch):
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert auto_workers(-1) == 3, "four pinned cores, not a quarter of them"
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert auto_workers(-1) == 3, "the whole machine, shared by four processes"
