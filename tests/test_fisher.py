"""hyperribbon.fisher against analytic cases: linear models, sums of exponentials, spectra
with known eigenvalues."""

import numpy as np
import pytest
import torch

from hyperribbon.fisher import (
    bottom_rayleigh_error,
    eigenvalue_relative_error,
    fisher_information,
    fisher_spectrum,
    jacobian,
    jacobian_fd,
    log_spectrum,
    rayleigh_quotient,
    sloppy_spectrum,
    spectrum_span,
)

T = np.linspace(0.1, 5.0, 30)
THETA = np.array([0.3, 1.0, 2.5])


def exp_sum_np(theta):
    return np.exp(-np.outer(T, theta)).sum(axis=1)


def exp_sum_torch(theta):
    return torch.exp(-torch.outer(torch.as_tensor(T, dtype=theta.dtype), theta)).sum(dim=1)


def exp_sum_jacobian(theta):
    """Closed form: ∂/∂θ_i Σ_j exp(−θ_j t) = −t exp(−θ_i t)."""
    return -T[:, None] * np.exp(-np.outer(T, theta))


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_autodiff_jacobian_of_exponential_sum(mode):
    jac = jacobian(exp_sum_torch, THETA, mode=mode, device="cpu")
    assert jac.shape == (T.size, THETA.size)
    np.testing.assert_allclose(jac.numpy(), exp_sum_jacobian(THETA), rtol=1e-13, atol=1e-15)


def test_autodiff_jacobian_chunked_and_bad_input():
    jac = jacobian(exp_sum_torch, THETA, chunk_size=2, device="cpu")
    np.testing.assert_allclose(jac.numpy(), exp_sum_jacobian(THETA), rtol=1e-13)
    with pytest.raises(ValueError, match="mode"):
        jacobian(exp_sum_torch, THETA, mode="sideways")
    with pytest.raises(ValueError, match="flat"):
        jacobian(exp_sum_torch, np.ones((2, 2)))


@pytest.mark.parametrize("vectorized", [False, True])
def test_central_differences_of_exponential_sum(vectorized):
    fn = exp_sum_np if not vectorized else (
        lambda th: np.stack([exp_sum_np(t) for t in th]))
    jac = jacobian_fd(fn, THETA, step=1e-5, vectorized=vectorized)
    # central differences: error ~ h²/6 |f'''| ≤ 1e-10 · t³ here
    np.testing.assert_allclose(jac, exp_sum_jacobian(THETA), rtol=1e-8, atol=1e-10)


def test_central_differences_steps_per_parameter_and_relative():
    theta = np.array([100.0, 0.5])

    def fn(th):
        return np.array([th[0] ** 2, th[0] * th[1] ** 3])

    exact = np.array([[2 * theta[0], 0.0], [theta[1] ** 3, 3 * theta[0] * theta[1] ** 2]])
    np.testing.assert_allclose(jacobian_fd(fn, theta, step=[1e-3, 1e-6]), exact, rtol=1e-8)
    np.testing.assert_allclose(jacobian_fd(fn, theta, step=1e-6, relative=True), exact,
                               rtol=1e-8)
    with pytest.raises(ValueError, match="positive"):
        jacobian_fd(fn, theta, step=0.0)


def test_linear_model_fisher_is_xtx():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    jac = jacobian(lambda th: torch.as_tensor(x) @ th, np.zeros(4), device="cpu").numpy()
    np.testing.assert_allclose(jac, x, rtol=1e-14)
    np.testing.assert_allclose(fisher_information(jac), x.T @ x, rtol=1e-12)
    w = rng.uniform(0.5, 2.0, size=50)
    np.testing.assert_allclose(fisher_information(x, w), x.T @ np.diag(w) @ x, rtol=1e-12)
    spec = sloppy_spectrum(x)
    lam = np.linalg.eigvalsh(x.T @ x)[::-1]
    np.testing.assert_allclose(spec.eigenvalues, lam, rtol=1e-12)
    g = x.T @ x
    for i in range(4):  # eigen-directions: g v = λ v, unit length
        v = spec.eigenvectors[:, i]
        np.testing.assert_allclose(g @ v, lam[i] * v, rtol=1e-10, atol=1e-10)
        assert np.linalg.norm(v) == pytest.approx(1.0)
        assert rayleigh_quotient(x, v) == pytest.approx(lam[i] / lam[0], rel=1e-12)
        assert rayleigh_quotient(x, 3 * v, normalise=False) == pytest.approx(lam[i])
    fs = fisher_spectrum(g)
    np.testing.assert_allclose(fs.eigenvalues, lam, rtol=1e-12)


