"""`make gpu-check` (benchmarks/gpu_check.py) on the CPU: a part past its limit is stopped with every process
it started, the summary reads the records the parts wrote, and the parts' scripts run here at small shapes, so
that the GPU minutes are not lost to a script that fails before it measures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402
from gpu_check import parts, run_part, run_parts, summary  # noqa: E402


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").is_dir() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_part_past_its_limit_is_stopped_with_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    start = time.perf_counter()
    status, seconds = run_part([sys.executable, "-c", script], 2, tmp_path / "part.log")
    assert status == "stopped after 2 s" and seconds < 10 and time.perf_counter() - start < 10
    child = int(pid_file.read_text())
    deadline = time.time() + 5
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the grandchild went with its part"


def test_a_part_past_its_limit_gets_ctrl_c_first_to_write_what_it_has(tmp_path, monkeypatch):
    """pytest writes its report on Ctrl-C; a part that ignores it is killed once the grace has passed."""
    monkeypatch.setattr(gpu_check, "GRACE_S", 1.0)
    report = tmp_path / "report.xml"
    polite = f"import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    open({str(report)!r}, 'w')\n"
    # 8 s: a Ctrl-C that came before the interpreter reached its try (a loaded machine) would find no handler
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)      # as in a shell's background job: not in the part
    try:
        assert run_part([sys.executable, "-c", polite], 8, tmp_path / "a.log")[0] == "stopped after 8 s"
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert report.is_file()
    deaf = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
    status, seconds = run_part([sys.executable, "-c", deaf], 1, tmp_path / "b.log")
    assert status == "stopped after 1 s" and seconds < 10


def test_parts_share_a_budget_and_the_results_are_bundled_after_each(tmp_path, monkeypatch):
    """A lent machine gives back a few files: the results folder as one archive, whole after every part."""
    import tarfile

    results, archive = tmp_path / "gpu", tmp_path / "out" / "gpu-check.tgz"
    results.mkdir()
    archive.parent.mkdir()
    todo = {"slow": ([sys.executable, "-c", "import time; time.sleep(60)"], 60),
            "next": ([sys.executable, "-c", "pass"], 60)}
    monkeypatch.setattr(gpu_check, "GRACE_S", 1.0)
    ran = run_parts(todo, results, until=time.time() + 16, archive=archive)      # 16 - grace 1 - 1
    assert ran["slow"][0] == "stopped after 14 s (budget)" and ran["next"] == ("not run: out of budget", 0.0)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["gpu", "gpu/slow-gpu.log"]
    assert not list(archive.parent.glob("*.partial"))


def test_the_archive_keeps_the_end_of_a_long_log_and_the_summary_beside_it(tmp_path, monkeypatch):
    """The tool gives back no file over 16 MiB: a log is cut to its end, where a failure says itself."""
    import tarfile

    monkeypatch.setattr(gpu_check, "LOG_TAIL_BYTES", 10)
    results, out = tmp_path / "gpu", tmp_path / "out"
    results.mkdir()
    out.mkdir()
    (results / "tests-gpu.log").write_text("collected 9 items ... FAILED: the end\n")
    (results / "gpu-check-summary.txt").write_text("tests ok\n")
    gpu_check.bundle(results, out / "gpu-check.tgz")
    with tarfile.open(out / "gpu-check.tgz") as tar:
        assert tar.extractfile("gpu/tests-gpu.log").read() == b": the end\n"
    assert (out / "gpu-check-summary.txt").read_text() == "tests ok\n"
    gpu_check.bundle(results, tmp_path / "gone" / "gpu-check.tgz")      # said, not raised: the parts go on


def test_a_failing_part_says_its_exit_status(tmp_path):
    status, _ = run_part([sys.executable, "-c", "raise SystemExit(3)"], 10, tmp_path / "part.log")
    assert status == "failed (exit 3)"


def test_every_part_writes_its_record_into_the_results_folder(tmp_path):
    for name, (command, limit) in parts(tmp_path).items():
        assert str(tmp_path) in " ".join(command), name
        assert 0 < limit <= 150
    assert sum(limit for _, limit in parts(tmp_path).values()) <= 450, "7 min 30 s at most"


def test_the_diagnosis_without_tf32_runs_the_float32_resume_test_alone(tmp_path):
    command = parts(tmp_path)["tests-resume-no-tf32"][0]
    assert command[:2] == ["env", "NVIDIA_TF32_OVERRIDE=0"]
    node = [a for a in command if "::" in a]
    assert len(node) == 1 and not any(a == "-k" for a in command)
    path, name = node[0].split("::")
    assert f"def {name}(" in Path(path).read_text(), "the node names a test that exists"


def test_the_two_test_parts_run_every_gpu_test_file_once_and_no_other(tmp_path):
    """Only files with gpu tests: the others import what a bare GPU machine lacks, and their collection errors
    would fail the part whatever the GPU tests said."""
    tests = Path(__file__).resolve().parent
    gpu_files = {f.name for f in tests.glob("test_*.py") if "pytest.mark.gpu" in f.read_text()}
    everything, resume = parts(tmp_path)["tests"][0], parts(tmp_path)["tests-resume"][0]
    in_tests = [Path(a).name for a in everything if a.endswith(".py")]
    in_resume = [Path(a).name for a in resume if a.endswith(".py")]
    assert sorted(in_tests + in_resume) == sorted(gpu_files) and "test_book.py" not in gpu_files
    assert {"test_training.py", "test_resume_state.py"} <= set(in_resume), "the kill-and-resume tests, apart"


def test_the_summary_reads_the_records_of_the_parts_that_ran(tmp_path):
    step = {"seconds": {"total": 0.04, "crf": 0.005, "growing": 0.002}, "images_per_second": 500.0,
            "peak_memory_bytes": 4 * 2**30}
    (tmp_path / "step-vgg16-gpu.json").write_text(json.dumps(step))
    scale = {"steps": {"seg": {"projected_s": 600.0, "data_wait": 0.02, "gpu_idle": 0.1},
                       "eval": {"projected_s": 60.0}}, "projected_total_s": 660.0,
             "saliency_images_per_s": {"one process": 2.0, "16 workers": 26.0}}
    (tmp_path / "paper-scale-gpu.json").write_text(json.dumps(scale))
    crf = {"seconds_per_image": {"pydensecrf, 1 core": 0.6, "lattice, cuda, 1 image at a time": 0.02,
                                 "lattice, cuda, 8 images at once": 0.01},
           "agreement": {"argmax_agreement_median": 1.0, "argmax_agreement_min": 0.9995}}
    (tmp_path / "crf-test-gpu.json").write_text(json.dumps(crf))
    exact = {"seconds": {"exact": 0.0021, "exact_kernels": 0.0009, "pydensecrf": 0.11, "exact_graph": 0.0012,
                         "exact_unchecked": 0.0019, "exact_bf16": 0.00105},
             "agreement": {"argmax_agreement": 0.9999}, "agreement_bf16": {"argmax_agreement": 0.9998}}
    (tmp_path / "crf-gpu.json").write_text(json.dumps(exact))
    (tmp_path / "grow-gpu.json").write_text(json.dumps({"rows": [{"key": "torch", "seconds": 0.0008}]}))
    text = summary(tmp_path, {"step-vgg16": ("ok", 20.0), "paper-scale": ("ok", 90.0), "grow": ("stopped after 25 s",
                                                                                                 25.0),
                              "crf-test": ("ok", 20.0), "crf": ("ok", 3.0)})
    assert "crf: exact 2.10 ms per batch (building its kernels 0.90 ms), pydensecrf 110.0 ms" in text
    assert "; as one CUDA graph 1.20 ms (op by op 1.90 ms)" in text
    assert "grow: torch" not in text, "a part that did not pass has no figures"
    assert "crf-test: lattice 10.0 ms per image, 60x one pydensecrf core; argmax agreement 100.00 % (median), " \
           "99.95 % (min)" in text
    assert "step-vgg16: 40.0 ms per step (500 img/s), CRF + growing 17.5 %, peak 4.0 GiB" in text
    assert "crf: exact_bf16 1.05 ms per batch; argmax agreement with pydensecrf 99.98 %" in text
    # the step's CRF, 5 ms, at exact_bf16's half of exact's time: (2.5 + 2) / (40 - 5 + 2.5)
    assert "step-vgg16 with exact_bf16 op by op (an estimate): CRF + growing 12.0 %" in text
    assert "paper-scale seg      projected   10.0 min, data wait 2.0 %, GPU idle 10 %" in text
    assert "paper-scale total: 11.0 min (target: under 30 min)" in text and "stopped after 25 s" in text
    assert "saliency: one process 2.00 img/s, 16 workers 26.00 img/s, 13.0x (target: 12x on 16 cores)" in text


def test_a_paper_scale_run_stopped_after_its_projection_still_shows_it(tmp_path):
    scale = {"steps": {"eval": {"projected_s": 60.0}}, "projected_total_s": 60.0}
    (tmp_path / "paper-scale-gpu.json").write_text(json.dumps(scale))
    (tmp_path / "grow-gpu.json").write_text(json.dumps({"rows": [{"key": "torch", "seconds": 0.0008}]}))
    text = summary(tmp_path, {"paper-scale": ("stopped after 150 s", 150.0), "grow": ("stopped after 20 s", 20.0)})
    assert "paper-scale total: 1.0 min (target: under 30 min)" in text
    assert "grow: torch" not in text, "a part that writes its record at its end: none where it was stopped"


def test_a_paper_scale_run_stopped_between_its_steps_says_its_total_is_of_the_steps_measured(tmp_path):
    scale = {"steps": {"cls": {"projected_s": 120.0}}, "projected_total_s": 120.0, "not_measured": ["seeds", "eval"]}
    (tmp_path / "paper-scale-gpu.json").write_text(json.dumps(scale))
    text = summary(tmp_path, {"paper-scale": ("stopped after 115 s", 115.0)})
    assert "paper-scale total of the steps measured: 2.0 min; not measured: seeds, eval" in text
    assert "target: under 30 min" not in text


def test_the_summary_gives_the_total_with_the_saliency_during_train_cls(tmp_path):
    scale = {"steps": {"eval": {"projected_s": 60.0}}, "projected_total_s": 1500.0,
             "overlap": {"projected_total_s": 1380.0, "seeds_projected_s": 120.0, "hidden_s": 240.0}}
    (tmp_path / "paper-scale-gpu.json").write_text(json.dumps(scale))
    text = summary(tmp_path, {"paper-scale": ("ok", 140.0)})
    assert "paper-scale total with seeds.overlap (saliency during train-cls, an estimate): 23.0 min; seeds 2.0 min, " \
           "4.0 min of saliency hidden" in text


def test_the_summary_names_the_steps_growing_method_and_times_triton_beside_torch(tmp_path):
    step = {"seconds": {"total": 0.04, "crf": 0.005, "growing": 0.0002}, "images_per_second": 500.0,
            "peak_memory_bytes": 4 * 2**30, "grow_method": "triton"}
    (tmp_path / "step-vgg16-gpu.json").write_text(json.dumps(step))
    rows = [{"key": k, "seconds": t} for k, t in [("scipy", 0.01), ("numba", 0.0006), ("torch", 0.0008),
                                                    ("triton", 0.0002), ("loop", 0.014)]]
    (tmp_path / "grow-gpu.json").write_text(json.dumps({"rows": rows}))
    text = summary(tmp_path, {"step-vgg16": ("ok", 20.0), "grow": ("ok", 9.0)})
    assert "CRF + growing 13.0 % (CRF 5.00 ms, growing 0.20 ms with triton), peak 4.0 GiB" in text
    assert "grow: triton on CUDA 0.20 ms, torch on CUDA 0.80 ms, numba on the CPU 0.60 ms" in text
    step["seconds"].update(graph=0.0012, total=0.0362)        # the graph in place of the 5.2 ms op by op
    step["images_per_second"] = 20 / 0.0362
    (tmp_path / "step-vgg16-gpu.json").write_text(json.dumps(step))
    text = summary(tmp_path, {"step-vgg16": ("ok", 20.0)})
    assert ("step-vgg16: 36.2 ms per step (552 img/s), CRF + growing 3.3 % (one CUDA graph 1.20 ms; op by op CRF "
            "5.00 ms, growing 0.20 ms with triton)") in text
    (tmp_path / "grow-gpu.json").write_text(json.dumps({"rows": [r for r in rows if r["key"] != "triton"]}))
    assert "grow: no triton (the log says why), torch on CUDA 0.80 ms" in summary(tmp_path, {"grow": ("ok", 9.0)})


def test_the_benchmarks_of_the_gpu_check_run_here_and_the_summary_reads_their_records(tmp_path):
    """The same scripts as :func:`parts`, on the CPU at small shapes; their own records, not hand-made ones."""
    small = {"step-vgg16": ["step.py", "--batch", "1", "--size", "65", "--width", "0.125", "--repeats", "1"],
             "grow": ["grow.py", "--batch", "2", "--size", "21", "--repeats", "2"],
             "crf": ["crf.py", "--batch", "2", "--size", "21", "--repeats", "1"],
             "crf-test": ["crf.py", "--test-time", "--images", "2", "--height", "60", "--width", "80", "--repeats", "1"]}
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    for name, (script, *args) in small.items():
        assert script in " ".join(parts(tmp_path)[name][0]), f"{name} runs {script} in the gpu check"
        done = subprocess.run([sys.executable, str(bench / script), *args, "--device", "cpu",
                               "--json", str(tmp_path / f"{name}-gpu.json")], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{script}: {done.stderr[-2000:]}"
    text = summary(tmp_path, {name: ("ok", 1.0) for name in small})
    for line in ("step-vgg16: ", "crf: exact ", "crf: exact_bf16 ", "step-vgg16 with exact_bf16", "grow: ",
                 "crf-test: lattice "):
        assert f"\n{line}" in text, f"no line {line!r} in:\n{text}"


def test_the_summary_counts_the_tests_of_each_test_part(tmp_path):
    (tmp_path / "tests-gpu.xml").write_text('<testsuites><testsuite tests="9" failures="1" errors="0" skipped="2">'
                                            '</testsuite></testsuites>')
    (tmp_path / "tests-resume-gpu.xml").write_text('<testsuite tests="4" failures="0" errors="0" skipped="1"/>')
    text = summary(tmp_path, {"tests": ("failed (exit 1)", 80.0), "tests-resume": ("ok", 60.0)})
    assert "gpu tests: 9 run, 1 failed, 0 errors, 2 skipped" in text
    assert "gpu tests-resume: 4 run, 0 failed, 0 errors, 1 skipped" in text


def test_a_python_without_torch_is_named_in_one_line():
    """make gpu-check runs the machine's python3, which a fresh GPU box may have without torch."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    hide_torch = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = ['gpu_check.py']; "
                  f"runpy.run_path({str(script)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", hide_torch], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"gpu_check: {sys.executable} has no torch; run it with a python that has "
                                   "torch's CUDA build (make gpu-check GPU_PYTHON=/path/to/python)")


def test_the_machine_record_names_the_gpu_and_the_code(monkeypatch):
    import torch

    from dsrg.run.provenance import source_hash

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setenv("DSRG_COMMIT", "abc1234")
    info = gpu_check.machine()
    assert info["gpu"] == "NVIDIA H200" and info["torch"] == torch.__version__ and "cuda" in info
    assert info["code"]["source"] == source_hash() and info["code"]["commit"], "git, or else DSRG_COMMIT"
    import dsrg.run.provenance as provenance

    monkeypatch.setattr(provenance, "_git", lambda: (None, False))           # a copy without git
    assert gpu_check.machine()["code"] | {"source": "-", "version": "-"} == \
        {"commit": "abc1234", "uncommitted": None, "source": "-", "version": "-"}
