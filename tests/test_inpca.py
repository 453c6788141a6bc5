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
    ClampWarning,
    RowStack,
    bhattacharyya,
    bhattacharyya_paired,
    compare_embeddings,
    cross_block,
    double_centre,
    double_centre_inplace,
    explained_stress,
    inpca,
    kernel_available,
    landmark_inpca,
    sum_tolerance,
    top_eigenpairs,
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
@pytest.mark.filterwarnings("ignore::hyperribbon.inpca.ClampWarning")
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


# --- Scale: row blocks, memory maps, lazy inputs --------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_blocked_and_memmapped_equal_in_memory(backend, tmp_path):
    """Row blocks (the last one ragged), a .npy memory map, a float32 output and a torch
    tensor output all hold the one-block result; the blocks agree with the definition."""
    rng = np.random.default_rng(20)
    P = random_models(rng, 150, 30, 5, alpha=0.5)
    kw = dict(backend=backend, device="cpu", chunk=7)
    D = bhattacharyya(P, **kw)
    Db = bhattacharyya(P, block=64, **kw)
    np.testing.assert_allclose(Db, D, rtol=0, atol=1e-14)
    assert np.array_equal(Db, Db.T)
    if backend == "kernel":
        assert np.array_equal(Db, D)  # the kernel is bitwise independent of the blocks
    Dm = bhattacharyya(P, block=64, out=tmp_path / "D.npy", **kw)
    assert isinstance(Dm, np.memmap)
    Dm.flush()
    assert np.array_equal(np.load(tmp_path / "D.npy", mmap_mode="r"), Db)
    D32 = bhattacharyya(P, block=128, out=np.zeros((150, 150), np.float32), **kw)
    np.testing.assert_allclose(D32, D, rtol=1e-6, atol=1e-15)
    Dt = bhattacharyya(P, block=64, out=torch.zeros(150, 150, dtype=torch.float64), **kw)
    np.testing.assert_allclose(Dt.numpy(), D, rtol=0, atol=1e-14)
    sub = double_loop(P[:70:7], P[:70:7])
    np.testing.assert_allclose(Db[:70:7, :70:7], sub, rtol=0, atol=1e-12)
    Q = random_models(rng, 9, 30, 5, alpha=0.5)
    np.testing.assert_allclose(bhattacharyya(P, Q, block=64, **kw), double_loop(P, Q),
                               rtol=0, atol=1e-12)


def test_lazy_inputs_equal_arrays(tmp_path):
    """A float32 .npy memory map and a RowStack of runs give the distances of the same
    numbers held in memory."""
    rng = np.random.default_rng(21)
    P = random_models(rng, 90, 25, 10).astype(np.float32)
    np.save(tmp_path / "P.npy", P)
    mm = np.load(tmp_path / "P.npy", mmap_mode="r")
    D = bhattacharyya(P, device="cpu")
    assert np.array_equal(bhattacharyya(mm, device="cpu", block=64), D)
    stack = RowStack([P[:10], P[10:11], P[11:70], P[70:]])
    assert np.array_equal(bhattacharyya(stack, device="cpu", block=64), D)
    np.testing.assert_allclose(bhattacharyya(stack, device="cpu", backend="torch", block=64),
                               D, atol=1e-13)


