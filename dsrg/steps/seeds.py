"""``dsrg seeds``: the seed cues of every training image, stored once (Section 3.1).

``seeds.source=cam``: CAMs of the trained classifier (``train-cls``) on the output grid give the
foreground cues (:func:`dsrg.method.seeds.cam_foreground_cues`), saliency below ``bg_threshold`` the
background cues (computed with ``seeds.saliency`` in ``seeds.workers`` processes, or read from
``seeds.saliency_dir``). ``dsrg run`` may begin those processes while train-cls trains (``seeds.overlap``,
:func:`start_early`); the step then reads their cues.
``seeds.source=authors``: the authors' ``localization_cues*.pickle`` is imported instead
(:mod:`dsrg.data.cues`), so training can start from the paper's own cues.

Output: ``cues.npz`` (:class:`dsrg.data.cues.CueStore`) and, when the split has label maps, the cues'
precision / recall / IoU against ground truth on the grid (Fig. 4's epoch-0 point) in ``done.json``. While
it runs, the cues made so far are written a few hundred at a time (:class:`CueParts`): an interrupted step
resumed with ``--resume`` makes only the others.
Under torchrun every process makes the cues of its share of the images (:func:`dsrg.run.dist.share`);
process 0 gathers and stores them.
"""

from __future__ import annotations

import copy
import shutil
import sys
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..method import transforms as T
from ..data.cues import CueStore, load_authors_cues
from ..errors import InputError
from ..data.dataset import open_split
from ..data.saliency import SaliencyFolder
from ..method.metrics import supervision_counts, supervision_quality
from ..method.saliency import compute_saliency
from ..method.seeds import cam_foreground_cues, saliency_background_cues, stack_cues
from ..models.cam import CAMNet
from ..models.deeplab import output_size
from ..profile import Profile
from ..run import folders
from ..run.clock import Clock, Sessions, combined
from ..run.checkpoints import load_model
from ..run.dist import barrier, gather, share
from ..run.workers import auto_workers, in_order, process_pool, stop
from ..run.context import begin, setup
from ..run.labelling import resume_note
from ..run.networks import build_cls_net
from ..run import step_files


def cam_cues(cfg: Profile, ds, device, indices: Sequence[int] | None = None, progress: bool | None = None,
             early: EarlyBackgrounds | None = None, on_cue=None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]],
                                                                          dict]:
    """The cues of the images ``indices`` of ``ds`` (default all) from CAMs and saliency, and the time their
    images took (:meth:`dsrg.run.clock.Clock.timed`, from the first image on: the classifier's loading not
    counted). ``progress``: a progress bar (default ``cfg.progress``). ``early``: their background cues, begun
    before this step (:func:`start_early`). ``on_cue(image_id, (cues, labels))`` is handed each as it is made."""
    indices = range(len(ds)) if indices is None else indices
    progress = cfg.progress if progress is None else progress
    model = load_model(folders.require(cfg, "cls") / step_files.MODEL, build_cls_net(cfg, ds.num_classes, False),
                       device).eval()
    folder = (SaliencyFolder(cfg.seeds.saliency_dir, resize=cfg.seeds.saliency_resize)
              if cfg.seeds.saliency == "folder" else None)
    grid = cam_grid(cfg)
    if early is not None:
        images = ((i, ds.image(i), early.get(i)) for i in indices)
    elif folder is not None:
        images = ((i, ds.image(i), None) for i in indices)
    else:
        images = _with_backgrounds(ds, cfg.seeds, grid, auto_workers(cfg.seeds.workers), indices)
    out = {}
    clock = Clock()
    with closing(images):             # its saliency workers end even when this loop stops on an error
        for i, image, background in tqdm(images, total=len(indices), desc="seeds", unit="img", disable=not progress):
            labels = torch.from_numpy(ds.labels(i))[None]
            x = T.to_chw(T.resize_image(image, cfg.cls.input_size)).unsqueeze(0).to(device)
            with torch.no_grad():     # float32 even with amp (TF32 convolutions where torch allows them): bf16
                                      # CAMs tie at the seed thresholds
                cams = model.cams(T.normalize(x, cfg.data.normalize)).float()
            cams = torch.cat([torch.zeros_like(cams[:, :1]), cams], 1).cpu()        # channel 0: background
            if folder is not None:
                background = _background(folder(ds.ids[i], size=image.shape[:2]), cfg.seeds, grid)
            fg = cam_foreground_cues(cams, labels, cfg.seeds.fg_rule, cfg.seeds.fg_fraction)
            cues = stack_cues(fg, torch.from_numpy(background)[None], labels)
            out[ds.ids[i]] = (cues[0].numpy(), labels[0].numpy())
            if on_cue is not None:
                on_cue(ds.ids[i], out[ds.ids[i]])
            clock.tick()
    return out, clock.timed()


