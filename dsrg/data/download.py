"""``dsrg data download``: fetch the official archives of VOC 2012, SBD and COCO 2014 (urllib only).

Each archive goes to ``<root>/<name>.part`` (an interrupted one resumes with an HTTP ``Range`` request), is
checked (size where known, SHA-256; one that fails is deleted), renamed to ``<root>/<name>``, unpacked into
``root`` and marked by ``<root>/.<name>.done``, which a second call skips; ``<root>/dsrg-downloads.json``
records each archive's URL, size and measured SHA-256. Offline, an archive copied to ``<root>/<name>`` by hand
is checked and unpacked; one that does not match is kept as ``<root>/<name>.bad``. Where each ends up
(``DATASET_DIRS``) is the folder to point the rest of ``dsrg`` at; archives are deleted once unpacked
(``keep_archives=True`` keeps them).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from ..errors import InputError
from ..files import made_folders, write_json

CHUNK = 1 << 20


class DownloadError(InputError):
    """A download that failed, was incomplete or did not match its checksum; the message says what to do."""


class UnreachableError(DownloadError):
    """The server could not be reached or refused the file; :func:`download` adds the offline route."""


@dataclass(frozen=True)
class Archive:
    """One file to fetch: its URL, the file name to store it under, and what is known of it."""

    url: str
    name: str
    sha256: str | None = None   # None: not known; the measured one is recorded in the manifest
    size: int | None = None     # bytes; None: not known


# The SHA-256 values are those torchvision's dataset code uses for the same archives
# (torchvision/prototype/datasets/_builtin: voc.py, sbd.py, coco.py); sizes only where two sources agree.
SOURCES: dict[str, tuple[Archive, ...]] = {
    "voc": (
        Archive("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                "VOCtrainval_11-May-2012.tar",
                sha256="e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb", size=1_999_639_040),
    ),
    "sbd": (
        Archive("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
                "benchmark.tgz",
                sha256="6a5a2918d5c73ce032fdeba876574d150d9d04113ab87540a1304cbcc715be53"),
    ),
    "coco": (
        Archive("http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
                "annotations_trainval2014.zip",
                sha256="031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009"),
        Archive("http://images.cocodataset.org/zips/val2014.zip", "val2014.zip",
                sha256="fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0"),
        Archive("http://images.cocodataset.org/zips/train2014.zip", "train2014.zip",
                sha256="ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775", size=13_510_573_713),
    ),
}
# The dataset folder inside ``root`` once each kind is unpacked.
DATASET_DIRS = {"voc": "VOCdevkit/VOC2012", "sbd": "benchmark_RELEASE/dataset", "coco": "."}
MANIFEST = "dsrg-downloads.json"

Opener = Callable[[urllib.request.Request], Any]


def _urlopen(request: urllib.request.Request) -> Any:
    return urllib.request.urlopen(request, timeout=60)


def marker_path(root: Path, archive: Archive) -> Path:
    return root / f".{archive.name}.done"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _status(response: Any) -> int | None:
    status = getattr(response, "status", None)
    return status if status is not None else response.getcode()


def _resume_offset(response: Any, start: int) -> int:
    """Where the response's body starts in the file: ``start`` for a 206 answering our range, else 0."""
    if start == 0 or _status(response) != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    return start if content_range.replace("=", " ").startswith(f"bytes {start}-") else 0


def fetch(archive: Archive, dest: Path, opener: Opener | None = None, progress: bool = True) -> str:
    """Download ``archive`` to ``dest`` through ``dest.part`` (resumed if present); return its SHA-256.

    A connection that breaks leaves the ``.part`` file for the next call to resume (DownloadError says
    so). A server that ignores the range request sends the whole file again, which then replaces the
    ``.part``. A ``.part`` of the wrong size or checksum is deleted and raises DownloadError. A ``dest``
    already present (left by an earlier call, or copied there by hand) is verified and used without
    downloading; if it does not match, it is renamed to ``dest.bad`` and DownloadError raised. A server
    that cannot be reached or refuses the file raises UnreachableError.
    """
    opener = opener or _urlopen
    if dest.is_file():
        return _verify_present(archive, dest)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    if archive.size is not None and start > archive.size:
        part.unlink()
        start = 0
    if archive.size is None or start < archive.size:
        headers = {"User-Agent": "dsrg-download"}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            response = opener(urllib.request.Request(archive.url, headers=headers))
        except urllib.error.HTTPError as exc:
            if not (exc.code == 416 and start):  # 416: nothing left after ``start``: the .part is complete
                raise UnreachableError(f"cannot download {archive.url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UnreachableError(f"cannot download {archive.url}: {exc}") from exc
        else:
            with response:
                _receive(archive, response, part, start, progress)
    sha256 = _verify_part(archive, part)
    os.replace(part, dest)
    return sha256


def _receive(archive: Archive, response: Any, part: Path, start: int, progress: bool) -> None:
    offset = _resume_offset(response, start)
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else archive.size
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(part, "ab" if offset else "wb") as f, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=archive.name,
                     disable=not progress) as bar:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                f.write(chunk)
                bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download of {archive.url} broke off after {part.stat().st_size} bytes ({exc}); "
                            f"run the same command again to resume from {part}") from exc
    got = part.stat().st_size
    if total is not None and got < total:
        raise DownloadError(f"download of {archive.url} stopped at {got} of {total} bytes; "
                            f"run the same command again to resume from {part}")


