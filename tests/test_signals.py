"""SIGTERM and SIGKILL: a terminated step leaves no worker process behind and exits with 143, and a killed one
leaves none either (SIGTERM during training: tests/test_training.py, beside Ctrl-C)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
from conftest import tiny_overrides, torchrun

from dsrg.errors import InputError
from dsrg.profile import load_profile
from dsrg.run import folders as runs
from dsrg.steps import pipeline
from dsrg.run.workers import process_pool

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _dsrg(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dsrg.cli", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``, and theirs (from /proc)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                child = int(stat.parent.name)
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone(pids: set[int], seconds: float = 10) -> set[int]:
    """Those of ``pids`` still alive after waiting up to ``seconds``; killed, so a failing test leaves none."""
    deadline = time.time() + seconds
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    left = {p for p in pids if _alive(p)}
    for p in left:
        os.kill(p, signal.SIGKILL)
    return left


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run with 60 validation images, every step but evaluate done: ``(overrides, eval folder)``."""
    base = tmp_path_factory.mktemp("signals")
    args = tiny_overrides(base / "synth", base / "run", "data.synth=[n_train=16,n_val=60,size=64]",
                          "seg.crf_workers=2", "eval.scales=[1.0,1.5,2.0]")
    cfg = load_profile("demo", args)
    for step in ("cls", "seeds", "seg", "pseudo", "retrain"):
        pipeline.MODULES[step].run(cfg)
    return args, runs.step_dir(cfg, "eval")


def _until_it_predicts(proc: subprocess.Popen, folder: Path) -> set[int]:
    """The CRF workers of ``proc``, an evaluation into ``folder``, once it has written a prediction: its imports
    are done by then."""
    deadline, workers = time.time() + 120, set()
    while (len(workers) < 2 or not any(folder.glob("pred/*.png"))) and proc.poll() is None and time.time() < deadline:
        workers = _children(proc.pid)
        time.sleep(0.02)
    assert len(workers) >= 2, f"no CRF workers seen: {proc.communicate()[0]}"
    return workers


def _evaluate_until_its_workers_run(args, folder: Path) -> tuple[subprocess.Popen, set[int]]:
    proc = _dsrg("evaluate", "--profile", "demo", *args)
    return proc, _until_it_predicts(proc, folder)


def test_a_killed_evaluate_leaves_no_process_behind(trained):
    args, folder = trained
    shutil.rmtree(folder, ignore_errors=True)
    proc, workers = _evaluate_until_its_workers_run(args, folder)
    proc.kill()
    proc.wait(timeout=30)
    assert _gone(workers) == set(), "the CRF workers ended with their parent"


def test_a_terminated_evaluate_exits_143_and_leaves_no_process_behind(trained):
    args, folder = trained
    shutil.rmtree(folder, ignore_errors=True)
    proc, workers = _evaluate_until_its_workers_run(args, folder)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, out
    assert "evaluate: interrupted" in out and "Traceback" not in out
    assert _gone(workers) == set()
    assert not runs.is_done(folder)


def test_a_terminated_experiment_in_python_says_where_it_stands_and_ends_as_sigterm_ends_it(trained):
    args, folder = trained
    shutil.rmtree(folder, ignore_errors=True)
    code = f"from dsrg.reproduce import experiments\nexperiments.run('demo', {list(args)!r})\n"
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    workers = _until_it_predicts(proc, folder)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == -signal.SIGTERM, out
    assert "evaluate: interrupted" in out and "experiments.run(..., resume=True)" in out
    assert "Traceback" not in out
    assert _gone(workers) == set() and not runs.is_done(folder)


