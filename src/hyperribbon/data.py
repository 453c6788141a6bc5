"""Datasets: registry, lookup, checksum verification, loaders.

One data root (``HYPERRIBBON_DATA``, default ``data/raw`` under the compendium) in
torchvision's layout, ``<root>/<folder>/<file>``. A file is looked up there, then in the
dataset's system locations (e.g. Debian's ``/usr/share/datasets/fashion-mnist``, where
files are gzip'd), then (when allowed) downloaded through torchvision. Every file's hash
(of the uncompressed bytes) is checked against ``data/datasets.yml`` before use; a
mismatch is a :class:`DataError` naming the file and both hashes. Nothing is used
silently and nothing is overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .paths import data_root, repo_root

_VERIFIED: dict[str, str] = {}
_HASH_CACHE: dict[tuple[str, int, int, str], str] = {}


class DataError(RuntimeError):
    """A dataset file is missing, corrupt, or unreadable."""


class DataMissing(DataError):
    """A dataset's files are not here (as opposed to here but corrupt or unreadable)."""


def downloads_allowed() -> bool:
    """Whether missing data may be downloaded: ``HYPERRIBBON_DOWNLOAD`` is not ``0``."""
    return os.environ.get("HYPERRIBBON_DOWNLOAD", "1") != "0"


# ---------------------------------------------------------------------------------------
# Registry and locations

def registry_path() -> Path:
    """``data/datasets.yml`` of the compendium (``HYPERRIBBON_REGISTRY`` overrides)."""
    if os.environ.get("HYPERRIBBON_REGISTRY"):
        return Path(os.environ["HYPERRIBBON_REGISTRY"])
    return repo_root() / "data" / "datasets.yml"


def registry(path: Path | None = None) -> dict[str, dict]:
    """The dataset registry: name → entry (folder, format, splits, files and hashes,
    system locations, source, license, citation)."""
    path = path or registry_path()
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping dataset name → entry")
    return data


def entry(name: str, reg: dict | None = None) -> dict:
    """One registry entry, with a clear error for an unknown name."""
    reg = reg if reg is not None else registry()
    if name not in reg:
        raise DataError(f"unknown dataset {name!r}; registered: {', '.join(sorted(reg))}")
    return reg[name]


# ---------------------------------------------------------------------------------------
# Hashes

