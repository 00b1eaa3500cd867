"""The spread of Tables 1 and 2 and Fig. 4 over seeds: how much of what a page claims holds beyond one seed's luck.

``dsrg spread --profile demo --seeds 0 1 2`` trains Table 2's four rows
(:data:`~dsrg.reproduce.experiments.ABLATION`; Fig. 4's curve is the +DSRG row's training step; Table 1's SEC
and DSRG (VGG16) rows are its baseline and +Retrain) with each of several seeds, in run folders of their own,
and writes one small JSON record per row and seed into ``spread/<profile>/``; ``--rows`` adds Table 1's own
row, DSRG (Resnet101), and the DSRG steps that Table 1's page sets beside it (:data:`STEPS`: the VGG16 row's
from random weights, with which it takes the start away, and the two random starts with each other's head;
``make spread`` adds them all). A record holds the values (mIoU; the supervision's precision, recall and IoU
per epoch for the rows that grow: +DSRG, :data:`STEPS`, and DSRG (Resnet101), whose DSRG step is the retrained
row's; the seeds' and the pseudo labels' quality), the seed, the profile, the machine and the code
that ran it (:mod:`dsrg.run.provenance`).
The book reads the records (:func:`load`, :func:`claims`); they are small and kept in git, so a page shows
the spread without training anything.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import InputError, plural
from ..files import file_in_the_way, made_folders, read_json, writable, write_json
from ..overrides import key_of
from ..profile import load_profile
from ..run import folders
from ..run.dist import threads as torch_threads
from ..run.provenance import code
from ..run.split_lists import how_changed, records
from .experiments import ABLATION, DSRG_STEPS, FROM_SCRATCH_PROFILES, RANDOM_STEP, RESNET_STEP, RESNET_VGG16_HEAD, \
    TABLE1, TRUNK_BY_HEAD, VGG16_RESNET_HEAD, Experiment, ablation, clashing, profile as experiment_profile, \
    refuse_row_keys, resnet_overrides, run, start_not_taken_away
from .tables import trunk_by_head

RESNET, RANDOM = "DSRG (Resnet101)", RANDOM_STEP
#: The rows that Table 1's page sets beside its own DSRG steps -- the VGG16 row's from random weights (the start
#: taken away), and the two random starts with each other's head.
STEPS = (RANDOM, VGG16_RESNET_HEAD, RESNET_VGG16_HEAD)
#: The rows a spread can measure, each with its settings (Table 2's, in its order, then Table 1's own row, then
#: :data:`STEPS`).
ROWS: dict[str, list[str]] = {**ABLATION, RESNET: TABLE1[RESNET], **{row: DSRG_STEPS[row] for row in STEPS}}
#: Each row's name in its records' file names (``<name>-seed<seed>.json``) and in ``dsrg spread --rows``.
FILE_NAMES = {**{row: row.lstrip("+").lower() for row in ABLATION}, RESNET: "resnet101", RANDOM: "random-start",
              VGG16_RESNET_HEAD: "vgg16-resnet-head", RESNET_VGG16_HEAD: "resnet101-vgg16-head"}
#: The rows ``dsrg spread`` measures unless told others.
TABLE2 = tuple(ABLATION)
#: The rows whose records keep their supervision per epoch (Fig. 4's curve; the DSRG steps of Table 1's page).
CURVES = ("+DSRG", RESNET, *STEPS)
#: The rows that train a ResNet-101, with the DSRG (Resnet101) row's own settings (``_own``).
RESNETS = (RESNET, RESNET_VGG16_HEAD)


def record(exp: Experiment, row: str, seed: int) -> dict:
    """The record of Table 2's row ``row`` trained with ``seed``."""
    rec = {"row": row, "seed": seed, "profile": exp.cfg.name, "settings": exp.command(), "machine": exp.machine(),
           "threads": exp.threads(), "code": folders.done_info(exp.folder("eval")).get("code") or code(),
           "miou": exp.miou}
    lists = _lists_of(exp.folders)
    if lists:                       # a real-data root: the image lists it was measured on
        rec["splits"] = lists
    seeds = folders.done_info(exp.folder("seeds")).get("quality")
    if seeds:
        rec["seeds"] = {k: seeds[k] for k in ("precision", "recall", "iou")}
    if "pseudo" in exp.folders:
        quality = folders.done_info(exp.folder("pseudo")).get("quality") or {}
        rec["pseudo"] = {k: quality.get(k) for k in ("miou", "precision", "recall")}
    if row in CURVES:
        curve = exp.supervision()
        rec["supervision"] = {k: curve[k].tolist() for k in ("epoch", "precision", "recall", "iou")}
    return rec