def test_sigterm_interrupts_a_block_and_gives_back_the_handler_it_found():
    from dsrg.errors import Terminated, sigterm_interrupts

    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(Terminated):
            with sigterm_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        assert signal.getsignal(signal.SIGTERM) is mine, "a handler of one's own is back after a SIGTERM"
        with pytest.raises(Terminated):
            with sigterm_interrupts():               # the command line's block around experiments.run's
                with sigterm_interrupts():
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
                assert False, "not reached"
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_second_sigterm_is_ignored_while_an_enclosing_block_winds_up():
    from dsrg.errors import Terminated, sigterm_interrupts

    with pytest.raises(Terminated):
        with sigterm_interrupts():
            try:
                with sigterm_interrupts():
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
            finally:
                assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def _python_for(seconds: float) -> None:
    """Python code running for ``seconds``: a SIGTERM raised again waits for a blocking call (one long sleep) to
    return."""
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.01)


def test_a_sigterm_landing_in_a_clean_up_callback_is_raised_in_the_code_after_it():
    """Python drops an error raised in a weakref's callback ("Exception ignored in ..."); the SIGTERM is then
    raised again where the block goes on, and the usual hook is back after the block."""
    from dsrg.errors import Terminated, sigterm_interrupts

    class Thing:
        pass

    hook, after = sys.unraisablehook, []
    with pytest.raises(Terminated):
        with sigterm_interrupts():
            thing = Thing()
            ref = weakref.ref(thing, lambda _: os.kill(os.getpid(), signal.SIGTERM))   # the handler runs in there
            del thing
            after.append(ref() is None)          # reached: the callback's Terminated was dropped
            _python_for(5)
    assert after == [True] and sys.unraisablehook is hook
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_sigterm_dropped_as_the_block_ends_is_raised_by_its_end_not_after_it():
    from dsrg.errors import Terminated, sigterm_interrupts

    class Thing:
        pass

    with pytest.raises(Terminated):
        with sigterm_interrupts():
            thing = Thing()
            ref = weakref.ref(thing, lambda _: os.kill(os.getpid(), signal.SIGTERM))
            del thing                            # dropped, and the block ends at once
    time.sleep(0.2)                              # nothing sent after it: this process would be gone
    assert ref() is None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_sigterm_landing_while_another_dropped_error_is_reported_is_raised_after_it(monkeypatch):
    """The usual hook reports a clean-up callback's own error; a SIGTERM raised in the hook is dropped too."""
    from dsrg.errors import Terminated, sigterm_interrupts

    class Thing:
        pass

    def callback_of_ones_own(_):
        raise ValueError("a clean-up callback's own error")

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: (reported.append(u.exc_value),
                                                          os.kill(os.getpid(), signal.SIGTERM)))
    with pytest.raises(Terminated):
        with sigterm_interrupts():
            thing = Thing()
            ref = weakref.ref(thing, callback_of_ones_own)
            del thing
            _python_for(5)
    assert ref() is None and [str(e) for e in reported] == ["a clean-up callback's own error"]


def test_off_the_main_thread_the_block_runs_as_it_is_and_its_errors_carry_no_other():
    import threading

    from dsrg.errors import sigterm_interrupts

    caught = []

    def work():
        try:
            with sigterm_interrupts():
                raise RuntimeError("mine")
        except RuntimeError as exc:
            caught.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert str(caught[0]) == "mine" and caught[0].__context__ is None


@pytest.fixture
def ctrl_c_interrupts():
    """SIGINT raises KeyboardInterrupt here, as in a Python started from a terminal: one started as a shell's
    background job (`make test &`) inherits SIGINT ignored, and Python then leaves it so."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "interrupted"),
                                                 (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_an_interruption_that_a_librarys_clean_up_turns_into_another_error_is_still_an_interruption(
        monkeypatch, capsys, ctrl_c_interrupts, signum, code, said):
    """OmegaConf's flag_override, interrupted, raises an AttributeError over the KeyboardInterrupt."""
    from dsrg import cli

    def interrupted_inside_a_library(args):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)
        except KeyboardInterrupt:
            raise AttributeError("'NoneType' object has no attribute '_invalidate_flags_cache'") from None

    monkeypatch.setattr(cli, "_pipeline", interrupted_inside_a_library)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert cli.main(["run", "--profile", "smoke"]) == code
    assert capsys.readouterr().err.strip() == f"dsrg: {said}; to continue: dsrg run --profile smoke --resume"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers   # given back
    def interrupted_then_a_bug(args):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)
        except KeyboardInterrupt:
            pass                                    # handled: the command goes on
        return 1 / 0

    monkeypatch.setattr(cli, "_pipeline", interrupted_then_a_bug)
    with pytest.raises(ZeroDivisionError):       # not raised over an interruption: a bug, its traceback stays
        cli.main(["run", "--profile", "smoke"])


