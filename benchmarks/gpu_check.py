"""The GPU check: on a CUDA machine, in about 6 minutes (7 min 30 s with every part at its limit), the `gpu`
tests and the paper-shape benchmarks, each under its own time limit, each recorded as JSON in
benchmarks/results/ with the machine, then one screen of summary.

    make gpu-check                      # python3 of the machine, its own torch (GPU_PYTHON=... for another)
    python3 benchmarks/gpu_check.py [--results benchmarks/results] [--only step-vgg16,grow]
    # a lent machine whose files do not stay, and which gives back a few files: everything in one archive,
    # rewritten after each part, and every part ended by the deadline (set before the machine's setup)
    D=$(( $(date +%s) + 530 )); source .whl/device-setup.sh && DSRG_COMMIT=<commit> python3 \
        benchmarks/gpu_check.py --results /tmp/gpu-check --bundle $OUT/gpu-check.tgz --deadline $D

Run from the project root, with the project on PYTHONPATH (no editable install needed). A part that runs past
its limit is stopped with every process it started (Ctrl-C first, so that pytest still writes its report),
and the rest go on; the summary says which. ``machine.json`` says the GPU, torch, CUDA and the code (its
source hash; the commit from git, or from ``DSRG_COMMIT`` on a copy without git).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
#: The float32 CUDA resume test, which the last part runs again with TF32 off.
RESUME_FP32 = str(ROOT / "tests" / "test_training.py") + \
    "::test_an_interrupted_cuda_step_resumes_to_the_uninterrupted_weights"


def parts(results: Path) -> dict[str, tuple[list[str], int]]:
    """``{name: (command, seconds allowed)}``; each benchmark writes ``<results>/<name>-gpu.json``."""
    def bench(script: str, *args: str, name: str) -> list[str]:
        return [PY, str(ROOT / "benchmarks" / script), *args, "--json", str(results / f"{name}-gpu.json")]

    def tests(name: str, *where: str) -> list[str]:
        # -v: each test's outcome is in the log as it ends, so a part stopped at its limit still says them
        return [PY, "-m", "pytest", "-p", "no:cacheprovider", "-m", "gpu", "-v", "-rA", *where,
                "--continue-on-collection-errors", "--junitxml", str(results / f"{name}-gpu.xml")]

    resume = [str(ROOT / "tests" / f) for f in ("test_training.py", "test_resume_state.py")]
    return {
        # the files with gpu tests only: others import what a bare GPU machine lacks (nbformat, imgviz)
        "tests": (tests("tests", *(f for f in gpu_test_files() if f not in resume)), 85),
        # kill-and-resume: seven training processes, each starting CUDA; apart, so that neither part's limit
        # costs the other's record
        "tests-resume": (tests("tests-resume", *resume), 75),
        "step-vgg16": (bench("step.py", "--device", "cuda", "--batch", "20", "--size", "321", "--crf", "exact",
                             name="step-vgg16"), 30),
        "step-resnet101": (bench("step.py", "--device", "cuda", "--model", "resnet101", "--batch", "20", "--size",
                                 "321", "--crf", "exact", name="step-resnet101"), 30),
        "grow": (bench("grow.py", "--device", "cuda", name="grow"), 20),
        "crf": (bench("crf.py", "--device", "cuda", name="crf"), 20),
        "crf-test": (bench("crf.py", "--test-time", "--device", "cuda", "--images", "8", "--batch", "8",
                           name="crf-test"), 25),
        "paper-scale": (bench("paper_scale.py", "--device", "cuda", "--slice", "64", "--iterations", "40",
                              "--pool", "400", "--saliency-images", "96", "--data", "/tmp/dsrg-paper-scale-set",
                              "--out", "/tmp/dsrg-paper-scale", name="paper-scale"), 115),
        # a diagnosis, last: the float32 resume test again with TF32 off in cuDNN and cuBLAS, to tell whether
        # TF32's rounding is what turns the kernels' order of addition into a difference of weights
        "tests-resume-no-tf32": (["env", "NVIDIA_TF32_OVERRIDE=0", *tests("tests-resume-no-tf32", RESUME_FP32)], 50),
    }


def gpu_test_files() -> list[str]:
    """The test files with tests marked ``gpu``, as paths."""
    return sorted(str(f) for f in (ROOT / "tests").glob("test_*.py") if "pytest.mark.gpu" in f.read_text())


#: Seconds a part past its limit has, after Ctrl-C, to write what it has (pytest its report) before it is killed.
GRACE_S = 5.0


def run_part(command: list[str], limit: float, log: Path) -> tuple[str, float]:
    """Run ``command`` in a session of its own, output to ``log``; after ``limit`` s, Ctrl-C to the whole
    session, and after :data:`GRACE_S` more, SIGKILL to whatever of it is left."""
    start = time.perf_counter()
    with open(log, "w") as out:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        # Ctrl-C at its default in the part: a shell's background job (a lent machine's command, CI) starts
        # with it ignored, and Python keeps it so, when the limit's Ctrl-C must reach pytest
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            code = proc.wait(timeout=limit)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"stopped after {limit:.0f} s"
            try:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=GRACE_S)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # whatever it left running: loader and CRF workers
            except ProcessLookupError:
                pass
            proc.wait()
    return status, time.perf_counter() - start


def summary(results: Path, ran: dict[str, tuple[str, float]]) -> str:
    """One screen: each part's status and time, and the figures of the records it wrote."""
    lines = [f"{name:21} {status:24} {seconds:6.0f} s" for name, (status, seconds) in ran.items()]

    def record(name: str, staged: bool = False) -> dict | None:
        """The part's record where it passed, or (``staged``: a part that writes its record in stages) where it
        was stopped after writing one."""
        path = results / f"{name}-gpu.json"
        status = ran.get(name, ("",))[0]
        ok = status == "ok" or (staged and status.startswith("stopped"))
        return json.loads(path.read_text()) if path.is_file() and ok else None

    for name in ("step-vgg16", "step-resnet101"):
        r = record(name)
        if r:
            s = r["seconds"]
            parts = (f"one CUDA graph {1e3 * s['graph']:.2f} ms; op by op CRF {1e3 * s['crf']:.2f} ms, growing "
                     f"{1e3 * s['growing']:.2f} ms" if "graph" in s else
                     f"CRF {1e3 * s['crf']:.2f} ms, growing {1e3 * s['growing']:.2f} ms")
            lines.append(f"{name}: {1e3 * s['total']:.1f} ms per step ({r['images_per_second']:.0f} img/s), CRF + "
                         f"growing {100 * s.get('graph', s['crf'] + s['growing']) / s['total']:.1f} %"
                         + (f" ({parts} with {r['grow_method']})" if "grow_method" in r else "")
                         + f", peak {r['peak_memory_bytes'] / 2**30:.1f} GiB")
    r = record("crf")
    if r:
        s = r["seconds"]
        kernels = 1e3 * s.get("exact_kernels", float("nan"))
        lines.append(f"crf: exact {1e3 * s['exact']:.2f} ms per batch (building its kernels {kernels:.2f} ms), "
                     f"pydensecrf {1e3 * s['pydensecrf']:.1f} ms; "
                     f"argmax agreement {100 * r['agreement']['argmax_agreement']:.2f} %"
                     + (f"; as one CUDA graph {1e3 * s['exact_graph']:.2f} ms (op by op "
                        f"{1e3 * s.get('exact_unchecked', float('nan')):.2f} ms)" if "exact_graph" in s else "")
                     + (f"; no CUDA graph ({r['exact_graph_error']})" if "exact_graph_error" in r else ""))
        if "exact_bf16" in s:
            lines.append(f"crf: exact_bf16 {1e3 * s['exact_bf16']:.2f} ms per batch"
                         + (f", as one CUDA graph {1e3 * s['exact_bf16_graph']:.2f} ms" if "exact_bf16_graph" in s
                            else "")
                         + f"; argmax agreement with pydensecrf {100 * r['agreement_bf16']['argmax_agreement']:.2f} %")
            for name in ("step-vgg16", "step-resnet101"):
                step = record(name)
                if step:     # its CRF's time op by op scaled by exact_bf16 / exact, as measured by this part
                    t = step["seconds"]
                    op_by_op = t["total"] - t.get("graph", t["crf"] + t["growing"]) + t["crf"] + t["growing"]
                    crf = t["crf"] * s["exact_bf16"] / s["exact"]
                    lines.append(f"{name} with exact_bf16 op by op (an estimate): CRF + growing "
                                 f"{100 * (crf + t['growing']) / (op_by_op - t['crf'] + crf):.1f} %")
    r = record("grow")
    if r:
        t = {row["key"]: row["seconds"] for row in r["rows"]}
        triton = f"triton on CUDA {1e3 * t['triton']:.2f} ms, " if "triton" in t else "no triton (the log says why), "
        lines.append(f"grow: {triton}torch on CUDA {1e3 * t['torch']:.2f} ms, numba on the CPU "
                     f"{1e3 * t['numba']:.2f} ms (target: CUDA no slower)")
    r = record("crf-test")
    if r:
        times, a = r["seconds_per_image"], r["agreement"]
        base, batched = times["pydensecrf, 1 core"], min(times.values())
        lines.append(f"crf-test: lattice {1e3 * batched:.1f} ms per image, {base / batched:.0f}x one pydensecrf core; "
                     f"argmax agreement {100 * a['argmax_agreement_median']:.2f} % (median), "
                     f"{100 * a['argmax_agreement_min']:.2f} % (min)")
    r = record("paper-scale", staged=True)      # its projection is written before its further measures
    if r:
        for step, m in r["steps"].items():
            wait = f", data wait {100 * m['data_wait']:.1f} %, GPU idle {100 * m.get('gpu_idle', 0):.0f} %" \
                if "data_wait" in m else ""
            lines.append(f"paper-scale {step:8} projected {m['projected_s'] / 60:6.1f} min{wait}")
        missing = r.get("not_measured") or []            # a run stopped before its last step
        lines.append(f"paper-scale total: {r['projected_total_s'] / 60:.1f} min (target: under 30 min)" if not missing
                     else f"paper-scale total of the steps measured: {r['projected_total_s'] / 60:.1f} min; not "
                          f"measured: {', '.join(missing)}")
        rates = r.get("saliency_images_per_s", {})
        pool = next((k for k in rates if k != "one process"), None)
        if "one process" in rates and pool:
            lines.append(f"saliency: one process {rates['one process']:.2f} img/s, {pool} {rates[pool]:.2f} img/s, "
                         f"{rates[pool] / rates['one process']:.1f}x (target: 12x on 16 cores)")
        o = r.get("overlap")
        if o:
            lines.append(f"paper-scale total with seeds.overlap (saliency during train-cls, an estimate): "
                         f"{o['projected_total_s'] / 60:.1f} min; seeds {o['seeds_projected_s'] / 60:.1f} min, "
                         f"{o['hidden_s'] / 60:.1f} min of saliency hidden")
    for name in ("tests", "tests-resume", "tests-resume-no-tf32"):
        xml = results / f"{name}-gpu.xml"
        if xml.is_file():
            import xml.etree.ElementTree as ET

            suite = ET.parse(xml).getroot()
            suite = suite if suite.tag == "testsuite" else suite[0]
            cut = " (stopped at its limit: the last test's outcome is in its log)" if \
                ran.get(name, ("",))[0].startswith("stopped") else ""
            lines.append(f"gpu {name}: {suite.get('tests')} run, {suite.get('failures')} failed, "
                         f"{suite.get('errors')} errors, {suite.get('skipped')} skipped{cut}")
    return "\n".join(lines)