def _lists_of(step_folders: dict[str, Path]) -> dict[str, dict]:
    """The image lists that steps' folders were made from (:func:`dsrg.run.split_lists.records`, kept in their
    ``config.json``): ``{"train": {"name": split, "images": n, "digest": d, ...}, "eval": {...}}``; none for an
    embedded dataset, or folders made before the record."""
    out = {}
    for step, folder in step_folders.items():
        kept = folders.config_of(folder).get("splits")
        for name, rec in kept.items() if isinstance(kept, dict) else ():
            out["eval" if step == "eval" else "train"] = {"name": name, **rec}
    return out


def _other_lists(then: dict[str, dict], now: dict[str, dict]) -> str | None:
    """How the image lists of a record (``then``) differ from ``now`` (both as :func:`_lists_of`), in words; None
    where they do not or either does not say: the training list in its order, the evaluated one as a set."""
    for part, key in (("train", "digest"), ("eval", "set")):
        a, b = then.get(part), now.get(part)
        if isinstance(a, dict) and b and (a.get("name"), a.get(key)) != (b["name"], b[key]):
            what = "training" if part == "train" else "evaluated"
            if a.get("name") != b["name"]:
                return f"the {what} split was '{a.get('name')}' then, '{b['name']}' now"
            return f"the {what} split '{b['name']}' lists {how_changed(a, b)}"
    return None


def measure(profile: str, seeds: Sequence[int], out: str | Path = "spread", runs: str | Path | None = None,
            overrides: Sequence[str] = (), resume: bool = False, rows: Sequence[str] = TABLE2) -> list[Path]:
    """Train (or reuse) the ``rows`` (of :data:`ROWS`; Table 2's by default) with each seed in ``runs`` (default
    ``runs/spread``) and write the records to ``out/<name>/<row>-seed<seed>.json`` (``name``: the profile's);
    returns their paths. Every
    check (overrides, seeds, records of other settings or image lists in that folder, a folder that can be
    written) comes before any training. ``resume``: continue the steps an interruption left. Run folders reused
    from another torch thread count keep theirs (the hash leaves it out): said on stderr."""
    seeds, rows = list(dict.fromkeys(seeds)), _known(rows)
    runs, folder = _checked(profile, seeds, out, runs, overrides, rows)
    _say_mixed(folder, seeds)
    written = []
    with contextlib.ExitStack() as made:
        with writable(folder, "the records' folder"):       # before any training: made, and a file written there
            made.enter_context(made_folders(folder))       # (removed again, empty, if training fails)
            probe = folder / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        own = {row: _own(profile, overrides, row) for row in rows}
        width = max(map(len, rows))
        for seed in seeds:
            settings = ["progress=false", f"out={runs}", f"seed={seed}", *overrides]
            ran = ablation(profile, settings, rows=[r for r in rows if r in ABLATION], resume=resume, hint=False)
            for row in (r for r in rows if r not in ABLATION):
                ran[row] = run(profile, [*settings, *own[row]], row=ROWS[row], resume=resume, hint=False)
            _say_other_threads(ran, seed, runs)
            for row, exp in ran.items():
                path = folder / f"{FILE_NAMES[row]}-seed{seed}.json"
                write_json(path, record(exp, row, seed))
                written.append(path)
                print(f"[spread] {row:{width}} seed {seed}: mIoU {100 * exp.miou:.1f}  -> {path}", flush=True)
    return written


def _known(rows: Sequence[str]) -> list[str]:
    """``rows`` (names of :data:`ROWS`, or their :data:`FILE_NAMES`) as names of :data:`ROWS`, in its order; an
    InputError for any other."""
    names = {**{row: row for row in ROWS}, **{name: row for row, name in FILE_NAMES.items()}}
    unknown = [r for r in rows if r not in names]
    if unknown or not rows:
        raise InputError(f"--rows: {'unknown ' + ', '.join(map(repr, unknown)) if unknown else 'none given'}; "
                         f"expected some of {' '.join(FILE_NAMES.values())} (Table 2's four, then Table 1's "
                         f"{RESNET}, then the VGG16 row's DSRG step from random weights, and the two random "
                         f"starts with each other's head)"
                         + ("; key=value overrides go before --rows" if any("=" in r for r in unknown) else ""))
    chosen = {names[r] for r in rows}
    return [row for row in ROWS if row in chosen]


def _own(profile: str, overrides: Sequence[str], row: str) -> list[str]:
    """A row's own overrides beside its settings: the DSRG (Resnet101) row's on the profile
    (:func:`~dsrg.reproduce.experiments.resnet_overrides`) for each of :data:`RESNETS`, less the keys
    ``overrides`` set (the user's value holds); none for the VGG16 rows."""
    if row not in RESNETS:
        return []
    own = resnet_overrides(experiment_profile(profile, list(overrides)))
    given = clashing(own, overrides)
    return [item for item in own if item not in given]


