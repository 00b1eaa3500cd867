"""The spread over seeds: records per row and seed, their table, and which claims hold in every seed."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from conftest import tiny_overrides

from dsrg.cli import main
from dsrg.errors import InputError
from dsrg.profile import PROFILE_DIR
from dsrg.reproduce import figures, spread
from dsrg.run.provenance import source_hash


def _record(row, seed, miou, recall=None, precision=None, source="abc"):
    rec = {"row": row, "seed": seed, "profile": "demo", "miou": miou, "code": {"source": source}}
    if recall is not None:
        rec["supervision"] = {"epoch": [0, 1], "recall": recall, "precision": precision, "iou": recall}
    return rec


def test_the_table_gives_each_seed_the_mean_and_the_sample_deviation():
    records = [_record("+BSL", 0, 0.40), _record("+BSL", 1, 0.44), _record("baseline", 0, 0.30),
               _record("baseline", 1, 0.10)]
    table = spread.miou_by_seed(records)
    assert list(table.index) == ["baseline", "+BSL"]                    # Table 2's order
    assert table.loc["+BSL", ["seed 0", "seed 1"]].tolist() == pytest.approx([40.0, 44.0])
    assert table.loc["+BSL", "mean"] == pytest.approx(42.0)
    assert table.loc["+BSL", "std"] == pytest.approx(2 ** 0.5 * 2)     # ddof 1: sqrt(((-2)^2 + 2^2) / 1)
    with pytest.raises(InputError, match="make spread"):
        spread.miou_by_seed([])


def test_a_claim_holds_only_where_it_holds_in_every_seed():
    records = [_record("baseline", 0, 0.30), _record("baseline", 1, 0.50), _record("+BSL", 0, 0.40),
               _record("+BSL", 1, 0.45),
               _record("+DSRG", 0, 0.5, recall=[0.2, 0.4], precision=[0.9, 0.88]),
               _record("+DSRG", 1, 0.6, recall=[0.2, 0.3], precision=[0.9, 0.8])]
    claims = spread.claims(records).set_index("claim")
    bsl = claims.loc["+BSL > baseline (mIoU)"]
    assert not bsl["holds"] and bsl["holds in"] == "0" and bsl["fails in"] == "1"
    assert claims.loc["+DSRG > +BSL (mIoU)", "holds"]
    assert claims.loc["recall rises over the epochs (+DSRG)", "holds"]
    precision = claims.loc["precision holds: its last epoch within 5 points of the seeds' (+DSRG)"]
    assert not precision["holds"] and precision["fails in"] == "1"
    assert "+Retrain > +DSRG (mIoU)" not in claims.index, "no +Retrain record: the claim is not said to fail"


def _table1_records(seed, sec, vgg, resnet, vgg_grown=0.5, resnet_grown=0.7, resnet_seeds=0.38):
    seeds = {"iou": 0.38, "precision": 0.68, "recall": 0.45}
    return [{**_record("baseline", seed, sec), "seeds": seeds},
            {**_record("+DSRG", seed, vgg - 0.02, recall=[0.4, vgg_grown], precision=[0.7, 0.8]), "seeds": seeds},
            {**_record("+Retrain", seed, vgg), "seeds": seeds, "pseudo": {"miou": vgg - 0.01}},
            {**_record(spread.RESNET, seed, resnet, recall=[0.4, resnet_grown], precision=[0.7, 0.8]),
             "seeds": {**seeds, "iou": resnet_seeds}, "pseudo": {"miou": resnet - 0.01}}]


def test_table1_reads_sec_and_dsrg_vgg16_from_table2s_rows_and_checks_its_claims_in_every_seed():
    records = _table1_records(0, 0.09, 0.633, 0.916) + _table1_records(1, 0.30, 0.62, 0.60, resnet_grown=0.4)
    table = spread.table1_by_seed(records)
    assert list(table.index) == ["SEC", "DSRG (VGG16)", "DSRG (Resnet101)"]
    assert table.loc["SEC", ["seed 0", "seed 1"]].tolist() == pytest.approx([9.0, 30.0])
    assert table.loc["DSRG (Resnet101)", "mean"] == pytest.approx(75.8)
    claims = spread.table1_claims(records).set_index("claim")
    assert claims.loc["DSRG (VGG16) > SEC (mIoU)", "holds"]
    resnet_higher = claims.loc["DSRG (Resnet101) > DSRG (VGG16) (mIoU)"]
    assert not resnet_higher["holds"] and resnet_higher["holds in"] == "0" and resnet_higher["fails in"] == "1"
    assert claims.loc["the two DSRG rows share their seeds (IoU)", "holds"]
    grown = claims.loc["DSRG (Resnet101)'s grown supervision > DSRG (VGG16)'s (IoU, last epoch)"]
    assert grown["fails in"] == "1", "seed 1's ResNet-101 grew to 0.4, below VGG16's 0.5"
    other_seeds = _table1_records(2, 0.1, 0.6, 0.7, resnet_seeds=0.2)
    assert not spread.table1_claims(other_seeds).set_index("claim").loc["the two DSRG rows share their seeds (IoU)",
                                                                         "holds"]
    assert list(spread.miou_by_seed(records, rows=spread.TABLE2).index) == ["baseline", "+DSRG", "+Retrain"]
    assert "DSRG (Resnet101) > +Retrain (mIoU)" not in set(spread.claims(records)["claim"]), "Table 2's claims only"
    assert not any("random weights" in claim for claim in claims.index), "no record of the random start: no claim"


def test_table1_checks_over_seeds_whether_the_start_makes_the_gap_in_the_grown_supervision():
    def random_start(seed, grown):
        return _record(spread.RANDOM, seed, 0.5, recall=[0.4, grown], precision=[0.7, 0.8])

    records = [*_table1_records(0, 0.09, 0.633, 0.916), random_start(0, 0.45),        # VGG16 grew to 0.5, ResNet 0.7
               *_table1_records(1, 0.09, 0.633, 0.916), random_start(1, 0.55)]
    claims = spread.table1_claims(records).set_index("claim")
    cam = claims.loc["DSRG (VGG16)'s grown supervision from the CAM net > from random weights (IoU, last epoch)"]
    assert (cam["holds in"], cam["fails in"]) == ("0", "1")
    assert claims.loc["DSRG (Resnet101)'s grown supervision > DSRG (VGG16)'s from random weights (IoU, last epoch)",
                      "holds"]
    assert spread.FILE_NAMES[spread.RANDOM] == "random-start" and spread.RANDOM in spread.CURVES


def test_table1_checks_over_seeds_what_resnets_trunk_and_its_head_each_add_alone_and_together():
    def step(row, seed, grown):
        return _record(row, seed, 0.5, recall=[0.4, grown], precision=[0.7, 0.8])

    records = []     # VGG16 from random weights grows to 0.5, ResNet-101 (the row's DSRG step) to 0.7
    for seed, (vgg_resnet_head, resnet_vgg_head) in enumerate([(0.45, 0.6), (0.55, 0.68)]):
        records += [*_table1_records(seed, 0.09, 0.633, 0.916), step(spread.RANDOM, seed, 0.5),
                    step(spread.VGG16_RESNET_HEAD, seed, vgg_resnet_head),
                    step(spread.RESNET_VGG16_HEAD, seed, resnet_vgg_head)]
    claims = spread.table1_claims(records).set_index("claim")["holds in"]
    assert claims["ResNet-101's trunk alone (under VGG16's head) grows more than VGG16 from random weights (IoU, "
                  "last epoch)"] == "0, 1"                                     # 0.6 and 0.68 > 0.5
    assert claims["ResNet-101's head alone (on the VGG16 trunk) grows more than VGG16 from random weights (IoU, "
                  "last epoch)"] == "1"                                        # 0.45 < 0.5 < 0.55
    assert claims["ResNet-101's trunk and head together add more over VGG16 from random weights than the trunk "
                  "alone and the head alone, summed (IoU, last epoch)"] == "0"   # 0.2 > 0.1 - 0.05; 0.2 < 0.18 + 0.05
    assert [spread.FILE_NAMES[row] for row in spread.STEPS] == ["random-start", "vgg16-resnet-head",
                                                                "resnet101-vgg16-head"]
    assert not any("alone" in claim for claim in spread.table1_claims(records[:5]).claim), "no swaps: no claim"


def test_the_two_by_two_over_seeds_is_the_mean_of_the_seeds_that_recorded_all_four():
    def step(row, seed, grown):
        return _record(row, seed, 0.5, recall=[0.4, grown], precision=[0.7, 0.8])

    records = [*_table1_records(0, 0.09, 0.633, 0.916, resnet_grown=0.7), step(spread.RANDOM, 0, 0.5),
               step(spread.VGG16_RESNET_HEAD, 0, 0.4), step(spread.RESNET_VGG16_HEAD, 0, 0.6),
               *_table1_records(1, 0.09, 0.633, 0.916, resnet_grown=0.8), step(spread.RANDOM, 1, 0.4),
               step(spread.VGG16_RESNET_HEAD, 1, 0.5), step(spread.RESNET_VGG16_HEAD, 1, 0.5),
               step(spread.RANDOM, 2, 0.9)]                        # seed 2: one of the four only
    grid, seeds = spread.trunk_by_head_over_seeds(records)
    assert seeds == [0, 1]
    assert grid.round(6).to_dict() == {"VGG16's head": {"VGG16": 45.0, "ResNet-101": 55.0},
                                       "ResNet-101's head": {"VGG16": 45.0, "ResNet-101": 75.0}}
    assert spread.trunk_by_head_over_seeds(records[-1:]) is None


def test_table1s_page_names_its_rows_as_table1_does_beside_its_run():
    records = _table1_records(0, 0.09, 0.633, 0.916)
    names = {recorded: label for label, recorded in spread.TABLE1_RECORDS.items()}
    mine = {"baseline": 0.09, "+Retrain": 0.633, spread.RESNET: 0.9}
    assert spread.this_run(records, 0, mine, names=names) == \
        "The spread's seed 0 does not match this page's run: DSRG (Resnet101) 91.6 there, 90.0 here."
    assert spread.this_run(records, 0, {**mine, spread.RESNET: 0.916}, names=names).endswith("in every row.")
    assert spread.none_yet([], "smoke", rows=spread.ROWS) == (
        "No spread is recorded for this profile yet: dsrg spread --profile smoke --seeds 0 1 2 --rows baseline "
        "bsl dsrg retrain resnet101 random-start vgg16-resnet-head resnet101-vgg16-head measures it.")


def test_the_page_says_when_the_spread_was_measured_on_other_code():
    assert "on this code" in spread.source_note([_record("+BSL", 0, 0.4, source="x")], "x")
    assert "on other code (source y; this book's is x)" in spread.source_note([_record("+BSL", 0, 0.4, source="y")], "x")


def test_beside_one_run_the_spread_says_where_its_settings_or_code_differ_from_that_runs():
    rec = {**_record("+DSRG", 0, 0.5, source="x"), "settings": "dsrg run --profile demo out=runs/spread seed=0 "
                                                               "seg.growing=true"}
    assert spread.caveats([rec], "+DSRG", "dsrg run --profile demo seed=3 device=auto seg.crf_workers=4 "
                                          "seg.growing=true", "x") == "", "no setting that changes results differs"
    said = spread.caveats([rec], "+DSRG", "dsrg run --profile demo seg.iterations=150 seg.growing=true", "y")
    assert said == ("The spread was measured with other settings than this page's run (only the spread: none; only "
                    "this run: seg.iterations=150) and on other code (source x; this page's is y): make spread "
                    "measures it again.")
    assert spread.caveats([rec], "baseline", "dsrg run --profile demo", "y") == "", "only the row's records count"


def test_a_page_shows_a_spread_only_from_two_seeds_and_otherwise_says_what_is_recorded():
    assert not spread.enough([]) and not spread.enough([_record("+BSL", 0, 0.5), _record("+DSRG", 0, 0.6)])
    assert spread.enough([_record("+BSL", 0, 0.5), _record("+BSL", 1, 0.6)])
    assert spread.none_yet([], "demo") == "No spread is recorded for this profile yet: make spread measures it."
    assert spread.none_yet([_record("+BSL", 4, 0.5)], "demo").startswith(
        "Only seed 4 is recorded for this profile: a spread needs two seeds or more")


def test_the_spread_says_whether_its_seed_is_the_pages_run():
    records = [_record("+BSL", 0, 0.565), _record("+DSRG", 0, 0.61), _record("+DSRG", 1, 0.5)]
    assert spread.this_run(records, 0, {"+BSL": 0.565, "+DSRG": 0.61}) == \
        "The spread's seed 0 matches this page's run: the same mIoU in +BSL, +DSRG."
    assert spread.this_run(records, 0, {"+BSL": 0.538, "+DSRG": 0.61}) == \
        "The spread's seed 0 does not match this page's run: +BSL 56.5 there, 53.8 here."
    assert spread.this_run(records, 2, {"+BSL": 0.5}) == "", "a seed the spread lacks: nothing to say"
    four = [_record(row, 0, 0.5) for row in ("baseline", "+BSL", "+DSRG", "+Retrain")]
    assert spread.this_run(four, 0, dict.fromkeys(("baseline", "+BSL", "+DSRG", "+Retrain"), 0.5)).endswith(
        "the same mIoU in every row.")


def test_the_spread_says_where_it_reused_run_folders_of_another_thread_count(monkeypatch, capsys, tmp_path):
    class Ran:
        def __init__(self, counts):
            self.counts = counts

        def threads(self):
            return self.counts

    monkeypatch.setattr(spread, "torch_threads", lambda: 1)
    spread._say_other_threads({"+BSL": Ran([1]), "+DSRG": Ran([1])}, 0, tmp_path)
    assert capsys.readouterr().err == ""
    spread._say_other_threads({"+BSL": Ran([1, 2]), "+DSRG": Ran([])}, 3, tmp_path)
    err = capsys.readouterr().err
    assert f"seed 3: some of its run folders in {tmp_path} were trained with 2 threads, this process has 1 thread" in err
    assert f"remove {tmp_path} first" in err


def test_adding_a_seed_says_where_the_records_there_came_from_other_code_or_threads(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "demo"
    folder.mkdir()
    monkeypatch.setattr(spread, "torch_threads", lambda: 1)
    same = {**_record("+BSL", 0, 0.5, source=source_hash()), "threads": [1]}
    (folder / "bsl-seed0.json").write_text(json.dumps(same))
    spread._say_mixed(folder, [1])
    assert capsys.readouterr().err == ""
    (folder / "bsl-seed2.json").write_text(json.dumps({**same, "seed": 2, "code": {"source": "old"}, "threads": [2]}))
    spread._say_mixed(folder, [2])
    assert capsys.readouterr().err == "", "a seed measured again replaces its records"
    spread._say_mixed(folder, [1])
    err = capsys.readouterr().err
    assert "keeps records of seeds [0, 2] made with other code (source old) and 2 threads of torch" in err


def test_an_interrupted_spread_offers_its_resume(monkeypatch, capsys, tmp_path):
    seen = {}

    def interrupted(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(spread, "ablation", interrupted)
    argv = ["spread", "--seeds", "0", "1", "--out", str(tmp_path / "s"), "--runs", str(tmp_path / "r")]
    assert main(argv) == 130
    assert seen == {"rows": list(spread.TABLE2), "resume": False, "hint": False}, \
        "the command says how to continue, not the Python hint"
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("dsrg: interrupted; to continue: ") and last.endswith(" --resume") and "spread" in last
    assert main([*argv, "--resume"]) == 130 and seen["resume"] is True


def test_the_spread_dry_run_lists_each_seeds_step_folders_once_and_writes_nothing(capsys, tmp_path):
    """The rows share train-cls and seeds, and +Retrain trains on +DSRG's train-seg: each folder once a seed."""
    argv = ["spread", "--profile", "smoke", "--seeds", "0", "1", "--out", str(tmp_path / "s"), "--runs",
            str(tmp_path / "r"), "--dry-run", f"data.root={tmp_path / 'synth'}"]
    capsys.readouterr()
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    seed0 = [line.split() for line in lines if line.startswith("seed 0")]
    assert seed0[0][2:5] == ["every", "row", "train-cls"] and seed0[0][5].startswith(f"{tmp_path / 'r' / 'smoke'}/cls-")
    assert seed0[6][2:5] == ["+DSRG,", "+Retrain", "train-seg"] and len(seed0) == 11, seed0
    assert all(line[-2:] == ["to", "run"] for line in seed0)
    assert lines[-2].startswith("# inputs: found (batch sizes, weights and cue files of the steps to run); the embedded "
                                "dataset is written into")
    assert lines[-1] == f"# 22 step runs to go, with {torch.get_num_threads()} thread" \
                        f"{'s' * (torch.get_num_threads() != 1)} of torch; 8 records to write in " \
                        f"{tmp_path / 's' / 'smoke'} (<row>-seed<seed>.json; none there yet)"
    assert list(tmp_path.iterdir()) == [], "nothing written: no run folder, no records, no dataset"


