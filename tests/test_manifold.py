"""Unit tests of hyperribbon.manifold against analytic facts."""

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C

from hyperribbon.manifold import (
    bernstein_ellipse,
    bernstein_rho,
    bound_ratio,
    box_corners,
    cheb_bound,
    cheb_coefficients,
    cheb_points,
    check_chebyshev_params,
    coefficient_bound,
    coefficient_ratio,
    from_unit,
    geometric_fit,
    interpolation_ratio,
    power_law_fit,
    ribbon_fit,
    sample_box,
    to_unit,
)


def test_unit_maps_are_inverse_affine():
    t = np.array([2.0, 3.0, 5.0 + 1j])
    assert np.allclose(to_unit(np.array([2.0, 5.0]), 2.0, 5.0), [-1, 1])
    assert np.allclose(from_unit(to_unit(t, 2.0, 5.0), 2.0, 5.0), t)


def test_cheb_points_are_roots_of_T_n_plus_1():
    x = cheb_points(7)
    assert len(x) == 8 and np.all(np.diff(x) > 0)
    assert np.allclose(C.chebval(x, [0] * 8 + [1]), 0, atol=1e-13)


def test_cheb_coefficients_reproduce_a_polynomial():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(3, 10))
    x = cheb_points(9)
    vals = np.stack([C.chebval(x, ci) for ci in c])
    assert np.allclose(cheb_coefficients(vals), c, atol=1e-12)


@pytest.mark.parametrize("a", [1.1, 1.5, 3.0])
def test_coefficients_of_a_pole_decay_at_the_bernstein_rate(a):
    # 1/(a − x) = (2/√(a²−1)) Σ' ρ^-k T_k(x), ρ = a + √(a²−1)
    rho = a + np.sqrt(a * a - 1)
    x = cheb_points(200)
    c = cheb_coefficients(1.0 / (a - x))
    k = np.arange(1, int(8 / np.log10(rho)))  # the c_k above 1e-8 ρ^-1
    exact = 2 / np.sqrt(a * a - 1) * rho ** -k.astype(float)
    assert np.allclose(c[k], exact, rtol=1e-6, atol=0)
    rho_fit, r2 = geometric_fit(c[k])
    assert rho_fit == pytest.approx(rho, rel=1e-6) and r2 == pytest.approx(1.0)
    assert bernstein_rho(a) == pytest.approx(rho)


def test_bernstein_rho_and_ellipse():
    rho = 1.7
    z = bernstein_ellipse(rho, 50)
    ax, bx = (rho + 1 / rho) / 2, (rho - 1 / rho) / 2  # semi-axes
    assert np.allclose((z.real / ax) ** 2 + (z.imag / bx) ** 2, 1)
    assert np.allclose(bernstein_rho(z), rho)
    assert np.allclose(bernstein_rho(np.array([-1.0, 0.3, 1.0])), 1)
    with pytest.raises(ValueError):
        bernstein_ellipse(1.0, 8)


def _pole_M(rho, a):
    """max |1/(a − z)| on ∂E_ρ: the closest point to a is the right end (ρ + 1/ρ)/2."""
    return 1.0 / (a - (rho + 1 / rho) / 2)


def test_bounds_hold_for_a_pole():
    a = 1.3
    rho_a = a + np.sqrt(a * a - 1)
    rho = 1 + (rho_a - 1) * np.linspace(0.01, 0.99, 200)
    M = _pole_M(rho, a)
    x = cheb_points(300)
    c = cheb_coefficients(1.0 / (a - x))
    k = np.arange(40)
    assert np.all(np.abs(c[k]) <= coefficient_bound(rho, M, k))
    # interpolation error of degree n at m sample points ≤ B_n
    s = np.linspace(-1, 1, 25)
    b = cheb_bound(rho, M, len(s), 20)
    for n in range(21):
        xn = cheb_points(n)
        p = C.chebval(s, cheb_coefficients(1.0 / (a - xn)))
        assert np.linalg.norm(1.0 / (a - s) - p) <= b.bound[n]
    assert np.all(np.diff(b.bound) < 0) and np.all((b.rho_opt > 1) & (b.rho_opt < rho_a))


def test_cheb_bound_formula_and_nonfinite_M():
    b = cheb_bound(np.array([2.0, 3.0]), np.array([1.0, np.inf]), 4, 3)
    assert np.allclose(b.bound, np.sqrt(4) * 4 * 2.0 ** -np.arange(4) / 1.0)
    assert np.all(b.rho_opt == 2.0)
    with pytest.raises(ValueError):
        cheb_bound(np.array([2.0]), np.array([np.inf]), 4, 3)


