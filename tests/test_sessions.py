"""The wall time of an inference step over the sessions of a resumed run (dsrg.run.clock.Sessions), on a clock
the test sets by hand."""

from __future__ import annotations

import json

from dsrg.run.clock import Sessions, known_count, next_count
from dsrg.run.folders import finish


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


def test_a_file_that_cannot_be_read_counts_no_earlier_seconds_nor_sessions(tmp_path):
    for text in ("{cut sh", '{"wall_s": -1, "sessions": 2}', '["wall_s"]', '{"wall_s": "3", "sessions": 2}',
                 '{"wall_s": true, "sessions": 2}', '{"wall_s": Infinity, "sessions": 2}', '{"wall_s": 0, "sessions": 4}'):
        (tmp_path / "elapsed.json").write_text(text)
        resumed = Sessions(tmp_path, started=0.0, resume=True)
        assert (resumed.earlier, resumed.before) == (0.0, 0), text


def test_a_count_that_is_not_a_whole_number_above_zero_is_not_known(tmp_path):
    for count in ("true", '"2"', "2.0", "-1", "0", "null"):
        (tmp_path / "elapsed.json").write_text(f'{{"wall_s": 3.0, "sessions": {count}}}')
        resumed = Sessions(tmp_path, started=0.0, resume=True)
        assert (resumed.earlier, resumed.before) == (3.0, 0), count
    assert [known_count(v) for v in (3, True, 2.0, "2", -1, None)] == [3, 0, 0, 0, 0, 0]


def test_the_count_goes_on_from_the_sessions_before_and_starts_where_no_earlier_time_is_known():
    assert next_count(0, 0.0) == 1, "a fresh run, or one whose earlier time was lost: this session alone"
    assert next_count(2, 40.0) == 3
    assert next_count(0, 40.0) == 0, "earlier time over sessions not counted: not known from then on"


def test_done_json_counts_the_sessions_only_with_the_time_over_them(tmp_path):
    info = finish(tmp_path, 0.0, resumed_with_images=2, earlier_s=40.0, sessions_before=2)
    assert info["sessions"] == 3 and "wall_s_total" in info
    info = finish(tmp_path, 0.0, resumed_with_images=2, earlier_s=0.0, sessions_before=2)
    assert "sessions" not in info and "wall_s_total" not in info, "no time over the sessions: no count of them"
    info = finish(tmp_path, 0.0, resumed_at_iteration=10, earlier_s=40.0, sessions_before=0)
    assert "sessions" not in info and "wall_s_total" in info, "an older checkpoint: time known, count not"


def test_a_file_from_before_the_count_gives_the_seconds_and_no_count_from_then_on(tmp_path):
    (tmp_path / "elapsed.json").write_text('{"wall_s": 3.0}')
    clock = FakeClock()
    resumed = Sessions(tmp_path, started=0.0, resume=True, now=clock)
    assert (resumed.earlier, resumed.before) == (3.0, 0)
    clock.t = 1.0
    resumed.kept()
    assert (_seconds(tmp_path), _count(tmp_path)) == (4.0, 0), "0: not known, not one session"
