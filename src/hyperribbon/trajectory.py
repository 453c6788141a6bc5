"""Training trajectories in the space of probabilistic models.

A model is an array ``p[n, c]`` of class probabilities on M samples; a trajectory is a
sequence of K checkpoints, shape ``(K, M, C)``. Per sample, ``sqrt(p)`` is a unit vector
on the positive orthant of a sphere, and the Bhattacharyya distance of ``hyperribbon.inpca``
is built on it. This module holds (definitions in ``00_common.md``):

* the endpoints P0 (uniform prediction, :func:`uniform`) and P* (one-hot truth,
  :func:`one_hot`) and the per-sample sphere geodesic between them (:func:`geodesic`);
* the progress t* = argmin_t d_B(gamma(t), P) of a model (:func:`progress`);
* re-indexing of a trajectory onto a grid of progress values by geodesic interpolation
  between the bracketing checkpoints (:func:`reindex`);
* the mean trajectory of several seeds, the tube widths around it, trajectory distances
  and the Riemann length of a trajectory.

All of it is O(models x M x C) numpy in float64 (the N^2 work is in ``inpca``); results
do not depend on the device.

Lengths. Locally d_B(p, p + dp) = ds^2 / 8 + O(dp^3), with ds^2 = sum_c dp_c^2 / p_c the
Fisher metric of a categorical distribution (averaged over samples), so a path's
Fisher-Rao length is sum_k sqrt(8 d_B(P_k, P_k+1)). On the sphere of sqrt(p) the Fisher
length is twice the arc length: the geodesic P0 -> P* of C classes has Fisher length
2 theta with theta = arccos(1 / sqrt(C)) (1.249 rad for C = 10, so 2.498). Chapter 5's
brief writes sum 2 sqrt(d_B) (the authors' constant), which is this length / sqrt(2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperribbon.inpca import CLAMP, _validate, bhattacharyya, bhattacharyya_paired, report_clamp

__all__ = [
    "Reindexed",
    "common_range",
    "index_to_epochs",
    "sphere_mean",
    "geodesic",
    "geodesic_angle",
    "mean_trajectory",
    "one_hot",
    "progress",
    "reindex",
    "riemann_length",
    "slerp",
    "trajectory_distance",
    "trajectory_distances",
    "tube_widths",
    "uniform",
]

_SMALL_ANGLE = 1e-9  # below this per-sample angle the two endpoints coincide
_BLOCK = 1024  # models per block in progress()


def _probs(P: Any, name: str, ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    """float64 array of probability rows (validated), with one of the allowed ndims."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, "
                         f"got shape {P.shape}")
    _validate(P.reshape(-1, *P.shape[-2:]), name)
    return P


def uniform(n_samples: int, n_classes: int) -> np.ndarray:
    """The uniform prediction P0: 1/C for every class on every sample.

    Parameters
    ----------
    n_samples, n_classes : int

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_classes)
    """
    if n_samples < 1 or n_classes < 2:
        raise ValueError(f"need n_samples >= 1 and n_classes >= 2, got {n_samples}, "
                         f"{n_classes}")
    return np.full((n_samples, n_classes), 1.0 / n_classes)


