"""The book builds with ``-W`` on the smoke profile, its links resolve, and its pages render in Chromium.

The module-scoped fixture copies the book's sources (``git ls-files``: tracked and untracked-not-ignored
files, so no ``.venv``, ``runs``, ``data``, ``_build`` or ``figures``) into a scratch folder and runs
``jupyter-book build -W -n --keep-going`` on the copy with ``DSRG_NOTEBOOK_PROFILE=smoke``; the notebooks
then write their data, runs and figures inside the copy (``base=".."`` from ``notebooks/``). It takes
one to three minutes on two cores.

Browser checks (headless Chromium; skipped with the reason when no ``chromium``, ``chromium-browser`` or
``google-chrome`` is on PATH or in ``$CHROMIUM``; ``make test`` installs Debian's ``chromium`` where it
is root and apt answers). No WebDriver is needed: for each results page, a copy of the page is written
to a scratch folder with a ``<base href>`` pointing at the page's folder in the build (so its relative
URLs load the built files) and a ``<script>`` that, on ``window.onload`` (fired once every image and
stylesheet has loaded or failed), appends ``<pre id="dsrg-render-check">`` holding a JSON report: the
number of ``<img>``, those not ``complete`` with ``naturalWidth > 0``, the tables in the page's
article, and the local stylesheets that failed. Chromium loads it with ``--headless --dump-dom
--virtual-time-budget`` and every host name unresolvable (``--host-resolver-rules``: the check is
offline and the same with or without a network); the test parses the report from the dumped DOM.
``test_render_check_sees_a_broken_image`` shows on a two-image page that the check tells a broken
image from a good one.

``test_make_lab_serves_markdown_notebooks_as_notebooks`` starts ``make lab`` (JupyterLab with jupytext)
on a free local port with no token, asks its contents API for ``notebooks/table2_ablation.md`` and
checks that it comes as a notebook on the venv's kernel and that Markdown/MyST files open with the
"Jupytext Notebook" viewer by default; then it ends the server's process group.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import execute_notebooks  # noqa: E402  (scripts/execute_notebooks.py: the table of contents' files)
import screenshots  # noqa: E402  (scripts/screenshots.py: the Chromium finder and its flags)

from dsrg.reproduce import sources  # noqa: E402

RESULT_PAGES = screenshots.RESULT_PAGES
PAGES_WITH_TABLES = {"table1_comparison", "table2_ablation", "table3_coco", "table4_thresholds"}
SKIP_DIRS = {".git", ".venv", "runs", "data", "_build", "figures", ".pytest_cache", ".hypothesis", "__pycache__"}
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"


# --------------------------------------------------------------------------- the smoke build

def _source_files() -> list[Path]:
    """The repository's files as git sees them (tracked or new, not ignored); a walk where git is absent."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=60).stdout
        files = [Path(p) for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = [p.relative_to(ROOT) for p in ROOT.rglob("*") if p.is_file()]
    return [p for p in files if not SKIP_DIRS & set(p.parts) and not p.name.endswith(".egg-info")
            and (ROOT / p).is_file()]


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """``(copy, completed process, seconds)`` of ``jupyter-book build -W -n --keep-going`` on a smoke copy."""
    if not JUPYTER_BOOK.exists():
        pytest.skip(f"jupyter-book is not installed beside {sys.executable} (the `book` extra)")
    copy = tmp_path_factory.mktemp("book-src")
    for rel in _source_files():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    env = {**os.environ, "DSRG_NOTEBOOK_PROFILE": "smoke"}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("MPLBACKEND", None)  # the notebooks' figures need the inline backend
    t0 = time.perf_counter()
    try:  # as `make book`: the notebooks two at a time into the execution cache, then the build
        pre = subprocess.run([sys.executable, str(copy / "scripts" / "execute_notebooks.py"), "--root", str(copy),
                              "--jobs", "2", "--threads", "1"], cwd=copy, env=env, capture_output=True, text=True,
                             timeout=1500)
        if pre.returncode != 0:
            pytest.fail(f"scripts/execute_notebooks.py failed (exit {pre.returncode}):\n{_tail(pre.stdout + pre.stderr)}")
        out = execute_notebooks.output_dir(copy, env)    # as make book: _build/smoke for this profile
        proc = subprocess.run([str(JUPYTER_BOOK), "build", "-W", "-n", "--keep-going", "--path-output", str(out),
                               str(copy)], cwd=copy, env=env, capture_output=True, text=True, timeout=1500)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the smoke build ran past {e.timeout} s:\n{_tail((e.stdout or b'').decode(errors='replace'))}")
    proc.pre_executed, proc.out = pre.stdout, out
    return copy, proc, time.perf_counter() - t0


def _tail(text: str, n: int = 8000) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)[-n:]


