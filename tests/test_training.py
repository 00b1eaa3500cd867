"""Long work: resuming an interrupted step, torchrun data parallel, determinism, the lr schedules."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides, torchrun

from dsrg.data.synthetic import SynthConfig, write_dataset
from dsrg.profile import load_profile
from dsrg.run import folders as runs
from dsrg.run.dist import World
from dsrg.run.train import batch_keys, lr_factor
from dsrg.steps import seeds, train_cls

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONFAULTHANDLER": "1"}


def _interruptible() -> None:
    """Ctrl-C as a terminal delivers it: a command started from a background job (``cmd &``, nohup, some
    CI runners) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _dsrg(*args: str, env=ENV) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dsrg.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_interruptible)


def _weights(folder: Path) -> dict:
    return torch.load(folder / "model.pt", weights_only=False)["state_dict"]


def test_the_step_schedule_is_the_papers_and_poly_is_deeplabs():
    paper = load_profile("voc-vgg16").seg
    assert [lr_factor(paper, it) for it in (0, 1999, 2000, 4000, 7999)] == pytest.approx([1, 1, 0.1, 0.01, 0.001])
    retrain = load_profile("voc-vgg16").retrain
    assert lr_factor(retrain, 0) == 1 and lr_factor(retrain, 10000) == pytest.approx(0.5 ** 0.9)


