"""Bad input is refused early with an error that names the thing and what was expected; nothing is left half-done."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from dsrg.errors import InputError
from dsrg.profile import load_profile
from dsrg.run.checkpoints import save_checkpoint
from dsrg.run.dist import World, rng_states
from dsrg.run.train import fit

# ----------------------------------------------------------------------------- the training loop

class Numbers(torch.utils.data.Dataset):
    """Item ``i`` is ``(i, [i])``: a tiny dataset for the training loop."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, key):
        i = key[0]
        return i, torch.tensor([float(i)])


def _fit(folder: Path, *, inf_at: int | None = None, resume: bool = False, iterations: int = 4,
         ctrl_c_at: int | None = None, sigint_at: int | None = None):
    cfg = load_profile("smoke", [f"cls.iterations={iterations}", "cls.batch_size=2", "cls.lr=0.01"])
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.cls.lr)

    def step(net, batch, it):
        if it == ctrl_c_at:
            raise KeyboardInterrupt
        if it == sigint_at:                     # as the terminal sends it: through the SIGINT handler
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        loss = net(batch[1]).pow(2).mean()
        return {"loss": loss * float("inf") if it == inf_at else loss}

    folder.mkdir(parents=True, exist_ok=True)
    fit(model, optimizer, cfg.cls, cfg, folder, Numbers(), step, device=torch.device("cpu"), world=World(),
        desc="train-cls", resume=resume)
    return model, optimizer


def test_a_loss_that_becomes_infinite_stops_training_naming_iteration_and_lr(tmp_path):
    with pytest.raises(InputError, match=r"train-cls: the loss is not finite at iteration 2 "
                                         r"\(loss=inf; cls\.lr=0\.01,.*e\.g\. cls\.lr=0\.001"):
        _fit(tmp_path, inf_at=2)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2, "iterations 0 and 1 are logged, then it stops"


def test_resuming_from_a_corrupt_checkpoint_names_the_file_and_the_ways_out(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"ckpt\.pt.*Delete it to start the step over, or run without --resume"):
        _fit(tmp_path, resume=True)


def test_an_interrupted_runs_checkpoint_is_set_aside_when_starting_over(tmp_path, capsys):
    model, optimizer = _fit(tmp_path / "first")
    save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, 3, rng_states(torch.device("cpu"), World()))
    _fit(tmp_path)
    err = capsys.readouterr().err
    assert "held an interrupted run at iteration 3; starting over, and it is kept as ckpt.prev.pt with its log " \
           "log.prev.jsonl until this run completes" in err and "--resume" in err
    assert (tmp_path / "ckpt.prev.pt").is_file(), "set aside: a later --resume cannot continue it under a new log"


def test_interrupted_before_its_first_checkpoint_it_names_the_run_it_set_aside(tmp_path, capsys):
    """The line a user acts on, the last of the step's, says how to get the earlier run back."""
    model, optimizer = _fit(tmp_path / "first")
    save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, 3, rng_states(torch.device("cpu"), World()))  # no log
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, ctrl_c_at=1)                          # without --resume, by mistake
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no checkpoint yet" in last and "ckpt.prev.pt holds an earlier run set aside at iteration 3 (to " \
        "continue it: move ckpt.prev.pt back to ckpt.pt and delete log.jsonl, then --resume)" in last, last


