"""Execute the chapter notebooks with papermill, per profile, atomically, with provenance.

``notebooks/NN_name.py`` (py:percent) → jupytext in memory → parameters validated
against the notebook's own spec (:mod:`hyperribbon.compendium.params`) → papermill with the venv's
own kernel → ``OUT/NN_name.ipynb``, replaced only when the run succeeded. A failed run is
kept as ``OUT/NN_name.failed.ipynb`` and the failing cell's traceback is printed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import data
from ..paths import repo_root
from ..util import InputError, atomic_path, read_yaml
from .atlas import spectra_in_notebook
from .claims import claims_in_notebook
from .params import Param, ParameterError, coerce, parse_cell, validate
from .provenance import PROVENANCE_MIME, PROVENANCE_SOURCE
from .reuse import source_key

PROFILES = ("smoke", "ci", "paper")
KERNEL_NAME = "hyperribbon-venv"
log = logging.getLogger("hyperribbon.run")


class RunError(RuntimeError):
    """A notebook could not be run (bad input) or failed while running."""


# ---------------------------------------------------------------------------------------
# Which notebooks

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
            raise InputError(f"no notebook {i!r}; available: {have}")
        out.append(found[key])
    return out


def load_profiles(root: Path) -> dict:
    """``notebooks/profiles.yml``: per notebook stem, its expected claims and per-profile
    parameter overrides."""
    return read_yaml(root / "notebooks" / "profiles.yml", "a mapping notebook → settings")


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

    Raises :class:`~hyperribbon.compendium.params.ParameterError` before anything runs.
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
    """``-p name=value`` pairs and ``-f params.yml`` files → a dict (not yet validated).

    A missing, unreadable or malformed file is a :class:`ParameterError` naming it."""
    sp = spec(path)
    out: dict[str, Any] = {}
    for f in files:
        try:
            out.update(read_yaml(f, "a mapping name: value"))
        except InputError as exc:
            raise ParameterError(f"parameter file {exc}") from None
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
# What a run depends on

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


def dataset_checksums(params: dict[str, Any]) -> dict[str, Any]:
    """Registered files and checksums of every dataset a parameter value names (a string,
    or a string in a list), from the one registry; {} where there is no registry."""
    reg_path = data.registry_path()
    if not reg_path.exists():
        return {}
    reg = data.registry(reg_path)
    named = [v for v in params.values() if isinstance(v, str)]
    named += [x for v in params.values() if isinstance(v, list) for x in v
              if isinstance(x, str)]
    return {n: reg[n].get("files", {}) for n in sorted(set(named)) if n in reg}


def run_key(path: Path, profile: str, params: dict[str, Any]) -> str:
    """The reuse key of one run (:func:`hyperribbon.compendium.reuse.source_key`)."""
    return source_key(path.read_text(), profile, params, dataset_checksums(params),
                      extra_sources=(PROVENANCE_SOURCE,))


def provenance_cell():
    """The cell appended to every executed notebook that shows its provenance."""
    import nbformat

    return nbformat.v4.new_code_cell(
        PROVENANCE_SOURCE, metadata={"tags": ["remove-input", "hyperribbon-provenance"]})


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
    text, kfile = json.dumps(spec_json), kdir / "kernel.json"
    if not kfile.exists() or kfile.read_text() != text:  # atomically: parallel points read it
        with atomic_path(kfile) as tmp:
            tmp.write_text(text)
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


@contextlib.contextmanager
def _logging_to(log_file: Path | None):
    """Send the runner's and papermill's log to ``log_file`` for the block; yields the
    file's stream (None without a file)."""
    if log_file is None:
        yield None
        return
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    loggers = (log, logging.getLogger("papermill"))
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(min(lg.level or logging.INFO, logging.INFO))
    try:
        yield handler.stream
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        handler.close()


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


def _reusable(path: Path, dest: Path, key: str) -> Result | None:
    """The earlier output ``dest`` when it was made with the same key, else None."""
    import nbformat

    if not dest.exists():
        return None
    try:
        meta = nbformat.read(str(dest), as_version=4).metadata.get("hyperribbon", {})
    except Exception:  # unreadable old output: run again
        return None
    if meta.get("key") != key:
        return None
    log.info("%s: unchanged (same notebook, the package modules it imports, profile, "
             "parameters and data): reusing %s", path.stem, dest)
    return Result(path.stem, dest, "reused", meta.get("wall_s", 0.0), meta.get("claims", []))


