"""Linear models trained by gradient descent: closed-form trajectories, their mode sums,
the InPCA phase diagram of trajectory ensembles, and kernel / SGD / image extensions
(chapter 6, after Mao et al. 2025).

The derivation is the standard one and is ours (the paper's formulas were not available
to us). Inputs x in R^d, n training samples stacked in X (n, d); a multi-output linear
model with weights W (d, C) predicts logits XW and class probabilities softmax(XW).
Targets are the logits of a teacher, Y = X W*. Full-batch gradient descent with step eta
on the squared loss L(W) = ||XW - Y||^2 / (2n) has the gradient Sigma_hat (W - W*) with
Sigma_hat = X^T X / n, hence

    W_t = W* + (I - eta Sigma_hat)^t (W_0 - W*).

With Sigma_hat = U diag(lambda_k) U^T the logits are a sum of exponentials in t,

    X W_t = X W* + sum_k (1 - eta lambda_k)^t (X u_k)(u_k^T (W_0 - W*)),

and the columns X u_k are orthogonal with squared norm n lambda_k. Averaged over initial
weights W_0 ~ N(0, s0^2) (teacher fixed), the covariance of the logit cloud of an
ensemble of trajectories observed at checkpoints t in a set T is, in the mode basis,

    S[(k,c),(l,c')] = s0^2 lambda_k <g_k^2> delta_kl delta_cc'
                      + sqrt(lambda_k lambda_l) w*_kc w*_lc' Cov_t(g_k, g_l),

with g_k(t) = (1 - eta lambda_k)^t and <.> the mean over checkpoints. Near the uniform
prediction d_B is 1/8 of the Fisher metric, which for a softmax is the class-centred
squared logit difference / C: d_B is then a squared Euclidean distance, InPCA reduces to
classical scaling, and the InPCA eigenvalues are proportional to the eigenvalues of S
(classes centred). That is our analytic ("mode-sum") prediction of the explained stress.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hyperribbon.inpca import bhattacharyya, inpca

__all__ = [
    "KernelEnsembles",
    "PhaseDiagram",
    "best_scale_rule",
    "boundary_agreement",
    "check_linear_params",
    "checkpoints",
    "empirical_modes",
    "expected_mode_covariance",
    "ensemble_probabilities",
    "gaussian_inputs",
    "gd_closed_form",
    "gd_explicit",
    "image_trajectories",
    "init_weights",
    "k_at",
    "kernel_ensembles",
    "linear_basis_stress",
    "measured_stress",
    "mode_contributions",
    "mode_covariance",
    "phase_diagram",
    "predicted_stress",
    "rbf_kernel",
    "rff_features",
    "sgd_trajectories",
    "sgd_tube",
    "softmax",
    "spectrum",
    "teacher",
]


# ---------------------------------------------------------------------------------------
# Inputs, teacher, initial weights


def spectrum(kind: Literal["exp", "power"], rate: float, d: int) -> np.ndarray:
    """Eigenvalues of the input correlation, normalised to trace 1.

    ``exp``: lambda_i = b e^{-rate i}, i = 0 .. d-1; ``power``: lambda_i = b i^{-rate},
    i = 1 .. d; b makes the sum 1.

    Returns
    -------
    numpy.ndarray, shape (d,), decreasing
    """
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    if rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    if kind == "exp":
        lam = np.exp(-rate * np.arange(d, dtype=np.float64))
    elif kind == "power":
        lam = np.arange(1, d + 1, dtype=np.float64) ** (-rate)
    else:
        raise ValueError(f"kind must be 'exp' or 'power', got {kind!r}")
    return lam / lam.sum()


def gaussian_inputs(n: int, lam: np.ndarray, seed: int, rotate: bool = True) -> np.ndarray:
    """n Gaussian inputs with correlation E[x x^T] = U diag(lam) U^T.

    U is a Haar-random rotation when ``rotate`` (else the identity).

    Returns
    -------
    numpy.ndarray, shape (n, d), float64
    """
    lam = np.asarray(lam, dtype=np.float64)
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, lam.size)) * np.sqrt(lam)
    if rotate:
        Q, R = np.linalg.qr(rng.standard_normal((lam.size, lam.size)))
        Q = Q * np.sign(np.diag(R))
        Z = Z @ Q.T
    return Z


def teacher(d: int, n_classes: int, scale: float, seed: int) -> np.ndarray:
    """Teacher weights W* with i.i.d. N(0, scale^2) entries, shape (d, n_classes)."""
    return scale * np.random.default_rng(seed).standard_normal((d, n_classes))


def init_weights(n_init: int, d: int, n_classes: int, scale: float, seed: int) -> np.ndarray:
    """n_init initial weight matrices with i.i.d. N(0, scale^2) entries, (n_init, d, C)."""
    return scale * np.random.default_rng(seed).standard_normal((n_init, d, n_classes))


def softmax(Z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    Z = np.asarray(Z, dtype=np.float64)
    E = np.exp(Z - Z.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


def checkpoints(T: int, n: int) -> np.ndarray:
    """Up to n distinct integer steps in [0, T]: 0 and log-spaced steps 1 .. T."""
    if T < 1 or n < 2:
        raise ValueError(f"need T >= 1 and n >= 2, got T={T}, n={n}")
    s = np.unique(np.round(np.geomspace(1, T, n - 1)).astype(np.int64))
    return np.concatenate([[0], s])


# ---------------------------------------------------------------------------------------
# Gradient descent: closed form, explicit, modes


def empirical_modes(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of Sigma_hat = X^T X / n, eigenvalues descending: (lam (d,), U (d, d))."""
    X = np.asarray(X, dtype=np.float64)
    lam, U = np.linalg.eigh(X.T @ X / X.shape[0])
    order = np.argsort(-lam)
    return np.clip(lam[order], 0.0, None), U[:, order]


