"""Tests of hyperribbon.linear (chapter 6): each public function against an independent
fact (explicit iteration, an analytic case, a known identity)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_fashion_mnist
from hyperribbon import linear as L
from hyperribbon.inpca import bhattacharyya, bhattacharyya_paired, inpca


@pytest.fixture(scope="module")
def prob():
    lam = L.spectrum("exp", 0.3, 6)
    X = L.gaussian_inputs(80, lam, 0)
    Ws = L.teacher(6, 3, 1.0, 1)
    W0 = L.init_weights(4, 6, 3, 0.5, 2)
    lam_hat, U = L.empirical_modes(X)
    return X, Ws, W0, lam_hat, U, 0.5 / lam_hat[0]


def test_spectrum():
    lam = L.spectrum("exp", 0.5, 5)
    assert lam.sum() == pytest.approx(1.0)
    assert np.allclose(lam[1:] / lam[:-1], np.exp(-0.5))
    p = L.spectrum("power", 2.0, 4)
    assert np.allclose(p / p[0], 1.0 / np.arange(1, 5) ** 2)
    with pytest.raises(ValueError, match="kind"):
        L.spectrum("linear", 1.0, 3)


def test_gaussian_inputs_covariance():
    lam = L.spectrum("exp", 1.0, 4)
    X = L.gaussian_inputs(200000, lam, 3)
    ev = np.linalg.eigvalsh(X.T @ X / len(X))[::-1]
    assert np.allclose(ev, lam, atol=3e-3)
    Xd = L.gaussian_inputs(200000, lam, 3, rotate=False)
    assert np.allclose(np.diag(Xd.T @ Xd / len(Xd)), lam, atol=3e-3)


def test_teacher_and_init_scales():
    assert L.teacher(200, 50, 2.0, 0).std() == pytest.approx(2.0, rel=0.03)
    W0 = L.init_weights(10, 50, 20, 0.1, 0)
    assert W0.shape == (10, 50, 20) and W0.std() == pytest.approx(0.1, rel=0.03)


def test_softmax():
    Z = np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]])
    assert np.allclose(L.softmax(Z), [[0.25, 0.75], [0.5, 0.5]])


def test_checkpoints():
    s = L.checkpoints(1000, 5)
    assert s[0] == 0 and s[-1] == 1000 and np.all(np.diff(s) > 0)
    assert list(s) == [0, 1, 10, 100, 1000]


def test_empirical_modes(prob):
    X, *_ = prob
    lam, U = L.empirical_modes(X)
    S = X.T @ X / len(X)
    assert np.allclose(S @ U, U * lam) and np.all(np.diff(lam) <= 0)


def test_closed_form_matches_explicit(prob):
    X, Ws, W0, _, _, eta = prob
    W_exp = L.gd_explicit(X, X @ Ws, W0[0], eta, 50)
    W_cf = L.gd_closed_form(X, W0[0], Ws, eta, np.arange(51))
    assert np.abs(W_cf - W_exp).max() < 1e-10
    batch = L.gd_closed_form(X, W0, Ws, eta, [0, 7])
    assert batch.shape == (4, 2, 6, 3) and np.allclose(batch[:, 0], W0)
    assert np.allclose(batch[0, 1], W_exp[7])


def test_explicit_converges_to_teacher(prob):
    X, Ws, W0, _, _, eta = prob
    W = L.gd_explicit(X, X @ Ws, W0[0], 1.0 / L.empirical_modes(X)[0][0], 20000)
    assert np.abs(W[-1] - Ws).max() < 1e-6


def test_mode_sum_reproduces_trajectory(prob):
    X, Ws, W0, _, _, eta = prob
    steps = [0, 1, 5, 40]
    modes = L.mode_contributions(X, W0[1], Ws, eta, steps)
    W = L.gd_explicit(X, X @ Ws, W0[1], eta, 40)[steps]
    assert np.allclose(X @ Ws + modes.sum(0), np.einsum("nd,tdc->tnc", X, W), atol=1e-10)
    # the mode columns are orthogonal across modes
    flat = modes[:, 2].reshape(6, -1)
    G = flat @ flat.T
    assert np.allclose(G - np.diag(np.diag(G)), 0, atol=1e-8)


def test_ensemble_probabilities(prob):
    X, Ws, W0, _, _, eta = prob
    P = L.ensemble_probabilities(X, W0, Ws, eta, [0, 3])
    assert P.shape == (8, 80, 3) and np.allclose(P.sum(-1), 1)
    assert np.allclose(P[0], L.softmax(X @ W0[0]))


def test_k_at():
    assert L.k_at(np.array([0.5, 0.9, 0.99])) == 2
    assert L.k_at(np.array([0.5, 0.6])) == 3


def test_one_mode_explained_stress_is_one():
    """One-mode problem: d = 1, two classes; every trajectory lies on one line of logits,
    so both the measured and the predicted explained stress of one dimension are ~1."""
    X = L.gaussian_inputs(50, np.array([1.0]), 0)
    Ws = np.array([[0.05, -0.05]])
    W0 = L.init_weights(5, 1, 2, 0.05, 1)
    lam, U = L.empirical_modes(X)
    steps = L.checkpoints(100, 8)
    P = L.ensemble_probabilities(X, W0, Ws, 0.5 / lam[0], steps)
    es, clamped = L.measured_stress(P, 3)
    assert clamped == 0 and es[0] > 0.999
    A = np.einsum("dk,rdc->rkc", U, W0 - Ws)
    assert L.predicted_stress(L.mode_covariance(lam, A, 0.5 / lam[0], steps), 2)[0] == (
        pytest.approx(1.0))


def test_measured_stress_matches_inpca(prob):
    X, Ws, W0, _, _, eta = prob
    P = L.ensemble_probabilities(X, W0, Ws, eta, [0, 2, 20])
    es, _ = L.measured_stress(P, 5)
    assert np.allclose(es, inpca(bhattacharyya(P), 5).explained_stress)


def test_mode_covariance_is_logit_covariance(prob):
    """Projected on the sample space, the covariance of the mode coordinates equals the
    covariance of the class-centred logits / n (independent: built from the logits)."""
    X, Ws, W0, lam, U, eta = prob
    steps = [0, 1, 4, 30]
    W = L.gd_closed_form(X, W0, Ws, eta, steps)
    Z = np.einsum("nd,rtdc->rtnc", X, W)
    Z = Z - Z.mean(-1, keepdims=True)
    Z = Z.reshape(-1, Z.shape[2] * Z.shape[3])
    Z = Z - Z.mean(0)
    mu_logit = np.linalg.eigvalsh(Z.T @ Z / len(Z))[::-1][:18] / len(X)
    A = np.einsum("dk,rdc->rkc", U, W0 - Ws)
    mu_mode = np.linalg.eigvalsh(L.mode_covariance(lam, A, eta, steps))[::-1]
    assert np.allclose(mu_logit, mu_mode, atol=1e-10)


def test_expected_mode_covariance_is_limit(prob):
    X, Ws, _, lam, U, eta = prob
    steps = [0, 1, 5, 50]
    W0 = L.init_weights(20000, 6, 3, 0.5, 5)
    A = np.einsum("dk,rdc->rkc", U, W0 - Ws)
    S_emp = L.mode_covariance(lam, A, eta, steps)
    S_exp = L.expected_mode_covariance(lam, U.T @ Ws, 0.5, eta, steps)
    assert np.abs(S_emp - S_exp).max() < 0.03 * np.abs(S_exp).max()


def test_predicted_stress_analytic():
    # eigenvalues 2, 1 (and 0): ES_1 = 1 - sqrt(1 - 4/5)
    es = L.predicted_stress(np.diag([2.0, 1.0, 0.0]), 3)
    assert es[0] == pytest.approx(1 - np.sqrt(0.2)) and es[1] == pytest.approx(1.0)


def test_predicted_matches_measured_small_logits(prob):
    """With tiny logits d_B -> |centred logit difference|^2 / (8C n)-type Euclidean
    distance, so measured and predicted explained stress agree closely."""
    X, _, _, lam, U, eta = prob
    Ws = 0.01 * L.teacher(6, 3, 1.0, 4)
    W0 = L.init_weights(6, 6, 3, 0.01, 5)
    steps = L.checkpoints(200, 8)
    es, _ = L.measured_stress(L.ensemble_probabilities(X, W0, Ws, eta, steps), 6)
    A = np.einsum("dk,rdc->rkc", U, W0 - Ws)
    es_p = L.predicted_stress(L.mode_covariance(lam, A, eta, steps), 6)
    assert np.allclose(es, es_p, atol=2e-3)


def test_phase_diagram_and_boundary():
    pdg = L.phase_diagram("exp", [0.2, 1.0], [0.01, 10.0], [20], d=6, n=40, n_classes=3,
                          n_init=4, n_ckpt=5, logit_scale=1.0, eta_frac=0.5, seed=0, k=6)
    assert pdg.es.shape == (1, 2, 2, 6) and pdg.es_pred.shape == (1, 2, 2, 6)
    # tiny init scale: every trajectory follows the teacher's curve -> a thin ribbon
    assert np.all(pdg.es[0, :, 0, 2] > pdg.es[0, :, 1, 2])
    assert pdg.k90().shape == (1, 2, 2)
    assert L.boundary_agreement(pdg.es[..., 2], pdg.es[..., 2], 0.9) == 1.0
    assert L.boundary_agreement(np.array([0.95, 0.5]), np.array([0.85, 0.4]), 0.9) == 0.5
    assert pdg.es_expected.shape == pdg.es.shape
    assert np.all((pdg.es_expected >= 0) & (pdg.es_expected <= 1 + 1e-12))


def test_phase_diagram_uses_one_draw_across_scales():
    # common random numbers: two almost equal ratios give almost equal cells (with a
    # fresh draw per ratio they would differ by the draw)
    pdg = L.phase_diagram("exp", [0.5], [1.0, 1.0 + 1e-9], [20], d=6, n=40, n_classes=3,
                          n_init=4, n_ckpt=5, logit_scale=1.0, eta_frac=0.5, seed=0, k=6)
    assert np.allclose(pdg.es[:, :, 0], pdg.es[:, :, 1], atol=1e-6)


def test_best_scale_rule():
    ratios = [0.01, 0.1, 1.0, 10.0]
    es = np.array([[0.95, 0.92, 0.5, 0.3], [0.99, 0.6, 0.5, 0.2]])
    # by hand: cut 0.01 → 7/8 right, cut 0.1 → 7/8, never → 6/8, 1 → 5/8, 10 → 3/8
    assert L.best_scale_rule(es, ratios, 0.9) == (0.01, 7 / 8)
    assert L.best_scale_rule(np.full((2, 4), 0.5), ratios, 0.9) == (0.0, 1.0)
    assert L.best_scale_rule(np.full((2, 4), 0.95), ratios, 0.9) == (10.0, 1.0)


def test_predicted_stress_beyond_the_dimension_stays_at_one():
    es = L.predicted_stress(np.diag([2.0, 1.0, 0.0]), 5)
    assert len(es) == 5 and np.allclose(es[2:], 1.0)


def test_sgd_tube_matches_monte_carlo():
    """The predicted mean d_B between SGD runs and GD at equal step against 3000 runs
    (independent: simulated), for two batch sizes; zero for the full batch."""
    X = L.gaussian_inputs(30, L.spectrum("exp", 0.5, 4), 0)
    Ws, W0 = L.teacher(4, 3, 1.0, 1), L.init_weights(1, 4, 3, 1.0, 2)[0]
    eta = 0.5 / L.empirical_modes(X)[0][0]
    steps = [0, 1, 3, 10, 30]
    Pg = L.softmax(np.einsum("nd,tdc->tnc", X, L.gd_closed_form(X, W0, Ws, eta, steps)))
    for b in (5, 20):
        pred = L.sgd_tube(X, W0, Ws, eta, steps, b)
        W = L.sgd_trajectories(X, X @ Ws, W0, eta, steps, b, 3000, 3)
        Pr = L.softmax(np.einsum("nd,rtdc->rtnc", X, W))
        mc = np.mean([bhattacharyya_paired(Pr[r], Pg) for r in range(len(W))], axis=0)
        assert pred[0] == 0 and np.allclose(pred[1:], mc[1:], rtol=0.1)
    assert np.allclose(L.sgd_tube(X, W0, Ws, eta, steps, len(X)), 0, atol=1e-15)


def test_sgd_full_batch_is_gd(prob):
    X, Ws, W0, _, _, eta = prob
    steps = [0, 3, 10]
    W = L.sgd_trajectories(X, X @ Ws, W0[0], eta, steps, batch=len(X), n_runs=2, seed=0)
    assert np.allclose(W[0], L.gd_closed_form(X, W0[0], Ws, eta, steps))
    Wm = L.sgd_trajectories(X, X @ Ws, W0[0], eta, steps, batch=10, n_runs=400, seed=1)
    gd = L.gd_closed_form(X, W0[0], Ws, eta, steps)
    spread = np.abs(Wm - gd).mean()
    assert np.abs(Wm.mean(0) - gd).max() < 0.5 * spread


def test_rbf_and_rff():
    A = np.random.default_rng(0).standard_normal((30, 2))
    K = L.rbf_kernel(A, A, 1.5)
    assert np.allclose(np.diag(K), 1) and K[0, 1] == pytest.approx(
        np.exp(-np.sum((A[0] - A[1]) ** 2) / (2 * 1.5**2)))
    Phi = L.rff_features(A, 20000, 1.5, 0)
    assert np.abs(Phi @ Phi.T - K).max() < 0.05


def test_kernel_ensembles_spectra_errors_and_two_point_stress():
    kw = dict(n=40, n_classes=3, n_init=1, n_ckpt=2, T=50, logit_scale=1.0, eta_frac=0.5,
              seed=0)
    few = L.kernel_ensembles([0.5, 2.0], [0.1, 1.0], n_features=30, k=2, **kw)
    many = L.kernel_ensembles([0.5, 2.0], [0.1, 1.0], n_features=400, k=2, **kw)
    assert few.es.shape == (2, 2, 2) and few.clamped == 0
    for j in range(2):
        # the RBF kernel has a unit diagonal: the eigenvalues of K/n sum to 1
        assert few.kernel_eigenvalues[j].sum() == pytest.approx(1.0)
        assert np.all(np.diff(few.kernel_eigenvalues[j]) <= 1e-12)
        # the features' correlation spectrum approaches the kernel's as features grow
        lam = many.feature_eigenvalues[j]
        assert np.allclose(lam[:3], many.kernel_eigenvalues[j][:3], atol=0.05)
    # Monte Carlo error of random features: ~ 1/√(features)
    assert np.all(many.rff_error < few.rff_error / 2)
    # two points (one trajectory, two checkpoints) lie on a line: ES_1 = 1
    assert np.allclose(few.es[..., 0], 1.0)


@needs_fashion_mnist
def test_image_trajectories_start_at_the_initialisation_and_learn(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_CACHE", str(tmp_path))
    kw = dict(n_train=200, n_eval=30, pool=2, seeds=[0, 1], epochs=3, lr=0.1, batch=50,
              n_ckpt=5)
    P = L.image_trajectories("fashion-mnist", hidden=0, **kw)
    steps = L.checkpoints(3 * 4, 5)
    assert P.shape == (2 * len(steps), 30, 10) and np.allclose(P.sum(-1), 1)
    P2 = L.image_trajectories("fashion-mnist", hidden=8, **kw)
    assert P2.shape == P.shape and not np.allclose(P, P2)
    # the last checkpoint is further from the uniform prediction than the first
    from hyperribbon.inpca import bhattacharyya_paired
    U = np.full((1, 30, 10), 0.1)
    first, last = P[:1], P[len(steps) - 1:len(steps)]
    assert bhattacharyya_paired(last, U)[0] > bhattacharyya_paired(first, U)[0]
    np.testing.assert_array_equal(P, L.image_trajectories("fashion-mnist", hidden=0, **kw))


def test_linear_basis_stress():
    """Points on a line explained by a reference set on the same line (1) and not by a
    reference set on an orthogonal line (0 with one axis)."""
    t = np.linspace(0, 1, 8)
    ref = np.stack([t, 0 * t], 1)
    new = np.stack([t[::-1] * 0.7, 0 * t], 1)
    sq = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)  # noqa: E731
    assert L.linear_basis_stress(sq(ref, ref), sq(new, ref), sq(new, new)) == (
        pytest.approx(1.0))
    new2 = np.stack([0 * t, t], 1)
    assert L.linear_basis_stress(sq(ref, ref), sq(new2, ref), sq(new2, new2), k=1) == (
        pytest.approx(0.0, abs=1e-9))


def test_check_linear_params():
    ok = dict(rates=[0.1, 0.5], ratios=[0.1, 1.0], T_list=[10], d=5, n=20, n_init=2,
              n_ckpt=3, sgd_batch=5, eta_frac=0.5, image_train=10, image_eval=10)
    L.check_linear_params(**ok)
    for key, bad in [("rates", [0.1]), ("ratios", [0.1, 0.5]), ("n", 3), ("sgd_batch", 50),
                     ("eta_frac", 2.5), ("image_train", 60001), ("image_eval", 10001)]:
        with pytest.raises(ValueError, match=key):
            L.check_linear_params(**{**ok, key: bad})
    # CIFAR-10 has 50000 training images, Fashion-MNIST 60000 (the registry's sizes)
    L.check_linear_params(**{**ok, "image_train": 55000})
    with pytest.raises(ValueError, match="image_train = 55000: cifar10 has 50000"):
        L.check_linear_params(**{**ok, "image_train": 55000, "image_set": "cifar10"})
