"""Small helpers shared by every module: device choice, progress bars, cache folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def resolve_device(device: str = "auto"):
    """Return a ``torch.device``: "auto" picks CUDA when present, else the CPU.

    Any other string ("cpu", "cuda", "cuda:1") is passed to torch; asking for CUDA on a
    machine without it is an error that says so.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here")
    return dev


def interactive() -> bool:
    """True when progress bars should be drawn: not in CI, not in a notebook executed by
    the runner (``HYPERRIBBON_PROGRESS=0``: the bars would end up in the book), and
    stderr is a terminal or we are inside an interactive Jupyter kernel."""
    if os.environ.get("CI") or os.environ.get("HYPERRIBBON_PROGRESS") == "0":
        return False
    if "ipykernel" in sys.modules:
        return True
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None,
             **kwargs) -> Iterator[T]:
    """A tqdm progress bar on interactive runs; the bare iterable in CI logs."""
    if not interactive():
        return iter(iterable)
    from tqdm import tqdm  # text bars: no widget backend needed in a kernel

    return iter(tqdm(iterable, desc=desc, total=total, **kwargs))


def cache_dir(*parts: str) -> Path:
    """Folder for cached computations (trained weights, trajectories).

    ``HYPERRIBBON_CACHE`` when set, else ``~/.cache/hyperribbon``. Created on demand.
    """
    root = Path(os.environ.get("HYPERRIBBON_CACHE", Path.home() / ".cache" / "hyperribbon"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