def one_hot(labels: Any, n_classes: int | None = None) -> np.ndarray:
    """The truth P*: probability 1 on each sample's label.

    Parameters
    ----------
    labels : array_like of int, shape (M,)
    n_classes : int, optional
        Default ``max(labels) + 1``.

    Returns
    -------
    numpy.ndarray, shape (M, n_classes)
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or y.dtype.kind not in "iu":
        raise ValueError("labels must be a non-empty 1-d array of integers")
    C = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.min() < 0 or y.max() >= C:
        raise ValueError(f"labels must lie in [0, {C - 1}]")
    out = np.zeros((y.size, C))
    out[np.arange(y.size), y] = 1.0
    return out


def geodesic_angle(P0: Any, P1: Any) -> np.ndarray:
    """Per-sample angle between sqrt(P0) and sqrt(P1): theta_n = arccos sum_c sqrt(p0 p1).

    Parameters
    ----------
    P0, P1 : array_like, shape (M, C)

    Returns
    -------
    numpy.ndarray, shape (M,), in [0, pi/2]
    """
    P0, P1 = _probs(P0, "P0"), _probs(P1, "P1")
    if P0.shape != P1.shape:
        raise ValueError(f"P0 and P1 must have the same shape: {P0.shape} vs {P1.shape}")
    return np.arccos(np.clip(np.sum(np.sqrt(P0 * P1), axis=-1), 0.0, 1.0))


def slerp(A: np.ndarray, B: np.ndarray, t: Any) -> np.ndarray:
    """Per-sample great-circle interpolation between unit vectors (the sqrt of models).

    Parameters
    ----------
    A, B : numpy.ndarray, shape (..., M, C)
        sqrt of probabilities (unit vectors along the last axis), broadcastable.
    t : float or array_like broadcastable to ``A.shape[:-2]``
        0 gives A, 1 gives B; the point moves at constant angular speed.

    Returns
    -------
    numpy.ndarray
        ``[sin((1-t) theta) A + sin(t theta) B] / sin theta`` per sample (theta the angle
        between A and B), ``(1-t) A + t B`` where theta ~ 0; a unit vector per sample.
    """
    t = np.asarray(t, dtype=np.float64)[..., None, None]
    theta = np.arccos(np.clip(np.sum(A * B, axis=-1, keepdims=True), -1.0, 1.0))
    small = theta < _SMALL_ANGLE
    sin = np.where(small, 1.0, np.sin(theta))
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / sin)
    wb = np.where(small, t, np.sin(t * theta) / sin)
    return wa * A + wb * B


def geodesic(P0: Any, P1: Any, t: Any) -> np.ndarray:
    """Points gamma(t)^2 of the per-sample sphere geodesic from P0 (t=0) to P1 (t=1).

    Parameters
    ----------
    P0, P1 : array_like, shape (M, C)
        Endpoints, e.g. :func:`uniform` and :func:`one_hot`.
    t : float or array_like of shape (T,)
        Positions in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (M, C) for a scalar t, (T, M, C) otherwise
        Probabilities (rows sum to 1 to rounding; renormalised).
    """
    P0, P1 = _probs(P0, "P0"), _probs(P1, "P1")
    if P0.shape != P1.shape:
        raise ValueError(f"P0 and P1 must have the same shape: {P0.shape} vs {P1.shape}")
    tt = np.asarray(t, dtype=np.float64)
    if tt.ndim > 1 or not np.all((tt >= 0) & (tt <= 1)):
        raise ValueError("t must be a scalar or 1-d array of values in [0, 1]")
    g = slerp(np.sqrt(P0), np.sqrt(P1), tt) ** 2
    return g / g.sum(axis=-1, keepdims=True)


def _profile(a: np.ndarray, b: np.ndarray, theta: np.ndarray, t: np.ndarray,
             clamp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f(t) = -mean_n log max(g_n, clamp), f'(t), f''(t) for models (rows of a, b), with
    g_n(t) = [a sin((1-t) theta) + b sin(t theta)] / sin theta = sum_c gamma_c sqrt(p_c)."""
    th = theta[None, :]
    small = th < _SMALL_ANGLE
    sin = np.where(small, 1.0, np.sin(th))
    tc = t[:, None]
    g = np.where(small, a, (a * np.sin((1 - tc) * th) + b * np.sin(tc * th)) / sin)
    dg = np.where(small, 0.0, th * (b * np.cos(tc * th) - a * np.cos((1 - tc) * th)) / sin)
    ok = g > clamp
    gs = np.where(ok, g, 1.0)
    r = np.where(ok, dg / gs, 0.0)
    f = -np.log(np.maximum(g, clamp)).mean(axis=1)
    d1 = -r.mean(axis=1)
    d2 = np.where(ok, th**2 + r**2, 0.0).mean(axis=1)  # g'' = -theta^2 g
    return f, d1, d2


