"""Where things are: the compendium's root, its data root and the cache.

The one place every module (science, machinery, tests) asks for a folder. Each answer
can be redirected by an environment variable: ``HYPERRIBBON_ROOT`` (the checkout),
``HYPERRIBBON_DATA`` (the data root), ``HYPERRIBBON_CACHE`` (cached computations).
"""

from __future__ import annotations

import os
from pathlib import Path


class RootNotFound(RuntimeError):
    """No folder holding ``notebooks/profiles.yml`` was found."""


def repo_root(start: Path | None = None) -> Path:
    """The compendium's root: the nearest folder upward holding ``notebooks/profiles.yml``
    (from ``HYPERRIBBON_ROOT``, else ``start`` or the working directory, else the
    package's own checkout)."""
    candidates = []
    if os.environ.get("HYPERRIBBON_ROOT"):
        candidates.append(Path(os.environ["HYPERRIBBON_ROOT"]))
    candidates.append(start or Path.cwd())
    candidates.append(Path(__file__).resolve().parents[2])
    for c in candidates:
        for d in (c.resolve(), *c.resolve().parents):
            if (d / "notebooks" / "profiles.yml").exists():
                return d
    raise RootNotFound("cannot find the compendium root (a folder with "
                       "notebooks/profiles.yml); run from inside the repository or set "
                       "HYPERRIBBON_ROOT")


def data_root() -> Path:
    """``HYPERRIBBON_DATA`` when set, else ``data/raw`` in the compendium."""
    if os.environ.get("HYPERRIBBON_DATA"):
        return Path(os.environ["HYPERRIBBON_DATA"]).expanduser()
    return repo_root() / "data" / "raw"


def cache_dir(*parts: str) -> Path:
    """Folder for cached computations (trained weights, trajectories).

    ``HYPERRIBBON_CACHE`` when set, else ``~/.cache/hyperribbon``. Created on demand.
    """
    root = Path(os.environ.get("HYPERRIBBON_CACHE", Path.home() / ".cache" / "hyperribbon"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
