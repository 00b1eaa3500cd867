"""Fail in seconds, with one message: weights of another network and every other problem found by the pre-flight
check at once, files that are cut short or would run code refused by name, damaged run records named by the dry
run. Every file here is written in its real format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dsrg.cli import main
from dsrg.data.cues import load_authors_cues
from dsrg.errors import InputError
from dsrg.files import write_json
from dsrg.models import ResNet101
from dsrg.profile import load_profile
from dsrg.run import folders
from dsrg.run.checkpoints import load_model

# the smoke profile on a root of its own, checked and planned, nothing run
DRY = ["run", "--profile", "smoke", "--dry-run"]


class Marker:
    """A pickled object whose loading would create a file: what a hostile checkpoint does."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _dry(capsys, tmp_path, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*DRY, f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_weights_of_another_network_stop_the_dry_run_and_name_the_network(tmp_path, capsys):
    torch.save(ResNet101(width=0.0625).state_dict(), tmp_path / "resnet.pth")
    rc, _, err = _dry(capsys, tmp_path, "seg.init=imagenet", f"seg.backbone_weights={tmp_path / 'resnet.pth'}")
    assert rc == 2
    assert "seg.backbone_weights: backbone weights" in err
    assert "the file looks like a torchvision resnet101 state dict, and this trunk is a vgg16_bn" in err
    assert not (tmp_path / "run").exists()


def test_the_pre_flight_check_lists_every_problem_at_once(tmp_path, capsys):
    rc, _, err = _dry(capsys, tmp_path, "data.train_split=trian", f"cls.backbone_weights={tmp_path / 'no.pth'}")
    assert rc == 2
    assert "2 problems with the inputs, found before any step ran" in err
    assert f"cls.backbone_weights: file not found: {tmp_path / 'no.pth'}" in err
    assert "data.train_split: the embedded dataset (data.dataset=synthetic) has the splits" in err


def test_a_whole_pickled_model_is_refused_with_the_way_out_and_no_unsafe_advice(tmp_path, capsys):
    torch.save(nn.Linear(2, 2), tmp_path / "model.pth")
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'model.pth'}")
    assert rc == 2
    assert "holds torch.nn.modules.linear.Linear, a Python object and not only tensors" in err
    assert "torch.save(model.state_dict(), path)" in err
    assert "weights_only=False" not in err and "\x1b" not in err


def test_a_weights_file_that_would_run_code_runs_nothing(tmp_path, capsys):
    torch.save({"features.0.weight": Marker(tmp_path / "ran")}, tmp_path / "evil.pth")
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'evil.pth'}")
    assert rc == 2 and "a Python object and not only tensors" in err
    assert not (tmp_path / "ran").exists()


def test_a_text_file_given_as_weights_is_called_what_it_is(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("hello, these are my notes\n")
    rc, _, err = _dry(capsys, tmp_path, f"cls.backbone_weights={tmp_path / 'notes.pth'}")
    assert rc == 2 and f"{tmp_path / 'notes.pth'} is not a file written by torch.save (it begins with b'hell')" in err


def test_a_model_file_cut_short_is_a_message_that_says_how_to_make_it_again(tmp_path):
    step = tmp_path / "seg-0123456789"
    step.mkdir()
    torch.save({"state_dict": nn.Linear(4, 4).state_dict()}, step / "model.pt")
    (step / "model.pt").write_bytes((step / "model.pt").read_bytes()[:100])
    with pytest.raises(InputError, match=r"model\.pt .*cut short or damaged.*delete the step folder .*seg-0123456789"):
        load_model(step / "model.pt", nn.Linear(4, 4), torch.device("cpu"))


def test_a_model_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    torch.save({"state_dict": {"weight": Marker(tmp_path / "ran")}}, tmp_path / "model.pt")
    with pytest.raises(InputError, match="holds .*, a Python object and not only tensors"):
        load_model(tmp_path / "model.pt", nn.Linear(1, 1), torch.device("cpu"))
    assert not (tmp_path / "ran").exists()


def _step_folder(tmp_path, step: str) -> Path:
    cfg = load_profile("smoke", [f"data.root={tmp_path / 'synth'}", f"out={tmp_path / 'run'}"])
    folder = folders.step_dir(cfg, step)
    folder.mkdir(parents=True)
    return folder


def test_a_damaged_done_json_is_named_by_the_dry_run_and_by_whoever_reads_it(tmp_path, capsys):
    folder = _step_folder(tmp_path, "cls")
    (folder / "done.json").write_text("")
    rc, out, _ = _dry(capsys, tmp_path)
    assert rc == 0
    assert "done, but its done.json is unreadable: delete the folder to run the step again" in out
    with pytest.raises(InputError, match=r"done\.json is not valid JSON .*delete the step folder"):
        folders.done_info(folder)


def test_a_checkpoint_cut_short_is_not_offered_to_resume(tmp_path, capsys):
    folder = _step_folder(tmp_path, "cls")
    (folder / "ckpt.pt").write_bytes(b"PK\x03\x04 cut")
    rc, out, _ = _dry(capsys, tmp_path)
    assert rc == 0
    line = next(line for line in out.splitlines() if line.startswith("train-cls"))
    assert "its checkpoint ckpt.pt is unreadable (cut short?): the step starts over" in line
    assert "--resume continues" not in line


def test_an_authors_list_that_is_not_utf8_names_the_file_and_line(tmp_path):
    (tmp_path / "list.txt").write_bytes(b"2008_000001.jpg 0\n\xff\xfe 1\n")
    with open(tmp_path / "cues.pickle", "wb") as f:
        pickle.dump({"0_labels": np.array([1]), "0_cues": np.zeros((3, 1), np.int64)}, f)
    with pytest.raises(InputError, match=r"list\.txt, line 2: byte 0xff is not UTF-8"):
        load_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt")


def test_a_cue_pickle_of_strings_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "list.txt").write_text("2008_000001.jpg 0\n")
    with open(tmp_path / "cues.pickle", "wb") as f:
        pickle.dump({"0_labels": np.array(["3"]), "0_cues": np.array([["0"], ["1"], ["2"]])}, f)
    with pytest.raises(InputError, match=r"image 2008_000001 \(key 0\): labels hold <U1 values; expected integers"):
        load_authors_cues(tmp_path / "cues.pickle", tmp_path / "list.txt")


def test_an_undefined_measure_is_written_as_json_null(tmp_path):
    write_json(tmp_path / "done.json", {"iou": [0.5, float("nan")], "miou": float("nan")})

    def strict(name):
        raise ValueError(f"not strict JSON: {name}")

    assert json.loads((tmp_path / "done.json").read_text(), parse_constant=strict) == {"iou": [0.5, None],
                                                                                       "miou": None}
