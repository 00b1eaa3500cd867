"""Long work: resuming an interrupted step, torchrun data parallel, determinism, the lr schedules."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dsrg import runs
from dsrg.data.synthetic import SynthConfig, write_dataset
from dsrg.profile import load_profile
from dsrg.steps import seeds, train_cls
from dsrg.train import World, batch_keys, lr_factor

from conftest import tiny_overrides, tiny_profile

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _dsrg(*args: str, env=ENV) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dsrg.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _weights(folder: Path) -> dict:
    return torch.load(folder / "model.pt", weights_only=False)["state_dict"]


def test_the_step_schedule_is_the_papers_and_poly_is_deeplabs():
    paper = load_profile("voc-vgg16").seg
    assert [lr_factor(paper, it) for it in (0, 1999, 2000, 4000, 7999)] == pytest.approx([1, 1, 0.1, 0.01, 0.001])
    retrain = load_profile("voc-vgg16").retrain
    assert lr_factor(retrain, 0) == 1 and lr_factor(retrain, 10000) == pytest.approx(0.5 ** 0.9)


def test_batches_split_one_global_batch_across_processes():
    one = batch_keys(10, 4, seed=3, start=0, stop=5, world=World(0, 1))
    two = [batch_keys(10, 4, seed=3, start=0, stop=5, world=World(r, 2)) for r in range(2)]
    for it in range(5):
        assert sorted(two[0][it] + two[1][it]) == sorted(one[it])
    assert batch_keys(10, 4, seed=3, start=2, stop=5, world=World(0, 1)) == one[2:], "resuming draws the same"
    epoch0 = [i for it in range(2) for i, _ in one[it]]
    assert len(set(epoch0)) == 8, "an epoch draws without replacement"


def test_an_interrupted_step_resumes_to_the_same_weights(tmp_path):
    root = tmp_path / "synth"
    write_dataset(root, SynthConfig(n_train=16, n_val=4, size=64), progress=False)
    args = tiny_overrides(root, tmp_path / "killed", "cls.iterations=24")
    proc = _dsrg("train-cls", "--profile", "demo", *args)
    cfg = load_profile("demo", args)
    folder = runs.step_dir(cfg, "cls")
    deadline = time.time() + 120
    while not (folder / "ckpt.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / "ckpt.pt").exists() and not runs.is_done(folder), "killed before the end, after a checkpoint"
    killed_at = json.loads((folder / "log.jsonl").read_text().splitlines()[-1])["it"]
    assert killed_at < 23

    resumed = _dsrg("train-cls", "--profile", "demo", "--resume", *args)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    full = _dsrg("train-cls", "--profile", "demo", *tiny_overrides(root, tmp_path / "full", "cls.iterations=24"))
    assert full.wait(timeout=300) == 0, full.stdout.read()

    log = [json.loads(x)["it"] for x in (folder / "log.jsonl").read_text().splitlines()]
    assert log == list(range(24)), "the log has each iteration once"
    a, b = _weights(folder), _weights(tmp_path / "full" / folder.name)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_two_cpu_processes_under_torchrun_give_the_one_process_loss(tmp_path):
    root = tmp_path / "synth"
    extra = ("cls.batch_norm=false", "seg.batch_norm=false", "seg.dropout=0", "seg.iterations=4")
    cfg = tiny_profile(root, tmp_path / "one", *extra)
    train_cls.run(cfg)
    seeds.run(cfg)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    args = ["train-seg", "--profile", "demo", *tiny_overrides(root, tmp_path / "two", *extra)]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29533", "-m", "dsrg.cli", *args], env=ENV, capture_output=True,
                         text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    single = _dsrg(*args[:3], *tiny_overrides(root, tmp_path / "one", *extra))
    assert single.wait(timeout=300) == 0, single.stdout.read()
    name = runs.step_dir(cfg, "seg").name
    one = [json.loads(x) for x in (tmp_path / "one" / name / "log.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / name / "log.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 4
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3, abs=1e-5), (a, b)
