"""The pipeline steps on a tiny profile: each step's outputs, skipping, reuse of upstream steps, errors."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides, tiny_profile
from PIL import Image

from dsrg.cli import main
from dsrg.data.cues import CueStore
from dsrg.data.voc import VOCSegmentation, read_label_png
from dsrg.errors import InputError
from dsrg.files import locked
from dsrg.method.metrics import confusion_matrix, mean_iou
from dsrg.profile import available_profiles, load_profile
from dsrg.reproduce import experiments
from dsrg.run import folders as runs
from dsrg.run import split_lists
from dsrg.run.checkpoints import save_checkpoint
from dsrg.run.train import TIMING
from dsrg.steps import pipeline


def test_every_step_is_done_and_named_by_its_hash(tiny_run):
    cfg, folders = tiny_run
    assert list(folders) == ["cls", "seeds", "seg", "pseudo", "retrain", "eval"]
    for step, folder in folders.items():
        assert folder.name == f"{step}-{runs.step_hash(cfg, step)}"
        assert runs.is_done(folder), step
        assert json.loads((folder / "config.json").read_text())["hash"] == runs.step_hash(cfg, step)
        assert not (folder / "ckpt.pt").exists(), "the checkpoint of a finished step is removed"


def _hashes_on(monkeypatch, device: str, *overrides: str, capability=(9, 0)) -> dict[str, str]:
    """Every step's hash of the voc-vgg16 profile with ``overrides``, as if ``device`` were the device (a
    GPU of compute ``capability``)."""
    monkeypatch.setattr("dsrg.run.dist.resolve_device", lambda _: torch.device(device))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: capability)
    cfg = load_profile("voc-vgg16", list(overrides))
    return {step: runs.step_hash(cfg, step) for step in ("cls", "seeds", "seg", "pseudo", "retrain", "eval")}


def test_the_settings_said_to_change_no_result_leave_every_steps_hash_as_it_is(monkeypatch):
    """folders.RUN_SETTINGS and NOT_RESULTS, which the spread's comparison of records also leaves out, each set
    to another value than the profile's."""
    from dsrg.profile import CHOICES

    cfg = load_profile("voc-vgg16")

    def other(key: str) -> str:
        value = _get(cfg, key)
        if isinstance(value, bool):
            return str(not value).lower()
        if isinstance(value, int):
            return str(value + 1)
        return next(c for c in CHOICES.get(key, ("cpu", "elsewhere")) if c != value)

    base = _hashes_on(monkeypatch, "cpu")
    for key in sorted(runs.RUN_SETTINGS - {"device"} | runs.NOT_RESULTS):    # the device's effects: tests below
        assert _hashes_on(monkeypatch, "cpu", f"{key}={other(key)}") == base, key


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_the_backbones_own_head_named_or_not_keeps_the_segmentation_folder_and_the_other_head_is_a_new_one():
    def seg(*overrides):
        return runs.step_hash(load_profile("demo", ["seg.init=imagenet", *overrides]), "seg")

    assert seg() == seg("seg.head=vgg16") != seg("seg.head=resnet101")
    assert seg() == "796765d595", "the demo's seg step from random weights: its folder as at 9a70618, before seg.head"
    with pytest.raises(InputError, match=r'^seg.head: expected one of "", vgg16, resnet101, got \'aspp\' \(profile'):
        load_profile("demo", ["seg.head=aspp"])


def test_bf16_autocast_names_other_runs_on_cuda_and_is_ignored_on_the_cpu(monkeypatch):
    assert _hashes_on(monkeypatch, "cpu", "amp=true") == _hashes_on(monkeypatch, "cpu", "amp=false")
    on, off = _hashes_on(monkeypatch, "cuda", "amp=true"), _hashes_on(monkeypatch, "cuda", "amp=false")
    assert all(on[step] != off[step] for step in on)


def test_a_gpu_without_native_bf16_trains_in_float32_and_names_its_runs_so(monkeypatch):
    """A V100 (compute capability 7.0) would emulate bf16: amp=true runs as amp=false there."""
    from dsrg.run.dist import autocast

    volta = dict(capability=(7, 0))
    assert _hashes_on(monkeypatch, "cuda", "amp=true", **volta) == _hashes_on(monkeypatch, "cuda", "amp=false", **volta)
    assert isinstance(autocast(torch.device("cuda", 0), True), contextlib.nullcontext)


def test_the_auto_crf_backend_is_hashed_as_the_backend_that_will_run(monkeypatch):
    """On CUDA, "auto" is the exact CRF up to a 128 x 128 grid (321 px in: 41 x 41) and pydensecrf above."""
    exact, lattice = "seg.crf_backend=exact", "seg.crf_backend=pydensecrf"
    for device, size, same_as in [("cuda", 321, exact), ("cuda", 1201, lattice), ("cpu", 321, lattice)]:
        size_args = (f"seg.input_size={size}",)
        auto = _hashes_on(monkeypatch, device, *size_args)["seg"]
        assert auto == _hashes_on(monkeypatch, device, *size_args, same_as)["seg"], (device, size)


def test_the_test_time_crf_backend_is_hashed_as_the_backend_that_will_run(monkeypatch):
    """"auto" is the lattice on CUDA and pydensecrf on the CPU; pydensecrf, the backend of the runs made
    before there was a choice, keeps their names; without a CRF the backend names nothing."""
    for step, key in (("pseudo", "pseudo"), ("eval", "eval")):
        lattice, pydensecrf = f"{key}.crf_backend=lattice", f"{key}.crf_backend=pydensecrf"
        assert _hashes_on(monkeypatch, "cuda")[step] == _hashes_on(monkeypatch, "cuda", lattice)[step]
        assert _hashes_on(monkeypatch, "cpu")[step] == _hashes_on(monkeypatch, "cpu", pydensecrf)[step]
        assert _hashes_on(monkeypatch, "cpu", lattice)[step] != _hashes_on(monkeypatch, "cpu")[step]
        assert (_hashes_on(monkeypatch, "cpu", lattice, f"{key}.crf=false")[step]
                == _hashes_on(monkeypatch, "cpu", f"{key}.crf=false")[step])


def test_a_root_of_ones_own_classes_names_its_runs_by_them(tmp_path):
    """Editing class_names.txt of a real-data root makes new step folders (the networks have other outputs);
    VOC 2012's names, written or not, and COCO's name nothing, so the runs made before keep their folders."""
    from dsrg.data.coco import COCO_CLASSES
    from dsrg.data.voc import VOC_CLASSES
    from dsrg.profile import load_profile

    root = tmp_path / "mine"
    root.mkdir()
    cfg = load_profile("voc-vgg16", [f"data.root={root}"])
    voc = {step: runs.step_hash(cfg, step) for step in runs.STEPS}
    (root / "class_names.txt").write_text("\n".join(VOC_CLASSES) + "\n")
    assert {step: runs.step_hash(cfg, step) for step in runs.STEPS} == voc
    (root / "class_names.txt").write_text("\n".join(COCO_CLASSES) + "\n")
    assert runs.step_hash(cfg, "cls") == voc["cls"]
    (root / "class_names.txt").write_text("background\nperson\ncup\n")
    cups = {step: runs.step_hash(cfg, step) for step in runs.STEPS}
    assert all(cups[step] != voc[step] for step in runs.STEPS)
    (root / "class_names.txt").write_text("background\nperson\nmug\n")
    assert all(runs.step_hash(cfg, step) != cups[step] for step in runs.STEPS)


def test_a_step_that_fails_before_keeping_anything_leaves_no_folder_behind(tmp_path):
    """A failure (a label value beyond the classes in a file pre-flight did not decode, say) or Ctrl-C in a step
    that has only written its config.json and an empty log removes its folder; a log line or a checkpoint keeps
    it, for --resume and for reading."""
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run")
    folder = runs.step_dir(cfg, "cls")
    for error in (InputError("a label value beyond the classes"), KeyboardInterrupt()):
        with pytest.raises(type(error)), runs.run_folder(cfg), runs.step_lock(cfg, "cls"):
            runs.start(cfg, "cls", {})
            (folder / "log.jsonl").touch()
            raise error
        assert not folder.exists() and not folder.parent.exists()      # nor the run folder it made
    with pytest.raises(KeyboardInterrupt), runs.step_lock(cfg, "cls"):
        runs.start(cfg, "cls", {})
        (folder / "log.jsonl").write_text('{"it": 0}\n')
        raise KeyboardInterrupt
    assert (folder / "config.json").is_file()


