"""The extended van der Pol model (chapter 1) against independent facts: the known period,
its relaxation asymptotics, finite differences, the exact time-rescaling direction."""

import numpy as np
import pytest

from hyperribbon.fisher import eigenvalue_relative_error, rayleigh_quotient
from hyperribbon.odes import (
    VanDerPol,
    check_vdp_parameters,
    vdp_fisher_spectrum,
    vdp_jacobian_fd,
    vdp_limit_cycles,
    vdp_monomials,
    vdp_parameter_names,
    vdp_period_asymptotic,
    vdp_samples,
    vdp_sensitivities,
    vdp_slow_fraction,
    vdp_slow_time_fraction,
)

RNG = np.random.default_rng(0)
Z = RNG.uniform(-2, 2, size=(2, 7))


@pytest.fixture(scope="module")
def sens_01():
    """Sensitivities and FD Jacobians at ε = 0.1 (K = 40): shared by several tests."""
    model = VanDerPol(0.1, 3)
    sens = vdp_sensitivities(model, n_samples=40)
    return model, sens, vdp_jacobian_fd(model, 40, cycle=sens.cycle)


def test_monomials_and_names():
    assert vdp_monomials(2) == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    names = vdp_parameter_names(3)
    assert len(names) == 20 == VanDerPol(1.0, 3).n_params
    assert names[:4] == ["a_1", "a_x", "a_y", "a_x2"] and names[-1] == "b_y3"
    assert "a_x2y" in names and "b_xy2" in names
    assert VanDerPol(1.0, 5).n_params == 42
    with pytest.raises(ValueError):
        VanDerPol(0.0)
    with pytest.raises(ValueError):
        vdp_monomials(0)