def _verify_part(archive: Archive, part: Path) -> str:
    """The SHA-256 of the downloaded ``part``; it is deleted and DownloadError raised if size or checksum
    are not the known ones (the next call downloads it afresh)."""
    got = part.stat().st_size if part.is_file() else 0
    if archive.size is not None and got != archive.size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{archive.name}: downloaded {got} bytes, expected {archive.size}; the partial "
                            "file was deleted, run again to download it afresh")
    sha256 = file_sha256(part)
    if archive.sha256 is not None and sha256 != archive.sha256:
        part.unlink()
        raise DownloadError(f"{archive.name}: the download's SHA-256 {sha256} does not match the known "
                            f"{archive.sha256} (a damaged or changed download from {archive.url}); the "
                            "download was deleted, run again to download it afresh")
    return sha256


def _verify_present(archive: Archive, path: Path) -> str:
    """The SHA-256 of an archive already at ``path``; one of the wrong size or checksum is renamed to
    ``<path>.bad`` (never deleted: it may be a hand-copied file) and DownloadError raised."""
    size = path.stat().st_size
    if archive.size is not None and size != archive.size:
        raise _set_aside(archive, path, f"is {size} bytes, expected {archive.size}")
    sha256 = file_sha256(path)
    if archive.sha256 is not None and sha256 != archive.sha256:
        raise _set_aside(archive, path, f"has SHA-256 {sha256}, expected {archive.sha256}")
    return sha256


def _set_aside(archive: Archive, path: Path, problem: str) -> DownloadError:
    """Rename ``path`` to ``<path>.bad`` (replacing an older one); the error that says so."""
    bad = path.with_name(path.name + ".bad")
    os.replace(path, bad)
    return DownloadError(f"{path} {problem}: not the file from {archive.url} (damaged, incomplete or another "
                         f"version); renamed it to {bad} (replacing any older one), nothing was deleted. Check "
                         f"or delete {bad}, then copy the right file to {path} or run again to download it")


def extract(path: Path, dest: Path) -> None:
    """Unpack a .tar/.tgz/.zip archive into ``dest``, refusing members that would land outside it."""
    dest = dest.resolve()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    target = (dest / member).resolve()
                    if target != dest and dest not in target.parents:
                        raise DownloadError(f"{path}: member {member!r} would be written outside {dest}")
                zf.extractall(dest)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                tf.extractall(dest, filter="data")
        else:
            raise DownloadError(f"{path} is neither a tar nor a zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"cannot unpack {path}: {exc}") from exc


def _record(root: Path, archive: Archive, sha256: str) -> dict:
    entry = {"url": archive.url, "bytes": (root / archive.name).stat().st_size, "sha256": sha256,
             "sha256_known": archive.sha256, "verified": archive.sha256 is not None}
    path = root / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    manifest[archive.name] = entry
    write_json(path, manifest)
    return entry


def download(kind: str, root: str | os.PathLike, opener: Opener | None = None, progress: bool = True,
             keep_archives: bool = False) -> Path:
    """Download, verify and unpack the archives of ``kind`` (``voc``, ``sbd`` or ``coco``) into ``root``.

    Idempotent: an archive whose marker ``<root>/.<name>.done`` exists is skipped; one already at
    ``<root>/<name>`` (copied by hand: the offline route, which a connection error names) is checked and
    unpacked without downloading. The archive is deleted after unpacking unless ``keep_archives``. ``opener``
    (default ``urllib.request.urlopen``) takes a ``urllib.request.Request`` and returns a response; tests pass a
    fake one.

    Returns:
        the dataset folder: ``<root>/VOCdevkit/VOC2012``, ``<root>/benchmark_RELEASE/dataset`` or ``<root>``.
    """
    if kind not in SOURCES:
        raise InputError(f"unknown dataset {kind!r} to download; expected one of {', '.join(SOURCES)}")
    root = Path(root)
    try:
        with made_folders(root):            # a failure leaves no empty folder that this call made
            for archive in SOURCES[kind]:
                marker = marker_path(root, archive)
                if marker.is_file():
                    continue
                path = root / archive.name
                sha256 = fetch(archive, path, opener, progress)
                extract(path, root)
                write_json(marker, _record(root, archive, sha256))
                if not keep_archives:
                    path.unlink()
    except UnreachableError as exc:
        raise UnreachableError(f"{exc}. {_offline_route(kind, root)}") from exc
    return root / DATASET_DIRS[kind]


def _offline_route(kind: str, root: Path) -> str:
    """How to go on without network: the archives of ``kind`` still missing from ``root``, and their URLs."""
    missing = [a for a in SOURCES[kind] if not marker_path(root, a).is_file() and not (root / a.name).is_file()]
    files = ", ".join(f"{a.name} ({a.url})" for a in missing)
    them, names = ("them", "those names") if len(missing) > 1 else ("it", "that name")
    into = str(root) if root.is_dir() else f"the folder {root} (make it first)"
    unpacked = {"voc": "JPEGImages", "sbd": "cls", "coco": "annotations"}[kind]
    there = root / DATASET_DIRS[kind]
    check = {"voc": f"dsrg data check --root {there}", "sbd": f"dsrg data train-aug --sbd-root {there} ...",
             "coco": f"dsrg data check --dataset coco --root {root}"}[kind]
    held = (f". {there.resolve()} holds {unpacked}/ already (unpacked by hand?): it needs no download, `{check}` "
            f"reads it") if (there / unpacked).is_dir() else ""
    return (f"Without network: fetch {files} elsewhere and copy {them} into {into} under {names}; running "
            f"the same command again then checks {them} (SHA-256) and unpacks {them}{held}")