def cam_grid(cfg: Profile) -> tuple[int, int]:
    """``(h, w)`` of the CAMs, where the cues live: the classifier's output for its square input."""
    side = CAMNet.output_size(cfg.cls.input_size)
    return side, side


def _background(saliency: np.ndarray, sec, grid: tuple[int, int]) -> np.ndarray:
    """The background cue, bool ``(h, w)`` on ``grid``, of one saliency map (``sec``: the seeds section)."""
    sal = torch.from_numpy(np.asarray(saliency, np.float32))[None]
    return saliency_background_cues(sal, size=grid, threshold=sec.bg_threshold)[0].numpy()


def _saliency_background(image: np.ndarray, sec, grid: tuple[int, int]) -> np.ndarray:
    """A saliency worker's job: the background cue of one image (its saliency map is not sent back)."""
    return _background(compute_saliency(image, sec.saliency), sec, grid)


def _with_backgrounds(ds, sec, grid: tuple[int, int], workers: int, indices: Sequence[int] | None = None
                      ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(index, image, background cue)`` for the images ``indices`` of ``ds`` (default all) in order, the cues
    with saliency ``sec.saliency`` on ``grid``; with ``workers`` > 1 computed in that many processes, a few
    images ahead of the caller (the same cues: saliency is deterministic)."""
    indices = range(len(ds)) if indices is None else indices
    if workers <= 1:
        for i in indices:
            image = ds.image(i)
            yield i, image, _saliency_background(image, sec, grid)
        return
    jobs = (((i, image), _saliency_background, (image, sec, grid))
            for i, image in ((i, ds.image(i)) for i in indices))
    with process_pool(workers, preload=["dsrg.method.saliency"]) as pool:
        for (i, image), background in in_order(pool, jobs, 2 * workers):
            yield i, image, background


def _backgrounds_of(images, sec, grid: tuple[int, int]) -> list[np.ndarray]:
    """An early worker's job: the background cues of every image of ``images`` (a dataset of a few ids), read there."""
    return [_saliency_background(images.image(j), sec, grid) for j in range(len(images))]


def _few(ds, indices: Sequence[int]):
    """``ds`` holding only the ids ``indices``: what a job sends instead of every id of the split."""
    few = copy.copy(ds)
    few.ids = [ds.ids[i] for i in indices]
    return few


class EarlyBackgrounds:
    """The background cues of images of a split, computed by a pool of lowest-priority processes while
    earlier steps run (every image submitted at once, ``chunk`` to a job); :meth:`get` waits for one image's.
    A pool broken by a killed worker (out of memory while training ran) is started again once for the cues
    not yet made; after a second break the step makes them itself."""

    def __init__(self, ds, indices: Sequence[int], sec, grid: tuple[int, int], workers: int, chunk: int = 8):
        self.ds, self.sec, self.grid, self.workers, self.restarts = ds, sec, grid, workers, 1
        self.parts: dict[int, tuple[Future, int]] = {}
        indices = list(indices)
        self._submit([indices[k:k + chunk] for k in range(0, len(indices), chunk)])

    def _submit(self, chunks: list[list[int]]) -> None:
        """A fresh pool for ``chunks`` of image indices; an interruption here closes it."""
        self.pool = process_pool(self.workers, preload=["dsrg.method.saliency"], nice=19)
        try:
            for part in chunks:
                future = self.pool.submit(_backgrounds_of, _few(self.ds, part), self.sec, self.grid)
                self.parts.update((i, (future, j)) for j, i in enumerate(part))
        except BaseException:
            self.close()
            raise

    def get(self, i: int) -> np.ndarray:
        """Image ``i``'s background cue, bool ``(h, w)`` (waits for it)."""
        future, j = self.parts[i]
        try:
            return future.result()[j]
        except BrokenProcessPool:
            if not self.restarts:
                return _saliency_background(self.ds.image(i), self.sec, self.grid)
            self.restarts -= 1
            self.close()
            chunks: dict[Future, list[int]] = {}
            for k, (f, _) in self.parts.items():
                if not f.done() or f.cancelled() or f.exception() is not None:      # not made
                    chunks.setdefault(f, []).append(k)
            self._submit(list(chunks.values()))
            return self.get(i)

    def close(self) -> None:
        """Cancel what has not started and wait for the chunks running (:func:`dsrg.run.workers.stop`)."""
        stop(self.pool)


OVERLAP = {"never": (), "gpu": ("cuda",), "always": ("cpu", "cuda")}   # seeds.overlap: on these devices


def start_early(cfg: Profile, device: torch.device, world, steps: Sequence[str]) -> EarlyBackgrounds | None:
    """For ``dsrg run``: begin the saliency of the seeds step while train-cls trains, where it will run
    (``steps``), its saliency is computed (not read from a folder) and ``seeds.overlap`` asks for it on
    ``device`` (by default: on a GPU, where training leaves most cores idle) with ``seeds.workers`` processes
    (0 or 1: the saliency stays in the step). None where not."""
    if not ({"cls", "seeds"} <= set(steps) and cfg.seeds.source == "cam" and cfg.seeds.saliency != "folder"
            and device.type in OVERLAP[cfg.seeds.overlap]):
        return None
    workers = auto_workers(cfg.seeds.workers)
    if workers <= 1 or folders.is_done(folders.step_dir(cfg, "cls")) or \
            folders.is_done(folders.step_dir(cfg, "seeds")):     # seeds.workers 0 or 1: saliency in the step
        return None
    ds = open_split(cfg.data, cfg.data.train_split, progress=cfg.progress and world.main)
    return EarlyBackgrounds(ds, share(len(ds), world), cfg.seeds, cam_grid(cfg), workers)


def authors_cues(cfg: Profile, ds) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The authors' cues of the split's images; where their classes are not the images' own labels (a list file
    of another pickle, say), a warning names how many and one of them."""
    grid = output_size(cfg.seg.input_size, cfg.seg.backbone)
    loaded = load_authors_cues(cfg.seeds.authors_pickle, cfg.seeds.authors_list, ds.num_classes, grid, ds.ids)
    if ds.image_labels is not None or ds.has_masks:
        other = [(image_id, np.flatnonzero(loaded[image_id][0])[1:].tolist(), np.flatnonzero(ds.labels(i))[1:].tolist())
                 for i, image_id in enumerate(ds.ids)]
        other = [o for o in other if o[1] != o[2]]
        if other:
            image_id, theirs, ours = other[0]
            print(f"[dsrg] seeds: the authors' cues give {len(other)} of the {len(ds)} images other classes than "
                  f"their image-level labels (e.g. {image_id}: classes {theirs} in the pickle, {ours} in the data); "
                  f"is {cfg.seeds.authors_list} the pickle's own list?", file=sys.stderr, flush=True)
    return {i: (loaded[i][1], loaded[i][0]) for i in ds.ids}


def cue_quality(store: CueStore, ds) -> dict | None:
    """Fig. 4's measures of the stored cues against the label maps resized to the grid (None without masks)."""
    if not ds.has_masks:
        return None
    counts = None
    for i, image_id in enumerate(ds.ids):
        cues, _ = store.get(image_id)
        gt = T.resize_label(ds.mask(i), store.grid).astype(np.int64)
        c = supervision_counts(torch.from_numpy(cues)[None], torch.from_numpy(gt)[None])
        counts = c if counts is None else counts + c
    return supervision_quality(counts)


