"""Storage of the seed cues of a whole training set (one ``cues.npz``, written once by ``dsrg seeds``).

Cues are sparse (a few hundred labelled entries on a 41 x 41 grid), so they are kept as the authors
keep theirs: a list of ``(class, y, x)`` entries per image. ``cues.npz`` holds ``ids`` (N,),
``labels`` bool (N, C), ``offsets`` int64 (N + 1,), ``entries`` uint16 (M, 3) and ``grid`` (h, w);
image i's entries are ``entries[offsets[i]:offsets[i + 1]]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .io import InputError, atomic_path


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
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"cannot read cue store {path}: {exc}") from exc