def test_table1s_resnet_row_shares_the_seeds_of_table2s_rows_and_trains_its_own_network(capsys, tmp_path):
    argv = ["spread", "--profile", "smoke", "--seeds", "0", "--rows", "retrain", "resnet101", "--out",
            str(tmp_path / "s"), "--runs", str(tmp_path / "r"), "--dry-run", f"data.root={tmp_path / 'synth'}"]
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    said = [re.match(r"seed 0  (.+?) +(\S+) +\S+/(\w+)-", line).groups() for line in out if line.startswith("seed 0")]
    assert "# DSRG (Resnet101): its own settings seg.batch_norm=false seg.freeze_bn=false (a key given among yours " \
           "keeps your value)" in out
    assert said == [("every row", "train-cls", "cls"), ("every row", "seeds", "seeds"),
                    *(("+Retrain", command, folder) for command, folder in
                      (("train-seg", "seg"), ("pseudo-labels", "pseudo"), ("retrain", "retrain"), ("evaluate", "eval"))),
                    *(("DSRG (Resnet101)", command, folder) for command, folder in
                      (("train-seg", "seg"), ("pseudo-labels", "pseudo"), ("retrain", "retrain"), ("evaluate", "eval")))]
    assert main([*argv[:6], "resnet", *argv[7:]]) == 2
    assert "--rows: unknown 'resnet'; expected some of baseline bsl dsrg retrain resnet101" in capsys.readouterr().err