def _log(proc) -> str:
    warnings = [line for line in _tail(proc.stdout + proc.stderr, 10**7).splitlines()
                if re.search(r"(WARNING|ERROR|CRITICAL)\b", line) and "Kernel is running over TCP" not in line]
    return ("warnings and errors:\n" + "\n".join(warnings[-60:]) + "\n\nlog tail:\n" + _tail(proc.stdout, 6000)
            + "\n" + _tail(proc.stderr, 3000))


@pytest.fixture(scope="module")
def html_dir(smoke_book):
    copy, proc, _ = smoke_book
    out = proc.out / "_build" / "html"
    if not (out / "index.html").exists():
        pytest.fail(f"the smoke build wrote no {out}/index.html (exit {proc.returncode}):\n{_log(proc)}")
    return out


def test_smoke_build_succeeds_with_warnings_as_errors(smoke_book):
    copy, proc, seconds = smoke_book
    assert proc.returncode == 0, f"jupyter-book build -W failed (exit {proc.returncode}, {seconds:.0f} s):\n{_log(proc)}"
    for stem in RESULT_PAGES:  # the notebooks ran in the copy and wrote beside it, not in the repository
        assert (copy / "notebooks" / f"{stem}.md").exists()
    assert (copy / "figures").is_dir() and any((copy / "figures").rglob("*.png")), "the notebooks saved no figure"
    assert (copy / "runs" / "smoke").is_dir(), "the notebooks wrote no runs/smoke in the copy"


