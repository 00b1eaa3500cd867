"""The wall time of an inference step over the sessions of a resumed run (dsrg.run.clock.Sessions), on a clock
the test sets by hand."""

from __future__ import annotations

import json

from dsrg.run.clock import Sessions


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _seconds(folder):
    return json.loads((folder / "elapsed.json").read_text())["wall_s"]


def _count(folder):
    return json.loads((folder / "elapsed.json").read_text())["sessions"]


def test_a_session_keeps_its_seconds_up_to_its_last_output_at_most_every_few_seconds(tmp_path):
    clock = FakeClock()
    sessions = Sessions(tmp_path, started=0.0, resume=False, every=5.0, now=clock)
    clock.t = 1.0
    sessions.kept()                         # the first output: saved at once
    assert _seconds(tmp_path) == 1.0
    clock.t = 3.0
    sessions.kept()                         # 2 s after the last save: not yet
    assert _seconds(tmp_path) == 1.0
    clock.t = 9.0                           # an interruption, 6 s after the last output
    sessions.save()
    assert _seconds(tmp_path) == 3.0, "the time after the last output kept is not counted"
    assert _count(tmp_path) == 1


def test_a_resumed_session_goes_on_from_the_seconds_before_and_one_that_starts_over_drops_them(tmp_path):
    (tmp_path / "elapsed.json").write_text('{"wall_s": 3.0, "sessions": 2}')
    clock = FakeClock()
    clock.t = 100.0
    resumed = Sessions(tmp_path, started=100.0, resume=True, now=clock)
    assert (resumed.earlier, resumed.before) == (3.0, 2)
    clock.t = 102.0
    resumed.kept()
    assert (_seconds(tmp_path), _count(tmp_path)) == (5.0, 3)
    over = Sessions(tmp_path, started=102.0, resume=False, now=clock)
    assert over.earlier == 0.0 and not (tmp_path / "elapsed.json").exists()


def test_nothing_kept_writes_nothing_and_only_the_writing_process_writes(tmp_path):
    clock = FakeClock()
    Sessions(tmp_path, started=0.0, resume=False, now=clock).save()
    assert not (tmp_path / "elapsed.json").exists()
    other = Sessions(tmp_path, started=0.0, resume=False, write=False, now=clock)
    clock.t = 1.0
    other.kept()
    other.save()
    assert not (tmp_path / "elapsed.json").exists()


def test_a_file_that_cannot_be_read_counts_no_earlier_seconds(tmp_path):
    for text in ("{cut sh", '{"wall_s": -1}', '["wall_s"]', '{"wall_s": "3"}'):
        (tmp_path / "elapsed.json").write_text(text)
        assert Sessions(tmp_path, started=0.0, resume=True).earlier == 0.0, text


def test_a_file_from_before_the_count_gives_the_seconds_and_no_count_from_then_on(tmp_path):
    (tmp_path / "elapsed.json").write_text('{"wall_s": 3.0}')
    clock = FakeClock()
    resumed = Sessions(tmp_path, started=0.0, resume=True, now=clock)
    assert (resumed.earlier, resumed.before) == (3.0, 0)
    clock.t = 1.0
    resumed.kept()
    assert (_seconds(tmp_path), _count(tmp_path)) == (4.0, 0), "0: not known, not one session"