def test_measuring_some_rows_refuses_records_of_the_others_made_with_other_settings(tmp_path, no_training):
    folder = tmp_path / "out" / "smoke"
    folder.mkdir(parents=True)
    rec = {**_record("+BSL", 0, 0.5), "settings": spread._settings("smoke", ["seg.iterations=7",
                                                                             *spread.ROWS["+BSL"]], spread.ROWS["+BSL"])}
    (folder / "bsl-seed0.json").write_text(json.dumps(rec))
    with pytest.raises(InputError, match=r"bsl-seed0.json: recorded with other settings than this run's \(only it: "
                                         r"seg.iterations=7"):
        spread.measure("smoke", [1], tmp_path / "out", tmp_path / "runs", rows=["resnet101"])
    with pytest.raises(Trained):     # the same settings: the ResNet-101 row is added beside them
        spread.measure("smoke", [1], tmp_path / "out", tmp_path / "runs", ["seg.iterations=7"], rows=["bsl"])


def test_rows_given_after_an_override_or_unknown_are_named_with_what_is_expected():
    with pytest.raises(InputError, match=r"^--rows: unknown 'seg.iterations=7'; expected some of baseline bsl dsrg "
                                         r"retrain resnet101 .*; key=value overrides go before --rows$"):
        spread.measure("smoke", [0], rows=["resnet101", "seg.iterations=7"])
    assert spread._known(["resnet101", "+BSL", "bsl"]) == ["+BSL", spread.RESNET], "Table 2's order, once each"