@pytest.mark.parametrize("again", ["SIGINT", "SIGTERM"])
def test_a_ctrl_c_passed_on_again_while_training_winds_up_still_lets_it_say_where_it_stopped(
        tmp_path, capsys, monkeypatch, again):
    """`timeout` or a process group passes Ctrl-C on as the terminal sends its own (two SIGINTs), and torchrun or
    `timeout` may follow with SIGTERM: within a moment of the Ctrl-C, the same interruption."""
    from dsrg.errors import sigterm_interrupts
    from dsrg.run import train

    def read_back_as_the_signal_comes_again(ckpt):
        os.kill(os.getpid(), getattr(signal, again))
        return 2

    before = signal.signal(signal.SIGINT, signal.default_int_handler)       # as from a terminal
    try:
        monkeypatch.setattr(train, "checkpoint_iteration", read_back_as_the_signal_comes_again)
        with pytest.raises(KeyboardInterrupt) as caught, sigterm_interrupts():
            _fit(tmp_path, sigint_at=3)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "Ctrl-C works again after"
    finally:
        signal.signal(signal.SIGINT, before)
    assert type(caught.value) is KeyboardInterrupt and caught.value.starts_over is False
    assert "train-cls: interrupted with 3 of 4 iterations done; `--resume` continues from its checkpoint at " \
           "iteration 2 (1 iteration after it done again)" in capsys.readouterr().err


def test_a_batch_larger_than_the_training_split_names_the_key(tmp_path):
    cfg = load_profile("smoke", ["cls.batch_size=9"])
    with pytest.raises(InputError, match=r"cls\.batch_size=9 but the training split has only 8 images"):
        fit(nn.Linear(1, 1), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1), cfg.cls, cfg, tmp_path,
            Numbers(), lambda net, batch, it: {}, device=torch.device("cpu"), world=World(), desc="train-cls")


# ----------------------------------------------------------------------------- profile values

@pytest.mark.parametrize("override, expected", [
    ("cls.lr=inf", "cls.lr: expected a finite learning rate > 0, got inf"),
    ("seg.lr=nan", "seg.lr: expected a finite learning rate > 0, got nan"),
    ("retrain.lr_gamma=0", "retrain.lr_gamma: expected a finite factor > 0, got 0.0"),
    ("seg.lr_power=-1", "seg.lr_power: expected a finite power > 0, got -1.0"),
    ("seg.boundary_weight=-0.5", "seg.boundary_weight: expected a finite weight >= 0, got -0.5"),
    ("seg.crf_workers=-2", "seg.crf_workers: expected a number of processes >= 0, or -1 (one per usable core less "
                           "one, up to 12), got -2"),
    ("data.loader_workers=-2", "data.loader_workers: expected a number of DataLoader processes >= 0, or -1 (one per "
                               "usable core less one, up to 12), got -2"),
    ("eval.scales=[1.0,10]", "eval.scales: expected a non-empty list of scales of the image size in (0, 8]"),
])
def test_a_value_that_would_fail_later_is_refused_when_the_profile_loads(override, expected):
    with pytest.raises(InputError) as exc:
        load_profile("smoke", [override])
    assert str(exc.value).startswith(expected)


def test_a_saliency_folder_without_saliency_folder_says_which_setting_to_add():
    with pytest.raises(InputError, match=r"seeds.saliency_dir: .*with seeds.saliency=spectral_residual .*"
                                         r"add seeds.saliency=folder"):
        load_profile("smoke", ["seeds.saliency_dir=/maps"])
    assert load_profile("smoke", ["seeds.saliency=folder", "seeds.saliency_dir=/maps"]).seeds.saliency_dir == "/maps"


def test_an_authors_pickle_without_source_authors_says_which_setting_to_add():
    with pytest.raises(InputError, match=r"seeds.authors_pickle: .*with seeds.source=cam .*add seeds.source=authors"):
        load_profile("smoke", ["seeds.authors_pickle=cues.pickle", "seeds.authors_list=list.txt"])
    with pytest.raises(InputError, match=r"seeds.authors_list: .*add seeds.source=authors"):
        load_profile("smoke", ["seeds.authors_list=list.txt"])


# ----------------------------------------------------------------------------- profile files

