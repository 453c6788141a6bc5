"""InPCA for anyone's models: prediction files in, an embedding out.

:func:`embed` takes the class probabilities of a set of models -- an ``.npy``/``.npz``
array (models x samples x classes), or a folder of per-run files as the training engine
writes them -- checks them, computes the Bhattacharyya distances and the InPCA embedding
(``hyperribbon.inpca``: row blocks, in-place centring, a partial eigensolver at both ends
of the spectrum; landmarks for very many models), and writes:

* ``coords.csv``: one row per model (its run, checkpoint index, and k coordinates);
* ``spectrum.csv``: the k eigenvalues with their signs (time-like axes are negative) and
  the explained stress of the first 1..k axes;
* ``embedding.npz``: the same arrays, the total ||W||_F^2 and the clamp count;
* ``embedding.png``: the first three axes in 3-D, time-like axes labelled, each run a
  coloured trajectory.

Researchers with their own training runs need neither the book nor the CLI:
``embed("runs/", k=10, out_dir="embedding")``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperribbon.inpca import (
    CLAMP,
    RowStack,
    _as_probabilities,
    _validate,
    bhattacharyya,
    inpca,
    landmark_inpca,
    report_clamp,
)
from hyperribbon.util import atomic_path

__all__ = ["Embedding", "Predictions", "embed", "load_predictions"]


@dataclass(frozen=True)
class Predictions:
    """Validated predictions of N models, possibly from several runs.

    Attributes
    ----------
    array : (N, M, C) array-like (a memmap or a :class:`~hyperribbon.inpca.RowStack`)
    runs : names of the runs (file stems or npz keys)
    run : (N,) index into ``runs`` of each model
    checkpoint : (N,) index of each model within its run
    source : where they were read from
    """

    array: Any
    runs: list[str]
    run: np.ndarray
    checkpoint: np.ndarray
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """(N, M, C)."""
        return tuple(self.array.shape)


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _checked(a: Any, name: str) -> Any:
    """A (K, M, C) view of one file's array, validated (ValueError naming the file)."""
    if getattr(a, "ndim", 0) == 2:
        a = a[None]
    if getattr(a, "ndim", 0) != 3:
        raise ValueError(f"{name}: predictions must have shape (models, samples, classes) "
                         f"or (samples, classes), got {tuple(np.shape(a))}")
    a = _as_probabilities(a, name)
    _validate(a, name)
    return a


