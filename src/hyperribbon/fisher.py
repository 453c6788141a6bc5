"""Fisher information and sloppy spectra.

A model maps parameters θ (P of them) to residuals r(θ) ∈ R^m. With J = ∂r/∂θ the Fisher
information (the Gauss–Newton Hessian of C = ½‖r‖² at a zero-residual point) is
g = JᵀJ; its sorted eigenvalues are the sloppy spectrum, reported as log10(λ/λ_max).

- :func:`jacobian`: J by automatic differentiation (``torch.func``) of a torch function.
- :func:`jacobian_fd`: J by central finite differences of any numpy function (the check).
- :func:`fisher_information`: g = JᵀWJ.
- :func:`sloppy_spectrum`: eigenvalues (descending) and eigen-directions of JᵀJ, from the
  SVD of J (λ = σ², accurate far below the machine precision of g itself), optionally
  restricted to a subspace; :func:`fisher_spectrum` does the same from g.
- :func:`log_spectrum`, :func:`spectrum_span`, :func:`rayleigh_quotient`,
  :func:`eigenvalue_relative_error`, :func:`bottom_rayleigh_error`: the numbers the
  chapters report.

Functions taking J accept numpy arrays or torch tensors (kept on their device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .util import resolve_device


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


@dataclass
class Spectrum:
    """Eigenvalues of JᵀJ in descending order and the matching unit eigenvectors.

    Attributes
    ----------
    eigenvalues : (k,) array, descending, λ ≥ 0
    eigenvectors : (P, k) array, column i belongs to ``eigenvalues[i]``
    """

    eigenvalues: Any
    eigenvectors: Any

    @property
    def log(self) -> Any:
        """log10(λ/λ_max)."""
        return log_spectrum(self.eigenvalues)

    @property
    def span(self) -> float:
        """Decades spanned: log10(λ_max/λ_min)."""
        return spectrum_span(self.eigenvalues)


def jacobian(fn: Callable, theta: Any, mode: str = "forward", device: str = "auto",
             chunk_size: int | None = None):
    """Jacobian of a torch function of a flat parameter vector by automatic differentiation.

    Parameters
    ----------
    fn : callable
        ``fn(theta) -> r`` with ``theta`` a 1-D tensor (P,) and ``r`` any tensor; the
        output is flattened to (m,).
    theta : array-like or tensor
        The point (P,). Arrays are converted to float64 tensors on ``device``.
    mode : {"forward", "reverse"}
        ``torch.func.jacfwd`` (cheaper when P < m) or ``jacrev`` (when P > m).
    device : str
        "auto" (CUDA when present), "cpu", "cuda", ...; ignored for a tensor ``theta``.
    chunk_size : int, optional
        Columns (forward) or rows (reverse) evaluated per vectorised batch, to bound memory.

    Returns
    -------
    torch.Tensor
        J of shape (m, P).
    """
    import torch
    from torch.func import jacfwd, jacrev, jvp, vmap

    if not _is_torch(theta):
        theta = torch.as_tensor(np.asarray(theta, dtype=np.float64),
                                device=resolve_device(device))
    if theta.ndim != 1:
        raise ValueError(f"theta must be a flat vector, got shape {tuple(theta.shape)}")

    def flat(t):
        return fn(t).reshape(-1)

    if mode == "forward":
        if chunk_size is None:
            return jacfwd(flat)(theta)
        basis = torch.eye(theta.numel(), dtype=theta.dtype, device=theta.device)
        cols = vmap(lambda v: jvp(flat, (theta,), (v,))[1], chunk_size=chunk_size)(basis)
        return cols.T
    if mode == "reverse":
        return jacrev(flat, chunk_size=chunk_size)(theta)
    raise ValueError(f"mode must be 'forward' or 'reverse', got {mode!r}")


def jacobian_fd(fn: Callable[[np.ndarray], np.ndarray], theta: Any, step: Any = 1e-4,
                relative: bool = False, vectorized: bool = False) -> np.ndarray:
    """Jacobian by central finite differences, column p = (r(θ + h_p e_p) − r(θ − h_p e_p))/2h_p.

    Parameters
    ----------
    fn : callable
        ``fn(theta) -> r`` on numpy arrays, the output flattened to (m,); with
        ``vectorized=True`` it takes all 2P points at once, (2P, P) → (2P, m), rows
        θ + h_p e_p (p = 1..P) then θ − h_p e_p.
    theta : array-like (P,)
    step : float or (P,) array
        h_p; with ``relative=True`` multiplied by max(|θ_p|, 1).

    Returns
    -------
    ndarray (m, P)
        Truncation error O(h²) plus the evaluation noise of ``fn`` divided by h.
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1:
        raise ValueError(f"theta must be a flat vector, got shape {theta.shape}")
    steps = np.broadcast_to(np.asarray(step, dtype=np.float64), theta.shape).copy()
    if not np.all(steps > 0):
        raise ValueError(f"steps must be positive, got {step}")
    if relative:
        steps *= np.maximum(np.abs(theta), 1.0)
    shift = np.diag(steps)
    if vectorized:
        r = np.asarray(fn(np.concatenate([theta + shift, theta - shift])), dtype=np.float64)
        r = r.reshape(2 * theta.size, -1)
        return ((r[:theta.size] - r[theta.size:]) / (2 * steps[:, None])).T
    cols = []
    for p in range(theta.size):
        hi = np.asarray(fn(theta + shift[p]), dtype=np.float64).reshape(-1)
        lo = np.asarray(fn(theta - shift[p]), dtype=np.float64).reshape(-1)
        cols.append((hi - lo) / (2 * steps[p]))
    return np.stack(cols, axis=1)


