"""Execute the chapter notebooks with papermill, per profile, atomically, with provenance.

``notebooks/NN_name.py`` (py:percent) → jupytext in memory → parameters validated
against the notebook's own spec (:mod:`hyperribbon.params`) → papermill with the venv's
own kernel → ``OUT/NN_name.ipynb``, replaced only when the run succeeded. A failed run is
kept as ``OUT/NN_name.failed.ipynb`` and the failing cell's traceback is printed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .claims import claims_in_notebook
from .params import Param, ParameterError, coerce, parse_cell, validate

PROFILES = ("smoke", "ci", "paper")
PROVENANCE_MIME = "application/vnd.hyperribbon.provenance+json"
KERNEL_NAME = "hyperribbon-venv"
log = logging.getLogger("hyperribbon.run")


class RunError(RuntimeError):
    """A notebook could not be run (bad input) or failed while running."""


# ---------------------------------------------------------------------------------------
# Where things are

def repo_root(start: Path | None = None) -> Path:
    """The compendium's root: the nearest folder upward holding ``notebooks/profiles.yml``
    (from ``HYPERRIBBON_ROOT``, else the working directory, else the package's checkout)."""
    candidates = []
    if os.environ.get("HYPERRIBBON_ROOT"):
        candidates.append(Path(os.environ["HYPERRIBBON_ROOT"]))
    candidates.append(start or Path.cwd())
    candidates.append(Path(__file__).resolve().parents[2])
    for c in candidates:
        for d in (c.resolve(), *c.resolve().parents):
            if (d / "notebooks" / "profiles.yml").exists():
                return d
    raise RunError("cannot find the compendium root (a folder with notebooks/profiles.yml); "
                   "run from inside the repository or set HYPERRIBBON_ROOT")


def notebooks(root: Path) -> dict[str, Path]:
    """``{"02": notebooks/02_chebyshev.py, ...}`` for every chapter notebook present."""
    out = {}
    for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        out[p.name[:2]] = p
    return out


def select(root: Path, ids: list[str] | None) -> list[Path]:
    """Notebook paths for ids like ``02``, ``2`` or ``02_chebyshev`` (all when empty)."""
    found = notebooks(root)
    if not ids:
        return list(found.values())
    out = []
    for i in ids:
        key = i.split("_")[0].zfill(2) if i.split("_")[0].isdigit() else i
        if key not in found:
            have = ", ".join(f"{k} ({v.stem})" for k, v in found.items()) or "none"
            raise RunError(f"no notebook {i!r}; available: {have}")
        out.append(found[key])
    return out


def load_profiles(root: Path) -> dict:
    """``notebooks/profiles.yml``: per notebook stem, its expected claims and per-profile
    parameter overrides."""
    path = root / "notebooks" / "profiles.yml"
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a mapping notebook → settings")
    return data


def expected_claims(root: Path) -> dict[str, list[str]]:
    """notebook stem → the claim names it must record."""
    return {stem: list(v.get("claims", []) or []) for stem, v in load_profiles(root).items()}


# ---------------------------------------------------------------------------------------
# Reading a notebook and its parameters

def read_notebook(path: Path):
    """The py:percent notebook as an nbformat node (jupytext, in memory)."""
    import jupytext

    return jupytext.read(path, fmt="py:percent")


def parameters_cell(nb, name: str) -> int:
    """Index of the one cell tagged ``parameters``; an error if there is not exactly one."""
    idx = [i for i, c in enumerate(nb.cells)
           if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(idx) != 1:
        raise RunError(f"{name}: expected exactly one cell tagged 'parameters', found "
                       f"{len(idx)} (in py:percent write: # %% tags=[\"parameters\"])")
    return idx[0]


def spec(path: Path) -> dict[str, Param]:
    """The parameter spec written in the notebook's ``parameters`` cell."""
    nb = read_notebook(path)
    return parse_cell(nb.cells[parameters_cell(nb, path.name)].source, path.name)


def resolve_parameters(path: Path, profile: str, overrides: dict[str, Any] | None = None,
                       root: Path | None = None) -> dict[str, Any]:
    """Defaults ← profile values (``profiles.yml``) ← overrides, all validated.

    Raises :class:`~hyperribbon.params.ParameterError` before anything runs.
    """
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    root = root or repo_root(path.parent)
    sp = spec(path)
    entry = load_profiles(root).get(path.stem, {}) or {}
    values: dict[str, Any] = {}
    if "profile" in sp:
        values["profile"] = profile
    values.update(validate(sp, dict(entry.get(profile, {}) or {}),
                           f"{path.name} (profiles.yml, profile {profile})"))
    values.update(validate(sp, dict(overrides or {}), path.name))
    resolved = {k: p.default for k, p in sp.items()}
    resolved.update(values)
    return resolved


def parse_overrides(path: Path, pairs: list[str], files: list[Path]) -> dict[str, Any]:
    """``-p name=value`` pairs and ``-f params.yml`` files → a dict (not yet validated)."""
    sp = spec(path)
    out: dict[str, Any] = {}
    for f in files:
        data = yaml.safe_load(Path(f).read_text()) or {}
        if not isinstance(data, dict):
            raise ParameterError(f"{f}: expected a mapping name: value")
        out.update(data)
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ParameterError(f"-p {pair!r}: write name=value")
        name = name.strip()
        if name not in sp:
            raise ParameterError(f"{path.name}: unknown parameter {name!r}; this notebook "
                                 f"takes: {', '.join(sorted(sp))}")
        out[name] = coerce(sp[name], text)
    return out


# ---------------------------------------------------------------------------------------
# Provenance

def git_state(root: Path) -> tuple[str, bool]:
    """(commit, dirty) of the checkout, or ("unknown", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=root, capture_output=True, text=True,
                                    check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def source_key(root: Path, path: Path, profile: str, params: dict) -> str:
    """Content hash of what determines an executed notebook: the notebook, the package
    source, the profile and the parameters. Equal keys → the output can be reused."""
    h = hashlib.sha256()
    h.update(path.read_bytes())
    pkg = Path(__file__).resolve().parent
    for f in sorted(pkg.rglob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(json.dumps({"profile": profile, "params": params}, sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


def provenance_cell():
    """The cell appended to every executed notebook that shows its provenance."""
    import nbformat

    return nbformat.v4.new_code_cell(
        "from hyperribbon.provenance import show_provenance\n\nshow_provenance()",
        metadata={"tags": ["remove-input", "hyperribbon-provenance"]})


# ---------------------------------------------------------------------------------------
# Execution

def _kernel_dir() -> Path:
    """A kernelspec that runs this very Python (the venv's), put first on JUPYTER_PATH."""
    d = Path(tempfile.gettempdir()) / f"hyperribbon-kernels-{os.getuid()}"
    kdir = d / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    spec_json = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                          "{connection_file}"],
                 "display_name": "Python 3 (hyperribbon)", "language": "python",
                 "metadata": {"debugger": False}}
    (kdir / "kernel.json").write_text(json.dumps(spec_json))
    return d


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Result:
    """What one notebook run produced."""

    notebook: str
    output: Path
    status: str  # "ok", "reused", "failed"
    wall_s: float = 0.0
    claims: list[dict] = field(default_factory=list)
    error: str = ""


def _collect(nb) -> tuple[list[dict], dict]:
    prov: dict = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []) or []:
            if PROVENANCE_MIME in o.get("data", {}):
                prov = dict(o["data"][PROVENANCE_MIME])
    return claims_in_notebook(nb), prov


