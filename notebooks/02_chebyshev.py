# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chebyshev approximation and the hyper-ribbon
#
# Many models with many parameters are *sloppy*: their predictions depend on a few
# stiff combinations of parameters and hardly at all on the rest. Seen globally, the set
# of all possible prediction vectors — the *model manifold* — is a *hyper-ribbon*
# {cite}`transtrum2011geometry`: its widths in successive directions fall off
# geometrically, like a ribbon that is long, much narrower, much thinner still, and so on.
# {cite:t}`quinn2019chebyshev` explain why with approximation theory: when the
# prediction y(t; θ) is a smooth (analytic) function of the control variable t — time,
# a concentration — a polynomial of low degree approximates it well *for every θ*, so all
# prediction vectors lie close to one fixed low-dimensional subspace, and the distance
# shrinks geometrically with the dimension.
#
# **The theorem.** Map t ∈ [t₀, t₁] to s ∈ [−1, 1]. If y(s; θ) is analytic inside the
# Bernstein ellipse E_ρ (foci ±1, semi-axes summing to ρ > 1) and |y| ≤ M(ρ) there for
# every θ in the parameter box, then its Chebyshev coefficients obey |c_k| ≤ 2Mρ^-k and
# its degree-n Chebyshev interpolant p_n obeys ‖y − p_n‖∞ ≤ 4Mρ^-n/(ρ − 1)
# {cite}`trefethen2019atap` (Theorems 8.1, 8.2). The values of p_n at the m prediction
# points lie in the (n+1)-dimensional span of T₀ … T_n sampled there, so every prediction
# vector is within
#
# $$ B_n = \min_\rho \sqrt{m}\, \frac{4 M(\rho)\, \rho^{-n}}{\rho - 1} $$
#
# of that fixed subspace. The residual R_{n+1} of the *best* (n+1)-dimensional affine
# subspace through the sampled predictions can only be smaller: R_{n+1} ≤ B_n.
#
# We check this on the paper's three examples — a sum of decaying exponentials, an
# enzyme-kinetics rate law, and the SIR epidemic model — by sampling each model manifold,
# measuring its widths by principal component analysis, and computing the bound.

# %% tags=["parameters"]
profile: str = "ci"  # choices: smoke, ci, paper | the run profile (the runner sets it)
seed: int = 0  # range: [0, 4294967295] | random seed of the parameter draws
n_samples: int = 10000  # range: [10, 10000000] | parameter sets drawn per model
n_times: int = 50  # range: [10, 2000] | m, time points (exponentials and SIR)
n_cheb_samples: int = 200  # range: [1, 100000] | θ whose Chebyshev coefficients are shown
cheb_degree: int = 64  # range: [16, 1024] | degree of those Chebyshev interpolants
exp_n_rates: int = 6  # range: [1, 100] | N, exponentials per prediction
exp_lambda_t: float = 8.0  # range: (0, 200] | Λ·T: largest decay rate times the time span
exp_rate_floor: float = 0.001  # range: (0, 1) | smallest sampled rate, as a fraction of Λ
exp_sweep: list[float] = [2.0, 8.0, 32.0]  # range: (0, 200] | increasing | Λ·T swept
enzyme_lo: list[float] = [0.05, 0.05, 0.05, 0.05]  # range: (0, inf) | len: 4 | enzyme box, low
enzyme_hi: list[float] = [0.5, 0.5, 0.5, 0.5]  # range: (0, inf) | len: 4 | enzyme box, high
sir_t_end: float = 30.0  # range: (0, 1000] | T, the SIR observation window in days
sir_lo: list[float] = [0.3, 0.1, 0.001]  # range: (0, inf) | len: 3 | SIR box, low (β, γ /day; I0)
sir_hi: list[float] = [0.6, 0.3, 0.01]  # range: (0, inf) | len: 3 | SIR box, high (β, γ /day; I0)
sir_max_step: float = 0.1  # range: (0, 10] | largest RK4 step (days) of the SIR integrations
sir_n_theta_m: int = 56  # range: [0, 100000] | sampled θ (besides the corners) for SIR M(ρ)
sir_n_boundary: int = 64  # range: [16, 4096] | points on each ellipse for the SIR M(ρ)
sir_n_rho: int = 24  # range: [4, 400] | ellipses tried for the SIR M(ρ)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from hyperribbon.compendium import claim, glue, glue_figure, glue_values, record_spectrum
from hyperribbon.manifold import (
    box_corners,
    cheb_coefficients,
    cheb_points,
    check_chebyshev_params,
    coefficient_bound,
    coefficient_ratio,
    from_unit,
    interpolation_ratio,
    ribbon_fit,
    sample_box,
)
from hyperribbon.odes import (
    ENZYME_U,
    enzyme_M,
    enzyme_rate,
    enzyme_rho_max,
    exp_decay,
    exp_decay_M,
    sir_ellipse_max,
    sir_solve,
)

