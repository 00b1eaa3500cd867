"""Files written whole or not at all, locks, and images read with a clear error.

Each writer writes to a temporary file in the destination folder and renames it into place
(``os.replace`` is atomic on POSIX and Windows), so nothing half-written is ever left behind.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from .errors import InputError, first_line


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: What a full disk answers, while a file is written.
_FULL = {errno.ENOSPC, errno.EDQUOT}
#: What a folder that cannot be written answers (read-only, not ours, full, a file where a folder goes).
_CANNOT_WRITE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST, *_FULL}


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The file lying where ``folder`` or one of the folders above it should be; None where there is none (or a
    folder on the way cannot be read)."""
    try:
        return next((p for p in (Path(folder), *Path(folder).parents) if p.exists() and not p.is_dir()), None)
    except OSError:
        return None


@contextlib.contextmanager
def writable(path: str | os.PathLike, what: str, errnos: set[int] = _CANNOT_WRITE) -> Iterator[None]:
    """Turn an OSError of writing ``path`` that says the place cannot be written (``errnos``: read-only, no
    permission, full, a file on the way) into an InputError naming ``path``, ``what`` it is, and the reason."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in errnos:
            raise
        file = file_in_the_way(Path(path).parent) if exc.errno in (errno.EEXIST, errno.ENOTDIR) else None
        why = f"{file} is a file, not a folder" if file is not None else exc.strerror
        raise InputError(f"cannot write {what} {path} ({why}); expected a place you can write to") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    ``suffix`` defaults to ``path``'s own suffix, so writers that pick a format by extension
    (PIL, numpy, torch) still see the right one.
    """
    path = Path(path)
    with writable(path, "the file"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                                   dir=path.parent)
    _lock(fd)                          # while it is held, the temporary file has a live writer
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes it private (0600)
    try:
        with writable(path, "the file", _FULL):          # a full disk, said; the writer's other errors its own
            yield tmp_path
            os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None


def _lock(fd: int, wait: bool = True) -> bool:
    """An exclusive advisory lock on the open file ``fd`` (released when it is closed, or its process dies);
    False when ``wait`` is off and another process holds it. Where ``fcntl`` does not exist, True."""
    if fcntl is None:  # pragma: no cover (Windows)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


# the temporary file of atomic_path: .<name>.<8 characters of mkstemp><name's suffix>
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]*)?$")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_path` below ``folder`` that no live writer holds (what a
    killed process leaves behind); return them. A file being written by another process stays."""
    removed = []
    for path in Path(folder).rglob(".*"):
        found = _TEMPORARY.match(path.name)
        if not path.is_file() or not found or (found["suffix"] or "") != Path(found["name"]).suffix:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd, wait=False):
                path.unlink(missing_ok=True)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def not_a_folder(path: str | os.PathLike) -> str:
    """Why ``path`` is not a folder, for a message ``f"{what} {not_a_folder(p)}: {p}"``: ``not found``, or
    ``is a file, not a folder`` (or the like, for anything else that stands there)."""
    path = Path(path)
    if not path.exists():
        return "not found"
    return "is a file, not a folder" if path.is_file() else "is not a folder"


def not_a_file(path: str | os.PathLike) -> str:
    """Why ``path`` is not a file, as :func:`not_a_folder` says it of a folder: ``not found``, ``is a folder, not
    a file`` (or ``is not a regular file``, a device say)."""
    path = Path(path)
    if not path.exists():
        return "not found"
    return "is a folder, not a file" if path.is_dir() else "is not a regular file"


def as_given(path: str | os.PathLike) -> str:
    """``path`` as given, with the folder a relative one is read from: ``data/x (from /home/me/dsrg)``."""
    return str(path) if os.path.isabs(path) else f"{path} (from {os.getcwd()})"


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``dst`` becomes a link to the file or folder ``src``, written relative to ``dst``'s folder, so that a tree
    moved or copied whole (``cp -a``, ``rsync -a``) keeps it; a copy where links are not possible. A file's link
    is made atomically."""
    src, dst = Path(src), Path(dst)
    target = os.path.relpath(src.resolve(), dst.parent.resolve())
    if src.is_dir():
        try:
            dst.symlink_to(target, target_is_directory=True)
        except OSError:
            shutil.copytree(src, dst)
        return
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            tmp.symlink_to(target)
        except OSError:
            shutil.copyfile(src, tmp)


