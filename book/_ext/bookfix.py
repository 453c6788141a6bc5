"""Sphinx fix-ups for the book.

sphinx-thebe 0.3 and sphinx-togglebutton add inline scripts through both the registry
(filename ``''``) and the builder (filename ``None``); Sphinx's own de-duplication sees
two different scripts, so every page declares ``const THEBE_JS_URL`` twice and the
browser logs a SyntaxError. Drop such repeats from each page's script list. Also
set an explicit colour mode (see :func:`_default_mode`).

The compendium's reading of the executed chapters also happens here: each chapter is
passed through :func:`hyperribbon.compendium.book.prepare_chapter` as Sphinx reads it
(folded plotting code, the claims card, anchors), the intro's ``{claims-tally}`` role
shows a chapter's tally, and a page with an interactive figure loads the book's own
``plotly.min.js``.
"""

import json
import re

from docutils import nodes

from hyperribbon.compendium import book as hr_book


def _claim_rows(app):
    if not hasattr(app, "hr_claim_rows"):
        app.hr_claim_rows = hr_book.claim_rows()
    return app.hr_claim_rows


def _prepare_chapter(app, docname, source):
    if not docname.startswith("book/papers/"):
        return
    nb = json.loads(source[0])
    stem = docname.rsplit("/", 1)[-1]
    source[0] = json.dumps(hr_book.prepare_chapter(nb, stem, _claim_rows(app)))


def _plain_docstring(app, what, name, obj, options, lines):
    """The package's docstrings write maths as plain text (``|y|``, ``a*b``), not reST:
    escape the characters reST would read as substitutions and emphasis (a ``*`` followed
    by a space starts a bullet or multiplies: left alone), before napoleon reads the
    numpy sections."""
    def escape(text):
        return re.sub(r"(?<![*\\])\*(?![*\s])", r"\\*", text.replace("|", "\\|"))

    # ``literals`` are left as written: every other segment between double backquotes
    lines[:] = ["``".join(escape(p) if i % 2 == 0 else p
                          for i, p in enumerate(line.split("``"))) for line in lines]


def _generated_pages(app, env, added, changed, removed):
    """Re-read the chapters and the intro every build: their cards and tallies come
    from the claims table, which changes without their files changing."""
    return [d for d in env.found_docs if d.startswith("book/papers/") or d == "book/intro"]


def _tally_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{claims-tally}`01_van_der_pol``` → that chapter's tally of claims."""
    app = inliner.document.settings.env.app
    rows = [r for r in _claim_rows(app) if r.notebook == text.strip()]
    if not rows:
        msg = inliner.reporter.error(f"claims-tally: no executed chapter {text!r}",
                                     line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    node = nodes.inline(rawtext, hr_book.tally(rows), classes=["hr-tally"])
    node["ids"] = [f"tally-{text.strip()}"]
    return [node], []


def _plotly_js(app, pagename, templatename, context, doctree):
    """Load plotly.min.js (before the body's figure scripts) on pages that need it."""
    if "plotly-graph-div" in (context.get("body") or ""):
        app.add_js_file("plotly.min.js", priority=200)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    files = context.get("script_files")
    if not isinstance(files, list):
        return None
    seen, unique = set(), []
    for js in files:
        attrs = tuple(sorted(getattr(js, "attributes", {}).items()))
        key = (getattr(js, "filename", str(js)) or "", attrs)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    files[:] = unique
    return None


def _default_mode(app, config):
    """Give the theme an explicit colour mode: with none, pydata-sphinx-theme logs
    "Got invalid theme mode" as a console error on a browser's first visit."""
    ctx = dict(config.html_context or {})
    ctx.setdefault("default_mode", "light")
    config.html_context = ctx


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    app.connect("html-page-context", _plotly_js)
    app.connect("source-read", _prepare_chapter)
    app.connect("env-get-outdated", _generated_pages)
    app.connect("autodoc-process-docstring", _plain_docstring, priority=100)
    app.add_role("claims-tally", _tally_role)
    app.add_css_file("hyperribbon.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