def run_parts(todo: dict[str, tuple[list[str], int]], results: Path, until: float | None = None,
              archive: Path | None = None) -> dict[str, tuple[str, float]]:
    """Each part of ``todo`` in turn (:func:`run_part`), each ending, its Ctrl-C grace included, by ``until``
    (a ``time.time()``; None: no end; a part with under 10 s left is not run); ``results`` bundled into
    ``archive`` after each."""
    ran = {}
    for name, (command, limit) in todo.items():
        for old in (f"{name}-gpu.json", f"{name}-gpu.xml", f"{name}-gpu.log"):   # no figures of an earlier run
            (results / old).unlink(missing_ok=True)
        left = math.inf if until is None else until - time.time() - GRACE_S - 1
        if left < 10:
            ran[name] = ("not run: out of budget", 0.0)
        else:
            ran[name] = run_part(command, min(limit, left), results / f"{name}-gpu.log")
            if left < limit and ran[name][0].startswith("stopped"):
                ran[name] = (ran[name][0] + " (budget)", ran[name][1])
        print(f"  {name}: {ran[name][0]} in {ran[name][1]:.0f} s", flush=True)
        if archive:
            bundle(results, archive)
    return ran


def machine() -> dict:
    """The benchmarks' machine record (``grow.machine_info``: CPU, cores, torch, the GPU), CUDA's version and the
    code (:func:`dsrg.run.provenance.code`; ``DSRG_COMMIT`` where git cannot say the commit)."""
    import torch

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from dsrg.run.provenance import code
    from grow import machine_info  # benchmarks/ is sys.path[0]

    made = code()
    if made["commit"] is None and os.environ.get("DSRG_COMMIT"):       # a copy without git: said by the caller
        made.update(commit=os.environ["DSRG_COMMIT"], uncommitted=None)
    return {**machine_info(torch.device("cuda", 0)), "cuda": torch.version.cuda, "code": made}