def run(cfg: Profile, resume: bool = False, early: EarlyBackgrounds | None = None) -> Path:
    ctx = setup(cfg)
    folder, done = begin(ctx, "seeds")
    if done:
        return folder
    started = time.perf_counter()
    ds = open_split(cfg.data, cfg.data.train_split, progress=cfg.progress and ctx.world.main)
    mine = share(len(ds), ctx.world)
    kept = _kept_cues(ctx, folder, ds, mine, resume) if cfg.seeds.source == "cam" else {}
    sessions = Sessions(folder, started, resume and cfg.seeds.source == "cam", write=ctx.world.main)
    parts = CueParts(folder, ctx.world.rank, sessions)
    try:
        if cfg.seeds.source == "cam":
            todo = [i for i in mine if ds.ids[i] not in kept]
            items, timed = cam_cues(cfg, ds, ctx.device, todo, cfg.progress and ctx.world.main, early, parts.add)
            items.update(kept)
        elif ctx.world.main:                   # a file to read: process 0 alone
            clock = Clock()
            items = authors_cues(cfg, ds)
            timed = clock.timed(len(ds))
        else:
            items, timed = {}, None
    except BaseException as exc:                   # an error too: the cues made so far are kept for --resume
        interrupted = isinstance(exc, KeyboardInterrupt)
        if cfg.seeds.source == "cam":
            try:
                parts.flush()
                sessions.save()
            except Exception:                          # noqa: BLE001 (a full disk: the error above is the one to say)
                if interrupted:
                    raise
            if interrupted or kept or parts.written:   # a setup error before any image: nothing to say of cues
                said = "interrupted" if interrupted else "stopped by the error below"
                print(f"seeds: {said} with the cues of {len(kept) + parts.written} of {len(mine)} images written; "
                      f"`--resume` continues from there (the cues written are kept), without it the step starts "
                      f"over", file=sys.stderr, flush=True)
        raise
    gathered = gather((items, timed), ctx.world)
    if not ctx.world.main:
        return folder
    every = {k: v for part, _ in gathered for k, v in part.items()}
    items = {image_id: every[image_id] for image_id in ds.ids}      # every process's cues, in the split's order
    timed = combined([t for _, t in gathered if t is not None]) if len(gathered) > 1 else gathered[0][1]
    store = CueStore.from_dense(items)
    store.save(folder / step_files.CUES)
    shutil.rmtree(folder / step_files.CUE_PARTS, ignore_errors=True)     # in cues.npz now
    folders.finish(folder, started, images=len(store), grid=list(store.grid), quality=cue_quality(store, ds),
                   timed=timed, resumed_with_images=len(kept), earlier_s=sessions.earlier,
                   sessions_before=sessions.before)
    return folder