def test_the_resnet_row_of_a_spread_on_the_demo_trains_its_batchnorm_from_random_weights(tmp_path, monkeypatch):
    from dsrg.reproduce import experiments

    ran = []
    monkeypatch.setattr(spread, "ablation", lambda *args, **kwargs: {})
    monkeypatch.setattr(spread, "run", lambda name, overrides, row, **_: ran.append((overrides, row)) or
                        (_ for _ in ()).throw(Trained()))
    with pytest.raises(Trained):
        spread.measure("demo", [4], tmp_path / "out", tmp_path / "runs", rows=["resnet101"])
    overrides, row = ran[0]
    assert row == experiments.TABLE1["DSRG (Resnet101)"] and "seed=4" in overrides
    assert overrides[-2:] == ["seg.batch_norm=false", "seg.freeze_bn=false"]
    with pytest.raises(Trained):
        spread.measure("demo", [4], tmp_path / "out", tmp_path / "runs", rows=["random-start"])
    overrides, row = ran[1]
    assert row == experiments.ABLATION["+DSRG"] + ["seg.init=imagenet"] and overrides[-1] == "seed=4", "no own settings"
    with pytest.raises(Trained):
        spread.measure("demo", [4], tmp_path / "out", tmp_path / "runs", rows=["resnet101-vgg16-head"])
    overrides, row = ran[2]
    assert row == experiments.DSRG_STEPS[experiments.RESNET_VGG16_HEAD]
    assert overrides[-2:] == ["seg.batch_norm=false", "seg.freeze_bn=false"], "a ResNet-101: the row's own settings"
    assert spread._own("demo", ["seg.freeze_bn=true"], spread.RESNET) == ["seg.batch_norm=false"], "the user's holds"
    assert spread.resnet_none_yet([], "demo") == "No spread of the DSRG (Resnet101) row is recorded: make spread " \
                                                 "measures it."
    assert "embedded profiles only" in spread.resnet_none_yet([_record(spread.RESNET, 2, 0.5)], "voc-vgg16")
    assert experiments.resnet_overrides(experiments.profile("voc-resnet101")) == [], "at paper scale: none"


