"""The paper-scale benchmark's pieces (benchmarks/paper_scale.py): the VOC-shaped set and its links, the
measures read from a step's folder, and the projection arithmetic, on numbers checkable by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsrg.data.check import file_problems
from dsrg.data.voc import VOCSegmentation
from dsrg.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from paper_scale import (TRAIN_IDS, VOC_SIZES, inference_measures, loader_rates,  # noqa: E402
                         overlap_estimate, pool_size, project, saliency_rates, slice_overrides, table,
                         training_measures, voc_shaped_set, write_slice)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return voc_shaped_set(tmp_path_factory.mktemp("set") / "voc", pool=3, train=7, val=4, processes=2)


def test_every_id_is_a_link_to_one_of_the_pool_images(small_set):
    ids = (small_set / "ImageSets/Segmentation/train_aug.txt").read_text().split()
    val = (small_set / "ImageSets/Segmentation/val.txt").read_text().split()
    assert len(ids) == 7 and len(val) == 4 and not set(ids) & set(val)
    pool = {os.stat(small_set / "pool" / f"{k}.jpg").st_ino: k for k in range(3)}
    linked = [pool[os.stat(small_set / "JPEGImages" / f"{i}.jpg").st_ino] for i in ids + val]
    assert linked == [k % 3 for k in range(11)], "id k links pool image k mod 3"
    assert os.stat(small_set / "pool" / "0.png").st_nlink == 1 + 4      # ids 0, 3, 6 (train), 9 (val)


def test_the_set_is_a_clean_voc_root_of_voc_sizes(small_set):
    for split in ("train_aug", "val"):
        ds = VOCSegmentation(small_set, split)
        assert file_problems(ds, sample=None) == []
        for i in range(len(ds)):
            assert ds.image(i).shape[:2] in VOC_SIZES
            assert set(np.unique(ds.mask(i))) <= set(range(21)) | {255}
    assert Image.open(small_set / "SegmentationClass" / "2008_000000.png").mode == "P"


def test_the_set_is_written_once_and_another_one_is_refused(small_set):
    before = (small_set / "dataset.json").stat().st_mtime_ns
    assert voc_shaped_set(small_set, pool=3, train=7, val=4) == small_set
    assert (small_set / "dataset.json").stat().st_mtime_ns == before
    with pytest.raises(InputError, match="delete it or give another --data folder"):
        voc_shaped_set(small_set, pool=5, train=7, val=4)
    made = json.loads((small_set / "dataset.json").read_text())
    assert made["config"] == {"pool": 3, "train_aug": 7, "val": 4, "seed": 0} and made["write_s"] >= 0


def test_pool_sizes_follow_the_voc_spread():
    drawn = [pool_size(i, 0) for i in range(2000)]
    assert set(drawn) <= set(VOC_SIZES)
    share = drawn.count((375, 500)) / len(drawn)
    assert abs(share - VOC_SIZES[(375, 500)]) < 0.05


def test_a_slice_is_the_first_ids_of_its_split(small_set):
    name = write_slice(small_set, "train_aug", 2)
    assert name == "train_aug_first2"
    assert VOCSegmentation(small_set, name).ids == ["2008_000000", "2008_000001"]


def test_a_training_slice_rates_without_its_first_iteration_and_projects_it_once_by_hand():
    log = [{"it": 0, "s": 5.0, "wait": 4.0}, {"it": 1, "s": 2.0, "wait": 0.5}, {"it": 2, "s": 2.0, "wait": 0.0}]
    m = training_measures(log, wall_s=19.0)
    assert m["per_iteration_s"] == 2.0 and m["data_wait"] == 0.125 and m["setup_s"] == 10.0
    assert m["warmup_s"] == 3.0, "the first iteration's 5 s: 3 s beyond the rate"
    assert "gpu_idle" not in m
    assert project(m, iterations=8000) == 10.0 + 5.0 + 7999 * 2.0


def test_a_classifier_slice_projects_its_validation_apart_from_its_setup():
    log = [{"it": 0, "s": 3.0, "wait": 0.0}, {"it": 1, "s": 1.0, "wait": 0.0}]
    m = training_measures(log, wall_s=16.0, timed={"images": 4, "s": 2.0})
    assert m["per_iteration_s"] == 1.0 and m["per_image_s"] == 0.5 and m["setup_s"] == 10.0
    assert project(m, iterations=100, images=1449) == 10.0 + 3.0 + 99 * 1.0 + 1449 * 0.5


def test_the_gpu_idle_share_is_the_wall_time_outside_the_gpu_work():
    log = [{"it": 0, "s": 9.0, "wait": 0, "gpu": 1.0}, {"it": 1, "s": 1.0, "wait": 0, "gpu": 0.75},
           {"it": 2, "s": 1.0, "wait": 0, "gpu": 0.75}]
    assert training_measures(log, wall_s=11.0)["gpu_idle"] == 0.25


def test_an_inference_slice_projects_its_setup_once_and_its_images_by_hand():
    m = inference_measures({"images": 20, "s": 10.0}, wall_s=14.0)
    assert m["per_image_s"] == 0.5 and m["setup_s"] == 4.0
    assert project(m, images=10_582) == 4.0 + 10_582 * 0.5


def test_an_inference_slice_rates_the_images_after_its_first_quarter_by_hand():
    from dsrg.run.clock import Clock

    now = iter([0.0, 5, 6, 7, 8, 9, 10, 11, 12])        # started; 8 images done, one a second after the first
    clock = Clock(now=lambda: next(now))
    for _ in range(8):
        clock.tick()
    timed = clock.timed()
    assert timed == {"images": 8, "s": 12.0, "start": {"images": 2, "s": 6.0}}
    m = inference_measures(timed, wall_s=14.0)
    assert m["per_image_s"] == 1.0 and m["warmup_s"] == 4.0 and m["setup_s"] == 2.0   # 5 s for image 1: 4 s start-up
    assert project(m, images=100) == 2.0 + 5.0 + 99 * 1.0


def test_a_batch_done_at_once_counts_whole_in_the_start_up():
    from dsrg.run.clock import Clock

    now = iter([0.0, 3, 5])                              # started; a batch of 32 at 3 s, the next at 5 s
    clock = Clock(now=lambda: next(now))
    clock.tick(32), clock.tick(32)
    timed = clock.timed()
    assert timed == {"images": 64, "s": 5.0, "start": {"images": 32, "s": 3.0}}
    assert inference_measures(timed, wall_s=5.0)["per_image_s"] == 2.0 / 32


def test_processes_that_split_a_step_count_every_image_in_the_slowest_ones_time():
    from dsrg.run.clock import combined

    one = {"images": 8, "s": 10.0, "start": {"images": 2, "s": 4.0}}
    two = {"images": 8, "s": 12.0, "start": {"images": 2, "s": 5.0}}
    assert combined([one, two]) == {"images": 16, "s": 12.0, "start": {"images": 4, "s": 5.0}}
    assert combined([one, {"images": 2, "s": 1.0}]) == {"images": 10, "s": 10.0}


def test_the_table_gives_the_projected_total():
    train = {**training_measures([{"it": 0, "s": 1.0, "wait": 0.0}], 61.0), "full": {"iterations": 60},
             "peak": {"rss_mib": 100}}
    infer = {**inference_measures({"images": 2, "s": 2.0}, 2.0), "full": {"images": 60}, "peak": {"rss_mib": 50}}
    for m in (train, infer):
        m["projected_s"] = project(m, **m["full"])
    text = table({"cls": train, "eval": infer})
    assert "projected total: 3.0 min" in text, text      # (60 + 60 x 1) + (0 + 60 x 1) seconds
    stopped = table({"cls": train, "eval": infer}, ["cls", "seeds", "seg", "eval"])
    assert "projected total of the 2 steps measured: 3.0 min (0.05 h); not measured: seeds, seg" in stopped


def test_the_loader_rate_is_measured_for_each_training_steps_items(small_set):
    rates = loader_rates(small_set, "train_aug", images=3)
    assert set(rates) == {"cls", "seg", "retrain"} and all(r > 0 for r in rates.values())


def test_the_saliency_rate_is_measured_in_one_process_and_in_one_per_core(small_set):
    rates = saliency_rates(small_set, "train_aug", images=3)
    assert len(rates) == 2 and "one process" in rates and all(r > 0 for r in rates.values())


def _overlap(cores: int, device: str = "cuda") -> dict:
    """train-cls 300 s at 0.04 s per batch of 20 (500 img/s), a loader process 250 img/s: it takes 1 + 2 cores.
    Saliency alone 400 s in 12 processes; the CAMs 5 s setup, 1 s warm-up, 0.01 s per image."""
    result = {"cls": {"per_iteration_s": 0.04, "projected_s": 300.0}, "seeds": {"projected_s": 500.0},
              "seg": {"projected_s": 1000.0}}
    early = {"workers": 12, "saliency": {"projected_s": 400.0},
             "cams": {"setup_s": 5.0, "warmup_s": 1.0, "per_image_s": 0.01}}
    return overlap_estimate(result, early, cores, {"cls": 250.0}, device, batch_size=20)


def test_the_overlap_hides_the_saliency_behind_train_cls_by_hand():
    cams = 5 + 1 + TRAIN_IDS * 0.01                                    # 111.82 s
    on16 = _overlap(16)              # 16 - 3 cores left >= 12 processes: all of train-cls's 300 s hides saliency
    assert on16["hidden_s"] == pytest.approx(300.0)
    assert on16["seeds_projected_s"] == pytest.approx(cams)            # the 100 s left run beside the CAMs
    assert on16["projected_total_s"] == pytest.approx(300 + cams + 1000)
    on8 = _overlap(8)                # 5 cores left to 12 processes: 5 / 12 of train-cls's time
    assert on8["hidden_s"] == pytest.approx(300 * 5 / 12)
    assert on8["seeds_projected_s"] == pytest.approx(6 + 400 - 125)
    on_cpu = _overlap(16, "cpu")     # not used on the CPU, where training and the CAMs take every core
    assert on_cpu["hidden_s"] == 0 and on_cpu["seeds_projected_s"] == 500.0
    assert on_cpu["projected_total_s"] == 300 + 500 + 1000


def test_a_bad_profile_key_is_named_before_the_set_is_written(tmp_path):
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "paper_scale.py"),
                           "--data", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "retrain.input_size=97"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("paper_scale: retrain.input_size: unknown key")
    assert "did you mean 'crop_size'?" in done.stderr and not (tmp_path / "set").exists()


def test_a_users_schedule_is_projected_and_the_slice_keeps_its_own(small_set):
    from argparse import Namespace

    from dsrg.profile import load_profile

    args = Namespace(profile="voc-vgg16", slice=2, iterations=3, out="runs/x", device="cpu",
                     overrides=["seg.iterations=12000", "data.loader_workers=4", "out=elsewhere"])
    cfg = load_profile("voc-vgg16", slice_overrides(args, small_set))
    assert (cfg.seg.iterations, cfg.data.loader_workers, cfg.out) == (3, 4, "runs/x")
    assert load_profile("voc-vgg16", args.overrides).seg.iterations == 12000       # the full schedule's


def test_a_benchmark_stopped_by_sigterm_says_so_in_one_line_and_leaves_no_half_written_set(tmp_path):
    import signal
    import time

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_scale.py"
    proc = subprocess.Popen([sys.executable, str(script), "--data", str(tmp_path / "set"), "--out",
                             str(tmp_path / "out"), "--pool", "400"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(tmp_path.glob(".set.*/pool/*.png")) and time.time() < deadline:   # its pool is writing the set
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert err.strip() == "paper_scale: stopped (a --json record keeps what was measured)"
    assert list(tmp_path.iterdir()) == [], "the set's temporary folder is removed"
