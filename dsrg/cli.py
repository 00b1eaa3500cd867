"""The ``dsrg`` command.

    dsrg data synth --out DIR [key=value ...]   write the embedded dataset (VOC layout)
    dsrg data check --root DIR [--sample N]     validate a dataset root before training
    dsrg run --profile demo [key=value ...]     the whole pipeline, skipping complete steps
    dsrg train-cls | seeds | train-seg | pseudo-labels | retrain | evaluate --profile P [key=value ...]

Every ``key=value`` overrides a field of the typed config (``dsrg.profile.Profile`` for the pipeline,
``SynthConfig`` for ``data synth``); ``--resume`` continues an interrupted training step from its
last checkpoint. Launch any pipeline command with ``torchrun --nproc_per_node N -m dsrg.cli ...``
for multi-GPU data parallel training.
"""

from __future__ import annotations

import argparse
import sys
import time

from .io import InputError


def _data_synth(args: argparse.Namespace) -> None:
    from .config import apply_overrides
    from .data.synthetic import SynthConfig, write_dataset

    cfg = apply_overrides(SynthConfig(), args.overrides)
    start = time.perf_counter()
    out = write_dataset(args.out, cfg, progress=not args.quiet)
    print(f"embedded dataset: {out} ({cfg.n_train} train + {cfg.n_val} val, {cfg.size}x{cfg.size}) "
          f"in {time.perf_counter() - start:.1f} s")


def _data_check(args: argparse.Namespace) -> int:
    from .data.check import check_voc_root

    report, problems = check_voc_root(args.root, sample=None if args.all else args.sample)
    for line in report:
        print(line)
    for line in problems:
        print(f"problem: {line}")
    print(f"{args.root}: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


STEP_COMMANDS = {
    "train-cls": ("train_cls", "train the classification network for CAMs (image-level labels only)"),
    "seeds": ("seeds", "CAM foreground + saliency background cues of every training image (or the authors' pickle)"),
    "train-seg": ("train_seg", "DSRG step 1: the segmentation network with region growing"),
    "pseudo-labels": ("pseudo_labels", "multi-scale inference + CRF on the training set"),
    "retrain": ("retrain", "fully-supervised retraining on the pseudo labels"),
    "evaluate": ("evaluate", "multi-scale inference + CRF on a split: IoU per class, mIoU"),
}


def _pipeline(args: argparse.Namespace) -> int:
    import importlib
    import json

    from . import runs
    from .profile import load_profile

    cfg = load_profile(args.profile, args.overrides)
    if args.command == "run":
        from .steps import pipeline

        folders = pipeline.run(cfg, resume=args.resume)
        if "eval" in folders and runs.is_done(folders["eval"]) and int(__import__("os").environ.get("RANK", 0)) == 0:
            info = runs.done_info(folders["eval"])
            if "miou" in info:
                print(f"[dsrg run] mIoU on {info['split']} ({info['model']} model): {100 * info['miou']:.1f}")
        return 0
    module = importlib.import_module(f".steps.{STEP_COMMANDS[args.command][0]}", __package__)
    folder = module.run(cfg, resume=args.resume)
    if runs.is_done(folder):
        print(f"{args.command}: {folder}")
        print(json.dumps(runs.done_info(folder), indent=1))
    return 0


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    from .profile import available_profiles

    p.add_argument("--profile", default="demo",
                   help=f"a bundled profile ({', '.join(available_profiles())}) or a YAML file (default demo)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted step from its last checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="profile fields, e.g. out=runs/x seg.theta_fg=0.9 seg.iterations=100 device=cpu")
    p.set_defaults(func=_pipeline)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsrg", description="Deep Seeded Region Growing (CVPR 2018) in PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="datasets: write the embedded one")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser("synth", help="write the embedded dataset in the PASCAL VOC layout",
                                description="Write the embedded dataset. Overrides: n_train=, n_val=, size=, seed=, ...")
    synth.add_argument("--out", required=True, help="folder to create")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.add_argument("overrides", nargs="*", metavar="key=value", help="fields of SynthConfig")
    synth.set_defaults(func=_data_synth)
    check = data_sub.add_parser("check", help="validate a dataset root: layout, counts, a sample of files")
    check.add_argument("--dataset", choices=["voc"], default="voc", help="the root's format")
    check.add_argument("--root", required=True, help="dataset root folder")
    check.add_argument("--sample", type=int, default=50, help="files opened per split (default 50)")
    check.add_argument("--all", action="store_true", help="open every file")
    check.set_defaults(func=_data_check)
    run = sub.add_parser("run", help="the whole pipeline (train-cls .. evaluate), skipping complete steps")
    _add_pipeline_args(run)
    for name, (_, text) in STEP_COMMANDS.items():
        _add_pipeline_args(sub.add_parser(name, help=text, description=text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except InputError as exc:
        print(f"dsrg: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
