"""The book builds from the executed notebooks; a real headless browser reads every page."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from conftest import ROOT
from hyperribbon.compendium import atlas
from hyperribbon.compendium import book as book_mod
from hyperribbon.compendium.book import build_book

HTML = ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def book(ci_notebooks) -> Path:
    index = build_book(repo_url="https://github.com/hyperribbon/hyperribbon", strict=True)
    assert index.exists()
    return HTML


def pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


@pytest.mark.slow
def test_book_has_intro_methods_claims_reproduce_and_chapters(book, ci_notebooks):
    names = {p.relative_to(book).as_posix() for p in pages(book)}
    for page in ("book/intro.html", "book/methods.html", "book/claims.html",
                 "book/atlas.html", "book/api.html", "book/reproduce.html",
                 "book/bibliography.html"):
        assert page in names
    for r in ci_notebooks:
        assert f"book/papers/{r.notebook}.html" in names


@pytest.mark.slow
def test_offline_link_check(book):
    exe = Path(sys.executable).parent / "linkchecker"
    proc = subprocess.run([str(exe), "--no-status", "--no-warnings", "-o", "text",
                           str(book / "index.html")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


# Debian's chromium package: /usr/bin/chromium is a wrapper script, the binary is here
CHROMIUM = next((c for c in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if c and Path(c).exists()), None)
LOCAL = ("file:", "data:", "blob:", "about:")


def _launch(pw):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make browser-deps installs it)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
              "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",
              # WebGL in software, for the interactive 3-D figures
              "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])


def _claims_table(page) -> dict[tuple[str, str], tuple[str, str]]:
    """(notebook, claim) → (value, status) as the claims page shows them."""
    rows = page.eval_on_selector_all(
        "table tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => c.innerText.trim()))")
    return {(r[0], r[1]): (r[2], r[5]) for r in rows if len(r) >= 6}


def _tally_text(statuses: list[str]) -> str:
    counts = {s: statuses.count(s) for s in book_mod.STATUS_CLASS}
    return " · ".join(f"{n} {s}" for s, n in counts.items() if n) or "no claims"


@pytest.mark.browser
@pytest.mark.slow
def test_every_page_in_a_real_browser_offline(book, ci_notebooks):
    """Every page with the network blocked: no console error, no request off the book,
    every image loaded, all math typeset, internal links resolve; the cards and tallies
    agree with the claims table, the atlas has one curve per recorded spectrum, the
    interactive figures draw, plotting code is folded."""
    from playwright.sync_api import sync_playwright

    executed = book_mod.executed_notebooks()
    spectra = atlas.collect(executed)
    expected_curves = {atlas.curve_id(stem, s.name) for stem, recs in spectra.items()
                       for s in recs}
    recorded = {c["name"] for r in ci_notebooks for c in r.claims}
    problems = []
    with sync_playwright() as pw:
        browser = _launch(pw)
        context = browser.new_context()
        off_book: list[str] = []

        def block(route):
            url = route.request.url
            if url.startswith(LOCAL):
                route.continue_()
            else:
                off_book.append(url)
                route.abort("internetdisconnected")

        context.route("**/*", block)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto((book / "book" / "claims.html").as_uri(), wait_until="load")
        table = _claims_table(page)
        missing = [n for n in recorded if n not in {k[1] for k in table}]
        if missing:
            problems.append(f"claims page lacks {missing}")
        interactive = 0
        for path in pages(book):
            errors.clear()
            off_book.clear()
            rel = path.relative_to(book).as_posix()
            redirect = re.search(r'http-equiv="refresh" content="\d+; url=([^"]+)"',
                                 path.read_text(), re.I)
            if redirect:  # index.html: the redirect's target is one of the pages
                if not (path.parent / redirect.group(1)).exists():
                    problems.append(f"{rel}: redirects to a missing {redirect.group(1)}")
                continue
            page.goto(path.as_uri(), wait_until="load")
            page.evaluate("() => window.MathJax?.startup?.promise")
            page.wait_for_timeout(200)
            if errors:
                problems.append(f"{rel}: console errors {errors}")
            if off_book:
                problems.append(f"{rel}: requests off the book (network blocked) {off_book}")
            for src, width in page.eval_on_selector_all(
                    "img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])"):
                if width == 0:
                    problems.append(f"{rel}: image {src} did not load")
            untypeset = page.eval_on_selector_all(
                ".math", "els => els.filter(e => !e.querySelector('mjx-container') "
                         "|| e.querySelector('mjx-merror')).map(e => e.innerText.slice(0, 60))")
            if untypeset:
                problems.append(f"{rel}: math not typeset {untypeset[:5]}")
            text = page.inner_text("body")
            for delim in ("\\(", "\\[", "$$"):
                if delim in text:
                    problems.append(f"{rel}: raw TeX delimiter {delim!r} in the text")
            here = urlparse(page.url).path
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                target, frag = urldefrag(href)
                parsed = urlparse(target)
                if parsed.scheme != "file":
                    continue
                if not Path(parsed.path).exists():
                    problems.append(f"{rel}: broken internal link {href}")
                elif frag and parsed.path == here and not page.query_selector(
                        f"[id='{frag}']"):
                    problems.append(f"{rel}: link to a missing anchor #{frag}")
            stem = Path(rel).stem
            if rel.startswith("book/papers/"):
                card = page.eval_on_selector_all(
                    ".hr-claims-card tr[data-claim]",
                    "trs => trs.map(tr => [tr.dataset.claim, tr.cells[1].innerText.trim(), "
                    "tr.cells[3].innerText.trim()])")
                mine = {k[1]: v for k, v in table.items() if k[0] == stem}
                if {c[0]: (c[1], c[2]) for c in card} != mine:
                    problems.append(f"{rel}: claims card {card} differs from the claims "
                                    f"table {mine}")
                shown = page.eval_on_selector_all(
                    "div.cell:not(.tag_hide-input):not(.tag_remove-input) .cell_input",
                    "els => els.map(e => e.innerText)")
                if any("glue_figure(" in t or "glue_3d(" in t for t in shown):
                    problems.append(f"{rel}: a plotting cell is not folded")
                if page.query_selector("div.cell.tag_injected-parameters:not(.tag_hide-input)"):
                    problems.append(f"{rel}: the injected-parameters cell is not folded")
            if rel == "book/intro.html":
                for nb in {k[0] for k in table}:
                    want = _tally_text([v[1] for k, v in table.items() if k[0] == nb])
                    got = page.inner_text(f"#tally-{nb}") if page.query_selector(
                        f"#tally-{nb}") else None
                    if got != want:
                        problems.append(f"intro: tally of {nb} is {got!r}, table says {want!r}")
            if rel == "book/atlas.html":
                curves = page.eval_on_selector_all(
                    "[id^='atlas-curve-']",
                    "gs => gs.filter(g => (g.querySelector('path')?.getAttribute('d') || '')"
                    ".length > 10).map(g => g.id)")
                if set(curves) != expected_curves or len(curves) != len(expected_curves):
                    problems.append(f"atlas: curves {sorted(curves)}, expected one per "
                                    f"recorded spectrum {sorted(expected_curves)}")
            for fig in page.query_selector_all(".plotly-graph-div"):
                interactive += 1
                drawn = fig.evaluate(
                    "d => d.classList.contains('js-plotly-plot') && !!d.querySelector("
                    "'.main-svg') && [...d.querySelectorAll('canvas')].some(c => c.width > 0)"
                    " && !/WebGL is not supported/.test(d.innerText)")
                if not drawn:
                    problems.append(f"{rel}: interactive figure {fig.get_attribute('id')} "
                                    "did not draw")
        browser.close()
    plotly_out = any("plotly-graph-div" in p.read_text() for p in executed)
    if plotly_out and not interactive:
        problems.append("the chapters glue interactive figures but no page shows one")
    assert not problems, json.dumps(problems, indent=1)
