"""`dsrg run` computes the seeds step's saliency while train-cls trains (``seeds.overlap``): the same cues."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_profile, torchrun
from test_signals import _gone

from dsrg.models.cam import CAMNet
from dsrg.run import folders
from dsrg.run.dist import World
from dsrg.steps import pipeline, seeds

CPU = torch.device("cpu")


def _without_seeds(tmp_path, cfg, name: str, *extra: str):
    """A copy of the tiny run whose seeds (and later steps) are to be made again; its profile."""
    shutil.copytree(cfg.out, tmp_path / name)
    for done in (tmp_path / name).glob("*-*"):
        if not done.name.startswith("cls-"):
            shutil.rmtree(done)
    return tiny_profile(cfg.data.root, tmp_path / name, *extra)


def test_the_cues_begun_early_are_the_cues_the_step_makes_itself(tiny_run, tmp_path):
    cfg, _ = tiny_run
    own = np.load(seeds.run(_without_seeds(tmp_path, cfg, "own", "seeds.workers=2")) / "cues.npz")
    other = _without_seeds(tmp_path, cfg, "early", "seeds.workers=2")
    early = seeds.EarlyBackgrounds(*_split(other), other.seeds, seeds.cam_grid(other), workers=2, chunk=3)
    try:
        made = np.load(seeds.run(other, early=early) / "cues.npz")
    finally:
        early.close()
    assert sorted(own.files) == sorted(made.files)
    assert all(np.array_equal(own[k], made[k]) for k in own.files)


def _split(cfg):
    from dsrg.data.dataset import open_split

    ds = open_split(cfg.data, cfg.data.train_split)
    return ds, range(len(ds))


def test_the_cam_grid_is_the_grid_of_the_cams():
    for side in (64, 97, 321):
        cams = CAMNet(num_classes=2, width=0.125).eval().cams(torch.zeros(1, 3, side, side))
        assert seeds.cam_grid(tiny_profile("d", "r", f"cls.input_size={side}")) == tuple(cams.shape[2:])


def test_dsrg_run_hands_the_early_cues_to_the_seeds_step_which_then_computes_no_saliency(tiny_run, tmp_path,
                                                                                         monkeypatch):
    cfg, _ = tiny_run
    other = _without_seeds(tmp_path, cfg, "run", "seeds.overlap=always", "seeds.workers=2")
    shutil.rmtree(folders.step_dir(other, "cls"))            # train-cls runs, so the saliency is begun early

    def no_saliency_here(*args, **kwargs):
        raise AssertionError("the seeds step computed saliency of its own")

    monkeypatch.setattr(seeds, "_with_backgrounds", no_saliency_here)
    pipeline.run(other, only=["cls", "seeds"])
    own = np.load(folders.step_dir(cfg, "seeds") / "cues.npz")
    made = np.load(folders.step_dir(other, "seeds") / "cues.npz")
    assert all(np.array_equal(own[k], made[k]) for k in own.files)


def test_saliency_is_begun_early_only_where_asked_and_useful(tiny_run, tmp_path):
    cfg, _ = tiny_run
    steps = pipeline.planned_steps(cfg)
    fresh = tiny_profile(cfg.data.root, tmp_path / "fresh")                 # nothing made yet
    assert seeds.start_early(fresh, CPU, World(), steps) is None, "default: on a GPU only"
    for extra in (("seeds.overlap=never",), ("seeds.overlap=always", "seeds.saliency=folder",
                                              f"seeds.saliency_dir={tmp_path}")):
        assert seeds.start_early(tiny_profile(cfg.data.root, tmp_path / "fresh", *extra),
                                 torch.device("cuda"), World(), steps) is None, extra
    done = tiny_profile(cfg.data.root, cfg.out, "seeds.overlap=always")
    assert seeds.start_early(done, CPU, World(), steps) is None, "train-cls is done: nothing to overlap"
    always = tiny_profile(cfg.data.root, tmp_path / "fresh", "seeds.overlap=always", "seeds.workers=2")
    assert seeds.start_early(always, CPU, World(), ["seeds", "seg"]) is None, "no train-cls in this run"
    in_step = tiny_profile(cfg.data.root, tmp_path / "fresh", "seeds.overlap=always", "seeds.workers=1")
    assert seeds.start_early(in_step, CPU, World(), steps) is None, "seeds.workers=1: saliency in the step"
    early = seeds.start_early(always, CPU, World(), steps)
    try:
        assert isinstance(early, seeds.EarlyBackgrounds)
    finally:
        early.close()


def test_the_early_workers_take_only_cores_nothing_else_asks_for(tiny_run):
    cfg, _ = tiny_run
    early = seeds.EarlyBackgrounds(*_split(cfg), cfg.seeds, seeds.cam_grid(cfg), workers=1)
    try:
        assert early.pool.submit(os.nice, 0).result(timeout=60) == min(19, os.nice(0) + 19)
    finally:
        early.close()


def test_a_failing_train_cls_ends_the_early_workers(tiny_run, tmp_path, monkeypatch):
    cfg, _ = tiny_run
    other = _without_seeds(tmp_path, cfg, "failing", "seeds.overlap=always", "seeds.workers=2")
    shutil.rmtree(folders.step_dir(other, "cls"))
    pids, kept, start = [], [], seeds.start_early

    def start_and_note(*args):
        early = start(*args)
        pids.extend(early.pool._processes)       # the workers, started with the first job
        kept.append(early)                       # held on to: the pool is not ended by being forgotten
        return early

    monkeypatch.setattr(seeds, "start_early", start_and_note)

    def fails(cfg, resume=False):
        raise RuntimeError("train-cls failed")

    monkeypatch.setattr(pipeline.MODULES["cls"], "run", fails)
    with pytest.raises(RuntimeError, match="train-cls failed"):
        pipeline.run(other)
    assert pids
    assert not _gone(set(pids), seconds=60), "every early worker ended"


def test_cues_whose_workers_were_killed_are_made_by_a_new_pool_and_then_by_the_step(tiny_run, monkeypatch):
    cfg, _ = tiny_run
    ds, indices = _split(cfg)
    grid = seeds.cam_grid(cfg)
    sec = dataclasses.replace(cfg.seeds, saliency="rbd")        # slow enough that a kill finds work in hand
    expected = [seeds._saliency_background(ds.image(i), sec, grid) for i in indices]
    here, make = [], seeds._saliency_background
    monkeypatch.setattr(seeds, "_saliency_background", lambda *a: here.append(1) or make(*a))
    early = seeds.EarlyBackgrounds(ds, indices, sec, grid, workers=1, chunk=len(ds) // 2)

    def kill_the_workers():
        pids = list(early.pool._processes)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)               # as the kernel's out-of-memory killer would
        return pids

    try:
        first = kill_the_workers()
        assert np.array_equal(early.get(0), expected[0])
        assert early.restarts == 0 and list(early.pool._processes) != first, "a new pool"
        assert not here, "made by the new pool"
        kill_the_workers()
        for i in indices:                              # the second break: the step makes what is left
            assert np.array_equal(early.get(i), expected[i]), i
        assert here, "made here"
    finally:
        early.close()


def test_a_job_carries_only_the_ids_of_its_images(tiny_run):
    cfg, _ = tiny_run
    ds, _ = _split(cfg)
    ids = list(ds.ids)
    few = seeds._few(ds, [2, 5])
    assert few.ids == [ids[2], ids[5]] and ds.ids == ids
    assert np.array_equal(few.image(1), ds.image(5))


def test_the_cues_of_the_step_are_the_papers_rule_on_its_cams_and_saliency(tiny_run):
    """Against :func:`dsrg.method.seeds.make_cues` (CAM foreground + saliency background on the CAM grid) on the
    CAMs of the trained classifier and the saliency of the image, computed here."""
    from dsrg.method import transforms as T
    from dsrg.data.cues import CueStore
    from dsrg.method.saliency import compute_saliency
    from dsrg.method.seeds import make_cues
    from dsrg.run.checkpoints import load_model
    from dsrg.run.networks import build_cls_net

    cfg, run = tiny_run
    ds, _ = _split(cfg)
    store = CueStore.load(run["seeds"] / "cues.npz")
    model = load_model(run["cls"] / "model.pt", build_cls_net(cfg, ds.num_classes, False), CPU).eval()
    for i in range(3):
        image = ds.image(i)
        x = T.normalize(T.to_chw(T.resize_image(image, cfg.cls.input_size)).unsqueeze(0), cfg.data.normalize)
        with torch.no_grad():
            cams = model.cams(x).float()
        cams = torch.cat([torch.zeros_like(cams[:, :1]), cams], 1)
        sal = torch.from_numpy(compute_saliency(image, cfg.seeds.saliency))[None]
        labels = torch.from_numpy(ds.labels(i))[None]
        expected = make_cues(cams, sal, labels, cfg.seeds.fg_rule, cfg.seeds.fg_fraction, cfg.seeds.bg_threshold)
        stored, _ = store.get(ds.ids[i])
        assert np.array_equal(stored, expected[0].numpy()), ds.ids[i]


def test_two_processes_under_torchrun_begin_their_shares_early_to_the_same_run(tiny_run, tmp_path):
    """Each process begins the saliency of its own share (``dsrg.run.dist.share``): two torchrun processes give
    the cues, and then the evaluation, that the same two give without the overlap."""
    from conftest import tiny_overrides

    cfg, _ = tiny_run
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    made = {}
    for overlap in ("always", "never"):
        out = tmp_path / overlap
        args = tiny_overrides(cfg.data.root, out, f"seeds.overlap={overlap}", "seeds.workers=2")
        done = subprocess.run([*torchrun(2, tmp_path), "-m", "dsrg.cli", "run", "--profile", "demo", *args], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        made[overlap] = tiny_profile(cfg.data.root, out, f"seeds.overlap={overlap}", "seeds.workers=2")
    cues = [folders.step_dir(made[k], "seeds") / "cues.npz" for k in made]
    assert cues[0].name == cues[1].name and cues[0].read_bytes() == cues[1].read_bytes()
    metrics = [json.loads((folders.step_dir(made[k], "eval") / "metrics.json").read_text()) for k in made]
    assert [m["iou"] for m in metrics] == [metrics[1]["iou"]] * 2


def test_the_overlap_benchmark_times_train_cls_and_counts_the_cues_made_meanwhile(tiny_run):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from conftest import tiny_overrides
    from overlap import one_round

    cfg, _ = tiny_run
    seconds, made = one_round("demo", tiny_overrides(cfg.data.root, "unused"), workers=2)
    assert seconds > 0 and 0 <= made <= 16
