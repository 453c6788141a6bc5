"""The dynamical and kinetic models of the compendium.

Sections: van der Pol with polynomial perturbations (chapter 1); sums of exponentials,
enzyme kinetics and SIR (chapter 2). Each model is vectorised over parameter sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---- chapter 1: van der Pol -------------------------------------------------------

VDP_AIRY_ZERO = 2.338107410459767  # −a₁, the first zero of Ai, in the relaxation period
VDP_DORODNITSYN_C = -1.3246  # the O(1/μ) constant of the relaxation period
VDP_VARIANTS = ("absolute", "phase")


def vdp_monomials(degree: int) -> list[tuple[int, int]]:
    """Exponents (i, j) of the monomials x^i y^j with i + j ≤ degree, by total degree, then
    by decreasing power of x: (0,0), (1,0), (0,1), (2,0), (1,1), (0,2), ..."""
    if degree < 1:
        raise ValueError(f"degree must be ≥ 1, got {degree}")
    return [(k - j, j) for k in range(degree + 1) for j in range(k + 1)]


def _monomial_name(i: int, j: int) -> str:
    if i == j == 0:
        return "1"
    px = "" if i == 0 else "x" + (str(i) if i > 1 else "")
    py = "" if j == 0 else "y" + (str(j) if j > 1 else "")
    return px + py


def vdp_parameter_names(degree: int) -> list[str]:
    """Parameter names by monomial: ``a_1, a_x, a_y, a_x2, a_xy, ..., b_y3`` (a: the
    x-equation, b: the y-equation), in the order of the parameter vector."""
    names = [_monomial_name(i, j) for i, j in vdp_monomials(degree)]
    return [f"a_{n}" for n in names] + [f"b_{n}" for n in names]


def vdp_period_asymptotic(eps: float) -> float:
    """Relaxation-limit period of the unperturbed oscillator in the time of
    :class:`VanDerPol`: T ≈ (3 − 2 ln 2) + 3 α ε^{2/3} + (ε/3) ln ε + c ε, α = 2.3381 the
    first zero of Ai, c = 3 ln 2 − ln 3 − 3/2 + b₀ − 2d ≈ −1.3247 (Dorodnitsyn's expansion
    of the standard period, μ = ε^{-1/2}, T = T_standard/μ); error O(ε^{4/3} ln ε)."""
    return float(3 - 2 * np.log(2) + 3 * VDP_AIRY_ZERO * eps ** (2 / 3) + eps * np.log(eps) / 3
                 + VDP_DORODNITSYN_C * eps)


def _period_guess(eps: float) -> float:
    """Rough period, only to size integration windows (within ~30% for all ε)."""
    return 2 * np.pi * np.sqrt(eps) if eps >= 1 else vdp_period_asymptotic(eps)


_VDP_TABLES: dict[int, dict] = {}


def _derivative_tables(degree: int) -> dict[tuple[int, int], tuple]:
    """For each derivative order (dx, dy) of total order ≤ 2: the coefficients c and the
    reduced exponents (i', j') of ∂^{dx+dy}(x^i y^j) = c x^i' y^j' (c = 0 where the monomial
    vanishes), for all monomials of the degree. Cached per degree."""
    if degree not in _VDP_TABLES:
        ij = np.array(vdp_monomials(degree))
        out = {}
        for dx, dy in ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)):
            i, j, c = ij[:, 0].copy(), ij[:, 1].copy(), np.ones(len(ij))
            for _ in range(dx):
                c, i = c * i, i - 1
            for _ in range(dy):
                c, j = c * j, j - 1
            out[dx, dy] = (c, np.maximum(i, 0), np.maximum(j, 0))
        _VDP_TABLES[degree] = out
    return _VDP_TABLES[degree]


def _powers(x: np.ndarray, degree: int) -> np.ndarray:
    """x^0 .. x^degree stacked on a new last axis (by products: faster than **)."""
    out = np.empty(np.shape(x) + (degree + 1,))
    out[..., 0] = 1.0
    for k in range(1, degree + 1):
        out[..., k] = out[..., k - 1] * x
    return out


@dataclass(frozen=True)
class VanDerPol:
    """The extended van der Pol oscillator in Liénard form.

        ε dx/dt = y − F(x) + Σ_{i+j≤d} a_ij x^i y^j,   F(x) = x³/3 − x
          dy/dt = −x       + Σ_{i+j≤d} b_ij x^i y^j

    θ = (a, b) is ordered as :func:`vdp_parameter_names`; θ = 0 is the van der Pol
    oscillator with μ = ε^{-1/2} (our t = τ/μ, τ the time of ẍ − μ(1 − x²)ẋ + x = 0).
    States are z = (x, y) stacked on the first axis, shape (2, ...); θ has shape (P,) or
    (..., P), broadcast against the points.
    """

    eps: float
    degree: int = 3

    def __post_init__(self):
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        vdp_monomials(self.degree)

    @property
    def n_monomials(self) -> int:
        return (self.degree + 1) * (self.degree + 2) // 2

    @property
    def n_params(self) -> int:
        return 2 * self.n_monomials

    @property
    def names(self) -> list[str]:
        return vdp_parameter_names(self.degree)

    def _split(self, theta) -> tuple[np.ndarray, np.ndarray]:
        if theta is None:
            theta = np.zeros(self.n_params)
        theta = np.asarray(theta, dtype=float)
        if theta.shape[-1] != self.n_params:
            raise ValueError(f"theta must have {self.n_params} parameters in its last axis, "
                             f"got shape {theta.shape}")
        m = self.n_monomials
        return theta[..., :m], theta[..., m:]

    @property
    def _tables(self) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return _derivative_tables(self.degree)

    def basis(self, x, y, dx: int = 0, dy: int = 0) -> np.ndarray:
        """The monomials x^i y^j (or their derivatives ∂^{dx+dy}/∂x^dx ∂y^dy, total order
        ≤ 2) at the points: shape (*x.shape, M)."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        c, i, j = self._tables[dx, dy]
        px, py = _powers(x, self.degree), _powers(y, self.degree)
        return c * px[..., i] * py[..., j]

    def field(self, z, theta=None) -> np.ndarray:
        """The vector field f(z; θ), shape (2, ...)."""
        a, b = self._split(theta)
        x, y = np.asarray(z[0], dtype=float), np.asarray(z[1], dtype=float)
        phi = self.basis(x, y)
        fx = (y - x**3 / 3 + x + np.sum(a * phi, axis=-1)) / self.eps
        fy = -x + np.sum(b * phi, axis=-1)
        return np.stack([fx, fy])

    def state_jacobian(self, z, theta=None) -> np.ndarray:
        """∂f/∂z, shape (..., 2, 2)."""
        a, b = self._split(theta)
        x, y = np.asarray(z[0], dtype=float), np.asarray(z[1], dtype=float)
        gx, gy = self.basis(x, y, dx=1), self.basis(x, y, dy=1)
        out = np.empty(np.broadcast_shapes(x.shape, a.shape[:-1]) + (2, 2))
        out[..., 0, 0] = (1 - x**2 + np.sum(a * gx, axis=-1)) / self.eps
        out[..., 0, 1] = (1 + np.sum(a * gy, axis=-1)) / self.eps
        out[..., 1, 0] = -1 + np.sum(b * gx, axis=-1)
        out[..., 1, 1] = np.sum(b * gy, axis=-1)
        return out

    def state_hessian(self, z, theta=None) -> np.ndarray:
        """∂²f_i/∂z_j∂z_l, shape (..., 2, 2, 2)."""
        a, b = self._split(theta)
        x, y = np.asarray(z[0], dtype=float), np.asarray(z[1], dtype=float)
        out = np.empty(np.broadcast_shapes(x.shape, a.shape[:-1]) + (2, 2, 2))
        for (dx, dy), (j, l) in (((2, 0), (0, 0)), ((1, 1), (0, 1)), ((0, 2), (1, 1))):
            phi = self.basis(x, y, dx=dx, dy=dy)
            out[..., 0, j, l] = out[..., 0, l, j] = np.sum(a * phi, axis=-1) / self.eps
            out[..., 1, j, l] = out[..., 1, l, j] = np.sum(b * phi, axis=-1)
        out[..., 0, 0, 0] -= 2 * x / self.eps
        return out

    def param_jacobian(self, z, scaled: bool = True, dx: int = 0, dy: int = 0) -> np.ndarray:
        """∂f/∂θ (independent of θ), shape (..., 2, P); its derivative ∂^{dx+dy}/∂x^dx ∂y^dy
        when asked. With ``scaled=False`` the a-columns are not divided by ε: the change
        of the right-hand side of the x-equation rather than of dx/dt."""
        phi = self.basis(z[0], z[1], dx=dx, dy=dy)
        zero = np.zeros_like(phi)
        ax = phi / self.eps if scaled else phi
        return np.stack([np.concatenate([ax, zero], axis=-1),
                         np.concatenate([zero, phi], axis=-1)], axis=-2)

    def slow_manifold_distance(self, z) -> np.ndarray:
        """|y − F(x)|: distance (along y) from the slow manifold of the unperturbed model."""
        x, y = np.asarray(z[0], dtype=float), np.asarray(z[1], dtype=float)
        return np.abs(y - x**3 / 3 + x)

    def time_rescaling_direction(self) -> np.ndarray:
        """The θ direction v with f(z; αv) = (1 + α) f(z; 0): a = the coefficients of
        y − F(x), b = that of −x (needs degree ≥ 3 for the x³ term). Not normalised."""
        if self.degree < 3:
            raise ValueError("the time-rescaling direction needs the x³ monomial: degree ≥ 3")
        names = self.names
        v = np.zeros(self.n_params)
        for name, c in (("a_y", 1.0), ("a_x", 1.0), ("a_x3", -1 / 3), ("b_x", -1.0)):
            v[names.index(name)] = c
        return v


