"""The ``dsrg`` command.

    dsrg data synth --out DIR [key=value ...]   write the embedded dataset (VOC layout)
    dsrg data check [--dataset voc|coco] --root DIR [--sample N]   validate a dataset root before training
    dsrg data download voc|sbd|coco --root DIR  fetch an official archive (resumable, verified) and unpack it
    dsrg data train-aug --voc-root DIR --sbd-root DIR   VOC 2012 + SBD: the train_aug split (10,582 images)
    dsrg data coco --root DIR --out DIR [--split train2014 val2014]   COCO 2014 -> a VOC-layout root
    dsrg run --profile demo [key=value ...]     the whole pipeline, skipping complete steps
    dsrg train-cls | seeds | train-seg | pseudo-labels | retrain | evaluate --profile P [key=value ...]
    dsrg run ... --dry-run                      the resolved settings and each step's state; runs nothing
    dsrg curves STEP_FOLDER [...] [--out FILE]  plot training steps' log.jsonl (works while they train)
    dsrg spread --profile demo --seeds 0 1 2    Table 2 and Fig. 4 over seeds (--rows: Table 1 too): records in spread/

Every ``key=value`` overrides a field of the typed config (``dsrg.profile.Profile`` for the pipeline,
``SynthConfig`` for ``data synth``); ``--resume`` continues an interrupted training step from its
last checkpoint, seeds, pseudo-labels and evaluate from the images they wrote. Launch any pipeline command with
``torchrun --nproc_per_node N -m dsrg.cli ...`` for multi-GPU data parallel training and inference split
over the processes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from .errors import (InputError, Terminated, causes, interruption_under, plural, same_in_every_process,
                     sigterm_interrupts)
from .run import step_files

# Each command imports what it needs when it runs, so that `dsrg --help` and `dsrg data check` start without
# loading torch.


def _data_synth(args: argparse.Namespace) -> None:
    from .data.synthetic import SynthConfig, write_dataset
    from .data.voc import split_path
    from .overrides import apply_overrides

    cfg = apply_overrides(SynthConfig(), args.overrides)
    made = ([split_path(Path(args.out) / "COCO2014", split) for split in ("train2014", "val2014")] if args.coco
            else [Path(args.out)])                                                      # what it writes last
    start, there = time.perf_counter(), all(path.exists() for path in made)
    if args.coco:
        from .data.synthetic_coco import embedded_coco_root

        out = embedded_coco_root(args.out, list(args.overrides), progress=not args.quiet)     # classes=7 as given
    else:
        out = write_dataset(args.out, cfg, progress=not args.quiet)
    print(f"embedded dataset{' in the COCO layout, converted' if args.coco else ''}: {out} ({cfg.n_train} train "
          f"+ {cfg.n_val} val, {cfg.size}x{cfg.size}) "
          + ("already there, with these settings" if there else f"in {time.perf_counter() - start:.1f} s"))


def _data_check(args: argparse.Namespace) -> int:
    from .data.check import check_coco_root, check_voc_root

    check = check_coco_root if args.dataset == "coco" else check_voc_root
    report, problems = check(args.root, sample=None if args.all else args.sample)
    for line in report:
        print(line)
    for line in problems:
        print(f"problem: {line}")
    print(f"{args.root}: {'OK' if not problems else plural(len(problems), 'problem')}")
    return 1 if problems else 0


def _data_download(args: argparse.Namespace) -> None:
    from .data.download import download

    root = download(args.kind, args.root, progress=not args.quiet, keep_archives=args.keep_archives)
    print(f"{args.kind}: {root}")
    if args.kind == "sbd":
        print(f"next: dsrg data train-aug --voc-root <VOC2012 root> --sbd-root {root}")
    elif args.kind == "coco":
        print(f"next: dsrg data coco --root {root} --out <folder>")


def _data_train_aug(args: argparse.Namespace) -> None:
    from .data.sbd import TRAIN_AUG_COUNT, make_train_aug
    from .data.voc import split_path

    root = make_train_aug(args.voc_root, args.sbd_root, args.out, progress=not args.quiet)
    n = len(split_path(root, "train_aug").read_text().split())
    note = "" if n == TRAIN_AUG_COUNT else f" (the full VOC 2012 + SBD give {TRAIN_AUG_COUNT})"
    print(f"train_aug: {plural(n, 'image')}{note}; data.root={root} data.train_split=train_aug")


def _data_coco(args: argparse.Namespace) -> None:
    from .data.coco import convert_coco
    from .data.voc import split_path

    for split in args.split:
        start = time.perf_counter()
        out = convert_coco(args.root, split, args.out, progress=not args.quiet)
        n = len(split_path(out, split).read_text().split())
        print(f"{split}: {plural(n, 'image')} in {out} ({time.perf_counter() - start:.1f} s)")


def _curves(args: argparse.Namespace) -> None:
    from .reproduce.curves import curves

    curves(args.folders, args.out, args.keys, args.window)


def _pipeline(args: argparse.Namespace) -> int:
    from .overrides import given_twice
    from .profile import load_profile
    from .run import folders
    from .steps import pipeline

    with same_in_every_process():
        cfg = load_profile(args.profile, args.overrides)
    says = int(os.environ.get("RANK", 0)) == 0        # under torchrun, process 0 alone says what all would
    if says:
        for note in given_twice(args.overrides):
            print(f"dsrg: note: {note}", file=sys.stderr)
    if args.dry_run:
        if says:
            from .steps.dry_run import dry_run

            dry_run(cfg, args.command, args.profile, args.overrides, resume=args.resume)
        return 0
    from .steps.summary import closing_summary

    if args.command == "run":
        done = pipeline.run(cfg, resume=args.resume)
        if says:
            for line in closing_summary(cfg, done):
                print(line)
        return 0
    with folders.run_folder(cfg):          # a first step that fails leaves none behind
        return _one_step(args, cfg)


def _one_step(args: argparse.Namespace, cfg) -> int:
    """One step's command (``dsrg train-cls``, ...): its inputs checked, then run under its lock."""
    from .run import folders
    from .run.preflight import check_inputs
    from .steps import pipeline
    from .steps.summary import closing_summary

    step = folders.step_of(args.command)
    before = folders.upstream(cfg, step)
    ready = before is None or folders.is_done(folders.step_dir(cfg, before))
    with same_in_every_process():
        check_inputs(cfg, [step], remember=ready, resume=args.resume)   # clean files remembered where it can run
        if not ready and not folders.is_done(folders.step_dir(cfg, step)):
            folders.require(cfg, before)           # the step it reads has not run: said before anything is written
    from .run.context import join_world

    _, world = join_world(cfg)                            # the step's world, which its lock spans
    with folders.step_lock(cfg, step, world):             # as `dsrg run` takes it
        was_done = folders.is_done(folders.step_dir(cfg, step))
        tick = time.perf_counter()
        folder = pipeline.MODULES[step].run(cfg, resume=args.resume)
    if folders.is_done(folder) and world.main:
        print(f"{args.command}: {folder} (" + ("done, reused: step folders are named by the settings, not by the "
                                                "inputs' contents; delete it to run the step again" if was_done else
                                                folders.took(folders.done_info(folder), time.perf_counter() - tick))
              + ")")
        for line in closing_summary(cfg, {step: folder}, args.command):     # its line of dsrg run's summary
            print(line)
        print(f"[{args.command}] all it recorded (times, machine, code): {folder / step_files.DONE}")
    return 0


