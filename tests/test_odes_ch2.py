"""Unit tests of the chapter-2 models in hyperribbon.odes against independent facts."""

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C
from scipy.integrate import solve_ivp

from hyperribbon.manifold import (
    bernstein_ellipse,
    bernstein_rho,
    box_corners,
    cheb_bound,
    from_unit,
    sample_box,
    to_unit,
)
from hyperribbon.odes import (
    ENZYME_THETA_FIT,
    ENZYME_U,
    enzyme_M,
    enzyme_poles,
    enzyme_rate,
    enzyme_rho_max,
    exp_decay,
    exp_decay_M,
    sir_ellipse_max,
    sir_solve,
)


def test_exp_decay_is_the_mean_of_exponentials():
    theta = np.array([[1.0, 2.0], [0.5, 0.5]])
    t = np.array([0.0, 0.3, 1.0 + 0.5j])
    y = exp_decay(theta, t)
    assert y.shape == (2, 3)
    assert np.allclose(y[0], (np.exp(-t) + np.exp(-2 * t)) / 2)
    assert np.allclose(y[1], np.exp(-0.5 * t))


@pytest.mark.parametrize("lam_t", [2.0, 8.0, 32.0])
def test_exp_M_is_the_max_on_the_ellipse(lam_t):
    # direct: |y| over ∂E_ρ of [0, T] and rates on a grid of [0, Λ] (T = 1)
    rates = np.linspace(0, lam_t, 41)[:, None]
    for rho in (1.2, 2.0, 4.0):
        t = from_unit(bernstein_ellipse(rho, 4000), 0.0, 1.0)
        direct = np.abs(exp_decay(rates, t)).max()
        assert exp_decay_M(rho, lam_t) == pytest.approx(direct, rel=1e-5)


def _distance_to_cheb_span(Y, s, n):
    """Distance of each row of Y (values at s) to span(T_0 … T_n) evaluated at s."""
    V = C.chebvander(s, n)
    coef, *_ = np.linalg.lstsq(V, Y.T, rcond=None)
    return np.linalg.norm(Y.T - V @ coef, axis=0)


def test_exp_bound_holds_for_random_draws():
    lam_t, m = 8.0, 50
    t = np.linspace(0, 1, m)
    th = sample_box(np.full(6, 1e-3), np.full(6, lam_t), 500, seed=4, log=False)
    Y = exp_decay(th, t)
    rho = 1 + np.geomspace(1e-3, 50, 300)
    b = cheb_bound(rho, exp_decay_M(rho, lam_t), m, 12)
    for n in range(13):
        d = _distance_to_cheb_span(Y, to_unit(t, 0, 1), n)
        assert d.max() <= b.bound[n]


def test_enzyme_rate_and_poles():
    assert len(ENZYME_U) == 11
    th = ENZYME_THETA_FIT
    y = enzyme_rate(th, ENZYME_U)
    u = ENZYME_U
    assert np.allclose(y, th[0] * (u ** 2 + th[1] * u) / (u ** 2 + th[2] * u + th[3]))
    # the Kowalik–Osborne data (Moré, Garbow & Hillstrom 1981): the fit's residual
    data = np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342,
                     0.0323, 0.0235, 0.0246])
    assert np.sum((y - data) ** 2) == pytest.approx(3.075e-4, rel=0.01)
    p = enzyme_poles(np.array([[1, 1, 0.3, 0.01], [1, 1, 0.1, 0.2]]))
    den = p ** 2 + np.array([[0.3], [0.1]]) * p + np.array([[0.01], [0.2]])
    assert np.allclose(den, 0)


LO = np.array([0.05, 0.05, 0.05, 0.05])
HI = np.array([0.5, 0.5, 0.5, 0.5])
U0, U1 = ENZYME_U.min(), ENZYME_U.max()


def test_enzyme_rho_max_is_the_nearest_pole_over_the_box():
    r = enzyme_rho_max(LO, HI, U0, U1)
    th = sample_box(LO, HI, 20000, seed=0, log=False)
    rs = bernstein_rho(to_unit(enzyme_poles(th), U0, U1))
    assert r <= rs.min() and r == pytest.approx(rs.min(), rel=0.01)