@dataclass
class LimitCycles:
    """Limit cycles of N parameter sets, each anchored at t = 0 at its maximum of x.

    Attributes
    ----------
    model : VanDerPol
    thetas : (N, P) the parameter sets
    anchors : (2, N) the states at t = 0 (ẋ = 0 downwards, x > 0)
    periods : (N,) the periods
    t_end : the states are available on [0, t_end] (t_end ≥ the longest period unless a
        shorter window was asked for)
    n_periods : periods integrated in all, transients included (the cost)
    """

    model: VanDerPol
    thetas: np.ndarray
    anchors: np.ndarray
    periods: np.ndarray
    t_end: float
    n_periods: float
    _dense: object  # scipy OdeSolution of the N orbits
    _shift: np.ndarray  # orbit i at time t is _dense(t + _shift[i])

    def __len__(self) -> int:
        return len(self.thetas)

    def __call__(self, t) -> np.ndarray:
        """The states at times t (k,) after each anchor: shape (2, N, k)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if t.size and (t.min() < 0 or t.max() > self.t_end * (1 + 1e-12)):
            raise ValueError(f"times must lie in [0, {self.t_end:.6g}]")
        return self._at(np.broadcast_to(t, (len(self), t.size)))

    def _at(self, t: np.ndarray) -> np.ndarray:
        n = len(self)
        if not np.any(self._shift):
            if np.all(t == t[:1]):
                return self._dense(t[0]).reshape(2, n, -1)
        out = np.empty((2, n, t.shape[1]))
        for i in range(n):
            out[:, i] = self._dense(t[i] + self._shift[i]).reshape(2, n, -1)[:, i]
        return out

    def phase(self, s) -> np.ndarray:
        """The states at phases s (k,) of each cycle's own period, t = s T_n: (2, N, k)."""
        s = np.atleast_1d(np.asarray(s, dtype=float))
        if s.size and (s.min() < 0 or (s.max() * self.periods).max() > self.t_end * (1 + 1e-12)):
            raise ValueError("phases must lie in [0, 1]")
        return self._at(s[None, :] * self.periods[:, None])


def _check_tolerances(rtol: float, atol: float | None) -> tuple[float, float]:
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol}")
    return rtol, (rtol * 1e-2 if atol is None else atol)