def _spread(args: argparse.Namespace) -> int:
    from .reproduce import spread

    words = [str(s) for s in args.seeds]          # key=value overrides may follow the seeds
    overrides = [*args.overrides, *(w for w in words if "=" in w)]
    odd = [w for w in words if "=" not in w and not w.lstrip("-").isdigit()]
    if odd:
        raise InputError(f"--seeds: expected integer seeds (key=value overrides may follow them), got {odd[0]!r}")
    seeds = [int(w) for w in words if "=" not in w]
    if not seeds:
        raise InputError("--seeds: expected at least one integer seed (key=value overrides may follow them)")
    rows = args.rows or spread.TABLE2
    if args.dry_run:
        print(spread.plan(args.profile, seeds, args.out, args.runs, overrides, resume=args.resume, rows=rows))
        return 0
    spread.measure(args.profile, seeds, args.out, args.runs, overrides, resume=args.resume, rows=rows)
    folder = spread.records_folder(args.profile, args.out, overrides)
    records = spread.load(folder)
    table = spread.miou_by_seed(records).round(1)
    if not spread.enough(records):
        print(table.drop(columns=["mean", "std"]).to_string())
        print(f"{folder} holds seed {records[0]['seed']} only: a spread (its standard deviation, the claims that "
              f"hold in every seed) needs two or more; add one with --seeds N")
    else:
        print(table.to_string())
        print(spread.claims(records).to_string(index=False))
        if any(r["row"] == spread.RESNET for r in records):
            print(spread.table1_claims(records).to_string(index=False))
    return 0


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    from .profile import available_profiles

    p.add_argument("--profile", default="demo",
                   help=f"a bundled profile ({', '.join(available_profiles())}) or a YAML file (default demo)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted step (a training step from its last checkpoint, seeds, "
                        "pseudo-labels and evaluate from the images they wrote)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved settings, each step's folder and whether it is done, interrupted or "
                        "to run (and why: the settings in which its nearest complete run differs), and check the "
                        "inputs; run and write nothing")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="profile fields, e.g. out=runs/x seg.theta_fg=0.9 seg.iterations=100 device=cpu")
    p.set_defaults(func=_pipeline)


