"""The ``dsrg`` command.

    dsrg data synth --out DIR [key=value ...]   write the embedded dataset (VOC layout)
    dsrg data check --root DIR [--sample N]     validate a dataset root before training

Every ``key=value`` overrides a field of the step's typed config (see ``dsrg.config``).
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
