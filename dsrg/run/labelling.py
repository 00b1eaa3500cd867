"""The loop of the steps that label a split (``pseudo-labels``, ``evaluate``): this process's share of the images
labelled by a model with the step's test-time CRF, each label written as it comes, an interrupted run's kept on
``--resume``."""

from __future__ import annotations

import contextlib
import sys
from contextlib import closing
from pathlib import Path

from torch import nn
from tqdm.auto import tqdm

from ..data.voc import read_label_png, write_label_png
from ..errors import InputError
from ..method.crf import choose_test_backend
from . import folders
from .clock import Clock, Sessions
from .context import Context
from .dist import share
from .predict import predict
from .workers import auto_workers


def resume_note(ctx: Context, command: str, before: int, share: int, done: str, resume: bool = True) -> None:
    """What an inference step does with the ``before`` of this process's ``share`` of the images ``done``
    (e.g. "predicted") by an interrupted run: with ``--resume`` they are kept, without it (where there are
    any) done again; on stderr, each process of a torchrun its own."""
    who = f" (process {ctx.world.rank})" if ctx.world.size > 1 else ""
    if not resume:
        if before:
            print(f"{command}{who}: {before} of {share} images {done} by an interrupted run are done again "
                  f"(without --resume the step starts over; --resume keeps them)", file=sys.stderr, flush=True)
        return
    elsewhere = folders.interrupted_elsewhere(folders.step_dir(ctx.cfg, folders.step_of(command))) if not before \
        else ""
    said = (f"{before} of {share} images {done} before, kept; {share - before} to go" if before else
            f"none of its {share} images {done} before: starting")
    print(f"{command}: --resume{who}: {said}{elsewhere}", file=sys.stderr, flush=True)


def predictions(ctx: Context, model: nn.Module, images, sizes_of, section):
    """:func:`dsrg.run.predict.predict` of ``model`` on ``images`` with a step's test-time CRF
    (``section``: ``cfg.pseudo`` or ``cfg.eval``: ``crf``, ``crf_scale``, ``crf_backend``, the backend chosen
    for the step's device), closed (and its CRF workers with it) when the caller's loop ends, even on an
    error."""
    cfg = ctx.cfg
    backend = choose_test_backend(section.crf_backend, ctx.device.type == "cuda")
    return closing(predict(model, images, sizes_of, ctx.device, cfg.data.normalize, section.crf,
                           auto_workers(cfg.seg.crf_workers), ctx.amp, section.crf_scale, backend))


def label_split(ctx: Context, command: str, model: nn.Module, ds, out: Path, section, sizes_of, resume: bool,
                sessions: Sessions, on_label=None, restrict: bool = False) -> dict:
    """The loop of ``pseudo-labels`` and ``evaluate``: this process's share of the split ``ds``
    (:func:`dsrg.run.dist.share`) labelled by ``model`` (:func:`predictions`, ``restrict``: over each image's
    labelled classes only), each label written to ``out/<id>.png`` and handed to ``on_label(index, label)``.
    With ``resume`` the labels an interrupted run wrote are kept (read back and handed on), else removed and done
    again; ``sessions`` is told of each label written.
    Returns the loop's timings (:meth:`dsrg.run.clock.Clock.timed`) and how many of its images a resumed run
    kept (its wall time is then the time it took for the others)."""
    verb, noun = ("labelled", "labels") if command == "pseudo-labels" else ("predicted", "predictions")
    mine = share(len(ds), ctx.world)
    before = [i for i in mine if (out / f"{ds.ids[i]}.png").is_file()]     # an interrupted run's
    kept = set(before) if resume else set()
    for i in before if not resume else ():     # the step starts over: none of them is the new run's
        (out / f"{ds.ids[i]}.png").unlink(missing_ok=True)
    for i in sorted(kept):             # written before an interruption: read back (they count too)
        try:
            label = read_label_png(out / f"{ds.ids[i]}.png", ds.num_classes)
        except InputError:
            print(f"{command}: {out / ds.ids[i]}.png is cut short or damaged: it is {verb} again", file=sys.stderr,
                  flush=True)
            kept.discard(i)
            continue
        if on_label is not None:
            on_label(i, label)
    todo = [i for i in mine if i not in kept]
    resume_note(ctx, command, len(kept) if resume else len(before), len(mine), verb, resume)
    images = ((ds.ids[i], ds.image(i), *((ds.labels(i),) if restrict else ())) for i in todo)
    index = {image_id: i for i, image_id in enumerate(ds.ids)}
    written, clock = len(kept), Clock()
    bar = tqdm(total=len(todo), desc=command, unit="img", disable=not (ctx.cfg.progress and ctx.world.main))
    try:
        with predictions(ctx, model, images, sizes_of, section) as labels:
            for image_id, label in labels:
                write_label_png(out / f"{image_id}.png", label)
                sessions.kept()
                written += 1
                clock.tick()
                bar.update(1)
                if on_label is not None:
                    on_label(index[image_id], label)
    except BaseException as exc:
        bar.close()                       # first: a bar drawn after the message would hide it
        with contextlib.suppress(Exception):      # a full disk, say: the error in flight is the one to say
            sessions.save()
        if isinstance(exc, KeyboardInterrupt):
            print(f"{command}: interrupted with {written} of {len(mine)} images {verb}; `--resume` continues from "
                  f"there (the {noun} written are kept), without it the step starts over", file=sys.stderr,
                  flush=True)
        raise
    bar.close()
    sessions.save()
    return clock.timed(), len(kept)