def test_train_cls_writes_a_model_and_a_log_line_per_iteration(tiny_run):
    cfg, folders = tiny_run
    lines = [json.loads(x) for x in (folders["cls"] / "log.jsonl").read_text().splitlines()]
    assert [x["it"] for x in lines] == list(range(cfg.cls.iterations))
    assert all(np.isfinite(x["loss"]) and x["lr"] > 0 for x in lines)
    info = runs.done_info(folders["cls"])
    assert 0.0 <= info["val_map"] <= 1.0 and info["wall_s"] > 0
    assert "fc8.weight" in torch.load(folders["cls"] / "model.pt", weights_only=False)["state_dict"]


def test_seeds_store_cues_of_present_classes_on_the_output_grid(tiny_run):
    cfg, folders = tiny_run
    store = CueStore.load(folders["seeds"] / "cues.npz")
    ds = VOCSegmentation(cfg.data.root, "train")
    assert store.ids == ds.ids and store.grid == (9, 9)
    for i, image_id in enumerate(ds.ids):
        cues, labels = store.get(image_id)
        assert np.array_equal(labels, ds.labels(i))
        assert not cues[~labels].any(), "no cue for a class absent from the image"
    quality = runs.done_info(folders["seeds"])["quality"]
    assert set(quality) >= {"precision", "recall", "iou"}


def test_train_seg_records_supervision_quality_per_epoch_and_fig1_maps(tiny_run):
    cfg, folders = tiny_run
    rows = list(csv.DictReader((folders["seg"] / "supervision.csv").open()))
    epochs = cfg.seg.iterations // (16 // cfg.seg.batch_size)
    assert [int(r["epoch"]) for r in rows] == list(range(epochs + 1))   # row 0: the seeds
    seeds_q = runs.done_info(folders["seeds"])["quality"]
    assert float(rows[0]["precision"]) == pytest.approx(seeds_q["precision"])
    fig1 = np.load(folders["seg"] / "fig1.npz")
    assert fig1["supervision"].shape == (epochs + 1, 2, 8, 9, 9) and fig1["supervision"].dtype == bool
    store = CueStore.load(folders["seeds"] / "cues.npz")
    first = store.get(str(fig1["ids"][0]))[0]
    assert np.array_equal(fig1["supervision"][0, 0], first), "epoch 0 shows the original seeds"
    assert (fig1["supervision"][-1, 0] >= first).all(), "growing never removes a seed"
    log = [json.loads(x) for x in (folders["seg"] / "log.jsonl").read_text().splitlines()]
    assert {"seed_loss", "boundary_loss", "lr", "loss"} <= set(log[0])


def test_a_damaged_cue_store_is_named_with_the_folder_to_delete(tiny_run, tmp_path):
    cfg, folders = tiny_run
    cut = tmp_path / "seeds-0123456789" / "cues.npz"
    cut.parent.mkdir()
    cut.write_bytes((folders["seeds"] / "cues.npz").read_bytes()[:1000])
    with pytest.raises(InputError, match=rf"cannot read cue store {cut} \(BadZipFile: .*\): it is cut short or "
                                         rf"damaged; delete the step folder {cut.parent} to make the seeds again"):
        CueStore.load(cut)


def test_pseudo_labels_and_predictions_are_palette_pngs_of_the_image_size(tiny_run):
    cfg, folders = tiny_run
    ds = VOCSegmentation(cfg.data.root, "train")
    labels = sorted(p.stem for p in (folders["pseudo"] / "labels").glob("*.png"))
    assert labels == sorted(ds.ids)
    assert read_label_png(folders["pseudo"] / "labels" / f"{ds.ids[0]}.png", 8).shape == (64, 64)
    for png in (folders["pseudo"] / "labels" / f"{ds.ids[0]}.png", next((folders["eval"] / "pred").glob("*.png"))):
        with Image.open(png) as im:
            assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0], png   # class 1 in the VOC palette
    metrics = json.loads((folders["eval"] / "metrics.json").read_text())
    assert metrics["model"] == "retrain" and metrics["split"] == "val" and 0.0 <= metrics["miou"] <= 1.0
    assert len(list((folders["eval"] / "pred").glob("*.png"))) == 4
    assert len(list(csv.DictReader((folders["eval"] / "per_image.csv").open()))) == 4


def test_the_evaluation_scores_the_predictions_it_saved(tiny_run):
    """metrics.json's mIoU and per-class IoU are those of the saved prediction PNGs against the label maps, the
    classes in the dataset's order (background first, as a reader of the file expects)."""
    cfg, folders = tiny_run
    ds = VOCSegmentation(cfg.data.root, "val")
    conf = sum(confusion_matrix(read_label_png(folders["eval"] / "pred" / f"{image_id}.png", ds.num_classes),
                                ds.mask(i), ds.num_classes) for i, image_id in enumerate(ds.ids))
    metrics = json.loads((folders["eval"] / "metrics.json").read_text())
    assert list(metrics["iou"]) == ds.class_names
    assert metrics["miou"] == pytest.approx(mean_iou(conf))
    m = conf.numpy().astype(float)
    with np.errstate(invalid="ignore"):
        per_class = np.diag(m) / (m.sum(0) + m.sum(1) - np.diag(m))            # nan: class in neither
    for name, iou in zip(ds.class_names, per_class):
        assert (metrics["iou"][name] is None) if np.isnan(iou) else metrics["iou"][name] == pytest.approx(iou), name


def test_each_row_of_table2_adds_one_part_to_the_row_above():
    rows = list(experiments.ABLATION.values())
    added = [sorted(set(below) - set(above)) for above, below in zip(rows, rows[1:])]
    assert added == [["seg.seed_loss=balanced"], ["seg.growing=true"], ["retrain.enabled=true"]]
    base = load_profile("demo", experiments.ABLATION["baseline"])
    assert (base.seg.seed_loss, base.seg.growing, base.retrain.enabled) == ("sec", False, False)
    assert experiments.TABLE1["SEC"] == experiments.ABLATION["baseline"]
    assert experiments.TABLE1["DSRG (VGG16)"] == experiments.ABLATION["+Retrain"]
    one_sided = load_profile("demo", experiments.theta_overrides(0.99, float("inf")))
    assert one_sided.seg.growing and (one_sided.seg.theta_bg, one_sided.seg.theta_fg) == (0.99, float("inf"))


def test_table1s_dsrg_steps_differ_from_the_vgg16_rows_by_the_start_alone_or_by_the_resnet_row():
    steps, plus_dsrg = experiments.DSRG_STEPS, experiments.ABLATION["+DSRG"]
    assert list(steps) == [*experiments.START_STEPS, *experiments.HEAD_STEPS]
    assert experiments.START_STEPS == (experiments.VGG16_STEP, experiments.RANDOM_STEP, experiments.RESNET_STEP)
    assert steps[experiments.VGG16_STEP] == plus_dsrg
    assert steps[experiments.RANDOM_STEP] == [*plus_dsrg, "seg.init=imagenet"]
    resnet_row = experiments.TABLE1["DSRG (Resnet101)"]
    assert steps[experiments.RESNET_STEP] == [*plus_dsrg, *resnet_row[len(experiments.ABLATION["+Retrain"]):]]


def test_the_head_swaps_differ_from_the_two_random_starts_by_the_head_alone():
    steps, grid = experiments.DSRG_STEPS, experiments.TRUNK_BY_HEAD
    assert steps[experiments.VGG16_RESNET_HEAD] == [*steps[experiments.RANDOM_STEP], "seg.head=resnet101"]
    assert steps[experiments.RESNET_VGG16_HEAD] == [*steps[experiments.RESNET_STEP], "seg.head=vgg16"]
    assert sorted(grid.values()) == sorted([experiments.RANDOM_STEP, experiments.RESNET_STEP,
                                            *experiments.HEAD_STEPS])
    for (trunk, head), label in grid.items():        # each cell's network is the trunk and head it is named by
        own = experiments.RESNET_FROM_SCRATCH if trunk == "ResNet-101" else []
        cfg = experiments.profile("demo", [*own, *steps[label]])
        assert (cfg.seg.backbone, cfg.seg.head or cfg.seg.backbone) == (
            {"VGG16": "vgg16", "ResNet-101": "resnet101"}[trunk], {"VGG16's head": "vgg16",
                                                                   "ResNet-101's head": "resnet101"}[head])
        assert cfg.seg.init == "imagenet" and not cfg.seg.backbone_weights, "every cell from random weights"


def test_a_dsrg_step_given_to_the_page_is_one_of_its_rows_and_the_resnets_take_their_rows_own_settings():
    with pytest.raises(InputError, match=r"^labels: ResNet-50: expected some of VGG16 from the CAM net, "):
        experiments.dsrg_steps("demo", [], "demo", [], labels=["ResNet-50"])
    own = ["seg.freeze_bn=false"]
    for label in experiments.DSRG_STEPS:
        name, overrides = experiments._step_settings(label, "demo", ["seed=3"], "demo-r", own)
        resnet = label in (experiments.RESNET_STEP, experiments.RESNET_VGG16_HEAD)
        assert (name, overrides) == (("demo-r", ["seed=3", *own]) if resnet else ("demo", ["seed=3"])), label


