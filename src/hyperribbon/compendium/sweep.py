"""Parameter sweeps: one notebook over a grid, resumable, aggregated, fault-tolerant.

A grid file (YAML) gives lists per parameter (their Cartesian product) and optionally
explicit points::

    profile: ci            # optional default profile
    grid:
      seed: [0, 1, 2, 3, 4]
    points:                # optional: added after the product
      - {seed: 7, n_samples: 500}

Every point is validated before anything runs. Each point executes into
``OUT/<point-id>.ipynb`` (atomically, via :func:`hyperribbon.compendium.run.execute`)
with its log in ``OUT/logs/<point-id>.log``; finished points are skipped when the sweep
is run again (a sweep killed in the middle resumes where it stopped); a failing point is
recorded (with its traceback in the log) and the others go on. At the end
``OUT/sweep.csv`` holds every point's parameters, status, claims and glued numbers, and
``OUT/<claim>.png`` plots each numeric claim against the swept parameter.

Points run in this process one after the other, or on a Dask cluster
(:func:`hyperribbon.compendium.cluster.executor`: ``scheduler`` for a running one,
``jobs`` for a local one), each in its own kernel on a worker; the table and the
figures do not depend on where the points ran. A worker killed in the middle of a point
leaves only a ``.running`` file (never read back); the scheduler runs the point again
elsewhere, and a point that could not be run at all is recorded as failed.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import traceback
from collections.abc import Iterator
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import repo_root
from ..util import InputError, atomic_path, progress, read_yaml
from . import cluster
from . import run as run_mod
from .params import ParameterError

log = logging.getLogger("hyperribbon.sweep")
GLUE_MIME = "application/papermill.record/text/plain"


@dataclass
class Grid:
    """The points of a sweep and the parameters that vary."""

    points: list[dict[str, Any]]
    swept: list[str]
    profile: str | None = None


def load_grid(path: Path) -> Grid:
    """Read a grid file (see the module docstring)."""
    path = Path(path)
    try:
        data = read_yaml(path, "a grid: a mapping with 'grid' and/or 'points'")
    except InputError as exc:
        raise ParameterError(f"grid file {exc}") from None
    if not ({"grid", "points"} & set(data)):
        raise ParameterError(f"{path}: expected a mapping with 'grid' (lists per parameter) "
                             "and/or 'points' (a list of mappings)")
    unknown = set(data) - {"grid", "points", "profile"}
    if unknown:
        raise ParameterError(f"{path}: unknown keys {sorted(unknown)} "
                             "(use grid, points, profile)")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ParameterError(f"{path}: 'grid' must map parameter names to lists")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ParameterError(f"{path}: grid parameter {k!r} must be a non-empty list")
    names = list(grid)
    points = [dict(zip(names, combo, strict=True))
              for combo in itertools.product(*(grid[n] for n in names))] if names else []
    extra = data.get("points") or []
    if not isinstance(extra, list) or not all(isinstance(p, dict) for p in extra):
        raise ParameterError(f"{path}: 'points' must be a list of mappings")
    points += [dict(p) for p in extra]
    swept = list(dict.fromkeys(names + [k for p in extra for k in p]))
    return Grid(points, swept, data.get("profile"))


def point_id(params: dict[str, Any]) -> str:
    """A stable, readable id of a point: ``seed=3,n=10-<hash>`` (hash of the full point)."""
    blob = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    label = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    safe = "".join(ch if ch.isalnum() or ch in "=,.-_" else "_" for ch in label)[:80]
    return f"{safe}-{digest}" if safe else digest


@dataclass
class PointResult:
    """One point of a sweep."""

    id: str
    params: dict[str, Any]
    status: str  # ok, skipped (finished before), failed
    claims: list[dict] = field(default_factory=list)
    glued: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _read_point(path: Path) -> tuple[list[dict], dict[str, Any]]:
    import nbformat

    from .claims import claims_in_notebook

    nb = nbformat.read(str(path), as_version=4)
    glued: dict[str, Any] = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []) or []:
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            text = o.get("data", {}).get(GLUE_MIME)
            if name and text is not None:
                try:
                    glued[name] = float(str(text).strip())
                except ValueError:
                    pass  # figures and text are not numbers
    claims = nb.metadata.get("hyperribbon", {}).get("claims") or claims_in_notebook(nb)
    return claims, glued


def _finished(path: Path, profile: str, params: dict) -> bool:
    """A point counts as finished when its notebook exists (written atomically only on
    success) and was run with the same profile and parameters."""
    if not path.exists():
        return False
    import nbformat

    try:
        meta = nbformat.read(str(path), as_version=4).metadata.get("hyperribbon", {})
    except Exception:  # unreadable: run it again
        return False
    return meta.get("profile") == profile and meta.get("parameters") == params


def _run_point(args: tuple) -> tuple[str, str]:
    """Execute one point (in this process or a worker process)."""
    nb_path, profile, overrides, out, pid, root = args
    try:
        run_mod.execute(Path(nb_path), profile, overrides, Path(out), force=True,
                        root=Path(root), name=pid, log_file=Path(out) / "logs" / f"{pid}.log")
        return pid, ""
    except run_mod.RunError as exc:
        return pid, str(exc)


def output_folder(notebook: str, grid_file: Path, out: Path | None = None) -> Path:
    """Where a sweep writes: ``out``, else ``sweeps/<notebook stem>-<grid stem>``."""
    if out is not None:
        return Path(out)
    root = repo_root()
    (nb_path,) = run_mod.select(root, [notebook])
    return root / "sweeps" / f"{nb_path.stem}-{Path(grid_file).stem}"


def sweep(notebook: str, grid_file: Path, profile: str | None = None,
          out: Path | None = None, jobs: int = 1, scheduler: str | None = None
          ) -> list[PointResult]:
    """Run ``notebook`` over the grid in ``grid_file``; see the module docstring.

    ``scheduler`` (a Dask scheduler's address) or ``jobs`` > 1 (a local Dask cluster of
    that many worker processes) run the points in parallel; the default is one after the
    other in this process.

    Returns every point's result; writes ``sweep.csv`` and the summary figures in ``out``
    (default ``sweeps/<notebook>-<grid stem>``). Raises
    :class:`~hyperribbon.compendium.params.ParameterError` (or
    :class:`~hyperribbon.util.InputError` for a bad ``jobs``/``scheduler``) before running
    anything if any point is invalid.
    """
    cluster.check_request(scheduler, jobs)
    root = repo_root()
    (nb_path,) = run_mod.select(root, [notebook])
    grid = load_grid(grid_file)
    profile = profile or grid.profile or "ci"
    out = output_folder(notebook, grid_file, out)
    if not grid.points:
        raise ParameterError(f"{grid_file}: the grid has no points")
    plans = []
    for i, point in enumerate(grid.points):
        try:
            full = run_mod.resolve_parameters(nb_path, profile, point, root)
        except ParameterError as exc:
            raise ParameterError(f"{grid_file}: point {i} {point}: {exc}") from exc
        plans.append((point, full, point_id(point)))
    ids = [p[2] for p in plans]
    if len(set(ids)) != len(ids):
        raise ParameterError(f"{grid_file}: the grid repeats a point")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.running.ipynb"):  # left by a killed sweep
        stale.unlink()
    todo = [(point, full, pid) for point, full, pid in plans
            if not _finished(out / f"{pid}.ipynb", profile, full)]
    log.info("sweep of %s over %d points (%d to run, %d finished before) → %s",
             nb_path.stem, len(plans), len(todo), len(plans) - len(todo), out)
    errors: dict[str, str] = {}
    args = [(str(nb_path), profile, point, str(out), pid, str(root))
            for point, _, pid in todo]
    if args:
        with cluster.executor(scheduler, jobs if len(args) > 1 else 1,
                              shared=[root, out]) as ex:
            for pid, err in _run_points(args, ex):
                _report(pid, err, errors)
    ran = {pid for _, _, pid in todo}
    results = []
    for point, _, pid in plans:
        if pid in errors:
            results.append(PointResult(pid, point, "failed", error=errors[pid]))
            continue
        path = out / f"{pid}.ipynb"
        if not path.exists():  # failed in an earlier sweep and not re-run: cannot happen
            results.append(PointResult(pid, point, "failed", error="no output"))
            continue
        claims, glued = _read_point(path)
        results.append(PointResult(pid, point, "ok" if pid in ran else "skipped",
                                   claims, glued))
    write_table(results, grid.swept, out / "sweep.csv")
    summary_figures(results, grid.swept, out)
    return results


def _run_points(args: list[tuple], ex: Executor | None) -> Iterator[tuple[str, str]]:
    """(point id, error text or "") of every point, in this process (``ex`` None) or on
    the executor's workers as they finish; a point whose task failed outside the notebook
    (e.g. its workers kept dying) gets that traceback as its error."""
    if ex is None:
        for a in progress(args, desc="sweep", total=len(args)):
            yield _run_point(a)
        return
    futures = {ex.submit(_run_point, a): a[4] for a in args}
    for f in progress(as_completed(futures), desc="sweep", total=len(futures)):
        try:
            yield f.result()
        except Exception as exc:  # noqa: BLE001 - recorded as the point's failure
            yield futures[f], "".join(traceback.format_exception(exc))


def _report(pid: str, err: str, errors: dict[str, str]) -> None:
    if err:
        errors[pid] = err
        log.error("point %s FAILED: %s", pid, err.splitlines()[0])
    else:
        log.info("point %s done", pid)


def write_table(results: list[PointResult], swept: list[str], path: Path) -> None:
    """One row per point: id, status, swept parameters, claim values and verdicts, glued
    numbers, and the first line of the error of a failed point."""
    claim_names = list(dict.fromkeys(c["name"] for r in results for c in r.claims))
    glue_names = sorted({k for r in results for k in r.glued} - set(claim_names))
    cols = (["point", "status"] + swept + [f"claim:{n}" for n in claim_names]
            + [f"passed:{n}" for n in claim_names] + [f"glue:{n}" for n in glue_names]
            + ["error"])
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in results:
            by = {c["name"]: c for c in r.claims}
            row = [r.id, "failed" if r.status == "failed" else "ok"]
            row += [json.dumps(r.params.get(k)) if k in r.params else "" for k in swept]
            row += [by[n]["value"] if n in by else "" for n in claim_names]
            row += [by[n]["passed"] if n in by else "" for n in claim_names]
            row += [r.glued.get(n, "") for n in glue_names]
            row += [r.error.splitlines()[0] if r.error else ""]
            w.writerow(row)


def summary_figures(results: list[PointResult], swept: list[str], out: Path) -> list[Path]:
    """One PNG per numeric claim: its value against the first swept parameter (numeric
    parameters on a numeric axis), pass/fail marked, the target drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [r for r in results if r.status != "failed"]
    if not ok or not swept:
        return []
    xname = swept[0]
    paths = []
    names = list(dict.fromkeys(c["name"] for r in ok for c in r.claims))
    for name in names:
        pts = []
        target = relation = None
        for r in ok:
            c = next((c for c in r.claims if c["name"] == name), None)
            value = None if c is None else c["value"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            pts.append((r.params.get(xname), float(c["value"]), bool(c["passed"])))
            target, relation = c["target"], c["relation"]
        if not pts:
            continue
        numeric = all(isinstance(p[0], (int, float)) for p in pts)
        fig = Figure(figsize=(5, 3.4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        xs = [p[0] if numeric else str(p[0]) for p in pts]
        colors = ["tab:green" if p[2] else "tab:red" for p in pts]
        ax.scatter(xs, [p[1] for p in pts], c=colors, zorder=3)
        for t in (target if isinstance(target, list) else [target]):
            if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
                ax.axhline(t, color="0.4", ls="--", lw=1)
        ax.set_xlabel(xname)
        ax.set_ylabel(name)
        ax.set_title(f"{name} (must be {relation} {target}); green = pass", fontsize=9)
        fig.tight_layout()
        p = out / f"{name}.png"
        fig.savefig(p, dpi=110)
        paths.append(p)
    return paths
