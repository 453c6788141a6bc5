"""The book's own copies of the JavaScript it needs, so it reads offline (no CDN).

- MathJax 3.2.2, the ``es5`` folder of the npm package (fonts included), fetched once
  with ``npm pack`` into the cache, checked against the registry's sha512 integrity, and
  unpacked into ``book/_static/mathjax`` (``mathjax_path`` in ``_config.yml`` points at
  it). MathJax 4 would fetch its fonts from a CDN; 3.2.x serves itself.
- plotly.js: the ``plotly.min.js`` that ships inside the pinned plotly wheel, copied to
  ``book/_static/plotly.min.js``; pages with an interactive figure load it
  (``book/_ext/bookfix.py``).

Both targets are ignored by git; :func:`prepare` (called by the book build) makes them.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..paths import cache_dir
from ..util import InputError, atomic_path

MATHJAX_VERSION = "3.2.2"
# `npm view mathjax@3.2.2 dist.integrity`
MATHJAX_INTEGRITY = ("sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1"
                     "/FEsPsjKPZGJvtRZM1vO+geW0OhGw==")
# what tex-chtml.js loads: the combined file, its lazily loaded parts (TeX extensions
# through autoload, the CHTML fonts, the menu and its accessibility tools)
MATHJAX_PARTS = ("tex-chtml.js", "input", "output", "ui", "a11y", "sre", "adaptors")


def integrity(path: Path) -> str:
    """The npm-style integrity string (``sha512-<base64>``) of a file."""
    digest = hashlib.sha512(Path(path).read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def mathjax_tarball() -> Path:
    """``mathjax-3.2.2.tgz`` from the npm registry (``npm pack``), cached and checked.

    A tarball whose integrity differs from :data:`MATHJAX_INTEGRITY` is an error that
    names it; nothing unverified is served.
    """
    folder = cache_dir("npm")
    tgz = folder / f"mathjax-{MATHJAX_VERSION}.tgz"
    if not tgz.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise InputError(
                f"MathJax {MATHJAX_VERSION} is needed for the book's math and npm is not "
                f"installed: install Node.js (npm), or put mathjax-{MATHJAX_VERSION}.tgz "
                f"(`npm pack mathjax@{MATHJAX_VERSION}`) in {folder}")
        proc = subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}",
                               "--pack-destination", str(folder)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not tgz.exists():
            raise InputError(f"npm pack mathjax@{MATHJAX_VERSION} failed "
                             f"(network?):\n{proc.stderr[-1500:]}")
    got = integrity(tgz)
    if got != MATHJAX_INTEGRITY:
        raise InputError(f"{tgz}: integrity {got} differs from the registry's "
                         f"{MATHJAX_INTEGRITY}; delete the file and build again")
    return tgz


def unpack_mathjax(tgz: Path, dest: Path) -> Path:
    """Unpack the parts of the package's ``es5`` folder that ``tex-chtml.js`` loads
    (:data:`MATHJAX_PARTS`) into ``dest``, replacing it whole. Returns ``dest``."""
    dest = Path(dest)
    prefix = "package/es5/"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            members = []
            for m in tar.getmembers():
                rel = m.name[len(prefix):] if m.name.startswith(prefix) else ""
                if rel and m.isfile() and rel.split("/")[0] in MATHJAX_PARTS:
                    m.name = rel
                    members.append(m)
            if not any(m.name == "tex-chtml.js" for m in members):
                raise InputError(f"{tgz}: no {prefix}tex-chtml.js inside")
            tar.extractall(tmp, members=members, filter="data")
        tmp.chmod(0o755)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (dest / ".version").write_text(MATHJAX_VERSION)
    return dest


def plotly_js() -> Path:
    """The ``plotly.min.js`` inside the installed plotly wheel."""
    try:
        import plotly
    except ImportError:
        raise InputError("plotly is not installed: make venv (or pip install -c "
                         "constraints.txt plotly)") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        raise InputError(f"{path}: missing from the plotly package")
    return path


def prepare(static: Path) -> Path:
    """Make ``static/mathjax`` (MathJax :data:`MATHJAX_VERSION`) and
    ``static/plotly.min.js`` (from the plotly wheel), each only when missing or stale.
    Returns ``static``."""
    static = Path(static)
    static.mkdir(parents=True, exist_ok=True)
    mj = static / "mathjax"
    version = mj / ".version"
    if not (version.exists() and version.read_text() == MATHJAX_VERSION):
        unpack_mathjax(mathjax_tarball(), mj)
    src, dst = plotly_js(), static / "plotly.min.js"
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return static