def test_batches_split_one_global_batch_across_processes():
    one = list(batch_keys(10, 4, seed=3, start=0, stop=5, world=World(0, 1)))
    two = [list(batch_keys(10, 4, seed=3, start=0, stop=5, world=World(r, 2))) for r in range(2)]
    for it in range(5):
        assert sorted(two[0][it] + two[1][it]) == sorted(one[it])
    assert list(batch_keys(10, 4, seed=3, start=2, stop=5, world=World(0, 1))) == one[2:], "resuming draws the same"
    epoch0 = [i for it in range(2) for i, _ in one[it]]
    assert len(set(epoch0)) == 8, "an epoch draws without replacement"


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _kill_and_resume(tmp_path: Path, *extra: str, twice: bool = False) -> tuple[dict, ...]:
    """Kill ``dsrg train-cls`` after its first checkpoint, resume it, and train the same step uninterrupted:
    the two final state dicts (resumed, uninterrupted), and with ``twice`` a second uninterrupted one (another
    process: the noise floor). Checks the log has each iteration once."""
    root = tmp_path / "synth"
    write_dataset(root, SynthConfig(n_train=16, n_val=4, size=64), progress=False)
    args = tiny_overrides(root, tmp_path / "killed", "cls.iterations=24", *extra)
    proc = _dsrg("train-cls", "--profile", "demo", *args)
    cfg = load_profile("demo", args)
    folder = runs.step_dir(cfg, "cls")
    deadline = time.time() + 120
    while not (folder / "ckpt.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / "ckpt.pt").exists() and not runs.is_done(folder), "killed before the end, after a checkpoint"
    killed_at = json.loads((folder / "log.jsonl").read_text().splitlines()[-1])["it"]
    assert killed_at < 23

    uninterrupted = ["full", "again"] if twice else ["full"]
    procs = [_dsrg("train-cls", "--profile", "demo", "--resume", *args)] + [     # side by side: each on its own
        _dsrg("train-cls", "--profile", "demo", *tiny_overrides(root, tmp_path / name, "cls.iterations=24", *extra))
        for name in uninterrupted]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stdout.read()

    log = [json.loads(x)["it"] for x in (folder / "log.jsonl").read_text().splitlines()]
    assert log == list(range(24)), "the log has each iteration once"
    info = runs.done_info(folder)
    since = info["resumed_at_iteration"]                                 # its wall time: since the resume
    assert 0 < since <= killed_at + 1 and f"from its resume at iteration {since}; " in runs.step_state(folder)
    assert info["wall_s_total"] > info["wall_s"] and runs.wall_time(folder) == info["wall_s_total"], \
        "the earlier session's training up to its checkpoint counts in the step's whole wall time"
    assert info["sessions"] == 2, "the killed session and the resumed one"
    out = (_weights(folder), *(_weights(tmp_path / name / folder.name) for name in uninterrupted))
    assert all(w.keys() == out[0].keys() for w in out)
    return out


def test_an_interrupted_step_resumes_to_the_same_weights(tmp_path):
    a, b = _kill_and_resume(tmp_path)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.gpu
@CUDA
def test_an_interrupted_cuda_step_resumes_to_the_uninterrupted_weights(tmp_path):
    """On CUDA, kernels may add in another order from run to run: the resumed weights are held to the noise
    floor measured beside them, the largest difference between two uninterrupted runs in two processes (ten
    times it, and at least 1e-6), not to a bound chosen beforehand. Prints both (``pytest -rA``), and where the
    logged losses part (the step is chaotic: tests/test_resume_state.py)."""
    a, b, again = _kill_and_resume(tmp_path, "device=cuda", "amp=false", twice=True)

    def worst(x: dict, y: dict) -> dict[str, float]:
        return {k: (x[k].double() - y[k].double()).abs().max().item() for k in x if x[k].is_floating_point()}

    floor, resumed = max(worst(b, again).values()), worst(a, b)
    largest = sorted(resumed.items(), key=lambda kv: -kv[1])[:5]
    print(f"two uninterrupted CUDA runs differ by at most {floor:.2e}; resumed against uninterrupted "
          f"{largest[0][1]:.2e} ({largest[0][0]}); {_first_logged_difference(tmp_path)}")
    assert largest[0][1] <= max(10 * floor, 1e-6), f"noise floor {floor:.2e}; largest differences {largest}"


@pytest.mark.gpu
@CUDA
def test_with_deterministic_kernels_an_interrupted_cuda_step_resumes_to_the_same_weights(tmp_path):
    """``deterministic=true``: every kernel this step runs deterministic, so a resumed run is held to the
    uninterrupted one exactly, as on the CPU. The step is chaotic: one rounding that differs early in the
    network shows (tests/test_resume_state.py)."""
    a, b = _kill_and_resume(tmp_path, "device=cuda", "amp=false", "deterministic=true")
    differ = {k: (a[k].double() - b[k].double()).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not differ, f"{_first_logged_difference(tmp_path)}; largest differences " \
                       f"{sorted(differ.items(), key=lambda kv: -kv[1])[:5]}"


def test_deterministic_true_turns_on_deterministic_kernels_for_the_step(tmp_path):
    probe = ("import torch; from dsrg.profile import load_profile; from dsrg.run.context import setup; "
             "import os; setup(load_profile('smoke', ['deterministic=true', 'device=cpu'])); "
             "print(torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, "
             "torch.backends.cudnn.benchmark, os.environ.get('CUBLAS_WORKSPACE_CONFIG'))")
    env = {k: v for k, v in ENV.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False", ":4096:8"], out.stderr
    out = subprocess.run([sys.executable, "-c", probe.replace("true", "false")], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split()[:2] == ["False", "False"]


def _first_logged_difference(tmp_path: Path) -> str:
    """Where the resumed run's log (losses to 6 digits) first departs from the uninterrupted run's: at the
    iteration it resumed from, a multiple of ckpt_every (what it read there differs), or later (the
    arithmetic differs)."""
    logs = [[json.loads(x) for x in next((tmp_path / name).rglob("log.jsonl")).read_text().splitlines()]
            for name in ("killed", "full")]
    for one, other in zip(*logs):
        if one["loss"] != other["loss"]:
            return f"the logged losses first differ at iteration {one['it']} ({one['loss']} against {other['loss']})"
    return "the logged losses are equal at every iteration"


def _torchrun_command(tmp_path: Path, *args: str) -> list[str]:
    """``dsrg *args`` in two processes under torchrun."""
    return [*torchrun(2, tmp_path), "-m", "dsrg.cli", *args]


def _torchrun(tmp_path: Path, *args: str) -> None:
    """``dsrg *args`` in two processes under torchrun, to its end."""
    ddp = subprocess.run(_torchrun_command(tmp_path, *args), env=ENV, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]


def _kill_with_children(pid: int) -> None:
    """SIGKILL ``pid`` and its children (torchrun starts its workers in sessions of their own)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append(int(stat.parent.name))
    for p in [pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _seeded(tmp_path: Path, *extra: str):
    """Train the tiny classifier and seeds into ``tmp_path / "one"``; returns the profile."""
    cfg = load_profile("demo", tiny_overrides(tmp_path / "synth", tmp_path / "one", *extra))
    train_cls.run(cfg)
    seeds.run(cfg)
    return cfg


def _two_processes_against_one(tmp_path: Path, *extra: str) -> None:
    """``dsrg train-seg`` under torchrun with two processes logs the losses of one process on the same
    global batch (one epoch of 4 iterations, so the supervision counts are reduced once too)."""
    root = tmp_path / "synth"
    extra = ("cls.batch_norm=false", "seg.batch_norm=false", "seg.dropout=0", "seg.iterations=4", *extra)
    cfg = _seeded(tmp_path, *extra)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    args = ["train-seg", "--profile", "demo", *tiny_overrides(root, tmp_path / "two", *extra)]
    _torchrun(tmp_path, *args)
    single = _dsrg(*args[:3], *tiny_overrides(root, tmp_path / "one", *extra))
    assert single.wait(timeout=300) == 0, single.stdout.read()
    name = runs.step_dir(cfg, "seg").name
    one = [json.loads(x) for x in (tmp_path / "one" / name / "log.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / name / "log.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 4
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3, abs=1e-5), (a, b)
    epochs = [[row.split(",")[0] for row in (tmp_path / d / name / "supervision.csv").read_text().splitlines()]
              for d in ("one", "two")]
    assert epochs[0] == epochs[1] == ["epoch", "0", "1"], "the epoch's supervision counts were reduced and written"


def test_two_cpu_processes_under_torchrun_give_the_one_process_loss(tmp_path):
    _two_processes_against_one(tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_under_torchrun_give_the_one_gpu_loss(tmp_path):
    """NCCL reduces CUDA tensors only: the loop's loss means and the supervision counts go through it."""
    # seeds.saliency=rbd: GPU images often lack opencv's contrib modules (cv2.saliency)
    _two_processes_against_one(tmp_path, "device=cuda", "amp=false", "seeds.saliency=rbd")


def test_a_step_killed_under_torchrun_resumes_to_the_uninterrupted_weights_and_records(tmp_path):
    """The checkpoint holds the epoch's supervision counts so far summed over the processes (each process
    has counted its own images), and each process's random state (each draws its own dropout masks), so
    a resumed run ends with the uninterrupted run's weights and Fig. 4 records."""
    extra = ("cls.batch_norm=false", "seg.batch_norm=false", "seg.dropout=0.5", "seg.iterations=8")
    cfg = _seeded(tmp_path, *extra)
    for copy in ("killed", "full"):
        shutil.copytree(tmp_path / "one", tmp_path / copy)
    killed = ["train-seg", "--profile", "demo", *tiny_overrides(tmp_path / "synth", tmp_path / "killed", *extra)]
    folder = tmp_path / "killed" / runs.step_dir(cfg, "seg").name
    proc = subprocess.Popen(_torchrun_command(tmp_path, *killed), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (folder / "ckpt.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    _kill_with_children(proc.pid)
    proc.wait()
    assert (folder / "ckpt.pt").exists() and not runs.is_done(folder), "killed after a checkpoint, mid-epoch"
    assert len(torch.load(folder / "ckpt.pt", weights_only=False)["rng"]) == 2, "both processes' random states"
    _torchrun(tmp_path, *killed, "--resume")
    _torchrun(tmp_path, "train-seg", "--profile", "demo", *tiny_overrides(tmp_path / "synth", tmp_path / "full", *extra))
    full = tmp_path / "full" / folder.name
    assert (folder / "supervision.csv").read_text() == (full / "supervision.csv").read_text()
    a, b = _weights(folder), _weights(full)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _fail_with_stacks(proc: subprocess.Popen, why: str) -> None:
    """Fail the test with ``why`` and where the command's threads stood: SIGABRT makes its faulthandler
    (PYTHONFAULTHANDLER=1 in ENV) print every thread's stack."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGABRT)
        time.sleep(5)                       # the stacks are printed; the core dump that follows is not waited for
        _kill_with_children(proc.pid)
    out = proc.communicate(timeout=60)[0]
    pytest.fail(f"{why}; its output and stacks:\n{out[-6000:]}")


def test_ctrl_c_before_the_first_checkpoint_offers_the_command_again_without_resume(tmp_path):
    root = tmp_path / "synth"
    write_dataset(root, SynthConfig(n_train=16, n_val=4, size=64), progress=False)
    args = tiny_overrides(root, tmp_path / "run", "cls.iterations=100000", "ckpt_every=100000")
    folder = runs.step_dir(load_profile("demo", args), "cls")
    proc = _dsrg("train-cls", "--profile", "demo", *args)
    deadline = time.time() + 120
    while not ((folder / "log.jsonl").is_file() and (folder / "log.jsonl").read_text().count("\n") >= 2) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or time.time() >= deadline:
        _fail_with_stacks(proc, f"train-cls logged no 2 iterations within 120 s (exit status {proc.poll()})")
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130 and "no checkpoint yet (one every ckpt_every=100000 iterations): it starts over" in out
    again = shlex.join(["dsrg", "train-cls", "--profile", "demo", *args])
    assert out.rstrip().endswith(f"dsrg: interrupted; to start it again: {again}"), out[-600:]


@pytest.mark.parametrize("sent, status, last_words", [(signal.SIGINT, 130, "dsrg: interrupted"),
                                                      (signal.SIGTERM, 143, "dsrg: terminated (SIGTERM)")])
def test_ctrl_c_and_sigterm_say_where_the_run_stands_and_exit_without_a_traceback(tmp_path, sent, status,
                                                                                   last_words):
    root = tmp_path / "synth"
    write_dataset(root, SynthConfig(n_train=16, n_val=4, size=64), progress=False)
    args = tiny_overrides(root, tmp_path / "run", "cls.iterations=100000", "ckpt_every=2", "progress=true")
    folder = runs.step_dir(load_profile("demo", args), "cls")
    proc = _dsrg("train-cls", "--profile", "demo", *args)
    deadline = time.time() + 120
    while not (folder / "ckpt.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if not (folder / "ckpt.pt").exists():
        _fail_with_stacks(proc, f"train-cls wrote no checkpoint within 120 s (exit status {proc.poll()})")
    proc.send_signal(sent)
    try:
        out = proc.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        _fail_with_stacks(proc, f"train-cls did not end within 120 s of {signal.Signals(sent).name}")
    assert proc.returncode == status, out
    assert "train-cls: interrupted with" in out and "--resume` continues from its checkpoint at" in out
    done, saved = map(int, re.search(r"interrupted with (\d+) of \d+ iterations done; .* checkpoint at iteration "
                                     r"(\d+)", out).groups())
    assert done >= saved, "the iterations of its checkpoint are done, and maybe some after it"
    assert (f"({done - saved} iteration" in out) == (done > saved), "those after it are said to be done again"
    assert last_words in out and "Traceback" not in out
    assert "%|" in out and "%|" not in out.split("interrupted with")[1]    # no bar drawn over it
    again = shlex.join(["dsrg", "train-cls", "--profile", "demo", *args, "--resume"])
    assert out.rstrip().endswith(f"{last_words}; to continue: {again}"), out[-600:]
    assert (folder / "ckpt.pt").is_file() and not runs.is_done(folder)
