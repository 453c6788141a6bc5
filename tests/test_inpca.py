"""Bhattacharyya distances and InPCA against independent facts: a direct double loop, the
Fisher metric, classical MDS, a Minkowski configuration, Gower's formula."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperribbon.inpca import (
    bhattacharyya,
    bhattacharyya_paired,
    double_centre,
    explained_stress,
    inpca,
    kernel_available,
)

BACKENDS = ["torch", pytest.param("kernel", marks=pytest.mark.skipif(
    not kernel_available(), reason="no C compiler"))]
FAST = settings(max_examples=50, deadline=None)


def random_models(rng, n, m, c, alpha=1.0):
    return rng.dirichlet(np.full(c, alpha), size=(n, m))


def double_loop(P, Q, clamp=1e-12):
    """d_B by its definition, one pair and one sample at a time (no matrix products)."""
    D = np.zeros((len(P), len(Q)))
    for i in range(len(P)):
        for j in range(len(Q)):
            logs = [np.log(max(sum(np.sqrt(P[i, n, c] * Q[j, n, c])
                                   for c in range(P.shape[2])), clamp))
                    for n in range(P.shape[1])]
            D[i, j] = -sum(logs) / P.shape[1]
    return D


# --- Bhattacharyya ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_double_loop(backend):
    rng = np.random.default_rng(0)
    P = random_models(rng, 19, 23, 5, alpha=0.3)
    Q = random_models(rng, 7, 23, 5, alpha=0.3)
    ref = double_loop(P, P)
    D = bhattacharyya(P, backend=backend, device="cpu", chunk=8)
    np.testing.assert_allclose(D, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bhattacharyya(P, Q, backend=backend, device="cpu", chunk=5),
                               double_loop(P, Q), rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_diagonal_and_exact_symmetry(backend):
    P = random_models(np.random.default_rng(1), 40, 70, 10)
    D = bhattacharyya(P, backend=backend, device="cpu")
    assert np.abs(np.diag(D)).max() < 1e-14
    assert np.array_equal(D, D.T)
    assert (D[~np.eye(40, dtype=bool)] > 0).all()


@FAST
@given(n=st.integers(1, 40), nq=st.integers(1, 20), m=st.integers(1, 40),
       c=st.integers(2, 12), chunk=st.integers(1, 70), seed=st.integers(0, 2**32 - 1),
       alpha=st.sampled_from([0.05, 0.5, 3.0]))
def test_kernel_and_torch_agree_with_definition(n, nq, m, c, chunk, seed, alpha):
    rng = np.random.default_rng(seed)
    P, Q = random_models(rng, n, m, c, alpha), random_models(rng, nq, m, c, alpha)
    sp, sq = np.sqrt(P), np.sqrt(Q)
    ref = -np.log(np.maximum(np.einsum("inc,jnc->ijn", sp, sq), 1e-12)).mean(-1)
    refp = -np.log(np.maximum(np.einsum("inc,jnc->ijn", sp, sp), 1e-12)).mean(-1)
    backends = ["torch", "kernel"] if kernel_available() else ["torch"]
    for b in backends:
        DQ = bhattacharyya(P, Q, chunk=chunk, backend=b, device="cpu")
        DP = bhattacharyya(P, chunk=chunk, backend=b, device="cpu")
        np.testing.assert_allclose(DQ, ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(DP, refp, rtol=0, atol=1e-12)
        assert np.array_equal(DP, DP.T)
    np.testing.assert_allclose(bhattacharyya_paired(P[:1], Q[:1]), ref[:1, 0], atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_option_is_close(backend):
    P = random_models(np.random.default_rng(2), 50, 300, 10, alpha=0.2)
    D64 = bhattacharyya(P, backend=backend, device="cpu")
    D32 = bhattacharyya(P, backend=backend, device="cpu", dtype="float32")
    assert np.abs(D32 - D64).max() < 1e-6


def test_results_do_not_depend_on_threads_chunk_or_input_type():
    P = random_models(np.random.default_rng(3), 45, 90, 10)
    D = bhattacharyya(P, device="cpu")
    kw = dict(threads=1) if kernel_available() else {}
    assert np.array_equal(D, bhattacharyya(P, device="cpu", **kw))
    np.testing.assert_allclose(bhattacharyya(P, device="cpu", chunk=7), D, atol=1e-14)
    assert np.array_equal(bhattacharyya(torch.from_numpy(P), device="cpu"), D)
    P32 = P.astype(np.float32)
    P32 /= P32.sum(-1, keepdims=True)
    np.testing.assert_allclose(bhattacharyya(torch.from_numpy(P32), device="cpu"),
                               bhattacharyya(P32.astype(np.float64), device="cpu"), atol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    P = random_models(np.random.default_rng(4), 60, 200, 10)
    np.testing.assert_allclose(bhattacharyya(P, device="cuda"), bhattacharyya(P, device="cpu"),
                               rtol=0, atol=1e-13)


def test_fisher_limit():
    """d_B(p, p + eps v) = eps^2 / 8 * mean_n sum_c v_c^2 / p_c + O(eps^3)."""
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(10), size=200)
    v = rng.standard_normal(p.shape) * p
    v -= p * v.sum(-1, keepdims=True)  # tangent: sum_c v_c = 0
    fisher = np.mean(np.sum(v**2 / p, axis=-1))
    for eps in (1e-2, 1e-3, 1e-4):
        q = p + eps * v
        d = bhattacharyya(np.stack([p, q]), device="cpu")[0, 1]
        assert d == pytest.approx(eps**2 * fisher / 8, rel=10 * eps)
        assert bhattacharyya_paired(p, q) == pytest.approx(d, rel=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clamp_is_counted(backend):
    """One-hot models on different classes have disjoint supports: every coefficient
    between two of them is 0, clamped to 1e-12, and counted."""
    M, C = 9, 6
    P = np.zeros((4, M, C))
    for i in range(4):
        P[i, :, i] = 1.0
    D, n = bhattacharyya(P, backend=backend, device="cpu", return_clamped=True)
    assert n == 4 * 3 * M
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(D[off], -np.log(1e-12), rtol=1e-14)
    D2, n2 = bhattacharyya(P[:1], P[1:], backend=backend, device="cpu", return_clamped=True)
    assert n2 == 3 * M
    _, n3 = bhattacharyya(P, backend=backend, device="cpu", clamp=1e-300,
                          return_clamped=True)
    assert n3 == 4 * 3 * M  # 0 < 1e-300 still clamps
    R = random_models(np.random.default_rng(6), 5, M, C)
    assert bhattacharyya(R, backend=backend, device="cpu", return_clamped=True)[1] == 0


def test_partial_clamp_count_is_exact():
    rng = np.random.default_rng(7)
    P = random_models(rng, 37, 50, 4, alpha=0.5)
    P[5, 3], P[20, 3], P[30, 3] = [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0.5, 0.5]
    P[11, 40], P[12, 40] = [1, 0, 0, 0], [0, 0, 0, 1]
    sp = np.sqrt(P)
    expected = int((np.einsum("inc,jnc->ijn", sp, sp) < 1e-12).sum())
    assert expected == 8
    for b in ["torch", "kernel"] if kernel_available() else ["torch"]:
        assert bhattacharyya(P, backend=b, device="cpu", return_clamped=True)[1] == expected
        assert bhattacharyya(P, P[:15], backend=b, device="cpu",
                             return_clamped=True)[1] == int(
            (np.einsum("inc,jnc->ijn", sp, sp[:15]) < 1e-12).sum())


@pytest.mark.parametrize("which, fix, where, msg", [
    ("P", lambda P: P.__setitem__((4, 7, 2), np.nan), "P[4, 7]", "not finite"),
    ("P", lambda P: P.__setitem__((2, 11, 0), -0.2), "P[2, 11]", "negative"),
    ("P", lambda P: P.__setitem__((9, 0), P[9, 0] * 1.01), "P[9, 0]", "sum to 1"),
    ("Q", lambda P: P.__setitem__((1, 5, 1), np.inf), "Q[1, 5]", "not finite"),
])
def test_validation_names_the_index(which, fix, where, msg):
    rng = np.random.default_rng(8)
    P, Q = random_models(rng, 12, 20, 3), random_models(rng, 3, 20, 3)
    fix(P if which == "P" else Q)
    for X, Y in ((P, Q), (torch.from_numpy(P), torch.from_numpy(Q))):
        with pytest.raises(ValueError, match=re.escape(where) + ".*" + msg):
            bhattacharyya(X, Y, device="cpu")


def test_bad_arguments():
    P = random_models(np.random.default_rng(9), 3, 4, 2)
    with pytest.raises(ValueError, match="shape"):
        bhattacharyya(P[0])
    with pytest.raises(ValueError, match="share"):
        bhattacharyya(P, P[:, :2])
    with pytest.raises(ValueError, match="dtype"):
        bhattacharyya(P, dtype="float16")
    with pytest.raises(ValueError, match="empty"):
        bhattacharyya(P[:0])


# --- InPCA -----------------------------------------------------------------------------

def sq_dists(X):
    return ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)


def test_double_centre_is_the_gram_matrix():
    X = np.random.default_rng(10).standard_normal((30, 4))
    Xc = X - X.mean(0)
    np.testing.assert_allclose(double_centre(sq_dists(X)), Xc @ Xc.T, atol=1e-12)


def test_recovers_euclidean_configuration():
    """Classical MDS: D = squared Euclidean distances of points in R^3 gives W = Xc Xc^T,
    3 positive eigenvalues and coordinates equal to Xc up to a rotation."""
    X = np.random.default_rng(11).standard_normal((50, 3)) * [3.0, 2.0, 1.0]
    Xc = X - X.mean(0)
    r = inpca(sq_dists(X), k=3)
    assert (r.eigenvalues > 0).all()
    np.testing.assert_allclose(r.coords @ r.coords.T, Xc @ Xc.T, atol=1e-10)
    np.testing.assert_allclose(sq_dists(r.coords), sq_dists(X), atol=1e-10)
    np.testing.assert_allclose(np.sort(r.eigenvalues), np.sort(np.linalg.eigvalsh(Xc.T @ Xc)),
                               rtol=1e-12)
    assert r.explained_stress[-1] == pytest.approx(1.0, abs=1e-7)
    assert r.total == pytest.approx(np.sum(r.eigenvalues**2), rel=1e-12)


def test_minkowski_keeps_the_time_like_axis():
    """Points of 1+1 Minkowski space, d = dx^2 - dtau^2: one eigenvalue is negative and
    d_ij = sum_k sign_k (x_ik - x_jk)^2 with that sign."""
    rng = np.random.default_rng(12)
    x, tau = rng.standard_normal(40) * 2.0, rng.standard_normal(40)
    x -= x.mean()
    tau -= tau.mean() + x * (x @ tau) / (x @ x)  # centred and orthogonal: the eigenvectors
    D = (x[:, None] - x[None, :]) ** 2 - (tau[:, None] - tau[None, :]) ** 2
    r = inpca(D, k=2, full_spectrum=True)
    assert list(r.signs) == [1.0, -1.0]
    c = r.coords
    rebuilt = sum(s * (c[:, None, k] - c[None, :, k]) ** 2 for k, s in enumerate(r.signs))
    np.testing.assert_allclose(rebuilt, D, atol=1e-10)
    np.testing.assert_allclose(np.abs(c[:, 1]), np.abs(tau), atol=1e-10)
    np.testing.assert_allclose(np.abs(c[:, 0]), np.abs(x), atol=1e-10)
    assert r.explained_stress[1] == pytest.approx(1.0, abs=1e-7)
    np.testing.assert_allclose(np.abs(r.spectrum[2:]), 0, atol=1e-10)
    np.testing.assert_allclose(r.spectrum[:2], r.eigenvalues, rtol=1e-12)


def test_explained_stress_formula():
    """lambda = (3, -4), sum lambda^2 = 25 + 0 others: ES_1 = 1 - sqrt(1 - 16/25)."""
    es = explained_stress(np.array([-4.0, 3.0]), 25.0)
    np.testing.assert_allclose(es, [1 - 0.6, 1.0])
    es = explained_stress(np.array([-4.0]), 100.0)  # total includes unlisted eigenvalues
    np.testing.assert_allclose(es, [1 - np.sqrt(1 - 16 / 100)])


def test_gower_projection():
    rng = np.random.default_rng(13)
    P = random_models(rng, 60, 40, 10, alpha=0.5)
    D = bhattacharyya(P, device="cpu")
    r = inpca(D, k=5)
    np.testing.assert_allclose(r.project(D), r.coords, atol=1e-10)
    np.testing.assert_allclose(r.project(D[7]), r.coords[7], atol=1e-10)
    # Euclidean configuration, full rank: a new point lands at its true distances
    X = rng.standard_normal((25, 3))
    y = rng.standard_normal((2, 3))
    e = inpca(sq_dists(X), k=3)
    d_new = ((y[:, None, :] - X[None]) ** 2).sum(-1)
    yp = e.project(d_new)
    np.testing.assert_allclose(((yp[:, None, :] - e.coords[None]) ** 2).sum(-1), d_new,
                               atol=1e-9)


def test_partial_solver_agrees_with_full():
    rng = np.random.default_rng(14)
    P = random_models(rng, 400, 60, 10, alpha=0.3)
    D = bhattacharyya(P, device="cpu")
    full = inpca(D, k=6, solver="full", full_spectrum=True)
    part = inpca(D, k=6, solver="partial", full_spectrum=True)
    np.testing.assert_allclose(part.eigenvalues, full.eigenvalues, rtol=1e-9)
    np.testing.assert_allclose(part.coords, full.coords, atol=1e-8)
    np.testing.assert_allclose(part.explained_stress, full.explained_stress, atol=1e-12)
    np.testing.assert_allclose(part.spectrum, full.spectrum, atol=1e-10)
    assert full.total == pytest.approx(np.sum(full.spectrum**2), rel=1e-10)
    assert (np.diff(np.abs(full.spectrum)) <= 1e-12).all()
    assert inpca(D).eigenvalues.shape == (400,)


def test_inpca_rejects_bad_input():
    with pytest.raises(ValueError, match="symmetric"):
        inpca(np.arange(9.0).reshape(3, 3))
    with pytest.raises(ValueError, match="square"):
        inpca(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="k must"):
        inpca(np.zeros((3, 3)), k=4)
