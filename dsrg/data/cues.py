"""Seed cue files (Section 3.1): ours, one ``cues.npz`` per training set (written once by ``dsrg seeds``), and
the authors' (SEC's ``localization_cues.pickle``, DSRG's ``localization_cues-sal.pickle``).

Cues are sparse (a few hundred labelled entries on a 41 x 41 grid), so both keep a list of ``(class, y, x)``
entries per image. ``cues.npz`` holds ``ids`` (N,), ``labels`` bool (N, C), ``offsets`` int64 (N + 1,),
``entries`` uint16 (M, 3) and ``grid`` (h, w); image i's entries are ``entries[offsets[i]:offsets[i + 1]]``.

The authors' pickle (``shared/reference/official-implementation.md``) is a dict where, for an image key ``i``,
``"%i_labels"`` holds the foreground class ids present (1..20, never 0) and ``"%i_cues"`` an int array
``(3, K)`` of rows ``(class, y, x)`` on the 41 x 41 grid, class 0 = background; the keys come from a list file
of lines ``2008_007028.jpg 0`` (image name, key). A pickle can run code when loaded, so it is read with an
unpickler that accepts NumPy arrays and nothing else.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError, not_utf8
from ..files import atomic_path
from .voc import split_id


class CueStore:
    """Read access: ``store.get(image_id) -> (cues bool (C, h, w), labels bool (C,))``."""

    def __init__(self, ids, labels: np.ndarray, offsets: np.ndarray, entries: np.ndarray, grid) -> None:
        self.ids = [str(i) for i in ids]
        self.labels = np.asarray(labels, bool)
        self.offsets = np.asarray(offsets, np.int64)
        self.entries = np.asarray(entries, np.uint16).reshape(-1, 3)
        self.grid = tuple(int(g) for g in grid)
        self.num_classes = self.labels.shape[1]
        self._row = {image_id: k for k, image_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._row

    def get(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        if image_id not in self._row:
            raise InputError(f"no seed cues for image '{image_id}' ({len(self.ids)} images in the cue store)")
        k = self._row[image_id]
        cues = np.zeros((self.num_classes, *self.grid), bool)
        c, y, x = self.entries[self.offsets[k]:self.offsets[k + 1]].T.astype(np.int64)
        cues[c, y, x] = True
        return cues, self.labels[k].copy()

    @classmethod
    def from_dense(cls, items: dict[str, tuple[np.ndarray, np.ndarray]]) -> "CueStore":
        """From ``{image_id: (cues bool (C, h, w), labels bool (C,))}``."""
        ids, labels, offsets, chunks = [], [], [0], []
        grid = None
        for image_id, (cues, lab) in items.items():
            grid = cues.shape[1:] if grid is None else grid
            if cues.shape[1:] != grid:
                raise InputError(f"cues of '{image_id}' are {cues.shape[1:]}, the others {grid}")
            nz = np.stack(np.nonzero(cues), axis=1).astype(np.uint16)
            chunks.append(nz)
            offsets.append(offsets[-1] + len(nz))
            ids.append(image_id)
            labels.append(lab)
        if not ids:
            raise InputError("no cues to store")
        return cls(ids, np.stack(labels), np.array(offsets), np.concatenate(chunks), grid)

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, ids=np.array(self.ids), labels=self.labels, offsets=self.offsets,
                                entries=self.entries, grid=np.array(self.grid))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CueStore":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"cue store not found: {path} (written by `dsrg seeds`)")
        try:
            with np.load(path) as z:
                return cls(z["ids"], z["labels"], z["offsets"], z["entries"], z["grid"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise InputError(f"cannot read cue store {path} ({type(exc).__name__}: {exc}): it is cut short or "
                             f"damaged; delete the step folder {path.parent} to make the seeds again") from None


# ----------------------------------------------------------------------------- the authors' cue files

_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"), ("__builtin__", "bytes"),
            ("builtins", "bytes")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not a NumPy array type; refusing to load it")
        return super().find_class(module, name)


def read_key_list(path: str | os.PathLike) -> dict[str, int]:
    """``{image_id: key}`` from a list file of lines ``<name>.jpg <key>`` (the id drops the extension)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cue list file not found: {path} (expected lines like '2008_007028.jpg 0')")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc, "expected UTF-8 lines like '2008_007028.jpg 0'", prefix="cue list file ") from None
    keys: dict[str, int] = {}
    line_of: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise InputError(f"{path}:{n}: expected '<image>.jpg <key>', got {line!r}")
        image_id = split_id(parts[0])
        if image_id in keys:
            raise InputError(f"{path}:{n}: image {image_id} is listed again (first on line {line_of[image_id]}); "
                             f"expected each image once, with its key")
        keys[image_id], line_of[image_id] = int(parts[1]), n
    return keys