def test_figures_readme_names_every_kind_of_file_the_pages_save(smoke_book):
    """figures/ is in a fresh clone (its README is tracked) and says what lands there: every file the smoke
    build saved starts with a prefix of its table; the pages of the smoke profile save into figures/smoke/,
    not over the demo book's (the performance chapter too: the smoke book cuts its sweeps short)."""
    tracked = subprocess.run(["git", "ls-files", "figures"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert "figures/README.md" in tracked or not (ROOT / ".git").exists()
    prefixes = re.findall(r"`([a-z0-9]+_)\*`", (ROOT / "figures" / "README.md").read_text())
    saved = [p for p in (smoke_book[0] / "figures").rglob("*") if p.is_file() and p.name not in ("README.md",
                                                                                                   "sources.json")]
    assert saved and prefixes
    assert not [p.name for p in saved if not p.name.startswith(tuple(prefixes))], (prefixes, saved)
    assert any(p.name.startswith("performance_") for p in saved), saved
    assert all(p.parent == smoke_book[0] / "figures" / "smoke" for p in saved), saved
    for folder in {p.parent for p in saved}:     # each file says what made it
        index = sources.read(folder)
        unlisted = sorted(p.name for p in saved if p.parent == folder and p.name not in index)
        assert not unlisted, f"{folder}: not in {sources.INDEX}: {unlisted}"
        assert all("smoke" in e["source"] or "benchmarks/" in e["source"] or "paper" in e["source"]
                   for e in index.values()), index


def test_a_book_of_another_profile_is_built_apart_from_the_demo_book(smoke_book):
    """The execution cache's key is the notebooks' code, which does not see DSRG_NOTEBOOK_PROFILE: the smoke
    book has its own folder and cache, and the demo book's (_build/html, _build/.jupyter_cache) stay empty."""
    copy, proc, _ = smoke_book
    assert proc.out == copy / "_build" / "smoke"
    assert (proc.out / "_build" / ".jupyter_cache").is_dir() and (proc.out / "_build" / "html").is_dir()
    assert not (copy / "_build" / ".jupyter_cache").exists() and not (copy / "_build" / "html").exists()
    assert execute_notebooks.output_dir(copy, {}) == execute_notebooks.output_dir(
        copy, {"DSRG_NOTEBOOK_PROFILE": "demo"}) == copy
    assert execute_notebooks.output_dir(copy, {"DSRG_NOTEBOOK_PROFILE": "../my profiles/voc.yaml"}) == \
        copy / "_build" / "my_profiles_voc.yaml"


def test_the_build_reuses_the_notebooks_executed_side_by_side(smoke_book):
    """scripts/execute_notebooks.py stores each notebook under the key the build looks up: the build
    executes none of notebooks/ again (it would log "Executing notebook" for them)."""
    copy, proc, _ = smoke_book
    executed = [line for line in proc.pre_executed.splitlines() if line.startswith("[execute] notebooks/")]
    assert len(executed) == len(RESULT_PAGES), proc.pre_executed
    runs = [line for line in _tail(proc.stdout + proc.stderr, 10**7).splitlines() if "Executing notebook" in line]
    assert any("performance" in line for line in runs), runs      # book/performance.md: the build runs it
    assert not [line for line in runs if "notebooks/" in line], runs


def test_every_page_of_the_toc_is_built(smoke_book, html_dir):
    files = execute_notebooks.toc_files(smoke_book[0])
    assert {f"notebooks/{stem}" for stem in RESULT_PAGES} <= set(files), "a results notebook is not in _toc.yml"
    missing = [f for f in files if not (html_dir / f"{Path(f).with_suffix('')}.html").is_file()]
    assert not missing, f"pages of _toc.yml not built: {missing}"
    assert (html_dir / "index.html").is_file()


# --------------------------------------------------------------------------- glue keys (no build)

GLUE_REF = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
GLUE_CALL = re.compile(r"""\bglue\(\s*(f?)(["'])(.+?)\2""")


def _glue_pattern(is_f: str, key: str) -> re.Pattern:
    """The keys a ``glue(key, ...)`` call can write: an f-string's ``{...}`` parts match any key part."""
    escaped = re.escape(key)
    return re.compile(re.sub(r"\\\{.*?\\\}", lambda _: "[A-Za-z0-9_.]+", escaped) if is_f else escaped)


@pytest.mark.parametrize("stem", RESULT_PAGES)
def test_a_results_page_folds_its_code_and_its_parameters(stem):
    """A reader who never opens a fold reads the whole argument: every code cell of a results page folds its
    code (hide-input) or all of itself (the parameters cell, which papermill needs, with hide-cell)."""
    import jupytext

    cells = [c for c in jupytext.read(ROOT / "notebooks" / f"{stem}.md").cells if c.cell_type == "code"]
    assert cells
    for cell in cells:
        tags = set(cell.metadata.get("tags", []))
        assert tags & {"hide-input", "hide-cell", "remove-cell"}, \
            f"{stem}: a code cell shows its code: tags {tags or 'none'}"
        if "parameters" in tags:
            assert "hide-cell" in tags, f"{stem}: the parameters cell is not folded"


@pytest.mark.parametrize("md", [*sorted((ROOT / "notebooks").glob("*.md")), ROOT / "book" / "performance.md"],
                         ids=lambda p: p.stem)
def test_every_figure_has_a_text_for_readers_who_cannot_see_it(md):
    """A cell that draws a figure (``save_figure``) gives it alt text in its metadata (myst-nb's
    ``mystnb.image.alt``); without it the page's <img> says only a hashed file name."""
    import jupytext

    drawing = [c for c in jupytext.read(md).cells if c.cell_type == "code" and "save_figure(fig" in c.source]
    assert drawing
    for cell in drawing:
        alt = cell.metadata.get("mystnb", {}).get("image", {}).get("alt", "")
        assert len(alt.split()) >= 8, f"{md.name}: a figure without alt text:\n{cell.source[:300]}"


@pytest.mark.parametrize("md", [*sorted((ROOT / "notebooks").glob("*.md")), ROOT / "book" / "performance.md"],
                         ids=lambda p: p.stem)
def test_a_cell_with_a_figure_caption_shows_its_figure_and_nothing_else(md):
    """myst-nb makes a captioned figure of every output of such a cell: a table shown beside the figure would get
    the caption and a second target of the same name (a duplicate that fails the build with -W)."""
    import jupytext

    captioned = [c for c in jupytext.read(md).cells if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]
    for cell in captioned:
        assert "display(" not in cell.source and "tables.show(" not in cell.source, \
            f"{md.name}: a captioned figure's cell shows more than its figure:\n{cell.source[:300]}"


@pytest.mark.parametrize("stem", RESULT_PAGES)
def test_a_results_page_has_no_nan_in_its_tables_and_says_what_made_them(html_dir, stem):
    page = (html_dir / "notebooks" / f"{stem}.html").read_text(encoding="utf-8")
    cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", page, flags=re.S)]
    assert cells or stem not in PAGES_WITH_TABLES
    assert not {"nan", "NaN", "<NA>", "None", "NaT"} & set(cells), f"{stem}: a table shows a missing value raw"
    if stem not in ("embedded_dataset",):          # pages of experiments: the provenance line
        text = html.unescape(page)
        assert "dsrg 0.1.0" in text and "remade by: dsrg run --profile smoke" in text, f"{stem}: no provenance"


@pytest.mark.parametrize("page", sorted(execute_notebooks.toc_files(ROOT)), ids=lambda p: p)
def test_every_glue_reference_is_glued_on_its_page(page):
    """A page's ``{glue:text}`key``` must be written by a ``glue("key", ...)`` of its own code (myst-nb resolves
    glue page by page; an unresolved key only warns at build time, which ``-W`` turns into a failed build)."""
    path = next((ROOT / f"{page}{ext}" for ext in (".md", ".ipynb") if (ROOT / f"{page}{ext}").is_file()), None)
    if path is None:
        pytest.skip(f"{page}: no .md source")
    text = path.read_text(encoding="utf-8")
    refs = set(GLUE_REF.findall(text))
    patterns = [_glue_pattern(is_f, key) for is_f, _, key in GLUE_CALL.findall(text)]
    missing = sorted(k for k in refs if not any(p.fullmatch(k) for p in patterns))
    assert not missing, f"{path.relative_to(ROOT)}: glue keys used but never glued: {missing}"


def _resolves(name: str) -> bool:
    """Whether the dotted ``name`` is a module of the package, or something defined in one (a function or
    class imported into another module is documented where it is defined, not there)."""
    import importlib
    import inspect

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        home = ".".join(parts[:i])
        return i == len(parts) or not (inspect.isfunction(obj) or inspect.isclass(obj)) or \
            i < len(parts) - 1 or obj.__module__ == home
    return False


def test_the_book_names_modules_and_functions_that_exist():
    """Each ``automodule`` and ``{py:func}`` (class, data, meth, mod) of the book names a module or a definition
    of the package as it is (a renamed one only warns at build time, which ``-W`` turns into a failed build,
    half an hour later)."""
    pages = [*sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "notebooks").glob("*.md"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    names = {*re.findall(r"automodule:: (dsrg[\w.]*)", text),
             *re.findall(r"\{py:(?:func|class|data|meth|mod)\}`~?(dsrg[\w.]*)`", text)}
    assert len(names) > 50
    assert _resolves("dsrg.run.networks.read_weights") and not _resolves("dsrg.run.networks.read_state_dict")
    assert not _resolves("dsrg.method.crf.CRFParams"), "imported there, defined in crf_params"
    assert not [n for n in names if not _resolves(n)], "named in the book, not in the package"


GLUING_PAGES = [page for page in sorted(execute_notebooks.toc_files(ROOT)) if (ROOT / f"{page}.md").is_file()
                and GLUE_REF.search((ROOT / f"{page}.md").read_text(encoding="utf-8"))]


def test_the_results_pages_and_the_performance_chapter_quote_glued_numbers():
    assert {f"notebooks/{stem}" for stem in RESULT_PAGES} | {"book/performance"} <= set(GLUING_PAGES)


@pytest.mark.parametrize("page", GLUING_PAGES)
def test_a_page_that_quotes_glued_numbers_shows_its_text_with_them_outside_the_book(page):
    """Papermill's output and JupyterLab show ``{glue:text}`` roles as written: a page that has them glues
    with ``dsrg.reproduce.glued.glue`` (which keeps the values) and ends with a cell the book removes that
    shows its own text with them (``page_text`` of its own file)."""
    path = ROOT / f"{page}.md"
    text = path.read_text(encoding="utf-8")
    assert "from myst_nb import glue" not in text and "from dsrg.reproduce.glued import glue" in text, page
    last = text.rstrip().rsplit("```{code-cell}", 1)[1]
    assert ":tags: [remove-cell]" in last and f'page_text("{path.name}")' in last, \
        f"{page}: its last cell is not page_text of its own file, removed from the book:\n{last}"


class _Links(HTMLParser):
    ATTRS = {("img", "src"), ("a", "href"), ("link", "href"), ("script", "src"), ("source", "src")}

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if (tag, name) in self.ATTRS and value is not None:
                self.urls.append((f"<{tag} {name}>", value))


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.alts: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            found = dict(attrs)
            self.alts.append((found.get("src") or "", found.get("alt") or ""))


def test_the_built_figures_say_what_they_show(html_dir):
    """A figure a cell drew has its alt text in the page, not the hashed name myst-nb gives its file."""
    pages = [*(html_dir / "notebooks").glob("*.html"), html_dir / "book" / "performance.html"]
    drawn = []
    for page in pages:
        parser = _Images()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        drawn += [(page.name, alt) for src, alt in parser.alts if re.search(r"[0-9a-f]{64}\.png$", src)]
    assert len(drawn) >= 10
    unsaid = [f"{name}: alt {alt!r}" for name, alt in drawn if len(alt.split()) < 8 or re.search(r"[0-9a-f]{64}", alt)]
    assert not unsaid, "\n".join(unsaid)


def test_every_built_figure_has_a_caption_that_names_its_files_and_no_number_to_mistake_for_the_papers(html_dir):
    """A figure a cell drew is a <figure> whose caption says what it shows, on which data, and the files it was
    saved as; "Fig. 4" means the paper's on every page, so no caption is numbered."""
    pages = [*(html_dir / "notebooks").glob("*.html"), html_dir / "book" / "performance.html"]
    captions = {page.name: [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                            for c in re.findall(r"<figcaption>(.*?)</figcaption>", page.read_text(encoding="utf-8"),
                                                flags=re.S)] for page in pages}
    drawn = {page.name: len(re.findall(r'<img [^>]*src="[^"]*[0-9a-f]{64}\.png"', page.read_text(encoding="utf-8")))
             for page in pages}
    assert sum(drawn.values()) >= 10
    for name, n in drawn.items():
        assert len(captions[name]) == n, f"{name}: {n} figures drawn, {len(captions[name])} captioned"
        for text in captions[name]:
            assert re.search(r"Files: figures/smoke/\S+\.png, figures/smoke/\S+\.svg \(their metadata", text), \
                (name, text)
            assert not re.match(r"(Fig\.|Figure) ?\d", text), (name, text)


def _local_target(page: Path, html_root: Path, url: str) -> Path | None:
    """The file a local URL of ``page`` points to; None for an external or fragment-only URL."""
    parts = urlsplit(url.strip())
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = unquote(parts.path)
    target = html_root / path.lstrip("/") if path.startswith("/") else page.parent / path
    return target / "index.html" if target.is_dir() else target


def test_local_links_and_images_resolve(html_dir):
    pages = [p for p in html_dir.rglob("*.html") if p.relative_to(html_dir).parts[0] not in {"_static", "_sources"}]
    assert len(pages) > 5
    broken, checked = [], 0
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for what, url in parser.urls:
            target = _local_target(page, html_dir, url)
            if target is None:
                continue
            checked += 1
            if not target.is_file():
                broken.append(f"{page.relative_to(html_dir)}: {what} {url}")
    assert checked > 50
    assert not broken, f"{len(broken)} local links point to no file:\n" + "\n".join(sorted(set(broken))[:80])


# --------------------------------------------------------------------------- headless Chromium

REPORT_SCRIPT = r"""<script>
window.addEventListener("load", function () {
  // MathJax typesets after the load event: wait for it when it loaded (offline it must come from the book)
  var mj = window.MathJax;
  var typeset = (mj && mj.startup && mj.startup.promise) ? mj.startup.promise : Promise.resolve();
  typeset.then(sendReport, sendReport);
});
function sendReport() {
  var imgs = Array.prototype.slice.call(document.images);
  var links = Array.prototype.slice.call(document.querySelectorAll('link[rel~="stylesheet"]'));
  var report = {
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                .map(function (i) { return i.getAttribute("src"); }),
    tables: document.querySelectorAll("article table, main table").length,
    failed_css: links.filter(function (l) { return l.href.indexOf("file:") === 0 && !l.sheet; })
                     .map(function (l) { return l.getAttribute("href"); }),
    title: document.title,
    equations: document.querySelectorAll("mjx-container").length,
    raw_math: (document.body.innerText.match(/\\\(|\\\[|\$\$/g) || []).length
  };
  var pre = document.createElement("pre");
  pre.id = "dsrg-render-check";
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
}
</script>"""


@pytest.fixture(scope="module")
def chromium():
    path = screenshots.find_chromium()
    if path is None:
        pytest.skip("no Chromium on PATH (chromium, chromium-browser, google-chrome) nor in $CHROMIUM: "
                    "`make chromium` as root installs Debian's, or `apt-get install chromium`")
    return path


def render_report(chromium: str, page: Path, scratch: Path) -> dict:
    """Load ``page`` in headless Chromium and return the report of REPORT_SCRIPT (see the module docstring)."""
    text = page.read_text(encoding="utf-8")
    base = f'<base href="{html.escape(page.parent.resolve().as_uri())}/">'
    text, n = re.subn(r"<head\b[^>]*>", lambda m: m.group(0) + base, text, count=1, flags=re.I)
    assert n == 1, f"{page}: no <head>"
    text = re.sub(r"</body\s*>", lambda _: REPORT_SCRIPT + "</body>", text, count=1, flags=re.I)   # no escapes
    probe = scratch / f"render-check-{page.stem}.html"
    probe.write_text(text, encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="dsrg-chromium-") as profile:
        proc = subprocess.run([*screenshots.chromium_command(chromium, profile), "--window-size=1280,2000",
                               "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="dsrg-render-check"[^>]*>(.*?)</pre>', proc.stdout, flags=re.S)
    assert found, (f"{page.name}: Chromium gave no report (exit {proc.returncode}; did the load event fire?)\n"
                   f"{proc.stderr[-3000:]}")
    return json.loads(html.unescape(found.group(1)))


# A 2 x 1 PNG, red and green.
_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAAD0lEQVR4nGP4z8DA8J8BAAf/Af8Bf4mnAAAAAElFTkSuQmCC")


def test_render_check_sees_a_broken_image(chromium, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "good.png").write_bytes(_PNG)
    page = site / "page.html"
    page.write_text('<!DOCTYPE html><html><head><title>t</title></head><body><article>'
                    '<img src="good.png"><img src="missing.png"><table><tr><td>1</td></tr></table>'
                    "</article></body></html>")
    report = render_report(chromium, page, tmp_path)
    assert report["images"] == 2 and report["broken"] == ["missing.png"] and report["tables"] == 1, report


@pytest.mark.parametrize("stem", RESULT_PAGES)
def test_results_page_renders_in_chromium(chromium, html_dir, tmp_path, stem):
    page = html_dir / "notebooks" / f"{stem}.html"
    assert page.is_file(), f"{page} was not built"
    report = render_report(chromium, page, tmp_path)
    assert report["images"] >= 1, f"{stem}: no image on the page: {report}"
    assert not report["broken"], f"{stem}: images that did not load: {report['broken']}"
    assert not report["failed_css"], f"{stem}: stylesheets that did not load: {report['failed_css']}"
    if stem in PAGES_WITH_TABLES:
        assert report["tables"] >= 1, f"{stem}: no table in the page: {report}"


@pytest.mark.parametrize("page", ["book/method", "notebooks/table2_ablation"])
def test_equations_render_with_no_network(chromium, html_dir, tmp_path, page):
    """Chromium runs with every host unresolvable (scripts/screenshots.py): MathJax must come from the book."""
    report = render_report(chromium, html_dir / f"{page}.html", tmp_path)
    assert report["equations"] >= 1, f"{page}: no typeset equation: {report}"
    assert report["raw_math"] == 0, f"{page}: raw TeX left in the page text: {report}"


def test_screenshots_script_takes_a_png(chromium, html_dir, tmp_path):
    script = ROOT / "scripts" / "screenshots.py"
    proc = subprocess.run([sys.executable, str(script), "--html", str(html_dir), "--out", str(tmp_path),
                           "--chromium", chromium, "--height", "800", "table2_ablation"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    png = tmp_path / "notebooks__table2_ablation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# --------------------------------------------------------------------------- make lab

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def test_make_lab_serves_markdown_notebooks_as_notebooks(tmp_path):
    venv_bin = ROOT / ".venv" / "bin"
    if not (venv_bin / "jupyter-lab").exists():
        pytest.skip("jupyterlab is not installed in .venv (the `book` extra)")
    if shutil.which("make") is None:
        pytest.skip("no make")
    port = _free_port()
    lab_args = (f"LAB_ARGS=--no-browser --port={port} --ip=127.0.0.1 --ServerApp.port_retries=0 "
                "--IdentityProvider.token= --ServerApp.password=")
    log = (tmp_path / "lab.log").open("w")
    # -o: take the venv as made; the server and make share a new process group, ended below.
    proc = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed-stamp", "lab", lab_args],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, meta = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                meta = _get_json(f"{base}/api/contents/notebooks/table2_ablation.md?content=0", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        assert meta is not None, f"JupyterLab did not answer on {base}:\n{(tmp_path / 'lab.log').read_text()[-4000:]}"
        assert meta["type"] == "notebook", meta
        nb = _get_json(f"{base}/api/contents/notebooks/table2_ablation.md")["content"]
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
        spec = _get_json(f"{base}/api/kernelspecs")["kernelspecs"]["python3"]["spec"]
        assert Path(spec["argv"][0]).parent.resolve() == venv_bin.resolve(), spec["argv"]
        docmanager = _get_json(f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
        viewers = {**docmanager["schema"]["properties"]["defaultViewers"].get("default", {}),
                   **docmanager["settings"].get("defaultViewers", {})}
        assert viewers.get("markdown") == "Jupytext Notebook" and viewers.get("myst") == "Jupytext Notebook", viewers
    finally:
        _end_group(proc)
        log.close()


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group that ``proc`` leads (make and the server it started); SIGKILL after 20 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
