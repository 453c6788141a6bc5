"""The Fisher metric on the code space of a generative network, its Jeffreys prior, and
the analyses of chapter 3 (Hayden, Alemi, Ginsparg & Sethna 2017).

A decoder maps a code h ∈ [0, 1]^k to Bernoulli pixel probabilities x̂(h) = σ(a(h)). The
Fisher information of the pixels, pulled back to the code, is

    g(h) = Jᵀ diag[1/(x̂(1 − x̂))] J,  J = ∂x̂/∂h  (m × k),

and since ∂x̂/∂a = x̂(1 − x̂) this equals J_aᵀ diag[x̂(1 − x̂)] J_a with J_a = ∂a/∂h, which
never divides by a vanishing x̂(1 − x̂). The Jeffreys prior is the volume measure
√det g. We sample in logit coordinates u (h = σ(u)), where
g_u = diag(σ'(u)) g_h diag(σ'(u)), so log √det g_u = log √det g_h + Σ_i log σ'(u_i) with
log σ'(u) = log σ(u) + log σ(−u), finite for every u.

- :func:`metric`, :func:`log_volume`: g and log √det g by ``torch.func.jacfwd``, vmapped
  over a batch of codes (chains), Cholesky-based; :class:`SingularMetricError` when g is
  not positive definite to working precision (or ``-inf`` on request, for samplers).
- :func:`embedding_log_volume`: ½ log det JᵀJ of any embedding (Euclidean pull-back).
- :func:`metric_fd`, :func:`metric_check`: the same metric from central finite
  differences, and the largest relative error of log det g between the two.
- :func:`saturated_fraction`, :func:`boundary_distance`, :func:`whitened_radius`,
  :func:`median_rank`, :func:`aspect_ratio`, :func:`hellinger`, :func:`uniform_codes`:
  the chapter's analyses (principal widths by
  :func:`hyperribbon.scores.pca`).
- :func:`study` → :class:`Study`: Jeffreys samples of one network compared with its
  encoded data and with uniform codes.
- :func:`check_params`, :func:`html_table`: the notebook's parameter rules and tables.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import jacfwd, vmap

from .sampling import Chains, ess, metropolis, rhat
from .scores import Widths, pca, project

#: Code sizes the chapter supports (the paper goes up to 30).
K_RANGE = (2, 30)


class SingularMetricError(ValueError):
    """The Fisher metric is not positive definite at some code (its volume is zero)."""


def _logits_fn(decoder: Callable | torch.nn.Module) -> Callable:
    fn = decoder.decode_logits if hasattr(decoder, "decode_logits") else decoder
    return fn


def _jac_and_value(fn: Callable, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """J (B, m, d) and fn(x) (B, m) for a batch x (B, d) by vmapped jacfwd."""
    def f(xi):
        out = fn(xi).reshape(-1)
        return out, out

    with warnings.catch_warnings():  # torch.func's one-time set-up scripts a helper
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
        return vmap(jacfwd(f, has_aux=True))(x)


def _gram_h(decoder: Callable | torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    """g_h = J_aᵀ diag[x̂(1 − x̂)] J_a at codes h (B, k), accumulated in float64."""
    ja, a = _jac_and_value(_logits_fn(decoder), h)
    ja, a = ja.to(torch.float64), a.to(torch.float64)
    w = torch.sigmoid(a) * torch.sigmoid(-a)
    return ja.transpose(1, 2) @ (w[..., None] * ja)


def metric(decoder: Callable | torch.nn.Module, codes: torch.Tensor,
           coords: str = "logit") -> torch.Tensor:
    """Fisher metric of Bernoulli pixels pulled back to code space, for a batch of codes.

    Parameters
    ----------
    decoder : a :class:`~hyperribbon.nets.SigmoidAutoencoder` (its ``decode_logits``) or a
        function h (k,) → logits a (m,)
    codes : (B, k) tensor: logits u (``coords="logit"``, h = σ(u)) or codes h
        (``coords="code"``)

    Returns
    -------
    (B, k, k) tensor g, in the dtype of ``codes`` (summed over pixels in float64)
    """
    if coords not in ("logit", "code"):
        raise ValueError(f"coords must be 'logit' or 'code', got {coords!r}")
    h = torch.sigmoid(codes) if coords == "logit" else codes
    g = _gram_h(decoder, h)
    if coords == "logit":
        s = (torch.sigmoid(codes) * torch.sigmoid(-codes)).to(torch.float64)
        g = s[:, :, None] * g * s[:, None, :]
    return g.to(codes.dtype)


def _half_logdet(g: torch.Tensor, singular: str, where: torch.Tensor,
                 eps: float) -> torch.Tensor:
    """½ log det g of a batch (B, k, k) from the Cholesky factor of the Jacobi-scaled
    D^-½ g D^-½ (D = diag g). g counts as singular when a scaled pivot falls below k·eps
    (not positive definite to the working precision ``eps``)."""
    k = g.shape[-1]
    d = torch.diagonal(g, dim1=-2, dim2=-1)
    s = torch.sqrt(d.clamp_min(torch.finfo(g.dtype).tiny))
    L, info = torch.linalg.cholesky_ex(g / (s[..., :, None] * s[..., None, :]))
    piv = torch.diagonal(L, dim1=-2, dim2=-1)
    out = torch.log(s).sum(-1) + torch.log(piv.clamp_min(torch.finfo(g.dtype).tiny)).sum(-1)
    bad = ((info != 0) | ~(d > 0).all(-1) | ~(piv**2 > k * eps).all(-1)
           | ~torch.isfinite(out))
    if bad.any():
        if singular == "raise":
            i = int(torch.nonzero(bad)[0])
            ev = torch.linalg.eigvalsh(g[i]).tolist()
            raise SingularMetricError(
                f"the metric is singular (not positive definite to working precision) at "
                f"{int(bad.sum())} of {len(g)} codes, e.g. at {where[i].tolist()} with "
                f"eigenvalues {ev}; the volume √det g is zero there (pass singular='-inf' "
                "to get log 0)")
        out = torch.where(bad, torch.full_like(out, -torch.inf), out)
    return out


def log_volume(decoder: Callable | torch.nn.Module, codes: torch.Tensor,
               coords: str = "logit", singular: str = "raise") -> torch.Tensor:
    """log √det g (the log Jeffreys density, unnormalised) for a batch of codes.

    In logit coordinates, log √det g_u = log √det g_h + Σ_i log σ'(u_i), finite however
    far out u is. g counts as singular when it is not positive definite to the precision
    of ``codes``' dtype (after Jacobi scaling, see :func:`_half_logdet`).

    Parameters
    ----------
    decoder, codes, coords : as in :func:`metric`
    singular : "raise" (:class:`SingularMetricError`, naming a code and g's eigenvalues)
        or "-inf" (log 0, which a Metropolis sampler simply rejects)

    Returns
    -------
    (B,) tensor, in the dtype of ``codes``
    """
    if singular not in ("raise", "-inf"):
        raise ValueError(f"singular must be 'raise' or '-inf', got {singular!r}")
    if coords not in ("logit", "code"):
        raise ValueError(f"coords must be 'logit' or 'code', got {coords!r}")
    eps = torch.finfo(codes.dtype).eps
    h = torch.sigmoid(codes) if coords == "logit" else codes
    out = _half_logdet(_gram_h(decoder, h), singular, codes, eps)
    if coords == "logit":
        c = codes.to(torch.float64)
        out = out + (torch.nn.functional.logsigmoid(c)
                     + torch.nn.functional.logsigmoid(-c)).sum(-1)
    return out.to(codes.dtype)


def embedding_log_volume(embed: Callable, x: torch.Tensor,
                         singular: str = "raise") -> torch.Tensor:
    """½ log det(JᵀJ), J = ∂embed/∂x: the log volume element of the Euclidean metric pulled
    back by ``embed`` (d,) → (m,), for a batch x (B, d)."""
    jac, _ = _jac_and_value(embed, x)
    jac = jac.to(torch.float64)
    return _half_logdet(jac.transpose(1, 2) @ jac, singular, x,
                        torch.finfo(x.dtype).eps).to(x.dtype)


def metric_fd(decoder: Callable | torch.nn.Module, code: np.ndarray, step: float = 1e-5,
              coords: str = "logit") -> np.ndarray:
    """The metric at one code from central finite differences of x̂ in float64:
    g = J_fdᵀ diag[1/(x̂(1 − x̂))] J_fd.

    ``decoder`` is evaluated on a float64 copy of the code; pass a float64 model.
    """
    from .fisher import fisher_information, jacobian_fd

    fn = _logits_fn(decoder)

    def xhat(c: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(c, dtype=torch.float64)
        h = torch.sigmoid(t) if coords == "logit" else t
        with torch.no_grad():
            return torch.sigmoid(fn(h)).reshape(-1).numpy()

    code = np.asarray(code, dtype=np.float64)
    p = xhat(code)
    jac = jacobian_fd(xhat, code, step=step)
    return fisher_information(jac, 1.0 / (p * (1.0 - p)))


def metric_check(model: torch.nn.Module, n_codes: int = 5, seed: int = 0,
                 step: float = 1e-5, dtype: torch.dtype = torch.float64,
                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """Largest relative error of log det g between autodiff and finite differences.

    At ``n_codes`` random logit codes u ~ N(0, 1.5²)^k, compares log det g_u from
    :func:`log_volume` (autodiff, on a CPU copy of the model in ``dtype``) with that of
    :func:`metric_fd` (float64). The relative error of each code is
    |Δ log det g| / max(|log det g|, 1). The autodiff side is evaluated as the sampler
    does (``singular="-inf"``): a metric singular to the precision of ``dtype`` is log 0,
    so such a code (or one where either side is not finite) gives an infinite error.
    ``dtype=torch.float32`` checks the float32
    model the sampler really runs.

    Returns
    -------
    (max relative error, log det g autodiff (n,), log det g finite differences (n,))
    """
    import copy

    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    m64 = copy.deepcopy(model).to("cpu", torch.float64)  # the check runs on the CPU
    k = m64.code_size if hasattr(m64, "code_size") else None
    if k is None:
        raise ValueError("metric_check needs a model with a code_size")
    gen = torch.Generator().manual_seed(seed)
    u = 1.5 * torch.randn(n_codes, k, generator=gen, dtype=torch.float64)
    m_ad = copy.deepcopy(model).to("cpu", dtype)
    with torch.no_grad():
        ad = 2 * log_volume(m_ad, u.to(dtype), singular="-inf").double().numpy()
    fd = np.array([np.linalg.slogdet(metric_fd(m64, ui.numpy(), step))[1] for ui in u])
    with np.errstate(invalid="ignore"):
        rel = np.abs(ad - fd) / np.maximum(np.abs(ad), 1.0)
    rel[~np.isfinite(rel)] = np.inf  # log 0 on either side: no agreement to speak of
    return float(rel.max()), ad, fd


# ---------------------------------------------------------------------------------------
# Analyses


def uniform_codes(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """n codes uniform in the cube [0, 1]^k (the control that is *not* Jeffreys)."""
    return torch.rand(n, k, generator=torch.Generator().manual_seed(seed))


def hellinger(x: np.ndarray) -> np.ndarray:
    """The Bernoulli pixel probabilities x (…, m) mapped to (2√x, 2√(1−x)) (…, 2m), where
    the Fisher metric of the pixels is the Euclidean one: ‖H(p) − H(q)‖² =
    8 Σᵢ (1 − BCᵢ), BCᵢ = √(pᵢqᵢ) + √((1−pᵢ)(1−qᵢ)) the Bhattacharyya coefficient of
    pixel i. (2√x alone is Euclidean only for the Poisson, not the Bernoulli, model.)"""
    x = np.asarray(x, dtype=np.float64)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError("hellinger: pixel probabilities must lie in [0, 1]")
    return np.concatenate([2 * np.sqrt(x), 2 * np.sqrt(1 - x)], axis=-1)


def median_rank(x: np.ndarray, reference: np.ndarray) -> float:
    """The median over ``x`` of the fraction of ``reference`` below each value: 0.5 when x
    and reference are drawn from one distribution, whatever it is; towards 1 when x sits
    in the reference's upper tail."""
    ref = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    x = np.asarray(x, dtype=np.float64).ravel()
    if not len(ref) or not len(x):
        raise ValueError("median_rank needs at least one value and one reference value")
    return float(np.median(np.searchsorted(ref, x, side="left") / len(ref)))


def saturated_fraction(h: torch.Tensor | np.ndarray, lo: float = 0.05,
                       hi: float = 0.95) -> float:
    """Fraction of codes (rows) with at least one unit below ``lo`` or above ``hi``."""
    h = torch.as_tensor(h)
    return float(((h < lo) | (h > hi)).any(-1).to(torch.float64).mean())


def boundary_distance(h: torch.Tensor | np.ndarray) -> np.ndarray:
    """Distance of each code (row) to the boundary of the cube [0, 1]^k: min_i min(h_i, 1−h_i)."""
    h = np.asarray(h, dtype=np.float64)
    return np.minimum(h, 1.0 - h).min(axis=-1)


def whitened_radius(points: np.ndarray, mean: np.ndarray, components: np.ndarray,
                    sigma: np.ndarray) -> np.ndarray:
    """Radius of each point in a whitened PCA frame: ‖diag(1/σ) V (p − mean)‖.

    Parameters
    ----------
    points : (N, m); mean : (m,); components : (r, m) orthonormal rows; sigma : (r,)
        the RMS widths along them (e.g. from :func:`hyperribbon.scores.pca`)
    """
    return np.linalg.norm(project(points, mean, components) / np.asarray(sigma), axis=-1)


def aspect_ratio(sigma: np.ndarray, k: int) -> float:
    """σ_1/σ_k of sorted principal widths (the elongation of a k-dimensional manifold)."""
    sigma = np.sort(np.asarray(sigma, dtype=np.float64))[::-1]
    if not 1 <= k <= len(sigma):
        raise ValueError(f"k = {k} must be in [1, {len(sigma)}]")
    return float(sigma[0] / sigma[k - 1])


def html_table(header: list[str], rows: list[list]) -> str:
    """A plain HTML table (it renders both in Jupyter and in the book, where Markdown
    outputs are read as CommonMark, which has no tables). Cells are escaped."""
    from html import escape

    def row(cells, tag):
        return "<tr>" + "".join(f"<{tag}>{escape(str(c))}</{tag}>" for c in cells) + "</tr>"

    if any(len(r) != len(header) for r in rows):
        raise ValueError("every row needs one cell per header entry")
    return ("<table>\n<thead>" + row(header, "th") + "</thead>\n<tbody>\n"
            + "\n".join(row(r, "td") for r in rows) + "\n</tbody>\n</table>")


def check_params(k_values: list[int], n_chains: int, n_steps: int, n_burn: int, thin: int,
                 n_train: int, n_test: int, dataset: str, hidden: list[int]) -> None:
    """Cross-parameter rules of the chapter-3 notebook; ``ValueError`` naming the parameter.

    - every k in ``k_values`` in :data:`K_RANGE`, distinct, below every hidden width, and
      at least one k ≥ 5;
    - ``n_chains`` ≥ 4 (R-hat over split chains), ``n_burn`` < ``n_steps`` and at least
      20 draws kept per chain after burn-in and thinning;
    - ``dataset`` registered, with at least ``n_train`` training and ``n_test`` test images.
    """
    lo, hi = K_RANGE
    bad = [k for k in k_values if not lo <= k <= hi]
    if bad:
        raise ValueError(f"k_values = {k_values}: code sizes must be in [{lo}, {hi}]")
    if max(k_values) < 5:
        raise ValueError(f"k_values = {k_values}: include a code size k >= 5 (the claim "
                         "that the data sit on the boundary is made for k >= 5)")
    if len(set(k_values)) != len(k_values):
        raise ValueError(f"k_values = {k_values}: code sizes must be distinct")
    if hidden and max(k_values) >= min(hidden):
        raise ValueError(f"k_values = {k_values}: every k must be smaller than the hidden "
                         f"widths {hidden}")
    if n_chains < 4:
        raise ValueError(f"n_chains = {n_chains}: need at least 4 chains for R-hat")
    if n_burn >= n_steps:
        raise ValueError(f"n_burn = {n_burn}: must be smaller than n_steps = {n_steps}")
    if (n_steps - n_burn) // thin < 20:
        raise ValueError(f"thin = {thin}: (n_steps − n_burn)/thin = "
                         f"{(n_steps - n_burn) // thin} draws per chain, need at least 20")
    from .data import entry

    e = entry(dataset)
    if e.get("kind") != "images" or list(e.get("shape", [])) != [1, 28, 28]:
        raise ValueError(f"dataset = {dataset!r}: chapter 3 needs a 28×28 grey-scale image "
                         f"set, not {e.get('title', dataset)}")
    for n, split in ((n_train, "train"), (n_test, "test")):
        if n > e["sizes"][split]:
            raise ValueError(f"n_{split} = {n}: {dataset} has {e['sizes'][split]} {split} "
                             "images")


# ---------------------------------------------------------------------------------------
# The whole study of one network


@dataclass
class Study:
    """Jeffreys samples of one network's code space and their comparison with the data.

    Attributes
    ----------
    k : code size
    chains : the Metropolis run (:class:`~hyperribbon.sampling.Chains`, logit coordinates)
    h_jeffreys, h_data, h_uniform : (N, k) codes: Jeffreys samples, encoded held-out
        images, and uniform-in-code controls
    x_jeffreys, x_data, x_uniform : (N, m) their reconstructions x̂(h)
    widths, widths_hellinger : PCA of the Jeffreys reconstructions in pixel space and in
        the Hellinger map (2√x̂, 2√(1−x̂)) (:func:`hellinger`,
        :class:`~hyperribbon.scores.Widths`)
    pc_draws : (n_kept, C, n_pc) the first principal coordinates of each chain's draws
    rhat, ess : (n_pc,) split R̂ and effective sample size of those coordinates
    """

    k: int
    chains: Chains
    h_jeffreys: np.ndarray
    h_data: np.ndarray
    h_uniform: np.ndarray
    x_jeffreys: np.ndarray
    x_data: np.ndarray
    x_uniform: np.ndarray
    widths: Widths
    widths_hellinger: Widths
    pc_draws: np.ndarray
    rhat: np.ndarray
    ess: np.ndarray

    def aspect(self, hellinger: bool = False) -> float:
        """σ_1/σ_k of the sampled reconstructions (pixel space or Hellinger map)."""
        return aspect_ratio((self.widths_hellinger if hellinger else self.widths).sigma,
                            self.k)

    def saturated(self) -> dict[str, float]:
        """Fraction of codes with at least one saturated unit, per set."""
        return {name: saturated_fraction(h) for name, h in self._codes().items()}

    def radii(self) -> dict[str, np.ndarray]:
        """Radius in the whitened frame of the top-k principal directions of the Jeffreys
        reconstructions, per set."""
        w = self.widths
        args = (w.mean, w.components[:self.k], w.sigma[:self.k])
        return {"jeffreys": whitened_radius(self.x_jeffreys, *args),
                "data": whitened_radius(self.x_data, *args),
                "uniform": whitened_radius(self.x_uniform, *args)}

    def radius_rank(self) -> float:
        """Where the data sit among the Jeffreys samples: the median over the encoded data
        of the fraction of Jeffreys samples with a smaller whitened radius (0.5 if the
        data were distributed as the prior, at any k; near 1 on the rim)."""
        r = self.radii()
        return median_rank(r["data"], r["jeffreys"])

    def boundary(self) -> dict[str, np.ndarray]:
        """Distance of each code to the boundary of the cube, per set."""
        return {name: boundary_distance(h) for name, h in self._codes().items()}

    def ess_per_second(self) -> float:
        """The smallest ESS of the principal coordinates per second of sampling."""
        return float(np.min(self.ess) / self.chains.seconds)

    def _codes(self) -> dict[str, np.ndarray]:
        return {"jeffreys": self.h_jeffreys, "data": self.h_data, "uniform": self.h_uniform}


def _decode_np(model: torch.nn.Module, h: torch.Tensor, batch: int = 4096) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model.decode(h[i:i + batch]) for i in range(0, len(h), batch)]
                         ).cpu().numpy().astype(np.float64)