def test_bound_ratio_skips_degrees_below_floor():
    b = cheb_bound(np.array([2.0]), np.array([1.0]), 1, 5)  # B_n = 4·2^-n
    R = np.array([9.0, 1.0, 1.0, 0.2, 1e-9, 1e-9, 0.0])
    ratio, n = bound_ratio(R, b, floor=0.3)  # B_0..B_3 = 4, 2, 1, 0.5 are above 0.3
    assert n == 4 and ratio == pytest.approx(max(1 / 4, 1 / 2, 0.2 / 1, 1e-9 / 0.5))
    with pytest.raises(ValueError):
        bound_ratio(R, b, floor=10.0)


def test_sample_box_log_uniform():
    lo, hi = np.array([1e-3, 1.0]), np.array([1.0, 2.0])
    th = sample_box(lo, hi, 20000, seed=3)
    assert th.shape == (20000, 2) and np.all((th >= lo) & (th <= hi))
    assert np.mean(np.log10(th[:, 0])) == pytest.approx(-1.5, abs=0.03)  # uniform in log
    assert np.array_equal(th, sample_box(lo, hi, 20000, seed=3))
    lin = sample_box(lo, hi, 20000, seed=3, log=False)
    assert np.mean(lin[:, 0]) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError):
        sample_box(np.array([0.0]), np.array([1.0]), 5, 0)


def test_ribbon_fit_of_a_cloud_with_geometric_widths():
    # a centred cloud with orthogonal columns of RMS width 3^-k along orthonormal
    # directions: the widths are exact, their geometric fit is ρ = 3 with R² = 1
    rng = np.random.default_rng(4)
    N, m, r = 64, 12, 10
    U, _ = np.linalg.qr(rng.normal(size=(N, r)) - rng.normal(size=(N, r)).mean(0))
    U -= U.mean(0)
    U, _ = np.linalg.qr(U)  # still centred: the mean lies in no column's span
    V, _ = np.linalg.qr(rng.normal(size=(m, r)))
    sigma = 3.0 ** -np.arange(r)
    Y = np.sqrt(N) * (U * sigma) @ V.T + 5.0
    rho, M = np.array([2.0, 4.0]), np.array([1.0, 3.0])
    fit = ribbon_fit(Y, rho, M, n_fit=6)
    assert np.allclose(fit.widths.sigma[:r], sigma, rtol=1e-8)
    assert fit.rho_fit == pytest.approx(3.0) and fit.r2 == pytest.approx(1.0)
    assert fit.r2_power == pytest.approx(power_law_fit(sigma[:6])[1]) and fit.r2_power < 1
    b = cheb_bound(rho, M, m, m - 2)
    assert np.array_equal(fit.bound.bound, b.bound) and fit.rho_opt == b.rho_opt[5]
    floor = 1e3 * np.finfo(float).eps * np.sqrt(m) * fit.widths.residuals[0]
    assert (fit.ratio, fit.n_checked) == bound_ratio(fit.widths.residuals, b, floor)


def test_ribbon_fit_of_sampled_exponentials_obeys_the_bound():
    # the theorem: every residual R_(n+1) is below the Chebyshev bound B_n
    t = np.linspace(0, 1, 30)
    theta = sample_box(np.full(3, 0.1), np.full(3, 4.0), 500, seed=0)
    Y = np.exp(-theta[:, :, None] * t).mean(1)
    rho = 1 + np.geomspace(1e-3, 100, 200)
    # on the Bernstein ellipse of [0, 1], Re t ≥ (1 − (ρ + 1/ρ)/2)/2, so for θ ≤ Λ = 4
    # |exp(−θ t)| ≤ exp(Λ (ρ + 1/ρ − 2)/4)
    with np.errstate(over="ignore"):
        M = np.exp(4.0 * (rho + 1 / rho - 2) / 4)
    fit = ribbon_fit(Y, rho, M, n_fit=8)
    assert fit.ratio <= 1.0 and fit.n_checked >= 3
    assert fit.rho_fit > 1 and fit.r2 > 0.9


def test_geometric_fit_noisy_and_exact():
    v = 5.0 * 3.0 ** -np.arange(8.0)
    assert geometric_fit(v) == pytest.approx((3.0, 1.0))
    rho, r2 = geometric_fit(v * np.array([1, 2, 1, 2, 1, 2, 1, 2]))
    assert r2 < 1 and rho == pytest.approx(3.0, rel=0.1)


