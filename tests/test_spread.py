"""The spread over seeds: records per row and seed, their table, and which claims hold in every seed."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_overrides

from dsrg.cli import main
from dsrg.errors import InputError
from dsrg.reproduce import spread
from dsrg.run.provenance import source_hash


def _record(row, seed, miou, recall=None, precision=None, source="abc"):
    rec = {"row": row, "seed": seed, "profile": "demo", "miou": miou, "code": {"source": source}}
    if recall is not None:
        rec["supervision"] = {"epoch": [0, 1], "recall": recall, "precision": precision, "iou": recall}
    return rec


def test_the_table_gives_each_seed_the_mean_and_the_sample_deviation():
    records = [_record("+BSL", 0, 0.40), _record("+BSL", 1, 0.44), _record("baseline", 0, 0.30),
               _record("baseline", 1, 0.10)]
    table = spread.miou_table(records)
    assert list(table.index) == ["baseline", "+BSL"]                    # Table 2's order
    assert table.loc["+BSL", ["seed 0", "seed 1"]].tolist() == pytest.approx([40.0, 44.0])
    assert table.loc["+BSL", "mean"] == pytest.approx(42.0)
    assert table.loc["+BSL", "std"] == pytest.approx(2 ** 0.5 * 2)     # ddof 1: sqrt(((-2)^2 + 2^2) / 1)
    with pytest.raises(InputError, match="make spread"):
        spread.miou_table([])


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
    assert claims.loc["+Retrain > +DSRG (mIoU)", "seeds"] == 0 and not claims.loc["+Retrain > +DSRG (mIoU)", "holds"]


def test_the_page_says_when_the_spread_was_measured_on_other_code():
    assert "on this code" in spread.source_note([_record("+BSL", 0, 0.4, source="x")], "x")
    assert "on other code (source y; this book's is x)" in spread.source_note([_record("+BSL", 0, 0.4, source="y")], "x")


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
    assert len(rec["supervision"]["recall"]) == len(rec["supervision"]["epoch"]) >= 2
    assert set(json.loads((out / "demo" / "retrain-seed0.json").read_text())["pseudo"]) == {"miou", "precision",
                                                                                           "recall"}
    printed = capsys.readouterr().out
    assert "mean" in printed and "holds" in printed
    assert main(["spread", "--seeds", "3", "3"]) == 2


def test_the_source_hash_follows_the_code_that_makes_the_numbers_not_the_pages(monkeypatch, tmp_path):
    from dsrg.run import provenance

    for rel in ("method/a.py", "reproduce/tables.py", "profiles/demo.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    monkeypatch.setattr(provenance, "PACKAGE", tmp_path)
    before = provenance.source_hash()
    (tmp_path / "reproduce/tables.py").write_text("x = 2\n")
    assert provenance.source_hash() == before
    (tmp_path / "method/a.py").write_text("x = 2\n")
    assert provenance.source_hash() != before