def _checked(profile: str, seeds: Sequence[int], out: str | Path, runs: str | Path | None,
             overrides: Sequence[str], rows: Sequence[str] = TABLE2) -> tuple[Path, Path]:
    """The checks of :func:`measure` that need no training: the overrides, the seeds, and records of other
    settings or of other seeds measured on other image lists in the records' folder. Returns (the run folders'
    parent, the records' folder)."""
    for item in overrides:
        key = key_of(item)
        if key in ("seed", "out"):
            raise InputError(f"override {item!r}: dsrg spread sets {key} itself (the seeds come from --seeds, "
                             f"the run folders from --runs); leave it out")
    for row in rows:
        refuse_row_keys(overrides, ROWS[row])
    steps = [FILE_NAMES[row] for row in STEPS if row in rows]
    why = steps and start_not_taken_away(profile, overrides, profile, _own(profile, overrides, RESNET))
    if why:
        raise InputError(f"--rows {' '.join(steps)}: {why}")
    for option, path, what in (("--out", out, "for the records"), ("--runs", runs, "for the run folders")):
        file = file_in_the_way(path) if path else None     # a folder on the way that cannot be read: said later
        if file is not None:
            raise InputError(f"{option} {path}: {file} is a file; expected a folder {what}")
    cfg = load_profile(profile, list(overrides))
    for seed in seeds:
        try:
            load_profile(profile, [*overrides, f"seed={seed}"])
        except InputError as exc:
            raise InputError(f"--seeds {seed}: {exc}") from None
    folder = Path(out) / cfg.name
    recorded = {rec.get("row") for _, rec in _records(folder)}     # records of rows not measured now must match too
    settings = {row: _settings(profile, [*overrides, *_own(profile, overrides, row), *ROWS[row]], ROWS[row])
                for row in ROWS if row in rows or row in recorded}
    _refuse_other_settings(folder, settings)
    _refuse_other_lists(folder, seeds, cfg)
    return Path(runs or Path("runs") / "spread") / cfg.name, folder


def plan(profile: str, seeds: Sequence[int], out: str | Path = "spread", runs: str | Path | None = None,
         overrides: Sequence[str] = (), resume: bool = False, rows: Sequence[str] = TABLE2) -> str:
    """What :func:`measure` would do (with ``resume``: resuming), in lines, after its checks and the inputs' of
    the steps to run (:func:`dsrg.run.preflight.check_inputs`): each seed's step folders (the rows share some) and
    what would happen to each, how its weights files are read, and the records it would write."""
    from ..run.preflight import check_inputs
    from ..run.split_lists import refuse_changed
    from ..steps.dry_run import inputs_said
    from ..steps.pipeline import planned_steps

    seeds, rows = list(dict.fromkeys(seeds)), _known(rows)
    runs, folder = _checked(profile, seeds, out, runs, overrides, rows)
    _say_mixed(folder, seeds)
    lines, to_run, checked, read = [], 0, set(), []
    own = {row: _own(profile, overrides, row) for row in rows}
    width = max(18, *map(len, rows))
    for seed in seeds:
        seen = {}                                           # folder: (step, the rows that read it)
        for row in rows:
            cfg = load_profile(profile, ["progress=false", f"out={runs}", f"seed={seed}", *overrides, *own[row],
                                         *ROWS[row]])
            steps = planned_steps(cfg)
            todo = tuple(s for s in steps if not folders.is_done(folders.step_dir(cfg, s)))
            if (row, todo) not in checked:      # the seeds share the inputs: once for a row's steps to run
                check_inputs(cfg, steps, remember=False, resume=resume, read=read)
                checked.add((row, todo))
            else:                               # but not their folders, made from the split lists of their time
                refuse_changed(cfg, steps, resume)
            for step in steps:
                seen.setdefault(folders.step_dir(cfg, step), (step, []))[1].append(row)
        for path, (step, readers) in seen.items():
            to_run += not folders.is_done(path)
            who = "every row" if len(readers) == len(rows) > 1 else ", ".join(readers)
            lines.append(f"seed {seed}  {who:<{width}} {folders.STEPS[step].command:<14} {path}  "
                         f"{folders.step_state(path)}")
    there = sorted(folder.glob("*-seed*.json"))
    lines.append(inputs_said(cfg, to_run > 0))
    lines += [f"# {row}: its own settings {' '.join(items)} (a key given among yours keeps your value)"
              for row, items in own.items() if items]
    lines += [f"# weights: {line}" for line in dict.fromkeys(read)]
    lines.append(f"# {plural(to_run, 'step run')} to go, with {_counts([torch_threads()])} of torch; "
                 f"{len(rows) * len(seeds)} records to write in {folder} (<row>-seed<seed>.json; "
                 + (f"{len(there)} there now, of any seed)" if there else "none there yet)"))
    recorded = {int(m[1]) for path in there if (m := re.fullmatch(r".+-seed(-?\d+)", path.stem))} | set(seeds)
    if len(recorded) < 2:
        lines.append("# one seed gives each row's mIoU but no spread: a spread needs two seeds or more "
                     "(e.g. --seeds 0 1 2)")
    return "\n".join(lines)