def _batch_ode(model: VanDerPol, thetas: np.ndarray):
    """rhs and Jacobian for N uncoupled copies, state (x_1..x_N, y_1..y_N) (lean numpy:
    these are called thousands of times per period)."""
    n, eps, d = len(thetas), model.eps, model.degree
    ab = np.stack(model._split(thetas))  # (2, N, M)
    perturbed = bool(np.any(thetas))
    _, i0, j0 = model._tables[0, 0]
    cx, ix, jx = model._tables[1, 0]
    cy, iy, jy = model._tables[0, 1]
    idx = np.arange(n)

    def rhs(t, w):
        x, y = w[:n], w[n:]
        out = np.concatenate([y - x**3 / 3 + x, -x])
        if perturbed:
            px, py = np.vander(x, d + 1, True), np.vander(y, d + 1, True)
            out += np.einsum("inm,nm->in", ab, px[:, i0] * py[:, j0]).reshape(-1)
        out[:n] /= eps
        return out

    def jac(t, w):
        x, y = w[:n], w[n:]
        out = np.zeros((2 * n, 2 * n))
        axx, axy, ayx, ayy = 1 - x**2, 1.0, -1.0, 0.0
        if perturbed:
            px, py = np.vander(x, d + 1, True), np.vander(y, d + 1, True)
            gx = np.einsum("inm,nm->in", ab, cx * px[:, ix] * py[:, jx])
            gy = np.einsum("inm,nm->in", ab, cy * px[:, iy] * py[:, jy])
            axx, axy, ayx, ayy = axx + gx[0], axy + gy[0], ayx + gx[1], gy[1]
        out[idx, idx] = axx / eps
        out[idx, n + idx] = axy / eps
        out[n + idx, idx] = ayx
        out[n + idx, n + idx] = ayy
        return out

    return rhs, jac


def _find_anchors(model: VanDerPol, thetas: np.ndarray, sol, n_grid: int = 2000
                  ) -> list[np.ndarray]:
    """Times of the maxima of x (ε ẋ = 0 downwards, x > 0) of each of the N orbits in a
    dense solution: sign changes bracketed on the solver's steps ∪ a uniform grid, then
    bisected on the dense output to machine precision."""
    n = len(thetas)
    grid = np.union1d(sol.t, np.linspace(sol.t[0], sol.t[-1], n_grid))

    def g(t, which):  # ε ẋ of orbit `which[k]` at time t[k]
        w = sol.sol(t).reshape(2, n, -1)[:, which, np.arange(len(t))]
        return model.eps * model.field(w, thetas[which])[0], w[0]

    w = sol.sol(grid).reshape(2, n, -1)
    gv = model.eps * model.field(w, thetas[:, None, :])[0]  # (N, G)
    sys_i, k = np.nonzero((gv[:, :-1] > 0) & (gv[:, 1:] <= 0))
    lo, hi = grid[k], grid[k + 1]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        gm, _ = g(mid, sys_i)
        right = gm > 0
        lo, hi = np.where(right, mid, lo), np.where(right, hi, mid)
        if np.all(hi - lo <= 4 * np.finfo(float).eps * np.maximum(np.abs(hi), 1)):
            break
    t_a = 0.5 * (lo + hi)
    _, x_a = g(t_a, sys_i) if len(t_a) else (None, np.array([]))
    keep = x_a > 0
    return [t_a[keep & (sys_i == i)] for i in range(n)]


def vdp_limit_cycles(model: VanDerPol, thetas=None, z0=None, rtol: float = 1e-12,
                     atol: float | None = None, method: str = "LSODA",
                     seed: int | None = None, t_end: float | None = None,
                     max_periods: int = 100) -> LimitCycles:
    """Integrate N parameter sets at once onto their limit cycles and anchor each phase at
    the maximum of x.

    The N orbits form one uncoupled ODE system (block-diagonal analytic Jacobian) integrated
    by ``method``: default LSODA (ODEPACK; switches to BDF when the relaxation regime makes
    the problem stiff), or "Radau" (implicit, L-stable, order 5; ~10× slower here). With
    rtol = 1e-12, atol = 1e-14 the states are accurate to ~1e-11 at ε = 1 and ~2e-9 at
    ε = 0.01 (LSODA; Radau: ~1e-11), checked against DOP853 at rtol = 1e-13. Windows of
    ~one period are integrated until, for every orbit, two successive maxima of x agree to
    10 (atol + rtol |z|) or stop getting closer (the solver's own error floor); the last
    whole period, or one more window from the last anchors, gives the dense output.

    Parameters
    ----------
    model : VanDerPol
    thetas : (N, P) or (P,) parameter sets (default: the unperturbed model)
    z0 : (2,) or (2, N) start, default (2, 0), or a point drawn with ``seed`` from the
        annulus 0.5 ≤ |z| ≤ 3
    rtol, atol : solver tolerances (atol default rtol/100)
    t_end : the states are wanted on [0, t_end] at least (always on 1.02 × the longest
        period)
    """
    from scipy.integrate import solve_ivp

    rtol, atol = _check_tolerances(rtol, atol)
    thetas = np.zeros((1, model.n_params)) if thetas is None else np.asarray(thetas, float)
    thetas = np.atleast_2d(thetas)
    n = len(thetas)
    if z0 is None:
        if seed is None:
            z0 = np.array([2.0, 0.0])
        else:
            rng = np.random.default_rng(seed)
            r, phi = rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
            z0 = np.array([r * np.cos(phi), r * np.sin(phi)])
    z = np.broadcast_to(np.asarray(z0, float).reshape(2, -1), (2, n)).copy()
    rhs, jac = _batch_ode(model, thetas)
    kw = dict(method=method, rtol=rtol, atol=atol, dense_output=True)
    if method in ("Radau", "BDF", "LSODA"):
        kw["jac"] = jac
    period = _period_guess(model.eps)
    last = np.full((2, 2, n), np.nan)  # the two latest anchors (older, newer) per orbit
    t_last = np.full((2, n), np.nan)
    elapsed, window, before = 0.0, 2.2, np.inf
    while True:
        sol = solve_ivp(rhs, (0, window * period), z.reshape(-1), **kw)
        if not sol.success:
            raise RuntimeError(f"van der Pol integration failed: {sol.message}")
        t_loc = np.full(n, np.nan)  # the older of the two latest anchors, if in this window
        for i, t_i in enumerate(_find_anchors(model, thetas, sol)):
            for t in t_i:
                last[0, :, i], t_last[0, i] = last[1, :, i], t_last[1, i]
                last[1, :, i] = sol.sol(t).reshape(2, n)[:, i]
                t_loc[i], t_last[1, i] = t_last[0, i] - elapsed, elapsed + t
        elapsed += sol.t[-1]
        z = sol.y[:, -1].reshape(2, n)
        change = np.max(np.abs(last[1] - last[0]) / (atol + rtol * np.abs(last[1])), axis=0)
        if np.all(change <= 10) or (change.max() < 1e-6 / rtol and change.max() > 0.5 * before):
            break  # converged, or no longer contracting: the solver's noise floor
        before = change.max() if np.all(np.isfinite(change)) else np.inf
        if elapsed > max_periods * period:
            raise RuntimeError(f"no converged limit cycle within {max_periods} periods "
                               "(is theta too large for a limit cycle to exist?)")
        if np.all(np.isfinite(t_last)):
            period = float(np.max(t_last[1] - t_last[0]))
        window = 1.1
    periods = t_last[1] - t_last[0]
    need = max(1.02 * float(periods.max()), 0.0 if t_end is None else float(t_end))
    if np.all(t_loc >= 0) and np.all(sol.t[-1] - t_loc >= need):  # reuse the last window
        return LimitCycles(model, thetas, last[0].copy(), periods, need,
                           elapsed / float(periods.mean()), sol.sol, t_loc.copy())
    sol = solve_ivp(rhs, (0, need), last[1].reshape(-1), **kw)
    if not sol.success:
        raise RuntimeError(f"van der Pol integration failed: {sol.message}")
    return LimitCycles(model, thetas, last[1].copy(), periods, need,
                       (elapsed + need) / float(periods.mean()), sol.sol, np.zeros(n))