def broken_link(path: str | os.PathLike) -> str:
    """Where ``path``, or a folder above it, is a link to something no longer there: ``"<link> is a link to
    <target>, which is not there"``; else ``""``."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            return f"{p} is a link to {os.path.normpath(p.parent / os.readlink(p))}, which is not there"
    return ""


@contextlib.contextmanager
def made_folders(path: str | os.PathLike, keep: bool = True, make: bool = True) -> Iterator[Path]:
    """Make the folder ``path`` and its missing parents for the ``with`` block; those it made are removed
    again where they stayed empty, after an error in the block (or in making them), or always where not
    ``keep``. Nothing else is touched: a folder made by someone else meanwhile, or holding files, stays.
    ``make=False``: the block makes them (or not); those missing at its start are still removed so."""
    path = Path(path)
    made = [p for p in (path.absolute(), *path.absolute().parents) if not p.exists()]    # the deepest first
    failed = True
    try:
        if make:
            path.mkdir(parents=True, exist_ok=True)
        yield path
        failed = False
    finally:
        if failed or not keep:
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()


_WRITER = ".writer"     # in a folder of atomic_dir: locked while its writer lives


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (which must not exist). The
    temporary folders of ``path`` that killed writers left are removed first: a live writer holds the lock of
    the ``.writer`` file in its own (a folder without one is taken for another's, just made, for an hour)."""
    path = Path(path)
    with writable(path, "the folder"):
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_dirs(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the final folder gets normal permissions
    writer = None
    try:
        writer = os.open(tmp / _WRITER, os.O_CREAT | os.O_RDWR, 0o600)
        _lock(writer)
        with writable(path, "the folder", _FULL):
            yield tmp
        if path.exists():
            raise FileExistsError(f"{path} appeared while it was being written; not replacing it")
        os.unlink(tmp / _WRITER)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if writer is not None:
            os.close(writer)


def _remove_stale_dirs(path: Path) -> None:
    """Remove the temporary folders of :func:`atomic_dir` beside ``path`` that no live writer holds (and that
    are a minute old: one just made may not hold its lock yet)."""
    if fcntl is None:  # pragma: no cover (Windows: no lock tells a live writer)
        return
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if not tmp.is_dir() or len(tmp.name) != len(path.name) + 10:      # ".<name>." and mkdtemp's 8 letters
            continue
        age = time.time() - tmp.stat().st_mtime
        state = _lock_state(tmp / _WRITER)  # "missing": an older version's, or cut short; stale where an hour old
        if state == "free" and age > 60 or state == "missing" and age > 3600:
            shutil.rmtree(tmp, ignore_errors=True)      # "unknown" (a file system that locks nothing): left


@contextlib.contextmanager
def locked(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the ``with`` block.

    Processes that write the same output (two notebooks that share a run, a book build that executes
    notebooks side by side) take the same lock: the second waits, then finds the output complete; it says
    ``waiting`` on stderr, once, where it has to wait. An advisory ``fcntl.flock``, released by the OS if the
    holder dies. The holder deletes the file as it leaves; a waiter that then finds its file gone from
    ``path`` takes the lock of a fresh one, so nothing stays behind. Where ``fcntl`` does not exist (Windows)
    the block runs unlocked, and no file is made.
    """
    if fcntl is None:  # pragma: no cover (Windows)
        yield
        return
    path = Path(path)
    while True:
        try:
            with writable(path, "the lock file"):
                path.parent.mkdir(parents=True, exist_ok=True)      # again after a wait: it may have been removed
                f = open(path, "a")
        except FileNotFoundError:       # its folder removed between the two (a failed first step's, emptied): again
            continue
        try:
            if not _lock(f.fileno(), wait=False):
                if waiting:
                    print(waiting, file=sys.stderr, flush=True)
                    waiting = None
                _lock(f.fileno())
            mine = _still_at(f, path)
        except BaseException:
            f.close()
            raise
        if mine:
            break
        f.close()               # the holder before us removed this file: lock the one at ``path`` now
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()       # while still held: no one can lock it after us
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)     # now, not when the last process forked meanwhile closes it
        f.close()


def held(path: str | os.PathLike) -> bool:
    """Whether a live process holds the lock of :func:`locked` on ``path`` now (a file left by a process that
    died is not held). Never waits, never creates the file."""
    return fcntl is not None and _lock_state(path) == "held"


def _lock_state(path: str | os.PathLike) -> str:
    """The lock of :func:`locked` on ``path``, probed without waiting: "held" (by a live process), "free",
    "missing" (no file to open) or "unknown" (a file system that locks nothing, or no fcntl)."""
    if fcntl is None:  # pragma: no cover (Windows)
        return "unknown"
    try:
        fd = os.open(path, os.O_RDWR)       # NFS emulates flock with POSIX locks: an exclusive one needs writing
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return "missing"
    try:
        if not _lock(fd, wait=False):
            return "held"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "free"
    except OSError:
        return "unknown"
    finally:
        os.close(fd)


def _still_at(f, path: Path) -> bool:
    """True when the open file ``f`` is the file at ``path`` (not removed, nor replaced, since it was opened)."""
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except OSError:             # removed (or stale, on NFS)
        return False


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """``rows`` (dicts with the same keys, in the order of the first's) as CSV with a header line, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = True) -> None:
    """``obj`` as JSON, atomically; a NaN (an undefined value, e.g. the IoU of a class that never occurs) is
    written ``null``, which strict JSON readers accept. ``sort_keys=False`` keeps the dicts' own order."""
    write_text(path, json.dumps(_nan_to_none(obj), indent=2, sort_keys=sort_keys) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike, expected: str) -> Any:
    """A JSON file; one that is not valid JSON (cut short, edited by hand) is an InputError naming it and what
    it should hold (``expected``)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({first_line(exc)}); expected {expected}") from None


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save(obj)`` to ``path``, atomically. torch's writer fails with its own RuntimeError where the disk
    is full ("unexpected pos", "file write failed"): that is an InputError naming the file and the space left."""
    import shutil

    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            if not re.search(r"unexpected pos|write failed|No space", str(exc)):
                raise
            free = shutil.disk_usage(tmp.parent).free
            raise InputError(f"cannot write the file {path} (torch's writer: {_clipped(first_line(exc), 120)}; "
                             f"{free / 2 ** 20:.1f} MiB free on its disk); expected a place you can write to") from None


def read_torch(path: str | os.PathLike, expected: str, mmap: bool = False) -> Any:
    """A file written by ``torch.save``, loaded as data only (tensors, NumPy arrays of numbers, plain values),
    so that nothing in it can run code. A file of another kind, one cut short, or one that holds other Python
    objects (a whole pickled model, say) is an InputError naming it and what it should hold (``expected``)."""
    import numpy as np   # here: the command line loads this module without torch
    import torch

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise InputError(f"{path} is empty (0 bytes); expected {expected}")
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):     # torch.save's zip, or its legacy pickle
        raise InputError(f"{path} is not a file written by torch.save (it begins with {head!r}); expected {expected}")
    numpy_data = [np._core.multiarray._reconstruct, np.ndarray, np.dtype] + [type(np.dtype(t)) for t in (
        bool, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
        np.float32, np.float64)]
    try:
        with torch.serialization.safe_globals(numpy_data):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 (a truncated zip, a foreign pickle...)
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))          # torch colours its message for terminals
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise InputError(f"{path} holds {found.group(1)}, a Python object and not only tensors (a whole model "
                             f"saved with torch.save(model)?); dsrg loads files as data only, so that nothing in "
                             f"them runs: save the state dict, torch.save(model.state_dict(), path). Expected "
                             f"{expected}") from None
        raise InputError(f"cannot read {path} ({type(exc).__name__}: {_clipped(first_line(text))}): it is cut "
                         f"short or damaged; expected {expected}") from None


def _clipped(text: str, most: int = 160) -> str:
    """``text`` up to ``most`` characters, cut after a sentence where one ends in them, else after a word."""
    if len(text) <= most:
        return text
    end = text[:most].rfind(". ")
    return text[:end + 1] if end > most // 4 else text[:most].rsplit(" ", 1)[0] + " ..."


def save_image(path: str | os.PathLike, image: Image.Image, **kwargs: Any) -> None:
    """Save a PIL image atomically; the format comes from ``path``'s extension."""
    with atomic_path(path) as tmp:
        image.save(tmp, format=Image.registered_extensions()[Path(path).suffix.lower()], **kwargs)


def load_image(path: str | os.PathLike, what: str = "image", expected: str = "a readable JPEG/PNG file") -> Image.Image:
    """Open and fully read an image file; a missing or corrupt file raises InputError naming ``what``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc} (expected {expected})") from exc


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``uint8`` RGB ``(H, W, 3)``; a missing or corrupt file raises InputError."""
    return np.asarray(load_image(path).convert("RGB"))