def test_row_stack():
    rng = np.random.default_rng(22)
    runs = [random_models(rng, k, 6, 3) for k in (4, 1, 5)]
    stack = RowStack(runs[:1] + [runs[1][0]] + runs[2:], names=["a", "b", "c"])
    full = np.concatenate(runs)
    assert stack.shape == (10, 6, 3) and len(stack) == 10
    np.testing.assert_array_equal(stack[2:7], full[2:7])
    np.testing.assert_array_equal(stack[3:9, 1:4], full[3:9, 1:4])
    np.testing.assert_array_equal(stack[4], full[4])
    np.testing.assert_array_equal(stack[-1], full[-1])
    assert stack[7:7].shape == (0, 6, 3)
    np.testing.assert_array_equal(stack.run, [0] * 4 + [1] + [2] * 5)
    np.testing.assert_array_equal(stack.checkpoint, [0, 1, 2, 3, 0, 0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="b: shape"):
        RowStack([runs[0], runs[0][:, :5]], names=["a", "b"])
    with pytest.raises(TypeError, match="contiguous"):
        stack[::2]


def test_cross_block_and_incremental_projection():
    """D(new, reference) assembled in blocks equals the direct matrix; adding models in
    two batches places them where one batch does."""
    rng = np.random.default_rng(23)
    ref, new = random_models(rng, 40, 30, 4), random_models(rng, 25, 30, 4)
    Dx = cross_block(RowStack([new[:11], new[11:]]), ref, block=7, device="cpu")
    np.testing.assert_allclose(Dx, double_loop(new, ref), rtol=0, atol=1e-12)
    r = inpca(bhattacharyya(ref, device="cpu"), k=3)
    once = r.project(Dx)
    twice = np.concatenate([r.project(cross_block(new[:10], ref, device="cpu")),
                            r.project(cross_block(new[10:], ref, device="cpu"))])
    np.testing.assert_allclose(twice, once, atol=1e-12)


# --- In-place centring and partial eigensolvers ----------------------------------------

def test_double_centre_inplace_equals_double_centre(tmp_path):
    rng = np.random.default_rng(24)
    A = rng.random((173, 173))
    D = A + A.T
    ref = double_centre(D)
    for W in (D.copy(), np.lib.format.open_memmap(tmp_path / "W.npy", "w+", np.float64,
                                                   D.shape),
              torch.from_numpy(D.copy())):
        W[:] = torch.from_numpy(D) if isinstance(W, torch.Tensor) else D
        r, g, total = double_centre_inplace(W)
        np.testing.assert_allclose(np.asarray(W), ref, rtol=0, atol=1e-13)
        np.testing.assert_allclose(r, D.mean(axis=0), rtol=1e-14)
        assert g == pytest.approx(D.mean(), rel=1e-14)
        assert total == pytest.approx(np.sum(ref**2), rel=1e-12)
        assert total == pytest.approx(np.sum(np.linalg.eigvalsh(ref) ** 2), rel=1e-10)
    W32 = D.astype(np.float32)
    double_centre_inplace(W32)
    np.testing.assert_allclose(W32, ref, atol=1e-5)


def centred_matrix(rng, n, spectrum):
    """A double-centred symmetric matrix with the given leading eigenvalues (eigenvectors
    orthogonal to 1) and a small random tail."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    Q = Q - Q.mean(axis=0)  # orthogonal to 1 ...
    Q, _ = np.linalg.qr(Q[:, : n - 1])  # ... and orthonormal again
    lam = np.concatenate([spectrum, 0.05 * rng.standard_normal(n - 1 - len(spectrum))])
    W = (Q * lam) @ Q.T
    return (W + W.T) / 2


@pytest.mark.parametrize("spectrum", [
    [9.0, -7.0, 5.0, 4.0, -3.0, 2.5, 2.0, 1.5],
    [-12.0, 6.0, -5.5, 5.0, 3.0, -2.0, 1.5, 1.2],  # time-like (negative) leading direction
])
def test_partial_eigensolvers_match_full_eigh(spectrum):
    rng = np.random.default_rng(25)
    W = centred_matrix(rng, 400, spectrum)
    np.testing.assert_allclose(double_centre(-2 * W), W, atol=1e-12)  # L W L = W
    lam, V = np.linalg.eigh(W)
    order = np.argsort(-np.abs(lam))[:8]
    lam, V = lam[order], V[:, order]
    np.testing.assert_allclose(lam, spectrum, atol=0.2)
    assert np.sign(lam[0]) == np.sign(spectrum[0])
    for method, X in [("arpack", W), ("subspace", W), ("subspace", torch.from_numpy(W)),
                      ("eigh", W)]:
        got, U = top_eigenpairs(X, 8, method=method)
        np.testing.assert_allclose(got, lam, rtol=1e-9, err_msg=method)
        np.testing.assert_allclose(np.abs(np.sum(U * V, axis=0)), 1.0, atol=1e-9,
                                   err_msg=method)
    got, _ = top_eigenpairs(torch.from_numpy(W).float(), 4, method="subspace")
    np.testing.assert_allclose(got, lam[:4], rtol=1e-4)


def test_inpca_overwrite_memmap_and_torch_match(tmp_path):
    rng = np.random.default_rng(26)
    P = random_models(rng, 300, 40, 10, alpha=0.3)
    D = bhattacharyya(P, device="cpu")
    full = inpca(D, k=5, solver="full")
    Dm = bhattacharyya(P, device="cpu", out=tmp_path / "D.npy", block=128)
    part = inpca(Dm, k=5, solver="subspace", overwrite=True)
    np.testing.assert_allclose(np.asarray(Dm), double_centre(D), atol=1e-13)  # D became W
    tens = inpca(torch.from_numpy(D), k=5)
    for r in (part, tens):
        np.testing.assert_allclose(r.eigenvalues, full.eigenvalues, rtol=1e-9)
        np.testing.assert_allclose(r.coords, full.coords, atol=1e-8)
        np.testing.assert_allclose(r.explained_stress, full.explained_stress, atol=1e-12)
        assert r.total == pytest.approx(full.total, rel=1e-12)
        np.testing.assert_allclose(r.row_means, D.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(D, bhattacharyya(P, device="cpu"))  # not overwritten


# --- Landmark InPCA --------------------------------------------------------------------

def test_landmarks_all_points_reproduce_exact_embedding():
    rng = np.random.default_rng(27)
    P = random_models(rng, 80, 30, 6, alpha=0.5)
    exact = inpca(bhattacharyya(P, device="cpu"), k=4, solver="full")
    lm = landmark_inpca(P, 4, np.arange(80), device="cpu", block=23)
    np.testing.assert_array_equal(lm.landmarks, np.arange(80))
    np.testing.assert_allclose(lm.coords, exact.coords, atol=1e-10)
    np.testing.assert_allclose(lm.eigenvalues, exact.eigenvalues, rtol=1e-12)
    assert compare_embeddings(lm.coords, exact.coords, exact.signs) < 1e-10


def test_landmarks_approximate_a_low_dimensional_set():
    """Models on a 2-d latent manifold: 60 landmarks of 300 embed the rest close to the
    exact embedding (by embedded distances), and the drawn landmarks are exact."""
    rng = np.random.default_rng(28)
    basis = rng.standard_normal((2, 40, 5))
    z = rng.standard_normal((300, 2)) * [2.0, 1.0]
    x = np.einsum("nk,kmc->nmc", z, basis)
    P = np.exp(x - x.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    exact = inpca(bhattacharyya(P, device="cpu"), k=3, solver="full")
    lm = landmark_inpca(P, 3, 60, seed=1, device="cpu", block=64)
    assert lm.landmarks.size == 60 and np.all(np.diff(lm.landmarks) > 0)
    np.testing.assert_allclose(lm.coords[lm.landmarks], lm.reference.coords, atol=0)
    diff = compare_embeddings(lm.coords, exact.coords, lm.signs, exact.signs)
    assert diff < 0.1
    assert compare_embeddings(rng.permutation(exact.coords), exact.coords,
                              exact.signs) > 0.5


def test_compare_embeddings_invariances():
    rng = np.random.default_rng(29)
    X = rng.standard_normal((50, 3))
    signs = np.array([1.0, 1.0, -1.0])
    R, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    Y = X.copy()
    Y[:, :2] = X[:, :2] @ R  # a rotation of the space-like axes
    Y = -Y + 5.0  # reflected and shifted
    assert compare_embeddings(Y, X, signs, sample=30) < 1e-12
    with pytest.raises(ValueError, match="same models"):
        compare_embeddings(X, X[:10], signs)


# --- The clamp, reported; tolerance of the row sums ------------------------------------

def disjoint(n, M=5, C=6):
    P = np.zeros((n, M, C))
    for i in range(n):
        P[i, :, i] = 1.0
    return P


def test_clamp_is_reported_wherever_d_B_is_computed():
    from hyperribbon.trajectory import (
        progress,
        trajectory_distance,
        trajectory_distances,
        tube_widths,
        uniform,
    )

    P = disjoint(3)
    with pytest.warns(ClampWarning, match=r"bhattacharyya: 30 of 45 "):
        bhattacharyya(P, device="cpu")
    with pytest.warns(ClampWarning, match=r"bhattacharyya_paired: 5 of 5 "):
        d = bhattacharyya_paired(P[0], P[1])
    assert d == pytest.approx(-np.log(1e-12))
    assert bhattacharyya_paired(P[:2], P[1:], return_clamped=True)[1] == 10
    with pytest.warns(ClampWarning, match="cross_block"):
        cross_block(P[:1], P[1:], device="cpu")
    with pytest.warns(ClampWarning, match=r"trajectory_distance: 10 of 10 "):
        trajectory_distance(P[:2], P[1:])
    with pytest.warns(ClampWarning, match=r"trajectory_distances: 20 of 40 ") as rec:
        trajectory_distances(np.stack([P[:2], P[1:]]), device="cpu")
    assert len(rec) == 1
    truth = P[0]  # one-hot on class 0: a model sure of class 1 has g_n(t) -> 0 as t -> 1
    with pytest.warns(ClampWarning, match=r"progress: 5 of 5 "):
        progress(P[1], uniform(5, 6), truth, bounds=(1 - 1e-14, 1.0))
    import warnings

    R = random_models(np.random.default_rng(30), 4, 5, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClampWarning)
        bhattacharyya(R, device="cpu")
        bhattacharyya(P, device="cpu", return_clamped=True)  # the caller gets the count
        bhattacharyya_paired(R, R)
        progress(R, uniform(5, 6), truth)
        tube_widths(np.stack([R, R]))


def test_tube_widths_report_the_clamp(monkeypatch):
    """Seeds never clamp against their own mean (it shares their support), so the count
    is injected to check that tube_widths reports what bhattacharyya_paired counts."""
    import hyperribbon.trajectory as tr

    monkeypatch.setattr(tr, "bhattacharyya_paired",
                        lambda P, Q, return_clamped: (np.zeros(len(P)), 3))
    with pytest.warns(ClampWarning, match=r"tube_widths: 3 of 20 "):
        tr.tube_widths(np.stack([disjoint(2), disjoint(2)]))


def test_row_sum_tolerance_fits_float32_softmax_over_1000_classes():
    logits = torch.randn(8, 64, 1000, generator=torch.Generator().manual_seed(0)) * 4
    P32 = torch.softmax(logits, dim=-1)  # float32, as networks store predictions
    err = (P32.double().sum(-1) - 1).abs().max().item()
    assert 0 < err <= sum_tolerance(torch.float32, 1000)
    assert sum_tolerance(np.float32, 1000) == pytest.approx(1000 * np.finfo(np.float32).eps)
    assert sum_tolerance(np.float64, 10) == 1e-5
    bhattacharyya(P32[:3], device="cpu")  # validates
    X = P32.double().numpy()[:2].copy()
    X[1, 5] *= 1 + 5e-5  # a row off by 5e-5: fine in float32 over 1000 classes ...
    bhattacharyya(X.astype(np.float32), device="cpu")
    with pytest.raises(ValueError, match=r"P\[1, 5\].*sum to 1"):  # ... not in float64
        bhattacharyya(X, device="cpu")


# --- embed: predictions in, embedding out ---------------------------------------------

def write_runs(folder, rng, sizes=(5, 4, 6), M=20, C=4, dtype=np.float32):
    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for r, k in enumerate(sizes):
        x = random_models(rng, k, M, C, alpha=0.7).astype(dtype)
        x /= x.sum(-1, keepdims=True)
        np.save(folder / f"run{r + 1}.npy", x)
        runs.append(x)
    return runs


def test_embed_a_folder_of_runs(tmp_path):
    import csv

    from hyperribbon.embedding import embed, load_predictions

    runs = write_runs(tmp_path / "runs", np.random.default_rng(40), sizes=(5, 4, 6))
    res = embed(tmp_path / "runs", k=4, out_dir=tmp_path / "out")
    exact = inpca(bhattacharyya(np.concatenate(runs), device="cpu"), k=4, solver="full")
    np.testing.assert_allclose(res.coords, exact.coords, atol=1e-9)
    np.testing.assert_allclose(res.eigenvalues, exact.eigenvalues, rtol=1e-9)
    np.testing.assert_allclose(res.explained_stress, exact.explained_stress, atol=1e-12)
    assert set(res.files) == {"coords", "spectrum", "npz", "figure"}
    rows = list(csv.DictReader(open(res.files["coords"])))
    assert len(rows) == 15
    assert [r["run"] for r in rows[4:6]] == ["run1", "run2"]
    assert [int(r["checkpoint"]) for r in rows[4:6]] == [4, 0]
    np.testing.assert_allclose(float(rows[7]["x2"]), exact.coords[7, 1], rtol=1e-8)
    spec = list(csv.DictReader(open(res.files["spectrum"])))
    assert [s["axis"] == "time-like" for s in spec] == list(exact.eigenvalues < 0)
    with np.load(res.files["npz"]) as z:
        np.testing.assert_allclose(z["coords"], res.coords)
        np.testing.assert_array_equal(z["runs"], ["run1", "run2", "run3"])
        assert float(z["total"]) == pytest.approx(exact.total)
    assert res.files["figure"].read_bytes()[:4] == b"\x89PNG"
    # the same numbers as one .npy, as an .npz of runs, and in the training engine layout
    np.save(tmp_path / "all.npy", np.concatenate(runs))
    np.savez(tmp_path / "runs.npz", **{f"r{i}": x for i, x in enumerate(runs)})
    for i, x in enumerate(runs):
        (tmp_path / "cache" / f"key{i}").mkdir(parents=True)
        np.save(tmp_path / "cache" / f"key{i}" / "probs_test.npy", x)
        np.save(tmp_path / "cache" / f"key{i}" / "steps.npy", np.arange(len(x)))
    for src in ("all.npy", "runs.npz", "cache"):
        other = embed(tmp_path / src, k=4, out_dir=tmp_path / f"out_{src}", figure=False)
        np.testing.assert_allclose(other.coords, res.coords, atol=1e-12)
    assert load_predictions(tmp_path / "cache").runs == ["key0", "key1", "key2"]
    mm = embed(tmp_path / "runs", k=2, out_dir=tmp_path / "mm", memmap=True, figure=False)
    np.testing.assert_allclose(mm.coords, exact.coords[:, :2], atol=1e-9)
    assert (tmp_path / "mm" / "distances.npy").stat().st_size > 15 * 15 * 8
    lm = embed(tmp_path / "runs", k=2, out_dir=tmp_path / "lm", landmarks=12, seed=3)
    assert lm.landmarks.size == 12 and lm.coords.shape == (15, 2)
    with np.load(lm.files["npz"]) as z:
        np.testing.assert_array_equal(z["landmarks"], lm.landmarks)


def test_embed_validation_names_the_file_and_row(tmp_path):
    from hyperribbon.embedding import embed, load_predictions

    rng = np.random.default_rng(41)
    write_runs(tmp_path / "runs", rng)
    bad = np.load(tmp_path / "runs" / "run2.npy")
    bad[2, 7, 1] = np.nan
    np.save(tmp_path / "runs" / "run2.npy", bad)
    with pytest.raises(ValueError, match=r"run2\.npy\[2, 7\] \(model 2, sample 7\) is not "
                                         r"finite"):
        embed(tmp_path / "runs", out_dir=tmp_path / "out")
    bad[2, 7, 1] = 0.0  # now row (2, 7) sums to less than 1
    np.save(tmp_path / "runs" / "run2.npy", bad)
    with pytest.raises(ValueError, match=r"run2\.npy\[2, 7\].*does not sum to 1"):
        load_predictions(tmp_path / "runs")
    np.save(tmp_path / "runs" / "run2.npy", random_models(rng, 3, 19, 4))
    with pytest.raises(ValueError, match=r"run2\.npy.*does not match"):
        load_predictions(tmp_path / "runs")
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(ValueError, match=r"flat\.npy: predictions must have shape"):
        load_predictions(tmp_path / "flat.npy")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_predictions(tmp_path / "nope.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no prediction files"):
        load_predictions(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ValueError, match="expected a .npy or .npz"):
        load_predictions(tmp_path / "x.txt")
    for s in ("fit", "test"):
        (tmp_path / "eng" / "k0").mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "eng" / "k0" / f"probs_{s}.npy", random_models(rng, 2, 5, 3))
    with pytest.raises(ValueError, match="several recorded sets"):
        load_predictions(tmp_path / "eng")
    assert load_predictions(tmp_path / "eng", name="fit").shape == (2, 5, 3)
    with pytest.raises(ValueError, match="at least 2 models"):
        embed(random_models(rng, 1, 5, 3), out_dir=tmp_path / "one")