def _refuse_other_lists(folder: Path, seeds: Sequence[int], cfg) -> None:
    """An InputError where ``folder`` keeps records of other seeds than ``seeds`` measured on other image lists of
    the real-data root than it lists now: the table would average over two datasets."""
    now = {part: {"name": name, **rec} for part, step in (("train", "seeds"), ("eval", "eval"))
           for name, rec in records(cfg, step).items()}
    other = [(path, why) for path, rec in _records(folder) if rec["seed"] not in seeds
             and isinstance(rec.get("splits"), dict) and (why := _other_lists(rec["splits"], now))]
    if other:
        raise InputError(f"{folder} keeps {plural(len(other), 'record')} of other seeds measured on other image lists "
                         f"({other[0][0].name}: {other[0][1]}): the table would mix two datasets; remove them to "
                         f"measure every seed on the lists as they are, or restore the lists")


def _say_mixed(folder: Path, seeds: Sequence[int]) -> None:
    """A line on stderr where ``folder`` holds records of other seeds than ``seeds`` made on other code or with
    another thread count than this process's: the table will mix them."""
    kept = [rec for _, rec in _records(folder) if rec["seed"] not in seeds]
    other_code = sorted(set(_sources(kept)) - {code()["source"]})
    other_threads = sorted(set(_threads(kept)) - {torch_threads()})
    said = ([f"other code (source {', '.join(other_code)})"] if other_code else []) + \
        ([f"{_counts(other_threads)} of torch"] if other_threads else [])
    if said:
        print(f"[spread] {folder} keeps records of seeds {sorted({r['seed'] for r in kept})} made with "
              f"{' and '.join(said)}: the table will mix them with these; remove them to measure every seed "
              f"alike", file=sys.stderr, flush=True)


def _say_other_threads(rows: dict[str, Experiment], seed: int, runs: Path) -> None:
    """A line on stderr where some of ``rows``' steps ran with another torch thread count than this process's
    (run folders reused from another run): their records keep that count."""
    now = torch_threads()
    other = sorted({n for exp in rows.values() for n in exp.threads()} - {now})
    if other:
        print(f"[spread] seed {seed}: some of its run folders in {runs} were trained with {_counts(other)}, this "
              f"process has {_counts([now])}; the records say so. To measure at {now}, remove {runs} first: run "
              f"folders are reused whatever the thread count", file=sys.stderr, flush=True)


def records_folder(profile: str, out: str | Path = "spread", overrides: Sequence[str] = ()) -> Path:
    """``out/<name>``: where :func:`measure` writes the records of ``profile`` (a bundled name or a YAML path),
    named by the profile's ``name`` field, as the book reads them (a YAML file without one: ``custom``)."""
    return Path(out) / load_profile(profile, list(overrides)).name


def _settings(profile: str, overrides: list[str], row: list[str]) -> str:
    """The ``settings`` a record of ``row`` gets (:meth:`Experiment.command`), without training."""
    return Experiment(load_profile(profile, overrides), {}, overrides, list(row), str(profile)).command()


#: Settings that name no result (a step's hash leaves them out), the seed, which a spread varies, among them.
IDLE = {"seed", *folders.RUN_SETTINGS, *folders.NOT_RESULTS}


def _compared(settings: str) -> set[str]:
    """A record's settings less its seed, run folder and the settings that change no result (:data:`IDLE`), each
    key at its last value, in any order: what records of one row must share."""
    words = [w for w in shlex.split(settings) if key_of(w) not in IDLE]
    last = {key_of(w): w for w in words if "=" in w}
    return {w for w in words if "=" not in w} | set(last.values())


def _only(a: str, b: str) -> str:
    """The words of the settings ``a`` that ``b`` lacks, for a message."""
    return " ".join(sorted(_compared(a) - _compared(b))) or "none"


def _refuse_other_settings(folder: Path, settings: dict[str, str]) -> None:
    """InputError where ``folder`` holds a record of a row whose settings are not ``settings[row]`` (but for
    the seed and the run folder)."""
    for path, rec in _records(folder):
        want = settings.get(rec.get("row"))
        if want is not None and "settings" in rec and _compared(rec["settings"]) != _compared(want):
            raise InputError(f"{path}: recorded with other settings than this run's (only it: "
                             f"{_only(rec['settings'], want)}; only this run: {_only(want, rec['settings'])}); a "
                             f"table would mix the two: delete the records in {folder} or give another --out")


def measure_command(profile: str, rows: Sequence[str] = TABLE2) -> str:
    """The command that records the spread of ``rows`` on ``profile`` (a name or a YAML path): ``make spread``
    for the demo, whose seeds and rows it runs, else ``dsrg spread``."""
    if profile == "demo":
        return "make spread"
    given = "" if list(rows) == list(TABLE2) else " --rows " + " ".join(FILE_NAMES[r] for r in _known(rows))
    return f"dsrg spread --profile {profile} --seeds 0 1 2{given}"


def enough(records: list[dict]) -> bool:
    """Whether ``records`` hold two seeds or more: a spread (a deviation, claims over seeds) to show."""
    return len({r.get("seed") for r in records}) >= 2


