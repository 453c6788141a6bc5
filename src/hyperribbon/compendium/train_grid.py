"""Grids of training runs: a YAML file of run specifications, trained into the cache.

``hyperribbon train GRID.yml`` trains every run of the file with the training engine
(:func:`hyperribbon.training.train`), in this process, on a local Dask cluster
(``--jobs N``) or on a running one (``--scheduler ADDRESS``); each finished run lands in
the shared cache (``HYPERRIBBON_CACHE``), so a notebook asking for the same runs only
loads them, and a second call trains nothing. The file is either a list of runs, each a
mapping of :class:`~hyperribbon.training.RunSpec` fields, or a mapping::

    device: auto             # optional: auto, cpu, cuda, cuda:1, ...
    base:                    # optional: fields shared by every run
      arch: mlp
      width: 16
      epochs: 2
      batch_size: 50
      train: {n: 200, pool: 2}                  # a Samples mapping
      record: {test: {split: test, n: 100, pool: 2}}   # name -> Samples mapping
      checkpoints: [[1, 0.5], [1e9, 1]]         # (until epoch, every epochs) pairs
    grid:                    # optional: the Cartesian product of these lists
      seed: [0, 1, 2, 3]
      train.n: [200, 400]    # a dotted name sets a field of a nested Samples
    runs:                    # optional: explicit runs, added after the product
      - {arch: cnn, width: 8}

Every run is ``base`` overlaid with its grid point or its entry of ``runs``. The whole
file is checked before anything trains; a mistake is one line naming the file, the run
and the field.
"""

from __future__ import annotations

import itertools
import os
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..paths import cache_dir
from ..training import Run, RunSpec, Samples, SpecError, run_dir, train
from ..util import InputError, read_yaml, resolve_device
from . import cluster

_KEYS = {"device", "base", "grid", "runs"}


@dataclass
class RunGrid:
    """The runs of a grid file and the device it asks for."""

    specs: list[RunSpec]
    device: str = "auto"


def _convert(value: Any, hint: Any, where: str, name: str) -> Any:
    """``value`` (parsed YAML) as the type ``hint`` of the field ``name`` of a RunSpec or
    Samples; ``where`` (file and run) starts any error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _convert(value, hint, where, name)
    if hint is Samples:
        return _dataclass(Samples, value, where, f"{name}.")
    if origin is tuple:
        if isinstance(value, dict) and args[1:] == (...,):  # name -> value pairs
            value = [[k, v] for k, v in value.items()]
        if not isinstance(value, list):
            raise InputError(f"{where}: {name}: expected a list, got {value!r}")
        if args[1:] == (...,):
            return tuple(_convert(v, args[0], where, f"{name}[{i}]")
                         for i, v in enumerate(value))
        if len(value) != len(args):
            raise InputError(f"{where}: {name}: expected {len(args)} items, got {value!r}")
        return tuple(_convert(v, a, where, f"{name}[{i}]")
                     for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if hint is float and isinstance(value, str):  # YAML reads 1e9 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}[hint]
    if not ok:
        raise InputError(f"{where}: {name}: expected {hint.__name__}, got {value!r}")
    return float(value) if hint is float else value


def _dataclass(cls: type, value: Any, where: str, prefix: str = "") -> Any:
    """An instance of ``cls`` (RunSpec or Samples) from a mapping of its fields; field
    names in errors start with ``prefix``."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: {prefix.rstrip('.') or 'run'}: expected a mapping of "
                         f"{cls.__name__} fields, got {value!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = [k for k in value if k not in known]
    if unknown:
        raise InputError(f"{where}: unknown {cls.__name__} field {prefix}{unknown[0]} "
                         f"(known: {', '.join(known)})")
    kwargs = {k: _convert(v, hints[k], where, f"{prefix}{k}") for k, v in value.items()}
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise InputError(f"{where}: {exc}") from None