@pytest.mark.parametrize("name, settings, resnet, said", [
    ("demo", ["seed=3"], experiments.RESNET_FROM_SCRATCH, None),
    ("voc-vgg16", [], [], "on profile voc-vgg16 the VGG16 row starts from ImageNet weights (seg.init=imagenet)"),
    ("demo", ["seg.init=cls"], experiments.RESNET_FROM_SCRATCH, "the settings give seg.init, which these runs set"),
    ("demo", ["seg.head=vgg16"], experiments.RESNET_FROM_SCRATCH, "the settings give seg.head, which these runs set"),
    ("demo", [], [*experiments.RESNET_FROM_SCRATCH, "seg.backbone_weights=r.pth"], "the ResNet-101 row would start "
                                                                                   "from a weights file"),
    ("demo", ["seg.backbone_weights=v.pth", "retrain.init=imagenet"], experiments.RESNET_FROM_SCRATCH,
     "the ResNet-101 row would start from a weights file"),      # the page's file: both would read it
])
def test_the_start_is_taken_away_only_where_the_vgg16_row_starts_from_the_cam_net_and_the_others_at_random(
        name, settings, resnet, said):
    why = experiments.start_not_taken_away(name, settings, name.replace("vgg16", "resnet101"), resnet)
    assert (why is None) if said is None else why.startswith(said), why


def test_a_setting_that_a_tables_row_sets_itself_is_refused_not_overruled(tmp_path):
    with pytest.raises(InputError, match=r"overrides: seg.growing=false: this table sets seg.growing in its rows itself \(this row: "
                                         r"seg.growing=true\)"):
        experiments.ablation("smoke", [f"out={tmp_path}", "seg.growing=false"], rows=["+DSRG"])
    with pytest.raises(InputError, match=r"seg.theta_fg=0.9: this table sets seg.theta_fg in its rows itself \(this row: seg.theta_fg=0.8\)"):
        experiments.run("smoke", [f"out={tmp_path}", "seg.theta_fg=0.9"], row=experiments.theta_overrides(0.99, 0.8))
    assert not any(tmp_path.iterdir()), "refused before anything ran"


def test_a_pages_resume_parameter_reaches_every_step_of_its_rows(tmp_path, monkeypatch):
    """A chapter run again with `-p resume True` continues its interrupted steps, as dsrg run --resume."""
    from dsrg.steps import pipeline

    seen = []
    monkeypatch.setattr(pipeline, "run", lambda cfg, resume=False, only=None: seen.append(resume) or {})
    experiments.ablation("smoke", [f"out={tmp_path}"], rows=["baseline", "+DSRG"], resume=True)
    experiments.run("smoke", [f"out={tmp_path}"])
    assert seen == [True, True, False]


def test_a_second_run_skips_complete_steps(tiny_run, capsys):
    cfg, folders = tiny_run
    stamp = (folders["seg"] / "model.pt").stat().st_mtime_ns
    pipeline.run(cfg)
    assert (folders["seg"] / "model.pt").stat().st_mtime_ns == stamp
    assert capsys.readouterr().out.count("(done, reused)") == 6


def _own_copy(cfg, tmp_path):
    """The tiny run's dataset copied as a root of one's own (``data.dataset=voc``), and its profile."""
    import shutil

    root = shutil.copytree(cfg.data.root, tmp_path / "mine")
    return root, tiny_profile(root, tmp_path / "run", "data.dataset=voc")


def test_on_real_data_a_first_step_that_fails_takes_pre_flights_checks_with_its_run_folder(tiny_run, tmp_path,
                                                                                            monkeypatch):
    """Pre-flight remembers the files it found clean in <run>/.checked/; a run folder made for a first step that
    then fails is removed with them, one that was there before keeps them."""
    from dsrg.steps import train_cls

    _, cfg = _own_copy(tiny_run[0], tmp_path)

    def fails(cfg, resume=False):
        assert list((cfg.run_dir / ".checked").iterdir()), "pre-flight remembered the clean files"
        runs.start(cfg, "cls", {})
        raise InputError("a label value beyond the classes")

    monkeypatch.setattr(train_cls, "run", fails)
    with pytest.raises(InputError):
        pipeline.run(cfg)
    assert not cfg.run_dir.exists()
    cfg.run_dir.mkdir(parents=True)
    with pytest.raises(InputError):
        pipeline.run(cfg)
    assert [p.name for p in cfg.run_dir.iterdir()] == [".checked"], "the folder was there: the checks are kept"


def test_pre_flights_record_removed_as_it_is_written_costs_only_a_check_next_time(tiny_run, tmp_path, monkeypatch):
    """Another command's failed first step may remove a new run folder's .checked/ while this one writes to it."""
    from dsrg.run import preflight

    _, cfg = _own_copy(tiny_run[0], tmp_path)

    def removed(path, text):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(preflight, "write_text", removed)
    preflight.check_inputs(cfg, ["cls"])                # no error: the files are clean, their record is not kept
    assert not (cfg.run_dir / ".checked").exists() or not list((cfg.run_dir / ".checked").iterdir())


def _start(cfg, step):
    """A step's folder begun as the step begins it (dsrg.run.context.begin): with the list it reads."""
    return runs.start(cfg, step, split_lists.to_keep(cfg, step))


def _mark_done(cfg, step):
    runs.finish(_start(cfg, step), 0.0)


def test_a_complete_step_whose_split_list_was_edited_since_is_refused_until_the_list_is_restored(tiny_run,
                                                                                                  tmp_path):
    from dsrg.run.preflight import check_inputs

    root, cfg = _own_copy(tiny_run[0], tmp_path)
    listed = root / "ImageSets" / "Segmentation" / "train.txt"
    ids = listed.read_text().split()
    _mark_done(cfg, "cls")
    assert json.loads((runs.step_dir(cfg, "cls") / "config.json").read_text())["splits"]["train"]["images"] == len(ids)
    listed.write_text("\n\n".join(ids) + "\n")                  # blank lines: the same list, as read
    check_inputs(cfg, ["cls"])
    listed.write_text("\n".join(ids[1:]) + "\n")
    with pytest.raises(InputError, match=rf"^1 step folder was made from a split list that has changed since:\n  - "
                                         rf"{runs.step_dir(cfg, 'cls')} \(train-cls\): made from split 'train' as "
                                         rf"{listed} listed it then; it lists {len(ids) - 1} images now, {len(ids)} "
                                         rf"then\ndelete the folder to run the step again on the list as it is, or "
                                         rf"restore the list \(its lines in their order\)$"):
        check_inputs(cfg, ["cls"])
    listed.write_text("\n".join(ids[::-1]) + "\n")
    with pytest.raises(InputError, match=rf"it lists the same {len(ids)} images in another order"):
        check_inputs(cfg, ["cls"])
    listed.write_text("\n".join(["other", *ids[1:]]) + "\n")
    with pytest.raises(InputError, match=rf"it lists {len(ids)} images as then, but other ones"):
        check_inputs(cfg, ["cls"])
    listed.write_text("\n".join(ids) + "\n")
    check_inputs(cfg, ["cls"])


def test_every_step_made_from_an_edited_list_or_reading_one_is_named_by_any_command_that_reads_them(tiny_run,
                                                                                                    tmp_path):
    """The evaluation too, which reads the validation split: deleting the folders named leaves no stale result."""
    from dsrg.run.preflight import check_inputs

    root, cfg = _own_copy(tiny_run[0], tmp_path)
    steps = pipeline.planned_steps(cfg)
    for step in steps:
        _mark_done(cfg, step)
    val = root / "ImageSets" / "Segmentation" / "val.txt"
    kept = val.read_text()
    val.write_text(kept.split()[0] + "\n")
    check_inputs(cfg, ["cls"])                                  # train-cls reads no evaluation
    with pytest.raises(InputError, match=r"^1 step folder was made from a split list that has changed since:\n  - "
                                         r".*\(evaluate\): made from split 'val'"):
        check_inputs(cfg, ["eval"])
    val.write_text("\n".join(kept.split()[::-1]) + "\n")        # the images scored in another order: the same scores
    check_inputs(cfg, ["eval"])
    val.write_text(kept)
    listed = root / "ImageSets" / "Segmentation" / "train.txt"
    listed.write_text(listed.read_text().split()[0] + "\n")
    for command in (["cls"], ["eval"], steps):
        with pytest.raises(InputError) as said:
            check_inputs(cfg, command)
        lines = str(said.value).splitlines()
        assert lines[0] == f"{len(steps)} step folders were made from a split list that has changed since:"
        assert [line.split(" (")[1].split(")")[0] for line in lines[1:-1]] == [runs.COMMANDS[s] for s in steps]
        assert lines[-2].endswith("(evaluate): it reads the output of retrain above")
        assert lines[-1] == ("delete the folders to run the steps again on the list as it is, or restore the list (its "
                             "lines in their order)")
    assert "splits" not in json.loads((tiny_run[1]["cls"] / "config.json").read_text())    # embedded: none