def _atomic_write(nb, dest: Path) -> None:
    import nbformat

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=".ipynb.tmp", dir=dest.parent)
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def execute(path: Path, profile: str, overrides: dict[str, Any] | None = None,
            out_dir: Path | None = None, *, force: bool = False,
            root: Path | None = None, name: str | None = None,
            log_file: Path | None = None) -> Result:
    """Run one notebook under a profile into ``out_dir`` (default ``book/papers``).

    The output is ``out_dir/NAME.ipynb`` with ``name`` defaulting to the notebook's stem;
    ``log_file`` receives the run's log and the cells' outputs as they are produced.

    Parameters are validated first; a bad one raises
    :class:`~hyperribbon.params.ParameterError` and nothing is touched. When the output
    exists with the same source key (notebook, package, profile, parameters) it is reused
    unless ``force``. A failure writes ``NAME.failed.ipynb`` and raises :class:`RunError`
    with the failing cell's traceback; the previous good output is left as it was.
    """
    import nbformat
    import papermill

    root = root or repo_root(path.parent)
    params = resolve_parameters(path, profile, overrides, root)
    out_dir = Path(out_dir) if out_dir is not None else root / "book" / "papers"
    name = name or path.stem
    dest = out_dir / f"{name}.ipynb"
    failed = out_dir / f"{name}.failed.ipynb"
    key = source_key(root, path, profile, params)
    if dest.exists() and not force:
        try:
            old = nbformat.read(str(dest), as_version=4)
            meta = old.metadata.get("hyperribbon", {})
            if meta.get("key") == key:
                log.info("%s: unchanged (same notebook, package, profile and parameters): "
                         "reusing %s", path.stem, dest)
                return Result(path.stem, dest, "reused", meta.get("wall_s", 0.0),
                              meta.get("claims", []))
        except Exception:  # unreadable old output: run again
            pass

    nb = read_notebook(path)
    parameters_cell(nb, path.name)
    nb.cells.append(provenance_cell())
    commit, dirty = git_state(root)
    run_info = {"notebook": path.stem, "profile": profile, "parameters": params,
                "commit": commit, "dirty": dirty, "t0": time.time()}
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".running.ipynb", dir=out_dir)
    os.close(fd)
    ci = bool(os.environ.get("CI"))
    t0 = time.time()
    log.info("%s: executing under profile %s with %s", path.stem, profile,
             json.dumps(params, default=str))
    jpath = os.pathsep.join(filter(None, [str(_kernel_dir()),
                                          os.environ.get("JUPYTER_PATH", "")]))
    handler = None
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        for lg in (log, logging.getLogger("papermill")):
            lg.addHandler(handler)
            lg.setLevel(min(lg.level or logging.INFO, logging.INFO))
    try:
        with _env(HYPERRIBBON_RUN=json.dumps(run_info, default=str), JUPYTER_PATH=jpath,
                  HYPERRIBBON_ROOT=str(root), HYPERRIBBON_PROGRESS="0"):
            papermill.execute_notebook(
                nb, tmp, parameters=params, kernel_name=KERNEL_NAME,
                cwd=str(path.parent),
                progress_bar=(not ci) and sys.stderr.isatty() and log_file is None,
                log_output=ci or log_file is not None, request_save_on_cell_execute=True)
    except BaseException as exc:  # noqa: BLE001 - also Ctrl-C: keep the partial run
        wall = time.time() - t0
        if os.path.exists(tmp) and os.path.getsize(tmp) > 0:
            os.chmod(tmp, 0o644)
            os.replace(tmp, failed)
        elif os.path.exists(tmp):
            os.unlink(tmp)
        detail = _failure_text(exc)
        log.error("%s: FAILED after %.1f s; the failed notebook is kept as %s "
                  "(the previous output, if any, is untouched)", path.stem, wall, failed)
        if handler is not None:
            handler.stream.write(detail + "\n")
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise RunError(f"{path.name} failed under profile {profile}: see {failed}\n"
                       f"{detail}") from exc
    finally:
        if handler is not None:
            for lg in (log, logging.getLogger("papermill")):
                lg.removeHandler(handler)
            handler.close()
    wall = time.time() - t0
    executed = nbformat.read(tmp, as_version=4)
    os.unlink(tmp)
    claims, prov = _collect(executed)
    prov.update({"wall_s": round(wall, 2)})
    executed.metadata["kernelspec"] = copy.deepcopy(nb.metadata.get("kernelspec", {}))
    executed.metadata["hyperribbon"] = {"key": key, "profile": profile, "parameters": params,
                                        "provenance": prov, "claims": claims,
                                        "wall_s": round(wall, 2)}
    _atomic_write(executed, dest)
    if failed.exists():
        failed.unlink()
    log.info("%s: done in %.1f s → %s (%d claims)", path.stem, wall, dest, len(claims))
    return Result(path.stem, dest, "ok", wall, claims)


def _failure_text(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        tb = "\n".join(exc.traceback)
        return f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n{_strip_ansi(tb)}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def run(ids: list[str] | None, profile: str, pairs: list[str] | None = None,
        files: list[Path] | None = None, out_dir: Path | None = None,
        force: bool = False) -> list[Result]:
    """Validate every selected notebook's parameters first, then execute them in order.

    All parameter errors surface before the first kernel starts. Notebook failures do not
    stop the others; :class:`RunError` is raised at the end listing them.
    """
    root = repo_root()
    paths = select(root, ids)
    plans = []
    for p in paths:
        overrides = parse_overrides(p, pairs or [], files or [])
        resolve_parameters(p, profile, overrides, root)  # fail fast, before any kernel
        plans.append((p, overrides))
    results, errors = [], []
    for i, (p, overrides) in enumerate(plans, 1):
        log.info("[%d/%d] %s", i, len(plans), p.stem)
        try:
            results.append(execute(p, profile, overrides, out_dir, force=force, root=root))
        except RunError as exc:
            errors.append(str(exc))
    if errors:
        raise RunError(f"{len(errors)} of {len(plans)} notebooks failed:\n" + "\n".join(errors))
    return results
