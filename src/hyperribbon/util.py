"""Small helpers shared by every module: device choice, progress bars, atomic writes,
thread control (and the cache folder, from :mod:`hyperribbon.paths`)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from .paths import cache_dir

__all__ = ["InputError", "atomic_path", "cache_dir", "interactive", "progress", "read_yaml",
           "resolve_device", "torch_threads"]


class InputError(ValueError):
    """A mistake in what was asked for: a file that is missing, unreadable or not valid
    YAML, an unknown name. The command line prints it as one line and exits with 2."""


def read_yaml(path: Path | str, what: str = "a mapping") -> dict:
    """The mapping in the YAML file ``path`` (an empty file is ``{}``); a missing or
    unreadable file, invalid YAML or anything but a mapping is an :class:`InputError`
    of one line naming the file and ``what`` was expected there."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc.__class__.__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(f"{path}: not valid YAML{where} ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected {what}, found a {type(data).__name__}")
    return data

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


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """A temporary path beside ``dest`` to write to; when the block ends without an
    error it replaces ``dest`` in one step (readers see the old file or the new one,
    never half of one), else it is removed and ``dest`` is left as it was.

    >>> with atomic_path(folder / "table.csv") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("a,b")
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


class torch_threads:  # lower case: used like a function, as torch.set_grad_enabled
    """Set torch's intra-op threads to ``n`` (``None``: leave the setting as it is).

    As a context manager the previous setting is restored when the block ends, also on
    an error; called as a plain statement (a notebook's first cell) it holds for the rest
    of the process, like ``torch.set_grad_enabled``.
    """

    def __init__(self, n: int | None) -> None:
        import torch

        self.previous = torch.get_num_threads()
        if n is not None:
            if n < 1:
                raise ValueError(f"threads = {n}: at least one thread")
            torch.set_num_threads(n)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self.previous)