check_chebyshev_params(n_samples=n_samples, n_cheb_samples=n_cheb_samples, n_times=n_times,
                       enzyme_lo=enzyme_lo, enzyme_hi=enzyme_hi, sir_lo=sir_lo, sir_hi=sir_hi,
                       sir_t_end=sir_t_end, sir_max_step=sir_max_step, exp_sweep=exp_sweep)
t_start = time.perf_counter()
N_FIT = 8  # widths fitted as a geometric sequence (the brief's "first 8 directions")
MODELS = {"exp": "sum of exponentials", "enzyme": "enzyme kinetics", "sir": "SIR epidemic"}

# %% [markdown]
# ## The three models
#
# 1. **Sum of exponentials**, y(t; θ) = (1/N) Σᵢ exp(−θᵢ t) with N =
#    {glue:text}`ch02-exp-n` rates θᵢ ∈ [0, Λ], observed at m = {glue:text}`ch02-m`
#    equally spaced times in [0, T]; we take T = 1, so Λ·T = {glue:text}`ch02-lamt`.
#    Rates are drawn log-uniformly in [{glue:text}`ch02-exp-floor` Λ, Λ].
# 2. **Enzyme kinetics** in the Kowalik–Osborne form {cite}`more1981testing`,
#    y(u; θ) = θ₁ u (u + θ₂)/(u² + θ₃ u + θ₄), at the 11 substrate concentrations
#    u = 4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625; each θⱼ drawn
#    log-uniformly in the box below (it contains the classic least-squares fit
#    θ ≈ (0.193, 0.191, 0.123, 0.136)).
# 3. **SIR epidemic**: dS/dt = −βSI, dI/dt = βSI − γI with S(0) = 1 − I₀, predicting
#    the infected fraction I(t) at m equally spaced days in [0, T]; θ = (β, γ, I₀) drawn
#    log-uniformly in the box below. We integrate with a vectorised fourth-order
#    Runge–Kutta scheme (all parameter sets at once).

# %%
rng_seeds = {"exp": seed, "enzyme": seed + 1, "sir": seed + 2}
t_exp = np.linspace(0.0, 1.0, n_times)
t_sir = np.linspace(0.0, sir_t_end, n_times)
exp_lo = np.full(exp_n_rates, exp_rate_floor * exp_lambda_t)
exp_hi = np.full(exp_n_rates, exp_lambda_t)
theta = {
    "exp": sample_box(exp_lo, exp_hi, n_samples, rng_seeds["exp"]),
    "enzyme": sample_box(enzyme_lo, enzyme_hi, n_samples, rng_seeds["enzyme"]),
    "sir": sample_box(sir_lo, sir_hi, n_samples, rng_seeds["sir"]),
}
Y = {
    "exp": exp_decay(theta["exp"], t_exp),
    "enzyme": enzyme_rate(theta["enzyme"], ENZYME_U),
    "sir": sir_solve(theta["sir"], t_sir, sir_max_step),
}
xgrid = {"exp": t_exp, "enzyme": ENZYME_U, "sir": t_sir}
interval = {"exp": (0.0, 1.0), "enzyme": (ENZYME_U.min(), ENZYME_U.max()),
            "sir": (0.0, sir_t_end)}
glue_values({
    "ch02-exp-n": exp_n_rates,
    "ch02-m": n_times,
    "ch02-n": n_samples,
    "ch02-lamt": exp_lambda_t,
    "ch02-exp-floor": exp_rate_floor,
    "ch02-enzyme-box": ", ".join(
        f"θ{j + 1} ∈ [{a:g}, {b:g}]"
        for j, (a, b) in enumerate(zip(enzyme_lo, enzyme_hi, strict=True))),
    "ch02-sir-box": (f"β ∈ [{sir_lo[0]}, {sir_hi[0]}], γ ∈ [{sir_lo[1]}, {sir_hi[1]}], "
                     f"I₀ ∈ [{sir_lo[2]}, {sir_hi[2]}]"),
    "ch02-sir-t": sir_t_end,
})

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
xlabels = {"exp": "time t / T", "enzyme": "substrate concentration u",
           "sir": "time t (days)"}