def test_derivatives_against_finite_differences():
    model = VanDerPol(0.3, 4)
    theta = RNG.normal(scale=0.1, size=model.n_params)
    h = 1e-6
    ex, ey = np.array([h, 0.0])[:, None], np.array([0.0, h])[:, None]
    # basis derivatives
    for (dx, dy), e in (((1, 0), ex), ((0, 1), ey)):
        fd = (model.basis(*(Z + e)) - model.basis(*(Z - e))) / (2 * h)
        np.testing.assert_allclose(model.basis(*Z, dx=dx, dy=dy), fd, rtol=1e-7, atol=1e-7)
    # ∂f/∂z and ∂²f/∂z²
    jz = model.state_jacobian(Z, theta)
    hz = model.state_hessian(Z, theta)
    for col, e in enumerate((ex, ey)):
        fd = (model.field(Z + e, theta) - model.field(Z - e, theta)) / (2 * h)
        np.testing.assert_allclose(jz[:, :, col], fd.T, rtol=1e-7, atol=1e-6)
        fd2 = (model.state_jacobian(Z + e, theta) - model.state_jacobian(Z - e, theta)) / (2 * h)
        np.testing.assert_allclose(hz[..., col], fd2, rtol=1e-7, atol=1e-5)
    # ∂f/∂θ: f is linear in θ, so one difference is exact
    jt = model.param_jacobian(Z)
    for p in range(model.n_params):
        e = np.zeros(model.n_params)
        e[p] = 1.0
        np.testing.assert_allclose(jt[:, :, p], (model.field(Z, theta + e)
                                                 - model.field(Z, theta)).T, atol=1e-10)
    np.testing.assert_allclose(model.param_jacobian(Z, scaled=False)[:, 0, :model.n_params // 2],
                               model.basis(*Z))


def test_time_rescaling_direction_scales_the_field():
    model = VanDerPol(0.05, 3)
    v = model.time_rescaling_direction()
    for alpha in (0.1, -0.3):
        np.testing.assert_allclose(model.field(Z, alpha * v), (1 + alpha) * model.field(Z),
                                   rtol=1e-13, atol=1e-12)
    with pytest.raises(ValueError, match="degree"):
        VanDerPol(1.0, 2).time_rescaling_direction()


def test_period_mu_one_and_phase_anchor_for_any_seed():
    """ε = 1 is the standard van der Pol oscillator with μ = 1: T = 6.66328686..."""
    model = VanDerPol(1.0)
    cycles = [vdp_limit_cycles(model, seed=s) for s in (0, 1, 2)]
    for c in cycles:
        assert c.periods[0] == pytest.approx(6.663286859, abs=1e-8)
        np.testing.assert_allclose(c.anchors, cycles[0].anchors, atol=1e-8)
        # the anchor is the maximum of x: ẋ = 0 there, and x is below it along the cycle
        assert abs(model.field(c.anchors[:, 0])[0]) < 1e-8
        x = c(np.linspace(0, c.periods[0], 500))[0, 0]
        assert x.max() <= c.anchors[0, 0] + 1e-9
        np.testing.assert_allclose(c([c.periods[0]])[:, 0, 0], c.anchors[:, 0], atol=1e-8)


def test_relaxation_limit_period_asymptotics():
    """T(ε) → 3 − 2 ln 2, with Dorodnitsyn's corrections; error O(ε^{4/3} ln ε)."""
    model_t = {eps: vdp_limit_cycles(VanDerPol(eps), z0=[2.0, 0.67]).periods[0]
               for eps in (0.01, 0.001)}
    for eps, t in model_t.items():
        assert abs(t - vdp_period_asymptotic(eps)) < eps ** (4 / 3) * abs(np.log(eps))
    assert abs(model_t[0.001] - (3 - 2 * np.log(2))) < 0.07


def test_stiff_solvers_agree_at_small_eps():
    """LSODA (default) against Radau at ε = 0.01: the same period and states."""
    model = VanDerPol(0.01)
    a = vdp_limit_cycles(model, z0=[2.0, 0.67])
    b = vdp_limit_cycles(model, z0=[2.0, 0.67], method="Radau", rtol=1e-10)
    assert a.periods[0] == pytest.approx(b.periods[0], abs=1e-8)
    t = np.linspace(0, 0.99 * a.periods[0], 50)
    np.testing.assert_allclose(a(t), b(t), atol=1e-6)  # (time shifts across the jumps)


def test_sensitivities_match_finite_differences(sens_01):
    model, sens, fd = sens_01
    for variant in ("absolute", "phase"):
        jac = sens.jacobian(variant)
        assert jac.shape == (80, model.n_params)
        err = np.abs(jac - fd[variant]).max() / np.abs(jac).max()
        assert err < 1e-5, variant
        assert eigenvalue_relative_error(fd[variant], jac) < 1e-5
    # the period gradient, by differences of the periods
    h = 1e-6
    for p in (0, 7, 13):
        e = np.zeros(model.n_params)
        e[p] = h
        t = vdp_limit_cycles(model, np.stack([e, -e]), z0=sens.cycle.anchors[:, 0]).periods
        assert (t[0] - t[1]) / (2 * h) == pytest.approx(sens.period_gradient[p], rel=1e-5,
                                                        abs=1e-6)


def test_time_rescaling_is_exact(sens_01):
    """Along v the field is multiplied by (1 + α): z(t; α) = z₀((1 + α) t), so
    ∂z/∂α = t f(z₀(t)), ∂T/∂α = −T, and the phase-normalised residuals do not move."""
    model, sens, _ = sens_01
    v = model.time_rescaling_direction()
    assert sens.period_gradient @ v == pytest.approx(-sens.period, rel=1e-8)
    expected = (sens.times * model.field(sens.states)).reshape(-1)
    np.testing.assert_allclose(sens.jac_absolute @ v, expected, atol=1e-7 * np.abs(expected).max())
    assert rayleigh_quotient(sens.jac_phase, v) < 1e-14
    assert rayleigh_quotient(sens.jac_absolute, v) > 1e-3
    spec = vdp_fisher_spectrum(sens, "phase")
    assert spec.eigenvalues.shape == (model.n_params - 1,)
    assert vdp_fisher_spectrum(sens, "absolute").eigenvalues.shape == (model.n_params,)


def test_samples_variants(sens_01):
    model, sens, _ = sens_01
    k = 40
    ab = vdp_samples(model, None, k, "absolute", period=sens.period)
    ph = vdp_samples(model, np.zeros(model.n_params), k, "phase")
    assert ab.shape == (1, 2 * k) and ph.shape == (2 * k,)
    np.testing.assert_allclose(ab[0], ph, atol=1e-8)  # at θ = 0 both are the same samples
    np.testing.assert_allclose(ph, sens.states.reshape(-1), atol=1e-8)
    with pytest.raises(ValueError, match="variant"):
        vdp_samples(model, None, k, "sideways")


def test_slow_fraction_identities(sens_01):
    model, sens, _ = sens_01
    cycle = sens.cycle
    frac_t = vdp_slow_time_fraction(cycle)
    assert 0.7 <= frac_t <= 0.75  # the brief: ≥ 70% of the period near the slow manifold
    # a constant change of dy/dt (b_1) weighs every instant equally: its slow fraction is
    # the fraction of time on the slow segments
    e = np.zeros(model.n_params)
    e[model.names.index("b_1")] = 1.0
    assert vdp_slow_fraction(cycle, e) == pytest.approx(frac_t, abs=1e-12)
    fr = vdp_slow_fraction(cycle, np.eye(model.n_params), weighted=False)
    assert fr.shape == (model.n_params,) and np.all((fr >= 0) & (fr <= 1))


def test_check_parameters_names_the_parameter():
    ok = dict(eps_values=[1.0, 0.1], degree=3, n_samples=40, variant="absolute", rtol=1e-12)
    check_vdp_parameters(**ok)
    for name, bad in (("eps_values", [0.1, 1.0]), ("eps_values", [0.3, 0.1]),
                      ("eps_values", [1.0, 0.3]), ("eps_values", [1.0, 1e-4]),
                      ("degree", 2), ("n_samples", 15), ("variant", "both"),
                      ("rtol", 1e-6), ("span_degrees", [3, 6]), ("span_degrees", [5]),
                      ("span_grids", [19, 40])):
        with pytest.raises(ValueError, match=name):
            check_vdp_parameters(**{**ok, name: bad})
    check_vdp_parameters(**{**ok, "span_degrees": [3, 4], "span_grids": [20, 80]})