def test_a_step_interrupted_before_its_first_checkpoint_is_offered_again_without_resume(monkeypatch, capsys):
    """Its own line said it starts over; the command's last line then offers no --resume to continue from."""
    from dsrg import cli

    def interrupted_with_nothing_kept(args):
        exc = KeyboardInterrupt()
        exc.starts_over = True                       # as dsrg.run.train.fit marks it without a checkpoint
        raise exc

    monkeypatch.setattr(cli, "_pipeline", interrupted_with_nothing_kept)
    assert cli.main(["run", "--profile", "smoke", "--resume"]) == 130
    assert capsys.readouterr().err.strip() == "dsrg: interrupted; to start it again: dsrg run --profile smoke"


def test_under_torchrun_a_bad_setting_is_left_to_process_0_and_said_by_another_only_if_process_0_did_not(
        monkeypatch, capsys):
    """Every process loads the same profile and checks the same files (8 processes printed the same lines 8
    times): the others wait for process 0 to say it, torchrun ending them meanwhile; one still running after the
    wait says it, naming itself. An error of one process's own is said at once."""
    from dsrg import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(cli, "PROCESS_0_WAIT_S", 0.0)          # as if torchrun had not ended it
    for rank, who in (("0", ""), ("1", " (torchrun process 1; process 0 did not say it)")):
        monkeypatch.setenv("RANK", rank)
        assert cli.main(["run", "--profile", "smoke", "seg.iterations=many"]) == 2
        assert capsys.readouterr().err.startswith(f"dsrg: error{who}: seg.iterations: expected an integer"), rank

    def own_trouble(args):
        raise InputError("a file that only this process found damaged")
    monkeypatch.setattr(cli, "_pipeline", own_trouble)
    assert cli.main(["run", "--profile", "smoke"]) == 2
    assert capsys.readouterr().err.strip() == "dsrg: error: a file that only this process found damaged"


def test_under_torchrun_only_process_0_says_the_interruption(monkeypatch, capsys):
    """Ctrl-C and a pre-emption's SIGTERM reach every process, and torchrun ends the others with SIGTERM when one
    fails with its message: the last line comes once, from process 0."""
    from dsrg import cli
    from dsrg.errors import Terminated

    def terminated(args):
        raise Terminated()

    monkeypatch.setattr(cli, "_pipeline", terminated)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, said in (("0", "dsrg: terminated (SIGTERM: the launch was stopped, or another process failed, its "
                             "message above); to continue: the same torchrun command with --resume\n"),
                       ("1", "")):
        monkeypatch.setenv("RANK", rank)
        assert cli.main(["run", "--profile", "smoke"]) == 143
        assert capsys.readouterr().err == said, rank