def test_resuming_a_step_on_a_list_edited_since_it_was_interrupted_is_refused(tiny_run, tmp_path, capsys):
    from dsrg.run.preflight import check_inputs

    root, cfg = _own_copy(tiny_run[0], tmp_path)
    folder = _start(cfg, "cls")
    (folder / "log.jsonl").write_text('{"it": 0}\n')              # interrupted after a logged iteration
    listed = root / "ImageSets" / "Segmentation" / "train.txt"
    listed.write_text("\n".join(listed.read_text().split()[1:]) + "\n")
    check_inputs(cfg, ["cls"], remember=False)                   # without --resume it starts over
    with pytest.raises(InputError, match=rf"^1 step folder was made from a split list that has changed since:\n  - "
                                         rf"{folder} \(train-cls, interrupted\): made from split 'train' .* it lists "
                                         rf"15 images now, 16 then; --resume would go on with the list as it is "
                                         rf"now\nrun without --resume to start over on the list as it is, or restore "
                                         rf"the list \(its lines in their order\)$"):
        check_inputs(cfg, ["cls"], remember=False, resume=True)
    argv = ["train-cls", "--profile", "demo", *tiny_overrides(root, tmp_path / "run", "data.dataset=voc"), "--dry-run"]
    assert main(argv) == 0 and main([*argv, "--resume"]) == 2      # the dry run, as the command would
    assert "--resume would go on with the list as it is now" in capsys.readouterr().err


def test_an_interrupted_folder_made_before_the_record_gains_none_when_it_goes_on(tiny_run, tmp_path):
    """Which list its first session trained on is not known: recording the list as it is now would vouch for it."""
    root, cfg = _own_copy(tiny_run[0], tmp_path)
    folder = _start(cfg, "cls")
    (folder / "log.jsonl").write_text('{"it": 0}\n')
    config = json.loads((folder / "config.json").read_text())
    del config["splits"]
    (folder / "config.json").write_text(json.dumps(config))
    _start(cfg, "cls")
    assert "splits" not in json.loads((folder / "config.json").read_text())
    (folder / "log.jsonl").unlink()                             # nothing kept from before: the list now
    _start(cfg, "cls")
    assert "splits" in json.loads((folder / "config.json").read_text())


def test_a_changed_list_names_only_the_folders_the_command_reads_and_those_made_from_them(tiny_run, tmp_path):
    from dsrg.run.split_lists import refuse_changed

    root, cfg = _own_copy(tiny_run[0], tmp_path)
    authors = tiny_profile(root, tmp_path / "run", "data.dataset=voc", "seeds.source=authors",
                           "seeds.authors_pickle=localization_cues.pickle", "seeds.authors_list=input_list.txt")
    _mark_done(cfg, "cls")                                      # the CAMs' classifier, on the list before
    _mark_done(authors, "seeds")                                # the authors' cues, read without it
    listed = root / "ImageSets" / "Segmentation" / "train.txt"
    listed.write_text("\n".join(listed.read_text().split()[1:]) + "\n")
    with pytest.raises(InputError) as said:
        refuse_changed(authors, ["seeds"])
    assert "(seeds)" in str(said.value) and "(train-cls)" not in str(said.value)
    with pytest.raises(InputError, match=r"(?s)\(train-cls\).*\(seeds\)"):
        refuse_changed(authors, ["seg"])                 # its trunk is train-cls's (seg.init=cls)


def test_cues_and_pseudo_labels_of_another_list_are_named_before_the_step_that_reads_them(tiny_run, tmp_path):
    """Seeds and pseudo labels made before their folders recorded their list: the images they miss are found by
    pre-flight, before train-seg or retrain starts."""
    import shutil

    from dsrg.run.preflight import check_inputs

    cfg, done = tiny_run
    root, mine = _own_copy(cfg, tmp_path)
    for step in ("cls", "seeds", "pseudo"):
        shutil.copytree(done[step], runs.step_dir(mine, step))
    first = VOCSegmentation(root, "train").ids[0]
    shutil.copy(root / "JPEGImages" / f"{first}.jpg", root / "JPEGImages" / "extra.jpg")
    shutil.copy(root / "SegmentationClass" / f"{first}.png", root / "SegmentationClass" / "extra.png")
    with open(root / "ImageSets" / "Segmentation" / "train.txt", "a") as f:
        f.write("extra\n")
    n = len(VOCSegmentation(root, "train"))
    for step, source, what in (("seg", "seeds", "seed cues"), ("retrain", "pseudo", "pseudo labels")):
        with pytest.raises(InputError, match=rf"^the {what} in {runs.step_dir(mine, source)} cover {n - 1} of the {n} "
                                             rf"images of split 'train' \(none for extra\): they were made for "
                                             rf"another list of images; delete the folder "
                                             rf"{runs.step_dir(mine, source)} to make .* again$"):
            check_inputs(mine, [step], remember=False)


def test_changing_a_seg_setting_reuses_cls_and_seeds():
    base = tiny_profile("/data/x", "/runs/x")
    other = tiny_profile("/data/x", "/runs/x", "seg.theta_fg=0.9")
    for step in ("cls", "seeds"):
        assert runs.step_dir(base, step) == runs.step_dir(other, step)
    for step in ("seg", "pseudo", "retrain", "eval"):
        assert runs.step_dir(base, step) != runs.step_dir(other, step)
    assert runs.step_dir(base, "seg") == runs.step_dir(tiny_profile("/data/x", "/runs/x", "device=cpu"), "seg")


def test_a_step_without_its_upstream_says_which_command_to_run(tmp_path):
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run")
    with pytest.raises(InputError, match="dsrg seeds"):
        runs.require(cfg, "seeds")


def test_the_bundled_profiles_load_with_the_papers_settings():
    assert {"demo", "voc-vgg16", "voc-resnet101", "coco-vgg16"} <= set(available_profiles())
    voc = load_profile("voc-vgg16")
    assert (voc.seg.batch_size, voc.seg.iterations, voc.seg.lr, voc.seg.lr_step, voc.seg.lr_gamma) == \
        (20, 8000, 5e-4, 2000, 0.1)
    assert (voc.seg.theta_fg, voc.seg.theta_bg, voc.seg.momentum, voc.seg.weight_decay) == (0.85, 0.99, 0.9, 5e-4)
    assert (voc.retrain.batch_size, voc.retrain.iterations, voc.retrain.lr, voc.retrain.lr_policy) == \
        (10, 20000, 1e-3, "poly")
    assert voc.pseudo.sizes == [241, 321, 401] and voc.eval.scales == [0.75, 1.0, 1.25]
    assert load_profile("voc-resnet101").seg.backbone == "resnet101"
    assert load_profile("voc-vgg16", ["seg.theta_bg=.inf"]).seg.theta_bg == float("inf")


@pytest.mark.parametrize("override, named", [
    ("seg.seed_loss=focal", "balanced"),
    ("seg.theta_fg=1.5", "seg.theta_fg"),
    ("seg.thetafg=0.9", "seg.thetafg"),
    ("seg.iterations=many", "seg.iterations"),
    ("device=tpu", "cuda"),
    ("eval.crf_scale=0", "eval.crf_scale"),
    ("nokey", "key=value"),
])
def test_a_bad_profile_value_is_named_with_what_is_allowed(override, named):
    with pytest.raises(InputError, match=named):
        load_profile("demo", [override])


def test_an_unknown_profile_lists_the_bundled_ones():
    with pytest.raises(InputError, match="voc-vgg16"):
        load_profile("voc-vg16")


def test_dsrg_run_on_the_command_line_reports_errors_cleanly(tmp_path, capsys):
    args = ["run", "--profile", "demo", f"data.root={tmp_path / 'data'}", f"out={tmp_path / 'runs'}"]
    assert main(args + ["seg.seed_loss=focal"]) == 2
    assert "seg.seed_loss" in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing is written before the settings are valid"


def test_cues_on_another_grid_are_refused_with_the_sizes(tiny_run, tmp_path):
    cfg, folders = tiny_run
    from dsrg.steps import train_seg

    other = tiny_profile(cfg.data.root, cfg.out, "seg.input_size=96")
    with pytest.raises(InputError, match="9x9 grid"):
        train_seg.run(other)