ylabels = {"exp": "y(t)", "enzyme": "reaction rate y(u)", "sir": "infected fraction I(t)"}
for ax, key in zip(axes, MODELS, strict=True):
    style = "o-" if key == "enzyme" else "-"
    ax.plot(xgrid[key], Y[key][:30].T, style, lw=0.8, ms=2.5, alpha=0.7)
    ax.set(title=MODELS[key], xlabel=xlabels[key], ylabel=ylabels[key])
    if key == "enzyme":
        ax.set_xscale("log")
glue_figure("ch02-predictions", fig)

# %% [markdown]
# ```{glue:figure} ch02-predictions
# :name: fig-ch02-predictions
#
# Thirty sampled predictions of each model. Left: sums of {glue:text}`ch02-exp-n`
# exponentials against t/T. Middle: enzyme reaction rates (arbitrary units) at the 11
# substrate concentrations (log axis; box {glue:text}`ch02-enzyme-box`).
# Right: the infected fraction of the SIR model over {glue:text}`ch02-sir-t` days
# ({glue:text}`ch02-sir-box`).
# ```
#
# ## How large is |y| off the real axis? M(ρ) for each model
#
# - **Exponentials** (analytic): with t = T(1 + s)/2 and Re s ≥ −(ρ + 1/ρ)/2 on E_ρ,
#   |exp(−θt)| ≤ exp[ΛT(ρ + 1/ρ − 2)/4] for every θ ∈ [0, Λ]. The function is entire, so
#   every ρ > 1 is allowed and the optimal ρ grows with n.
# - **Enzyme**: y is rational; its poles are the roots of u² + θ₃u + θ₄, which lie in
#   the left half-plane. The largest usable ellipse is set by the pole nearest to
#   [0.0625, 4] over the box: ρ_max = {glue:text}`ch02-enzyme-rhomax:.3f`. Below it,
#   M(ρ) is the maximum of |y| on ∂E_ρ (maximum principle), computed exactly over θ (the
#   factors of |y| depend on separate parameters) and on 2048 points of the ellipse.
# - **SIR**: we continue I(t) into complex time by integrating the ODE along the straight
#   path from t = 0 to each of {glue:text}`ch02-sir-nb` points on ∂E_ρ (E_ρ is convex and
#   contains t = 0). ρ grows until the continuation is no longer trusted — it must be
#   finite, unchanged when the step is doubled, and give the same low Chebyshev
#   coefficients on every ellipse (a singularity of I in complex time inside E_ρ breaks
#   this). SIR epidemics have complex-time singularities near their peak, closer to the
#   real axis the sharper the peak. The last ellipse trusted has
#   ρ = {glue:text}`ch02-sir-rhomax:.3f`; the check is conservative (with
#   {glue:text}`ch02-sir-nb` points per ellipse the aliasing of its Fourier transform
#   stops it somewhat before the nearest singularity), which only makes the bound
#   larger. **M(ρ) is maximised over the 8 corners of the box and
#   {glue:text}`ch02-sir-ntheta` sampled θ, not over the whole box**, so the SIR bound is
#   an estimate rather than a proof.

# %%
rho_exp = 1 + np.geomspace(1e-3, 100, 400)
M = {"exp": (rho_exp, exp_decay_M(rho_exp, exp_lambda_t))}
rho_max_enz = enzyme_rho_max(enzyme_lo, enzyme_hi, *interval["enzyme"])
rho_enz = 1 + (rho_max_enz - 1) * np.linspace(0.01, 0.999, 200)
M["enzyme"] = (rho_enz, enzyme_M(rho_enz, enzyme_lo, enzyme_hi, *interval["enzyme"]))
theta_m = np.concatenate([box_corners(sir_lo, sir_hi), theta["sir"][:sir_n_theta_m]])
sir_e = sir_ellipse_max(theta_m, 1 + np.geomspace(0.005, 2.0, sir_n_rho), sir_t_end,
                        sir_n_boundary, sir_max_step)
M["sir"] = (sir_e.rho, sir_e.M)
glue("ch02-enzyme-rhomax", rho_max_enz, display=False)
glue("ch02-sir-rhomax", float(sir_e.rho[sir_e.valid].max()), display=False)
glue("ch02-sir-nb", sir_n_boundary, display=False)
glue("ch02-sir-ntheta", len(theta_m) - 8, display=False)