def test_the_random_start_row_is_refused_where_the_vgg16_row_does_not_start_from_the_cam_net(tmp_path):
    with pytest.raises(InputError, match=r"^--rows random-start: on profile voc-vgg16 the VGG16 row starts from "
                                         r"ImageNet weights \(seg.init=imagenet\)"):
        spread.measure("voc-vgg16", [0], tmp_path / "out", tmp_path / "runs", rows=["random-start"])
    with pytest.raises(InputError, match=r"^--rows random-start resnet101-vgg16-head: on profile voc-vgg16 the VGG16 "):
        spread.measure("voc-vgg16", [0], tmp_path / "out", tmp_path / "runs",
                       rows=["resnet101-vgg16-head", "baseline", "random-start"])
    assert not (tmp_path / "out").exists()


def test_the_spread_dry_run_of_one_seed_says_it_gives_no_spread_unless_others_are_recorded(capsys, tmp_path):
    argv = ["spread", "--profile", "smoke", "--seeds", "3", "--out", str(tmp_path / "s"), "--runs",
            str(tmp_path / "r"), "--dry-run", f"data.root={tmp_path / 'synth'}"]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == ("# one seed gives each row's mIoU but no spread: a "
                                                                "spread needs two seeds or more (e.g. --seeds 0 1 2)")
    (tmp_path / "s" / "smoke").mkdir(parents=True)
    (tmp_path / "s" / "smoke" / "DSRG-seed0.json").write_text('{"row": "DSRG", "seed": 0}')   # 3 adds to seed 0
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("(<row>-seed<seed>.json; 1 there now, of any "
                                                                     "seed)")


@pytest.mark.parametrize("override, expected", [
    ("seg.growing=true", "this table sets seg.growing in its rows itself"),       # as the spread itself refuses
    ("cls.backbone_weights=nowhere.pth", "cls.backbone_weights: file not found"),  # the inputs' check
])
def test_the_spread_dry_run_refuses_what_the_spread_would(capsys, tmp_path, override, expected):
    argv = ["spread", "--profile", "smoke", "--seeds", "0", "--out", str(tmp_path / "s"), "--runs",
            str(tmp_path / "r"), "--dry-run", f"data.root={tmp_path / 'synth'}", override]
    capsys.readouterr()
    assert main(argv) == 2 and expected in capsys.readouterr().err


def test_the_spread_dry_run_refuses_a_later_seeds_folders_made_from_a_list_edited_since(tiny_run, capsys, tmp_path):
    """Seed 1 ran on the list before an edit, seed 0 after it: every step is complete in both, and seed 1's are
    refused, as the spread would refuse them when it came to them."""
    import shutil

    from conftest import TINY

    from dsrg.profile import load_profile
    from dsrg.reproduce.experiments import ABLATION
    from dsrg.run import folders, split_lists
    from dsrg.steps.pipeline import planned_steps

    root = shutil.copytree(tiny_run[0].data.root, tmp_path / "mine")
    overrides = [*TINY, f"data.root={root}", "data.dataset=voc"]

    def mark_done(seed):
        for row in ABLATION.values():
            cfg = load_profile("demo", ["progress=false", f"out={tmp_path / 'r' / 'demo'}", f"seed={seed}", *overrides,
                                        *row])
            for step in planned_steps(cfg):
                if not folders.is_done(folders.step_dir(cfg, step)):
                    folders.finish(folders.start(cfg, step, split_lists.to_keep(cfg, step)), 0.0)

    mark_done(1)
    listed = root / "ImageSets" / "Segmentation" / "train.txt"
    listed.write_text("\n".join(listed.read_text().split()[1:]) + "\n")
    mark_done(0)
    capsys.readouterr()
    assert main(["spread", "--profile", "demo", "--seeds", "0", "1", "--out", str(tmp_path / "s"), "--runs",
                 str(tmp_path / "r"), "--dry-run", *overrides]) == 2
    said = capsys.readouterr().err
    assert "made from a split list that has changed since" in said and "15 images now, 16 then" in said


