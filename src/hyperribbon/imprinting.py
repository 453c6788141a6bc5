"""Imprinting: any network, trained on any task, as a model over all classes (chapter 5).

Drop the task's head; the penultimate features of a fixed *imprinting set* give one
prototype per class of the full label set (the class mean); on a fixed *evaluation set*
the logits are -||f - mu_c||^2 (no temperature) and the prediction is their softmax over
all C classes. Every checkpoint of every task then lives in one space of models.

A task B (a subset of classes) is measured on its own terms: the evaluation samples are
restricted to B's classes, the prediction to B's columns, renormalised with a log-softmax
over those columns (from logits or log-probabilities: probabilities underflow for sharp
models), and progress is measured against B's own P0 (uniform over B) and P* (one-hot).

Everything numerical is float64 numpy; torch tensors are accepted as inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax

from hyperribbon.trajectory import one_hot, progress, uniform

__all__ = [
    "extract_features",
    "imprint",
    "imprinted_logits",
    "imprinting_split",
    "log_probs",
    "progress_on_task",
    "prototypes",
    "restrict_log_probs",
    "restrict_samples",
    "task_view",
    "transfer_matrix",
]


def _f64(x: Any, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    """float64 numpy copy of an array or torch tensor, checked for ndim and finiteness."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in dims:
        raise ValueError(f"{name} must have {' or '.join(map(str, dims))} dimensions, "
                         f"got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds non-finite values")
    return a


def _labels(y: Any, name: str = "labels") -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-d array of integers")
    return y.astype(np.int64)


def extract_features(module: Any, images: Any, batch_size: int = 512,
                     device: str = "auto") -> np.ndarray:
    """Outputs of a torch module (the network without its head) on images, in batches.

    Parameters
    ----------
    module : torch.nn.Module, mapping (B, ...) to (B, D); run in eval mode, no gradients
        (its training mode is restored afterwards).
    images : torch.Tensor, shape (N, ...)
    batch_size : int
    device : "auto", "cpu", "cuda", ...

    Returns
    -------
    numpy.ndarray, shape (N, D), float64
    """
    import torch

    from hyperribbon.util import resolve_device

    dev = resolve_device(device)
    was_training = module.training
    module.eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                f = module(images[i:i + batch_size].to(dev))
                out.append(f.reshape(f.shape[0], -1).double().cpu().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0))


