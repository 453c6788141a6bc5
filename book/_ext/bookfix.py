"""Sphinx fix-ups for the book.

sphinx-thebe 0.3 and sphinx-togglebutton add inline scripts through both the registry
(filename ``''``) and the builder (filename ``None``); Sphinx's own de-duplication sees
two different scripts, so every page declares ``const THEBE_JS_URL`` twice and the
browser logs a SyntaxError. Drop such repeats from each page's script list. Also
set an explicit colour mode (see :func:`_default_mode`).
"""


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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