class _Parser(argparse.ArgumentParser):
    """A parser (and, through add_subparsers, each command's) that takes no abbreviated option: ``--resum`` is
    refused, not taken for ``--resume``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="dsrg", description="Deep Seeded Region Growing (CVPR 2018) in PyTorch.")
    parser.add_argument("--version", action="version", version=f"dsrg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="datasets: write the embedded one, check, download or convert real ones")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser("synth", help="write the embedded dataset in the PASCAL VOC layout",
                                description="Write the embedded dataset. Overrides: n_train=, n_val=, size=, seed=, ...")
    synth.add_argument("--out", required=True, help="folder to create")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.add_argument("--coco", action="store_true",
                       help="in the COCO 2014 layout (OUT/coco), converted as real COCO is (OUT/COCO2014: the "
                            "data.root of the demo-coco and smoke-coco profiles, whose first step writes it)")
    synth.add_argument("overrides", nargs="*", metavar="key=value", help="fields of SynthConfig")
    synth.set_defaults(func=_data_synth)
    check = data_sub.add_parser("check", help="validate a dataset root: layout, counts, a sample of files",
                                description="Validate a dataset root before training: its layout, each split's "
                                            "image count, every label map present, and a sample of images and "
                                            "label maps opened and checked (--all: every file). One line per "
                                            "problem; exit status 1 when there is any.")
    check.add_argument("--dataset", choices=["voc", "coco"], default="voc",
                       help="the root's format: voc (any VOC-layout root) or coco (a COCO 2014 root)")
    check.add_argument("--root", required=True, help="dataset root folder")
    check.add_argument("--sample", type=int, default=50, help="files opened per split (default 50)")
    check.add_argument("--all", action="store_true", help="open every file")
    check.set_defaults(func=_data_check)
    dl = data_sub.add_parser("download", help="download and unpack VOC 2012, SBD or COCO 2014 (resumable)",
                             description="Download an official archive into ROOT (resumable .part file, "
                                         "checksum verified), unpack it there and mark it done.")
    dl.add_argument("kind", choices=["voc", "sbd", "coco"])
    dl.add_argument("--root", required=True, help="folder to download and unpack into")
    dl.add_argument("--keep-archives", action="store_true", help="keep the archives after unpacking")
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(func=_data_download)
    aug = data_sub.add_parser("train-aug", help="VOC 2012 + SBD: write the train_aug split and SegmentationClassAug",
                              description="Build train_aug = VOC train + SBD train + SBD val - VOC val from the "
                                          "data's own list files (10,582 images for the full data).")
    aug.add_argument("--voc-root", required=True, help="the VOC 2012 root (VOCdevkit/VOC2012)")
    aug.add_argument("--sbd-root", required=True, help="SBD's benchmark_RELEASE/dataset (or benchmark_RELEASE)")
    aug.add_argument("--out", default=None, help="write into this folder instead of the VOC root")
    aug.add_argument("--quiet", action="store_true", help="no progress bar")
    aug.set_defaults(func=_data_train_aug)
    coco = data_sub.add_parser("coco", help="convert COCO 2014 into a VOC-layout root (81 classes)",
                               description="Convert COCO instance annotations into semantic label maps "
                                           "(crowd = 255) in the VOC layout; done once, resumable.")
    coco.add_argument("--root", required=True, help="COCO root: annotations/instances_<split>.json, <split>/")
    coco.add_argument("--split", nargs="+", default=["train2014", "val2014"],
                      help="splits to convert (default: train2014 val2014)")
    coco.add_argument("--out", required=True, help="the VOC-layout root to write")
    coco.add_argument("--quiet", action="store_true", help="no progress bar")
    coco.set_defaults(func=_data_coco)
    run = sub.add_parser("run", help="the whole pipeline (train-cls .. evaluate), skipping complete steps",
                         description="Run every step of the pipeline in order (train-cls, seeds, train-seg, "
                                     "pseudo-labels, retrain, evaluate), each into runs/<profile>/<step>-<hash>/, "
                                     "skipping the steps whose output is complete. The inputs of the steps to run "
                                     "are checked first.")
    _add_pipeline_args(run)
    from .run.folders import STEPS

    for step in STEPS.values():
        _add_pipeline_args(sub.add_parser(step.command, help=step.help, description=step.help))
    curves = sub.add_parser("curves", help="plot the training curves of steps' log.jsonl (also while they train)",
                            description="Plot the losses and the labelled fraction that train-cls, train-seg "
                                        "and retrain log at every iteration, one colour per step folder, as "
                                        "PNG and SVG (--out), and print each log's last means.")
    curves.add_argument("folders", nargs="+", metavar="STEP_FOLDER",
                        help="step folders (runs/<profile>/seg-<hash>) or their log.jsonl files")
    curves.add_argument("--out", default=None,
                        help="the figure to write: FILE.png and FILE.svg (without it, only the last values printed)")
    curves.add_argument("--window", type=int, default=None,
                        help="iterations in the moving average (default: a twentieth of each log's length)")
    curves.add_argument("--keys", nargs="+", default=None,
                        help="the logged quantities to plot (default: all that every folder's log holds: "
                             "loss only where train-cls or retrain is beside train-seg; e.g. seed_loss boundary_loss)")
    curves.set_defaults(func=_curves)
    spread = sub.add_parser("spread", help="Table 2's rows and Fig. 4's run with several seeds (--rows: Table 1's "
                                           "ResNet-101 row and the DSRG steps its page sets beside it, too): the spread",
                            description="Train Table 2's four rows (Fig. 4's curve is the +DSRG row's; Table 1's SEC "
                                        "and DSRG (VGG16) rows are its baseline and +Retrain), and with --rows "
                                        "Table 1's DSRG (Resnet101) row and the DSRG steps that Table 1's page sets "
                                        "beside it, with each seed, in run folders of their "
                                        "own, and write one JSON record per row and seed to OUT/<profile>/ (what "
                                        "the book's pages read); then print the mIoU per seed, mean and standard "
                                        "deviation, and which claims hold in every seed.")
    spread.add_argument("--profile", default="demo", help="a bundled profile or a YAML file (default demo)")
    spread.add_argument("--seeds", nargs="+", default=[0, 1, 2],
                        help="seeds (default 0 1 2), added to the records already in OUT/<name>/ (a spread needs "
                             "two or more in all); key=value overrides may follow them")
    spread.add_argument("--out", default="spread",
                        help="records go to OUT/<name>/, name: the profile's (default spread)")
    spread.add_argument("--runs", default=None, help="run folders go to RUNS/<name>/ (default runs/spread)")
    spread.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                        help="the rows to measure, in place of the default (Table 2's: baseline bsl dsrg retrain); "
                             "resnet101 is Table 1's DSRG (Resnet101); random-start, vgg16-resnet-head and "
                             "resnet101-vgg16-head the DSRG steps its page sets beside it (the VGG16 row's from random "
                             "weights, and the two random starts with each other's head); make spread measures all "
                             "(--rows resnet101 measures that row alone)")
    spread.add_argument("--resume", action="store_true",
                        help="continue the training steps an interruption left, as dsrg run --resume")
    spread.add_argument("--dry-run", action="store_true",
                        help="check the settings and print each seed's step folders, what would happen to each, "
                             "and the records it would write; run and write nothing")
    spread.add_argument("overrides", nargs="*", metavar="key=value",
                        help="profile fields for every run (not seed= or out=: --seeds and --runs set them)")
    spread.set_defaults(func=_spread)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow an option (`dsrg run --profile demo a=1 --dry-run b=2`): argparse hands
    # those after the option back here
    if extra and hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with sigterm_interrupts():
            return args.func(args) or 0
    except InputError as exc:
        who = _wait_for_process_0() if getattr(exc, "every_process", False) else ""
        print(f"dsrg: error{who}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:      # the step has said where the run stands
        return _interrupted(exc, args, argv)
    except Exception as exc:
        cause = interruption_under(exc)
        if cause is not None:
            return _interrupted(cause, args, argv)
        if not _peer_gone(exc):
            raise
        print("dsrg: stopped: another process of this torchrun launch ended (its message is above, or torchrun's "
              "summary names it)", file=sys.stderr)
        return 1
    finally:
        _leave_process_group()


GLOO_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")   # gloo's words for it


def _peer_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is a torchrun process's collective failing because another process of the launch ended
    (with its own message, an error or an interruption): NCCL's and the store's errors by their class, gloo's
    (a plain RuntimeError) by its words, the connection to the other process closed or reset."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist = sys.modules.get("torch.distributed")             # imported where a collective could have failed
    kinds = (ConnectionError,) + ((dist.DistBackendError, dist.DistNetworkError) if dist else ())
    return any(isinstance(e, kinds) or (isinstance(e, RuntimeError) and any(w in str(e) for w in GLOO_PEER_GONE))
               for e in causes(exc))


def _interrupted(exc: KeyboardInterrupt, args: argparse.Namespace, argv: list[str] | None) -> int:
    """The last line of an interrupted command, with the command that continues it where it has ``--resume``
    (and the interrupted step kept something to continue from). Under torchrun only process 0 says it: Ctrl-C
    and a pre-emption's SIGTERM reach every process, and torchrun ends the others with SIGTERM when one fails."""
    terminated = isinstance(exc, Terminated)
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if torchrun and int(os.environ.get("RANK", "0")) != 0:
        return 143 if terminated else 130
    said = "terminated (SIGTERM)" if terminated else "interrupted"
    if terminated and torchrun:         # torchrun's SIGTERM: the launch was stopped, or another process failed
        said = "terminated (SIGTERM: the launch was stopped, or another process failed, its message above)"
    if hasattr(args, "resume") and not getattr(args, "dry_run", False):
        words = list(sys.argv[1:] if argv is None else argv)
        if getattr(exc, "starts_over", False):          # nothing kept to continue from
            what, option = "to start it again", ""
            words = [w for w in words if w != "--resume"]
        else:
            what, option = "to continue", " with --resume"
            words += [] if "--resume" in words else ["--resume"]
        said += (f"; {what}: the same torchrun command{option}" if torchrun else
                 f"; {what}: {shlex.join([_program(argv), *words])}")
    print(f"dsrg: {said}", file=sys.stderr)
    return 143 if terminated else 130


