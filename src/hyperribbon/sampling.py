"""Markov chain Monte Carlo for (Jeffreys) densities, and its diagnostics.

- :func:`metropolis`: random-walk Metropolis for many chains at once (one vectorised
  log-density call per step for all chains). During burn-in the proposal adapts: its
  scale by Robbins–Monro towards a target acceptance rate (shared by the chains, from
  their mean acceptance) and, between 1/4 and 4/5 of burn-in, its shape to the covariance
  of the chains' recent states (the scale then settles to the final shape).
  After burn-in the proposal is frozen, so the kept draws are a time-homogeneous Markov
  chain with the target as its stationary law.
- :func:`rhat`: split R̂ (Gelman et al., *Bayesian Data Analysis*, 3rd ed.), optionally
  on rank-normalised draws (Vehtari et al. 2021).
- :func:`ess`: multi-chain effective sample size with Geyer's initial monotone sequence
  estimator (as in Stan).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .util import progress


@dataclass
class Chains:
    """The output of :func:`metropolis`.

    Attributes
    ----------
    samples : (n_kept, C, d) tensor, the kept (post burn-in, thinned) states
    log_prob : (n_kept, C) tensor, the log density at them
    accept : (C,) tensor, each chain's acceptance rate after burn-in
    burn_accept : float, the mean acceptance rate over the last quarter of burn-in
    scale : float, the proposal scale frozen at the end of burn-in
    chol : (d, d) tensor, the Cholesky factor of the frozen proposal shape
    n_evals : int, log-density evaluations (one per chain per step, plus the start)
    seconds : float, wall time of the whole run
    """

    samples: torch.Tensor
    log_prob: torch.Tensor
    accept: torch.Tensor
    burn_accept: float
    scale: float
    chol: torch.Tensor
    n_evals: int
    seconds: float

    @property
    def evals_per_second(self) -> float:
        """Log-density evaluations per second of wall time."""
        return self.n_evals / self.seconds if self.seconds > 0 else math.nan

    def flat(self) -> torch.Tensor:
        """All kept draws as one (n_kept · C, d) tensor."""
        return self.samples.reshape(-1, self.samples.shape[-1])


def metropolis(log_prob: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor,
               n_steps: int, n_burn: int, thin: int = 1, scale: float | None = None,
               target_accept: float = 0.25, adapt_shape: bool = True, seed: int = 0,
               desc: str = "Metropolis") -> Chains:
    """Random-walk Metropolis on many chains at once, adaptive during burn-in.

    Parameters
    ----------
    log_prob : callable
        (C, d) → (C,) unnormalised log density; ``-inf`` marks zero density.
    x0 : (C, d) tensor
        Starting states (overdispersed starts make :func:`rhat` meaningful); their log
        density must be finite.
    n_steps : int
        Total steps per chain, burn-in included.
    n_burn : int
        Burn-in steps (adapting, not kept).
    thin : int
        Keep every ``thin``-th state after burn-in.
    scale : float, optional
        Initial proposal scale (default 2.38/√d).
    target_accept : float
        Acceptance rate the scale adapts to (0.25 ≈ optimal for random-walk Metropolis).
    adapt_shape : bool
        Also adapt the proposal covariance to that of the chains' recent states.
    seed : int
        Proposals and accept/reject draws.

    Returns
    -------
    Chains
    """
    if not 0 <= n_burn < n_steps:
        raise ValueError(f"need 0 <= n_burn < n_steps, got n_burn={n_burn}, n_steps={n_steps}")
    if thin < 1:
        raise ValueError(f"thin must be >= 1, got {thin}")
    if x0.ndim != 2:
        raise ValueError(f"x0 must be (chains, dim), got shape {tuple(x0.shape)}")
    t0 = time.perf_counter()
    gen = torch.Generator(device=x0.device).manual_seed(seed)
    n_chains, d = x0.shape
    x = x0.clone()
    lp = log_prob(x)
    if not torch.isfinite(lp).all():
        raise ValueError("the log density is not finite at every starting state")
    log_s = math.log(scale if scale is not None else 2.38 / math.sqrt(d))
    chol = torch.eye(d, dtype=x.dtype, device=x.device)
    history: list[torch.Tensor] = []
    kept, kept_lp = [], []
    acc_sum = torch.zeros(n_chains, dtype=torch.float64, device=x.device)
    burn_acc, burn_n = 0.0, 0
    for t in progress(range(n_steps), desc=desc, total=n_steps):
        z = torch.randn(n_chains, d, generator=gen, dtype=x.dtype, device=x.device)
        prop = x + math.exp(log_s) * z @ chol.T
        lp_prop = log_prob(prop)
        log_r = torch.rand(n_chains, generator=gen, dtype=lp.dtype, device=x.device).log()
        acc = log_r < (lp_prop - lp)  # NaN or -inf proposals are rejected
        x = torch.where(acc[:, None], prop, x)
        lp = torch.where(acc, lp_prop, lp)
        rate = float(acc.to(torch.float64).mean())
        if t < n_burn:
            # Robbins–Monro on the log scale, step sizes decaying as t^-0.6
            log_s += (rate - target_accept) / (1 + t / 10) ** 0.6
            if t >= 3 * n_burn // 4:
                burn_acc, burn_n = burn_acc + rate, burn_n + 1
            if adapt_shape:
                history.append(x.clone())
                window = history[len(history) // 2:]
                if (n_burn // 4 <= t < 4 * n_burn // 5 and (t + 1) % max(n_burn // 10, 1) == 0
                        and len(window) > 1):
                    chol = _shape_factor(torch.cat(window), chol)
        else:
            acc_sum += acc.to(torch.float64)
            if (t - n_burn) % thin == thin - 1:
                kept.append(x.clone())
                kept_lp.append(lp.clone())
    n_after = n_steps - n_burn
    return Chains(samples=torch.stack(kept) if kept else x.new_zeros(0, n_chains, d),
                  log_prob=torch.stack(kept_lp) if kept_lp else lp.new_zeros(0, n_chains),
                  accept=acc_sum / n_after,
                  burn_accept=burn_acc / burn_n if burn_n else math.nan,
                  scale=math.exp(log_s), chol=chol,
                  n_evals=n_chains * (n_steps + 1), seconds=time.perf_counter() - t0)


def _shape_factor(states: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of the covariance of ``states`` (N, d), normalised to unit
    determinant (the scale is adapted separately), or ``old`` if it is degenerate."""
    d = states.shape[1]
    cov = torch.cov(states.T.to(torch.float64)).reshape(d, d)
    cov = cov + 1e-9 * torch.trace(cov) / d * torch.eye(d, dtype=cov.dtype, device=cov.device)
    L, info = torch.linalg.cholesky_ex(cov)
    if info != 0 or not torch.isfinite(L).all():
        return old
    logdet = 2 * torch.log(torch.diagonal(L)).sum()
    return (L * torch.exp(-logdet / (2 * d))).to(old.dtype)