def test_records_of_other_seeds_measured_on_another_list_are_refused_not_mixed(tiny_run, capsys, tmp_path):
    """Seed 1's record was measured on the list before an edit: measuring seed 0 after it would average two
    datasets into one row."""
    import shutil

    from conftest import TINY

    from dsrg.profile import load_profile
    from dsrg.reproduce.experiments import ABLATION
    from dsrg.run import folders, split_lists
    from dsrg.steps.pipeline import planned_steps

    root = shutil.copytree(tiny_run[0].data.root, tmp_path / "mine")
    overrides = [*TINY, f"data.root={root}", "data.dataset=voc"]
    cfg = load_profile("demo", ["progress=false", f"out={tmp_path / 'r' / 'demo'}", "seed=1", *overrides,
                                *ABLATION["baseline"]])
    made = {step: folders.start(cfg, step, split_lists.to_keep(cfg, step)) for step in planned_steps(cfg)}
    lists = spread._lists_of(made)
    assert lists["train"]["name"] == "train" and lists["train"]["images"] == 16
    scored = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert lists["eval"]["name"] == "val" and lists["eval"]["images"] == len(scored)
    (tmp_path / "s" / "demo").mkdir(parents=True)
    (tmp_path / "s" / "demo" / "baseline-seed1.json").write_text(json.dumps({"row": "baseline", "seed": 1,
                                                                            "splits": lists}))
    argv = ["spread", "--profile", "demo", "--seeds", "0", "--out", str(tmp_path / "s"), "--runs",
            str(tmp_path / "r"), "--dry-run", *overrides]
    assert main(argv) == 0
    listed = root / "ImageSets" / "Segmentation" / "train.txt"
    listed.write_text("\n".join(listed.read_text().split()[1:]) + "\n")
    capsys.readouterr()
    assert main(argv) == 2
    said = capsys.readouterr().err
    assert ("keeps 1 record of other seeds measured on other image lists (baseline-seed1.json: the training split "
            "'train' lists 15 images now, 16 then)") in said


def test_the_lists_of_a_record_are_compared_the_training_one_in_order_the_evaluated_one_as_a_set():
    train = {"name": "train", "images": 2, "digest": "ab", "set": "s"}
    scored = {"name": "val", "images": 3, "digest": "cd", "set": "t"}
    now = {"train": train, "eval": scored}
    assert spread._other_lists(now, now) is None
    assert spread._other_lists({"eval": {**scored, "digest": "dc"}}, now) is None      # scored in another order
    assert spread._other_lists({}, now) is None                                         # a record that does not say
    assert spread._other_lists({"train": {**train, "digest": "ba"}}, now) == \
        "the training split 'train' lists the same 2 images in another order"
    assert spread._other_lists({"eval": {**scored, "set": "u"}}, now) == \
        "the evaluated split 'val' lists 3 images as then, but other ones"
    assert spread._other_lists(now, {**now, "train": {**train, "name": "train_aug"}}) == \
        "the training split was 'train' then, 'train_aug' now"


def test_beside_one_run_the_spread_says_where_it_ran_with_other_thread_counts():
    settings = "dsrg run --profile demo seg.growing=true"
    rec = {**_record("+DSRG", 0, 0.5, source="x"), "settings": settings, "threads": [2]}
    said = spread.caveats([rec], "+DSRG", settings, "x", threads=[1])
    assert said.startswith("The spread was measured with 2 threads of torch, where this page's run had 1 thread ")
    assert spread.caveats([rec], "+DSRG", settings, "x", threads=[2]) == ""
    assert spread.caveats([rec], "+DSRG", settings, "x") == "", "a run that does not say is not compared"
    assert spread.caveats([{**rec, "threads": []}], "+DSRG", settings, "x", threads=[1]) == "", "nor records"
    two = [rec, {**rec, "seed": 1, "threads": [1]}]
    assert "with 1 or 2 threads of torch" in spread.caveats(two, "+DSRG", settings, "x", threads=[1])


def test_dsrg_spread_trains_each_row_with_each_seed_and_records_it(tiny_run, tmp_path, capsys):
    cfg, _ = tiny_run
    settings = [o for o in tiny_overrides(cfg.data.root, tmp_path) if not o.startswith("out=")]
    out = tmp_path / "spread"
    assert main(["spread", "--profile", "demo", "--seeds", "0", "1", "--out", str(out), "--runs",
                 str(tmp_path / "runs"), *settings]) == 0
    files = sorted(p.name for p in (out / "demo").iterdir())
    assert files == sorted(f"{name}-seed{s}.json" for name in ("baseline", "bsl", "dsrg", "retrain") for s in (0, 1))
    rec = json.loads((out / "demo" / "dsrg-seed1.json").read_text())
    assert rec["seed"] == 1 and rec["row"] == "+DSRG" and 0 <= rec["miou"] <= 1
    assert rec["code"]["source"] == source_hash() and "seed=1" in rec["settings"]
    assert rec["threads"] == [torch.get_num_threads()] and f"({torch.get_num_threads()} thread" in rec["machine"]
    assert len(rec["supervision"]["recall"]) == len(rec["supervision"]["epoch"]) >= 2
    assert set(json.loads((out / "demo" / "retrain-seed0.json").read_text())["pseudo"]) == {"miou", "precision",
                                                                                           "recall"}
    printed = capsys.readouterr().out
    assert "mean" in printed and "holds" in printed