def read_authors_cues(pickle_path: str | os.PathLike, list_path: str | os.PathLike, num_classes: int = 21,
                      grid: int = 41, ids: Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """An authors' cue pickle, checked entry by entry and kept sparse: ``{image_id: (fg, rows)}`` with ``fg``
    int64 ``(F,)`` the foreground class ids and ``rows`` int64 ``(3, K)`` the cues ``(class, y, x)`` on the
    ``grid x grid`` grid. ``ids``: image ids the pickle must cover (InputError naming the missing ones)."""
    pickle_path = Path(pickle_path)
    if not pickle_path.is_file():
        raise InputError(f"cue pickle not found: {pickle_path}")
    try:
        with open(pickle_path, "rb") as f:
            raw = _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
        with open(pickle_path, "rb") as f:
            start = f.read(200)
        raise InputError(f"cannot read cue pickle {pickle_path}: {exc}{_text_hint(start)}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"cue pickle {pickle_path}: expected a dict, got {type(raw).__name__}")
    out = {}
    for image_id, key in read_key_list(list_path).items():
        try:
            fg, rows = np.asarray(raw[f"{key}_labels"]), np.asarray(raw[f"{key}_cues"])
        except KeyError as exc:
            raise InputError(f"cue pickle {pickle_path}: no entry {exc.args[0]!r} for image {image_id}") from None
        where = f"cue pickle {pickle_path}, image {image_id} (key {key})"
        for what, array in (("labels", fg), ("cues", rows)):
            if array.size and array.dtype.kind not in "iu":
                raise InputError(f"{where}: {what} hold {array.dtype} values; expected integers (class ids and "
                                 f"grid positions), as in the authors' localization_cues pickles")
        if fg.size and (fg.min() < 1 or fg.max() >= num_classes):
            raise InputError(f"{where}: labels {fg.tolist()} outside 1..{num_classes - 1}")
        if rows.ndim != 2 or rows.shape[0] != 3:
            raise InputError(f"{where}: cues of shape {rows.shape}; expected (3, K) rows (class, y, x)")
        rows = rows.astype(np.int64)
        if rows.size and (rows[0].min() < 0 or rows[0].max() >= num_classes):
            raise InputError(f"{where}: a cue's class lies outside 0..{num_classes - 1}")
        outside = rows[1:][(rows[1:] < 0) | (rows[1:] >= grid)]
        if outside.size:
            beyond = int(outside.max()) >= grid
            raise InputError(f"{where}: a cue lies at grid position {int(outside.max() if beyond else outside.min())}, "
                             f"outside the {grid}x{grid} grid it is read on"
                             + ("; the authors' pickles are on the 41x41 grid, the segmentation network's output for "
                                "a 321 px input (seg.input_size=321)" if beyond else ""))
        out[image_id] = (fg.astype(np.int64).reshape(-1), rows)
    missing = [i for i in ids or () if i not in out]
    if missing:
        raise InputError(f"the cue pickle {pickle_path} (with its list {list_path}) has no cues for "
                         f"{len(missing)} of the {len(ids)} images (first: {missing[:5]})")
    return out


def load_authors_cues(pickle_path: str | os.PathLike, list_path: str | os.PathLike, num_classes: int = 21,
                      grid: int = 41, ids: Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read an authors' cue pickle (checked as :func:`read_authors_cues` checks it).

    Returns:
        ``{image_id: (labels, cues)}`` with ``labels`` bool ``(num_classes,)`` (background always True)
        and ``cues`` bool ``(num_classes, grid, grid)`` multi-hot, channel 0 = background.
    """
    out = {}
    for image_id, (fg, rows) in read_authors_cues(pickle_path, list_path, num_classes, grid, ids).items():
        labels = np.zeros(num_classes, bool); labels[0] = True; labels[fg] = True
        cues = np.zeros((num_classes, grid, grid), bool); cues[rows[0], rows[1], rows[2]] = True
        out[image_id] = (labels, cues)
    return out


def _text_hint(start: bytes) -> str:
    """For a cue pickle that does not unpickle: what it holds where its ``start`` reads as text (a list file
    given as the pickle: the two settings swapped?)."""
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    first = text.splitlines()[0] if text.strip() else ""
    looks_like_list = len(first.split()) == 2 and first.split()[1].isdigit()
    return (f" (it is text, starting {first[:40]!r}" + ("; the list file given as seeds.authors_pickle? "
            "seeds.authors_list takes the list, seeds.authors_pickle the localization_cues pickle)" if looks_like_list
            else ")"))


def save_authors_cues(pickle_path: str | os.PathLike, list_path: str | os.PathLike,
                      entries: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write ``{image_id: (labels, cues)}`` (as returned by :func:`load_authors_cues`) in the authors'
    format: the pickle and its list file, keys numbered in order (atomic writes)."""
    raw, lines = {}, []
    for key, (image_id, (labels, cues)) in enumerate(entries.items()):
        raw[f"{key}_labels"] = np.flatnonzero(labels[1:]).astype(np.int64) + 1
        raw[f"{key}_cues"] = np.stack(np.nonzero(cues)).astype(np.int64)
        lines.append(f"{image_id}.jpg {key}")
    with atomic_path(pickle_path) as tmp:
        tmp.write_bytes(pickle.dumps(raw, protocol=2))
    with atomic_path(list_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