@pytest.mark.parametrize("text, expected", [
    (b"name: x\nseg: [1, 2\ncls: {}\n", r"bad\.yaml, line 3, column 4: expected ',' or ']'.*flow sequence at line 2"),
    (b"seg:\n  theta_fg: 0.8\nseg:\n  theta_bg: 0.9\n", r"bad\.yaml, line 3, column 1: found duplicate key seg"),
    (b"name: x\nseg: caf\xe9\n", r"bad\.yaml, line 2: byte 0xe9 is not UTF-8 text"),
    (b"- seg\n- cls\n", r"bad\.yaml: expected a YAML mapping of sections"),
])
def test_a_malformed_profile_file_is_named_with_line_and_column(tmp_path, text, expected):
    (tmp_path / "bad.yaml").write_bytes(text)
    with pytest.raises(InputError, match=expected):
        load_profile(str(tmp_path / "bad.yaml"))


def test_a_profile_file_must_end_in_yaml(tmp_path):
    (tmp_path / "myprof.txt").write_text("name: mine\n")
    with pytest.raises(InputError, match=r"myprof\.txt: expected a name ending in \.yaml or \.yml"):
        load_profile(str(tmp_path / "myprof.txt"))
    (tmp_path / "myprof.txt").rename(tmp_path / "myprof.yml")
    assert load_profile(str(tmp_path / "myprof.yml")).name == "mine"


# ----------------------------------------------------------------------------- dataset roots

def _voc_root(root: Path, ids=("a", "b"), split_lines=None) -> Path:
    """A VOC-layout root of 3 classes and 8 x 10 black images whose label maps hold class 1 in a corner."""
    import numpy as np
    from PIL import Image

    from dsrg.data.voc import write_label_png

    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for image_id in ids:
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        mask = np.zeros((8, 10), np.uint8)
        mask[:2, :2] = 1
        write_label_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    (root / "class_names.txt").write_text("background\nbox\nball\n")
    lines = split_lines if split_lines is not None else [f"{i}\n" for i in ids]
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(lines))
    return root


def test_deeplab_style_split_lines_give_the_image_ids(tmp_path):
    from dsrg.data.voc import VOCSegmentation

    root = _voc_root(tmp_path / "voc", split_lines=["/JPEGImages/a.jpg /SegmentationClassAug/a.png\n", "b.jpg\n"])
    ds = VOCSegmentation(root, "train")
    assert ds.ids == ["a", "b"]
    assert ds.check() == [] and ds.labels(0).tolist()[:3] == [True, True, False]


def test_a_split_file_that_is_not_utf8_names_the_file_and_line(tmp_path):
    from dsrg.data.voc import VOCSegmentation

    root = _voc_root(tmp_path / "voc")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_bytes(b"a\nb\xff\n")
    with pytest.raises(InputError, match=r"train\.txt, line 2: byte 0xff is not UTF-8 text"):
        VOCSegmentation(root, "train")


