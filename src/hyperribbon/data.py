"""Datasets: the one registry, lookup, checksum verification, downloads, image loaders.

Every dataset the compendium reads is an entry of ``data/datasets.yml`` with its
``kind`` (``images``: small, fetched through torchvision when missing; ``expression``:
large, fetched from the registered URLs only on request), its ``sizes``, files and
hashes, source, license and citation. One data root (``HYPERRIBBON_DATA``, default
``data/raw`` under the compendium) in torchvision's layout, ``<root>/<folder>/<file>``.
A file is looked up there, then in the dataset's system locations (e.g. Debian's
``/usr/share/datasets/fashion-mnist``, where files are gzip'd). Every file with a
registered hash (of the uncompressed bytes) is checked before use; a mismatch is a
:class:`DataError` naming the file and both hashes. Nothing is used silently and nothing
is overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .paths import data_root, repo_root
from .util import InputError, atomic_path, read_yaml

_VERIFIED: dict[str, str] = {}
_HASH_CACHE: dict[tuple[str, int, int, str], str] = {}


class DataError(RuntimeError):
    """A dataset file is missing, corrupt, or unreadable."""


class DataMissing(DataError):
    """A dataset's files are not here (as opposed to here but corrupt or unreadable)."""


class UnknownDataset(DataError, InputError):
    """A name that is not in the registry (a mistake in what was asked for)."""


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
    """The dataset registry: name → entry (kind, sizes, folder, files and hashes, system
    locations, source, license, citation; images also format, classes, shape, splits)."""
    return read_yaml(path or registry_path(), "a mapping dataset name → entry")


def entry(name: str, reg: dict | None = None) -> dict:
    """One registry entry; an unknown name is an :class:`UnknownDataset` listing them."""
    reg = reg if reg is not None else registry()
    if name not in reg:
        raise UnknownDataset(f"unknown dataset {name!r}; registered: {', '.join(sorted(reg))}")
    return reg[name]


def size(name: str, split: str, reg: dict | None = None) -> int:
    """How many examples split ``split`` of dataset ``name`` holds (its registered size)."""
    sizes = entry(name, reg).get("sizes") or {}
    if split not in sizes:
        raise DataError(f"dataset {name!r}: no registered size of split {split!r}")
    return int(sizes[split])


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


def _by_url(e: dict) -> bool:
    """Whether a dataset is fetched from its registered URLs (else through torchvision)."""
    return all(spec.get("url") for spec in e["files"].values())


def locate(name: str, split: str | None = None, root: Path | None = None,
           reg: dict | None = None, download: bool | None = None,
           files: list[str] | None = None) -> dict[str, Path]:
    """Find and verify the files of a dataset: ``files``, else one split's, else all
    but the optional ones.

    The first existing candidate of each file is verified against its registered hash
    (a file without one is used unverified, and :func:`check` says so); a corrupt file
    is an error, it is never skipped for a later candidate. Missing files are fetched
    when ``download`` (default: for ``kind: images`` when ``HYPERRIBBON_DOWNLOAD`` is not
    ``0``; large sets only on request), else a :class:`DataMissing` says where they were
    looked for and how to get them.
    """
    e = entry(name, reg)
    if split is not None and split not in e.get("splits", {}):
        raise DataError(f"dataset {name!r} has no split {split!r}; "
                        f"splits: {', '.join(e.get('splits', {})) or 'none'}")
    if files is not None:
        wanted = list(files)
    elif split is not None:
        wanted = e["splits"][split]
    else:
        wanted = [f for f, spec in e["files"].items() if not spec.get("optional")]
    root = Path(root) if root is not None else data_root()
    found, missing = {}, []
    for fn in wanted:
        hit = next((p for p in candidates(name, fn, root, reg) if p.exists()), None)
        if hit is None:
            missing.append(fn)
            continue
        if any(e["files"][fn].get(algo) for algo in ("sha256", "md5")):
            verify(hit, e["files"][fn])
        found[fn] = hit
    if not missing:
        return found
    if download is None:
        download = e.get("kind") == "images" and downloads_allowed()
    if download:
        fetch(name, root, reg)
        return locate(name, split, root, reg, download=False, files=files)
    looked = ", ".join(str(p) for p in candidates(name, missing[0], root, reg))
    urls = "; ".join(f"{fn} ← {e['files'][fn]['url']}" for fn in missing
                     if e["files"][fn].get("url"))
    raise DataMissing(
        f"dataset {name!r} ({e.get('title', name)}): missing {', '.join(missing)} (looked in "
        f"{looked}). Get it with `hyperribbon data get {name}` (needs a network; source: "
        f"{e.get('source', '?')}) or place the files under {root / e['folder']}"
        + (f" ({urls})." if urls else "."))


def fetch(name: str, root: Path | None = None, reg: dict | None = None,
          timeout: float = 60.0) -> Path:
    """Download a dataset into the data root (needs a network): from its registered URLs
    (existing files kept), else through torchvision; then verify it. Refused when
    ``HYPERRIBBON_DOWNLOAD=0``."""
    e = entry(name, reg)
    root = Path(root) if root is not None else data_root()
    folder = root / e["folder"]
    if not downloads_allowed():
        raise DataError(f"dataset {name!r}: files missing in {folder}, and downloads are "
                        "off (HYPERRIBBON_DOWNLOAD=0)")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        if _by_url(e):
            for fn, spec in e["files"].items():
                if not (folder / fn).exists():
                    _download(spec["url"], folder / fn)
        else:
            _fetch_torchvision(name, root)
    finally:
        socket.setdefaulttimeout(old)
    locate(name, root=root, reg=reg, download=False, files=list(e["files"]))
    return folder


def _download(url: str, dest: Path) -> None:
    try:
        with atomic_path(dest) as tmp:
            urllib.request.urlretrieve(url, tmp)
    except Exception as exc:
        raise DataError(f"downloading {url} failed ({type(exc).__name__}: {exc}); place "
                        f"{dest.name} in {dest.parent} by hand") from exc


def _fetch_torchvision(name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}
    if name not in cls:
        raise DataError(f"no downloader for {name!r}; place its files under the data root")
    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            cls[name](str(root), train=train, download=True)
    except Exception as exc:
        raise DataError(f"downloading {name!r} failed ({type(exc).__name__}: {exc}); "
                        f"place the files under {root} by hand") from exc


@dataclass
class Status:
    """Whether a dataset is usable here."""

    name: str
    status: str  # present, missing, corrupt
    detail: str


def check(root: Path | None = None, reg: dict | None = None,
          names: list[str] | None = None) -> list[Status]:
    """Every registered dataset (or those in ``names``) as present / missing / corrupt,
    never downloading; "present" says when a file has no registered hash to verify."""
    reg = reg if reg is not None else registry()
    out = []
    for name in names or list(reg):
        e = entry(name, reg)
        try:
            files = locate(name, root=root, reg=reg, download=False)
        except DataError as exc:
            kind = "missing" if isinstance(exc, DataMissing) else "corrupt"
            out.append(Status(name, kind, str(exc)))
            continue
        where = ", ".join(sorted({str(p.parent) for p in files.values()}))
        unverified = [fn for fn in files
                      if not any(e["files"][fn].get(a) for a in ("sha256", "md5"))]
        note = f" (no registered sha256 for {', '.join(unverified)})" if unverified else ""
        out.append(Status(name, "present", where + note))
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