#: The most of a log that goes into the archive (its end): the tool gives back no file over 16 MiB.
LOG_TAIL_BYTES = 4 * 2**20


def bundle(results: Path, archive: Path) -> None:
    """``results`` as one gzipped tar at ``archive``, replaced whole (never half-written), each log cut to its
    last :data:`LOG_TAIL_BYTES`; the summary and ``machine.json`` also beside it. A failure is said, not
    raised: the parts go on."""
    partial = archive.with_name(archive.name + ".partial")
    try:
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(results, arcname=results.name, recursive=False)
            for path in sorted(results.rglob("*")):
                name = f"{results.name}/{path.relative_to(results).as_posix()}"
                if path.is_file() and path.suffix == ".log" and path.stat().st_size > LOG_TAIL_BYTES:
                    with open(path, "rb") as f:
                        f.seek(-LOG_TAIL_BYTES, os.SEEK_END)
                        tail = f.read()
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(tail), int(path.stat().st_mtime)
                    tar.addfile(info, io.BytesIO(tail))
                else:
                    tar.add(path, arcname=name, recursive=False)
        partial.replace(archive)
        for small in ("gpu-check-summary.txt", "machine.json"):
            if (results / small).is_file():
                shutil.copyfile(results / small, archive.parent / small)
    except OSError as exc:
        print(f"gpu_check: could not write the archive {archive}: {exc}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--only", default="", help="comma-separated parts (default: all)")
    ap.add_argument("--bundle", default="", help="also keep the results folder as this .tgz, after each part")
    ap.add_argument("--budget", type=float, default=0.0,
                    help="seconds from now for all parts, their Ctrl-C grace included: each gets at most what is "
                         "left, none starts with under 10 s")
    ap.add_argument("--deadline", type=float, default=0.0,
                    help="as --budget, as an epoch time (date +%%s), set before the machine's setup")
    args = ap.parse_args()
    until = args.deadline or (time.time() + args.budget if args.budget else None)
    try:
        import torch
    except ImportError:
        raise SystemExit(f"gpu_check: {sys.executable} has no torch; run it with a python that has torch's CUDA "
                         f"build (make gpu-check GPU_PYTHON=/path/to/python)") \
            from None
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here (torch.cuda.is_available() is False)")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    todo = parts(results)
    chosen = [p for p in args.only.split(",") if p] or list(todo)
    unknown = sorted(set(chosen) - set(todo))
    if unknown:
        raise SystemExit(f"gpu_check: no part {unknown}; expected some of {sorted(todo)}")
    info = machine()
    (results / "machine.json").write_text(json.dumps(info, indent=1) + "\n")
    said = (f"{info['gpu']}, torch {info['torch']} (CUDA {info['cuda']}), {info['cores']} cores; code: source "
            f"{info['code']['source']}, commit {info['code']['commit'] or 'unknown (no git here: DSRG_COMMIT=...)'}")
    print(f"gpu_check: {said}; logs in {results}", flush=True)
    archive = Path(args.bundle) if args.bundle else None
    if archive:
        bundle(results, archive)                  # the machine, at once
    ran = run_parts({name: todo[name] for name in chosen}, results, until, archive)
    try:
        text = summary(results, ran)
    except Exception as exc:  # noqa: BLE001 (the records and logs are kept: the summary is only a reading)
        text = "\n".join(f"{name:21} {status}" for name, (status, _) in ran.items()) + \
            f"\nno summary of the figures: {type(exc).__name__}: {exc}"
    text = f"gpu_check on {said}\n{text}"
    (results / "gpu-check-summary.txt").write_text(text + "\n")
    if archive:
        bundle(results, archive)
    print(text)
    failed = [name for name, (status, _) in ran.items() if status != "ok"]
    if failed:
        raise SystemExit(f"gpu_check: {', '.join(failed)} did not pass (logs in {results})")


if __name__ == "__main__":
    main()