# ---------------------------------------------------------------------------------------
# Diagnostics


def _as_draws(x) -> np.ndarray:
    """(n, C) or (n, C, d) → float64 numpy (n, C, d)."""
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"draws must be (n, chains) or (n, chains, dim), got shape {a.shape}")
    return a


def _rank_normalise(a: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri
    from scipy.stats import rankdata

    n, c, d = a.shape
    out = np.empty_like(a)
    for j in range(d):
        r = rankdata(a[:, :, j].ravel()).reshape(n, c)
        out[:, :, j] = ndtri((r - 3 / 8) / (n * c + 1 / 4))
    return out


def rhat(x, rank: bool = False) -> np.ndarray:
    """Split R̂ of each coordinate of multi-chain draws.

    Each chain is split in halves; with W the mean within-half variance and B/n the
    variance of the half means, R̂ = √[((n−1)/n · W + B/n) / W] (≈ 1 when mixed).

    Parameters
    ----------
    x : (n, C) or (n, C, d) draws (array or tensor)
    rank : rank-normalise the pooled draws first (robust to heavy tails)

    Returns
    -------
    (d,) array
    """
    a = _as_draws(x)
    n = a.shape[0] // 2
    if n < 2:
        raise ValueError(f"need at least 4 draws per chain for split R-hat, got {a.shape[0]}")
    a = np.concatenate([a[:n], a[-n:]], axis=1)
    if rank:
        a = _rank_normalise(a)
    w = a.var(axis=0, ddof=1).mean(axis=0)
    b_n = a.mean(axis=0).var(axis=0, ddof=1)
    var_plus = (n - 1) / n * w + b_n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(var_plus / w)


def _autocov(a: np.ndarray) -> np.ndarray:
    """Autocovariance (biased, divided by n) of each chain along axis 0, by FFT."""
    n = a.shape[0]
    centred = a - a.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, n=size, axis=0)
    return np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n] / n


def ess(x) -> np.ndarray:
    """Multi-chain effective sample size of each coordinate (Stan's estimator).

    ρ_t = 1 − (W − mean_c γ_c(t)) / var⁺ combines the chains' autocovariances γ_c with the
    between-chain variance; the sum of ρ_t is truncated by Geyer's initial monotone
    sequence, ESS = n·C / (−1 + 2 Σ_t P_t) with P_t = ρ_{2t} + ρ_{2t+1}.

    Parameters
    ----------
    x : (n, C) or (n, C, d) draws

    Returns
    -------
    (d,) array
    """
    a = _as_draws(x)
    n, c, d = a.shape
    if n < 4:
        raise ValueError(f"need at least 4 draws per chain, got {n}")
    acov = _autocov(a)  # (n, C, d)
    w = acov[0].mean(axis=0) * n / (n - 1)
    var_plus = w * (n - 1) / n + (a.mean(axis=0).var(axis=0, ddof=1) if c > 1 else 0.0)
    out = np.empty(d)
    for j in range(d):
        if not var_plus[j] > 0:
            out[j] = np.nan
            continue
        rho = 1.0 - (w[j] - acov[:, :, j].mean(axis=1)) / var_plus[j]
        rho[0] = 1.0
        pairs = rho[: 2 * ((n - 1) // 2)].reshape(-1, 2).sum(axis=1)
        stop = np.argmax(pairs < 0) if np.any(pairs < 0) else len(pairs)
        p = np.minimum.accumulate(pairs[:stop]) if stop else pairs[:1]
        tau = -1.0 + 2.0 * p.sum()
        out[j] = n * c / max(tau, 1.0 / np.log10(max(n * c, 10)))
    return out