def none_yet(records: list[dict], profile: str, rows: Sequence[str] = TABLE2) -> str:
    """What a page says where ``records`` are no spread (:func:`enough`): none, or one seed's, and the command
    that measures ``rows``."""
    if not records:
        return f"No spread is recorded for this profile yet: {measure_command(profile, rows)} measures it."
    return (f"Only seed {records[0]['seed']} is recorded for this profile: a spread needs two seeds or more "
            f"({measure_command(profile, rows)} measures them).")


def resnet_none_yet(records: list[dict], profile: str) -> str:
    """What Table 1's page says where ``records`` (the DSRG (Resnet101) row's) are no spread, and how to measure
    one: on the embedded profiles, the command; elsewhere, why one ``dsrg spread`` cannot (its overrides are every
    row's, and this row's ResNet-101 weights file is not the VGG16 rows')."""
    have = (f"Only seed {records[0]['seed']} of the {RESNET} row is recorded" if records else
            f"No spread of the {RESNET} row is recorded")
    if profile in FROM_SCRATCH_PROFILES:
        return f"{have}: {measure_command(profile, ROWS)} measures it."
    return (f"{have}: dsrg spread gives its overrides to every row it measures, and this row's seg.backbone_weights "
            f"(a ResNet-101 file) is not the VGG16 rows', so its spread is measured on the embedded profiles only.")


def load(folder: str | Path) -> list[dict]:
    """Every record in ``folder`` (``spread/<profile>``), by row then seed; [] when there is none. Records of
    one row whose settings differ other than by the seed are an InputError (a table would mix them)."""
    folder = Path(folder)
    found, first = _records(folder), {}
    for path, rec in found:
        if "settings" not in rec:
            continue
        seen, settings = first.setdefault(rec["row"], (path, rec["settings"])), rec["settings"]
        if _compared(seen[1]) != _compared(settings):
            raise InputError(f"{folder}: its records were made with different settings (only {seen[0].name}: "
                             f"{_only(seen[1], settings)}; only {path.name}: {_only(settings, seen[1])}); a table "
                             f"would mix them: delete those of one setting, or measure each into its own --out")
    order = list(FILE_NAMES)
    records = [rec for _, rec in found]
    return sorted(records, key=lambda r: (order.index(r["row"]) if r["row"] in order else len(order), r["seed"]))


def _records(folder: Path) -> list[tuple[Path, dict]]:
    """The records in ``folder``, each with its path; one that is not a record is an InputError naming it."""
    found = [(p, read_json(p, "a spread record (make spread)")) for p in sorted(folder.glob("*-seed*.json"))] \
        if folder.is_dir() else []
    for path, rec in found:
        if not isinstance(rec, dict) or not isinstance(rec.get("row"), str) or not isinstance(rec.get("seed"), int):
            raise InputError(f"{path}: not a spread record; expected a JSON object with its row, seed and mIoU "
                             f"(dsrg spread writes them)")
    return found


def miou_by_seed(records: list[dict], rows: Sequence[str] | None = None) -> pd.DataFrame:
    """mIoU (%) per row (index, in :data:`ROWS`' order: Table 2's, then Table 1's own; ``rows``: only those) and
    seed (columns ``seed 0``, ...), with ``mean`` and ``std`` (sample standard deviation, ddof 1) over the seeds."""
    records = [r for r in records if rows is None or r["row"] in rows]
    if not records:
        raise InputError("no spread records: `make spread` writes them")
    values = pd.DataFrame([{"row": r["row"], "seed": f"seed {r['seed']}", "miou": 100 * r["miou"]} for r in records])
    table = values.pivot(index="row", columns="seed", values="miou")
    table = table.reindex([r for r in FILE_NAMES if r in table.index])
    seeds = list(table.columns)
    table["mean"] = table[seeds].mean(axis=1)
    table["std"] = table[seeds].std(axis=1, ddof=1)
    return table


def _per_seed(records: list[dict], row: str) -> dict[int, dict]:
    return {r["seed"]: r for r in records if r["row"] == row}


def _last_iou(records: list[dict], row: str) -> dict[int, float]:
    """The IoU of ``row``'s supervision at its last epoch (its DSRG step's), by seed, where its records keep it."""
    return {s: r["supervision"]["iou"][-1] for s, r in _per_seed(records, row).items() if "supervision" in r}


def _checked_claim(claim: str, outcome: dict[int, bool]) -> dict:
    """A claim's row of :func:`claims`: the seeds where it holds, where it does not, and whether it holds in every
    seed measured (``outcome``: seed -> held)."""
    return {"claim": claim, "seeds": len(outcome),
            "holds in": ", ".join(str(s) for s, ok in sorted(outcome.items()) if ok) or "-",
            "fails in": ", ".join(str(s) for s, ok in sorted(outcome.items()) if not ok) or "-",
            "holds": bool(outcome) and all(outcome.values())}