def test_box_corners():
    c = box_corners([1, 2, 3], [4, 5, 6])
    assert c.shape == (8, 3)
    assert {tuple(r) for r in c} == {(a, b, d) for a in (1, 4) for b in (2, 5) for d in (3, 6)}


GOOD = dict(n_samples=100, n_cheb_samples=10, n_times=50, enzyme_lo=[0.1] * 4,
            enzyme_hi=[1.0] * 4, sir_lo=[0.3, 0.1, 0.001], sir_hi=[0.6, 0.3, 0.01],
            sir_t_end=30.0, sir_max_step=0.1)


@pytest.mark.parametrize("change, name", [
    (dict(n_samples=5, n_cheb_samples=5), "n_samples"),
    (dict(n_times=8), "n_times"),
    (dict(n_cheb_samples=101), "n_cheb_samples"),
    (dict(enzyme_hi=[1.0, 1.0, 0.05, 1.0]), "enzyme_hi"),
    (dict(enzyme_lo=[0.0, 0.1, 0.1, 0.1]), "enzyme_lo"),
    (dict(sir_hi=[0.6, 0.3]), "sir_lo, sir_hi"),
    (dict(sir_hi=[0.6, 0.3, 1.5]), "sir_hi"),
    (dict(sir_max_step=31.0), "sir_max_step"),
    (dict(exp_sweep=[8.0]), "exp_sweep"),
])
def test_check_chebyshev_params(change, name):
    check_chebyshev_params(**GOOD)
    with pytest.raises(ValueError, match=name):
        check_chebyshev_params(**{**GOOD, **change})


def test_power_law_fit_tells_a_power_law_from_a_geometric_sequence():
    k = np.arange(1.0, 9.0)
    p, r2 = power_law_fit(7.0 * k ** -2.5)
    assert (p, r2) == pytest.approx((2.5, 1.0))
    # the geometric fit of a pure power law over k = 1..8 still scores R² = corr(k, log k)²
    r2_geo = geometric_fit(k ** -2.5)[1]
    assert r2_geo == pytest.approx(np.corrcoef(k, np.log(k))[0, 1] ** 2) and r2_geo > 0.9
    assert power_law_fit(3.0 ** -k)[1] < geometric_fit(3.0 ** -k)[1] == pytest.approx(1.0)


def test_coefficient_ratio_of_poles_is_at_most_one():
    a = np.array([1.3, 1.6, 2.5])  # poles at a ≥ 1.3: M for a = 1.3 bounds them all
    rho = 1 + (1.3 + np.sqrt(1.3**2 - 1) - 1) * np.linspace(0.01, 0.999, 400)
    M = _pole_M(rho, 1.3)
    coef = cheb_coefficients(1.0 / (a[:, None] - cheb_points(200)))
    ratio, n = coefficient_ratio(coef, rho, M, floor=1e-12)
    assert 0.0 < ratio <= 1.0 and n > 20
    # a pole closer than any ellipse of M breaks the bound
    assert coefficient_ratio(cheb_coefficients(1 / (1.1 - cheb_points(200))), rho, M,
                             floor=1e-12)[0] > 1
    with pytest.raises(ValueError, match="above the floor"):
        coefficient_ratio(coef, rho, M, floor=1e9)


def test_interpolation_ratio_of_exponentials_on_an_interval():
    theta = np.array([0.5, 2.0, 4.0])  # e^(−θt) on [0, 1], |e^(−θt)| ≤ e^(Λ(ρ+1/ρ−2)/4)
    rho = 1 + np.geomspace(1e-3, 50, 300)
    M = np.exp(4.0 * (rho + 1 / rho - 2) / 4)
    calls = []

    def f(t):
        calls.append(len(t))
        return np.exp(-theta[:, None] * t)

    ratio, n = interpolation_ratio(f, 0.0, 1.0, rho, M, np.arange(1, 12), floor=1e-12,
                                   n_fine=501)
    assert 0.0 < ratio <= 1.0 and n == 11
    assert calls[0] == 501 and calls[1:] == list(range(2, 13))  # n + 1 points per degree
    # an M too small for the largest rate is caught
    assert interpolation_ratio(f, 0.0, 1.0, rho, M / 100, np.arange(1, 12), 1e-12)[0] > 1
    with pytest.raises(ValueError, match="above the floor"):
        interpolation_ratio(f, 0.0, 1.0, rho, M, np.arange(1, 4), floor=1e9)