def _overlay(base: dict, changes: dict, where: str) -> dict:
    """``base`` with ``changes`` applied; a dotted name (``train.n``) sets a nested field."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for name, v in changes.items():
        head, _, rest = str(name).partition(".")
        if rest:
            inner = out.get(head, {})
            if not isinstance(inner, dict):
                raise InputError(f"{where}: {name!r} sets a field of {head!r}, which is "
                                 f"not a mapping")
            out[head] = _overlay(inner, {rest: v}, where)
        else:
            out[name] = v
    return out


def load_run_grid(path: Path) -> RunGrid:
    """Read and check a grid file of training runs (see the module docstring).

    Raises
    ------
    InputError : a missing or malformed file, an unknown field, a wrong type or an
        invalid run, in one line naming the file, the run and the field.
    """
    path = Path(path)
    try:
        data = read_yaml(path, "a list of runs or a mapping with base, grid, runs")
    except InputError as exc:
        if not str(exc).endswith("found a list"):
            raise InputError(f"run grid {exc}") from None
        import yaml  # a top-level list: the runs themselves

        data = {"runs": yaml.safe_load(path.read_text())}
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown} (use {', '.join(sorted(_KEYS))})")
    base = data.get("base") or {}
    grid = data.get("grid") or {}
    extra = data.get("runs") or []
    if not isinstance(base, dict):
        raise InputError(f"{path}: 'base' must be a mapping of RunSpec fields")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise InputError(f"{path}: 'grid' must map field names to non-empty lists")
    if not isinstance(extra, list) or not all(isinstance(r, dict) for r in extra):
        raise InputError(f"{path}: 'runs' must be a list of mappings of RunSpec fields")
    points = [dict(zip(grid, combo, strict=True))
              for combo in itertools.product(*grid.values())] if grid else []
    points += extra
    if not points:
        raise InputError(f"{path}: the grid has no runs")
    specs, seen = [], {}
    for i, point in enumerate(points):
        where = f"{path}: run {i} ({', '.join(f'{k}={v}' for k, v in point.items())})"
        spec = _dataclass(RunSpec, _overlay(base, point, where), where)
        if spec in seen:
            raise InputError(f"{path}: runs {seen[spec]} and {i} are the same run")
        seen[spec] = i
        specs.append(spec)
    device = data.get("device", "auto")
    if not isinstance(device, str):
        raise InputError(f"{path}: 'device' must be a string such as auto, cpu or cuda")
    return RunGrid(specs, device)


@dataclass
class TrainReport:
    """What :func:`train_grid` did: every run (in the file's order) and those it trained
    (the others came from the cache)."""

    runs: list[Run]
    trained: list[RunSpec]


def _stamp(spec: RunSpec, cache: Path) -> tuple[int, int] | None:
    """Identity of a cached run's ``meta.json`` (inode, mtime), None when absent."""
    try:
        st = os.stat(run_dir(spec, cache) / "meta.json")
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def train_grid(path: Path, scheduler: str | None = None, jobs: int = 1,
               device: str | None = None, cache: Path | None = None) -> TrainReport:
    """Train every run of the grid file ``path`` into the cache (see the module docstring).

    Parameters
    ----------
    path : the grid file.
    scheduler : a running Dask scheduler's address; or
    jobs : > 1: a local Dask cluster of that many worker processes (default: this process).
    device : overrides the file's ``device``; on CUDA every run group asks its worker for
        one ``GPU`` resource.
    cache : the runs' cache folder (default ``cache_dir("runs")``, the shared one).

    Returns
    -------
    TrainReport
    """
    cluster.check_request(scheduler, jobs)
    grid = load_run_grid(path)
    try:
        dev = resolve_device(device or grid.device)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: device: {str(exc).splitlines()[0]}") from None
    cache = Path(cache) if cache is not None else cache_dir("runs")
    before = {s: _stamp(s, cache) for s in grid.specs}
    with cluster.executor(scheduler, jobs, gpu=dev.type == "cuda", shared=[cache]) as ex:
        runs = train(grid.specs, executor=ex, device=str(dev), cache=cache)
    return TrainReport(runs, [s for s in grid.specs if _stamp(s, cache) != before[s]])