def claims(records: list[dict]) -> pd.DataFrame:
    """The claims of Table 2's and Fig. 4's pages, each checked in every seed: one row per claim with the
    seeds where it holds, where it does not, and ``holds`` (in every seed measured); a claim on rows that the
    records lack is left out."""
    rows = []
    order = list(ABLATION)
    for lower, upper in zip(order, order[1:]):
        a, b = _per_seed(records, lower), _per_seed(records, upper)
        rows.append(_checked_claim(f"{upper} > {lower} (mIoU)", {s: b[s]["miou"] > a[s]["miou"] for s in a if s in b}))
    dsrg = {s: r["supervision"] for s, r in _per_seed(records, "+DSRG").items() if "supervision" in r}
    rows.append(_checked_claim("recall rises over the epochs (+DSRG)",
                               {s: c["recall"][-1] > c["recall"][0] for s, c in dsrg.items()}))
    rows.append(_checked_claim("IoU rises over the epochs (+DSRG)",
                               {s: c["iou"][-1] > c["iou"][0] for s, c in dsrg.items()}))
    rows.append(_checked_claim("precision holds: its last epoch within 5 points of the seeds' (+DSRG)",
                               {s: c["precision"][-1] >= c["precision"][0] - 0.05 for s, c in dsrg.items()}))
    return _measured(rows)