def _program(argv: list[str] | None) -> str:
    """The command to paste: ``dsrg`` where the shell finds this one by that name, else the path it was started
    by (``.venv/bin/dsrg`` without the venv activated); ``dsrg`` for a call from Python (``argv`` given)."""
    given = sys.argv[0] if argv is None else "dsrg"
    if Path(given).name != "dsrg":                # python -m dsrg.cli, or a call from Python
        return "dsrg"
    found = shutil.which("dsrg")
    try:
        return "dsrg" if found and os.path.samefile(found, given) else given
    except OSError:
        return "dsrg"


#: How long a torchrun process other than the first waits, on an error that every process finds alike, for the
#: first to say it (torchrun then ends the others); past that, it says the error itself.
PROCESS_0_WAIT_S = 10.0


def _wait_for_process_0() -> str:
    """Under torchrun, on a process other than the first, before saying an error that every process finds alike:
    wait for process 0 to say it and end, which makes torchrun end this process, quietly (SIGTERM at its
    default). Returns the words naming this process where the wait runs out (process 0 did not find it: a file
    that only this process reads, say), "" on process 0 or without torchrun."""
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0 or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        time.sleep(PROCESS_0_WAIT_S)
    except KeyboardInterrupt:                     # Ctrl-C reaches every process: process 0 says it
        raise SystemExit(130) from None
    return f" (torchrun process {rank}; process 0 did not say it)"


def _leave_process_group() -> None:
    """Leave torchrun's process group, if this command joined one (NCCL warns at exit otherwise)."""
    dist = sys.modules.get(f"{__package__}.run.dist")    # imported only by commands that may have joined one
    if dist is not None:
        dist.leave_world()


if __name__ == "__main__":
    sys.exit(main())