def vdp_observe(cycles: LimitCycles, n_samples: int = 200, variant: str = "absolute",
                period: float | None = None) -> np.ndarray:
    """The observed trajectories: (x, y) at K sample times of each anchored cycle,
    flattened as (x_1..x_K, y_1..y_K); shape (N, 2K).

    ``variant="absolute"``: t_k = k T₀/K on one nominal period T₀ (``period``, required), so
    that a change of the period shows up. ``variant="phase"``: t_k = (k/K) T(θ), the shape of
    the cycle only.
    """
    s = np.arange(n_samples) / n_samples
    if variant == "absolute":
        if period is None:
            raise ValueError("the absolute-time variant needs the nominal period")
        out = cycles(s * period)
    elif variant == "phase":
        out = cycles.phase(s)
    else:
        raise ValueError(f"variant must be one of {VDP_VARIANTS}, got {variant!r}")
    return out.transpose(1, 0, 2).reshape(out.shape[1], -1)


def vdp_samples(model: VanDerPol, thetas=None, n_samples: int = 200,
                variant: str = "absolute", period: float | None = None,
                **kwargs) -> np.ndarray:
    """:func:`vdp_observe` of the limit cycles of ``thetas`` ((N, P) → (N, 2K); (P,) → (2K,)).
    ``period`` defaults to the unperturbed period; keyword arguments go to
    :func:`vdp_limit_cycles`."""
    if variant == "absolute" and period is None:
        period = float(vdp_limit_cycles(model, None, **kwargs).periods[0])
    out = vdp_observe(vdp_limit_cycles(model, thetas, t_end=period, **kwargs), n_samples,
                      variant, period)
    return out[0] if thetas is not None and np.ndim(thetas) == 1 else out


def vdp_jacobian_fd(model: VanDerPol, n_samples: int = 200, step: float = 1e-4,
                    cycle: LimitCycles | None = None, **kwargs) -> dict[str, np.ndarray]:
    """Jacobians of both residual variants at θ = 0 by central finite differences.

    All 2P perturbed cycles (θ = ±h_p e_p) are integrated at once, started from the
    unperturbed anchor (``cycle``, computed when not given). The steps follow the scales of
    the problem: h_p = h = ``step`` √ε for the b-parameters (the curvature of the cycle in θ
    grows like 1/ε) and h ε for the a-parameters, which enter as a/ε. The truncation error,
    O(h²), is then ≲1e-5 relative in the top eigenvalues of JᵀJ from ε = 1 to 0.001. For
    ε > 1 (towards the Hopf bifurcation at ε → ∞, where the cycle becomes hypersensitive)
    h = ``step``/ε, and the error grows (~1e-5 at ε = 3, ~1e-4 at ε = 10). Keyword arguments go to
    :func:`vdp_limit_cycles`.

    Returns
    -------
    dict
        ``{"absolute": J, "phase": J}``, each (2K, P).
    """
    from .fisher import jacobian_fd

    if cycle is None:
        cycle = vdp_limit_cycles(model, None, **kwargs)
    period, k = float(cycle.periods[0]), 2 * n_samples
    kwargs = {**kwargs, "z0": cycle.anchors[:, 0]}
    h = step * min(np.sqrt(model.eps), 1 / model.eps)
    steps = np.where(np.arange(model.n_params) < model.n_monomials, h * model.eps, h)

    def both(thetas):
        cycles = vdp_limit_cycles(model, thetas, t_end=period, **kwargs)
        return np.hstack([vdp_observe(cycles, n_samples, v, period) for v in VDP_VARIANTS])

    jac = jacobian_fd(both, np.zeros(model.n_params), steps, vectorized=True)
    return {v: jac[i * k:(i + 1) * k] for i, v in enumerate(VDP_VARIANTS)}


@dataclass
class VdpSensitivity:
    """Forward sensitivities of the anchored limit cycle at θ: the Jacobians of both
    residual variants.

    Attributes
    ----------
    cycle : LimitCycles (N = 1) at θ
    times : (K,) sample times k T/K
    states : (2, K) the cycle at the sample times
    jac_absolute, jac_phase : (2K, P) ∂(x_1..x_K, y_1..y_K)/∂θ of both variants
    period_gradient : (P,) ∂T/∂θ
    anchor_gradient : (2, P) ∂z(0)/∂θ
    floquet_multiplier : the nontrivial Floquet multiplier det Φ(T) (stability)
    """

    cycle: LimitCycles
    times: np.ndarray
    states: np.ndarray
    jac_absolute: np.ndarray
    jac_phase: np.ndarray
    period_gradient: np.ndarray
    anchor_gradient: np.ndarray
    floquet_multiplier: float

    @property
    def period(self) -> float:
        return float(self.cycle.periods[0])

    def jacobian(self, variant: str) -> np.ndarray:
        """J of the ``"absolute"`` or ``"phase"`` residuals."""
        if variant == "absolute":
            return self.jac_absolute
        if variant == "phase":
            return self.jac_phase
        raise ValueError(f"variant must be one of {VDP_VARIANTS}, got {variant!r}")