def file_hash(path: Path, algo: str = "sha256") -> str:
    """Hash of a file's content; a ``.gz`` file is hashed decompressed."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, algo)
    if key in _HASH_CACHE:
        return _HASH_CACHE[key]
    h = hashlib.new(algo)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); the file is corrupt or truncated, "
                        "delete it and fetch it again") from exc
    _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def _expected(spec: dict) -> tuple[str, str]:
    for algo in ("sha256", "md5"):
        if spec.get(algo):
            return algo, str(spec[algo])
    raise DataError(f"registry entry {spec!r} has no sha256 or md5")


def verify(path: Path, spec: dict) -> str:
    """Check a file against its registry hash; return the hash. Raises :class:`DataError`
    naming the file and both hashes on a mismatch."""
    algo, want = _expected(spec)
    got = file_hash(path, algo)
    if got != want:
        raise DataError(f"{path}: {algo} mismatch — expected {want}, found {got}. The file is "
                        "corrupt or a different version; it was not used. Delete it and "
                        "fetch it again (hyperribbon data get).")
    _VERIFIED[str(path)] = f"{algo}:{got}" if algo != "sha256" else got
    return got


def verified_files() -> dict[str, str]:
    """Files verified in this process (path → hash), for provenance."""
    return dict(_VERIFIED)


# ---------------------------------------------------------------------------------------
# Finding files

def candidates(name: str, filename: str, root: Path | None = None,
               reg: dict | None = None) -> list[Path]:
    """Where ``filename`` of dataset ``name`` may be, in order of preference."""
    e = entry(name, reg)
    root = Path(root) if root is not None else data_root()
    out = [root / e["folder"] / filename, root / e["folder"] / f"{filename}.gz"]
    for sysdir in e.get("system", []) or []:
        out += [Path(sysdir) / filename, Path(sysdir) / f"{filename}.gz"]
    return out


def locate(name: str, split: str | None = None, root: Path | None = None,
           reg: dict | None = None, download: bool | None = None) -> dict[str, Path]:
    """Find and verify the files of a dataset (one split, or all of it).

    The first existing candidate of each file is verified; a corrupt file is an error, it
    is never skipped for a later candidate. Missing files are downloaded when ``download``
    (default: ``HYPERRIBBON_DOWNLOAD`` is not ``0``), else a :class:`DataError` says where
    they were looked for and how to get them.
    """
    e = entry(name, reg)
    if split is not None and split not in e["splits"]:
        raise DataError(f"dataset {name!r} has no split {split!r}; "
                        f"splits: {', '.join(e['splits'])}")
    wanted = e["splits"][split] if split else list(e["files"])
    root = Path(root) if root is not None else data_root()
    found, missing = {}, []
    for fn in wanted:
        hit = next((p for p in candidates(name, fn, root, reg) if p.exists()), None)
        if hit is None:
            missing.append(fn)
        else:
            verify(hit, e["files"][fn])
            found[fn] = hit
    if missing:
        if download is None:
            download = downloads_allowed()
        if download:
            fetch(name, root, reg)
            return locate(name, split, root, reg, download=False)
        looked = ", ".join(str(p) for p in candidates(name, missing[0], root, reg))
        raise DataMissing(
            f"dataset {name!r}: missing {', '.join(missing)} (looked in {looked}). "
            f"Get it with `hyperribbon data get {name}` (needs a network; source: "
            f"{e.get('source', '?')}) or place the files under {root / e['folder']}.")
    return found


def fetch(name: str, root: Path | None = None, reg: dict | None = None) -> Path:
    """Download a dataset through torchvision into the data root, then verify it."""
    import torchvision.datasets as tvd

    root = Path(root) if root is not None else data_root()
    root.mkdir(parents=True, exist_ok=True)
    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}
    if name not in cls:
        raise DataError(f"no downloader for {name!r}; place its files under the data root")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        for train in (True, False):
            cls[name](str(root), train=train, download=True)
    except Exception as exc:
        raise DataError(f"downloading {name!r} failed ({type(exc).__name__}: {exc}); "
                        f"place the files under {root} by hand") from exc
    finally:
        socket.setdefaulttimeout(old)
    return root / entry(name, reg)["folder"]


@dataclass
class Status:
    """Whether a dataset is usable here."""

    name: str
    status: str  # present, missing, corrupt
    detail: str


def check(root: Path | None = None, reg: dict | None = None) -> list[Status]:
    """Every registered dataset as present / missing / corrupt (no download)."""
    reg = reg if reg is not None else registry()
    out = []
    for name in reg:
        try:
            files = locate(name, root=root, reg=reg, download=False)
            where = sorted({str(p.parent) for p in files.values()})
            out.append(Status(name, "present", ", ".join(where)))
        except DataError as exc:
            kind = "missing" if isinstance(exc, DataMissing) else "corrupt"
            out.append(Status(name, kind, str(exc)))
    return out


# ---------------------------------------------------------------------------------------
# Readers

def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format: magic 0x0000080D, big-endian dims)."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    n = int(np.prod(dims))
    if len(raw) != 4 + 4 * ndim + n:
        raise DataError(f"{path}: IDX size mismatch (header says {tuple(dims)})")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR-10 python pickle batch → (images uint8 (n, 3, 32, 32), labels int64)."""
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path}: not a CIFAR-10 batch (no data/labels keys)")
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels,
                                                                              dtype=np.int64)


def load_images(name: str, split: str = "train", root: Path | None = None,
                reg: dict | None = None, download: bool | None = None) -> tuple[Any, Any]:
    """Load an image classification dataset as torch tensors.

    Returns
    -------
    images : float32 tensor (N, C, H, W) with values in [0, 1]
    labels : int64 tensor (N,)
    """
    import torch

    e = entry(name, reg)
    files = locate(name, split, root, reg, download)
    if e["format"] == "idx":
        img_f, lab_f = e["splits"][split]
        x = read_idx(files[img_f])[:, None, :, :]
        y = read_idx(files[lab_f]).astype(np.int64)
    elif e["format"] == "cifar-pickle":
        parts = [read_cifar_batch(files[f]) for f in e["splits"][split]]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
    else:
        raise DataError(f"dataset {name!r}: unknown format {e['format']!r}")
    if len(x) != len(y):
        raise DataError(f"dataset {name!r} ({split}): {len(x)} images but {len(y)} labels")
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y)
