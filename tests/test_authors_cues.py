"""The authors' localization_cues pickle: read, written back, and refused when malformed or unsafe."""

import pickle

import numpy as np
import pytest

from dsrg.data.cues import load_authors_cues, save_authors_cues
from dsrg.errors import InputError


def tiny_pickle(tmp_path, entries=None):
    """Two images in the authors' format: a Python-2-style protocol-2 pickle and its list file."""
    raw = entries or {
        "0_labels": np.array([15]), "0_cues": np.array([[0, 0, 15], [0, 1, 20], [0, 1, 20]]),
        "1_labels": np.array([3, 12]), "1_cues": np.array([[3, 12], [40, 5], [2, 7]]),
    }
    (tmp_path / "cues.pickle").write_bytes(pickle.dumps(raw, protocol=2))
    (tmp_path / "list.txt").write_text("2008_007028.jpg 0\n2007_000032.jpg 1\n")
    return tmp_path / "cues.pickle", tmp_path / "list.txt"


def test_cues_become_multi_hot_grids_with_labels(tmp_path):
    cues = load_authors_cues(*tiny_pickle(tmp_path))
    labels, grid = cues["2008_007028"]
    assert np.flatnonzero(labels).tolist() == [0, 15]
    assert grid.shape == (21, 41, 41)
    # rows (class, y, x): background at (0,0), background at (1,1), person (15) at (20,20)
    assert sorted(zip(*np.nonzero(grid))) == [(0, 0, 0), (0, 1, 1), (15, 20, 20)]
    labels, grid = cues["2007_000032"]
    assert np.flatnonzero(labels).tolist() == [0, 3, 12] and grid[3, 40, 2] and grid[12, 5, 7]


def test_save_then_load_is_the_identity(tmp_path):
    cues = load_authors_cues(*tiny_pickle(tmp_path))
    save_authors_cues(tmp_path / "out.pickle", tmp_path / "out.txt", cues)
    again = load_authors_cues(tmp_path / "out.pickle", tmp_path / "out.txt")
    assert again.keys() == cues.keys()
    for k in cues:
        assert all(np.array_equal(a, b) for a, b in zip(again[k], cues[k]))


def test_malformed_files_are_named(tmp_path):
    pkl, lst = tiny_pickle(tmp_path)
    with pytest.raises(InputError, match="cue pickle not found"):
        load_authors_cues(tmp_path / "nope.pickle", lst)
    lst.write_text("2008_007028.jpg 0\n2009_000001.jpg 7\n")
    with pytest.raises(InputError, match=r"no entry '7_labels' for image 2009_000001"):
        load_authors_cues(pkl, lst)
    bad = tiny_pickle(tmp_path, {"0_labels": np.array([1]), "0_cues": np.array([[1], [41], [0]]),
                                 "1_labels": np.array([1]), "1_cues": np.zeros((3, 0), int)})
    with pytest.raises(InputError, match="outside .* the 41x41 grid"):
        load_authors_cues(*bad)
    (tmp_path / "list.txt").write_text("2008_007028.jpg zero\n")
    with pytest.raises(InputError, match=r"list.txt:1: expected"):
        load_authors_cues(*bad)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))
    (tmp_path / "evil.pickle").write_bytes(pickle.dumps({"0_labels": Evil()}))
    (tmp_path / "list.txt").write_text("a.jpg 0\n")
    with pytest.raises(InputError, match="not a NumPy array type"):
        load_authors_cues(tmp_path / "evil.pickle", tmp_path / "list.txt")


def test_cues_beyond_the_grid_they_are_read_on_name_the_authors_grid(tmp_path):
    with pytest.raises(InputError, match=r"image 2008_007028 \(key 0\): a cue lies at grid position 20, outside "
                                         r"the 13x13 grid it is read on; the authors' pickles are on the 41x41 "
                                         r"grid, .*\(seg.input_size=321\)"):
        load_authors_cues(*tiny_pickle(tmp_path), grid=13)
    assert len(load_authors_cues(*tiny_pickle(tmp_path), grid=41)) == 2


def test_the_list_file_given_as_the_pickle_is_named_as_swapped(tmp_path):
    pkl, lst = tiny_pickle(tmp_path)
    with pytest.raises(InputError, match=r"cannot read cue pickle .*list.txt: .* \(it is text, starting "
                                         r"'2008_007028.jpg 0'; the list file given as seeds.authors_pickle\?"):
        load_authors_cues(lst, pkl)


def test_a_negative_cue_position_is_the_one_named(tmp_path):
    bad = tiny_pickle(tmp_path, {"0_labels": np.array([1]), "0_cues": np.array([[1, 0], [40, -1], [0, 3]]),
                                 "1_labels": np.array([1]), "1_cues": np.zeros((3, 0), int)})
    with pytest.raises(InputError, match=r"a cue lies at grid position -1, outside the 41x41 grid it is read on$"):
        load_authors_cues(*bad)


def test_a_list_that_names_an_image_twice_is_refused(tmp_path):
    from dsrg.data.cues import read_key_list

    (tmp_path / "list.txt").write_text("a.jpg 0\nb.jpg 1\na.jpg 2\n")
    with pytest.raises(InputError, match=r"list.txt:3: image a is listed again \(first on line 1\)"):
        read_key_list(tmp_path / "list.txt")