def paired_gains(records: list[dict], pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The mIoU gain (points) of each ``(lower, upper)`` pair of rows (Table 2's rows, each over the one before,
    unless told others), seed by seed: the rows of one seed share its CAM network and seeds, so each seed's
    difference is one paired measurement. One row per pair: each seed's gain (``seed 0``, ...), ``seeds`` (how
    many have both rows), their ``mean``, ``std`` (sample, ddof 1) and the 95 % interval of the mean (``low``,
    ``high``; Student's t with n - 1 degrees of freedom; NaN with one seed); a pair no seed has both rows of is
    left out."""
    from scipy import stats

    order = list(ABLATION)
    rows, seeds = [], set()
    for lower, upper in pairs if pairs is not None else zip(order, order[1:]):
        a, b = _per_seed(records, lower), _per_seed(records, upper)
        gains = {s: 100 * (b[s]["miou"] - a[s]["miou"]) for s in sorted(a) if s in b}
        if not gains:
            continue
        seeds |= set(gains)
        values = pd.Series(list(gains.values()), dtype=float)
        n, mean, std = len(values), values.mean(), values.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
        rows.append({"gain": f"{upper} over {lower}", **{f"seed {s}": g for s, g in gains.items()}, "seeds": n,
                     "mean": mean, "std": std, "low": mean - half, "high": mean + half})
    columns = ["gain", *(f"seed {s}" for s in sorted(seeds)), "seeds", "mean", "std", "low", "high"]
    return pd.DataFrame(rows, columns=columns).set_index("gain")


def gains_text(gains: pd.DataFrame) -> str:
    """:func:`paired_gains` as a page says them: ``+DSRG over +BSL +1.0 points [-5.0, +7.1] (5 seeds); ...``."""
    def said(name: str, g: pd.Series) -> str:
        if g["seeds"] < 2:
            return f"{name} {g['mean']:+.1f} points (1 seed: no interval)"
        return f"{name} {g['mean']:+.1f} points [{g['low']:+.1f}, {g['high']:+.1f}] ({g['seeds']:.0f} seeds)"

    return "; ".join(said(name, g) for name, g in gains.iterrows())


def supervision_and_miou(records: list[dict]) -> pd.DataFrame:
    """Per seed (index), what +BSL and +DSRG trained on and what they scored (%): the supervision's IoU at
    training's end (+BSL's the seeds, +DSRG's grown, its last epoch) and the mIoU; seeds without both rows'
    records are left out."""
    bsl, dsrg = _per_seed(records, "+BSL"), _per_seed(records, "+DSRG")
    grown = _last_iou(records, "+DSRG")
    return pd.DataFrame([{"seed": s, "+BSL supervision": 100 * bsl[s]["seeds"]["iou"], "+BSL mIoU": 100 * bsl[s]["miou"],
                          "+DSRG supervision": 100 * grown[s], "+DSRG mIoU": 100 * dsrg[s]["miou"]}
                         for s in sorted(bsl) if s in grown and "seeds" in bsl[s]],
                        columns=["seed", "+BSL supervision", "+BSL mIoU", "+DSRG supervision", "+DSRG mIoU"]
                        ).set_index("seed")


def _measured(rows: list[dict]) -> pd.DataFrame:
    """The claims of ``rows`` that some seed measured (a claim on rows the records lack says nothing)."""
    return pd.DataFrame([r for r in rows if r["seeds"]], columns=list(_checked_claim("", {})))


#: Table 1's rows as the spread records them (SEC is Table 2's baseline, DSRG (VGG16) its +Retrain, whose DSRG
#: step, its supervision per epoch, is +DSRG's).
TABLE1_RECORDS = {"SEC": "baseline", "DSRG (VGG16)": "+Retrain", RESNET: RESNET}


def table1_by_seed(records: list[dict]) -> pd.DataFrame:
    """:func:`miou_by_seed` of Table 1's rows, named as Table 1 names them (:data:`TABLE1_RECORDS`)."""
    named = {recorded: row for row, recorded in TABLE1_RECORDS.items()}
    return miou_by_seed(records, rows=list(named)).rename(index=named)


def table1_gains(records: list[dict]) -> pd.DataFrame:
    """:func:`paired_gains` of Table 1's rows, each over the one before, named as Table 1 names them."""
    named = {recorded: row for row, recorded in TABLE1_RECORDS.items()}
    pairs = list(zip(TABLE1_RECORDS.values(), list(TABLE1_RECORDS.values())[1:]))
    return paired_gains(records, pairs).rename(
        index={f"{upper} over {lower}": f"{named[upper]} over {named[lower]}" for lower, upper in pairs})


def table1_claims(records: list[dict]) -> pd.DataFrame:
    """The claims of Table 1's page, each checked in every seed (as :func:`claims`): DSRG (VGG16) above SEC, and
    of its two DSRG rows, which scores higher, whether they share their seeds, and whether the ResNet-101 row's
    grown supervision (the DSRG step's last epoch) and pseudo labels are above the VGG16 row's; with the VGG16
    row's DSRG step from random weights (``RANDOM``), whether the start makes the gap in the grown
    supervision; with the two random starts' heads swapped (:data:`STEPS`), whether ResNet-101's trunk alone and
    its head alone grow more than VGG16 from random weights, and the two together more than the sum of each
    alone."""
    sec, vgg, resnet = (_per_seed(records, TABLE1_RECORDS[k]) for k in TABLE1_RECORDS)
    grown, random, last, vgg_resnet_head, resnet_vgg_head = (
        _last_iou(records, row) for row in ("+DSRG", RANDOM, RESNET, VGG16_RESNET_HEAD, RESNET_VGG16_HEAD))
    both = [s for s in resnet if s in vgg]
    rows = [_checked_claim("DSRG (VGG16) > SEC (mIoU)", {s: vgg[s]["miou"] > sec[s]["miou"] for s in vgg if s in sec}),
            _checked_claim(f"{RESNET} > DSRG (VGG16) (mIoU)", {s: resnet[s]["miou"] > vgg[s]["miou"] for s in both}),
            _checked_claim("the two DSRG rows share their seeds (IoU)",
                           {s: math.isclose(resnet[s]["seeds"]["iou"], vgg[s]["seeds"]["iou"], abs_tol=1e-9)
                            for s in both if "seeds" in resnet[s] and "seeds" in vgg[s]}),
            _checked_claim(f"{RESNET}'s grown supervision > DSRG (VGG16)'s (IoU, last epoch)",
                           {s: last[s] > grown[s] for s in last if s in grown}),
            _checked_claim("DSRG (VGG16)'s grown supervision from the CAM net > from random weights (IoU, last "
                           "epoch)", {s: grown[s] > random[s] for s in grown if s in random}),
            _checked_claim(f"{RESNET}'s grown supervision > DSRG (VGG16)'s from random weights (IoU, last epoch)",
                           {s: last[s] > random[s] for s in last if s in random}),
            _checked_claim(f"{RESNET}'s pseudo labels > DSRG (VGG16)'s (mIoU)",
                           {s: resnet[s]["pseudo"]["miou"] > vgg[s]["pseudo"]["miou"]
                            for s in both if resnet[s].get("pseudo") and vgg[s].get("pseudo")})]
    gains = {s: (resnet_vgg_head[s] - random[s], vgg_resnet_head[s] - random[s], last[s] - random[s])
             for s in random if s in resnet_vgg_head and s in vgg_resnet_head and s in last}   # over VGG16, random
    rows += [_checked_claim("ResNet-101's trunk alone (under VGG16's head) grows more than VGG16 from random weights "
                            "(IoU, last epoch)", {s: trunk > 0 for s, (trunk, _, _) in gains.items()}),
             _checked_claim("ResNet-101's head alone (on the VGG16 trunk) grows more than VGG16 from random weights "
                            "(IoU, last epoch)", {s: head > 0 for s, (_, head, _) in gains.items()}),
             _checked_claim("ResNet-101's trunk and head together add more over VGG16 from random weights than the "
                            "trunk alone and the head alone, summed (IoU, last epoch)",
                            {s: whole > trunk + head for s, (trunk, head, whole) in gains.items()})]
    return _measured(rows)


#: The rows whose records hold the DSRG steps of TRUNK_BY_HEAD, the ResNet-101's being the DSRG (Resnet101) row's.
TRUNK_BY_HEAD_RECORDS = {label: RESNET if label == RESNET_STEP else label for label in TRUNK_BY_HEAD.values()}


def trunk_by_head_over_seeds(records: list[dict]) -> tuple[pd.DataFrame, list[int]] | None:
    """The grown supervision (IoU %, last epoch) of the four DSRG steps of
    :data:`~dsrg.reproduce.experiments.TRUNK_BY_HEAD`, each the mean over the seeds that recorded all four, two by
    two (:func:`~dsrg.reproduce.tables.trunk_by_head`), and those seeds; None where no seed recorded all four."""
    last = {label: {s: 100 * iou for s, iou in _last_iou(records, row).items()}
            for label, row in TRUNK_BY_HEAD_RECORDS.items()}
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in last.values())))
    if not seeds:
        return None
    means = pd.DataFrame({"grown: IoU": {label: sum(by_seed[s] for s in seeds) / len(seeds)
                                         for label, by_seed in last.items()}})
    return trunk_by_head(means, TRUNK_BY_HEAD, "grown: IoU"), seeds