def vdp_sensitivities(model: VanDerPol, theta=None, n_samples: int = 200,
                      rtol: float = 1e-12, atol: float | None = None, method: str = "LSODA",
                      seed: int | None = None, cycle: LimitCycles | None = None
                      ) -> VdpSensitivity:
    """Jacobians of the limit-cycle residuals by the forward sensitivity equations.

    Along the anchored cycle z(t), the fundamental matrix Φ and a particular sensitivity S
    (Φ(0) = I, S(0) = 0) solve Φ' = AΦ, S' = AS + B with A = ∂f/∂z, B = ∂f/∂θ; they are
    integrated with z as one system of 2 + 2(2 + P) states (analytic Jacobian, stiff
    solver). The sensitivity of the periodic orbit, s(t) = Φ(t) s₀ + S(t), and that of its
    period, τ = ∂T/∂θ, follow from periodicity z(T(θ); θ) = z(0; θ) and the anchor
    condition f_x(z(0; θ); θ) = 0 — one 3×3 linear system for all P parameters:

        (Φ(T) − I) s₀ + f(z₀) τ = −S(T),     ∇f_x(z₀) · s₀ = −∂f_x/∂θ(z₀).

    Absolute-time residuals: J = s(t_k). Phase-normalised: J = s(t_k) + f(z(t_k)) (t_k/T) τ.
    ``cycle`` (the limit cycle of θ, from :func:`vdp_limit_cycles`) saves its recomputation.
    """
    from scipy.integrate import solve_ivp

    rtol, atol = _check_tolerances(rtol, atol)
    theta = np.zeros(model.n_params) if theta is None else np.asarray(theta, float)
    if cycle is None:
        cycle = vdp_limit_cycles(model, theta[None], rtol=rtol, atol=atol, method=method,
                                 seed=seed)
    elif len(cycle) != 1 or not np.array_equal(cycle.thetas[0], theta):
        raise ValueError("cycle must be the limit cycle of theta alone")
    period, z0 = float(cycle.periods[0]), cycle.anchors[:, 0]
    p = model.n_params
    c = 2 + p
    eye_c = np.eye(c)

    def rhs(t, w):
        z = w[:2]
        big = w[2:].reshape(2, c)
        dw = model.state_jacobian(z, theta) @ big
        dw[:, 2:] += model.param_jacobian(z)
        return np.concatenate([model.field(z, theta), dw.reshape(-1)])

    def jac(t, w):
        z = w[:2]
        big = w[2:].reshape(2, c)
        a_mat = model.state_jacobian(z, theta)
        out = np.zeros((2 + 2 * c, 2 + 2 * c))
        out[:2, :2] = a_mat
        out[2:, 2:] = np.kron(a_mat, eye_c)
        coupling = np.einsum("ijl,jc->icl", model.state_hessian(z, theta), big)
        coupling[:, 2:, 0] += model.param_jacobian(z, dx=1)
        coupling[:, 2:, 1] += model.param_jacobian(z, dy=1)
        out[2:, :2] = coupling.reshape(2 * c, 2)
        return out

    w0 = np.concatenate([z0, np.hstack([np.eye(2), np.zeros((2, p))]).reshape(-1)])
    sol = solve_ivp(rhs, (0, period), w0, method=method, rtol=rtol, atol=atol,
                    jac=jac if method in ("Radau", "BDF", "LSODA") else None,
                    dense_output=True)
    if not sol.success:
        raise RuntimeError(f"sensitivity integration failed: {sol.message}")
    end = sol.y[2:, -1].reshape(2, c)
    phi_t, s_t = end[:, :2], end[:, 2:]
    lin = np.zeros((3, 3))
    lin[:2, :2] = phi_t - np.eye(2)
    lin[:2, 2] = model.field(z0, theta)
    lin[2, :2] = model.state_jacobian(z0, theta)[0]
    sol_lin = np.linalg.solve(lin, np.vstack([-s_t, -model.param_jacobian(z0)[0][None]]))
    s0, tau = sol_lin[:2], sol_lin[2]
    times = period * np.arange(n_samples) / n_samples
    w = sol.sol(times)
    states = w[:2]
    big = w[2:].reshape(2, c, n_samples)
    sens = np.einsum("ijk,jp->ipk", big[:, :2], s0) + big[:, 2:]  # (2, P, K)
    jac_abs = sens.transpose(0, 2, 1).reshape(2 * n_samples, p)
    shift = model.field(states, theta)[:, None, :] * (times / period) * tau[:, None]
    jac_ph = (sens + shift).transpose(0, 2, 1).reshape(2 * n_samples, p)
    return VdpSensitivity(cycle, times, states, jac_abs, jac_ph, tau, s0,
                          float(np.linalg.det(phi_t)))


def vdp_fisher_spectrum(sensitivity: VdpSensitivity, variant: str = "absolute"):
    """The sloppy spectrum of JᵀJ for one residual variant. The phase-normalised variant has
    the exact null direction of time rescaling; its spectrum is taken on the complement
    of that direction (P − 1 eigenvalues)."""
    from .fisher import sloppy_spectrum

    jac = sensitivity.jacobian(variant)
    if variant == "phase":
        return sloppy_spectrum(jac, exclude=sensitivity.cycle.model.time_rescaling_direction())
    return sloppy_spectrum(jac)


def vdp_slow_fraction(cycle: LimitCycles, directions, width: float = 0.2,
                      weighted: bool = True, n_grid: int = 20000) -> np.ndarray:
    """Localisation of parameter directions on the slow segments of the cycle.

    For each direction v the induced change of the vector field along the (first) cycle of
    ``cycle``, δf(t) = Σ_p v_p ∂f/∂θ_p(z(t)), is integrated over one period on a uniform
    grid; returned is the fraction of ∫|δf|² dt accrued on the slow segments, the points
    with |y − F(x)| < ``width``. ``weighted``: δf_x = Σ a_ij x^i y^j / ε, the change of
    dx/dt; otherwise without the 1/ε (the change of the x-equation's right-hand side).

    Parameters
    ----------
    directions : (P,) or (P, k)

    Returns
    -------
    ndarray (k,) (a float for a single direction)
    """
    model, period = cycle.model, float(cycle.periods[0])
    v = np.asarray(directions, dtype=float)
    z = cycle(period * np.arange(n_grid) / n_grid)[:, 0]
    energy = np.sum((model.param_jacobian(z, scaled=weighted) @ v.reshape(v.shape[0], -1))
                    ** 2, axis=1)  # (G, k)
    slow = model.slow_manifold_distance(z) < width
    frac = energy[slow].sum(axis=0) / energy.sum(axis=0)
    return float(frac[0]) if v.ndim == 1 else frac