def fisher_information(jac: Any, weights: Any = None) -> Any:
    """g = JᵀWJ (W = diag(weights), the inverse variances of the residuals; default I).

    Parameters
    ----------
    jac : (m, P) array or tensor
    weights : (m,) array or tensor, optional
    """
    if weights is None:
        return jac.T @ jac
    return jac.T @ (weights[:, None] * jac)


def _orthonormal_complement(vectors: np.ndarray) -> np.ndarray:
    """Orthonormal basis (P, P − k) of the complement of the span of k column vectors."""
    q, _ = np.linalg.qr(vectors, mode="complete")
    return q[:, vectors.shape[1]:]


def sloppy_spectrum(jac: Any, exclude: Any = None) -> Spectrum:
    """Eigenvalues (descending) and eigenvectors of JᵀJ from the SVD of J.

    λ_i = σ_i² resolves eigenvalues down to ~1e-32 λ_max (the float64 precision of J), where
    eigen-decomposing JᵀJ stops at ~1e-16 λ_max.

    Parameters
    ----------
    jac : (m, P) array or tensor
    exclude : (P,) or (P, k) array, optional
        Directions to project out (e.g. a known exact null direction): the spectrum is then
        that of JᵀJ restricted to their orthogonal complement (P − k eigenvalues), with the
        eigenvectors expressed in the full parameter space.

    Returns
    -------
    Spectrum
    """
    if _is_torch(jac):
        import torch

        if exclude is not None:
            basis = torch.as_tensor(_orthonormal_complement(
                np.asarray(exclude, dtype=np.float64).reshape(jac.shape[1], -1)),
                dtype=jac.dtype, device=jac.device)
            spec = sloppy_spectrum(jac @ basis)
            return Spectrum(spec.eigenvalues, basis @ spec.eigenvectors)
        _, s, vh = torch.linalg.svd(jac, full_matrices=jac.shape[0] < jac.shape[1])
        lam = torch.cat([s**2, s.new_zeros(jac.shape[1] - s.numel())])
        return Spectrum(lam, vh.T)
    jac = np.asarray(jac, dtype=np.float64)
    if exclude is not None:
        basis = _orthonormal_complement(np.asarray(exclude, dtype=np.float64)
                                        .reshape(jac.shape[1], -1))
        spec = sloppy_spectrum(jac @ basis)
        return Spectrum(spec.eigenvalues, basis @ spec.eigenvectors)
    full = jac.shape[0] < jac.shape[1]
    _, s, vh = np.linalg.svd(jac, full_matrices=full)
    lam = np.concatenate([s**2, np.zeros(jac.shape[1] - s.size)])
    return Spectrum(lam, vh.T)