def test_one_seed_is_added_to_the_records_already_there(tmp_path, monkeypatch, capsys):
    def measure(profile, seeds, out, runs, overrides, resume=False, rows=spread.TABLE2):
        assert rows == spread.TABLE2, "Table 2's rows unless --rows says others"
        for seed in seeds:
            (tmp_path / "out" / "smoke").mkdir(parents=True, exist_ok=True)
            (tmp_path / "out" / "smoke" / f"bsl-seed{seed}.json").write_text(json.dumps(_record("+BSL", seed, 0.5)))

    monkeypatch.setattr(spread, "measure", measure)
    assert _spread(tmp_path, "--seeds", "2") == 0
    assert "holds seed 2 only: a spread (its standard deviation" in capsys.readouterr().out
    assert _spread(tmp_path, "--seeds", "3", "3") == 0
    printed = capsys.readouterr().out
    assert "seed 2" in printed and "seed 3" in printed and "holds" in printed
    assert _spread(tmp_path, "--seeds", "seg.theta_fg=0.5") == 2
    assert "--seeds: expected at least one integer seed" in capsys.readouterr().err


class Trained(Exception):
    """What the tests' stand-in for training raises: a check that should have refused came too late."""


@pytest.fixture
def no_training(monkeypatch):
    def train(*args, **kwargs):
        raise Trained(args)

    monkeypatch.setattr(spread, "ablation", train)


def _spread(tmp_path, *words):
    return main(["spread", "--profile", "smoke", *words, "--out", str(tmp_path / "out"), "--runs",
                 str(tmp_path / "runs")])


@pytest.mark.parametrize("override", ["seed=7", "out=runs/x"])
def test_spread_refuses_the_seed_and_the_run_folder_as_overrides(override, tmp_path, capsys, no_training):
    assert _spread(tmp_path, override, "--seeds", "4", "5") == 2
    assert f"override {override!r}: dsrg spread sets" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_spread_checks_every_seed_before_training(tmp_path, capsys, no_training):
    assert _spread(tmp_path, "--seeds", "0", "99999999999") == 2
    assert "--seeds 99999999999: seed: expected an integer in [0, 2^31)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_spread_refuses_an_out_that_cannot_be_written(tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", "/dev/null", tmp_path / "file" / "below"):
        for dry in ([], ["--dry-run"]):
            assert main(["spread", "--profile", "smoke", "--seeds", "0", "1", "--out", str(out), *dry]) == 2
            assert f"dsrg: error: --out {out}: {out if out != tmp_path / 'file' / 'below' else out.parent} is a " \
                   f"file; expected a folder for the records" in capsys.readouterr().err
    assert main(["spread", "--profile", "smoke", "--seeds", "0", "--runs", str(tmp_path / "file"), "--dry-run"]) == 2
    assert f"--runs {tmp_path / 'file'}: {tmp_path / 'file'} is a file; expected a folder for the run folders" \
        in capsys.readouterr().err