def study(model: torch.nn.Module, x_test: torch.Tensor, n_chains: int, n_steps: int,
          n_burn: int, thin: int, n_uniform: int, seed: int = 0, n_pc: int = 3,
          desc: str = "Jeffreys") -> Study:
    """Sample the Jeffreys prior of a network's code space and compare with the data.

    Chains start overdispersed (h uniform in [0.02, 0.98]^k) and run random-walk Metropolis
    on log √det g_u in logit coordinates (:func:`log_volume`, :func:`metropolis`).

    Parameters
    ----------
    model : a trained :class:`~hyperribbon.nets.SigmoidAutoencoder`
    x_test : held-out images (N, …), encoded as the data codes
    n_chains, n_steps, n_burn, thin : the sampler's settings
    n_uniform : uniform-in-code control samples
    seed : starts, proposals and the uniform controls
    n_pc : principal coordinates on which R̂ and the ESS are computed
    """
    k = model.code_size
    dev = next(model.parameters()).device
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    h0 = 0.02 + 0.96 * torch.rand(n_chains, k, generator=gen, dtype=torch.float64)
    u0 = torch.logit(h0).to(dev, next(model.parameters()).dtype)
    with torch.no_grad():
        chains = metropolis(lambda u: log_volume(model, u, singular="-inf"), u0, n_steps,
                            n_burn, thin, seed=seed, desc=f"{desc} k={k}")
        h_data = torch.cat([model.encode(x_test[i:i + 4096].to(dev))
                            for i in range(0, len(x_test), 4096)])
    h_j = torch.sigmoid(chains.flat())
    h_u = uniform_codes(n_uniform, k, seed + 1).to(dev, h_j.dtype)
    x_j = _decode_np(model, h_j)
    widths = pca(x_j)
    pcs = widths.projections[:, :n_pc].reshape(chains.samples.shape[0], n_chains, -1)
    return Study(k=k, chains=chains, h_jeffreys=h_j.cpu().numpy(),
                 h_data=h_data.cpu().numpy(), h_uniform=h_u.cpu().numpy(),
                 x_jeffreys=x_j, x_data=_decode_np(model, h_data),
                 x_uniform=_decode_np(model, h_u), widths=widths,
                 widths_hellinger=pca(hellinger(x_j)), pc_draws=pcs,
                 rhat=rhat(pcs), ess=ess(pcs))
