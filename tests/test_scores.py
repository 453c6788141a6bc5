"""Unit tests of hyperribbon.scores: PCA, centroid distances, Procrustes, k-NN
agreement, AUROC and logistic regression against independent facts."""

import math
import sys

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from hyperribbon import scores


def test_pca_widths_of_a_known_cloud():
    rng = np.random.default_rng(1)
    sd = np.array([3.0, 1.0, 0.1])
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    X = rng.normal(size=(200000, 3)) * sd
    Y = X @ Q[:3] + 7.0
    w = scores.pca(Y)
    assert np.allclose(w.sigma[:3], sd, rtol=0.01) and np.all(w.sigma[3:] < 1e-10)
    # residual of the best k-dim affine subspace = RMS of the discarded coordinates
    assert w.residuals[0] ** 2 == pytest.approx(np.mean(np.sum((Y - Y.mean(0)) ** 2, 1)))
    assert w.residuals[1] == pytest.approx(np.sqrt(np.sum(w.sigma[1:] ** 2)))
    assert w.residuals[-1] == 0
    assert np.allclose(np.abs(w.components[0] @ Q[0]), 1, atol=1e-3)
    # a uniform segment of length 2: range 2, RMS width 2/√12
    u = np.linspace(-1, 1, 1001)[:, None] * np.array([[0.6, 0.8]])
    wu = scores.pca(u)
    assert wu.ranges[0] == pytest.approx(2.0) and wu.sigma[0] == pytest.approx(
        np.sqrt(np.mean(np.linspace(-1, 1, 1001) ** 2)))


def test_project_and_pca_embed_use_the_fitted_rows():
    rng = np.random.default_rng(5)
    Y = rng.normal(size=(40, 3)) * [2.0, 1.0, 0.1]
    w = scores.pca(Y)
    assert np.allclose(scores.project(Y, w.mean, w.components), w.projections)
    # fitted on the first 30 rows: the other rows are placed by the same centre and axes
    fit = np.arange(40) < 30
    Z = scores.pca_embed(Y, 2, fit_rows=fit)
    wf = scores.pca(Y[fit])
    assert np.allclose(Z, (Y - Y[fit].mean(0)) @ wf.components[:2].T)
    assert np.allclose(Z[fit].mean(0), 0.0)


def test_pca_recovers_a_planted_plane():
    rng = np.random.default_rng(9)
    P = rng.normal(size=(300, 2)) * [3.0, 1.0]
    Q, _ = np.linalg.qr(rng.normal(size=(10, 2)))
    X = P @ Q.T + 5.0
    Z = scores.pca_embed(X, 2)
    assert np.allclose(pdist(Z), pdist(P - P.mean(0)), atol=1e-8)


def test_centroids_pairwise_and_spearman():
    Z = np.array([[0.0, 0], [2, 0], [10, 0], [12, 0], [0, 5], [0, 7]])
    lab = np.array([0, 0, 1, 1, 2, 2])
    C = scores.centroids(Z, lab)
    assert np.allclose(C, [[1, 0], [11, 0], [0, 6]])
    assert np.allclose(scores.pairwise(C), pdist(C))
    # a rotated and scaled copy has Spearman 1 against the true distances
    R = np.array([[0.0, -1], [1, 0]])
    assert scores.centroid_spearman(3 * Z @ R, lab, pdist(C)) == pytest.approx(1.0)


def test_procrustes_recovers_a_rigid_motion_and_displacement_ratio():
    rng = np.random.default_rng(10)
    A = rng.normal(size=(50, 2))
    A[:10] += [8.0, 0.0]  # the held-out cluster, apart from the rest
    th = 0.7
    Rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    B = A @ Rot + [3.0, -1.0]
    Q, a, b = scores.procrustes_align(A, B)
    assert np.allclose((A - a) @ Q + b, B)
    held = np.zeros(50, bool)
    held[:10] = True
    assert scores.displacement_ratio(B, A, held) == pytest.approx(0.0, abs=1e-9)
    # move the held cluster (in the "without" embedding) by one cluster radius
    A2 = A.copy()
    radius = np.sqrt(((B[held] - B[held].mean(0)) ** 2).sum(1).mean())
    A2[held] += radius * np.array([1.0, 0.0]) @ Rot.T
    assert scores.displacement_ratio(B, A2, held) == pytest.approx(1.0, rel=1e-6)
    r = scores.reembed_heldout(B, A, held, held.astype(int), 1, k=5)
    assert r["ratio"] == pytest.approx(0.0, abs=1e-9) and r["knn"] == pytest.approx(1.0)


def test_knn_agreement_counts_neighbour_labels():
    ref = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [5, 5], [5.1, 5]])
    lab = np.array([1, 1, 0, 0, 0])
    q = np.array([[0.05, 0.0]])
    assert scores.knn_agreement(ref, lab, q, 1, k=2) == 1.0
    assert scores.knn_agreement(ref, lab, q, 1, k=3) == pytest.approx(2 / 3)


def test_auroc_equals_pair_counting():
    rng = np.random.default_rng(11)
    s = rng.integers(0, 5, 60).astype(float)  # with ties
    y = rng.random(60) < 0.4
    pos, neg = s[y], s[~y]
    want = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) \
        / (len(pos) * len(neg))
    assert scores.auroc(s, y) == pytest.approx(want)
    assert math.isnan(scores.auroc(s, np.zeros(60, bool)))


def test_logistic_fit_is_a_stationary_point_and_recovers_the_truth():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(20000, 2))
    w_true = np.array([1.5, -0.5, 0.3])
    p = 1 / (1 + np.exp(-(X @ w_true[:2] + w_true[2])))
    y = rng.random(20000) < p
    w = scores.logistic_fit(X, y, l2=0.0)
    assert np.allclose(w, w_true, atol=0.08)


def test_cv_auroc_and_fate_auroc():
    rng = np.random.default_rng(13)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] > 0
    assert scores.cv_auroc(X, y) > 0.98
    assert abs(scores.cv_auroc(X, rng.random(200) < 0.5) - 0.5) < 0.12
    fate = np.where(y, 1, 0)
    fate[:20] = -1  # ignored rows
    assert scores.fate_auroc(X, fate) == pytest.approx(scores.cv_auroc(X[20:], y[20:]))
    three = np.digitize(X[:, 0], [-0.5, 0.5])
    assert 0.5 < scores.fate_auroc(X, three) <= 1.0
    assert math.isnan(scores.fate_auroc(X, np.zeros(200, int)))



def test_umap_keeps_separated_blobs_apart_and_is_seeded():
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (60, 5)), rng.normal(20, 1, (60, 5))])
    y = np.repeat([0, 1], 60)
    Z = scores.umap_embed(X, 2, seed=3)
    assert Z.shape == (120, 2)
    assert scores.knn_agreement(Z, y, Z[:60], 0, k=10) == 1.0  # every neighbour from its blob
    assert np.array_equal(Z, scores.umap_embed(X, 2, seed=3))


def test_as_plane():
    Z = np.arange(12.0).reshape(4, 3)
    assert np.array_equal(scores.as_plane(Z), Z[:, :2])
    assert np.array_equal(scores.as_plane(Z[:, :1]), np.column_stack([Z[:, 0], np.zeros(4)]))


def test_umap_embed_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import fails as when not installed
    assert scores.umap_embed(np.zeros((10, 3))) is None