def vdp_slow_time_fraction(cycle: LimitCycles, width: float = 0.2,
                           n_grid: int = 20000) -> float:
    """Fraction of the period the (first) cycle spends within |y − F(x)| < ``width``."""
    period = float(cycle.periods[0])
    z = cycle(period * np.arange(n_grid) / n_grid)[:, 0]
    return float(np.mean(cycle.model.slow_manifold_distance(z) < width))


def check_vdp_parameters(eps_values, degree: int, n_samples: int, variant: str,
                         rtol: float, span_degrees: list[int] | None = None,
                         span_grids: list[int] | None = None) -> None:
    """Checks of the chapter-1 parameters that tie them together (or to the claims).

    Raises
    ------
    ValueError
        Naming the parameter: ``eps_values`` must hold ≥ 2 distinct values in decreasing
        order, include 1.0 (claim ``vdp_span_eps1``) and one ≤ 0.1 (claim
        ``vdp_stiff_on_slow``), none below 0.001 (where the integration is not validated);
        ``degree`` ≥ 3 (the time-rescaling direction needs x³); ``n_samples`` ≥ the number of
        parameters (J must be able to have full column rank); ``variant`` one of
        absolute, phase; ``rtol`` ≤ 1e-9. The span table (spans at every degree of
        ``span_degrees`` with K = ``n_samples``, and at every K of ``span_grids`` with
        d = ``degree``): degrees 3 to 5, ``n_samples`` at least the parameters of the
        largest, and every K of ``span_grids`` at least those of ``degree``.
    """
    eps = [float(e) for e in eps_values]
    if len(eps) < 2 or any(b >= a for a, b in zip(eps, eps[1:], strict=False)):
        raise ValueError(f"eps_values = {eps_values}: need at least two values, strictly "
                         "decreasing (the sweep goes towards the relaxation limit)")
    if 1.0 not in eps:
        raise ValueError(f"eps_values = {eps_values}: must include 1.0 (claim vdp_span_eps1)")
    if min(eps) > 0.1:
        raise ValueError(f"eps_values = {eps_values}: needs a value ≤ 0.1 (claim "
                         "vdp_stiff_on_slow is about the relaxation regime)")
    if min(eps) < 1e-3:
        raise ValueError(f"eps_values = {eps_values}: values below 0.001 are not validated")
    if not 3 <= degree <= 5:
        raise ValueError(f"degree = {degree}: must be 3 to 5 (the time-rescaling direction "
                         "needs the x³ monomial)")
    n_params = 2 * len(vdp_monomials(degree))
    if n_samples < n_params:
        raise ValueError(f"n_samples = {n_samples}: must be at least the number of "
                         f"parameters, {n_params} at degree {degree}")
    for d in span_degrees or []:
        if not 3 <= d <= 5:
            raise ValueError(f"span_degrees = {span_degrees}: each must be 3 to 5")
        if n_samples < 2 * len(vdp_monomials(d)):
            raise ValueError(f"span_degrees = {span_degrees}: degree {d} has "
                             f"{2 * len(vdp_monomials(d))} parameters, more than n_samples = "
                             f"{n_samples}")
    for k in span_grids or []:
        if k < n_params:
            raise ValueError(f"span_grids = {span_grids}: K = {k} is below the number of "
                             f"parameters, {n_params} at degree {degree}")
    if variant not in VDP_VARIANTS:
        raise ValueError(f"variant = {variant!r}: must be one of {', '.join(VDP_VARIANTS)}")
    if not 0 < rtol <= 1e-9:
        raise ValueError(f"rtol = {rtol}: must be in (0, 1e-9] (tight tolerances are needed "
                         "for the finite-difference check)")


@dataclass
class VdpAnalysis:
    """Everything chapter 1 computes at one ε (see :func:`vdp_analyse`).

    Attributes
    ----------
    model, cycle, sensitivity : the model, its anchored limit cycle and sensitivities
    variant : the residual variant of ``spectrum`` and the localisation
    spectrum : sloppy spectrum of JᵀJ (descending) with its eigen-directions
    slow_fraction, slow_fraction_unweighted : (k,) slow-segment fraction of ∫|δf|² dt of
        each eigen-direction, with δf_x as the change of dx/dt (÷ε) and without the 1/ε
    slow_time_fraction : fraction of the period within |y − F(x)| < width
    fd_error : per variant, the relative error of the top-5 eigenvalues of the central-
        difference Jacobian against the sensitivity one (``{}`` when not computed)
    fd_error_bottom : per variant, the same check at the bottom of the spectrum: the
        largest relative error of the Rayleigh quotients of the central-difference
        Jacobian on the 5 sloppiest sensitivity eigenvectors
        (:func:`hyperribbon.fisher.bottom_rayleigh_error`; ``{}`` when not computed)
    null_rayleigh : Rayleigh quotient vᵀJᵀJv/λ_max of the time-rescaling direction v in
        the phase-normalised variant (exactly 0 in exact arithmetic)
    rescaling_period : (∂T/∂θ · v)/T along v (exactly −1: T(α) = T/(1 + α))
    """

    model: VanDerPol
    cycle: LimitCycles
    sensitivity: VdpSensitivity
    variant: str
    spectrum: object
    slow_fraction: np.ndarray
    slow_fraction_unweighted: np.ndarray
    slow_time_fraction: float
    fd_error: dict
    fd_error_bottom: dict
    null_rayleigh: float
    rescaling_period: float

    def localisation_gap(self, k: int = 3, weighted: bool = True) -> float:
        """Mean slow fraction of the k stiffest directions minus that of the k sloppiest."""
        f = self.slow_fraction if weighted else self.slow_fraction_unweighted
        return float(np.mean(f[:k]) - np.mean(f[-k:]))


