"""Generic analyses of point clouds and embeddings, used by several chapters.

- :func:`pca` → :class:`Widths`: the package's one principal component analysis
  (principal widths, ranges, residuals, directions, projections), and
  :func:`project`, :func:`pca_embed` built on it.
- Distances between label centroids and their Spearman correlation with a reference
  (:func:`centroids`, :func:`pairwise`, :func:`centroid_spearman`).
- Orthogonal Procrustes and the re-embedding of a held-out cluster
  (:func:`procrustes_align`, :func:`displacement_ratio`, :func:`knn_agreement`,
  :func:`reembed_heldout`).
- Classification scores: :func:`auroc`, :func:`logistic_fit`, :func:`cv_auroc`,
  :func:`fate_auroc`.
- Embeddings for plots: :func:`umap_embed` (optional dependency), :func:`as_plane`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Widths:
    """Principal widths of a cloud of N prediction vectors in R^m.

    Attributes
    ----------
    sigma : (r,) RMS of the projections on each principal direction (singular value/√N).
    ranges : (r,) max − min of the projections on each principal direction.
    residuals : (r + 1,) R_k = √(Σ_{j≥k} σ_j²), the RMS distance to the best
        k-dimensional affine subspace (k = 0 … r; R_r = 0).
    components : (r, m) principal directions (rows, unit norm).
    projections : (N, r) coordinates of the centred points on them.
    mean : (m,) the centre.
    """

    sigma: np.ndarray
    ranges: np.ndarray
    residuals: np.ndarray
    components: np.ndarray
    projections: np.ndarray
    mean: np.ndarray



def pca(Y: np.ndarray | torch.Tensor) -> Widths:
    """Principal widths of the rows of Y (N, m): centre them and take the SVD.

    Computed with a float64 ``torch.linalg.svd``, which follows ``torch.set_num_threads``
    (numpy's BLAS thread pool does not, and on a busy shared machine its spinning threads
    can make one SVD twenty times slower).
    """
    Yt = torch.as_tensor(np.asarray(Y) if not isinstance(Y, torch.Tensor) else Y,
                         dtype=torch.float64)
    mean = Yt.mean(0)
    U, s, Vt = torch.linalg.svd(Yt - mean, full_matrices=False)
    sigma = (s / np.sqrt(len(Yt))).numpy()
    proj = (U * s).numpy()
    tail = np.cumsum((sigma ** 2)[::-1])[::-1]
    return Widths(sigma=sigma, ranges=proj.max(axis=0) - proj.min(axis=0),
                  residuals=np.sqrt(np.append(tail, 0.0)), components=Vt.numpy(),
                  projections=proj, mean=mean.numpy())


def project(points: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Coordinates (N, r) of points (N, m) along orthonormal directions (r, m) about a
    centre (m,): (p − mean) Vᵀ (computed with torch, as :func:`pca`)."""
    p = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    return ((p - torch.as_tensor(np.asarray(mean), dtype=torch.float64))
            @ torch.as_tensor(np.asarray(components), dtype=torch.float64).T).numpy()


def pca_embed(X: np.ndarray, d: int = 2, fit_rows: np.ndarray | None = None) -> np.ndarray:
    """Coordinates of the rows of ``X`` on the top ``d`` principal axes of
    ``X[fit_rows]`` (all rows by default), centred on the fitted rows' mean."""
    w = pca(X if fit_rows is None else X[fit_rows])
    return project(X, w.mean, w.components[:d])


def centroids(Z: np.ndarray, labels: np.ndarray, classes: Sequence[int] | None = None
              ) -> np.ndarray:
    """Mean of the rows of ``Z`` (N, d) per label, for ``classes`` (default: sorted
    unique labels)."""
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    return np.stack([Z[labels == c].mean(0) for c in classes])


def pairwise(C: np.ndarray) -> np.ndarray:
    """Condensed (upper-triangle) Euclidean distances between the rows of ``C``."""
    i, j = np.triu_indices(len(C), 1)
    return np.linalg.norm(C[i] - C[j], axis=1)


def centroid_spearman(Z: np.ndarray, labels: np.ndarray, reference: np.ndarray,
                      classes: Sequence[int] | None = None) -> float:
    """Spearman correlation between the pairwise distances of the label centroids of
    ``Z`` and ``reference`` (the condensed reference distances, same class order)."""
    from scipy.stats import spearmanr

    return float(spearmanr(pairwise(centroids(Z, labels, classes)), reference)[0])


def procrustes_align(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                            np.ndarray]:
    """Orthogonal Procrustes with translation: (Q, a, b) minimising
    ‖(A − a) Q − (B − b)‖_F over orthogonal Q, with a, b the column means; a point x of
    A's space maps to (x − a) Q + b."""
    from scipy.linalg import orthogonal_procrustes

    a, b = A.mean(0), B.mean(0)
    Q, _ = orthogonal_procrustes(A - a, B - b)
    return Q, a, b


def align_heldout(Z_with: np.ndarray, Z_without: np.ndarray, held: np.ndarray
                  ) -> np.ndarray:
    """The held-out rows of ``Z_without`` moved into the frame of ``Z_with``.

    ``Z_with``: latent of all rows under the model trained with the cluster; ``Z_without``:
    the same rows under the model trained without it; ``held``: boolean mask of the
    cluster. The map is the orthogonal Procrustes alignment (:func:`procrustes_align`) of
    the shared (non-held) rows.
    """
    Q, a, b = procrustes_align(Z_without[~held], Z_with[~held])
    return (Z_without[held] - a) @ Q + b


