"""What an executed notebook depends on, and the key that says when it can be reused.

A notebook's output is determined by its source, the package modules it imports
(followed transitively through the package's own imports, also those inside
functions), its profile and parameters, and the checksums of the datasets its
parameters name. :func:`source_key` hashes exactly these, so editing chapter 7's
``vae.py`` re-runs chapter 7 and nothing else.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

PACKAGE = "hyperribbon"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _code(source: str) -> ast.Module:
    """Parse Python source; lines of IPython magics and shell escapes are blanked."""
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines()]
    return ast.parse("\n".join(lines))


def imported_names(source: str, module: str = "") -> set[str]:
    """Dotted names under :data:`PACKAGE` that ``source`` imports (at any depth of the
    code), relative imports resolved against ``module`` (its dotted name; a package's
    ``__init__`` is named like the package). ``from a import b`` yields both ``a`` and
    ``a.b`` (``b`` may be a submodule); callers keep the names that are modules."""
    package = module if module.endswith(".__init__") else module.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    out: set[str] = set()
    for node in ast.walk(_code(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
    return {n for n in out if n == PACKAGE or n.startswith(PACKAGE + ".")}


def module_file(name: str, pkg_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of module ``name`` (``hyperribbon.x.y``) under ``pkg_dir``, or None when
    the name is not a module (a function imported from a module)."""
    rel = Path(*name.split(".")[1:])
    for cand in (pkg_dir / rel / "__init__.py", (pkg_dir / rel).with_suffix(".py")):
        if cand.is_file():
            return cand
    return None


def _module_name(path: Path, pkg_dir: Path) -> str:
    parts = path.relative_to(pkg_dir).with_suffix("").parts
    return ".".join((PACKAGE, *parts))


def dependencies(source: str, pkg_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package files that running ``source`` imports, transitively, with the
    ``__init__.py`` of every package on the way; sorted."""
    seen: set[Path] = set()
    todo = [(source, "")]
    while todo:
        src, mod = todo.pop()
        for name in imported_names(src, mod):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                f = module_file(".".join(parts[:i]), pkg_dir)
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append((f.read_text(), _module_name(f, pkg_dir)))
    return sorted(seen)


def source_key(notebook_source: str, profile: str, params: dict[str, Any],
               data: dict[str, Any] | None = None, extra_sources: tuple[str, ...] = (),
               pkg_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the notebook's source, the package files it (and ``extra_sources``,
    code the runner adds) depends on, the profile, the parameters and ``data`` (dataset
    name → its registered checksums). Equal keys: the executed output can be reused."""
    h = hashlib.sha256(notebook_source.encode())
    files = dependencies("\n".join((notebook_source, *extra_sources)), pkg_dir)
    for f in files:
        h.update(f.relative_to(pkg_dir).as_posix().encode())
        h.update(f.read_bytes())
    h.update(json.dumps({"profile": profile, "params": params, "data": data or {}},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()