def fisher_spectrum(g: Any) -> Spectrum:
    """Eigenvalues (descending, clipped at 0) and eigenvectors of a symmetric g = JᵀJ.

    Use :func:`sloppy_spectrum` when J is at hand: eigenvalues of g below ~1e-16 λ_max are
    rounding noise here.
    """
    if _is_torch(g):
        import torch

        lam, vecs = torch.linalg.eigh(g)
        return Spectrum(torch.flip(lam, [0]).clamp_min(0), torch.flip(vecs, [1]))
    lam, vecs = np.linalg.eigh(np.asarray(g, dtype=np.float64))
    return Spectrum(np.clip(lam[::-1], 0, None), vecs[:, ::-1])


def log_spectrum(eigenvalues: Any) -> np.ndarray:
    """log10(λ/λ_max) as a numpy array (−inf for exact zeros)."""
    lam = np.asarray(eigenvalues.detach().cpu() if _is_torch(eigenvalues) else eigenvalues,
                     dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log10(lam / lam.max())


def spectrum_span(eigenvalues: Any) -> float:
    """Decades spanned by a spectrum: log10(λ_max/λ_min) (inf when λ_min = 0)."""
    return float(-log_spectrum(eigenvalues).min())


def rayleigh_quotient(jac: Any, v: Any, normalise: bool = True) -> float:
    """vᵀJᵀJv / vᵀv = ‖Jv‖²/‖v‖²; divided by λ_max of JᵀJ when ``normalise``."""
    if _is_torch(jac):
        import torch

        v = torch.as_tensor(v, dtype=jac.dtype, device=jac.device)
        q = float((torch.linalg.vector_norm(jac @ v) / torch.linalg.vector_norm(v)) ** 2)
        return q / float(torch.linalg.matrix_norm(jac, ord=2) ** 2) if normalise else q
    jac = np.asarray(jac, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    q = float(np.sum((jac @ v) ** 2) / np.sum(v**2))
    return q / float(np.linalg.norm(jac, 2) ** 2) if normalise else q


def eigenvalue_relative_error(jac: Any, reference: Any, k: int = 5) -> float:
    """max_i≤k |λ_i(JᵀJ) − λ_i(J_refᵀJ_ref)| / λ_i(J_refᵀJ_ref) over the top k eigenvalues."""
    a = np.asarray(_np(sloppy_spectrum(jac).eigenvalues)[:k])
    b = np.asarray(_np(sloppy_spectrum(reference).eigenvalues)[:k])
    return float(np.max(np.abs(a - b) / b))


def bottom_rayleigh_error(jac: Any, spectrum: Spectrum, k: int = 5) -> float:
    """max |‖J v_i‖² − λ_i| / λ_i over the k smallest eigenpairs (λ_i, v_i) of ``spectrum``
    (computed from another Jacobian): how well J reproduces the bottom of that spectrum.

    The Rayleigh quotient on fixed directions, unlike the sorted eigenvalues of J itself,
    does not mix nearly degenerate eigenvalues, and is what an error in the sloppiest
    directions would change.
    """
    lam = _np(spectrum.eigenvalues)
    vecs = _np(spectrum.eigenvectors)
    if not 1 <= k <= len(lam):
        raise ValueError(f"k = {k} must be in [1, {len(lam)}]")
    if lam[-k:].min() <= 0:
        raise ValueError("the bottom of the spectrum has a zero eigenvalue: no relative error")
    q = np.array([rayleigh_quotient(jac, vecs[:, i], normalise=False)
                  for i in range(len(lam) - k, len(lam))])
    return float(np.max(np.abs(q - lam[-k:]) / lam[-k:]))


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu()) if _is_torch(x) else np.asarray(x)