# %% [markdown]
# ## Widths of the model manifolds and the bound
#
# For each model we centre the N × m matrix of predictions and take its SVD. σ_k is the
# RMS of the projections on the k-th principal direction, the *range* is the spread
# (max − min) of those projections, and R_k = √(Σ_{j>k} σ_j²) is the RMS distance of the
# samples to the best k-dimensional affine subspace. The Chebyshev bound B_{k−1} bounds
# R_k.

# %%
fits = {k: ribbon_fit(Y[k], *M[k], n_fit=N_FIT) for k in MODELS}
W = {k: f.widths for k, f in fits.items()}
for key, f in fits.items():
    glue_values({f"ch02-{key}-rhofit": f.rho_fit, f"ch02-{key}-rhoopt": f.rho_opt,
                 f"ch02-{key}-nchecked": f.n_checked})
span_exp = float(np.log10(W["exp"].sigma[0] / W["exp"].sigma[N_FIT - 1]))

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, key in zip(axes, MODELS, strict=True):
    w, b = W[key], fits[key].bound
    k = np.arange(1, len(w.sigma) + 1)
    show = b.bound < 1e3 * w.residuals[0]
    ax.semilogy(k, w.sigma, "o", ms=4, label="σ_k (RMS width)")
    ax.semilogy(k, w.ranges, "s", ms=3, mfc="none", alpha=0.6, label="range of projections")
    ax.semilogy(k, w.residuals[1:], "-", color="k", lw=1, label="R_k (best k-dim residual)")
    ax.semilogy((b.n + 1)[show], b.bound[show], "--", color="C3", label="B_{k−1} (bound)")
    ax.set(title=MODELS[key], xlabel="principal direction k", ylabel="width",
           ylim=(max(1e-17, 0.3 * w.sigma[w.sigma > 0].min()), None))
axes[0].legend(fontsize=8)
glue_figure("ch02-widths", fig)

# %% [markdown]
# ```{glue:figure} ch02-widths
# :name: fig-ch02-widths
#
# Widths of the three model manifolds ({glue:text}`ch02-n` samples each) on a log scale:
# RMS widths σ_k, ranges of the projections, the residual R_k of the best k-dimensional
# affine subspace, and the Chebyshev bound B_{k−1} on it (dashed; shown where it is below
# 1000 R₀). Widths are in the units of the predictions (dimensionless fractions for the
# exponentials and SIR, rate units for the enzyme). All three decay geometrically — the
# hyper-ribbon — and stay below the bound.
# ```
#
# Every measured residual lies under its bound: the largest ratio R_{n+1}/B_n over the
# degrees checked (all n whose B_n is above the float64 noise floor:
# {glue:text}`ch02-exp-nchecked`, {glue:text}`ch02-enzyme-nchecked`,
# {glue:text}`ch02-sir-nchecked` degrees) is {glue:text}`cheb_bound_holds_exp:.2g`
# (exponentials), {glue:text}`cheb_bound_holds_enzyme:.2g` (enzyme) and
# {glue:text}`cheb_bound_holds_sir:.2g` (SIR). This is a theorem; a ratio above 1 would
# mean a bug (for SIR, or an M(ρ) that missed the worst θ). The bound is far from tight:
# it holds uniformly over the whole box and over the whole interval, while most sampled
# predictions are much smoother than the worst one; for the enzyme, seven of its 11
# substrate values crowd into [0.0625, 0.25], next to the poles, while the bound controls
# the approximation on all of [0.0625, 4].

# %%
for key, f in fits.items():
    claim(f"cheb_bound_holds_{key}", f.ratio, "<=", 1.0,
          ref="Quinn et al. 2019: the Chebyshev bound on the widths",
          detail=f"max over {f.n_checked} degrees n of R_(n+1)/B_n, {MODELS[key]}"
                 + (" (M over box corners + sampled θ)" if key == "sir" else ""))
for key, f in fits.items():
    glue_values({f"ch02-{key}-r2": f.r2, f"ch02-{key}-r2pow": f.r2_power})
    claim(f"cheb_geometric_{key}", f.r2 - f.r2_power, ">", 0,
          ref="Quinn et al. 2019: widths decay geometrically (hyper-ribbon)",
          detail=f"R² of log σ_k linear in k minus R² of log σ_k linear in log k (a power "
                 f"law), k = 1..{N_FIT}: {f.r2:.4f} − {f.r2_power:.4f}; "
                 f"ρ_fit = {f.rho_fit:.3g}")