def test_spread_refuses_a_folder_with_records_of_other_settings(tmp_path, no_training):
    folder = tmp_path / "out" / "smoke"
    folder.mkdir(parents=True)
    settings = f"dsrg run --profile smoke out=elsewhere seed=9 {' '.join(spread.ABLATION['baseline'])}"
    (folder / "baseline-seed9.json").write_text(json.dumps({"row": "baseline", "seed": 9, "settings": settings}))
    with pytest.raises(InputError, match=r"baseline-seed9.json: .*only this run: seg.theta_fg=0.5.*another --out"):
        spread.measure("smoke", [0, 1], tmp_path / "out", tmp_path / "runs", ["seg.theta_fg=0.5"])
    with pytest.raises(Trained):            # the same settings, another seed and run folder: on to training
        spread.measure("smoke", [0, 1], tmp_path / "out", tmp_path / "runs")
    reordered = f"dsrg run --profile smoke seed=9 {' '.join(reversed(spread.ABLATION['baseline']))} seg.lr=1"
    (folder / "baseline-seed9.json").write_text(json.dumps({"row": "baseline", "seed": 9, "settings": reordered}))
    with pytest.raises(Trained):            # the same overrides in another order
        spread.measure("smoke", [0, 1], tmp_path / "out", tmp_path / "runs", ["seg.lr=2", "seg.lr=1"])
    (folder / "baseline-seed9.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"baseline-seed9.json: not a spread record; expected a JSON object"):
        spread.load(folder)


def test_load_refuses_records_of_one_row_with_different_settings(tmp_path):
    for seed, extra in ((0, ""), (1, " seg.theta_fg=0.5")):
        rec = {**_record("+BSL", seed, 0.4), "settings": f"dsrg run --profile demo seed={seed}{extra}"}
        (tmp_path / f"bsl-seed{seed}.json").write_text(json.dumps(rec))
    with pytest.raises(InputError, match="only bsl-seed0.json: none; only bsl-seed1.json: seg.theta_fg=0.5"):
        spread.load(tmp_path)


def test_a_yaml_profile_keeps_its_records_and_runs_under_its_name(tmp_path, monkeypatch):
    yaml = tmp_path / "p" / "mine.yaml"
    yaml.parent.mkdir()
    yaml.write_text((PROFILE_DIR / "smoke.yaml").read_text().replace("name: smoke", "name: mine"))
    assert spread.records_folder(str(yaml), tmp_path / "out") == tmp_path / "out" / "mine"
    trained = []
    monkeypatch.setattr(spread, "ablation", lambda name, overrides, **_: trained.append(overrides) or {})
    assert spread.measure(str(yaml), [0, 1], tmp_path / "out", tmp_path / "runs") == []
    assert f"out={tmp_path / 'runs' / 'mine'}" in trained[0]
    assert (tmp_path / "out" / "mine").is_dir() and not (tmp_path / "out" / "p").exists()


def test_overrides_may_follow_the_seeds(tmp_path, monkeypatch):
    def measure(profile, seeds, out, runs, overrides, resume=False, rows=()):
        raise Trained(seeds, overrides)

    monkeypatch.setattr(spread, "measure", measure)
    with pytest.raises(Trained) as got:
        _spread(tmp_path, "--seeds", "0", "1", "seg.theta_fg=0.5")
    assert got.value.args == ([0, 1], ["seg.theta_fg=0.5"])


def _grown(row, seed, miou, seeds_iou, grown_iou=None):
    """A record with its seeds' IoU and, where ``grown_iou`` is given, a supervision curve (+DSRG's)."""
    rec = _record(row, seed, miou, **({} if grown_iou is None else
                                      {"recall": [seeds_iou, grown_iou], "precision": [0.7, 0.7]}))
    rec["seeds"] = {"iou": seeds_iou, "precision": 0.7, "recall": seeds_iou}
    return rec


def test_each_gain_is_paired_by_seed_with_the_interval_of_its_mean():
    records = [_record("+BSL", 0, 0.40), _record("+BSL", 1, 0.44), _record("+DSRG", 0, 0.42),
               _record("+DSRG", 1, 0.50), _record("baseline", 5, 0.1)]
    gains = spread.paired_gains(records)
    assert list(gains.index) == ["+DSRG over +BSL"], "baseline shares no seed with +BSL: no pair"
    assert list(gains.columns) == ["seed 0", "seed 1", "seeds", "mean", "std", "low", "high"]
    g = gains.loc["+DSRG over +BSL"]
    assert [g["seed 0"], g["seed 1"], g["mean"]] == pytest.approx([2.0, 6.0, 4.0])
    assert g["std"] == pytest.approx(8 ** 0.5)                            # sqrt(((2 - 4)^2 + (6 - 4)^2) / 1)
    half = 12.7062 * 8 ** 0.5 / 2 ** 0.5                                  # t(0.975, 1 degree of freedom) * std / sqrt(2)
    assert [g["low"], g["high"]] == pytest.approx([4.0 - half, 4.0 + half], abs=1e-3)


def test_a_gain_over_one_seed_has_no_interval():
    gains = spread.paired_gains([_record("+BSL", 3, 0.40), _record("+DSRG", 3, 0.45)])
    assert gains.loc["+DSRG over +BSL", "mean"] == pytest.approx(5.0)
    assert gains[["std", "low", "high"]].isna().all(axis=None)


def test_gains_of_other_pairs_and_of_none():
    records = [_record("baseline", 0, 0.2), _record("+Retrain", 0, 0.5)]
    assert spread.paired_gains(records, [("baseline", "+Retrain")]).loc["+Retrain over baseline", "mean"] == \
        pytest.approx(30.0)
    assert spread.paired_gains([]).empty


def test_the_seeds_of_every_pair_come_first_in_their_order():
    records = [_record("baseline", 10, 0.1), _record("+BSL", 10, 0.2), _record("+BSL", 2, 0.3),
               _record("+DSRG", 2, 0.4)]
    gains = spread.paired_gains(records)
    assert list(gains.columns[:3]) == ["seed 2", "seed 10", "seeds"]
    assert gains.loc["+BSL over baseline", "seed 10"] == pytest.approx(10.0)
    assert pd.isna(gains.loc["+BSL over baseline", "seed 2"]), "a seed without both rows has no gain"


def test_supervision_and_miou_sets_what_each_row_trained_on_beside_its_score():
    records = [_grown("+BSL", 0, 0.50, 0.30), _grown("+DSRG", 0, 0.55, 0.30, 0.45),
               _grown("+BSL", 1, 0.52, 0.32)]                                 # seed 1 has no +DSRG record
    table = spread.supervision_and_miou(records)
    assert list(table.index) == [0]
    assert table.loc[0].tolist() == pytest.approx([30.0, 50.0, 45.0, 55.0])
    fig = figures.growing_over_seeds(table)
    assert len(fig.axes[0].texts) == 1, "one arrow per seed"
    plt.close(fig)
    with pytest.raises(InputError, match="make spread"):
        figures.growing_over_seeds(spread.supervision_and_miou([]))


def test_table1_s_gains_are_named_as_table1_names_its_rows():
    records = [_record("baseline", 0, 0.2), _record("+Retrain", 0, 0.5), _record(spread.RESNET, 0, 0.8)]
    gains = spread.table1_gains(records)
    assert list(gains.index) == ["DSRG (VGG16) over SEC", f"{spread.RESNET} over DSRG (VGG16)"]
    assert gains["mean"].tolist() == pytest.approx([30.0, 30.0])


def test_gains_read_as_a_page_says_them():
    records = [_record("+BSL", 0, 0.40), _record("+BSL", 1, 0.44), _record("+DSRG", 0, 0.42),
               _record("+DSRG", 1, 0.50), _record("+Retrain", 1, 0.45)]
    assert spread.gains_text(spread.paired_gains(records)) == (
        "+DSRG over +BSL +4.0 points [-21.4, +29.4] (2 seeds); +Retrain over +DSRG -5.0 points (1 seed: no interval)")