def test_the_cuda_defaults_train_on_the_cpu_and_torch_growing_trains_as_numba(tiny_run, tmp_path):
    """On CUDA, train-seg defaults to the exact CRF and growing by torch; the same composition runs here,
    and since all growing methods give the same cues, torch and numba train to the same log."""
    import shutil

    from dsrg.steps import train_seg

    cfg, _ = tiny_run
    logs = {}
    for method in ("torch", "numba"):
        shutil.copytree(cfg.out, tmp_path / method)      # its cls and seeds steps are reused
        other = tiny_profile(cfg.data.root, tmp_path / method, "seg.crf_backend=exact", f"seg.grow_method={method}")
        lines = [json.loads(x) for x in (train_seg.run(other) / "log.jsonl").read_text().splitlines()]
        logs[method] = [{k: v for k, v in x.items() if k not in TIMING} for x in lines]     # wall seconds differ
    assert len(logs["torch"]) == cfg.seg.iterations
    assert all(np.isfinite(x["loss"]) for x in logs["torch"])
    assert logs["torch"] == logs["numba"]


def test_seeds_import_the_authors_cue_pickle(tiny_run, tmp_path):
    from dsrg.data.cues import save_authors_cues
    from dsrg.steps import seeds

    cfg, folders = tiny_run
    store = CueStore.load(folders["seeds"] / "cues.npz")
    entries = {image_id: tuple(reversed(store.get(image_id))) for image_id in reversed(store.ids)}  # (labels, cues)
    save_authors_cues(tmp_path / "localization_cues-sal.pickle", tmp_path / "input_list.txt", entries)
    other = tiny_profile(cfg.data.root, tmp_path / "run", "seeds.source=authors",
                         f"seeds.authors_pickle={tmp_path / 'localization_cues-sal.pickle'}",
                         f"seeds.authors_list={tmp_path / 'input_list.txt'}")
    imported = CueStore.load(seeds.run(other) / "cues.npz")
    assert imported.ids == store.ids
    for image_id in store.ids:
        for a, b in zip(imported.get(image_id), store.get(image_id)):
            assert np.array_equal(a, b)


def test_the_authors_pickle_must_cover_the_training_split(tiny_run, tmp_path):
    from dsrg.data.cues import save_authors_cues
    from dsrg.steps import seeds

    cfg, folders = tiny_run
    store = CueStore.load(folders["seeds"] / "cues.npz")
    save_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt",
                      {i: tuple(reversed(store.get(i))) for i in store.ids[:3]})
    other = tiny_profile(cfg.data.root, tmp_path / "run", "seeds.source=authors",
                         f"seeds.authors_pickle={tmp_path / 'cues.pickle'}", f"seeds.authors_list={tmp_path / 'list.txt'}")
    with pytest.raises(InputError, match="no cues for 13 of the 16 images"):
        seeds.run(other)


def test_backbone_weights_that_do_not_fit_are_refused_with_the_keys(tmp_path):
    from dsrg.models.deeplab import DeepLabASPP
    from dsrg.run.networks import build_seg_net

    path = tmp_path / "vgg16-wrong-width.pth"
    torch.save(DeepLabASPP("vgg16", 8, width=0.125).backbone.state_dict(), path)
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run", "seg.batch_norm=false", "seg.init=imagenet",
                       f"seg.backbone_weights={path}")
    with pytest.raises(InputError, match=r"shape mismatches .*features\.0\.weight"):
        build_seg_net(cfg, 8, torch.device("cpu"))


def test_imagenet_weights_start_the_fc_layers_of_both_nets_unless_fc_init_is_random(tmp_path):
    from dsrg.models.deeplab import DeepLabASPP
    from dsrg.models.weights import decimate_vgg16_fc
    from dsrg.run.networks import build_cls_net, build_seg_net

    state = dict(DeepLabASPP("vgg16", 8, width=0.0625).backbone.state_dict())   # trunk 32, fc6/fc7 64
    state.update({"classifier.0.weight": torch.randn(256, 32 * 49), "classifier.0.bias": torch.randn(256),
                  "classifier.3.weight": torch.randn(256, 256), "classifier.3.bias": torch.randn(256)})
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    weights = ["seg.batch_norm=false", "cls.batch_norm=false", "seg.init=imagenet",
               f"seg.backbone_weights={path}", f"cls.backbone_weights={path}"]
    fc6 = decimate_vgg16_fc(state)["fc6.weight"]
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run", *weights)
    seg, cls = build_seg_net(cfg, 8, torch.device("cpu")), build_cls_net(cfg, 8)
    assert all(torch.equal(branch.fc6.weight, fc6) for branch in seg.aspp) and torch.equal(cls.fc6.weight, fc6)
    cfg = tiny_profile(tmp_path / "synth", tmp_path / "run", *weights, "seg.fc_init=random", "cls.fc_init=random")
    seg, cls = build_seg_net(cfg, 8, torch.device("cpu")), build_cls_net(cfg, 8)
    assert not any(torch.equal(branch.fc6.weight, fc6) for branch in seg.aspp) and not torch.equal(cls.fc6.weight, fc6)


def test_resnet101_with_frozen_batchnorm_is_refused_without_pretrained_weights(tmp_path):
    from dsrg.run.networks import build_seg_net

    frozen = tiny_profile(tmp_path / "synth", tmp_path / "run", "seg.backbone=resnet101", "seg.batch_norm=false",
                          "seg.init=imagenet")
    with pytest.raises(InputError, match="seg.backbone_weights.*seg.freeze_bn=false"):
        build_seg_net(frozen, 8, torch.device("cpu"))
    trainable = tiny_profile(tmp_path / "synth", tmp_path / "run", "seg.backbone=resnet101", "seg.batch_norm=false",
                             "seg.init=imagenet", "seg.freeze_bn=false")
    assert build_seg_net(trainable, 8, torch.device("cpu")).backbone_name == "resnet101"


@pytest.mark.parametrize("split, ids, layout", [
    ("test", ["2008_000001", "2008_000002"], "results/VOC2012/Segmentation/comp6_test_cls"),   # VOC's test images
    ("holdout", ["holdout_00000", "holdout_00001"], "pred"),                                    # one's own images
])
def test_a_split_without_label_maps_gets_predictions_in_the_servers_layout_when_its_images_are_vocs(
        tiny_run, split, ids, layout):
    import shutil

    from dsrg.steps import evaluate

    cfg, folders = tiny_run
    root = __import__("pathlib").Path(cfg.data.root)
    for k, image_id in enumerate(ids):
        shutil.copy(root / "JPEGImages" / f"val_{k:05d}.jpg", root / "JPEGImages" / f"{image_id}.jpg")
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    try:
        folder = evaluate.run(tiny_profile(cfg.data.root, cfg.out, f"eval.split={split}"))
    finally:
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").unlink()
        for image_id in ids:
            (root / "JPEGImages" / f"{image_id}.jpg").unlink()
    assert sorted(p.stem for p in (folder / layout).glob("*.png")) == ids
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "miou" not in metrics and metrics["predictions"] == layout