claim("cheb_span_exp", span_exp, ">=", 4.0,
      ref="Quinn et al. 2019: exponential model widths span many decades",
      detail=f"log10(σ_1/σ_{N_FIT}), exponentials, Λ·T = {exp_lambda_t:g}")

# %%
record_spectrum("ch02-widths", W["exp"].sigma, "PCA widths of the exponential-decay manifold",
                "ODE (sum of exponentials)")

# %% [markdown]
# A high R² of a straight line through log σ_k does not by itself make the widths
# geometric: a pure power law σ_k ∝ k^-p over k = 1..8 scores R² = 0.92 on that line.
# So the claim `cheb_geometric` asks that the geometric fit (log σ_k linear in k) beat the
# power-law fit (log σ_k linear in log k) on the same widths. It does for all three
# models over the first {glue:text}`ch02-nfit` directions: R² = {glue:text}`ch02-exp-r2:.4f`
# against {glue:text}`ch02-exp-r2pow:.4f` (exponentials), {glue:text}`ch02-enzyme-r2:.4f`
# against {glue:text}`ch02-enzyme-r2pow:.4f` (enzyme) and {glue:text}`ch02-sir-r2:.4f`
# against {glue:text}`ch02-sir-r2pow:.4f` (SIR), each width
# smaller than the previous by a factor ρ_fit ≈ {glue:text}`ch02-exp-rhofit:.3g`
# (exponentials), {glue:text}`ch02-enzyme-rhofit:.3g` (enzyme) and
# {glue:text}`ch02-sir-rhofit:.3g` (SIR). The bound's optimal ellipse at n = 7 has
# ρ = {glue:text}`ch02-exp-rhoopt:.3g`, {glue:text}`ch02-enzyme-rhoopt:.3g` and
# {glue:text}`ch02-sir-rhoopt:.3g`: the bound guarantees a slower decay than the one
# observed. The first {glue:text}`ch02-nfit` widths of the exponential model span
# {glue:text}`cheb_span_exp:.3g` decades.
#
# ## Chebyshev coefficients of individual predictions
#
# The bound on the manifold comes from a bound on each prediction: |c_k(θ)| ≤ 2M(ρ)ρ^-k
# for every θ, minimised over ρ, and so does the sup-norm error of each degree-n
# interpolant, ‖y − p_n‖_∞ ≤ 4M(ρ)ρ^-n/(ρ − 1). Both are checked prediction by
# prediction: unlike the bound on the widths, which holds with a large margin, these are
# nearly attained, so an error in M(ρ) would show. We interpolate
# {glue:text}`ch02-ncheb` sampled predictions of each model at {glue:text}`ch02-chebdeg` + 1
# Chebyshev points of their interval for the coefficients, and at n + 1 points for every
# n ≤ {glue:text}`ch02-chebdeg` for the interpolation error (sup norm over 1001 points),
# skipping degrees whose bound float64 cannot resolve.

# %%
glue("ch02-nfit", N_FIT, display=False)
glue("ch02-ncheb", n_cheb_samples, display=False)
glue("ch02-chebdeg", cheb_degree, display=False)
s_cheb = cheb_points(cheb_degree)
sub = {k: theta[k][:n_cheb_samples] for k in MODELS}
predict = {  # the sampled predictions at any times t of their interval
    "exp": lambda t: exp_decay(sub["exp"], t),
    "enzyme": lambda t: enzyme_rate(sub["enzyme"], t),
    "sir": lambda t: sir_solve(sub["sir"], t, sir_max_step),
}
coef = {k: cheb_coefficients(predict[k](from_unit(s_cheb, *interval[k]))) for k in MODELS}
kk = np.arange(cheb_degree + 1)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
for ax, key in zip(axes, MODELS, strict=True):
    ax.semilogy(kk, np.abs(coef[key][:40]).T, ".", ms=2, color="C0", alpha=0.3)
    ax.semilogy(kk, coefficient_bound(*M[key], kk), "--", color="C3",
                label="min over ρ of 2M(ρ)ρ^-k")
    ax.set(title=MODELS[key], xlabel="Chebyshev degree k", ylim=(1e-18, 1e2))
