"""VAEs and the Γ-VAE curvature regulariser (Kim et al. 2024), trained many at once.

A decoder f: R^d → R^D maps the latent space onto a d-dimensional manifold of expression
space; the Γ-VAE adds γ·R to the VAE's loss, R the curvature of the decoder
(:mod:`hyperribbon.curvature`: total, tangent Γ and normal parts), computed here by
forward-mode Taylor propagation through the decoder's tanh layers
(:func:`decoder_curvature`) so that its gradient in the weights is cheap.

Models of one shape are trained together: every weight carries a leading model axis and
the layers are batched matrix products, so a sweep over γ, seeds and held-out clusters is
one training loop (:func:`train`, with the elementwise :class:`Adam` written out here).
The chapter's experiments (:func:`gamma_sweep`, :func:`heldout_sweep`) score the models
with the generic analyses of :mod:`hyperribbon.scores`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from .curvature import (
    MAX_EXACT_DIM,
    PARTS,
    random_unit,
    reduce_exact,
    reduce_random,
    resolve_mode,
)
from .scores import centroid_spearman, fate_auroc, reembed_heldout
from .util import progress, resolve_device, torch_threads

LIKELIHOODS = ("gaussian", "nb")
MAX_LATENT_DIM = 64

Tensor = torch.Tensor
A = TypeVar("A", Tensor, np.ndarray)


# ---------------------------------------------------------------------------------------
# Parameter checks

def check_vae_params(*, gammas: Sequence[float], latent_dim: int, hidden: int = 64,
                     beta: float = 1.0, n_seeds: int = 1, likelihood: str = "gaussian",
                     curvature_mode: str = "auto", n_dirs: int = 1,
                     dataset: str | None = None, datasets: Sequence[str] = (),
                     plain_first: bool = False) -> None:
    """Check the parameters of a Γ-VAE sweep together; raise ``ValueError`` naming the
    parameter.

    γ ≥ 0 and finite (and the grid starting at 0, the plain VAE, when ``plain_first``),
    1 ≤ latent dimension ≤ 64 (exact curvature up to :data:`MAX_EXACT_DIM`), a known
    likelihood and curvature mode, and ``dataset`` (when given) among ``datasets``.
    """
    g = list(gammas)
    if not g:
        raise ValueError("gammas: give at least one γ (γ = 0 is the plain VAE)")
    for x in g:
        if not (isinstance(x, (int, float)) and math.isfinite(x) and x >= 0):
            raise ValueError(f"gammas: every γ must be finite and ≥ 0, got {x!r}")
    if plain_first and (g[0] != 0 or len(g) < 2):
        raise ValueError(f"gammas = {g}: start with 0 (the plain VAE) and give at least one "
                         "γ > 0")
    if not (isinstance(latent_dim, int) and 1 <= latent_dim <= MAX_LATENT_DIM):
        raise ValueError(f"latent_dim = {latent_dim!r}: must be an integer in "
                         f"[1, {MAX_LATENT_DIM}]")
    if curvature_mode == "exact" and latent_dim > MAX_EXACT_DIM:
        raise ValueError(f"curvature_mode = 'exact' needs latent_dim ≤ {MAX_EXACT_DIM} "
                         f"(got {latent_dim}); use 'random' or 'auto'")
    if curvature_mode not in ("auto", "exact", "random"):
        raise ValueError(f"curvature_mode = {curvature_mode!r}: use auto, exact or random")
    if hidden < 1:
        raise ValueError(f"hidden = {hidden}: must be ≥ 1")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta = {beta}: must be finite and ≥ 0")
    if n_seeds < 1:
        raise ValueError(f"n_seeds = {n_seeds}: must be ≥ 1")
    if n_dirs < 1:
        raise ValueError(f"n_dirs = {n_dirs}: must be ≥ 1")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood = {likelihood!r}: use one of {', '.join(LIKELIHOODS)}")
    if dataset is not None and datasets and dataset not in datasets:
        raise ValueError(f"dataset = {dataset!r}: use one of {', '.join(datasets)}")


# ---------------------------------------------------------------------------------------
# Batched VAE: every weight has a leading model axis K

def _linear_init(gen: torch.Generator, n_in: int, n_out: int) -> tuple[Tensor, Tensor]:
    bound = 1.0 / math.sqrt(n_in)
    W = (torch.rand(n_in, n_out, generator=gen) * 2 - 1) * bound
    b = (torch.rand(n_out, generator=gen) * 2 - 1) * bound
    return W, b


def init_params(seeds: Sequence[int], n_in: int, latent_dim: int, hidden: int = 64,
                likelihood: str = "gaussian", dtype: torch.dtype = torch.float32,
                device: str = "auto") -> dict[str, Tensor]:
    """Weights of K = len(seeds) VAEs (encoder n_in → hidden → 2·latent, decoder latent →
    hidden → hidden → n_in, tanh), each initialised from its own seed (uniform
    ±1/√fan_in) so that a model does not depend on the others trained beside it."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood = {likelihood!r}: use one of {', '.join(LIKELIHOODS)}")
    shapes = [("e1", n_in, hidden), ("e2", hidden, 2 * latent_dim),
              ("d1", latent_dim, hidden), ("d2", hidden, hidden), ("d3", hidden, n_in)]
    per: dict[str, list[Tensor]] = {}
    for s in seeds:
        gen = torch.Generator().manual_seed(int(s))
        for name, a, b in shapes:
            W, bias = _linear_init(gen, a, b)
            per.setdefault(f"{name}.W", []).append(W)
            per.setdefault(f"{name}.b", []).append(bias)
        # per-gene log-variance (gaussian) or log-dispersion (nb), learned
        per.setdefault("logscale", []).append(torch.zeros(n_in))
    dev = resolve_device(device)
    return {k: torch.stack(v).to(dtype=dtype, device=dev) for k, v in per.items()}


