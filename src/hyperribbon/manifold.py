"""Model-manifold widths, Chebyshev coefficients and the Chebyshev bound on the widths.

A model maps parameters θ to predictions y(t_k; θ) at m values of a control variable t.
Sampling many θ and stacking the predictions gives a cloud in R^m; its principal widths
(:func:`hyperribbon.scores.pca`) estimate the widths of the model manifold. If y(·; θ) is
analytic in the Bernstein ellipse E_ρ of the (rescaled) interval and bounded there by M(ρ) for every
θ, the degree-n Chebyshev interpolant is within 4 M ρ^-n / (ρ − 1) of y in the sup norm,
so every prediction vector lies within B_n = √m · 4 M ρ^-n / (ρ − 1) of one fixed
(n+1)-dimensional subspace (:func:`cheb_bound`; Quinn, Wilber, Townsend & Sethna 2019).
:func:`ribbon_fit` puts the two side by side for one sampled model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as C

from .scores import Widths, pca

# ---- intervals, points and coefficients ----------------------------------------------


def to_unit(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Map t ∈ [t0, t1] (real or complex) affinely to s ∈ [−1, 1]."""
    return 2.0 * (np.asarray(t) - t0) / (t1 - t0) - 1.0


def from_unit(s: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Map s ∈ [−1, 1] (real or complex) affinely to t ∈ [t0, t1]; inverse of :func:`to_unit`."""
    return t0 + (t1 - t0) * (1.0 + np.asarray(s)) / 2.0


def cheb_points(n: int) -> np.ndarray:
    """The n + 1 Chebyshev points of the first kind on [−1, 1], ascending.

    Interpolating at these points gives the degree-n Chebyshev interpolant
    (:func:`cheb_coefficients`).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return C.chebpts1(n + 1)


def cheb_coefficients(values: np.ndarray) -> np.ndarray:
    """Chebyshev coefficients of the interpolant through values at :func:`cheb_points`.

    Parameters
    ----------
    values : array (..., n + 1)
        Function values at ``cheb_points(n)`` along the last axis (any leading shape).

    Returns
    -------
    array (..., n + 1)
        c_0 … c_n with p(s) = Σ c_k T_k(s) interpolating the values.
    """
    values = np.asarray(values)
    npts = values.shape[-1]
    V = C.chebvander(cheb_points(npts - 1), npts - 1)  # (points, degree)
    coef = (2.0 / npts) * values @ V
    coef[..., 0] /= 2.0
    return coef


# ---- Bernstein ellipses --------------------------------------------------------------


def bernstein_rho(z: np.ndarray) -> np.ndarray:
    """The ρ of the Bernstein ellipse through the complex point(s) z: |z + √(z²−1)| ≥ 1.

    For real a > 1 this is a + √(a² − 1); points of [−1, 1] give 1.
    """
    z = np.asarray(z, dtype=complex)
    w = z + np.sqrt(z - 1) * np.sqrt(z + 1)
    return np.maximum(np.abs(w), 1.0 / np.abs(w))


def bernstein_ellipse(rho: float, n: int) -> np.ndarray:
    """n points of the boundary of E_ρ, z = (w + 1/w)/2 with w = ρ e^{iφ}, φ = 2πj/n."""
    if rho <= 1:
        raise ValueError(f"rho must be > 1, got {rho}")
    w = rho * np.exp(2j * np.pi * np.arange(n) / n)
    return (w + 1.0 / w) / 2.0


# ---- the Chebyshev bound -------------------------------------------------------------


@dataclass
class ChebBound:
    """B_n = min over ρ of √m · 4 M(ρ) ρ^-n / (ρ − 1), and the minimising ρ for each n."""

    n: np.ndarray
    bound: np.ndarray
    rho_opt: np.ndarray


def cheb_bound(rho: np.ndarray, M: np.ndarray, m: int, n_max: int) -> ChebBound:
    """The Chebyshev bound on the distance of m-point predictions to span(T_0 … T_n).

    Parameters
    ----------
    rho, M : arrays (r,)
        Ellipse parameters ρ > 1 and bounds M(ρ) on |y| over E_ρ (for every θ). Entries
        with a non-finite M are ignored (y not analytic, or not bounded, there).
    m : int
        Number of prediction points.
    n_max : int
        Largest degree n.

    Returns
    -------
    ChebBound with n = 0 … n_max.
    """
    rho = np.asarray(rho, dtype=float)
    M = np.asarray(M, dtype=float)
    ok = np.isfinite(M) & (rho > 1)
    if not ok.any():
        raise ValueError("no ρ > 1 with a finite M(ρ)")
    rho, M = rho[ok], M[ok]
    n = np.arange(n_max + 1)
    logb = (0.5 * np.log(m) + np.log(4 * M) - np.log(rho - 1))[None, :] \
        - n[:, None] * np.log(rho)[None, :]
    j = np.argmin(logb, axis=1)
    return ChebBound(n, np.exp(logb[n, j]), rho[j])


def coefficient_bound(rho: np.ndarray, M: np.ndarray, k: np.ndarray) -> np.ndarray:
    """min over ρ of 2 M(ρ) ρ^-k: the bound on |c_k| for every θ (non-finite M ignored)."""
    rho = np.asarray(rho, dtype=float)
    M = np.asarray(M, dtype=float)
    ok = np.isfinite(M) & (rho > 1)
    k = np.asarray(k)
    logb = np.log(2 * M[ok])[None, :] - k[:, None] * np.log(rho[ok])[None, :]
    return np.exp(logb.min(axis=1))


def coefficient_ratio(coef: np.ndarray, rho: np.ndarray, M: np.ndarray,
                      floor: float) -> tuple[float, int]:
    """Largest |c_k(θ)| / (min over ρ of 2 M(ρ) ρ^-k) over the predictions (rows of
    ``coef``, from :func:`cheb_coefficients`) and the degrees k whose bound exceeds
    ``floor`` (below it the coefficients are round-off). ≤ 1 for every θ whose
    prediction M(ρ) bounds is the theorem. Returns (ratio, number of degrees checked)."""
    coef = np.atleast_2d(np.asarray(coef, dtype=float))
    k = np.arange(coef.shape[-1])
    bound = coefficient_bound(rho, M, k)
    keep = bound > floor
    if not keep.any():
        raise ValueError("no degree k has its coefficient bound above the floor")
    return float(np.max(np.abs(coef[:, keep]) / bound[keep])), int(keep.sum())


def interpolation_ratio(f, t0: float, t1: float, rho: np.ndarray, M: np.ndarray,
                        degrees: np.ndarray, floor: float,
                        n_fine: int = 1001) -> tuple[float, int]:
    """Largest sup-norm error of the degree-n Chebyshev interpolants of sampled
    predictions, over the bound min over ρ of 4 M(ρ) ρ^-n / (ρ − 1) on it.

    Parameters
    ----------
    f : callable t (n,) → predictions (N, n) of N parameter sets at the times t
    t0, t1 : the interval of t (the ellipses E_ρ are those of [t0, t1])
    rho, M : as in :func:`cheb_bound`
    degrees : the degrees n to check; those whose bound is below ``floor`` (what
        float64 resolves in predictions of that size) are skipped
    n_fine : points of [t0, t1] (Chebyshev points of the second kind, ends included)
        on which the sup norm is taken

    Returns
    -------
    (largest error/bound over the θ and the degrees checked, number of degrees checked);
    ≤ 1 is the theorem.
    """
    degrees = np.asarray(degrees)
    bound = cheb_bound(rho, M, 1, int(degrees.max())).bound[degrees]
    keep = degrees[bound > floor]
    if not len(keep):
        raise ValueError("no degree n has its interpolation bound above the floor")
    s_fine = C.chebpts2(n_fine)
    y_fine = np.asarray(f(from_unit(s_fine, t0, t1)), dtype=float)
    worst = 0.0
    for n, b in zip(keep, bound[bound > floor], strict=True):
        c = cheb_coefficients(np.asarray(f(from_unit(cheb_points(int(n)), t0, t1)),
                                         dtype=float))
        err = np.abs(y_fine - C.chebval(s_fine, c.T)).max()
        worst = max(worst, float(err / b))
    return worst, len(keep)


def bound_ratio(residuals: np.ndarray, bound: ChebBound, floor: float) -> tuple[float, int]:
    """Largest R_{n+1} / B_n over the degrees n whose B_n exceeds ``floor``.

    ``residuals[k]`` is the residual of the best k-dimensional affine subspace
    (:attr:`hyperribbon.scores.Widths.residuals`); the (n+1)-dimensional span of
    T_0 … T_n is one such subspace, so R_{n+1} ≤ B_n is a theorem. ``floor`` excludes
    degrees where B_n is below what float64 arithmetic can resolve. Returns (ratio,
    number of degrees checked).
    """
    n = bound.n[(bound.bound > floor) & (bound.n + 1 < len(residuals))]
    if len(n) == 0:
        raise ValueError("no degree n has B_n above the floor")
    return float(np.max(residuals[n + 1] / bound.bound[n])), len(n)


# ---- sampling and widths -------------------------------------------------------------


def sample_box(lo: np.ndarray, hi: np.ndarray, n: int, seed: int,
               log: bool = True) -> np.ndarray:
    """n parameter sets drawn in the box [lo, hi] (per coordinate), log-uniform or uniform.

    Returns an array (n, P). Log-uniform needs lo > 0.
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if lo.shape != hi.shape or np.any(hi < lo):
        raise ValueError("the box needs lo <= hi, of equal shapes")
    u = np.random.default_rng(seed).random((n,) + lo.shape)
    if log:
        if np.any(lo <= 0):
            raise ValueError("log-uniform sampling needs lo > 0")
        return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
    return lo + u * (hi - lo)


def geometric_fit(values: np.ndarray) -> tuple[float, float]:
    """Least-squares fit log v_k = a − k log ρ over k = 0 … len − 1.

    Returns (ρ_fit, R²): the per-index ratio v_k / v_{k+1} of the fit, and the coefficient
    of determination of log v_k on k (1 for an exactly geometric sequence).
    """
    y = np.log(np.abs(np.asarray(values, dtype=float)))
    k = np.arange(len(y), dtype=float)
    slope, intercept = np.polyfit(k, y, 1)
    resid = y - (intercept + slope * k)
    ss_tot = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(resid ** 2) / ss_tot if ss_tot > 0 else 1.0
    return float(np.exp(-slope)), float(r2)


def power_law_fit(values: np.ndarray) -> tuple[float, float]:
    """Least-squares fit log v_k = a − p log k over k = 1 … len: the power law that a
    geometric sequence is told apart from.

    Returns (p, R²), R² of log v_k on log k (1 for an exact power law).
    """
    y = np.log(np.abs(np.asarray(values, dtype=float)))
    x = np.log(np.arange(1, len(y) + 1, dtype=float))
    slope, intercept = np.polyfit(x, y, 1)
    ss_tot = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum((y - intercept - slope * x) ** 2) / ss_tot if ss_tot > 0 else 1.0
    return float(-slope), float(r2)


@dataclass
class RibbonFit:
    """The widths of one sampled model manifold against its Chebyshev bound.

    Attributes
    ----------
    widths : the principal widths of the predictions (:func:`hyperribbon.scores.pca`)
    bound : B_n for n = 0 … m − 2 (:func:`cheb_bound`)
    ratio, n_checked : the largest R_{n+1}/B_n over the degrees whose B_n float64 can
        resolve, and how many (:func:`bound_ratio`); ratio ≤ 1 is the theorem
    rho_fit, r2 : geometric fit of the first ``n_fit`` widths (:func:`geometric_fit`)
    r2_power : R² of the power-law fit of the same widths (:func:`power_law_fit`)
    rho_opt : the ellipse that minimises the bound at degree n_fit − 1
    """

    widths: Widths
    bound: ChebBound
    ratio: float
    n_checked: int
    rho_fit: float
    r2: float
    rho_opt: float
    r2_power: float


def ribbon_fit(Y: np.ndarray, rho: np.ndarray, M: np.ndarray, n_fit: int = 8) -> RibbonFit:
    """Principal widths of the predictions Y (N × m) compared with the Chebyshev bound
    from M(ρ) (:func:`cheb_bound`), and their geometric fit over the first ``n_fit``.

    Degrees whose bound lies below 10³ ε √m R_0 (what float64 arithmetic resolves in
    predictions of that spread) are not checked.
    """
    Y = np.asarray(Y, dtype=float)
    m = Y.shape[1]
    w = pca(Y)
    bound = cheb_bound(rho, M, m, m - 2)
    floor = 1e3 * np.finfo(float).eps * np.sqrt(m) * w.residuals[0]
    ratio, n_checked = bound_ratio(w.residuals, bound, floor)
    rho_fit, r2 = geometric_fit(w.sigma[:n_fit])
    return RibbonFit(w, bound, ratio, n_checked, rho_fit, r2,
                     float(bound.rho_opt[n_fit - 1]), power_law_fit(w.sigma[:n_fit])[1])


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 2^P corners of the box [lo, hi] as an array (2^P, P)."""
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    grids = np.meshgrid(*[[a, b] for a, b in zip(lo, hi, strict=True)], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


# ---- chapter 2: parameter rules ------------------------------------------------------


def check_chebyshev_params(n_samples: int, n_cheb_samples: int, n_times: int,
                           enzyme_lo: list[float], enzyme_hi: list[float],
                           sir_lo: list[float], sir_hi: list[float], sir_t_end: float,
                           sir_max_step: float, exp_sweep: list[float] | None = None,
                           n_fit: int = 8) -> None:
    """Cross-parameter rules of the chapter-2 notebook; ValueError naming the parameter.

    - ``n_samples`` and ``n_times`` exceed ``n_fit`` (the widths fitted as geometric);
    - ``n_cheb_samples`` ≤ ``n_samples`` (they are a subset);
    - the boxes are positive and ordered: ``enzyme_lo < enzyme_hi``, ``sir_lo < sir_hi``
      elementwise (4 and 3 entries), and the initial infected fraction ``sir_hi[2] < 1``;
    - ``sir_max_step`` < ``sir_t_end``;
    - ``exp_sweep`` (when given) has at least two values.
    """
    if n_samples <= n_fit:
        raise ValueError(f"n_samples = {n_samples}: need more than {n_fit} samples")
    if n_times <= n_fit:
        raise ValueError(f"n_times = {n_times}: need more than {n_fit} time points")
    if not 0 < n_cheb_samples <= n_samples:
        raise ValueError(f"n_cheb_samples = {n_cheb_samples}: must be in [1, n_samples = "
                         f"{n_samples}]")
    for name, lo, hi, size in (("enzyme", enzyme_lo, enzyme_hi, 4), ("sir", sir_lo, sir_hi, 3)):
        if len(lo) != size or len(hi) != size:
            raise ValueError(f"{name}_lo, {name}_hi: need {size} entries each")
        if min(lo) <= 0:
            raise ValueError(f"{name}_lo = {lo}: the box must be positive")
        bad = [j for j in range(size) if not lo[j] < hi[j]]
        if bad:
            raise ValueError(f"{name}_hi = {hi}: must exceed {name}_lo = {lo} in entries {bad}")
    if sir_hi[2] >= 1:
        raise ValueError(f"sir_hi = {sir_hi}: the initial infected fraction I0 must be < 1")
    if not sir_max_step < sir_t_end:
        raise ValueError(f"sir_max_step = {sir_max_step}: must be below sir_t_end = "
                         f"{sir_t_end}")
    if exp_sweep is not None and len(exp_sweep) < 2:
        raise ValueError(f"exp_sweep = {exp_sweep}: the sweep needs at least two values")