def test_two_processes_running_the_same_experiment_train_each_step_once(tmp_path):
    """Two `dsrg run` at once on one run folder (two notebooks that share a run): the steps' locks make
    the second process wait for each step and reuse it, and the dataset is written once."""
    cmd = [sys.executable, "-m", "dsrg.cli", "run", "--profile", "demo",
           *tiny_overrides(tmp_path / "synth", tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    lines = [line for out, _ in outs for line in out.splitlines()
             if line.startswith("[dsrg run]") and line.split()[3].startswith(str(tmp_path))]       # a step's line
    for step in runs.STEPS:
        mine = [line for line in lines if f"{step}-" in line]
        assert len(mine) == 2, (step, lines)
        assert sum("(done, reused)" in line for line in mine) == 1, (step, mine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "synth"]  # no half-written copy, no lock file


def _tree(folder) -> set:
    return {str(p) for p in __import__("pathlib").Path(folder).rglob("*")}


def test_dry_run_prints_the_settings_and_each_steps_state_and_writes_nothing(tiny_run, capsys):
    cfg, folders = tiny_run
    before = _tree(cfg.out)
    args = ["run", "--profile", "demo", "--dry-run", *tiny_overrides(cfg.data.root, cfg.out, "seg.theta_fg=0.9")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "theta_fg: 0.9" in out                                      # the resolved settings, as YAML
    lines = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in
             runs.COMMANDS.values()}
    assert "done, reused" in lines["train-cls"] and "done, reused" in lines["seeds"]
    seg = runs.step_dir(cfg, "seg").name           # the run with the tiny profile's theta_fg, and why it is not reused
    assert lines["train-seg"].endswith(f"to run (the complete {seg} differs in seg.theta_fg: "
                                       f"{cfg.seg.theta_fg} there, 0.9 here)"), lines["train-seg"]
    for command, reads in (("pseudo-labels", "train-seg"), ("retrain", "pseudo-labels"), ("evaluate", "retrain")):
        assert lines[command].endswith(f"to run (after {reads}, whose output it reads)"), lines[command]
    assert "# inputs: found" in out
    assert _tree(cfg.out) == before


def test_step_state_tells_done_interrupted_and_to_run(tmp_path):
    done, cut, new = tmp_path / "done", tmp_path / "cut", tmp_path / "new"
    for folder in (done, cut):
        folder.mkdir()
    (done / "done.json").write_text('{"wall_s": 12.4}')
    net = torch.nn.Linear(1, 1)
    save_checkpoint(cut / "ckpt.pt", net, torch.optim.SGD(net.parameters(), lr=0.1), 100, [])
    (cut / "log.jsonl").write_text("".join(f'{{"it": {i}, "loss": 1.0}}\n' for i in range(152)))
    assert runs.step_state(done) == "done, reused (took 12 s)"
    (done / "done.json").write_text('{"wall_s": 0.24}')
    assert runs.step_state(done) == "done, reused (took 0.2 s)", "a short step is not said to take 0 s"
    (done / "done.json").write_text('{"wall_s": 2.5, "resumed_with_images": 2, "wall_s_total": 4.0}')
    assert runs.step_state(done) == "done, reused (took 2.5 s from its resume with 2 images written; 4.0 s with the " \
                                    "sessions before)"
    (done / "done.json").write_text('{"wall_s": 2.5, "resumed_with_images": 2, "wall_s_total": 4.0, "sessions": 3}')
    assert runs.step_state(done).endswith("; 4.0 s with the 2 sessions before)")
    (done / "done.json").write_text('{"wall_s": 2.5, "resumed_at_iteration": 9, "wall_s_total": 4.0, "sessions": 2}')
    assert runs.step_state(done).endswith("; 4.0 s with the session before)")
    (done / "done.json").write_text('{}')
    assert runs.step_state(done) == "done, reused"
    # the checkpoint's iteration, not the log's last: --resume goes back to 100
    assert runs.step_state(cut).startswith("interrupted: --resume continues from its checkpoint at iteration 100")
    assert runs.step_state(new) == "to run"


def test_a_step_to_run_names_an_interrupted_run_of_the_same_step_with_other_settings(tmp_path):
    """--resume after a changed setting starts a new folder: the dry run says where the interrupted one is."""
    old, changed, other_step = tmp_path / "seg-0123456789", tmp_path / "seg-abcdef0123", tmp_path / "retrain-99"
    for folder in (old, other_step):
        folder.mkdir()
        (folder / "ckpt.pt").write_bytes(b"")
    state = runs.step_state(changed)
    assert state.startswith("to run; an interrupted run of this step with other settings is in seg-0123456789")
    (tmp_path / ".seg-0123456789.lock").write_text("")              # left by a process that died: still named
    assert "is in seg-0123456789" in runs.step_state(changed)
    with locked(tmp_path / ".seg-0123456789.lock"):                  # it runs now: not interrupted
        assert runs.step_state(changed) == "to run"
        assert runs.step_state(old).startswith("running now in another process")
    (old / "done.json").write_text("{}")
    assert runs.step_state(changed) == "to run"
    server = tmp_path / "eval-0123456789" / "results" / "VOC2012" / "Segmentation" / "comp6_test_cls"
    server.mkdir(parents=True)
    (server / "2008_000001.png").write_bytes(b"")                   # a test split's predictions, cut short
    assert "is in eval-0123456789" in runs.step_state(tmp_path / "eval-abcdef0123")


def test_the_dry_run_says_why_a_step_is_not_reused(tiny_run, capsys):
    """A step to run names the complete run of it that is nearest, and the settings in which the two differ (at
    most three, then a count); a step whose input is another run of the step before says so."""
    cfg, _ = tiny_run
    def states(*more: str) -> dict:
        assert main(["run", "--profile", "demo", "--dry-run", *tiny_overrides(cfg.data.root, cfg.out, *more)]) == 0
        return {line.split()[0]: line.split(None, 2)[2] for line in capsys.readouterr().out.splitlines()
                if line.split() and line.split()[0] in runs.COMMANDS.values()}

    cls = runs.step_dir(cfg, "cls").name
    assert states("seed=7", "cls.lr=0.5")["train-cls"] == (
        f"to run (the complete {cls} differs in cls.lr: {cfg.cls.lr} there, 0.5 here; seed: {cfg.seed} there, 7 here)")
    many = states("seed=7", "cls.lr=0.5", "cls.momentum=0.5", "cls.weight_decay=0.5")["train-cls"]
    assert many.endswith(f"; cls.weight_decay: {cfg.cls.weight_decay} there, 0.5 here and 1 more)"), many
    assert states(f"out={cfg.out}/other")["train-cls"] == f"to run (no complete run of it in {cfg.out}/other)"
    flip = str(not cfg.seg.growing).lower()                                             # as typed: true, false
    assert f"seg.growing: {str(cfg.seg.growing).lower()} there, {flip} here" in \
        states(f"seg.growing={flip}")["train-seg"]


def test_a_segmentation_input_whose_output_misses_the_cue_grid_is_refused_before_any_step(tmp_path, capsys):
    args = ["run", "--profile", "smoke", f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}",
            "seg.input_size=17"]
    assert main(args) == 2
    assert "seg.input_size=17 gives a 3x3 output but the seed cues are on the CAMs' 9x9 grid (cls.input_size=64)" \
        in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_step_whose_input_step_has_not_run_says_which_command_makes_it_and_writes_nothing(tmp_path, capsys,
                                                                                              monkeypatch):
    assert main(["train-seg", "--profile", "smoke", f"out={tmp_path / 'run'}"]) == 2
    assert f"step 'seeds' has no complete output for this profile in {tmp_path / 'run'}/seeds-" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()                  # pre-flight's marks of clean files neither
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr("dsrg.cli.PROCESS_0_WAIT_S", 0.0)
    assert main(["train-seg", "--profile", "smoke", f"out={tmp_path / 'run'}"]) == 2     # every process finds it
    assert "dsrg: error (torchrun process 1; process 0 did not say it): step 'seeds'" in capsys.readouterr().err


def test_under_torchrun_only_process_0_prints_the_dry_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert main(["run", "--profile", "smoke", "--dry-run", f"out={tmp_path / 'run'}"]) == 0
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("RANK", "0")
    assert main(["run", "--profile", "smoke", "--dry-run", f"out={tmp_path / 'run'}"]) == 0
    assert "# steps" in capsys.readouterr().out


def test_dry_run_checks_the_inputs_of_the_steps_it_would_run(tmp_path, capsys):
    args = ["train-seg", "--profile", "smoke", "--dry-run", f"data.root={tmp_path / 'synth'}",
            f"out={tmp_path / 'run'}", "seg.init=imagenet", f"seg.backbone_weights={tmp_path / 'vgg16.pth'}"]
    assert main(args) == 2
    assert f"seg.backbone_weights: file not found: {tmp_path / 'vgg16.pth'}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_notebooks_relative_paths_are_taken_from_its_base_folder(tmp_path, monkeypatch):
    """A chapter runs in notebooks/ with base="..": a weights file named relative to the project root is
    found there, like the data root; absolute paths and empty settings stay as they are."""
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    cfg = experiments.profile("demo", ["data.root=data/VOC2012", "cls.backbone_weights=vgg16.pth", "seg.init=imagenet",
                                       "seg.backbone_weights=/abs/vgg16.pth"], base="..")
    assert cfg.data.root == "../data/VOC2012" and cfg.cls.backbone_weights == "../vgg16.pth"
    assert cfg.seg.backbone_weights == "/abs/vgg16.pth" and cfg.seeds.saliency_dir == ""
    assert cfg.out == "../runs/demo"


def test_a_path_written_another_way_is_the_same_run(tmp_path, monkeypatch):
    """The CLI in the project (data/smoke, runs/smoke) and a notebook in notebooks/ (base="..": ../data/smoke,
    ../runs/smoke) name the same step folders, and so does a copy of the project elsewhere; ./data/smoke/ is
    data/smoke. An absolute path names the same folders from any working directory (not the relative
    path's: made relative, it would name others from elsewhere). Another data folder is another run."""
    def hashes(cfg):
        return {step: runs.step_hash(cfg, step) for step in runs.STEPS}

    for project in ("a", "b"):
        (tmp_path / project / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    cli = hashes(load_profile("smoke", ["data.root=data/smoke"]))
    assert hashes(load_profile("smoke", ["data.root=./data/smoke/"])) == cli
    absolute = hashes(load_profile("smoke", [f"data.root={tmp_path / 'a' / 'data' / 'smoke'}"]))
    assert absolute["cls"] != cli["cls"]                  # another spelling; but the same from any working directory
    monkeypatch.chdir(tmp_path)
    assert hashes(load_profile("smoke", [f"data.root={tmp_path / 'a' / 'data' / 'smoke'}"])) == absolute
    monkeypatch.chdir(tmp_path / "a")
    assert hashes(load_profile("smoke", ["data.root=data/other"]))["cls"] != cli["cls"]
    for project in ("a", "b"):
        monkeypatch.chdir(tmp_path / project / "notebooks")
        assert hashes(experiments.profile("smoke", ["data.root=data/smoke"], base="..")) == cli, project
    cfg = experiments.profile("smoke", ["data.root=/data/VOC2012"], base="..")
    assert cfg.data.root == "/data/VOC2012" and runs.step_config(cfg, "cls")["data"]["root"] == "/data/VOC2012"


def test_a_finished_step_drops_its_checkpoint_and_one_set_aside_by_a_start_over(tmp_path):
    from types import SimpleNamespace

    from dsrg.run.context import finish_training

    for name in ("ckpt.pt", "ckpt.prev.pt", "log.prev.jsonl"):
        (tmp_path / name).write_bytes(b"old")
    finish_training(tmp_path, 0.0, torch.nn.Linear(1, 1), SimpleNamespace(num_classes=2, class_names=["a", "b"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.json", "model.pt"]


def test_pseudo_labels_and_evaluation_with_the_lattice_crf_equal_pydensecrf(tiny_run, tmp_path):
    """The lattice backend is pydensecrf's model and lattice: the same labels, the same scores (a new run
    folder for each step, named after the backend)."""
    import shutil

    from dsrg.steps import evaluate, pseudo_labels

    cfg, folders = tiny_run
    shutil.copytree(cfg.out, tmp_path / "run")
    pseudo = pseudo_labels.run(tiny_profile(cfg.data.root, tmp_path / "run", "pseudo.crf_backend=lattice"))
    assert pseudo.name != folders["pseudo"].name
    for ref in sorted((folders["pseudo"] / "labels").glob("*.png")):
        assert np.array_equal(np.array(Image.open(pseudo / "labels" / ref.name)), np.array(Image.open(ref)))
    assert runs.done_info(pseudo)["quality"] == runs.done_info(folders["pseudo"])["quality"]
    scored = evaluate.run(tiny_profile(cfg.data.root, tmp_path / "run", "eval.crf_backend=lattice"))
    assert scored.name != folders["eval"].name
    ours = json.loads((scored / "metrics.json").read_text())
    theirs = json.loads((folders["eval"] / "metrics.json").read_text())
    assert ours["miou"] == theirs["miou"] and ours["iou"] == theirs["iou"]


def test_an_experiment_says_which_code_made_it_and_how_to_remake_it(tiny_run, tmp_path):
    """Each step's done.json keeps the code that ran it; the caption line names it and the command."""
    from dsrg.run.provenance import code, describe

    cfg, _ = tiny_run
    overrides = [*tiny_overrides(cfg.data.root, cfg.out), "seg.seed_loss=balanced"]
    exp = experiments.run("demo", overrides)                 # the tiny run, reused
    recorded = runs.done_info(exp.folder("eval"))["code"]
    assert recorded["version"] == code()["version"] and len(recorded["source"]) == 12
    line = exp.provenance()
    assert describe(recorded) in line and "dsrg 0.1.0" in line
    assert f"; results in {os.path.normpath(exp.folder('eval'))}; remade by" in line     # the folder to look in
    assert line.endswith("remade by: dsrg run --profile demo " + shlex.join(     # quoted as a shell takes it
        o for o in overrides if not o.startswith("progress=")))
    shared = overrides[:-1]
    rows = experiments.run("demo", shared, row=["seg.seed_loss=balanced"])   # the same run, as a table's row
    assert rows.provenance() == line
    assert f"; the rows' step folders in {os.path.normpath(cfg.out)}; each row" in rows.provenance(rows=True)
    assert rows.provenance(rows=True).endswith("each row remade by: dsrg run --profile demo " + shlex.join(
        o for o in shared if not o.startswith("progress=")) + " plus its row's settings")
    assert exp.label() == f"the embedded dataset, {runs.done_info(exp.folder('eval'))['images']} val images, profile " \
                          f"demo, seed 0"                                 # the few words beside the numbers
    assert describe(None) == "code not recorded"
    assert describe({"version": "0.1.0", "commit": None, "uncommitted": False, "source": "abc"}) == \
        "dsrg 0.1.0, source abc (no git)"


def test_a_train_seg_shorter_than_an_epoch_records_no_grown_cues(tiny_run, tmp_path):
    """The grown cues are measured as an epoch ends: with none ended there are none (the seeds' row of epoch 0
    is not theirs, and no supervision.csv is written)."""
    import shutil

    from dsrg.steps import train_seg

    cfg, done = tiny_run
    mine = tiny_profile(cfg.data.root, tmp_path / "run", "seg.iterations=2")       # 4 iterations an epoch
    for step in ("cls", "seeds"):
        shutil.copytree(done[step], tmp_path / "run" / done[step].name)
    folder = train_seg.run(mine)
    assert runs.done_info(folder)["supervision_last_epoch"] is None and not (folder / "supervision.csv").exists()


def test_dsrg_run_ends_with_the_supervisions_quality_and_the_miou(tiny_run, capsys):
    """What WSSS readers look for first: the seeds' precision and recall, the pseudo labels' mIoU,
    precision and recall on the training set, then the evaluation's mIoU (the tiny run, reused)."""
    cfg, folders = tiny_run
    assert main(["run", "--profile", "demo", *tiny_overrides(cfg.data.root, cfg.out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-5:]
    cls = runs.done_info(folders["cls"])
    seeds, n = runs.done_info(folders["seeds"])["quality"], runs.done_info(folders["seeds"])["images"]
    grown = runs.done_info(folders["seg"])["supervision_last_epoch"]
    pseudo = runs.done_info(folders["pseudo"])["quality"]
    assert last[0] == f"[dsrg run] classifier on val: mAP {100 * cls['val_map']:.1f} (%)  {folders['cls']}/done.json"
    assert last[1] == (f"[dsrg run] seeds on train ({n} images, on the 9 x 9 output grid, class means): precision "
                       f"{100 * seeds['precision']:.1f}, recall {100 * seeds['recall']:.1f}, labelled "
                       f"{100 * seeds['labelled_fraction']:.1f} (%)  {folders['seeds']}/done.json")
    assert last[2] == (f"[dsrg run] grown cues on train (epoch {grown['epoch']}, class means): precision "
                       f"{100 * grown['precision']:.1f}, recall {100 * grown['recall']:.1f}, labelled "
                       f"{100 * grown['labelled_fraction']:.1f} (%)  {folders['seg']}/supervision.csv")
    from dsrg.steps.summary import _labelled                             # which classes precision is over, if fewer

    assert last[3] == (f"[dsrg run] pseudo labels on train ({n} images): mIoU {100 * pseudo['miou']:.1f}, precision "
                       f"{100 * pseudo['precision']:.1f}, recall {100 * pseudo['recall']:.1f} (%{_labelled(pseudo)})  "
                       f"{folders['pseudo']}/done.json")
    assert last[4].startswith("[dsrg run] mIoU on val (4 images, retrain model): ")
    assert last[4].endswith(f"(%)  {folders['eval']}/metrics.json")


def test_an_experiment_tells_the_quality_of_what_it_trained_on(tiny_run):
    cfg, folders = tiny_run
    exp = experiments.Experiment(cfg, folders)
    table = exp.training_quality()
    seeds = runs.done_info(folders["seeds"])["quality"]
    pseudo = runs.done_info(folders["pseudo"])["quality"]
    assert table.loc["seeds", "recall"] == pytest.approx(100 * seeds["recall"])
    assert table.loc["pseudo labels", "IoU"] == pytest.approx(100 * pseudo["miou"])
    per_class = exp.pseudo_label_classes()
    assert list(per_class.index) == exp.dataset().class_names
    assert per_class["recall"].tolist() == pytest.approx([100 * v for v in pseudo["class_recall"]], nan_ok=True)


def test_the_stages_of_a_row_are_its_seeds_its_grown_supervision_its_pseudo_labels_and_its_miou(tiny_run):
    from dsrg.reproduce.tables import shares_sentence, stages

    cfg, folders = tiny_run
    exp = experiments.Experiment(cfg, folders)
    curve = exp.supervision()
    row = stages({"DSRG": exp}).loc["DSRG"]
    assert row["seeds: recall"] == pytest.approx(100 * curve["recall"].iloc[0])
    assert row["grown: IoU"] == pytest.approx(100 * curve["iou"].iloc[-1])
    assert row["epochs"] == curve["epoch"].iloc[-1] == cfg.seg.iterations * cfg.seg.batch_size // len(exp.dataset())
    assert row["pseudo labels: mIoU"] == pytest.approx(exp.training_quality().loc["pseudo labels", "IoU"])
    assert row["model: mIoU"] == pytest.approx(100 * exp.miou)
    said = shares_sentence("DSRG", exp)
    assert said.startswith(f"DSRG ({100 * exp.miou:.1f} mIoU) labels ") and said.endswith("an IoU of zero.")


def test_evaluate_records_its_predictions_within_its_folder_so_any_working_folder_finds_them(tiny_run, tmp_path,
                                                                                           monkeypatch):
    cfg, folders = tiny_run
    exp = experiments.Experiment(cfg, folders)
    assert exp.metrics()["predictions"] == "pred"             # not a path from where the step ran
    monkeypatch.chdir(tmp_path)
    assert exp.predictions() == folders["eval"] / "pred" and any(exp.predictions().glob("*.png"))


def test_a_caption_says_how_many_images_were_scored_and_random_weights_a_paper_profile_refuses(tiny_run):
    cfg, folders = tiny_run
    exp = experiments.Experiment(cfg, folders)
    scored, val = exp.scored(), exp.dataset("val")
    assert scored["images"] == len(val) and scored["split"] == "val" and scored["classes"] == val.num_classes
    found = set()                              # classes in the ground truth, or predicted where it is not 255
    for i, image_id in enumerate(val.ids):
        gt, pred = val.mask(i), read_label_png(exp.predictions() / f"{image_id}.png", val.num_classes)
        found |= set(np.unique(gt[gt != 255]).tolist()) | set(np.unique(pred[gt != 255]).tolist())
    assert scored["present"] == len(found)
    assert f", {scored['images']} val images scored)" in exp.ran_on() and "random_init" not in exp.ran_on()
    paper_run = experiments.Experiment(load_profile("voc-vgg16", ["random_init=true"]), {})
    assert "profile voc-vgg16 with random_init=true (networks from random weights, not ImageNet's: not the " \
           "paper's setting)" in paper_run.ran_on()


def test_an_experiment_that_ran_no_step_says_so_where_its_source_is_asked():
    unrun = experiments.Experiment(load_profile("smoke"), {})
    for ask in (unrun.code, unrun.provenance):
        with pytest.raises(InputError, match="experiment 'smoke': no step was run"):
            ask()


def test_numbers_set_beside_the_papers_say_when_they_are_of_other_data(tiny_run, monkeypatch):
    cfg, folders = tiny_run
    exp = experiments.Experiment(cfg, folders)
    n, classes = exp.scored()["images"], exp.dataset("val").num_classes
    assert exp.data_note() == (f"Ours are measured on {n} images of split 'val' with {classes} classes, not on "
                               f"VOC 2012 val: beside the paper's, read how our rows move against each other, "
                               f"not their values.")
    monkeypatch.setattr(experiments.Experiment, "scored",
                        lambda self: {"images": 1449, "split": "val", "classes": 21, "present": 21})
    assert exp.data_note() == "Ours are measured on the paper's data (VOC 2012 val, 1449 images)."
    assert exp.data_note("COCO 2014 val").startswith("Ours are measured on 1449 images of split 'val' with 21")


def test_a_pages_yaml_profile_is_found_for_the_random_weights_note(tmp_path, monkeypatch):
    from pathlib import Path

    import dsrg

    paper = (Path(dsrg.__file__).parent / "profiles" / "voc-vgg16.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(paper.replace("name: voc-vgg16", "name: mine"))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")                   # a page, base "..", the profile from the project
    cfg = experiments.profile("mine.yaml", ["random_init=true"], base="..")
    assert "profile mine with random_init=true" in experiments.Experiment(cfg, {}, profile="mine.yaml").ran_on()


def test_a_single_step_command_ends_with_its_line_of_the_runs_summary(tiny_run, capsys):
    cfg, folders = tiny_run
    assert main(["evaluate", "--profile", "demo", *tiny_overrides(cfg.data.root, cfg.out)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"evaluate: {folders['eval']} (done, reused: step folders are named by the settings, not " \
                     f"by the inputs' contents; delete it to run the step again)"
    assert out[-2:] == [f"[evaluate] mIoU on val (4 images, retrain model): "
                        f"{100 * runs.done_info(folders['eval'])['miou']:.1f} (%)  {folders['eval']}/metrics.json",
                        f"[evaluate] all it recorded (times, machine, code): {folders['eval']}/done.json"]
    assert main(["evaluate", "--profile", "demo", *tiny_overrides(cfg.data.root, cfg.out), "eval.scales=[1.0]",
                 "eval.crf=false"]) == 0                                           # another folder: the step runs
    first = capsys.readouterr().out.splitlines()[0]
    folder = first.split()[1]
    assert first == f"evaluate: {folder} ({runs.seconds(runs.done_info(Path(folder))['wall_s'])})", \
        "its time, as done.json's"


def test_a_pages_caption_names_the_data_as_the_command_from_the_project_takes_it(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")                    # a page: base "..", data root ../data/smoke
    cfg = experiments.profile("smoke", base="..")
    assert cfg.data.root == "../data/smoke"
    assert experiments.Experiment(cfg).ran_on().startswith("dataset synthetic (data/smoke), profile smoke")
    cfg = experiments.profile("smoke", ["data.root=/abs/VOC"], base="..")
    assert "(/abs/VOC)" in experiments.Experiment(cfg).ran_on()


def test_the_dry_run_writes_a_setting_as_it_is_typed():
    assert [runs._as_typed(v) for v in (float("inf"), -float("inf"), True, [241, 321], 0.9, "")] == \
        [".inf", "-.inf", "true", "[241, 321]", "0.9", '""']


def test_the_summary_says_over_which_classes_an_all_background_labellings_precision_is(tmp_path):
    """An all-background labelling scores the precision of its background alone: the line says so."""
    from dsrg.steps.summary import closing_summary

    folder = tmp_path / "pseudo-0123456789"
    folder.mkdir()
    nan = None                                       # written null: a class never labelled has no precision
    (folder / "done.json").write_text(json.dumps({"images": 16, "quality": {
        "miou": 0.095, "precision": 0.761, "recall": 0.125, "class_precision": [0.761, nan, nan],
        "class_recall": [1.0, 0.0, 0.0]}}))
    line, = closing_summary(load_profile("smoke"), {"pseudo": folder})
    assert line == (f"[dsrg run] pseudo labels on train (16 images): mIoU 9.5, precision 76.1, recall 12.5 (%; "
                    f"precision over the 1 class they label, the ground truth has 3)  {folder}/done.json")
    other = {"class_precision": [0.7, 0.5, nan, 0.0], "class_recall": [0.9, 0.4, 0.0, nan]}   # 3 labelled, not 2
    (folder / "done.json").write_text(json.dumps({"images": 16, "quality": {"miou": 0.3, **other}}))
    assert "the ground truth has 3)" in closing_summary(load_profile("smoke"), {"pseudo": folder})[0]
    every = {"class_precision": [0.7, 0.5], "class_recall": [0.9, 0.4]}
    (folder / "done.json").write_text(json.dumps({"images": 16, "quality": {"miou": 0.3, **every}}))
    assert closing_summary(load_profile("smoke"), {"pseudo": folder})[0].endswith(f"mIoU 30.0 (%)  {folder}/done.json")


def test_the_line_of_a_step_resumed_over_sessions_says_their_time_too(tmp_path, monkeypatch, capsys):
    cfg = load_profile("smoke", [f"out={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}"])

    def resumed(step):
        def run(cfg, resume=False, **_):
            folder = runs.step_dir(cfg, step)
            folder.mkdir(parents=True, exist_ok=True)
            total = ', "wall_s_total": 40.0' if step == "eval" else ""
            (folder / "done.json").write_text(f'{{"wall_s": 1.0{total}}}')
            return folder
        return run

    for step in pipeline.planned_steps(cfg):
        monkeypatch.setattr(pipeline.MODULES[step], "run", resumed(step))
    runs.step_dir(cfg, "eval").mkdir(parents=True)
    (runs.step_dir(cfg, "eval") / "log.jsonl").write_text('{"images": 3}\n')       # an earlier session's
    pipeline.run(cfg, resume=True)
    said = capsys.readouterr()
    lines, begun = said.out.splitlines(), said.err.splitlines()
    assert lines[-1].startswith("[dsrg run] evaluate") and lines[-1].endswith(" s; 40 s with the sessions before)")
    assert "sessions before" not in lines[0]
    assert begun[0].endswith("(starting)") and begun[-1].startswith("[dsrg run] evaluate") and \
        begun[-1].endswith("(resuming)")


def test_seconds_are_said_to_a_tenth_under_ten_and_whole_above():
    assert [runs.seconds(s) for s in (0.24, 9.94, 9.96, 233.6)] == ["0.2 s", "9.9 s", "10 s", "234 s"]
