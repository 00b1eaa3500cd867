"""Execute the book's notebooks into Jupyter Book's execution cache, several at a time.

    python scripts/execute_notebooks.py [--jobs 2] [--threads N] [--root .] [--dry-run]

``make book`` runs this before ``jupyter-book build``, which then finds the notebooks of ``notebooks/``
already executed (a cache hit: their code cells and kernel are unchanged) and only renders them. The
chapters in ``book/`` that run code are left to ``jupyter-book build``, one at a time after this:
``book/performance.md`` times the benchmarks and must have the machine to itself.

Each notebook is read as myst-nb reads it during the build (so the cache key matches), executed in its
own folder by its own kernel (``--jobs`` at once, each kernel's torch limited to ``--threads`` threads,
by default the cores shared out), and stored in ``_build/.jupyter_cache`` as myst-nb stores it. On two
cores two one-thread kernels train about 1.2x faster together than one two-thread kernel alone.
Notebooks that share an experiment (Table 2's rows in Table 1, Fig. 3 and Fig. 4) do not train it twice:
the pipeline locks each step's run folder (:func:`dsrg.run.folders.step_lock`), so the second waits and reuses.
The longest notebooks go first (``ORDER``: measured on the demo); a notebook that fails is reported with
its traceback and the script exits non-zero after the others finish.

The notebooks read their profile from ``DSRG_NOTEBOOK_PROFILE`` (and ``DSRG_NOTEBOOK_COCO_PROFILE``), which
the cache key cannot see. So a book of another profile than the demo is built in a folder of its own,
``_build/<profile>/`` (:func:`output_dir`; ``--output-dir`` prints it for ``jupyter-book build --path-output``),
with its own execution cache: a smoke build never shows up in the demo book, nor the other way round.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import as_completed
from pathlib import Path

import nbformat
import yaml

# Started first, longest first: COCO shares nothing with the rest; Table 1 and Table 2 train the shared
# VOC-like runs; the others mostly reuse them.
ORDER = ["table3_coco", "table1_comparison", "table2_ablation", "table4_thresholds", "fig4_supervision",
         "fig3_qualitative", "embedded_dataset"]
NOTEBOOK_DIR = "notebooks"
MD_READER = {"type": "plugin", "name": "myst_nb_md"}  # myst-nb's reader of MyST Markdown notebooks
PROFILE_VARIABLES = ("DSRG_NOTEBOOK_PROFILE", "DSRG_NOTEBOOK_COCO_PROFILE")


def output_dir(root: Path, env=os.environ) -> Path:
    """The folder ``jupyter-book build --path-output`` gets: ``root`` for the demo profile (the book of
    ``make book``), else ``root/_build/<profile>`` (the profiles in the environment, made file-name safe)."""
    chosen = [env[v] for v in PROFILE_VARIABLES if env.get(v)]
    if chosen in ([], ["demo"]):
        return root
    return root / "_build" / "+".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", c).strip("_.") or "_" for c in chosen)


def toc_files(root: Path) -> list[str]:
    """Every ``file:`` of ``_toc.yml`` (the root first), in order, without suffix."""
    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    yield node[key]
            for value in node.values():
                if isinstance(value, (list, dict)):
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
    return list(dict.fromkeys(walk(yaml.safe_load((root / "_toc.yml").read_text()))))


def book_notebooks(root: Path) -> list[Path]:
    """The MyST notebooks of ``notebooks/`` that the table of contents lists, in :data:`ORDER`."""
    from myst_nb.core.read import is_myst_markdown_notebook

    paths = [root / f"{f}.md" for f in toc_files(root) if Path(f).parts[0] == NOTEBOOK_DIR]
    paths = [p for p in paths if p.is_file() and is_myst_markdown_notebook(p.read_text())]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(paths, key=lambda p: rank.get(p.stem, len(ORDER)))


def read_notebook(path: Path, config: dict) -> nbformat.NotebookNode:
    """``path`` as myst-nb reads it in the build (same cells, so the same cache key)."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    extensions = set(config.get("parse", {}).get("myst_enable_extensions", []))
    return read_myst_markdown_notebook(path.read_text(), config=MdParserConfig(enable_extensions=extensions),
                                      add_source_map=True, path=str(path))