def test_enzyme_M_is_the_max_over_box_and_ellipse():
    rmax = enzyme_rho_max(LO, HI, U0, U1)
    g = np.linspace(0.05, 0.5, 46)
    t3, t4 = np.meshgrid(g, g, indexing="ij")
    for rho in (1 + 0.3 * (rmax - 1), 1 + 0.9 * (rmax - 1)):
        M = enzyme_M(np.array([rho]), LO, HI, U0, U1, n_boundary=512)[0]
        u = from_unit(bernstein_ellipse(rho, 512), U0, U1)
        best = 0.0
        for t2 in (0.05, 0.5):
            th = np.stack([np.full(t3.size, 0.5), np.full(t3.size, t2), t3.ravel(),
                           t4.ravel()], axis=1)
            best = max(best, np.abs(enzyme_rate(th, u)).max())
            # interior θ never exceed it
            inner = sample_box(LO, HI, 2000, seed=1)
            assert np.abs(enzyme_rate(inner, u)).max() <= M
        assert best <= M * (1 + 1e-12) and best == pytest.approx(M, rel=0.02)


def test_enzyme_bound_holds_for_random_draws():
    rmax = enzyme_rho_max(LO, HI, U0, U1)
    rho = 1 + (rmax - 1) * np.linspace(0.02, 0.99, 40)
    b = cheb_bound(rho, enzyme_M(rho, LO, HI, U0, U1), 11, 9)
    Y = enzyme_rate(sample_box(LO, HI, 500, seed=2), ENZYME_U)
    for n in range(10):
        assert _distance_to_cheb_span(Y, to_unit(ENZYME_U, U0, U1), n).max() <= b.bound[n]


THETA = np.array([[0.5, 0.2, 0.01], [0.3, 0.1, 0.001], [0.45, 0.3, 0.005]])


def test_sir_matches_scipy_on_the_real_axis():
    t = np.linspace(0, 30, 31)
    I = sir_solve(THETA, t, max_step=0.05)
    for k, (b, g, i0) in enumerate(THETA):
        sol = solve_ivp(lambda _, y, b=b, g=g: [-b * y[0] * y[1], b * y[0] * y[1] - g * y[1]],
                        (0, 30), [1 - i0, i0], t_eval=t, rtol=1e-12, atol=1e-14)
        assert np.allclose(I[k], sol.y[1], atol=1e-9)


def test_sir_complex_time_agrees_with_real_time():
    t = np.linspace(0, 30, 7)
    real = sir_solve(THETA, t, max_step=0.05)
    # on the real axis, integrated as complex numbers
    cplx = sir_solve(THETA, t.astype(complex), max_step=0.05)
    assert np.allclose(cplx.imag, 0) and np.allclose(cplx.real, real, atol=1e-12)
    # and along a detour into the complex plane that returns to the real axis (analyticity)
    path = np.array([15 + 3j, 30.0])
    detour = sir_solve(THETA, path, max_step=0.02)[:, -1]
    assert np.allclose(detour, real[:, -1], atol=1e-8)


def test_sir_ellipse_max_logistic_limit():
    # γ = 0: I' = β I (1 − I), I = 1 / (1 + (1/I0 − 1) e^{−βt}); poles at
    # t = (log(1/I0 − 1) ± iπ)/β.
    beta, i0, T = 0.5, 0.01, 20.0
    th = np.array([[beta, 0.0, i0]])
    t_pole = (np.log(1 / i0 - 1) + 1j * np.pi) / beta
    rho_pole = float(bernstein_rho(to_unit(t_pole, 0, T)))
    rho = 1 + (rho_pole - 1) * np.array([0.1, 0.4, 0.8, 1.3, 1.6])
    e = sir_ellipse_max(th, rho, T, n_boundary=128, max_step=0.05)
    assert e.valid[:3].all() and not e.valid[3:].any()
    assert np.all(np.isinf(e.M[3:]))
    for r, M in zip(rho[:3], e.M[:3], strict=True):
        tz = from_unit(bernstein_ellipse(r, 128), 0, T)
        exact = np.abs(1 / (1 + (1 / i0 - 1) * np.exp(-beta * tz))).max()
        assert M == pytest.approx(exact, rel=1e-6)


def test_sir_ellipse_max_over_theta_near_the_interval():
    lo, hi = np.array([0.3, 0.1, 0.001]), np.array([0.6, 0.3, 0.01])
    th = box_corners(lo, hi)
    e = sir_ellipse_max(th, np.array([1.001]), 30.0, n_boundary=256)
    # a thin ellipse: max |I| → the largest real-time peak
    peak = sir_solve(th, np.linspace(0, 30, 3001)).max()
    assert e.valid[0] and e.M[0] == pytest.approx(peak, rel=1e-3)