def vdp_analyse(eps: float, degree: int = 3, n_samples: int = 200,
                variant: str = "absolute", seed: int | None = 0, rtol: float = 1e-12,
                width: float = 0.2, fd_step: float | None = 1e-4,
                method: str = "LSODA") -> VdpAnalysis:
    """Chapter 1 at one ε: limit cycle (from a start drawn with ``seed``), sensitivities,
    the sloppy spectrum of the ``variant`` residuals, the localisation of its
    eigen-directions on the slow segments (|y − F(x)| < ``width``), the finite-difference
    check of both Jacobians (step ``fd_step``; None skips it) and the time-rescaling
    checks."""
    from .fisher import bottom_rayleigh_error, eigenvalue_relative_error, rayleigh_quotient

    model = VanDerPol(eps, degree)
    cycle = vdp_limit_cycles(model, seed=seed, rtol=rtol, method=method)
    sens = vdp_sensitivities(model, n_samples=n_samples, rtol=rtol, method=method,
                             cycle=cycle)
    spec = vdp_fisher_spectrum(sens, variant)
    fd_error, fd_error_bottom = {}, {}
    if fd_step is not None:
        fd = vdp_jacobian_fd(model, n_samples, step=fd_step, cycle=cycle, rtol=rtol,
                             method=method)
        fd_error = {v: eigenvalue_relative_error(fd[v], sens.jacobian(v), k=5)
                    for v in VDP_VARIANTS}
        fd_error_bottom = {v: bottom_rayleigh_error(fd[v], vdp_fisher_spectrum(sens, v), k=5)
                           for v in VDP_VARIANTS}
    v = model.time_rescaling_direction()
    return VdpAnalysis(
        model, cycle, sens, variant, spec,
        vdp_slow_fraction(cycle, spec.eigenvectors, width, weighted=True),
        vdp_slow_fraction(cycle, spec.eigenvectors, width, weighted=False),
        vdp_slow_time_fraction(cycle, width), fd_error, fd_error_bottom,
        rayleigh_quotient(sens.jac_phase, v), float(sens.period_gradient @ v / sens.period))


# ---- chapter 2: exponentials, enzyme kinetics, SIR -------------------------------