def _centroid_shift(Z_held: np.ndarray, moved: np.ndarray) -> float:
    c = Z_held.mean(0)
    radius = np.sqrt(((Z_held - c) ** 2).sum(1).mean())
    return float(np.linalg.norm(moved.mean(0) - c) / max(radius, 1e-12))


def displacement_ratio(Z_with: np.ndarray, Z_without: np.ndarray, held: np.ndarray
                       ) -> float:
    """How far a held-out cluster lands from where it sits when trained on: the distance
    between its centroid in ``Z_with`` and that of its re-embedding
    (:func:`align_heldout`), over its RMS radius in ``Z_with``."""
    return _centroid_shift(Z_with[held], align_heldout(Z_with, Z_without, held))


def knn_agreement(Z_ref: np.ndarray, labels: np.ndarray, Z_query: np.ndarray, label: int,
                  k: int = 15) -> float:
    """Mean fraction of the ``k`` nearest reference points (rows of ``Z_ref``) of each
    query point that carry ``label``."""
    d2 = ((Z_query[:, None, :] - Z_ref[None, :, :]) ** 2).sum(-1)
    nn = np.argpartition(d2, kth=min(k, len(Z_ref) - 1) - 1, axis=1)[:, :k]
    return float((labels[nn] == label).mean())


def reembed_heldout(Z_with: np.ndarray, Z_without: np.ndarray, held: np.ndarray,
                    labels: np.ndarray, label: int, k: int = 15) -> dict[str, float]:
    """Displacement ratio (:func:`displacement_ratio`) and k-NN label agreement of the
    held-out cluster re-embedded by the model that never saw it, after Procrustes, among
    the points of the model that did."""
    moved = align_heldout(Z_with, Z_without, held)
    return {"ratio": _centroid_shift(Z_with[held], moved),
            "knn": knn_agreement(Z_with, labels, moved, label, k)}


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``y`` (Mann–Whitney U / n₁n₀,
    ties counted half)."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def logistic_fit(X: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """L2-regularised logistic regression: weights (d + 1,) with the intercept last,
    minimising mean log-loss + l2/2·‖w‖² (intercept not penalised), by L-BFGS."""
    from scipy.optimize import minimize

    A = np.hstack([X, np.ones((len(X), 1))])
    y = np.asarray(y, float)

    def f(w):
        s = A @ w
        loss = np.mean(np.logaddexp(0, s) - y * s) + 0.5 * l2 * (w[:-1] @ w[:-1])
        p = 0.5 * (1 + np.tanh(0.5 * s))
        g = A.T @ (p - y) / len(y)
        g[:-1] += l2 * w[:-1]
        return loss, g

    return minimize(f, np.zeros(A.shape[1]), jac=True, method="L-BFGS-B").x


def cv_auroc(X: np.ndarray, y: np.ndarray, n_folds: int = 5, seed: int = 0,
             l2: float = 1e-3) -> float:
    """Cross-validated AUROC of logistic regression of binary ``y`` on ``X``: stratified
    folds, features standardised on each training fold, out-of-fold scores pooled."""
    y = np.asarray(y, bool)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for cls in (False, True):
        ix = rng.permutation(np.flatnonzero(y == cls))
        fold[ix] = np.arange(len(ix)) % n_folds
    scores = np.empty(len(y))
    for f in range(n_folds):
        tr, te = fold != f, fold == f
        m, s = X[tr].mean(0), X[tr].std(0) + 1e-12
        w = logistic_fit((X[tr] - m) / s, y[tr], l2)
        scores[te] = np.hstack([(X[te] - m) / s, np.ones((te.sum(), 1))]) @ w
    return auroc(scores, y)


def fate_auroc(Z: np.ndarray, fate: np.ndarray, seed: int = 0) -> float:
    """Cross-validated AUROC of predicting ``fate`` (≥ 0; −1 rows are ignored) from the
    coordinates ``Z``: binary with two fates, the mean one-vs-rest AUROC with more."""
    keep = fate >= 0
    Zf, f = Z[keep], fate[keep]
    classes = np.unique(f)
    if len(classes) < 2:
        return float("nan")
    if len(classes) == 2:
        return cv_auroc(Zf, f == classes[1], seed=seed)
    return float(np.mean([cv_auroc(Zf, f == c, seed=seed) for c in classes]))


def as_plane(Z: np.ndarray) -> np.ndarray:
    """The first two columns of ``Z`` for a scatter plot; a 1-D embedding gets a zero
    second column."""
    Z = np.asarray(Z)
    return Z[:, :2] if Z.shape[1] >= 2 else np.column_stack([Z[:, 0], np.zeros(len(Z))])


def umap_embed(X: np.ndarray, d: int = 2, seed: int = 0) -> np.ndarray | None:
    """UMAP coordinates of the rows of ``X`` (seeded, one thread), or None when
    ``umap-learn`` is not installed: it is in requirements.txt, but the chapter runs
    without it."""
    import warnings

    with warnings.catch_warnings():
        # importing umap pulls in tqdm.auto ("IProgress not found" without ipywidgets), and
        # fixing random_state overrides n_jobs: both intended, neither for the reader
        warnings.simplefilter("ignore")
        try:
            import umap  # type: ignore[import-not-found]
        except ImportError:
            return None
        return np.asarray(umap.UMAP(n_components=d, random_state=seed, n_jobs=1)
                          .fit_transform(np.asarray(X, np.float32)))

