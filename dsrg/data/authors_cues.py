"""The authors' seed-cue files: SEC's ``localization_cues.pickle`` and DSRG's ``localization_cues-sal.pickle``.

Format (see ``shared/reference/official-implementation.md``): a dict where, for an image key ``i``,
``"%i_labels"`` is an int array of the foreground class ids present (1..20, never 0) and ``"%i_cues"``
an int array ``(3, K)`` of rows ``(class, y, x)`` on the 41 x 41 output grid, class 0 = background.
Image keys come from a list file of lines ``2008_007028.jpg 0`` (image name, key).

Loading them lets users train on the paper's own cues. A pickle can run code when loaded, so these
files are read with an unpickler that accepts NumPy arrays and nothing else.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from dsrg.data.voc import split_id
from dsrg.io import InputError, atomic_path

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
    keys: dict[str, int] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise InputError(f"{path}:{n}: expected '<image>.jpg <key>', got {line!r}")
        keys[split_id(parts[0])] = int(parts[1])
    return keys


def load_authors_cues(pickle_path: str | os.PathLike, list_path: str | os.PathLike, num_classes: int = 21,
                      grid: int = 41) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read an authors' cue pickle.

    Returns:
        ``{image_id: (labels, cues)}`` with ``labels`` bool ``(num_classes,)`` (background always True)
        and ``cues`` bool ``(num_classes, grid, grid)`` multi-hot, channel 0 = background.
    """
    pickle_path = Path(pickle_path)
    if not pickle_path.is_file():
        raise InputError(f"cue pickle not found: {pickle_path}")
    try:
        raw = _ArraysOnly(io.BytesIO(pickle_path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read cue pickle {pickle_path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"cue pickle {pickle_path}: expected a dict, got {type(raw).__name__}")
    out = {}
    for image_id, key in read_key_list(list_path).items():
        try:
            fg, rows = np.asarray(raw[f"{key}_labels"]), np.asarray(raw[f"{key}_cues"])
        except KeyError as exc:
            raise InputError(f"cue pickle {pickle_path}: no entry {exc.args[0]!r} for image {image_id}") from None
        where = f"cue pickle {pickle_path}, image {image_id} (key {key})"
        if fg.size and (fg.min() < 1 or fg.max() >= num_classes):
            raise InputError(f"{where}: labels {fg.tolist()} outside 1..{num_classes - 1}")
        if rows.ndim != 2 or rows.shape[0] != 3:
            raise InputError(f"{where}: cues of shape {rows.shape}; expected (3, K) rows (class, y, x)")
        cls, y, x = rows.astype(np.int64)
        if rows.size and (cls.min() < 0 or cls.max() >= num_classes or min(y.min(), x.min()) < 0
                          or max(y.max(), x.max()) >= grid):
            raise InputError(f"{where}: a cue lies outside classes 0..{num_classes - 1} or the {grid}x{grid} grid")
        labels = np.zeros(num_classes, bool); labels[0] = True; labels[fg.astype(np.int64)] = True
        cues = np.zeros((num_classes, grid, grid), bool); cues[cls, y, x] = True
        out[image_id] = (labels, cues)
    return out


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