#: The cues an unfinished seeds step keeps for ``--resume``: a file of them every so many images or seconds.
PART_IMAGES, PART_SECONDS = 256, 60.0


class CueParts:
    """The cues a process has made so far, written to ``<folder>/cues-parts/<rank>-<n>.npz`` a few hundred
    images at a time (:data:`PART_IMAGES`, or after :data:`PART_SECONDS`), so that an interrupted step keeps
    them for ``--resume`` (:func:`kept_cues`); ``sessions`` is told of each file written."""

    def __init__(self, folder: Path, rank: int, sessions: Sessions | None = None):
        self.folder, self.rank, self.sessions = folder / step_files.CUE_PARTS, rank, sessions
        self.pending: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.written, self.last = 0, time.monotonic()

    def add(self, image_id: str, cue: tuple[np.ndarray, np.ndarray]) -> None:
        self.pending[image_id] = cue
        if len(self.pending) >= PART_IMAGES or time.monotonic() - self.last >= PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the cues not yet written, as a file of their own."""
        if self.pending:
            self.folder.mkdir(exist_ok=True)
            n = sum(1 for _ in self.folder.glob(f"{self.rank}-*.npz"))
            CueStore.from_dense(self.pending).save(self.folder / f"{self.rank}-{n}.npz")
            self.written += len(self.pending)
            self.pending = {}
            if self.sessions is not None:
                self.sessions.kept()
        self.last = time.monotonic()


def kept_cues(folder: Path, say: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The cues an unfinished run of the seeds step wrote into ``folder`` (every process's), by image id. A
    file of them that cannot be read is passed over (its images' cues are made again), said on stderr with
    ``say``."""
    kept = {}
    for path in sorted((folder / step_files.CUE_PARTS).glob("[!.]*.npz")):       # not a writer's temporary file
        try:
            store = CueStore.load(path)
        except InputError:
            if say:
                print(f"seeds: {path} is cut short or damaged: the cues of its images are made again",
                      file=sys.stderr, flush=True)
            continue
        kept.update((image_id, store.get(image_id)) for image_id in store.ids)
    return kept


def _kept_cues(ctx, folder: Path, ds, mine: Sequence[int], resume: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """This process's share (``mine``) of the cues an interrupted run wrote: with ``resume`` kept, without it
    removed (the step starts over); stderr says which."""
    ids = {ds.ids[i] for i in mine}
    kept = {k: v for k, v in kept_cues(folder, say=resume and ctx.world.main).items() if k in ids}
    resume_note(ctx, "seeds", len(kept), len(mine), "given their cues", resume)
    barrier(ctx.world)                        # every process has read them before they may be removed
    if not resume:
        if ctx.world.main:
            shutil.rmtree(folder / step_files.CUE_PARTS, ignore_errors=True)
        barrier(ctx.world)
        return {}
    return kept
