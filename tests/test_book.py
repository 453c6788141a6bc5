"""The book builds from the executed notebooks; a real headless browser reads every page."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from conftest import ROOT
from hyperribbon.compendium.book import build_book

HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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
                 "book/reproduce.html", "book/bibliography.html"):
        assert page in names
    for r in ci_notebooks:
        assert f"book/papers/{r.notebook}.html" in names


@pytest.mark.slow
def test_offline_link_check(book):
    exe = Path(sys.executable).parent / "linkchecker"
    proc = subprocess.run([str(exe), "--no-status", "--no-warnings", "-o", "text",
                           str(book / "index.html")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.browser
@pytest.mark.slow
def test_every_page_in_a_real_browser(book, ci_notebooks):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make browser-deps installs it)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    recorded = {c["name"] for r in ci_notebooks for c in r.claims}
    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in pages(book):
            errors.clear()
            url = path.as_uri()
            page.goto(url, wait_until="load")
            page.wait_for_timeout(200)
            rel = path.relative_to(book).as_posix()
            # only errors of the page itself count: external CDNs are unreachable offline
            own = [e for e in errors if "net::ERR" not in e and "Failed to load resource" not in e]
            if own:
                problems.append(f"{rel}: console errors {own}")
            imgs = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
            for src, width in imgs:
                if not src or src.startswith("http"):
                    continue
                if width == 0:
                    problems.append(f"{rel}: image {src} did not load")
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            for href in hrefs:
                target, _ = urldefrag(href)
                parsed = urlparse(target)
                if parsed.scheme == "file" and not Path(parsed.path).exists():
                    problems.append(f"{rel}: broken internal link {href}")
            if rel == "book/claims.html":
                text = page.inner_text("body")
                missing = [n for n in recorded if n not in text]
                if missing:
                    problems.append(f"claims page lacks {missing}")
        browser.close()
    assert not problems, json.dumps(problems, indent=1)