def test_a_bad_setting_under_torchrun_is_printed_once(tmp_path):
    command = [*torchrun(2, tmp_path), "-m", "dsrg.cli", "run", "--profile", "smoke", f"out={tmp_path / 'run'}", "seg.iterations=many"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    said = done.stdout + done.stderr
    assert done.returncode != 0 and said.count("seg.iterations: expected an integer, got 'many'") == 1, said[-3000:]
    assert "process 0 did not say it" not in said and "dsrg: terminated" not in said     # process 1: ended quietly


def test_under_torchrun_a_process_whose_peer_ended_says_so_in_one_line(monkeypatch, capsys):
    """The process that failed printed its message; the others' collectives fail on the closed connection."""
    from dsrg import cli

    def peer_gone(args):
        raise RuntimeError("[../gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:4242")

    monkeypatch.setattr(cli, "_pipeline", peer_gone)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["run", "--profile", "smoke"]) == 1
    assert capsys.readouterr().err.strip() == ("dsrg: stopped: another process of this torchrun launch ended (its "
                                               "message is above, or torchrun's summary names it)")

    def nccl_peer_gone(args):
        import torch.distributed as dist

        try:
            raise dist.DistBackendError("NCCL communicator was aborted on rank 1")
        except RuntimeError as exc:
            raise ValueError("a library's wrapper") from exc

    monkeypatch.setattr(cli, "_pipeline", nccl_peer_gone)      # by its class, under another error
    assert cli.main(["run", "--profile", "smoke"]) == 1
    assert "another process of this torchrun launch ended" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_pipeline", peer_gone)
    monkeypatch.setenv("WORLD_SIZE", "1")                  # one process: no peer, a bug's traceback stays
    with pytest.raises(RuntimeError):
        cli.main(["run", "--profile", "smoke"])


def test_a_pool_worker_ignores_ctrl_c_and_dies_with_its_parent(tmp_path):
    """The pool's worker, asked for its own pid and then its parent's death: the kernel ends it."""
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
              "import os, time\nfrom dsrg.run.workers import process_pool\n"
              "pool = process_pool(1)\nprint(pool.submit(os.getpid).result(), flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=ENV)
    worker = int(proc.stdout.readline())
    os.kill(worker, signal.SIGINT)
    time.sleep(0.3)
    assert _alive(worker), "Ctrl-C is for the parent"
    proc.kill()
    proc.wait()
    assert _gone({worker}) == set()
    pool = process_pool(1)
    assert pool.submit(os.getppid).result() == os.getpid()
    pool.shutdown()


def test_pool_workers_forked_after_the_parent_ran_threads_do_not_hang():
    """A fork copies the state of the parent's thread pools (OpenMP's, OpenCV's) but not their threads: a worker
    that then computed saliency hung for ever, as the seeds step did after its first images."""
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
              "import numpy as np, torch\nfrom dsrg.run.workers import process_pool\n"
              "from dsrg.data.voc import VOCSegmentation\nfrom dsrg.method.saliency import compute_saliency\n"
              "torch.set_num_threads(2)\n"
              "image = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)\n"
              "for _ in range(3):\n    compute_saliency(image, 'rbd'); torch.randn(500, 500) @ torch.randn(500, 500)\n"
              "with process_pool(2) as pool:\n"
              "    maps = [f.result() for f in [pool.submit(compute_saliency, image, 'rbd') for _ in range(4)]]\n"
              "print('ok', all(np.array_equal(m, compute_saliency(image, 'rbd')) for m in maps))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok True", out.stderr


def _a_large_result_after(seconds: float) -> bytes:
    time.sleep(seconds)
    return bytes(1 << 20)           # more than a pipe holds: sent in parts


def test_a_stopped_pool_has_ended_its_workers_and_its_manager_thread_before_the_interpreter_exits():
    """Stopped with jobs running, as an interruption stops it: Python 3.11's exit hook then wrote to the pipes of a
    manager thread still closing them, and the command printed "OSError: [Errno 9] Bad file descriptor". The
    running jobs end, their results whole; those not started are cancelled."""
    import threading

    from dsrg.run.workers import stop

    before = _children(os.getpid())                                # (other tests' processes may live on)
    pool = process_pool(2)
    jobs = [pool.submit(_a_large_result_after, 0.5) for _ in range(6)]
    while not any(job.running() for job in jobs):
        time.sleep(0.01)
    workers = _children(os.getpid()) - before
    stop(pool)
    assert not [t for t in threading.enumerate() if "ExecutorManager" in type(t).__name__]
    assert all(job.done() for job in jobs) and any(job.cancelled() for job in jobs)
    assert all(len(job.result()) == 1 << 20 for job in jobs if not job.cancelled())
    assert _gone(workers, 5) == set()