def test_data_check_reports_a_missing_label_folder_and_counts_every_problem_once(tmp_path, capsys):
    from dsrg.cli import main

    root = _voc_root(tmp_path / "voc")
    (root / "SegmentationClass").rename(tmp_path / "moved")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_bytes(b"\xff\n")
    assert main(["data", "check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "split 'train': 2 images, 2 opened, 1 problem," in out
    assert f"problem: split 'train': label folder {root / 'SegmentationClass'} not found" in out
    assert "split 'val': not readable, 1 problem" in out and "val.txt, line 1: byte 0xff" in out
    assert out.strip().endswith("2 problems")


def test_data_check_refuses_a_missing_root_a_file_as_root_and_a_negative_sample(tmp_path, capsys, monkeypatch):
    from dsrg.cli import main

    assert main(["data", "check", "--root", str(tmp_path / "nowhere")]) == 2
    assert f"dataset root not found: {tmp_path / 'nowhere'} (expected" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)                 # a relative root: the folder it was looked for from is named
    assert main(["data", "check", "--root", "my/data"]) == 2
    assert f"dataset root not found: my/data (from {tmp_path}) (expected" in capsys.readouterr().err
    (tmp_path / "VOC2012.tar").write_bytes(b"an archive, not yet unpacked")
    for dataset in ("voc", "coco"):
        assert main(["data", "check", "--root", str(tmp_path / "VOC2012.tar"), "--dataset", dataset]) == 2
        assert f"root is a file, not a folder: {tmp_path / 'VOC2012.tar'}" in capsys.readouterr().err
    assert main(["data", "check", "--root", str(_voc_root(tmp_path / "voc")), "--sample", "-1"]) == 2
    assert "--sample): expected a number of files to open per split >= 0, got -1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- pre-flight

def _dsrg(capsys, *args: str) -> str:
    """Run the ``dsrg`` command; it must fail with a clean error (exit 2), whose text is returned."""
    from dsrg.cli import main

    capsys.readouterr()
    assert main(list(args)) == 2
    return capsys.readouterr().err


def test_a_typod_split_of_the_embedded_dataset_stops_dsrg_run_before_anything_is_written(tmp_path, capsys):
    err = _dsrg(capsys, "run", "--profile", "smoke", f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}",
                "data.val_split=nosplit")
    assert "data.val_split: the embedded dataset (data.dataset=synthetic) has the splits ['train', 'val'], " \
           "got 'nosplit'" in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_split_file_is_named_with_its_key_before_the_step_runs(tmp_path, capsys):
    root = _voc_root(tmp_path / "voc")
    err = _dsrg(capsys, "evaluate", "--profile", "smoke", "data.dataset=voc", f"data.root={root}",
                f"out={tmp_path / 'run'}", "eval.split=vall")
    assert f"eval.split=vall: split file not found: {root / 'ImageSets/Segmentation/vall.txt'}" in err
    assert "(splits found: train)" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("command, override, expected", [
    ("seeds", "seeds.saliency=folder", "seeds.saliency_dir: folder not found: {0}/maps"),
    ("train-seg", "seg.init=imagenet", "seg.backbone_weights: file not found: {0}/vgg16.pth"),
    ("train-cls", "cls.backbone_weights={0}/vgg16.pth", "cls.backbone_weights: file not found: {0}/vgg16.pth"),
    ("run", "seeds.source=authors", "seeds.authors_pickle: file not found: {0}/cues.pickle"),
])
def test_a_missing_input_file_or_folder_is_named_with_its_key_before_the_step_runs(tmp_path, capsys, command,
                                                                                   override, expected):
    extra = {"seeds.saliency=folder": [f"seeds.saliency_dir={tmp_path}/maps"],
             "seg.init=imagenet": [f"seg.backbone_weights={tmp_path}/vgg16.pth"],
             "seeds.source=authors": [f"seeds.authors_pickle={tmp_path}/cues.pickle",
                                      f"seeds.authors_list={tmp_path}/list.txt"]}.get(override, [])
    err = _dsrg(capsys, command, "--profile", "smoke", f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}",
                override.format(tmp_path), *extra)
    assert expected.format(tmp_path) in err
    assert list(tmp_path.iterdir()) == []


def test_a_batch_larger_than_the_training_split_stops_dsrg_run_before_the_first_step(tmp_path, capsys):
    root = _voc_root(tmp_path / "voc")
    err = _dsrg(capsys, "run", "--profile", "smoke", "data.dataset=voc", f"data.root={root}", f"out={tmp_path / 'run'}",
                "data.val_split=train", "eval.split=train", "cls.batch_size=2", "seg.batch_size=2",
                "retrain.batch_size=3")
    assert "retrain.batch_size=3 but the training split 'train' has only 2 images; expected retrain.batch_size <= 2" \
        in err
    assert not (tmp_path / "run").exists()