def _layer(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    return torch.baddbmm(b[:, None, :], x, W)


def encode(params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """Posterior mean and log-variance, each (K, B, d), of inputs ``x`` (K, B, n_in)."""
    h = torch.tanh(_layer(x, params["e1.W"], params["e1.b"]))
    out = _layer(h, params["e2.W"], params["e2.b"])
    d = out.shape[-1] // 2
    return out[..., :d], out[..., d:].clamp(-12.0, 8.0)


def decode(params: dict[str, Tensor], z: Tensor) -> Tensor:
    """Decoder output (K, B, n_in) of latent points ``z`` (K, B, d): the Gaussian mean,
    or the log-mean of the negative binomial."""
    h = torch.tanh(_layer(z, params["d1.W"], params["d1.b"]))
    h = torch.tanh(_layer(h, params["d2.W"], params["d2.b"]))
    return _layer(h, params["d3.W"], params["d3.b"])


def decoder_fn(params: dict[str, Tensor]) -> Callable[[Tensor], Tensor]:
    """The decoder with its weights bound, for
    :func:`hyperribbon.curvature.curvature`."""
    return lambda z: decode(params, z)


def decoder_taylor(params: dict[str, Tensor], z: Tensor, dirs: Tensor,
                   pairs: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """Directional derivatives of the decoder by forward-mode Taylor propagation.

    The tanh layers are differentiated by hand (h = tanh a, s = 1 − h²:
    h_p = s a_p, h_pq = s a_pq − 2 h s a_p a_q; linear layers map tangents by W), which
    gives the same numbers as nested ``torch.func.jvp`` (the tests check it) at a small
    fraction of its cost when a gradient is taken through it.

    Parameters
    ----------
    z : (K, B, d) latent points; dirs : (P, K, B, d) directions;
    pairs : (p, q) index pairs into ``dirs``

    Returns
    -------
    first : (P, K, B, D), the derivatives J·dirs_p
    second : (len(pairs), K, B, D), the mixed second derivatives f[dirs_p, dirs_q]
    """
    P, (K, B, _) = dirs.shape[0], z.shape
    Q = len(pairs)
    pi = [p for p, _ in pairs]
    qi = [q for _, q in pairs]

    def lin(t: Tensor, W: Tensor) -> Tensor:  # (K, n, B, a) → (K, n, B, b), no bias
        n = t.shape[1]
        return torch.bmm(t.reshape(K, n * B, -1), W).reshape(K, n, B, -1)

    h = torch.tanh(_layer(z, params["d1.W"], params["d1.b"]))[:, None]
    s = 1 - h * h
    a1 = lin(dirs.permute(1, 0, 2, 3).contiguous(), params["d1.W"])
    h1 = s * a1
    h2 = -2 * h * s * a1[:, pi] * a1[:, qi]
    g = torch.tanh(_layer(h[:, 0], params["d2.W"], params["d2.b"]))[:, None]
    S = 1 - g * g
    T = lin(torch.cat([h1, h2], 1), params["d2.W"])
    A1, A2 = T[:, :P], T[:, P:]
    g1 = S * A1
    g2 = S * A2 - 2 * g * S * A1[:, pi] * A1[:, qi]
    out = lin(torch.cat([g1, g2], 1), params["d3.W"]).transpose(0, 1)
    return out[:P], out[P:P + Q]


def decoder_curvature(params: dict[str, Tensor], z: Tensor, *, mode: str = "auto",
                      n_dirs: int = 4, split: bool = False, scale_free: bool = False,
                      generator: torch.Generator | None = None,
                      dirs: Tensor | None = None) -> dict[str, Tensor]:
    """:func:`hyperribbon.curvature.curvature` of the decoder at ``z`` (K, B, d) through
    :func:`decoder_taylor` (same definitions, modes and parts; differentiable in the
    weights). In random mode the unit directions are ``dirs`` (n_dirs, K, B, d) when
    given, else drawn from ``generator``."""
    K, B, d = z.shape
    mode = resolve_mode(mode, d)
    basis = torch.eye(d, dtype=z.dtype, device=z.device)[:, None, None, :].expand(d, K, B, d)
    if mode == "exact":
        pairs = [(i, j) for i in range(d) for j in range(i, d)]
        first, second = decoder_taylor(params, z, basis, pairs)
        J = torch.stack(list(first), dim=-1)
        return reduce_exact(J, dict(zip(pairs, second, strict=True)), d, split, scale_free)
    need_J = split or scale_free
    v = random_unit((n_dirs, K, B, d), generator, z.dtype, z.device) if dirs is None else dirs
    n_dirs = v.shape[0]
    off = d if need_J else 0
    first, second = decoder_taylor(params, z, torch.cat([basis, v]) if need_J else v,
                                   [(off + k, off + k) for k in range(n_dirs)])
    J = torch.stack(list(first[:d]), dim=-1) if need_J else None
    return reduce_random(J, list(second), split, scale_free)


def gaussian_nll(x: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """−log N(x; mean, exp(logvar)) summed over the last axis."""
    return 0.5 * (((x - mean) ** 2) * torch.exp(-logvar) + logvar
                  + math.log(2 * math.pi)).sum(-1)


def nb_nll(x: Tensor, log_mean: Tensor, log_disp: Tensor) -> Tensor:
    """−log NB(x; mean μ = exp(log_mean), dispersion r = exp(log_disp)) summed over the
    last axis; variance μ + μ²/r."""
    r = torch.exp(log_disp)
    log_r_mu = torch.logaddexp(log_disp, log_mean)
    ll = (torch.lgamma(x + r) - torch.lgamma(r) - torch.lgamma(x + 1)
          + r * (log_disp - log_r_mu) + x * (log_mean - log_r_mu))
    return -ll.sum(-1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) summed over the last axis."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


class Adam:
    """Adam (Kingma & Ba) on a list of tensors, elementwise, so models stacked along an
    axis are optimised independently. Written out because ``torch.optim`` imports
    ``torch._dynamo`` on first use, which costs seconds per notebook run (its Adam agrees
    with this one to rounding, not bit for bit)."""

    def __init__(self, params: Sequence[Tensor], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = list(params)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One update with learning rate ``lr`` from the gradients in ``.grad``."""
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-lr / c1)


@dataclass
class TrainConfig:
    """Settings of one batched training run (shared by all its models)."""

    latent_dim: int = 2
    hidden: int = 64
    beta: float = 1.0
    likelihood: str = "gaussian"
    steps: int = 2000
    batch: int = 128
    lr: float = 2e-3
    lr_final: float = 0.05  # cosine decay of the learning rate to this fraction of lr
    n_penalty: int = 64  # latent points per step for R (half posterior, half spread)
    curvature_mode: str = "auto"
    n_dirs: int = 1
    tangent_weight: float = 1.0
    normal_weight: float = 1.0
    scale_free: bool = False
    device: str = "auto"
    num_threads: int | None = 1  # intra-op threads while training (None: leave as is)


@dataclass
class Trained:
    """K trained models and what they were trained with."""

    params: dict[str, Tensor]
    gammas: np.ndarray
    seeds: np.ndarray
    config: TrainConfig
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def n_models(self) -> int:
        return len(self.gammas)

    def select(self, idx: Sequence[int] | np.ndarray) -> Trained:
        """The sub-ensemble of models ``idx``."""
        ix = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return Trained({k: v[ix.to(v.device)] for k, v in self.params.items()},
                       self.gammas[np.asarray(idx)], self.seeds[np.asarray(idx)],
                       self.config, self.history[:, np.asarray(idx)]
                       if self.history.size else self.history)


class SeedStreams:
    """Random numbers for K models from one generator per distinct seed: models that
    share a seed (one replicate at several γ) get identical draws — common random
    numbers, so that their paired differences carry no minibatch or noise difference —
    and a model's draws do not depend on the models trained beside it. Every draw has
    the model axis first: (K, *shape)."""

    def __init__(self, seeds: Sequence[int], device: str | torch.device = "cpu") -> None:
        uniq, inv = np.unique(np.asarray(seeds, dtype=np.int64), return_inverse=True)
        # a stream of its own, apart from init_params' (seeded by the seed itself)
        self.gens = [torch.Generator(device=device).manual_seed(
            int(np.random.SeedSequence([int(u), 1]).generate_state(1)[0])) for u in uniq]
        self.inv = torch.as_tensor(inv, device=device)
        self.device = device

    def _draw(self, fn: Callable[[torch.Generator], Tensor]) -> Tensor:
        return torch.stack([fn(g) for g in self.gens])[self.inv]

    def rand(self, *shape: int) -> Tensor:
        """Uniform [0, 1) numbers (K, *shape)."""
        return self._draw(lambda g: torch.rand(shape, generator=g, device=self.device))

    def randn(self, *shape: int) -> Tensor:
        """Standard normal numbers (K, *shape)."""
        return self._draw(lambda g: torch.randn(shape, generator=g, device=self.device))

    def randint(self, high: int, *shape: int) -> Tensor:
        """Integers uniform in [0, high) (K, *shape)."""
        return self._draw(lambda g: torch.randint(0, high, shape, generator=g,
                                                  device=self.device))


def penalty_points(mu: Tensor, logvar: Tensor, n: int, streams: SeedStreams) -> Tensor:
    """Latent points where the penalty is taken (K, n, d), detached: n/2 posterior
    samples of the batch and n/2 points spread over the latent cloud (uniform on segments
    between random pairs of posterior samples), with the random numbers of ``streams``."""
    K, B, d = mu.shape
    mu, logvar = mu.detach(), logvar.detach()
    n_post = n // 2
    i = streams.randint(B, n_post)
    eps = streams.randn(n_post, d).to(mu.dtype)
    take = lambda t, ix: torch.gather(t, 1, ix[..., None].expand(-1, -1, d))  # noqa: E731
    post = take(mu, i) + torch.exp(0.5 * take(logvar, i)) * eps
    a = streams.randint(B, n - n_post)
    b = streams.randint(B, n - n_post)
    u = streams.rand(n - n_post, 1).to(mu.dtype)
    spread = take(mu, a) + u * (take(mu, b) - take(mu, a))
    return torch.cat([post, spread], dim=1)


def penalised_curvature(parts: Mapping[str, A], tangent_weight: float,
                        normal_weight: float) -> A:
    """The part of the curvature that the loss penalises: w_T·R_tangent + w_N·R_normal,
    or w·R_total when the two weights are equal w (the parts need not be split then).
    ``parts`` maps "total" (and "tangent", "normal" when the weights differ) to tensors
    or arrays."""
    if tangent_weight != normal_weight:
        return tangent_weight * parts["tangent"] + normal_weight * parts["normal"]
    return tangent_weight * parts["total"]


def loss_terms(params: dict[str, Tensor], x: Tensor, cfg: TrainConfig, streams: SeedStreams,
               x_in: Tensor | None = None, penalised: Tensor | None = None
               ) -> dict[str, Tensor]:
    """Per-model loss terms on one batch ``x`` (K, B, n_in): reconstruction NLL, KL and
    the curvature penalty R (each (K,)). ``x_in`` is the encoder's input when it differs
    from the target (counts for the NB likelihood). R is computed for the models
    ``penalised`` (indices; all when None) and is 0 for the others. The random numbers
    come from ``streams`` and are drawn for every model whether penalised or not, so a
    model's draws do not depend on its γ."""
    mu, logvar = encode(params, x if x_in is None else x_in)
    eps = streams.randn(*mu.shape[1:]).to(mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    out = decode(params, z)
    if cfg.likelihood == "gaussian":
        rec = gaussian_nll(x, out, params["logscale"][:, None, :])
    else:
        rec = nb_nll(x, out, params["logscale"][:, None, :])
    terms = {"rec": rec.mean(1), "kl": kl_standard_normal(mu, logvar).mean(1)}
    K = mu.shape[0]
    if penalised is None:
        penalised = torch.arange(K, device=mu.device)
    terms["R"] = torch.zeros(K, dtype=mu.dtype, device=mu.device)
    zp = penalty_points(mu, logvar, cfg.n_penalty, streams)
    dirs = None
    if resolve_mode(cfg.curvature_mode, mu.shape[-1]) == "random":
        g = streams.randn(cfg.n_dirs, cfg.n_penalty, mu.shape[-1]).to(mu.dtype)
        dirs = (g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)).transpose(0, 1)
    if len(penalised):
        sub = {k: v[penalised] for k, v in params.items()}
        R = decoder_curvature(sub, zp[penalised], mode=cfg.curvature_mode, n_dirs=cfg.n_dirs,
                              split=cfg.tangent_weight != cfg.normal_weight,
                              scale_free=cfg.scale_free,
                              dirs=None if dirs is None else dirs[:, penalised])
        pen = penalised_curvature(R, cfg.tangent_weight, cfg.normal_weight)
        terms["R"] = terms["R"].index_add(0, penalised, pen.mean(1))
    return terms


def train(X: np.ndarray | Tensor, gammas: Sequence[float], seeds: Sequence[int],
          cfg: TrainConfig | None = None, masks: np.ndarray | None = None,
          X_in: np.ndarray | Tensor | None = None, desc: str = "training VAEs") -> Trained:
    """Train K = len(gammas) VAEs together; model k uses γ_k, seed_k and the rows of ``X``
    where ``masks[k]`` is true (all rows when ``masks`` is None).

    Loss of model k: E[−log p(x|z)] + β·KL + γ_k·R, R the curvature penalty on latent
    points taken from the batch's posterior (:func:`penalty_points`). Minibatches are
    drawn with replacement from each model's own rows; every random number of model k
    comes from a generator seeded by seed_k alone (:class:`SeedStreams`), so models with
    the same seed and rows (a replicate at several γ) see the same minibatches and noise
    and a model does not depend on the others; on the CPU the result is deterministic
    given the seeds. The layers are small batched products,
    so one intra-op thread (``cfg.num_threads``) is usually fastest on the CPU and far
    faster than two on a busy machine; the previous setting is restored afterwards.
    """
    cfg = cfg or TrainConfig()
    with torch_threads(cfg.num_threads):
        return _train(X, gammas, seeds, cfg, masks, X_in, desc)


def _train(X, gammas, seeds, cfg: TrainConfig, masks, X_in, desc: str) -> Trained:
    gam = np.asarray(gammas, dtype=float)
    sd = np.asarray(seeds, dtype=np.int64)
    if gam.shape != sd.shape:
        raise ValueError("gammas and seeds must have one entry per model")
    check_vae_params(gammas=list(gam), latent_dim=cfg.latent_dim, hidden=cfg.hidden,
                     beta=cfg.beta, likelihood=cfg.likelihood,
                     curvature_mode=cfg.curvature_mode, n_dirs=cfg.n_dirs)
    dev = resolve_device(cfg.device)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=dev)
    Xi = Xt if X_in is None else torch.as_tensor(np.asarray(X_in), dtype=torch.float32,
                                                 device=dev)
    K, N = len(gam), Xt.shape[0]
    masks = np.ones((K, N), bool) if masks is None else np.asarray(masks, bool)
    rows = [torch.as_tensor(np.flatnonzero(m), device=dev) for m in masks]
    if any(len(r) == 0 for r in rows):
        raise ValueError("a model has no training rows")
    params = init_params(sd, Xt.shape[1], cfg.latent_dim, cfg.hidden, cfg.likelihood,
                         device=cfg.device)
    for v in params.values():
        v.requires_grad_(True)
    adam = Adam(list(params.values()))
    streams = SeedStreams(sd, dev)
    gt = torch.as_tensor(gam, dtype=torch.float32, device=dev)
    penalised = torch.as_tensor(np.flatnonzero(gam > 0), device=dev)
    hist = np.zeros((cfg.steps, K), dtype=np.float32)
    sizes = torch.as_tensor([len(r) for r in rows], device=dev)
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    for step in progress(range(cfg.steps), desc=desc, total=cfg.steps):
        u = streams.rand(cfg.batch)
        pos = (u * sizes[:, None]).long().clamp_max(sizes[:, None] - 1)
        idx = torch.gather(padded, 1, pos)
        xb, xib = Xt[idx], Xi[idx]
        t = loss_terms(params, xb, cfg, streams, x_in=None if X_in is None else xib,
                       penalised=penalised)
        per_model = t["rec"] + cfg.beta * t["kl"] + gt * t["R"]
        for v in params.values():
            v.grad = None
        per_model.sum().backward()
        frac = cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * step
                                                                         / cfg.steps))
        adam.step(cfg.lr * frac)
        hist[step] = per_model.detach().cpu().numpy()
    return Trained({k: v.detach() for k, v in params.items()}, gam, sd, cfg, hist)


# ---------------------------------------------------------------------------------------
# Using trained models

def _stack_x(model: Trained, X: np.ndarray | Tensor) -> Tensor:
    p = next(iter(model.params.values()))
    x = torch.as_tensor(np.asarray(X), dtype=p.dtype, device=p.device)
    return x.unsqueeze(0).expand(model.n_models, -1, -1)


@torch.no_grad()
def embed(model: Trained, X: np.ndarray | Tensor) -> np.ndarray:
    """Posterior means (K, N, d) of the rows of ``X`` under each model."""
    mu, _ = encode(model.params, _stack_x(model, X))
    return mu.cpu().numpy().astype(np.float64)


@torch.no_grad()
def reconstruction_error(model: Trained, X: np.ndarray | Tensor,
                         X_in: np.ndarray | Tensor | None = None) -> np.ndarray:
    """Mean squared error per entry (K,) of decoding the posterior means of ``X``
    (Gaussian: the decoded mean; NB: log1p of the decoded mean against log1p(X))."""
    mu, _ = encode(model.params, _stack_x(model, X if X_in is None else X_in))
    out = decode(model.params, mu)
    x = _stack_x(model, X)
    if model.config.likelihood == "nb":
        out, x = torch.log1p(torch.exp(out)), torch.log1p(x)
    return ((out - x) ** 2).mean((1, 2)).cpu().numpy().astype(np.float64)


def latent_grid(Z: np.ndarray, n_per_dim: int = 20, max_points: int = 4096,
                quantiles: tuple[float, float] = (0.02, 0.98), seed: int = 0) -> np.ndarray:
    """Points spread over the box holding a latent cloud ``Z`` (N, d) between the given
    quantiles: a regular grid of n_per_dim^d points when that is ≤ ``max_points``, else
    ``max_points`` uniform random points in the box."""
    lo, hi = np.quantile(Z, quantiles[0], axis=0), np.quantile(Z, quantiles[1], axis=0)
    d = Z.shape[1]
    if n_per_dim ** d <= max_points:
        axes = [np.linspace(lo[i], hi[i], n_per_dim) for i in range(d)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    rng = np.random.default_rng(seed)
    return lo + (hi - lo) * rng.random((max_points, d))


def curvature_on(model: Trained, Z: np.ndarray, *, split: bool = True,
                 scale_free: bool = False, mode: str = "auto", n_dirs: int = 16,
                 chunk: int = 1024, seed: int = 0) -> dict[str, np.ndarray]:
    """Curvature of every model's decoder at latent points ``Z`` (K, M, d) or (M, d)
    (shared) → dict of arrays (K, M), evaluated in chunks without gradients."""
    p = next(iter(model.params.values()))
    Zt = torch.as_tensor(np.asarray(Z), dtype=p.dtype, device=p.device)
    if Zt.dim() == 2:
        Zt = Zt.unsqueeze(0).expand(model.n_models, -1, -1)
    gen = torch.Generator(device=p.device).manual_seed(seed)
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in range(0, Zt.shape[1], chunk):
            R = decoder_curvature(model.params, Zt[:, s:s + chunk].contiguous(), mode=mode,
                                  n_dirs=n_dirs, split=split, scale_free=scale_free,
                                  generator=gen)
            for k, v in R.items():
                parts.setdefault(k, []).append(v.cpu().numpy().astype(np.float64))
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}


def choose_gamma(gammas: Sequence[float], rec: np.ndarray, tol: float = 0.02) -> float:
    """The largest γ whose mean reconstruction error (``rec``: (n_gamma,) or
    (n_gamma, n_seeds), γ = 0 first) stays within ``tol`` of the plain VAE's; the
    smallest positive γ when none does. The rule never looks at the scores."""
    g = np.asarray(gammas, float)
    r = np.asarray(rec, float)
    r = r.mean(1) if r.ndim == 2 else r
    if g[0] != 0:
        raise ValueError("gammas must start with 0 (the plain VAE)")
    ok = [k for k in range(1, len(g)) if r[k] <= (1 + tol) * r[0]]
    return float(g[max(ok, key=lambda k: g[k])] if ok else g[1:].min())


def monotone_ratio(values: Sequence[float]) -> float:
    """max_k values[k+1]/values[k]: below 1 exactly when the sequence strictly decreases
    (positive values)."""
    v = np.asarray(values, float)
    return float(np.max(v[1:] / v[:-1]))


# ---------------------------------------------------------------------------------------
# The chapter's experiments

@dataclass
class Replicate:
    """One replicate's data: a (preprocessed) matrix, its cluster labels, the reference
    distances between the label centroids (condensed, label order), the test rows, and
    the fates (≥ 0 where known and to be predicted, −1 elsewhere)."""

    X: np.ndarray
    labels: np.ndarray
    reference: np.ndarray
    test: np.ndarray
    fate: np.ndarray | None = None


def _stack(reps: Sequence[Replicate]) -> tuple[np.ndarray, np.ndarray]:
    n = {len(r.X) for r in reps}
    if len(n) != 1:
        raise ValueError("every replicate must have the same number of rows")
    return np.concatenate([r.X for r in reps]), np.repeat(np.arange(len(reps)), n.pop())


@dataclass
class Sweep:
    """VAEs trained over a γ grid, one per replicate (seed) and γ, with their scores;
    arrays are (n_gamma, n_seeds); model k = γ index · n_seeds + seed index."""

    gammas: np.ndarray
    seeds: np.ndarray
    model: Trained
    Z: np.ndarray  # (n_gamma, n_seeds, N, d): posterior means of every row of its replicate
    rec_train: np.ndarray
    rec_test: np.ndarray
    R: np.ndarray
    R_tangent: np.ndarray
    R_normal: np.ndarray
    long_range: np.ndarray
    fate_auroc: np.ndarray
    R_scale_free: np.ndarray  # penalised part over E_v‖Jv‖⁴ pointwise, mean on the grid

    @property
    def R_penalised(self) -> np.ndarray:
        """The curvature that the loss penalised (:func:`penalised_curvature` with the
        run's weights), (n_gamma, n_seeds)."""
        cfg = self.model.config
        return penalised_curvature({"total": self.R, "tangent": self.R_tangent,
                                    "normal": self.R_normal}, cfg.tangent_weight,
                                   cfg.normal_weight)


def gamma_sweep(reps: Sequence[Replicate], gammas: Sequence[float], seeds: Sequence[int],
                cfg: TrainConfig, grid_n: int = 16, grid_max: int = 4096) -> Sweep:
    """Train one VAE per γ and replicate (replicate i with seed i) on the replicate's
    non-test rows, all in one batched run, and score them.

    Scores: reconstruction MSE on the training and test rows; mean curvature (total,
    tangent, normal) over a grid spread over each model's latent cloud
    (:func:`latent_grid` of its training rows), and the penalised part made scale-free
    (divided by E_v‖Jv‖⁴ at each point: unchanged when the latent space is stretched);
    Spearman correlation of the label-centroid
    distances with the replicate's reference (:func:`centroid_spearman`, all rows); fate
    AUROC (:func:`fate_auroc`; NaN without fates).
    """
    g, s = np.asarray(gammas, float), np.asarray(seeds, int)
    G, S = len(g), len(s)
    if len(reps) != S:
        raise ValueError(f"{len(reps)} replicates for {S} seeds")
    X, rep = _stack(reps)
    train_rows = np.concatenate([~np.asarray(r.test, bool) for r in reps])
    masks = np.stack([train_rows & (rep == k % S) for k in range(G * S)])
    model = train(X, np.repeat(g, S), np.tile(s, G), cfg, masks=masks,
                  desc=f"training {G * S} VAEs (γ sweep)")
    Z = np.stack([embed(model.select([k]), reps[k % S].X)[0] for k in range(G * S)])
    rec_tr, rec_te = np.zeros(G * S), np.zeros(G * S)
    R = {name: np.zeros(G * S) for name in PARTS}
    R_free = np.zeros(G * S)
    lr, fa = np.zeros(G * S), np.full(G * S, np.nan)
    for k in progress(range(G * S), desc="scoring", total=G * S):
        r, m = reps[k % S], model.select([k])
        test = np.asarray(r.test, bool)
        rec_tr[k] = reconstruction_error(m, r.X[~test])[0]
        rec_te[k] = reconstruction_error(m, r.X[test])[0]
        grid = latent_grid(Z[k][~test], grid_n, grid_max, seed=int(s[k % S]))
        parts = curvature_on(m, grid, split=True)
        for name in PARTS:
            R[name][k] = parts[name].mean()
        free = curvature_on(m, grid, split=True, scale_free=True)
        R_free[k] = penalised_curvature(free, cfg.tangent_weight, cfg.normal_weight).mean()
        lr[k] = centroid_spearman(Z[k], r.labels, r.reference)
        if r.fate is not None and np.any(r.fate >= 0):
            fa[k] = fate_auroc(Z[k], r.fate, seed=int(s[k % S]))
    sh = (G, S)
    return Sweep(g, s, model, Z.reshape(G, S, *Z.shape[1:]), rec_tr.reshape(sh),
                 rec_te.reshape(sh), R["total"].reshape(sh), R["tangent"].reshape(sh),
                 R["normal"].reshape(sh), lr.reshape(sh), fa.reshape(sh),
                 R_free.reshape(sh))


@dataclass
class Heldout:
    """Held-out-cluster re-embedding: arrays (n_clusters, n_gammas, n_seeds)."""

    clusters: list[int]
    gammas: np.ndarray
    seeds: np.ndarray
    ratio: np.ndarray
    knn: np.ndarray
    Z_without: np.ndarray  # (n_clusters, n_gammas, n_seeds, N, d)


def heldout_sweep(reps: Sequence[Replicate], clusters: Sequence[int],
                  gammas: Sequence[float], seeds: Sequence[int], cfg: TrainConfig,
                  Z_with: np.ndarray, k: int = 15) -> Heldout:
    """For every cluster c, γ and replicate, train a VAE without the rows of c (nor the
    test rows), embed the replicate, align it to ``Z_with`` ((n_gammas, n_seeds, N, d):
    the models trained with c) by Procrustes on the shared rows, and score the
    re-embedded cluster (:func:`reembed_heldout`: displacement ratio, k-NN agreement)."""
    g, s = np.asarray(gammas, float), np.asarray(seeds, int)
    C, G, S = len(clusters), len(g), len(s)
    X, rep = _stack(reps)
    train_rows = np.concatenate([~np.asarray(r.test, bool) for r in reps])
    labels = np.concatenate([r.labels for r in reps])
    masks = np.stack([train_rows & (labels != c) & (rep == si)
                      for c in clusters for _ in range(G) for si in range(S)])
    model = train(X, np.tile(np.repeat(g, S), C), np.tile(s, G * C), cfg, masks=masks,
                  desc=f"training {C * G * S} VAEs (held-out clusters)")
    Z = np.stack([embed(model.select([m]), reps[m % S].X)[0] for m in range(C * G * S)])
    Z = Z.reshape(C, G, S, *Z.shape[1:])
    ratio, knn = np.zeros((C, G, S)), np.zeros((C, G, S))
    for ci, c in enumerate(clusters):
        for gi in range(G):
            for si in range(S):
                lab = reps[si].labels
                r = reembed_heldout(Z_with[gi, si], Z[ci, gi, si], lab == c, lab, c, k)
                ratio[ci, gi, si], knn[ci, gi, si] = r["ratio"], r["knn"]
    return Heldout(list(clusters), g, s, ratio, knn, Z)