def _sigterm_handler_here():
    return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_pool_worker_does_not_keep_the_commands_sigterm_handler():
    """A SIGTERM sent to the whole process group (a batch scheduler's) ends the workers, not raises in them."""
    before = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        with process_pool(1) as pool:
            assert pool.submit(_sigterm_handler_here).result()
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_step_command_waits_for_another_process_running_that_step_and_says_so(trained, tmp_path):
    """`dsrg evaluate` twice at once: the second waits for the first (here: this test holding the step's lock),
    says so, then runs (or finds the output done); neither writes into the other's folder meanwhile."""
    args, folder = trained
    log = tmp_path / "out.txt"
    proc = None
    try:
        with runs.step_lock(load_profile("demo", args), "eval"):
            with open(log, "w") as out:
                proc = subprocess.Popen([sys.executable, "-m", "dsrg.cli", "evaluate", "--profile", "demo", *args],
                                        env=ENV, stdout=out, stderr=subprocess.STDOUT, text=True)
            deadline = time.time() + 60
            while "waiting for it to end" not in log.read_text() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            assert f"evaluate: another process is running this step into {folder}; waiting" in log.read_text()
            time.sleep(0.5)
            assert proc.poll() is None and not runs.is_done(folder), "it waits, writing nothing"
        assert proc.wait(timeout=300) == 0, log.read_text()
        assert runs.is_done(folder)
    finally:
        if proc is not None and proc.poll() is None:      # a failed check leaves no process behind
            proc.kill()
            proc.wait()


def test_under_torchrun_process_0_holds_the_step_lock_for_all_and_the_others_wait_for_it(tmp_path, monkeypatch):
    """Two ranks (threads here, with a barrier of their own) run a step folder that another run holds: neither
    goes in before that run leaves, and the lock is kept until both are through."""
    import threading

    from dsrg.run import dist
    from dsrg.run.dist import World

    cfg = load_profile("smoke", [f"out={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}"])
    gate = threading.Barrier(2, timeout=20)
    monkeypatch.setattr(dist, "barrier", lambda world: gate.wait())
    inside, rank1_may_leave = [], threading.Event()

    def rank(r):
        with runs.step_lock(cfg, "eval", World(r, 2)):
            inside.append(r)
            if r == 1:
                rank1_may_leave.wait(20)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    with runs.step_lock(cfg, "eval"):                      # another run of this step
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert inside == [], "both ranks wait for the other run"
    deadline = time.time() + 20
    while len(inside) < 2 and time.time() < deadline:
        time.sleep(0.02)
    assert sorted(inside) == [0, 1]
    folder = runs.step_dir(cfg, "eval")
    lock = folder.parent / f".{folder.name}.lock"
    time.sleep(0.3)
    assert lock.exists() and threads[0].is_alive(), "process 0 keeps the lock while rank 1 is still in the step"
    rank1_may_leave.set()
    for t in threads:
        t.join(20)
    assert not lock.exists() and not any(t.is_alive() for t in threads)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _book_of_sleeping_notebooks(root: Path, n: int = 3) -> Path:
    """A book whose ``n`` notebooks each sleep 60 s, for scripts/execute_notebooks.py."""
    (root / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text("execute:\n  execute_notebooks: cache\n  timeout: 600\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: notebooks/n0\nchapters:\n"
                                   + "".join(f"  - file: notebooks/n{k}\n" for k in range(1, n)))
    head = ("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\nkernelspec:\n"
            "  display_name: Python 3\n  language: python\n  name: python3\n---\n\n# n\n\n")
    for k in range(n):
        cell = "```{code-cell} ipython3\nimport time\ntime.sleep(60)\n```\n"
        (root / "notebooks" / f"n{k}.md").write_text(head + cell)
    return root


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_notebook_execution_stops_at_once_and_leaves_no_kernel_behind(tmp_path, signum):
    """`make book` stopped by Ctrl-C (SIGINT to the whole group) or SIGTERM to the executor alone: it runs no
    further notebook, and its workers and their kernels end with it."""
    root = _book_of_sleeping_notebooks(tmp_path / "book")
    script = Path(__file__).parents[1] / "scripts" / "execute_notebooks.py"
    (tmp_path / "tmp").mkdir()                       # the system's temp folder, as the command sees it
    proc = subprocess.Popen([sys.executable, str(script), "--root", str(root), "--jobs", "2"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    deadline, kernels = time.time() + 120, set()
    while len(kernels) < 2 and proc.poll() is None and time.time() < deadline:
        kernels = {p for p in _children(proc.pid) if "ipykernel" in _cmdline(p)}
        time.sleep(0.2)
    assert len(kernels) == 2, proc.communicate()[0]
    everyone = _children(proc.pid)
    started = time.time()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)           # what a terminal's Ctrl-C does
    else:
        proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert time.time() - started < 20, "no further notebook was started"
    assert proc.returncode == 130 and "[execute] interrupted after" in out, out
    assert _gone(everyone) == set(), "the workers and their kernels ended with it"
    assert list((tmp_path / "tmp").iterdir()) == [], "nor any of their files (a kernel's connection file)"


def test_the_command_to_continue_is_the_one_the_shell_finds(tmp_path, monkeypatch):
    """`.venv/bin/dsrg run ...` without the venv activated: the command to paste keeps the path it was run by."""
    from dsrg import cli

    entry = tmp_path / ".venv" / "bin" / "dsrg"
    entry.parent.mkdir(parents=True)
    entry.write_text("")
    monkeypatch.setattr(sys, "argv", [str(entry), "run"])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli._program(None) == str(entry)
    monkeypatch.setattr(shutil, "which", lambda name: str(entry))       # the venv activated
    assert cli._program(None) == "dsrg"
    assert cli._program(["run"]) == "dsrg"                               # main(argv) from Python
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "cli.py"), "run"])  # python -m dsrg.cli
    assert cli._program(None) == "dsrg"