def gd_closed_form(X: np.ndarray, W0: np.ndarray, Wstar: np.ndarray, eta: float,
                   steps: Any) -> np.ndarray:
    """Weights of full-batch GD on the squared loss at the given steps, in closed form.

    W_t = W* + U diag((1 - eta lambda)^t) U^T (W_0 - W*).

    Parameters
    ----------
    X : (n, d) inputs; W0 : (..., d, C) initial weights; Wstar : (d, C) teacher.

    Returns
    -------
    numpy.ndarray, shape (..., T, d, C)
    """
    lam, U = empirical_modes(X)
    steps = np.asarray(steps, dtype=np.float64)
    W0 = np.asarray(W0, dtype=np.float64)
    A = np.einsum("dk,...dc->...kc", U, W0 - Wstar)  # mode amplitudes
    G = (1.0 - eta * lam)[None, :] ** steps[:, None]  # (T, d)
    return Wstar + np.einsum("dk,tk,...kc->...tdc", U, G, A)


def gd_explicit(X: np.ndarray, Y: np.ndarray, W0: np.ndarray, eta: float,
                n_steps: int) -> np.ndarray:
    """Explicit full-batch GD iterations W <- W - eta X^T (X W - Y) / n.

    Returns
    -------
    numpy.ndarray, shape (n_steps + 1, d, C): W_0 .. W_{n_steps}
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    W = np.array(W0, dtype=np.float64)
    out = [W.copy()]
    for _ in range(n_steps):
        W = W - eta * X.T @ (X @ W - Y) / n
        out.append(W.copy())
    return np.stack(out)


def mode_contributions(X: np.ndarray, W0: np.ndarray, Wstar: np.ndarray, eta: float,
                       steps: Any) -> np.ndarray:
    """Contribution of each mode k to the logits X W_t - X W*.

    Returns
    -------
    numpy.ndarray, shape (d, T, n, C): (1 - eta lambda_k)^t (X u_k)(u_k^T (W_0 - W*)).
    """
    lam, U = empirical_modes(X)
    steps = np.asarray(steps, dtype=np.float64)
    a = U.T @ (np.asarray(W0) - Wstar)  # (d, C)
    G = (1.0 - eta * lam)[:, None] ** steps[None, :]  # (d, T)
    XU = X @ U  # (n, d)
    return np.einsum("kt,nk,kc->ktnc", G, XU, a)


def ensemble_probabilities(X: np.ndarray, W0s: np.ndarray, Wstar: np.ndarray, eta: float,
                           steps: Any) -> np.ndarray:
    """Softmax predictions on X of every (initialisation, checkpoint): (R*T, n, C)."""
    W = gd_closed_form(X, W0s, Wstar, eta, steps)  # (R, T, d, C)
    Z = np.einsum("nd,rtdc->rtnc", X, W)
    P = softmax(Z)
    return P.reshape(-1, *P.shape[2:])


# ---------------------------------------------------------------------------------------
# Explained stress: measured (d_B + InPCA) and predicted (mode sum)


def k_at(es: np.ndarray, level: float = 0.9) -> int:
    """Smallest k with ES_k >= level (len(es) + 1 when never reached)."""
    hit = np.nonzero(np.asarray(es) >= level)[0]
    return int(hit[0]) + 1 if hit.size else len(es) + 1


def measured_stress(P: np.ndarray, k: int = 20) -> tuple[np.ndarray, int]:
    """Explained stress ES_1..ES_k of the InPCA of a set of models, and the clamp count.

    Parameters
    ----------
    P : (N, M, C) class probabilities
    """
    D, clamped = bhattacharyya(P, return_clamped=True, threads=1)
    res = inpca(D, min(k, P.shape[0]), solver="full")
    return res.explained_stress, int(clamped)


def mode_covariance(lam: np.ndarray, A: np.ndarray, eta: float, steps: Any) -> np.ndarray:
    """Covariance of the class-centred logit cloud of an ensemble, from its mode sum.

    Point (i, t) has mode coordinates z[k, c] = sqrt(lambda_k) (1 - eta lambda_k)^t
    A[i, k, c] (class-centred), where A = U^T (W_0 - W*) are the mode amplitudes: the
    logits minus the teacher's are X U z / sqrt(lambda) with orthogonal columns of squared
    norm n lambda_k, so this is the logit covariance per sample.

    Parameters
    ----------
    lam : (d,) eigenvalues of Sigma_hat
    A : (R, d, C) mode amplitudes of the R initialisations
    eta, steps : step size and checkpoints

    Returns
    -------
    numpy.ndarray, shape (d*C, d*C)
    """
    lam = np.asarray(lam, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    C = A.shape[-1]
    G = (1.0 - eta * lam)[None, :] ** np.asarray(steps, dtype=np.float64)[:, None]  # (T,d)
    Z = np.sqrt(lam)[None, None, :, None] * G[None, :, :, None] * A[:, None, :, :]
    Z = Z - Z.mean(-1, keepdims=True)
    Z = Z.reshape(-1, lam.size * C)
    Z = Z - Z.mean(0)
    return Z.T @ Z / Z.shape[0]


def expected_mode_covariance(lam: np.ndarray, Wstar_modes: np.ndarray, s0: float,
                             eta: float, steps: Any) -> np.ndarray:
    """The limit of :func:`mode_covariance` for infinitely many initialisations
    W_0 ~ N(0, s0^2) (teacher fixed):

    S = s0^2 diag(lambda_k <g_k^2>) (x) P_C + [sqrt(lambda) w*]_kc [sqrt(lambda) w*]_le
    Cov_t(g_k, g_l), with g_k(t) = (1 - eta lambda_k)^t, P_C the class-centring projector.
    """
    lam = np.asarray(lam, dtype=np.float64)
    d, C = Wstar_modes.shape
    G = (1.0 - eta * lam)[:, None] ** np.asarray(steps, dtype=np.float64)[None, :]  # (d,T)
    Gm = G.mean(1)
    covt = G @ G.T / G.shape[1] - np.outer(Gm, Gm)
    Pc = np.eye(C) - 1.0 / C
    ws = np.sqrt(lam)[:, None] * (Wstar_modes @ Pc)
    S = np.einsum("kc,le,kl->kcle", ws, ws, covt).reshape(d * C, d * C)
    S += np.kron(np.diag(s0**2 * lam * (G**2).mean(1)), Pc)
    return S


def predicted_stress(S: np.ndarray, k: int = 20) -> np.ndarray:
    """Mode-sum prediction of ES_1..ES_k from a logit covariance S (:func:`mode_covariance`):
    d_B ~ |centred logit difference|^2 / (8C) near the uniform prediction, so InPCA is
    classical scaling and its eigenvalues are proportional to those of S. Beyond the
    dimension of S (k larger than its size) the stress stays at its last value, 1."""
    mu = np.clip(np.linalg.eigvalsh(S)[::-1], 0.0, None)
    total = float(mu @ mu)
    frac = np.cumsum(mu[:k] ** 2) / total
    es = 1.0 - np.sqrt(np.clip(1.0 - frac, 0.0, 1.0))
    return np.concatenate([es, np.full(k - len(es), es[-1])])


@dataclass
class PhaseDiagram:
    """Measured and predicted explained stress over (step count, decay rate, ratio).

    Arrays have shape (len(T), len(rates), len(ratios), k): ``es`` measured, ``es_pred``
    the mode sum of the realised initial weights (:func:`mode_covariance`),
    ``es_expected`` the analysis alone, averaged over initial weights
    (:func:`expected_mode_covariance`); ``clamped``: d_B coefficients that hit the clamp
    (all cells together).
    """

    T: np.ndarray
    rates: np.ndarray
    ratios: np.ndarray
    es: np.ndarray
    es_pred: np.ndarray
    es_expected: np.ndarray
    clamped: int

    def k90(self, predicted: bool = False, level: float = 0.9) -> np.ndarray:
        """k90 per cell (T, rate, ratio), measured or from the realised mode sum."""
        es = self.es_pred if predicted else self.es
        return np.apply_along_axis(k_at, -1, es, level)


def phase_diagram(kind: str, rates: Any, ratios: Any, T_list: Any, *, d: int, n: int,
                  n_classes: int, n_init: int, n_ckpt: int, logit_scale: float,
                  eta_frac: float, seed: int, k: int = 20) -> PhaseDiagram:
    """Explained stress of trajectory ensembles over a grid, measured and predicted.

    For each decay rate: inputs (n, d) with that spectrum, a teacher of scale
    s* = logit_scale (the spectrum has trace 1, so teacher logits have std ~ s*), and
    ``n_init`` initial weights of scale s0 = ratio * s*; GD with eta = eta_frac /
    lambda_max, observed at ``n_ckpt`` log-spaced checkpoints up to T. The initial
    weights are one draw of unit scale, multiplied by s0 (common random numbers: the
    cells of a row differ by the scale alone, not by the draw).
    """
    rates, ratios, T_list = (np.asarray(v) for v in (rates, ratios, T_list))
    shape = (len(T_list), len(rates), len(ratios), k)
    es, es_pred, es_exp = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    clamped = 0
    W_unit = init_weights(n_init, d, n_classes, 1.0, seed + 2)
    for j, c in enumerate(rates):
        X = gaussian_inputs(n, spectrum(kind, float(c), d), seed + 1000 * j)
        lam, U = empirical_modes(X)
        eta = eta_frac / lam[0]
        Ws = teacher(d, n_classes, logit_scale, seed + 1)
        for i, ratio in enumerate(ratios):
            W0 = ratio * logit_scale * W_unit
            for t, T in enumerate(T_list):
                steps = checkpoints(int(T), n_ckpt)
                P = ensemble_probabilities(X, W0, Ws, eta, steps)
                e, cl = measured_stress(P, k)
                es[t, j, i, :len(e)] = e
                es[t, j, i, len(e):] = e[-1]
                clamped += cl
                A = np.einsum("dk,rdc->rkc", U, W0 - Ws)
                es_pred[t, j, i] = predicted_stress(mode_covariance(lam, A, eta, steps), k)
                es_exp[t, j, i] = predicted_stress(expected_mode_covariance(
                    lam, U.T @ Ws, ratio * logit_scale, eta, steps), k)
    return PhaseDiagram(T_list, rates, ratios, es, es_pred, es_exp, clamped)


def boundary_agreement(measured: np.ndarray, predicted: np.ndarray,
                       threshold: float) -> float:
    """Fraction of cells where measured and predicted fall on the same side of threshold."""
    return float(np.mean((np.asarray(measured) >= threshold)
                         == (np.asarray(predicted) >= threshold)))


def best_scale_rule(measured: np.ndarray, ratios: Any, threshold: float
                    ) -> tuple[float, float]:
    """The best one-parameter rule "ribbon iff s0/s* <= r", fitted to the cells
    ``measured`` (..., len(ratios)) (ribbon: measured >= threshold): the cut r (a grid
    ratio; 0 for "never") and the fraction of cells it puts on the measured side — the
    bar a prediction must beat to say more than the scale ratio alone."""
    ratios = np.asarray(ratios, dtype=float)
    ribbon = np.asarray(measured) >= threshold
    cuts = np.concatenate([[0.0], ratios])
    score = [float(np.mean(ribbon == (ratios <= r))) for r in cuts]
    b = int(np.argmax(score))
    return float(cuts[b]), score[b]


# ---------------------------------------------------------------------------------------
# Extensions: SGD, kernels


def sgd_trajectories(X: np.ndarray, Y: np.ndarray, W0: np.ndarray, eta: float,
                     steps: Any, batch: int, n_runs: int, seed: int) -> np.ndarray:
    """Mini-batch SGD (batches drawn without replacement within a step, with replacement
    across steps) from the same W0, recorded at ``steps``.

    Returns
    -------
    numpy.ndarray, shape (n_runs, len(steps), d, C)
    """
    X = np.asarray(X, dtype=np.float64)
    steps = np.asarray(steps)
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    W = np.repeat(np.asarray(W0, dtype=np.float64)[None], n_runs, axis=0)
    out = np.zeros((n_runs, len(steps)) + W.shape[1:])
    rec = {int(s): i for i, s in enumerate(steps)}
    for t in range(int(steps.max()) + 1):
        if t in rec:
            out[:, rec[t]] = W
        if t == steps.max():
            break
        idx = np.argsort(rng.random((n_runs, n)), axis=1)[:, :batch]
        Xb, Yb = X[idx], Y[idx]  # (R, b, d), (R, b, C)
        grad = np.einsum("rbd,rbc->rdc", Xb, np.einsum("rbd,rdc->rbc", Xb, W) - Yb) / batch
        W = W - eta * grad
    return out


def sgd_tube(X: np.ndarray, W0: np.ndarray, Wstar: np.ndarray, eta: float, steps: Any,
             batch: int) -> np.ndarray:
    """The predicted width of the SGD tube around the GD trajectory: the expected d_B
    between an SGD run (batches of ``batch`` rows drawn without replacement, targets
    X W*) and GD from the same W0, at each of ``steps``.

    The error e_t = W_t - W* obeys e_{t+1} = (I - eta Sigma_B) e_t, so its mean follows GD
    and its second moments M = E[e_c e_c'^T] (every pair of classes) obey, exactly,

        M <- M - eta (Sigma M + M Sigma) + eta^2 E[Sigma_B M Sigma_B],
        E[Sigma_B M Sigma_B] = f Q(M)/b + (1 - f/b) Sigma M Sigma,  f = (n - b)/(n - 1),

    with Q(M) = (1/n) sum_i x_i x_i^T M x_i x_i^T. The deviation from GD has covariance
    M - m m^T; d_B to second order is 1/8 of the softmax Fisher form
    sum_cc' (diag p - p p^T)_cc' dl_c dl_c' of the logit deviation dl at GD's p,
    averaged over the samples.

    Returns
    -------
    numpy.ndarray, shape (len(steps),)
    """
    X = np.asarray(X, dtype=np.float64)
    steps = np.asarray(steps)
    n, d = X.shape
    C = np.asarray(Wstar).shape[1]
    Sig = X.T @ X / n
    f = (n - batch) / (n - 1)
    e = np.asarray(W0, dtype=np.float64) - Wstar  # (d, C): the mean error, GD's
    M = np.einsum("ac,be->ceab", e, e)  # (C, C, d, d)
    out = np.zeros(len(steps))
    rec = {int(t): i for i, t in enumerate(steps)}
    for t in range(int(steps.max()) + 1):
        if t in rec:
            cov = M - np.einsum("ac,be->ceab", e, e)
            p = softmax(X @ (Wstar + e))  # (n, C), GD's predictions
            F = np.einsum("nc,ce->nce", p, np.eye(C)) - np.einsum("nc,ne->nce", p, p)
            dl2 = np.einsum("na,ceab,nb->nce", X, cov, X)  # E[dl_c dl_e] per sample
            out[rec[t]] = np.einsum("nce,nce->n", F, dl2).mean() / 8
        if t == steps.max():
            break
        q = np.einsum("na,ceab,nb->cen", X, M, X)
        Q = np.einsum("cen,na,nb->ceab", q, X, X) / n
        SMS = Sig @ M @ Sig
        M = (M - eta * (Sig @ M + M @ Sig)
             + eta**2 * (f * Q / batch + (1 - f / batch) * SMS))
        e = e - eta * Sig @ e
    return out


def rbf_kernel(A: np.ndarray, B: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian (RBF) kernel exp(-|a - b|^2 / (2 bandwidth^2))."""
    d2 = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T
    return np.exp(-np.clip(d2, 0, None) / (2 * bandwidth**2))


def rff_features(A: np.ndarray, n_features: int, bandwidth: float, seed: int) -> np.ndarray:
    """Random Fourier features phi(a) with phi(a).phi(b) ~ rbf_kernel(a, b) (Rahimi-Recht).

    Returns
    -------
    numpy.ndarray, shape (len(A), n_features)
    """
    rng = np.random.default_rng(seed)
    Om = rng.standard_normal((A.shape[1], n_features)) / bandwidth
    b = rng.uniform(0, 2 * np.pi, n_features)
    return np.sqrt(2.0 / n_features) * np.cos(A @ Om + b)


@dataclass
class KernelEnsembles:
    """Kernel-regression trajectory ensembles over RBF bandwidths and scale ratios.

    Per bandwidth (lists and first axes follow ``bandwidths``): the eigenvalues of the
    random-feature correlation Φᵀ Φ/n and of the kernel matrix K/n (descending), the
    relative error ‖ΦΦᵀ − K‖_F/‖K‖_F of the features, and the explained stress ``es``
    (n_bandwidths, n_ratios, k) of the ensemble at each ratio s₀/s*; ``clamped``: d_B
    coefficients that hit the clamp (all cells together).
    """

    bandwidths: np.ndarray
    ratios: np.ndarray
    feature_eigenvalues: list[np.ndarray]
    kernel_eigenvalues: list[np.ndarray]
    rff_error: np.ndarray
    es: np.ndarray
    clamped: int


def kernel_ensembles(bandwidths: Any, ratios: Any, *, n: int, n_features: int,
                     n_classes: int, n_init: int, n_ckpt: int, T: int, logit_scale: float,
                     eta_frac: float, seed: int, k: int = 20) -> KernelEnsembles:
    """Gradient-descent ensembles of a kernel machine, as :func:`phase_diagram` does for
    Gaussian inputs.

    n inputs a ∈ R² (standard Gaussian, seed + 7) are mapped to ``n_features`` random
    Fourier features Φ of an RBF kernel of each bandwidth (seed + 8); the machine is the
    linear model on Φ, with a teacher of scale s* = logit_scale/√tr(ΦᵀΦ/n) (seed + 9),
    ``n_init`` initial weights of scale ratio·s* (seed + 10), eta = eta_frac/λ_max and
    ``n_ckpt`` log-spaced checkpoints up to T; its explained stress is
    :func:`measured_stress`.
    """
    A = np.random.default_rng(seed + 7).standard_normal((n, 2))
    steps = checkpoints(int(T), n_ckpt)
    lam_phi, lam_k, err, es = [], [], [], []
    clamped = 0
    for ell in bandwidths:
        Phi = rff_features(A, n_features, ell, seed + 8)
        K = rbf_kernel(A, A, ell)
        lam_k.append(np.linalg.eigvalsh(K / n)[::-1])
        lam = empirical_modes(Phi)[0]
        lam_phi.append(lam)
        err.append(float(np.linalg.norm(Phi @ Phi.T - K) / np.linalg.norm(K)))
        Ws = teacher(n_features, n_classes, logit_scale / np.sqrt(lam.sum()), seed + 9)
        row = []
        for ratio in ratios:
            W0 = init_weights(n_init, n_features, n_classes,
                              ratio * logit_scale / np.sqrt(lam.sum()), seed + 10)
            e, cl = measured_stress(ensemble_probabilities(Phi, W0, Ws, eta_frac / lam[0],
                                                           steps), k)
            row.append(e)
            clamped += cl
        es.append(np.array(row))
    return KernelEnsembles(np.asarray(bandwidths), np.asarray(ratios), lam_phi, lam_k,
                           np.array(err), np.array(es), clamped)


# ---------------------------------------------------------------------------------------
# Bridge to chapter 4: linear models and small MLPs on images


def image_trajectories(image_set: str, *, n_train: int, n_eval: int, pool: int,
                       hidden: int, seeds: Sequence[int], epochs: int, lr: float,
                       batch: int, n_ckpt: int, subset_seed: int = 0,
                       device: str = "cpu") -> np.ndarray:
    """Prediction trajectories of softmax classifiers trained on images by plain SGD on
    the cross-entropy (constant step): linear on the pixels when ``hidden == 0``, else a
    one-hidden-layer ReLU MLP. Trained (and cached) by the training engine on a fixed
    random subset of ``n_train`` training images; predictions on ``n_eval`` balanced test
    images at ``n_ckpt`` checkpoints (step 0 and log-spaced steps, :func:`checkpoints`).

    Returns
    -------
    numpy.ndarray, shape (len(seeds) * K, n_eval, 10): the runs' checkpoints, run by run.
    """
    from hyperribbon.training import RunSpec, Samples, train

    specs = [RunSpec(train=Samples(image_set, "train", n_train, subset_seed, balanced=False,
                                   pool=pool),
                     record=(("eval", Samples(image_set, "test", n_eval, subset_seed,
                                              pool=pool)),),
                     arch="linear" if hidden == 0 else "mlp", width=max(hidden, 1),
                     depth=1, optimizer="sgd", momentum=0.0, schedule="constant", lr=lr,
                     batch_size=batch, epochs=epochs, log_checkpoints=n_ckpt, seed=s)
             for s in seeds]
    runs = train(specs, device=device, desc=f"{image_set} classifiers")
    P = np.concatenate([np.asarray(r.probs("eval"), dtype=np.float64) for r in runs])
    return P / P.sum(-1, keepdims=True)


def linear_basis_stress(D_ref: np.ndarray, D_cross: np.ndarray, D_new: np.ndarray,
                        k: int | None = None) -> float:
    """How much of the geometry of new points the InPCA basis of reference points explains.

    The new points are projected (Gower) on the top-k InPCA axes of ``D_ref``; their
    pairwise distances are rebuilt as sum_k sign_k (x_ik - x_jk)^2; both the true and the
    rebuilt distance matrices are double-centred (W, W_hat) and the result is
    1 - sqrt(||W - W_hat||_F^2 / ||W||_F^2) (1: fully explained, as explained stress).

    Parameters
    ----------
    D_ref : (N, N) reference d_B; D_cross : (n_new, N) new-to-reference d_B;
    D_new : (n_new, n_new) d_B among the new points.
    """
    from hyperribbon.inpca import double_centre

    res = inpca(D_ref, k, solver="full")
    x = res.project(D_cross)
    s = res.signs
    diff = x[:, None, :] - x[None, :, :]
    D_hat = np.einsum("ijk,k->ij", diff**2, s)
    W = double_centre(np.asarray(D_new, dtype=np.float64))
    W_hat = double_centre(D_hat)
    r = float(((W - W_hat) ** 2).sum() / (W**2).sum())
    return 1.0 - float(np.sqrt(min(r, 1.0)))


# ---------------------------------------------------------------------------------------
# Parameter checks


def check_linear_params(*, rates: list[float], ratios: list[float], T_list: list[int],
                        d: int, n: int, n_init: int, n_ckpt: int, sgd_batch: int,
                        eta_frac: float, image_train: int, image_eval: int,
                        image_set: str = "fashion-mnist") -> None:
    """Checks of chapter 6's parameters that tie several together; ValueError names one.
    The image counts are checked against ``image_set``'s sizes in the data registry."""
    if len(rates) < 2:
        raise ValueError("rates: need at least 2 decay rates (fastest vs slowest)")
    if len(ratios) < 2:
        raise ValueError("ratios: need at least 2 scale ratios")
    if not any(r >= 1 for r in ratios):
        raise ValueError("ratios: need at least one ratio >= 1 (lin_decay_controls)")
    if not any(r == 1 for r in ratios):
        raise ValueError("ratios: must contain 1.0 (lin_steps_controls is at s0/s* = 1)")
    if n < d:
        raise ValueError(f"n: need n >= d = {d} so that Sigma_hat has full rank, got {n}")
    if n_init * n_ckpt < 4:
        raise ValueError("n_init: n_init * n_ckpt must be >= 4 models per ensemble")
    if sgd_batch > n:
        raise ValueError(f"sgd_batch: must be <= n = {n}, got {sgd_batch}")
    if not 0 < eta_frac < 2:
        raise ValueError(f"eta_frac: GD is stable only for 0 < eta_frac < 2, got {eta_frac}")
    if max(T_list) < 1:
        raise ValueError("T_list: steps must be >= 1")
    from hyperribbon.data import size

    for n_img, name, split in ((image_train, "image_train", "train"),
                               (image_eval, "image_eval", "test")):
        if n_img > size(image_set, split):
            raise ValueError(f"{name} = {n_img}: {image_set} has {size(image_set, split)} "
                             f"{split} images")