def _papermill(nb, tmp: Path, path: Path, params: dict, root: Path, run_info: dict,
               log_file: Path | None) -> None:
    """Execute ``nb`` into ``tmp`` in the venv's kernel, quiet progress, logs as asked."""
    import papermill

    ci = bool(os.environ.get("CI"))
    jpath = os.pathsep.join(filter(None, [str(_kernel_dir()),
                                          os.environ.get("JUPYTER_PATH", "")]))
    with _env(HYPERRIBBON_RUN=json.dumps(run_info, default=str), JUPYTER_PATH=jpath,
              HYPERRIBBON_ROOT=str(root), HYPERRIBBON_PROGRESS="0"):
        papermill.execute_notebook(
            nb, str(tmp), parameters=params, kernel_name=KERNEL_NAME, cwd=str(path.parent),
            progress_bar=(not ci) and sys.stderr.isatty() and log_file is None,
            log_output=ci or log_file is not None, request_save_on_cell_execute=True)


def execute(path: Path, profile: str, overrides: dict[str, Any] | None = None,
            out_dir: Path | None = None, *, force: bool = False,
            root: Path | None = None, name: str | None = None,
            log_file: Path | None = None) -> Result:
    """Run one notebook under a profile into ``out_dir`` (default ``book/papers``).

    The output is ``out_dir/NAME.ipynb`` with ``name`` defaulting to the notebook's stem;
    ``log_file`` receives the run's log and the cells' outputs as they are produced.

    Parameters are validated first; a bad one raises
    :class:`~hyperribbon.compendium.params.ParameterError` and nothing is touched. When
    the output exists with the same key (:func:`run_key`) it is reused unless ``force``.
    A failure writes ``NAME.failed.ipynb`` and raises :class:`RunError` with the failing
    cell's traceback; the previous good output is left as it was.
    """
    import nbformat

    root = root or repo_root(path.parent)
    params = resolve_parameters(path, profile, overrides, root)
    out_dir = Path(out_dir) if out_dir is not None else root / "book" / "papers"
    name = name or path.stem
    dest = out_dir / f"{name}.ipynb"
    failed = out_dir / f"{name}.failed.ipynb"
    key = run_key(path, profile, params)
    if not force and (hit := _reusable(path, dest, key)) is not None:
        return hit

    nb = read_notebook(path)
    parameters_cell(nb, path.name)
    nb.cells.append(provenance_cell())
    commit, dirty = git_state(root)
    run_info = {"notebook": path.stem, "profile": profile, "parameters": params,
                "commit": commit, "dirty": dirty, "t0": time.time()}
    log.info("%s: executing under profile %s with %s", path.stem, profile,
             json.dumps(params, default=str))
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, running = tempfile.mkstemp(prefix=f".{name}.", suffix=".running.ipynb", dir=out_dir)
    os.close(fd)
    t0 = time.time()
    with _logging_to(log_file) as stream:
        try:
            _papermill(nb, Path(running), path, params, root, run_info, log_file)
        except BaseException as exc:  # noqa: BLE001 - also Ctrl-C: keep the partial run
            if os.path.getsize(running) > 0:
                os.chmod(running, 0o644)
                os.replace(running, failed)
            else:
                os.unlink(running)
            detail = _failure_text(exc)
            log.error("%s: FAILED after %.1f s; the failed notebook is kept as %s "
                      "(the previous output, if any, is untouched)", path.stem,
                      time.time() - t0, failed)
            if stream is not None:
                stream.write(detail + "\n")
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise RunError(f"{path.name} failed under profile {profile}: see {failed}\n"
                           f"{detail}") from exc
    executed = nbformat.read(running, as_version=4)
    os.unlink(running)
    wall = round(time.time() - t0, 2)
    claims, prov = _collect(executed)
    prov["wall_s"] = wall
    executed.metadata["kernelspec"] = copy.deepcopy(nb.metadata.get("kernelspec", {}))
    spectra = [asdict(s) for s in spectra_in_notebook(executed)]
    executed.metadata["hyperribbon"] = {"key": key, "profile": profile, "parameters": params,
                                        "provenance": prov, "claims": claims,
                                        "spectra": spectra, "wall_s": wall}
    with atomic_path(dest) as tmp:
        nbformat.write(executed, str(tmp))
    failed.unlink(missing_ok=True)
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
