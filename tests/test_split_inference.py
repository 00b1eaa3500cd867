"""Under torchrun the inference steps (seeds, pseudo-labels, evaluate) split the images among the processes:
two CPU processes write what one writes, byte for byte, and a resumed split step keeps what was written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from conftest import tiny_overrides, torchrun

from dsrg.data.cues import CueStore
from dsrg.data.dataset import open_split
from dsrg.data.voc import read_label_png
from dsrg.method.metrics import ConfusionMeter
from dsrg.run import folders as runs
from dsrg.run.dist import World, share

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
STEPS = ("seeds", "pseudo-labels", "evaluate")
FOLDERS = ("seeds", "pseudo", "eval")


def _dsrg(tmp_path, processes: int, *args: str) -> None:
    launcher = torchrun(processes, tmp_path) if processes > 1 else [sys.executable]
    done = subprocess.run([*launcher, "-m", "dsrg.cli", *args], env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_each_process_takes_every_nth_image_from_its_rank():
    assert list(share(7, World(0, 1))) == [0, 1, 2, 3, 4, 5, 6]
    assert list(share(7, World(0, 2))) == [0, 2, 4, 6]
    assert list(share(7, World(1, 2))) == [1, 3, 5]
    assert sorted(i for r in range(3) for i in share(7, World(r, 3))) == list(range(7))


def test_two_cpu_processes_make_the_seeds_pseudo_labels_and_evaluation_of_one(tiny_run, tmp_path):
    cfg, folders = tiny_run
    made = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        shutil.copytree(cfg.out, out)
        for name in FOLDERS:                     # the classifier and the trained models stay
            shutil.rmtree(out / folders[name].name)
        for step in STEPS:
            _dsrg(tmp_path, processes, step, "--profile", "demo", *tiny_overrides(cfg.data.root, out))
        made[processes] = out
    one, two = made[1], made[2]
    seeds_dir = folders["seeds"].name
    a, b = CueStore.load(one / seeds_dir / "cues.npz"), CueStore.load(two / seeds_dir / "cues.npz")
    assert a.ids == b.ids and len(a) == 16
    for field in ("labels", "offsets", "entries"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    done = {p: runs.done_info(made[p] / seeds_dir) for p in (1, 2)}
    assert done[1]["quality"] == done[2]["quality"] and done[2]["timed"]["images"] == 16
    assert (done[1]["processes"], done[2]["processes"]) == (1, 2) and "torchrun, 2 processes" in done[2]["machine"]
    pseudo = folders["pseudo"].name
    labels = sorted((one / pseudo / "labels").glob("*.png"))
    assert len(labels) == 16
    for path in labels:
        assert path.read_bytes() == (two / pseudo / "labels" / path.name).read_bytes(), path.name
    assert runs.done_info(one / pseudo)["quality"] == runs.done_info(two / pseudo)["quality"]
    assert runs.done_info(two / pseudo)["timed"]["images"] == 16
    scored = folders["eval"].name
    metrics = [json.loads((d / scored / "metrics.json").read_text()) for d in (one, two)]
    for key in ("miou", "pixel_accuracy", "iou", "images"):
        assert metrics[0][key] == metrics[1][key], key
    assert (one / scored / "per_image.csv").read_bytes() == (two / scored / "per_image.csv").read_bytes()
    for path in sorted((one / scored / "pred").glob("*.png")):
        assert path.read_bytes() == (two / scored / "pred" / path.name).read_bytes(), path.name


def test_resumed_split_pseudo_labels_keep_the_labels_written(tiny_run, tmp_path):
    """Labels left by an interrupted run (here: half of them, put back by hand) are kept by --resume under
    torchrun, each process skipping its own, and the quality counts them."""
    cfg, folders = tiny_run
    out = tmp_path / "run"
    shutil.copytree(cfg.out, out)
    pseudo = out / folders["pseudo"].name
    labels = sorted((pseudo / "labels").glob("*.png"))
    kept = {p.name: p.read_bytes() for p in labels[::2]}
    (pseudo / "done.json").unlink()
    for p in labels[1::2]:
        p.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (pseudo / "labels").glob("*.png")}
    _dsrg(tmp_path, 2, "pseudo-labels", "--profile", "demo", "--resume", *tiny_overrides(cfg.data.root, out))
    assert len(list((pseudo / "labels").glob("*.png"))) == 16
    for name, data in kept.items():
        assert (pseudo / "labels" / name).read_bytes() == data
        assert (pseudo / "labels" / name).stat().st_mtime_ns == before[name], "kept, not written again"
    info = runs.done_info(pseudo)
    assert info["timed"]["images"] == 8
    ds = open_split(cfg.data, cfg.data.train_split)
    meter = ConfusionMeter(ds.num_classes)
    for i, image_id in enumerate(ds.ids):
        meter.update(read_label_png(pseudo / "labels" / f"{image_id}.png", ds.num_classes), ds.mask(i))
    as_written = json.loads(json.dumps({**meter.summary(), "classes": ds.class_names}).replace("NaN", "null"))
    assert info["quality"] == as_written                                             # every label, kept ones too