def test_sloppy_spectrum_resolves_far_below_machine_precision_of_g():
    """J = U diag(σ) Vᵀ with σ from 1 to 1e-10: λ = σ² spans 20 decades, which the SVD of J
    resolves (eigen-decomposing JᵀJ could not go below ~1e-16)."""
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.normal(size=(40, 6)))
    v, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    sigma = np.logspace(0, -10, 6)
    jac = u @ np.diag(sigma) @ v.T
    spec = sloppy_spectrum(jac)
    np.testing.assert_allclose(spec.eigenvalues, sigma**2, rtol=1e-5)
    np.testing.assert_allclose(spec.log, np.log10(sigma**2), atol=1e-5)
    assert spec.span == pytest.approx(20.0, abs=1e-5)
    assert spectrum_span(spec.eigenvalues) == pytest.approx(20.0, abs=1e-5)
    # torch input gives the same spectrum
    tspec = sloppy_spectrum(torch.as_tensor(jac))
    np.testing.assert_allclose(tspec.eigenvalues.numpy(), sigma**2, rtol=1e-5)
    assert tspec.span == pytest.approx(20.0, abs=1e-5)


def test_sloppy_spectrum_exclude_known_null_direction_and_wide_jacobian():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 5))
    null = np.array([1.0, -1.0, 0.0, 2.0, 0.0])
    jac = x - np.outer(x @ null, null) / (null @ null)  # J null = 0
    full = sloppy_spectrum(jac)
    assert full.eigenvalues[-1] < 1e-25 * full.eigenvalues[0]
    rest = sloppy_spectrum(jac, exclude=null)
    assert rest.eigenvalues.shape == (4,)
    np.testing.assert_allclose(rest.eigenvalues, full.eigenvalues[:4], rtol=1e-12)
    assert np.abs(rest.eigenvectors.T @ null).max() < 1e-12
    trest = sloppy_spectrum(torch.as_tensor(jac), exclude=null)
    np.testing.assert_allclose(trest.eigenvalues.numpy(), rest.eigenvalues, rtol=1e-10)
    # fewer residuals than parameters: the spectrum is padded with zeros
    wide = sloppy_spectrum(x[:3])
    assert wide.eigenvalues.shape == (5,) and wide.eigenvectors.shape == (5, 5)
    assert np.all(wide.eigenvalues[3:] == 0)
    assert log_spectrum(wide.eigenvalues)[-1] == -np.inf
    assert sloppy_spectrum(torch.as_tensor(x[:3])).eigenvalues.shape == (5,)


def test_eigenvalue_relative_error_of_scaled_jacobian():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 6))
    # J(1 + δ) scales every eigenvalue by (1 + δ)²
    assert eigenvalue_relative_error(x * (1 + 1e-6), x, k=5) == pytest.approx(
        2e-6 + 1e-12, rel=1e-6)
    assert eigenvalue_relative_error(x, x) == 0.0


def test_bottom_rayleigh_error_sees_an_error_in_the_sloppiest_direction_only():
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(30, 6)))
    v, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    sv = 10.0 ** -np.arange(6.0)  # λ = 1 … 1e-10
    x = q @ np.diag(sv) @ v.T
    spec = sloppy_spectrum(x)
    assert bottom_rayleigh_error(x, spec, k=3) < 1e-8
    # perturb J along the sloppiest direction only: ‖J v_6‖² becomes (1 + δ)² λ_6
    bad = x + 1e-3 * sv[-1] * np.outer(q[:, -1], v[:, -1])
    assert bottom_rayleigh_error(bad, spec, k=3) == pytest.approx(2e-3 + 1e-6, rel=1e-4)
    # ... which the top-eigenvalue check cannot see
    assert eigenvalue_relative_error(bad, x, k=5) < 1e-12
    with pytest.raises(ValueError, match="k = 7"):
        bottom_rayleigh_error(x, spec, k=7)
    with pytest.raises(ValueError, match="zero eigenvalue"):
        bottom_rayleigh_error(x[:, :5] @ np.eye(5, 6), sloppy_spectrum(x[:, :5] @ np.eye(5, 6)))