def load_predictions(source: Any, *, name: str | None = None) -> Predictions:
    """Read and validate predictions from a file or a folder.

    Parameters
    ----------
    source : str or Path
        * ``.npy``: one array (N, M, C) (memory-mapped, read block by block) or (M, C);
        * ``.npz``: one array as for ``.npy``, or several, each a run (K_r, M, C);
        * a folder: every ``*.npy`` in it is a run (natural order of the names), or,
          in the training engine's layout (a folder of run folders holding
          ``probs_<set>.npy``), the ``probs_<set>.npy`` of every run; ``name`` picks the
          set when there are several.
    name : str, optional
        The recorded set (``probs_<name>.npy``) in the training engine's layout.

    Returns
    -------
    Predictions

    Raises
    ------
    FileNotFoundError
        No such file or folder, or a folder without prediction files.
    ValueError
        A file of the wrong shape or whose (samples, classes) differ from the first, or
        a row that is not finite, negative or does not sum to 1 (within
        :func:`~hyperribbon.inpca.sum_tolerance`: float32 softmax over 1000 classes
        passes); the message names the file, the model and the sample.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"predictions not found: {path}")
    if path.is_dir():
        files = sorted(path.glob("*.npy"), key=_natural)
        probs = [f for f in files if f.stem.startswith("probs_")]
        probs += sorted(path.glob("*/probs_*.npy"), key=_natural)
        if probs:
            sets = sorted({f.stem[len("probs_"):] for f in probs})
            if name is None and len(sets) > 1:
                raise ValueError(f"{path}: several recorded sets ({', '.join(sets)}); "
                                 "pick one with name=")
            want = sets[0] if name is None else name
            files = [f for f in probs if f.stem == f"probs_{want}"]
            labels = [f.parent.name if f.parent != path else f.stem for f in files]
        else:
            labels = [f.stem for f in files]
        if not files:
            raise FileNotFoundError(f"{path}: no prediction files (*.npy"
                                    + (f", probs_{name}.npy" if name else "") + ")")
        arrays = [_checked(np.load(f, mmap_mode="r"), str(f)) for f in files]
    elif path.suffix == ".npy":
        arrays, labels = [_checked(np.load(path, mmap_mode="r"), str(path))], [path.stem]
    elif path.suffix == ".npz":
        with np.load(path) as z:
            keys = list(z.files)
            if not keys:
                raise ValueError(f"{path}: the archive holds no arrays")
            arrays = [_checked(z[k], f"{path}[{k}]") for k in keys]
        labels = keys if len(keys) > 1 else [path.stem]
    else:
        raise ValueError(f"{path}: expected a .npy or .npz file or a folder, got "
                         f"{path.suffix or 'no suffix'}")
    stack = RowStack(arrays, names=[str(f) for f in files] if path.is_dir() else labels)
    array = arrays[0] if len(arrays) == 1 else stack
    return Predictions(array=array, runs=labels, run=stack.run, checkpoint=stack.checkpoint,
                       source=str(path))


@dataclass(frozen=True)
class Embedding:
    """What :func:`embed` computed and wrote.

    Attributes
    ----------
    coords : (N, k) InPCA coordinates
    eigenvalues : (k,) signed eigenvalues (by |lambda|)
    explained_stress : (k,) explained stress of the first 1..k axes
    total : ||W||_F^2 (of the landmarks' W when landmarks are used)
    n_clamped : coefficients that hit the clamp
    landmarks : (L,) indices of the landmarks, or None (exact InPCA)
    files : name -> path of every file written
    """

    coords: np.ndarray
    eigenvalues: np.ndarray
    explained_stress: np.ndarray
    total: float
    n_clamped: int
    landmarks: np.ndarray | None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def signs(self) -> np.ndarray:
        """+1 space-like, -1 time-like axes."""
        return np.where(self.eigenvalues < 0, -1.0, 1.0)


def embed(
    predictions: Any,
    k: int = 10,
    out_dir: Any = "embedding",
    *,
    name: str | None = None,
    landmarks: int | None = None,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "float64",
    memmap: bool = False,
    figure: bool = True,
) -> Embedding:
    """InPCA embedding of a set of models, written to ``out_dir``.

    Parameters
    ----------
    predictions : str, Path, Predictions or array_like (N, M, C)
        A path as :func:`load_predictions` takes, loaded predictions, or an array.
    k : int
        Components (at most N - 1; fewer are computed when N is small).
    out_dir : str or Path
        Created if needed; ``coords.csv``, ``spectrum.csv``, ``embedding.npz`` and
        ``embedding.png`` are written there (each atomically).
    name : str, optional
        Recorded set, for the training engine's folder layout.
    landmarks : int, optional
        Embed this many randomly chosen models exactly and place the others by the
        Gower projection (for more models than an N x N matrix allows).
    seed : int
        Seed of the landmark draw and the eigensolver.
    device : str
        "auto", "cpu", "cuda": where the distances are computed.
    dtype : {"float64", "float32"}
        Precision of the Bhattacharyya coefficients (see ``bhattacharyya``).
    memmap : bool
        Keep the N x N matrix in ``out_dir/distances.npy`` (a memory map; after the run it
        holds the double-centred W) instead of in memory.
    figure : bool
        Write the 3-D figure.

    Returns
    -------
    Embedding
    """
    if isinstance(predictions, Predictions):
        pred = predictions
    elif isinstance(predictions, str | Path):
        pred = load_predictions(predictions, name=name)
    else:
        arr = _checked(predictions, "predictions")
        n = arr.shape[0]
        pred = Predictions(array=arr, runs=["predictions"], run=np.zeros(n, dtype=int),
                           checkpoint=np.arange(n), source="array")
    N, M, _ = pred.shape
    if N < 2:
        raise ValueError(f"{pred.source}: need at least 2 models to embed, got {N}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if landmarks is not None and landmarks < N:
        kk = min(k, landmarks - 1)
        lm = landmark_inpca(pred.array, kk, landmarks, seed=seed, device=device, dtype=dtype)
        ref, coords, n_clamped, idx = lm.reference, lm.coords, lm.n_clamped, lm.landmarks
    else:
        kk = min(k, N - 1)
        D, n_clamped = bhattacharyya(pred.array, device=device, dtype=dtype,
                                     out=out / "distances.npy" if memmap else None,
                                     return_clamped=True)
        report_clamp(n_clamped, N * N * M, "embed", CLAMP)
        ref = inpca(D, kk, seed=seed, overwrite=True)
        del D
        coords, idx = ref.coords, None
    res = Embedding(coords=coords, eigenvalues=ref.eigenvalues,
                    explained_stress=ref.explained_stress, total=ref.total,
                    n_clamped=n_clamped, landmarks=idx)
    files = _write(res, pred, out, figure)
    return Embedding(**{**res.__dict__, "files": files})


def _write(res: Embedding, pred: Predictions, out: Path, figure: bool) -> dict[str, Path]:
    files = {"coords": out / "coords.csv", "spectrum": out / "spectrum.csv",
             "npz": out / "embedding.npz"}
    k = res.eigenvalues.size
    with atomic_path(files["coords"]) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "run", "checkpoint", *[f"x{a + 1}" for a in range(k)]])
        for i, x in enumerate(res.coords):
            w.writerow([i, pred.runs[pred.run[i]], int(pred.checkpoint[i]),
                        *[f"{v:.10g}" for v in x]])
    with atomic_path(files["spectrum"]) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["component", "eigenvalue", "axis", "explained_stress"])
        for a, (lam, es) in enumerate(zip(res.eigenvalues, res.explained_stress, strict=True)):
            w.writerow([a + 1, f"{lam:.12g}", "time-like" if lam < 0 else "space-like",
                        f"{es:.12g}"])
    with atomic_path(files["npz"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, coords=res.coords, eigenvalues=res.eigenvalues,
                     explained_stress=res.explained_stress, total=res.total,
                     n_clamped=res.n_clamped, run=pred.run, checkpoint=pred.checkpoint,
                     runs=np.array(pred.runs),
                     landmarks=np.array([], dtype=int) if res.landmarks is None
                     else res.landmarks)
    if figure:
        files["figure"] = out / "embedding.png"
        with atomic_path(files["figure"]) as tmp:
            _figure(res, pred).savefig(tmp, format="png", dpi=120)
    return files


def _figure(res: Embedding, pred: Predictions) -> Any:
    """The first three axes (fewer when k < 3), a colour per run, checkpoints joined."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    X = res.coords
    d = min(3, X.shape[1])
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.add_subplot(projection="3d" if d == 3 else None)
    cmap = colormaps["tab10" if len(pred.runs) <= 10 else "viridis"]
    for r, label in enumerate(pred.runs):
        sel = pred.run == r
        colour = cmap(r if len(pred.runs) <= 10 else r / max(1, len(pred.runs) - 1))
        pts = [X[sel, a] for a in range(d)] if d > 1 else [X[sel, 0], np.zeros(sel.sum())]
        ax.plot(*pts, "-o", color=colour, ms=3, lw=0.8, alpha=0.8,
                label=label if len(pred.runs) <= 10 else None)
    for a, setter in enumerate([ax.set_xlabel, ax.set_ylabel, getattr(ax, "set_zlabel", None)]
                               [:d]):
        kind = "time-like" if res.eigenvalues[a] < 0 else "space-like"
        setter(f"InPCA {a + 1} ({kind}, λ = {res.eigenvalues[a]:.3g})")
    how = f", {res.landmarks.size} landmarks" if res.landmarks is not None else ""
    ax.set_title(f"{X.shape[0]} models{how}: explained stress of {d} axes "
                 f"{res.explained_stress[d - 1]:.3f}")
    if len(pred.runs) <= 10:
        ax.legend(fontsize="small")
    return fig