def execute(path: str, notebook: str, timeout: int | None, allow_errors: bool) -> tuple[str, float, str | None]:
    """Run in a worker process: execute the notebook (JSON text) in its folder; return it with the
    seconds taken and the traceback of a failure (None on success)."""
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.reads(notebook, as_version=4)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout, allow_errors=allow_errors,
                                 meta_override=True)
    return nbformat.writes(nb), result.time, result.exc_string if result.err is not None else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the book's folder")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default 2)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads per kernel (OMP_NUM_THREADS); 0: the cores shared out among the jobs")
    ap.add_argument("--dry-run", action="store_true", help="list what would run and what the cache holds")
    ap.add_argument("--output-dir", action="store_true",
                    help="print the build folder of the profile in the environment (see above) and exit")
    a = ap.parse_args(argv)
    if a.jobs < 1 or a.threads < 0:
        ap.error("--jobs must be at least 1 and --threads at least 0")
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    root = a.root.resolve()
    out = output_dir(root)
    if a.output_dir:
        print(out)
        return 0
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    execute_cfg = config.get("execute", {})
    if execute_cfg.get("execute_notebooks") != "cache":
        print("execute_notebooks is not 'cache' in _config.yml: nothing to pre-execute")
        return 0
    cache = get_cache(str(out / "_build" / ".jupyter_cache"))
    todo = []
    for path in book_notebooks(root):
        nb = read_notebook(path, config)
        try:
            cache.match_cache_notebook(nb)
            print(f"[execute] {path.relative_to(root)}: cached")
        except KeyError:
            todo.append((path, nb))
    if a.dry_run or not todo:
        print(f"[execute] {len(todo)} to execute" + (": " + ", ".join(p.name for p, _ in todo) if todo else ""))
        return 0

    # the cores shared out among --jobs, however many notebooks are left: a CPU run's numbers depend on the
    # count, so every page's run (and make spread's, SPREAD_THREADS) trains with the same one
    threads = a.threads or max(1, (os.cpu_count() or 1) // a.jobs)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)  # the kernels inherit it
    timeout = execute_cfg.get("timeout")
    allow_errors = bool(execute_cfg.get("allow_errors", False))
    print(f"[execute] {len(todo)} notebooks, {min(a.jobs, len(todo))} at a time, {threads} thread(s) each",
          flush=True)
    failed = []
    start = time.perf_counter()
    from dsrg.run.workers import process_pool

    signal.signal(signal.SIGTERM, _interrupt)      # as Ctrl-C: make, a CI's timeout or `kill` stop the build
    # the workers' and kernels' temporary files (a kernel's connection file, the workers' own) in a folder of
    # this run, removed at its end: an interrupted kernel leaves none of its files in the system's temp folder
    scratch = tempfile.mkdtemp(prefix="dsrg-execute-")
    before = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = scratch
    pool = process_pool(min(a.jobs, len(todo)))    # its workers, and so their kernels, end with this process
    try:
        futures = {pool.submit(execute, str(path), nbformat.writes(nb), timeout, allow_errors): path
                   for path, nb in todo}
        for future in as_completed(futures):
            path = futures[future]
            name = path.relative_to(root)
            try:
                text, seconds, error = future.result()
            except Exception as exc:  # the worker itself died
                text, seconds, error = None, 0.0, f"{type(exc).__name__}: {exc}"
            if error is not None:
                failed.append(name)
                print(f"[execute] {name}: FAILED\n{error}", file=sys.stderr, flush=True)
                continue
            record = cache.add_nb_to_project(str(path), read_data=MD_READER)
            cache.cache_notebook_bundle(CacheBundleIn(nbformat.reads(text, as_version=4), record.uri,
                                                      data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            print(f"[execute] {name}: {seconds:.0f} s (at {time.perf_counter() - start:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print(f"[execute] interrupted after {time.perf_counter() - start:.0f} s: the notebooks executed so far are "
              f"cached, and `make book` goes on from them", file=sys.stderr, flush=True)
        _end_descendants()   # first: a kernel still starting up writes its connection file into the scratch folder
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(130)        # not the pool's shutdown, which would wait for the notebooks it runs: they end with us
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        tempfile.tempdir = before[1]
        if before[0] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before[0]
    pool.shutdown()
    if failed:
        print(f"[execute] failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


def _descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, and theirs (Linux's /proc; none elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _ended(pid: int) -> bool:
    """Whether ``pid`` has ended: reaped here (a child of this process), gone, or a zombie."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return True


def _end_descendants(timeout: float = 10.0) -> None:
    """SIGKILL the processes this one started (the pool's workers and their kernels) and wait for them to end."""
    pids = _descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if not _ended(pid)]
        time.sleep(0.05)


def _interrupt(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