def imprinting_split(labels: Any, n_imprint: int, n_eval: int, seed: int = 0,
                     same_set: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced, fixed imprinting and evaluation sets drawn from one pool.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Labels of the pool (e.g. the test split).
    n_imprint, n_eval : int
        Samples per class of each set.
    seed : int
    same_set : bool
        The authors' choice: the evaluation set also serves as imprinting set
        (``n_imprint`` is then unused). Default False: the two are disjoint.

    Returns
    -------
    imprint_index, eval_index : numpy.ndarray of int64, sorted positions in ``labels``
    """
    y = _labels(labels)
    need = n_eval if same_set else n_imprint + n_eval
    if n_eval < 1 or (not same_set and n_imprint < 1):
        raise ValueError(f"need n_imprint >= 1 and n_eval >= 1, got {n_imprint}, {n_eval}")
    rng = np.random.default_rng(seed)
    imp, ev = [], []
    for c in np.unique(y):
        pos = np.flatnonzero(y == c)
        if pos.size < need:
            raise ValueError(f"class {c} has {pos.size} samples; the split needs {need} "
                             "per class")
        pick = rng.permutation(pos)[:need]
        ev.append(pick[:n_eval])
        imp.append(pick[:n_eval] if same_set else pick[n_eval:])
    return np.sort(np.concatenate(imp)), np.sort(np.concatenate(ev))


def prototypes(features: Any, labels: Any, n_classes: int) -> np.ndarray:
    """Class-mean features (one prototype per class).

    Parameters
    ----------
    features : array_like, shape (N, D)
    labels : array_like of int, shape (N,)
    n_classes : int

    Returns
    -------
    numpy.ndarray, shape (n_classes, D), float64
    """
    F = _f64(features, "features", 2)
    y = _labels(labels)
    if y.size != F.shape[0]:
        raise ValueError(f"{F.shape[0]} feature rows but {y.size} labels")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes - 1}]")
    counts = np.bincount(y, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"no imprinting sample of class(es) {np.flatnonzero(counts == 0)}")
    sums = np.zeros((n_classes, F.shape[1]))
    np.add.at(sums, y, F)
    return sums / counts[:, None]


def imprinted_logits(features: Any, protos: Any) -> np.ndarray:
    """Logits -||f_n - mu_c||^2 (float64; squared distances clipped at 0 against rounding).

    Parameters
    ----------
    features : array_like, shape (M, D)
    protos : array_like, shape (C, D)

    Returns
    -------
    numpy.ndarray, shape (M, C)
    """
    F, P = _f64(features, "features", 2), _f64(protos, "protos", 2)
    if F.shape[1] != P.shape[1]:
        raise ValueError(f"features have {F.shape[1]} dimensions, prototypes {P.shape[1]}")
    d2 = (F**2).sum(1)[:, None] - 2.0 * F @ P.T + (P**2).sum(1)[None, :]
    return -np.maximum(d2, 0.0)


def log_probs(logits: Any) -> np.ndarray:
    """Log-softmax over the last axis (float64), shape kept."""
    return log_softmax(_f64(logits, "logits", (1, 2, 3)), axis=-1)


def imprint(imprint_features: Any, imprint_labels: Any, eval_features: Any,
            n_classes: int) -> np.ndarray:
    """Imprinted log-probabilities of one model on the evaluation set.

    Returns
    -------
    numpy.ndarray, shape (M, n_classes): log softmax of -||f - mu_c||^2.
    """
    mu = prototypes(imprint_features, imprint_labels, n_classes)
    return log_probs(imprinted_logits(eval_features, mu))


def restrict_log_probs(scores: Any, classes: Sequence[int]) -> np.ndarray:
    """A model restricted to a task's classes: log-softmax over those columns.

    Works on logits or log-probabilities alike (a log-softmax ignores a per-row shift),
    never on probabilities: exp then renormalise underflows to 0/0 for sharp models.

    Parameters
    ----------
    scores : array_like, shape (..., M, C)
    classes : sequence of int (k of them)

    Returns
    -------
    numpy.ndarray, shape (..., M, k), log-probabilities renormalised over ``classes``.
    """
    S = _f64(scores, "scores", (1, 2, 3))
    cls = np.asarray(classes, dtype=np.int64)
    if cls.ndim != 1 or cls.size < 2 or cls.min() < 0 or cls.max() >= S.shape[-1]:
        raise ValueError(f"classes must be >= 2 indices in [0, {S.shape[-1] - 1}], "
                         f"got {list(cls)}")
    return log_softmax(S[..., cls], axis=-1)


def restrict_samples(labels: Any, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation samples of a task and their labels as positions in ``classes``.

    Returns
    -------
    index : numpy.ndarray of int64, shape (n,), positions of samples whose label is in
        ``classes``
    targets : numpy.ndarray of int64, shape (n,), in [0, len(classes))
    """
    y = _labels(labels)
    cls = np.asarray(classes, dtype=np.int64)
    order = np.argsort(cls)
    index = np.flatnonzero(np.isin(y, cls))
    if index.size == 0:
        raise ValueError(f"no evaluation sample has a label in {list(cls)}")
    return index, order[np.searchsorted(cls[order], y[index])].astype(np.int64)


def task_view(scores: Any, labels: Any, classes: Sequence[int]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Models, P0 and P* of task B on B's samples (the samples and predictions restricted).

    Parameters
    ----------
    scores : array_like, shape (..., M, C), logits or log-probabilities on the
        evaluation set (all classes).
    labels : array_like of int, shape (M,), the evaluation set's labels.
    classes : B's classes.

    Returns
    -------
    P : numpy.ndarray, shape (..., n, k), probabilities renormalised over B
    P0 : numpy.ndarray, shape (n, k), uniform over B
    P_star : numpy.ndarray, shape (n, k), one-hot of the true class within B
    """
    S = _f64(scores, "scores", (2, 3))
    y = _labels(labels)
    if y.size != S.shape[-2]:
        raise ValueError(f"scores hold {S.shape[-2]} samples but labels {y.size}")
    index, targets = restrict_samples(y, classes)
    P = np.exp(restrict_log_probs(S[..., index, :], classes))
    k = len(classes)
    return P, uniform(index.size, k), one_hot(targets, k)


def progress_on_task(scores: Any, labels: Any, classes: Sequence[int]) -> np.ndarray:
    """Progress t* of models on task B: B's samples, predictions renormalised over B,
    along the geodesic from B's P0 to B's P* (``hyperribbon.trajectory.progress``).

    Parameters
    ----------
    scores : array_like, shape (K, M, C) or (M, C), logits or log-probabilities.
    labels : array_like of int, shape (M,)
    classes : B's classes (all C classes: the full task's progress).

    Returns
    -------
    numpy.ndarray, shape (K,) (0-d for one model)
    """
    P, P0, P1 = task_view(scores, labels, classes)
    return progress(P, P0, P1)


def transfer_matrix(initial: Any, final: Any, labels: Any,
                    tasks: Sequence[Sequence[int]]) -> np.ndarray:
    """Progress gained on each task B by training on each task A (final minus initial).

    Parameters
    ----------
    initial, final : array_like, shape (A, M, C)
        Logits or log-probabilities of the first and last checkpoint of each training
        run (one per training task, or seed-averaged upstream).
    labels : array_like of int, shape (M,)
    tasks : B's classes for each of the B evaluation tasks.

    Returns
    -------
    numpy.ndarray, shape (A, B): t*_B(final_A) - t*_B(initial_A).
    """
    I0, I1 = _f64(initial, "initial", 3), _f64(final, "final", 3)
    if I0.shape != I1.shape:
        raise ValueError(f"initial {I0.shape} and final {I1.shape} differ in shape")
    return np.stack([progress_on_task(I1, labels, b) - progress_on_task(I0, labels, b)
                     for b in tasks], axis=1)
