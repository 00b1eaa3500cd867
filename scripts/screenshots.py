#!/usr/bin/env python3
"""Screenshots of pages of a built book, taken by headless Chromium, for reviewers to look at.

    python scripts/screenshots.py                      # the results pages of _build/html -> _build/screenshots/
    python scripts/screenshots.py --html _build/html --out shots notebooks/table2_ablation book/intro
    python scripts/screenshots.py --width 1280 --height 4000 --all   # every page of the book

A page is named by its path in the built book without ``.html`` (``notebooks/table2_ablation``) or by
a bare notebook name (``table2_ablation``). Needs Chromium (Debian: ``apt-get install chromium``;
``make chromium`` does it as root) or Chrome; ``--chromium PATH`` or ``$CHROMIUM`` names another.
Pages are loaded from the files with every host name unresolvable, as a reader offline would see them.
It uses the standard library only (no dsrg), and is not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULT_PAGES = ("table1_comparison", "table2_ablation", "table3_coco", "table4_thresholds",
                "fig4_supervision", "fig3_qualitative", "embedded_dataset")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium/Chrome executable: ``explicit``, ``$CHROMIUM``, or the first of CANDIDATES on PATH."""
    for name in (explicit, os.environ.get("CHROMIUM"), *CANDIDATES):
        if name and (path := shutil.which(name)):
            return path
    return None


def chromium_command(chromium: str, profile_dir: str | Path) -> list[str]:
    """Headless Chromium with no sandbox (root, containers), no GPU, a throw-away profile and no network."""
    return [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
            "--hide-scrollbars", f"--user-data-dir={profile_dir}",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost"]


def page_path(html_dir: Path, page: str) -> Path:
    """``notebooks/table2_ablation``, ``table2_ablation`` or ``x.html`` -> the HTML file in ``html_dir``."""
    name = page if page.endswith(".html") else f"{page}.html"
    for candidate in (html_dir / name, html_dir / "notebooks" / name, html_dir / "book" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no page {page!r} in {html_dir}")


def screenshot(chromium: str, page: Path, out: Path, width: int, height: int, budget_ms: int = 5000) -> Path:
    """One PNG of ``page`` as a ``width`` x ``height`` window shows it from the top."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dsrg-chromium-") as profile:
        cmd = [*chromium_command(chromium, profile), f"--window-size={width},{height}",
               f"--virtual-time-budget={budget_ms}", f"--screenshot={out.resolve()}", page.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed on {page} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pages", nargs="*", help="pages to take (default: the results pages)")
    ap.add_argument("--html", type=Path, default=Path("_build/html"), help="the built book (default _build/html)")
    ap.add_argument("--out", type=Path, default=Path("_build/screenshots"), help="folder for the PNGs")
    ap.add_argument("--all", action="store_true", help="every page of the book")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--chromium", help="the browser executable (default: $CHROMIUM or chromium on PATH)")
    args = ap.parse_args(argv)

    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("no Chromium found: install Debian's chromium (`make chromium` as root) or pass --chromium",
              file=sys.stderr)
        return 2
    if not args.html.is_dir():
        print(f"{args.html} is not a built book: run `make book` first", file=sys.stderr)
        return 2
    if args.all:
        pages = [p for p in sorted(args.html.rglob("*.html"))
                 if not p.relative_to(args.html).parts[0].startswith(("_", "reports"))]
    else:
        pages = [page_path(args.html, p) for p in (args.pages or RESULT_PAGES)]
    for page in pages:
        name = page.relative_to(args.html).with_suffix("").as_posix().replace("/", "__")
        print(screenshot(chromium, page, args.out / f"{name}.png", args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