def test_a_batch_that_the_torchrun_processes_cannot_share_stops_dsrg_run_before_the_first_step(tmp_path, capsys,
                                                                                            monkeypatch):
    """The paper profiles' retrain batch of 10 cannot be split over 4 GPUs: said before cls, seeds and seg run
    for hours, not when retrain starts."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setattr("dsrg.run.context.init_world", lambda device: World())   # no process group here
    err = _dsrg(capsys, "run", "--profile", "smoke", f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}",
                "cls.batch_size=4", "seg.batch_size=8", "retrain.batch_size=10")
    assert "retrain.batch_size=10 is not divisible by the 4 torchrun processes" in err
    assert "launch 1, 2, 5, 10 processes, or set retrain.batch_size to a multiple of 4" in err
    assert list(tmp_path.iterdir()) == []


def test_a_paper_profile_without_imagenet_weights_stops_before_the_first_step(tmp_path, capsys):
    """The paper starts both networks from ImageNet: an empty weights key would silently train from random
    weights for hours. random_init=true says it is on purpose."""
    args = ["run", "--profile", "voc-vgg16", "--dry-run", "data.dataset=synthetic", f"data.root={tmp_path / 'synth'}",
            "data.train_split=train", f"out={tmp_path / 'run'}"]
    err = _dsrg(capsys, *args)
    assert "cls.backbone_weights and seg.backbone_weights: no weights file, so a network would start from random " \
           "weights" in err
    assert "cls.backbone_weights=<torchvision vgg16 state dict>" in err and "random_init=true" in err
    from dsrg.cli import main

    assert main(args + ["random_init=true"]) == 0
    err = _dsrg(capsys, *args, "seg.backbone=resnet101", "seg.width=1.0", "random_init=true")
    assert "a torchvision resnet101 state dict is needed with seg.freeze_bn=true" in err
    assert list(tmp_path.iterdir()) == []


def _voc_run(tmp_path, *extra: str) -> list[str]:
    root = _voc_root(tmp_path / "voc")
    return ["run", "--profile", "smoke", "data.dataset=voc", f"data.root={root}", f"out={tmp_path / 'run'}",
            "data.val_split=train", "eval.split=train", "cls.batch_size=2", "seg.batch_size=2",
            "retrain.batch_size=2", *extra]


def test_the_dry_run_notes_a_split_of_vocs_images_smaller_than_vocs(tmp_path, capsys):
    from dsrg.cli import main

    root = _voc_root(tmp_path / "voc", ids=("2007_000032", "2007_000039"))
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "data.dataset=voc", f"data.root={root}", f"out={tmp_path / 'run'}",
                 "data.val_split=train", "eval.split=train", "cls.batch_size=2", "seg.batch_size=2",
                 "retrain.batch_size=2", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.count("[dsrg] note: data.train_split=train has 2 images, VOC 2012's train 1464: a subset? (the "
                     "paper's numbers are measured on the whole split)") == 1, err    # once for the three keys
    assert "data.val_split=train" not in err


def test_the_dry_run_counts_the_images_of_each_split_and_points_a_paper_profile_to_its_projection(tmp_path, capsys,
                                                                                                 monkeypatch):
    from dsrg.cli import main

    root = _voc_root(tmp_path / "voc", ids=("2007_000032", "2007_000039"))
    args = ["run", "--profile", "smoke", "data.dataset=voc", f"data.root={root}", f"out={tmp_path / 'run'}",
            "data.val_split=train", "eval.split=train", "cls.batch_size=2", "seg.batch_size=2", "retrain.batch_size=2",
            "--dry-run"]
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "; seeds 2 images of train;" in out and "evaluate 2 images of train x 3 scales + CRF" in out
    assert "# time:" not in out                                    # benchmarks/paper_scale.py projects VOC's profiles
    paper = ["run", "--profile", "voc-vgg16", *args[3:-1], "data.train_split=train", "random_init=true",
             "seg.iterations=12000", "--dry-run"]
    monkeypatch.chdir(tmp_path)                                                 # a checkout, with its venv
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "paper_scale.py").write_text("")
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / ".venv"))
    assert main(paper) == 0
    assert ("# time: `.venv/bin/python benchmarks/paper_scale.py --profile voc-vgg16 data.dataset=voc "
            "data.val_split=train eval.split=train cls.batch_size=2 seg.batch_size=2 retrain.batch_size=2 "
            "data.train_split=train random_init=true seg.iterations=12000` (in a checkout") in capsys.readouterr().out


def test_the_projection_names_the_python_that_would_run_it(tmp_path, monkeypatch):
    from dsrg.steps.dry_run import _python

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", "/opt/envs/dsrg/bin/python")
    monkeypatch.setattr(sys, "prefix", "/opt/envs/dsrg")
    assert _python() == "/opt/envs/dsrg/bin/python"                  # a virtual environment elsewhere: its path
    monkeypatch.setattr(sys, "executable", str(tmp_path / "env" / "bin" / "python"))
    assert _python() == str(tmp_path / "env" / "bin" / "python"), "here, but this is no checkout: its full path"
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    assert _python() == "python"                                      # the system's own


def test_a_weights_file_that_is_not_a_state_dict_stops_dsrg_run_before_the_first_step(tmp_path, capsys):
    (tmp_path / "empty.pth").write_bytes(b"")
    err = _dsrg(capsys, *_voc_run(tmp_path, f"cls.backbone_weights={tmp_path / 'empty.pth'}"))
    assert f"cls.backbone_weights: {tmp_path / 'empty.pth'} is empty (0 bytes); expected a torchvision state dict" \
        in err
    assert not (tmp_path / "run").exists()


def test_a_training_image_without_its_label_map_stops_dsrg_run_before_the_first_step(tmp_path, capsys):
    args = _voc_run(tmp_path)
    (tmp_path / "voc" / "SegmentationClass" / "b.png").unlink()
    err = _dsrg(capsys, *args)
    assert "data.train_split=train: 1 of its 2 images have no label map" in err and "(b)" in err
    assert not (tmp_path / "run").exists()


def test_a_saliency_folder_missing_maps_stops_dsrg_run_before_the_first_step(tmp_path, capsys):
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "a.png").write_bytes(b"")
    err = _dsrg(capsys, *_voc_run(tmp_path, "seeds.saliency=folder", f"seeds.saliency_dir={tmp_path / 'maps'}"))
    assert f"seeds.saliency_dir: 1 of the 2 training images have no map in {tmp_path / 'maps'} (e.g. b.png)" in err
    assert not (tmp_path / "run").exists()


def test_a_saliency_folder_missing_maps_and_holding_one_of_another_size_says_both_at_once(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    (tmp_path / "maps").mkdir()
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "maps" / "a.png")          # the image is 8 x 10
    err = _dsrg(capsys, *_voc_run(tmp_path, "seeds.saliency=folder", f"seeds.saliency_dir={tmp_path / 'maps'}"))
    assert "1 of the 2 training images have no map" in err and "(e.g. b.png)" in err
    assert "1 of the 2 maps have another size than their image (H x W; e.g. a.png 4 x 5, image 8 x 10)" in err


def test_saliency_maps_of_another_size_stop_dsrg_run_before_the_first_step_unless_resized(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from dsrg.data.saliency import SaliencyFolder

    (tmp_path / "maps").mkdir()
    Image.fromarray(np.full((8, 10), 200, np.uint8)).save(tmp_path / "maps" / "a.png")     # the image's 8 x 10
    Image.fromarray(np.tile(np.arange(5, dtype=np.uint8) * 60, (4, 1))).save(tmp_path / "maps" / "b.png")  # 4 x 5
    args = _voc_run(tmp_path, "seeds.saliency=folder", f"seeds.saliency_dir={tmp_path / 'maps'}", "--dry-run")
    err = _dsrg(capsys, *args)
    assert "seeds.saliency_dir: 1 of the 2 maps have another size than their image (H x W; e.g. b.png 4 x 5, " \
           "image 8 x 10); to resize them bilinearly: seeds.saliency_resize=true" in err
    from dsrg.cli import main

    assert main([*args, "seeds.saliency_resize=true"]) == 0
    resized = SaliencyFolder(tmp_path / "maps", resize=True)("b", (8, 10))
    assert resized.shape == (8, 10) and resized[:, 0].max() == 0 and resized[:, -1].min() == 1   # left dark, right lit
    with pytest.raises(InputError, match=r"seeds.saliency_resize: expected false with seeds.saliency=rbd"):
        load_profile("smoke", ["seeds.saliency=rbd", "seeds.saliency_resize=true"])


def test_an_authors_pickle_that_does_not_fit_the_run_stops_dsrg_run_before_the_first_step(tmp_path, capsys):
    import numpy as np

    from dsrg.data.cues import save_authors_cues

    cues = np.zeros((3, 9, 9), bool)
    cues[1, 8, 8] = cues[0, 0, 0] = True                      # on a 9 x 9 grid, the last row and column used
    save_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt", {"a": (np.array([1, 1, 0], bool), cues)})
    args = _voc_run(tmp_path, "seeds.source=authors", f"seeds.authors_pickle={tmp_path / 'cues.pickle'}",
                    f"seeds.authors_list={tmp_path / 'list.txt'}", "--dry-run")
    err = _dsrg(capsys, *args)                                 # smoke: seg.input_size=64, a 9 x 9 grid
    assert "has no cues for 1 of the 2 images (first: ['b'])" in err
    err = _dsrg(capsys, *args, "seg.input_size=32")           # a 5 x 5 grid
    assert "a cue lies at grid position 8, outside the 5x5 grid it is read on" in err
    assert not (tmp_path / "run").exists()


def test_saliency_maps_saved_as_jpeg_are_named_as_such(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    (tmp_path / "maps").mkdir()
    for image_id in ("a", "b"):
        Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "maps" / f"{image_id}.jpg")
    err = _dsrg(capsys, *_voc_run(tmp_path, "seeds.saliency=folder", f"seeds.saliency_dir={tmp_path / 'maps'}",
                                  "--dry-run"))
    assert "2 of the 2 training images have no map in" in err
    assert "expected one <image id>.png per image of data.train_split=train; found a.jpg: convert the maps to PNG" in err


def test_authors_cues_whose_classes_are_not_the_images_labels_are_warned_about(tmp_path, capsys):
    import numpy as np

    from dsrg.cli import main
    from dsrg.data.cues import save_authors_cues

    cues = np.zeros((3, 9, 9), bool)
    cues[0, 0, 0] = True
    box, ball = np.array([1, 1, 0], bool), np.array([1, 0, 1], bool)       # the data: a box in every image
    save_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt", {"a": (ball, cues), "b": (box, cues)})
    args = _voc_run(tmp_path, "seeds.source=authors", f"seeds.authors_pickle={tmp_path / 'cues.pickle'}",
                    f"seeds.authors_list={tmp_path / 'list.txt'}")
    assert main(["seeds", *args[1:]]) == 0
    assert ("the authors' cues give 1 of the 2 images other classes than their image-level labels (e.g. a: "
            "classes [2] in the pickle, [1] in the data)") in capsys.readouterr().err
    save_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt", {"a": (box, cues), "b": (box, cues)})
    assert main(["seeds", *args[1:], "seeds.bg_threshold=0.5"]) == 0          # another folder: the same classes
    assert "other classes" not in capsys.readouterr().err


def test_an_evaluated_split_that_shares_images_with_the_training_split_is_warned_about(tmp_path, capsys):
    args = _voc_run(tmp_path, "--dry-run")
    (tmp_path / "voc" / "ImageSets" / "Segmentation" / "val.txt").write_text("b\n")
    from dsrg.cli import main

    assert main([*args, "eval.split=val"]) == 0
    assert "warning: 1 of the 1 images of eval.split=val are in data.train_split=train too (e.g. b): the mIoU " \
           "would be measured on images the networks trained on" in capsys.readouterr().err
    assert main(args) == 0 and "warning" not in capsys.readouterr().err       # eval.split=train: meant


def test_the_saliency_size_check_is_remembered_while_the_maps_are_unchanged(tmp_path, monkeypatch):
    import time

    import numpy as np
    from PIL import Image

    from dsrg.run import preflight

    (tmp_path / "maps").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((8, 10), 200, np.uint8)).save(tmp_path / "maps" / f"{name}.png")
    args = _voc_run(tmp_path, "seeds.saliency=folder", f"seeds.saliency_dir={tmp_path / 'maps'}")
    cfg = load_profile("smoke", [a for a in args[3:] if "=" in a])
    calls = []
    real = preflight._require_map_sizes
    monkeypatch.setattr(preflight, "_require_map_sizes", lambda *a: (calls.append(1), real(*a)))
    preflight.check_inputs(cfg, ["seeds"])
    preflight.check_inputs(cfg, ["seeds"])                     # the same files: not read again
    assert len(calls) == 1 and list((tmp_path / "run" / ".checked").glob("saliency-sizes-*"))
    time.sleep(0.01)
    Image.fromarray(np.full((4, 5), 200, np.uint8)).save(tmp_path / "maps" / "b.png")     # replaced: read again
    with pytest.raises(InputError, match="1 of the 2 maps have another size than their image"):
        preflight.check_inputs(cfg, ["seeds"])
    assert len(calls) == 2


def test_the_methods_functions_name_an_input_of_the_wrong_shape():
    """Tensors in, tensors out, and a wrong one named: each raised a library's error (TypeError, IndexError,
    a broadcast or pydensecrf ValueError, an interpolation RuntimeError) or computed on silently."""
    import numpy as np
    import torch

    from dsrg.method.inference import crf_label, multiscale_probs
    from dsrg.method.losses import smoothed_softmax
    from dsrg.method.metrics import background_cue_counts
    from dsrg.method.saliency import normalize_maps
    from dsrg.method.seeds import saliency_background_cues

    image = np.zeros((6, 8, 3), np.uint8)
    cases = [
        (lambda: multiscale_probs(torch.nn.Identity(), image, [], torch.device("cpu"), "torchvision"),
         "sizes: expected at least one input size"),
        (lambda: multiscale_probs(torch.nn.Identity(), image[..., 0], [(6, 8)], torch.device("cpu"), "torchvision"),
         r"image: expected uint8 \(H, W, 3\) RGB, got shape \(6, 8\)"),
        (lambda: crf_label(np.full((2, 6, 8), 0.5, np.float32), image[..., 0], None),
         r"crf_label: expected probs \(C, H, W\) and an RGB image \(H, W, 3\)"),
        (lambda: smoothed_softmax(torch.zeros(5)), r"logits: expected shape \(\*, \*, \*, \*\), got \(5,\)"),
        (lambda: normalize_maps(torch.rand(4, 5)), r"saliency maps: expected shape \(\*, \*, \*\), got \(4, 5\)"),
        (lambda: saliency_background_cues(torch.rand(1, 4, 5), size=(0, 0)), r"size: expected the output grid's"),
        (lambda: background_cue_counts(np.zeros((4, 5)), np.zeros((5, 4), np.uint8)),
         r"the saliency map is \(4, 5\), its label map \(5, 4\)"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()


def test_a_count_in_a_message_takes_its_nouns_plural():
    from dsrg.errors import plural
    from dsrg.run.folders import _as_typed

    assert [plural(1, "class"), plural(2, "class"), plural(1, "id"), plural(3, "id")] == \
        ["1 class", "2 classes", "1 id", "3 ids"]
    assert [_as_typed(""), _as_typed("input_list.txt"), _as_typed(True)] == ['""', "input_list.txt", "true"]