def progress(
    P: Any,
    P0: Any,
    P1: Any,
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    tol: float = 1e-12,
    maxiter: int = 100,
    clamp: float = CLAMP,
    return_distance: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Progress t* = argmin_t d_B(gamma(t), P) of models along the geodesic P0 -> P1.

    d_B(gamma(t), P) = -mean_n log g_n(t) is convex in t (g_n'' = -theta_n^2 g_n, so the
    second derivative is mean_n theta_n^2 + (g_n'/g_n)^2 > 0): a safeguarded Newton
    iteration on its derivative, vectorised over models, bracketed by ``bounds``.

    Parameters
    ----------
    P : array_like, shape (N, M, C) or (M, C)
        Models (class probabilities).
    P0, P1 : array_like, shape (M, C)
        Endpoints of the geodesic (P0 uniform, P1 = P* one-hot for the usual progress).
    bounds : (float, float)
        Search interval within [0, 1].
    tol : float
        Stop when the Newton step is below ``tol`` (or the bracket narrower than it).
    maxiter : int
        Maximum iterations (bisection steps guarantee progress).
    clamp : float
        Lower clamp of the per-sample coefficient, as in ``bhattacharyya``.
    return_distance : bool
        Also return d_B(gamma(t*), P), the distance of each model to the geodesic.

    Returns
    -------
    t : numpy.ndarray, shape (N,) (0-d for a single model)
    distance : numpy.ndarray, same shape (only with ``return_distance=True``)
    """
    P = _probs(P, "P", ndim=(2, 3))
    single = P.ndim == 2
    P = P[None] if single else P
    P0, P1 = _probs(P0, "P0"), _probs(P1, "P1")
    if P0.shape != P1.shape or P0.shape != P.shape[1:]:
        raise ValueError(f"shapes differ: P {P.shape}, P0 {P0.shape}, P1 {P1.shape}")
    lo0, hi0 = (float(b) for b in bounds)
    if not 0.0 <= lo0 < hi0 <= 1.0:
        raise ValueError(f"bounds must satisfy 0 <= lo < hi <= 1, got {bounds}")
    s0, s1 = np.sqrt(P0), np.sqrt(P1)
    theta = np.arccos(np.clip(np.sum(s0 * s1, axis=-1), 0.0, 1.0))
    t = np.empty(P.shape[0])
    f = np.empty(P.shape[0])
    clamped = 0
    for i0 in range(0, P.shape[0], _BLOCK):  # blocks of models: bounded temporaries
        sp = np.sqrt(P[i0:i0 + _BLOCK])
        a = np.einsum("nmc,mc->nm", sp, s0)
        b = np.einsum("nmc,mc->nm", sp, s1)
        t[i0:i0 + _BLOCK] = _newton(a, b, theta, lo0, hi0, tol, maxiter, clamp)
        f[i0:i0 + _BLOCK], n = _at_optimum(a, b, theta, t[i0:i0 + _BLOCK], clamp)
        clamped += n
    report_clamp(clamped, P.shape[0] * P.shape[1], "progress", clamp)
    if return_distance:
        return (t[0], f[0]) if single else (t, f)
    return t[0] if single else t


def _at_optimum(a: np.ndarray, b: np.ndarray, theta: np.ndarray, t: np.ndarray,
                clamp: float) -> tuple[np.ndarray, int]:
    """d_B(gamma(t), P) per model and the number of coefficients g_n(t) below the clamp."""
    th = theta[None, :]
    small = th < _SMALL_ANGLE
    tc = t[:, None]
    g = np.where(small, a, (a * np.sin((1 - tc) * th) + b * np.sin(tc * th))
                 / np.where(small, 1.0, np.sin(th)))
    return -np.log(np.maximum(g, clamp)).mean(axis=1), int(np.count_nonzero(g < clamp))


def _newton(a: np.ndarray, b: np.ndarray, theta: np.ndarray, lo0: float, hi0: float,
            tol: float, maxiter: int, clamp: float) -> np.ndarray:
    """Safeguarded Newton on the derivative of the convex profile, per model (row)."""
    N = a.shape[0]
    lo, hi = np.full(N, lo0), np.full(N, hi0)
    t = np.full(N, np.nan)
    _, d_lo, _ = _profile(a, b, theta, lo, clamp)
    _, d_hi, _ = _profile(a, b, theta, hi, clamp)
    t[d_lo >= 0] = lo0
    t[(d_hi <= 0) & (d_lo < 0)] = hi0
    act = np.flatnonzero(np.isnan(t))
    x = 0.5 * (lo[act] + hi[act])
    for _ in range(maxiter):
        if act.size == 0:
            break
        _, d1, d2 = _profile(a[act], b[act], theta, x, clamp)
        pos = d1 > 0
        hi[act] = np.where(pos, x, hi[act])
        lo[act] = np.where(pos, lo[act], x)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = x - d1 / d2
        inside = (d2 > 0) & (newton > lo[act]) & (newton < hi[act])
        new = np.where(inside, newton, 0.5 * (lo[act] + hi[act]))
        done = (np.abs(new - x) <= tol) | (d1 == 0) | (hi[act] - lo[act] <= tol)
        t[act[done]] = np.where(d1[done] == 0, x[done], new[done])
        act, x = act[~done], new[~done]
    t[act] = x  # maxiter reached (not expected: Newton converges in ~6 steps)
    return t


@dataclass(frozen=True)
class Reindexed:
    """A trajectory re-indexed onto a progress grid (:func:`reindex`).

    Attributes
    ----------
    grid : (G,) progress values.
    points : (G, M, C) models at those progress values.
    index : (G,) fractional checkpoint index at which the trajectory first reaches each
        progress value (k - 1 + alpha between checkpoints k - 1 and k; 0 when the first
        checkpoint is already past it); NaN where it is never reached.
    reached : (G,) False where the progress value exceeds every checkpoint's progress
        (there ``points`` repeats the last checkpoint).
    """

    grid: np.ndarray
    points: np.ndarray
    index: np.ndarray
    reached: np.ndarray


def reindex(traj: Any, t: Any, grid: Any | None = None) -> Reindexed:
    """Put a trajectory on a common grid of progress values.

    For each grid value s the bracketing checkpoints are those of its first passage:
    k = the first checkpoint with progress >= s, and k - 1. The point is on the sphere
    geodesic between their sqrt(p), at alpha = (s - t_{k-1}) / (t_k - t_{k-1}) (linear in
    progress, constant angular speed; exact for checkpoints on the P0 -> P* geodesic).
    Grid values below the first checkpoint's progress take the first checkpoint; values
    never reached take the last one (``reached`` marks them), as the authors' code does.

    Parameters
    ----------
    traj : array_like, shape (K, M, C)
        Checkpoints in training order.
    t : array_like, shape (K,)
        Their progress (:func:`progress`); need not be monotone.
    grid : array_like, shape (G,), optional
        Progress values; default ``numpy.linspace(0, 1, 51)``.

    Returns
    -------
    Reindexed
    """
    traj = _probs(traj, "traj", ndim=(3,))
    t = np.asarray(t, dtype=np.float64)
    if t.shape != traj.shape[:1] or not np.isfinite(t).all():
        raise ValueError(f"t must hold the {traj.shape[0]} finite progress values of traj")
    grid = np.linspace(0.0, 1.0, 51) if grid is None else np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError("grid must be a non-empty 1-d array")
    past = t[None, :] >= grid[:, None]
    reached = past.any(axis=1)
    k = np.where(reached, np.argmax(past, axis=1), traj.shape[0] - 1)
    prev = np.maximum(k - 1, 0)
    interp = reached & (k > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(interp, (grid - t[prev]) / (t[k] - t[prev]), 0.0)
    alpha = np.clip(alpha, 0.0, 1.0)
    root = np.sqrt(traj)
    pts = slerp(root[prev], root[k], np.where(interp, alpha, 1.0)) ** 2
    pts /= pts.sum(axis=-1, keepdims=True)
    index = np.where(reached, np.where(interp, prev + alpha, 0.0), np.nan)
    return Reindexed(grid=grid, points=pts, index=index, reached=reached)


def mean_trajectory(trajs: Any) -> np.ndarray:
    """Mean of several re-indexed trajectories at equal progress.

    Defined per sample as the normalised mean of sqrt(p), squared:
    m = (sum_s sqrt(p_s) / ||sum_s sqrt(p_s)||)^2 (the centre of mass on the sphere of
    sqrt(p), projected back onto it).

    Parameters
    ----------
    trajs : array_like, shape (S, G, M, C)
        S trajectories on the same grid (``Reindexed.points`` stacked).

    Returns
    -------
    numpy.ndarray, shape (G, M, C)
    """
    trajs = _probs(trajs, "trajs", ndim=(4,))
    m = np.sqrt(trajs).mean(axis=0)
    m /= np.linalg.norm(m, axis=-1, keepdims=True)
    return m**2


def tube_widths(trajs: Any) -> np.ndarray:
    """Distance of each trajectory to the mean trajectory at equal progress.

    Parameters
    ----------
    trajs : array_like, shape (S, G, M, C)
        Re-indexed trajectories of S seeds of one configuration.

    Returns
    -------
    numpy.ndarray, shape (S, G)
        ``d_B(trajs[s, g], mean_trajectory(trajs)[g])``; zero for identical seeds.
    """
    trajs = _probs(trajs, "trajs", ndim=(4,))
    S, G = trajs.shape[:2]
    mean = np.broadcast_to(mean_trajectory(trajs), trajs.shape)
    d, n = bhattacharyya_paired(trajs.reshape(S * G, *trajs.shape[2:]),
                                mean.reshape(S * G, *trajs.shape[2:]), return_clamped=True)
    report_clamp(n, S * G * trajs.shape[2], "tube_widths")
    return d.reshape(S, G)


def trajectory_distance(A: Any, B: Any) -> float:
    """Mean over the grid of d_B between two re-indexed trajectories.

    Parameters
    ----------
    A, B : array_like, shape (G, M, C)

    Returns
    -------
    float
    """
    d, n = bhattacharyya_paired(_probs(A, "A", ndim=(3,)), _probs(B, "B", ndim=(3,)),
                                return_clamped=True)
    report_clamp(n, d.size * np.shape(A)[1], "trajectory_distance")
    return float(np.mean(d))


def trajectory_distances(trajs: Any, **kwargs: Any) -> np.ndarray:
    """Matrix of :func:`trajectory_distance` between T re-indexed trajectories.

    Parameters
    ----------
    trajs : array_like, shape (T, G, M, C)
    **kwargs
        Passed to ``hyperribbon.inpca.bhattacharyya`` (e.g. ``device``).

    Returns
    -------
    numpy.ndarray, shape (T, T), symmetric
        ``mean_g d_B(trajs[i, g], trajs[j, g])``.
    """
    trajs = np.asarray(trajs, dtype=np.float64)
    if trajs.ndim != 4:
        raise ValueError(f"trajs must have shape (T, G, M, C), got {trajs.shape}")
    G = trajs.shape[1]
    total, clamped = 0.0, 0
    for g in range(G):
        d, n = bhattacharyya(trajs[:, g], **{**kwargs, "return_clamped": True})
        total, clamped = total + d, clamped + n
    report_clamp(clamped, trajs.shape[0] ** 2 * G * trajs.shape[2], "trajectory_distances",
                 kwargs.get("clamp", CLAMP))
    return total / G


def riemann_length(traj: Any) -> float:
    """Fisher-Rao length of a trajectory: sum_k sqrt(8 d_B(P_k, P_k+1)).

    d_B ~ ds^2 / 8 locally, so each term is the Fisher length of a short step (see the
    module docstring; the P0 -> P* geodesic has length 2 arccos(1/sqrt(C))). Checkpoints
    must be close for the sum to approximate the length of the path.

    Parameters
    ----------
    traj : array_like, shape (K, M, C)

    Returns
    -------
    float
    """
    traj = _probs(traj, "traj", ndim=(3,))
    if traj.shape[0] < 2:
        return 0.0
    d = bhattacharyya_paired(traj[:-1], traj[1:])
    return float(np.sum(np.sqrt(8.0 * np.maximum(d, 0.0))))


def common_range(ts: Any) -> tuple[float, float]:
    """The progress range every one of a set of runs reaches.

    A run reaches the progress values between its first checkpoint's progress and the
    largest progress it attains (on held-out samples the maximum can come before the end
    of training). Values below the first checkpoint are not reached (re-indexing would
    only repeat the first checkpoint there), values above the maximum neither (it would
    repeat the last one). The common range runs from the largest first value to the
    smallest maximum.

    Parameters
    ----------
    ts : sequence of array_like, each (K_r,)
        Progress of each run's checkpoints, in training order.

    Returns
    -------
    (lo, hi) : floats; ``lo > hi`` when the runs share no range (an error is raised).
    """
    ts = [np.asarray(t, dtype=np.float64) for t in ts]
    if not ts or any(t.ndim != 1 or t.size == 0 for t in ts):
        raise ValueError("ts must be a non-empty sequence of non-empty 1-d arrays")
    lo = max(float(t[0]) for t in ts)
    hi = min(float(t.max()) for t in ts)
    if lo >= hi:
        raise ValueError(f"the runs share no progress range (first checkpoints reach up to "
                         f"{lo:.3g}, the least advanced run stops at {hi:.3g})")
    return lo, hi


def index_to_epochs(index: Any, epochs: Any) -> np.ndarray:
    """Convert fractional checkpoint indices (:attr:`Reindexed.index`) to epochs.

    Index k - 1 + alpha lies between checkpoints k - 1 and k; its epoch is interpolated
    linearly between theirs. NaN (never reached) stays NaN.

    Parameters
    ----------
    index : array_like, (G,)
    epochs : array_like, (K,) epoch of each checkpoint, increasing.

    Returns
    -------
    numpy.ndarray, (G,)
    """
    index = np.asarray(index, dtype=np.float64)
    epochs = np.asarray(epochs, dtype=np.float64)
    out = np.interp(np.nan_to_num(index, nan=0.0), np.arange(epochs.size), epochs)
    return np.where(np.isnan(index), np.nan, out)


def sphere_mean(P: Any) -> np.ndarray:
    """Mean of several models: per sample the normalised mean of sqrt(p), squared (the
    same mean :func:`mean_trajectory` takes at each progress value).

    Parameters
    ----------
    P : array_like, (S, M, C)

    Returns
    -------
    numpy.ndarray, (M, C)
    """
    P = _probs(P, "P", ndim=(3,))
    return mean_trajectory(P[:, None])[0]