axes[0].set_ylabel("|c_k| of sampled predictions")
axes[0].legend(fontsize=8)
glue_figure("ch02-coefficients", fig)
eps = np.finfo(float).eps
for key in MODELS:
    floor = 1e3 * eps * np.abs(coef[key]).max()  # round-off of coefficients of that size
    ratio, n_k = coefficient_ratio(coef[key], *M[key], floor)
    claim(f"cheb_coef_bound_{key}", ratio, "<=", 1.0,
          ref="Quinn et al. 2019: |c_k(θ)| ≤ 2M(ρ)ρ^-k for every θ",
          detail=f"max over {len(coef[key])} sampled θ and {n_k} degrees k of "
                 f"|c_k(θ)|/min_ρ 2M(ρ)ρ^-k, {MODELS[key]}"
                 + (" (M over box corners + sampled θ)" if key == "sir" else ""))
    ratio, n_n = interpolation_ratio(predict[key], *interval[key], *M[key],
                                     np.arange(1, cheb_degree + 1), floor)
    claim(f"cheb_interp_bound_{key}", ratio, "<=", 1.0,
          ref="Quinn et al. 2019: ‖y − p_n‖_∞ ≤ 4M(ρ)ρ^-n/(ρ − 1) for every θ",
          detail=f"max over {len(coef[key])} sampled θ and {n_n} degrees n of the sup-norm "
                 f"interpolation error over min_ρ 4M(ρ)ρ^-n/(ρ − 1), {MODELS[key]}")

# %% [markdown]
# ```{glue:figure} ch02-coefficients
# :name: fig-ch02-coefficients
#
# Absolute Chebyshev coefficients |c_k| of 40 sampled predictions of each model (dots;
# dimensionless for the exponentials and SIR, rate units for the enzyme) against the
# degree k, with the bound min over ρ of 2M(ρ)ρ^-k (dashed). The exponential model's
# coefficients fall faster than geometrically (y is entire); the enzyme's and SIR's
# geometrically, at rates set by the nearest complex singularity of each prediction,
# until they reach round-off (about 1e-16).
# ```
#
# No sampled prediction exceeds either bound: the largest |c_k|/bound is
# {glue:text}`cheb_coef_bound_exp:.2g` (exponentials), {glue:text}`cheb_coef_bound_enzyme:.2g`
# (enzyme) and {glue:text}`cheb_coef_bound_sir:.2g` (SIR), and the largest sup-norm
# interpolation error over its bound {glue:text}`cheb_interp_bound_exp:.2g`,
# {glue:text}`cheb_interp_bound_enzyme:.2g` and {glue:text}`cheb_interp_bound_sir:.2g`.
#
# ## The ribbon
#
# Projected on its first three principal directions, the sampled manifold of the
# exponential model is a ribbon: long (range {glue:text}`ch02-range1:.2g` along the first
# direction), narrow ({glue:text}`ch02-range2:.2g`) and thin ({glue:text}`ch02-range3:.2g`).

# %%
P = W["exp"].projections[:3000, :3]
r = W["exp"].ranges
fig = plt.figure(figsize=(8, 6))
ax = fig.add_subplot(projection="3d")
sc = ax.scatter(P[:, 0], P[:, 1], P[:, 2], s=1, cmap="viridis",
                c=np.log10(theta["exp"][:3000]).mean(axis=1))
ax.set_box_aspect((1, 0.5, 0.25))
ax.view_init(35, -65)
ax.tick_params(labelsize=7)
ax.set_xlabel(f"PC 1 (range {r[0]:.2g})")
ax.set_ylabel(f"PC 2 (range {r[1]:.2g})", labelpad=8)
ax.set_zlabel(f"PC 3 (range {r[2]:.2g})", labelpad=12)
fig.colorbar(sc, ax=ax, shrink=0.5, pad=0.0, orientation="horizontal",
             label="mean log10 of the rates θᵢ·T")
glue_figure("ch02-ribbon", fig, tight=False)
for i in range(3):
    glue(f"ch02-range{i + 1}", float(r[i]), display=False)