class _Slow:
    """Items that take a while: a worker is busy when the signal comes."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        time.sleep(0.05)
        return i


def test_a_sigterm_to_the_process_group_ends_a_loader_worker_quietly_as_ctrl_c_does():
    """`timeout` and Slurm send SIGTERM to every process of the command. torch's handler lets a DataLoader
    worker die of a SIGTERM that its parent did not send, and the parent then fails with "DataLoader worker is
    killed by signal" while it says where the run stands (it said "no checkpoint yet" beside a checkpoint)."""
    from torch.utils.data import DataLoader

    from dsrg.run.train import _loader_worker

    loader = iter(DataLoader(_Slow(), batch_size=2, num_workers=2, worker_init_fn=_loader_worker))
    next(loader), next(loader)                   # a batch from each worker (round robin): both have started
    workers = list(loader._workers)
    subprocess.run(["kill", "-TERM", *(str(w.pid) for w in workers)], check=True)   # not sent by the parent
    for w in workers:
        w.join(timeout=10)
    assert [w.exitcode for w in workers] == [0, 0]
    del loader


class _StuckAfterTheFirst:
    """Item 0 at once; item 1 blocks for ever in native code (a mutex locked twice), where no Python handler
    of a signal ever runs."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i:
            import ctypes

            libc, mutex = ctypes.CDLL(None), ctypes.create_string_buffer(64)
            libc.pthread_mutex_lock(mutex)
            libc.pthread_mutex_lock(mutex)
        return i


def test_a_loader_worker_stuck_in_native_code_still_ends_on_sigterm():
    """Else the parent, ending, would wait for it for ever (multiprocessing joins its children at exit)."""
    from torch.utils.data import DataLoader

    from dsrg.run.train import SIGTERM_GRACE_S, _loader_worker

    loader = iter(DataLoader(_StuckAfterTheFirst(), batch_size=1, num_workers=1, worker_init_fn=_loader_worker))
    next(loader)
    worker, = loader._workers
    time.sleep(0.5)                                                      # into item 1
    subprocess.run(["kill", "-TERM", str(worker.pid)], check=True)
    worker.join(timeout=SIGTERM_GRACE_S + 10)
    assert worker.exitcode == 0
    del loader