def caveats(records: list[dict], row: str, settings: str, current: str, threads: Sequence[int] = ()) -> str:
    """What a reader of the spread beside one run's numbers should know, as a sentence: where the records of
    ``row`` were made with other settings than that run's (``settings``, the run's
    :meth:`~dsrg.reproduce.experiments.Experiment.command`; the seed and the run folder aside), on other code
    than ``current`` (a source hash), or with other torch thread counts than the run's ``threads``
    (:meth:`~dsrg.reproduce.experiments.Experiment.threads`; records or a run that do not say, not compared);
    "" where none of these."""
    mine = [r for r in records if r.get("row") == row]
    said = []
    theirs = next((r["settings"] for r in mine if "settings" in r), None)
    if theirs is not None and _compared(theirs) != _compared(settings):
        said.append(f"with other settings than this page's run (only the spread: {_only(theirs, settings)}; only "
                    f"this run: {_only(settings, theirs)})")
    hashes = _sources(mine)
    if hashes and hashes != [current]:
        said.append(f"on other code (source {', '.join(hashes)}; this page's is {current})")
    counts = _threads(mine)
    if counts and threads and counts != sorted(set(threads)):
        said.append(f"with {_counts(counts)} of torch, where this page's run had {_counts(threads)} (on the CPU "
                    f"the thread count changes the numbers as floats round, so even at this run's seed the "
                    f"spread's numbers are of another run; make spread reuses run folders whatever their thread "
                    f"count, so remove runs/spread first and give SPREAD_THREADS={max(threads)})")
    return f"The spread was measured {' and '.join(said)}: make spread measures it again." if said else ""


def this_run(records: list[dict], seed: int, mious: dict[str, float], names: dict[str, str] | None = None) -> str:
    """A sentence on the records of ``seed`` beside a page's run of that seed (``mious``: its rows' mIoU, by the
    records' row names; ``names``: what the page calls them, e.g. :data:`TABLE1_RECORDS` turned round): whether
    they are that run, the same mIoU in every row both have; "" where the spread lacks the seed."""
    theirs = {r["row"]: r["miou"] for r in records if r.get("seed") == seed and r.get("row") in mious}
    if not theirs:
        return ""
    named = (names or {}).get
    differ = [row for row in mious if row in theirs and not math.isclose(theirs[row], mious[row], abs_tol=1e-9)]
    if not differ:
        return (f"The spread's seed {seed} matches this page's run: the same mIoU in "
                f"{_rows([named(row, row) for row in theirs], set(mious))}.")
    return (f"The spread's seed {seed} does not match this page's run: " + ", ".join(
        f"{named(row, row)} {100 * theirs[row]:.1f} there, {100 * mious[row]:.1f} here" for row in differ) + ".")


def _rows(rows: list[str], page: set[str]) -> str:
    """``every row`` where ``rows`` are all the page's (``page``), three or more, else the rows named."""
    return "every row" if len(rows) == len(page) >= 3 else ", ".join(rows)


def _counts(threads: Sequence[int]) -> str:
    """``1 thread``, ``1 or 2 threads``: thread counts in words."""
    counts = sorted(set(threads))
    return f"{' or '.join(map(str, counts))} thread{'s' * (counts != [1])}"


def source_note(records: list[dict], current: str) -> str:
    """A sentence on the code the records were measured with against ``current`` (a source hash)."""
    hashes = _sources(records)
    if not hashes:
        return "The records do not say which code measured them."
    if hashes == [current]:
        return f"The spread was measured on this code (source {current})."
    return (f"The spread was measured on other code (source {', '.join(hashes)}; this book's is {current}): "
            f"make spread measures it again.")


def _threads(records: list[dict]) -> list[int]:
    """The torch thread counts ``records`` were measured with, sorted (records that do not say: none)."""
    return sorted({n for r in records for n in r.get("threads") or ()})


def _sources(records: list[dict]) -> list[str]:
    """The source hashes of the code that measured ``records``, sorted (records that do not say: none)."""
    return sorted({(r.get("code") or {}).get("source") for r in records} - {None})