# %% [markdown]
# ```{glue:figure} ch02-ribbon
# :name: fig-ch02-ribbon
#
# Sampled predictions of the exponential model (3000 of {glue:text}`ch02-n`) projected
# on the first three principal directions (units of y). The axes are *not* drawn to
# scale: each is several times shorter than the previous one, as the ranges in the labels
# say.
# Colour: the mean log10 of the sampled rates; slow decays crowd into the narrow end.
# ```
#
# ## Smoothness sets the ribbon
#
# The exponential model's smoothness on [0, T] is set by Λ·T: the larger it is, the faster
# y can vary and the faster M(ρ) grows. We repeat the widths for Λ·T =
# {glue:text}`ch02-sweep`, with the same seed and the rate floor as a fraction of Λ.

# %%
sweep = []
for lam_t in exp_sweep:
    th = sample_box(np.full(exp_n_rates, exp_rate_floor * lam_t),
                    np.full(exp_n_rates, lam_t), n_samples, rng_seeds["exp"])
    sweep.append(ribbon_fit(exp_decay(th, t_exp), rho_exp, exp_decay_M(rho_exp, lam_t),
                            n_fit=N_FIT))
rho_fits = np.array([f.rho_fit for f in sweep])
rho_opts = np.array([f.rho_opt for f in sweep])
glue("ch02-sweep", ", ".join(f"{v:g}" for v in exp_sweep), display=False)
glue("ch02-sweep-rhofit", ", ".join(f"{v:.3g}" for v in rho_fits), display=False)
glue("ch02-sweep-rhoopt", ", ".join(f"{v:.3g}" for v in rho_opts), display=False)

fig, ax = plt.subplots(figsize=(6, 4))
for i, (lam_t, f) in enumerate(zip(exp_sweep, sweep, strict=True)):
    k = np.arange(1, N_FIT + 1)
    ax.semilogy(k, f.widths.sigma[:N_FIT], "o", color=f"C{i}",
                label=f"Λ·T = {lam_t:g}: ρ_fit = {f.rho_fit:.3g}")
    logs = np.log(f.widths.sigma[:N_FIT])  # the least-squares line of geometric_fit
    ax.semilogy(k, np.exp(logs.mean() - (k - k.mean()) * np.log(f.rho_fit)), "-",
                color=f"C{i}", lw=0.8)
ax.set(xlabel="principal direction k", ylabel="RMS width σ_k",
       title="sum of exponentials: widths and geometric fits")
ax.legend(fontsize=8)
glue_figure("ch02-sweep-fig", fig)

steps = rho_fits[:-1] / rho_fits[1:]
claim("cheb_smoothness_controls_rate", float(steps.min()) if len(steps) else float("nan"),
      ">", 1.0, ref="Quinn et al. 2019: smoothness controls the ribbon's rate",
      detail="min over successive Λ·T of ρ_fit(Λ·T_i)/ρ_fit(Λ·T_(i+1)); ρ_fit = "
             + ", ".join(f"{v:.3g}" for v in rho_fits))

# %% [markdown]
# ```{glue:figure} ch02-sweep-fig
# :name: fig-ch02-sweep
#
# The first {glue:text}`ch02-nfit` RMS widths of the exponential model (dimensionless) for
# Λ·T = {glue:text}`ch02-sweep`, with their geometric fits (lines): the rougher the model,
# the slower the decay.
# ```
#
# The fitted width ratio ρ_fit = {glue:text}`ch02-sweep-rhofit` decreases as Λ·T =
# {glue:text}`ch02-sweep` grows (the smallest step ratio is
# {glue:text}`cheb_smoothness_controls_rate:.3g` > 1), as does the bound's optimal
# ellipse at n = 7, ρ = {glue:text}`ch02-sweep-rhoopt`.
#
# ## Where this differs from the paper
#
# - The parameter boxes, time windows and sample sizes are ours, not the paper's: rates
#   log-uniform in [{glue:text}`ch02-exp-floor` Λ, Λ] rather than in [0, Λ] (the bound is
#   computed for the whole [0, Λ], so it still applies); by default an enzyme box of a
#   factor of about three around the classic fit, and an SIR box of epidemics with
#   R₀ = β/γ between 1 and 6. The `ci` profile samples {glue:text}`ch02-n` parameter sets
#   per model, the `paper` profile 10⁵.
# - For SIR, M(ρ) comes from complex-time integration maximised over the box's corners
#   and a sample of θ — an estimate, not a bound over the whole box — and an ellipse is
#   used only while the continuation passes the checks above.
# - Instead of chebfun we use `numpy.polynomial.chebyshev`, interpolating at Chebyshev
#   points of the first kind.

# %%
print(f"chapter 2 computed in {time.perf_counter() - t_start:.1f} s")