def exp_decay(theta: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sum of exponentials y(t; θ) = (1/N) Σ_i exp(−θ_i t), vectorised.

    Parameters
    ----------
    theta : array (..., N)
        Decay rates of each parameter set.
    t : array (m,)
        Times (real or complex).

    Returns
    -------
    array (..., m)
    """
    theta = np.asarray(theta)
    return np.exp(-theta[..., :, None] * np.asarray(t)).mean(axis=-2)


def exp_decay_M(rho: np.ndarray, lam_t: float) -> np.ndarray:
    """max |y| over the Bernstein ellipse E_ρ of [0, T] for rates θ_i ∈ [0, Λ].

    With t = T(1 + s)/2 and Re s ≥ −(ρ + 1/ρ)/2 on E_ρ,
    |exp(−θ t)| ≤ exp[Λ T (ρ + 1/ρ − 2)/4] (reached at s = −(ρ + 1/ρ)/2, θ_i = Λ).
    """
    rho = np.asarray(rho, dtype=float)
    with np.errstate(over="ignore"):  # inf where it overflows: that ρ is of no use
        return np.exp(lam_t * (rho + 1.0 / rho - 2.0) / 4.0)


#: Substrate concentrations of the enzyme-kinetics (Kowalik–Osborne) problem.
ENZYME_U = np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])
#: The least-squares fit of the Kowalik–Osborne data (Moré, Garbow & Hillstrom 1981).
ENZYME_THETA_FIT = np.array([0.1928, 0.1913, 0.1231, 0.1361])


def enzyme_rate(theta: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Reaction rate y(u; θ) = θ1 u (u + θ2) / (u² + θ3 u + θ4), vectorised.

    theta : (..., 4); u : (m,) real or complex. Returns (..., m).
    """
    theta = np.asarray(theta)
    u = np.asarray(u)
    t1, t2, t3, t4 = (theta[..., j, None] for j in range(4))
    return t1 * u * (u + t2) / (u * u + t3 * u + t4)


def enzyme_poles(theta: np.ndarray) -> np.ndarray:
    """The two roots of u² + θ3 u + θ4 (the poles of :func:`enzyme_rate`), shape (..., 2)."""
    theta = np.asarray(theta, dtype=float)
    t3, t4 = theta[..., 2], theta[..., 3]
    disc = np.sqrt((t3 * t3 - 4 * t4).astype(complex))
    return np.stack([(-t3 + disc) / 2, (-t3 - disc) / 2], axis=-1)


def enzyme_rho_max(lo: np.ndarray, hi: np.ndarray, u0: float, u1: float,
                   n_grid: int = 401) -> float:
    """The smallest Bernstein ρ (of [u0, u1]) of a pole of y, over θ3, θ4 in the box.

    y(·; θ) is analytic inside E_ρ for every θ of the box when ρ is below this value. The
    poles depend only on θ3, θ4; the minimum is taken on an n_grid × n_grid grid that
    includes the box's edges.
    """
    from hyperribbon.manifold import bernstein_rho, to_unit

    t3 = np.linspace(lo[2], hi[2], n_grid)
    t4 = np.linspace(lo[3], hi[3], n_grid)
    g = np.stack(np.meshgrid(t3, t4, indexing="ij"), axis=-1).reshape(-1, 2)
    theta = np.concatenate([np.ones((len(g), 2)), g], axis=1)
    return float(bernstein_rho(to_unit(enzyme_poles(theta), u0, u1)).min())


def _dist_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|p − q| minimised over q on the complex segment [a, b] (elementwise)."""
    d = b - a
    dd = np.abs(d) ** 2
    s = np.where(dd > 0, np.clip(((p - a) * np.conj(d)).real / np.where(dd > 0, dd, 1), 0, 1), 0)
    return np.abs(p - (a + s * d))


def enzyme_M(rho: np.ndarray, lo: np.ndarray, hi: np.ndarray, u0: float, u1: float,
             n_boundary: int = 2048) -> np.ndarray:
    """max |y(u; θ)| over u on ∂E_ρ (Bernstein ellipse of [u0, u1]) and θ in the box.

    By the maximum principle this bounds |y| inside E_ρ. The maximum over θ is exact:
    |y| = θ1 |u| |u + θ2| / |u² + θ3 u + θ4| factorises; θ1 = hi, the convex |u + θ2| is
    largest at an end of [lo2, hi2], and the smallest |u² + θ3 u + θ4| is the distance
    from 0 to the parallelogram {u² + θ3 u + θ4} (0 when 0 lies in it: a pole on ∂E_ρ,
    M = inf). The maximum over u is taken on n_boundary points of ∂E_ρ.
    """
    from hyperribbon.manifold import bernstein_ellipse, from_unit

    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    out = []
    for r in np.atleast_1d(rho):
        u = from_unit(bernstein_ellipse(float(r), n_boundary), u0, u1)
        num = hi[0] * np.abs(u) * np.maximum(np.abs(u + lo[1]), np.abs(u + hi[1]))
        corners = [u * u + a * u + b for a, b in
                   ((lo[2], lo[3]), (hi[2], lo[3]), (hi[2], hi[3]), (lo[2], hi[3]))]
        edges = np.min([_dist_to_segment(0, corners[i], corners[(i + 1) % 4])
                        for i in range(4)], axis=0)
        # 0 inside the parallelogram: the winding number of its corners around 0 is ±1
        ang = np.angle(np.stack(corners + corners[:1]))
        wind = np.round(np.sum(np.angle(np.exp(1j * np.diff(ang, axis=0))), axis=0)
                        / (2 * np.pi))
        den = np.where(wind != 0, 0.0, edges)
        with np.errstate(divide="ignore"):
            out.append(float(np.max(num / den)))
    return np.array(out)


def _sir_rhs(S, I, beta, gamma):
    inf = beta * S * I
    return -inf, inf - gamma * I


def sir_solve(theta: np.ndarray, t: np.ndarray, max_step: float = 0.05) -> np.ndarray:
    """Infected fraction I(t) of the SIR model, by RK4 along a path in (complex) time.

    dS/dt = −β S I, dI/dt = β S I − γ I, S(0) = 1 − I0, I(0) = I0, θ = (β, γ, I0).
    The path runs in straight segments 0 → t_1 → t_2 → … (complex t allowed: the ODE is
    analytic, so this is the analytic continuation of I along the path), each segment in
    equal RK4 steps no longer than max_step.

    Parameters
    ----------
    theta : array (..., 3)
    t : array (..., m), broadcastable against theta's leading shape
    max_step : float
        Largest |Δt| of one RK4 step.

    Returns
    -------
    array (..., m): I at each t (complex when t is).
    """
    theta = np.asarray(theta, dtype=float)
    t = np.asarray(t)
    beta, gamma, i0 = theta[..., 0], theta[..., 1], theta[..., 2]
    lead = np.broadcast_shapes(beta.shape, t.shape[:-1])
    dtype = complex if np.iscomplexobj(t) else float
    S = np.broadcast_to(1.0 - i0, lead).astype(dtype)
    I = np.broadcast_to(i0, lead).astype(dtype)
    beta = np.broadcast_to(beta, lead)
    gamma = np.broadcast_to(gamma, lead)
    out = np.empty(lead + (t.shape[-1],), dtype=dtype)
    prev = np.zeros(t.shape[:-1], dtype=dtype)
    for j in range(t.shape[-1]):
        seg = t[..., j] - prev
        n = max(1, int(np.ceil(np.max(np.abs(seg)) / max_step))) if np.size(seg) else 1
        h = np.broadcast_to(seg / n, lead)
        for _ in range(n):
            k1s, k1i = _sir_rhs(S, I, beta, gamma)
            k2s, k2i = _sir_rhs(S + h / 2 * k1s, I + h / 2 * k1i, beta, gamma)
            k3s, k3i = _sir_rhs(S + h / 2 * k2s, I + h / 2 * k2i, beta, gamma)
            k4s, k4i = _sir_rhs(S + h * k3s, I + h * k3i, beta, gamma)
            S = S + h / 6 * (k1s + 2 * k2s + 2 * k3s + k4s)
            I = I + h / 6 * (k1i + 2 * k2i + 2 * k3i + k4i)
        out[..., j] = I
        prev = t[..., j]
    return out


@dataclass
class SIREllipse:
    """|I| on Bernstein ellipses of [0, T], from complex-time integration.

    rho : (r,) ellipse parameters; M : (r,) max |I| on ∂E_ρ over the θ given (inf where
    not valid); valid : (r,) whether the continuation is trusted there (finite, converged
    under step halving, and with the low Chebyshev coefficients read off ∂E_ρ agreeing
    with those of the smallest ellipse — a singularity inside E_ρ breaks this).
    """

    rho: np.ndarray
    M: np.ndarray
    valid: np.ndarray


def sir_ellipse_max(theta: np.ndarray, rho: np.ndarray, T: float, n_boundary: int = 64,
                    max_step: float = 0.1, tol: float = 1e-6,
                    n_check: int = 4) -> SIREllipse:
    """M(ρ) = max |I(t)| over t on the Bernstein ellipse of [0, T] and over the θ given.

    Each boundary point t(z) is reached by integrating the SIR ODE in complex time along
    the straight path from t = 0 (inside E_ρ, which is convex). The ρ's are taken in
    ascending order; from the first one that fails a check on, M = inf. Checks: finite
    values; the result with 2 max_step agrees to ``tol`` (relative to M); and the
    Chebyshev coefficients c_1 … c_{n_check} read off the boundary values (Fourier
    coefficient k of I(z(ρe^{iφ})) is c_k ρ^k / 2) agree to ``tol`` · M with those read
    off the smallest ellipse. The last check also fails, before any singularity, once
    the aliasing of the n_boundary-point Fourier transform exceeds ``tol``: more points
    trust larger ellipses. Stopping early only makes the resulting bound larger.
    """
    from hyperribbon.manifold import bernstein_ellipse, from_unit

    theta = np.asarray(theta, dtype=float)
    rho = np.sort(np.asarray(rho, dtype=float))
    M = np.full(len(rho), np.inf)
    valid = np.zeros(len(rho), dtype=bool)
    ref = None
    k = np.arange(1, n_check + 1)
    for j, r in enumerate(rho):
        tz = from_unit(bernstein_ellipse(float(r), n_boundary), 0.0, T)[None, :, None]
        with np.errstate(all="ignore"):
            a = sir_solve(theta[:, None, :], tz, 2 * max_step)[..., 0]
            b = sir_solve(theta[:, None, :], tz, max_step)[..., 0]
        m = np.max(np.abs(b))
        if not (np.all(np.isfinite(b)) and np.all(np.isfinite(a))) \
                or np.max(np.abs(a - b)) > tol * m:
            break
        ck = 2 * np.fft.fft(b, axis=1)[:, k] / n_boundary / r ** k
        if ref is None:
            ref = ck
        elif np.max(np.abs(ck - ref)) > tol * m:
            break
        M[j], valid[j] = m, True
    return SIREllipse(rho, M, valid)
