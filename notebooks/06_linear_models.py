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
# # Linear models: an analytical picture of sloppy training trajectories
#
# Chapter 4 {cite}`mao2024training` found that the prediction trajectories of many deep
# networks, trained from different initialisations, lie on a low-dimensional,
# hyper-ribbon-like manifold when embedded with intensive PCA {cite}`quinn2019inpca`.
# {cite:t}`mao2025linear` ask when and why this happens, using linear models, whose
# gradient-descent trajectories can be written down exactly. Three things control the
# geometry: (i) how fast the eigenvalues of the input correlation matrix decay, (ii) the
# scale of the targets relative to the weights at initialisation, and (iii) the number of
# gradient-descent steps.
#
# **What is ours.** The paper's own formulas were not available to us. The closed form
# below is the standard solution of gradient descent on a quadratic loss; the "mode-sum"
# prediction of the explained stress (the Euclidean, small-logit limit of the
# Bhattacharyya distance) and the way we place the phase boundary are our own
# derivation, checked here against the measured InPCA.
#
# **The model.** Inputs x ∈ ℝᵈ are Gaussian with correlation Σ = U diag(λ₁ ≥ … ≥ λ_d)Uᵀ,
# λᵢ ∝ e^{−c i} (exponential) or λᵢ ∝ i^{−α} (power law), normalised to trace 1. A
# multi-output linear model with weights W (d × C) gives logits xᵀW and class
# probabilities softmax(xᵀW). The targets are the logits of a teacher, Y = XW*, with
# entries of W* drawn N(0, s*²); initial weights W₀ have entries N(0, s₀²). Full-batch
# gradient descent with step η on L = ‖XW − Y‖²/2n has gradient Σ̂(W − W*), Σ̂ = XᵀX/n, so
#
# $$ W_t = W^* + (I - \eta\hat\Sigma)^t (W_0 - W^*), \qquad
#    XW_t = XW^* + \sum_k (1-\eta\hat\lambda_k)^t \,(X u_k)\,\big(u_k^\top (W_0 - W^*)\big). $$
#
# Every logit is a sum of exponentials in t with rates −log(1 − ηλ̂ₖ) — the sloppy sum of
# exponentials of chapter 2. The columns X uₖ are orthogonal with squared norm nλ̂ₖ.
#
# **The mode-sum prediction (ours).** An ensemble of R initialisations observed at
# checkpoints t ∈ 𝒯 is a cloud of points; point (i, t) has *mode coordinates*
# zₖ꜀ = √λ̂ₖ (1 − ηλ̂ₖ)ᵗ aᵢₖ꜀ with amplitudes aᵢₖ = uₖᵀ(W₀ⁱ − W*) (centred over classes).
# Near the uniform prediction d_B is ⅛ of the Fisher metric, and for a softmax the Fisher
# metric is the class-centred squared logit difference divided by C; so d_B is a squared
# Euclidean distance in z, InPCA reduces to classical scaling, and the InPCA eigenvalues
# are proportional to the eigenvalues μ of the covariance of z. The predicted explained
# stress is ES_k = 1 − √(1 − Σ_{i≤k} μᵢ²/Σ μᵢ²). The width of the k-th mode is the spread
# of (1 − ηλ̂ₖ)ᵗ aᵢₖ over the ensemble: fast spectral decay makes most widths vanish
# (thin ribbon); a large init scale s₀ spreads the cloud over all the modes the
# trajectories have not yet forgotten (thick); the teacher alone traces one curve, the
# mean trajectory, which is itself a sum of exponentials (a ribbon).

# %% tags=["parameters"]
profile: str = "ci"  # choices: smoke, ci, paper | the run profile (the runner sets it)
seed: int = 0  # range: [0, 4294967295] | random seed of inputs, teachers, initialisations
d: int = 30  # range: [2, 2000] | input dimension
n: int = 200  # range: [2, 100000] | training samples (also the samples d_B is taken over)
n_classes: int = 3  # range: [2, 100] | outputs of the linear model (softmax classes)
n_init: int = 16  # range: [1, 10000] | initialisations per ensemble
n_ckpt: int = 12  # range: [2, 1000] | checkpoints per trajectory (0 and log-spaced)
logit_scale: float = 1.0  # range: (0, 100] | s*, teacher scale (teacher logits have std ~ s*)
eta_frac: float = 0.5  # range: (0, 2) | step size eta as a fraction of 1 / lambda_max
rates: list[float] = [0.05, 0.1, 0.2, 0.4, 0.8]  # range: (0, 10] | increasing | decay rates c
ratios: list[float] = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]  # range: (0, 1e3] | increasing | s0/s*
T_list: list[int] = [10, 100, 1000]  # range: [1, 1000000] | increasing | step counts T
steps_T: list[int] = [3, 10, 30, 100, 300, 1000, 3000]  # range: [1, 1e6] | increasing | T, sec. 4
power_alphas: list[float] = [0.5, 1.0, 2.0, 4.0]  # range: (0, 20] | increasing | α
threshold: float = 0.9  # range: (0, 1) | ES_3 threshold of the ribbon phase
closed_form_steps: int = 200  # range: [1, 100000] | explicit GD steps compared with the closed form
sgd_batch: int = 20  # range: [1, 100000] | SGD mini-batch size
sgd_runs: int = 16  # range: [2, 10000] | SGD runs from one initialisation
sgd_T: int = 300  # range: [1, 100000] | SGD steps
kernel_bandwidths: list[float] = [0.3, 1.0, 3.0]  # range: (0, 100] | increasing | RBF bandwidths
kernel_features: int = 60  # range: [2, 10000] | random Fourier features
image_set: str = "fashion-mnist"  # choices: fashion-mnist, mnist | images of the bridge to ch. 4
image_train: int = 2000  # range: [0, 60000] | training images (0 skips the bridge)
image_eval: int = 300  # range: [10, 10000] | test images the predictions are taken on
image_pool: int = 2  # range: [1, 4] | average pooling of the 28x28 images
image_seeds: int = 4  # range: [1, 100] | networks per family (linear, MLP)
image_hidden: int = 32  # range: [1, 4096] | hidden units of the MLPs
image_epochs: int = 3  # range: [1, 100] | training epochs of the image models

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from hyperribbon.compendium import (
    claim,
    glue,
    glue_3d,
    glue_figure,
    glue_values,
    record_spectrum,
)
from hyperribbon.inpca import bhattacharyya, bhattacharyya_paired, inpca
from hyperribbon.linear import (
    best_scale_rule,
    boundary_agreement,
    check_linear_params,
    checkpoints,
    empirical_modes,
    ensemble_probabilities,
    gaussian_inputs,
    gd_closed_form,
    gd_explicit,
    image_trajectories,
    init_weights,
    k_at,
    kernel_ensembles,
    linear_basis_stress,
    mode_contributions,
    phase_diagram,
    sgd_trajectories,
    sgd_tube,
    softmax,
    spectrum,
    teacher,
)

VERDICT = {True: "reproduced", False: "not reproduced"}  # claim() returns whether it holds

check_linear_params(rates=rates, ratios=ratios, T_list=T_list, d=d, n=n, n_init=n_init,
                    n_ckpt=n_ckpt, sgd_batch=sgd_batch, eta_frac=eta_frac,
                    image_train=image_train, image_eval=image_eval, image_set=image_set)
t_start = time.perf_counter()
K = n_init * n_ckpt  # explained stress is tracked up to the ensemble's dimension
glue_values({
    "ch06-d": d,
    "ch06-n": n,
    "ch06-C": n_classes,
    "ch06-R": n_init,
    "ch06-nckpt": n_ckpt,
    "ch06-eta": eta_frac,
    "ch06-sstar": logit_scale,
    "ch06-thr": threshold,
    "ch06-K": K,
})

# %% [markdown]
# ## Closed form, explicit iterations and modes
#
# We draw n = {glue:text}`ch06-n` inputs in d = {glue:text}`ch06-d` dimensions, a teacher
# with C = {glue:text}`ch06-C` outputs and s* = {glue:text}`ch06-sstar`, and run
# gradient descent with η = {glue:text}`ch06-eta`/λ̂_max both explicitly and in closed
# form (float64), and rebuild the logits from the mode sum.

# %%
c_demo = rates[len(rates) // 2]
X = gaussian_inputs(n, spectrum("exp", c_demo, d), seed)
lam_hat, U_hat = empirical_modes(X)
eta = eta_frac / lam_hat[0]
Wstar = teacher(d, n_classes, logit_scale, seed + 1)
W0 = init_weights(1, d, n_classes, logit_scale, seed + 2)[0]
W_exp = gd_explicit(X, X @ Wstar, W0, eta, closed_form_steps)
all_steps = np.arange(closed_form_steps + 1)
W_cf = gd_closed_form(X, W0, Wstar, eta, all_steps)
cf_err = float(np.abs(W_cf - W_exp).max())
modes = mode_contributions(X, W0, Wstar, eta, all_steps)
mode_err = float(np.abs(X @ Wstar + modes.sum(0) - np.einsum("nd,tdc->tnc", X, W_exp)).max())
glue("ch06-mode-err", mode_err, display=False)
glue("ch06-cf-steps", closed_form_steps, display=False)
claim("lin_closed_form", cf_err, "<=", 1e-8, "brief, closed-form GD solution",
      detail=f"max |W_t(closed form) - W_t(explicit)| over {closed_form_steps} steps, float64")

# %% [markdown]
# Over {glue:text}`ch06-cf-steps` steps the closed form and the explicit iteration agree
# to {glue:text}`lin_closed_form:.2g` (largest absolute difference of any weight), and the
# mode sum rebuilds the logits to {glue:text}`ch06-mode-err:.2g`.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
ax = axes[0]
for c in rates:
    ax.semilogy(np.arange(1, d + 1), spectrum("exp", c, d), "-", label=f"exp, c = {c:g}")
for a in power_alphas:
    ax.semilogy(np.arange(1, d + 1), spectrum("power", a, d), "--", label=f"power, α = {a:g}")
ax.set_xlabel("index i")
ax.set_ylabel("eigenvalue λᵢ of Σ (trace 1)")
ax.set_title("input spectra")
ax.legend(fontsize=6, ncol=2)
W0s_demo = init_weights(6, d, n_classes, logit_scale, seed + 3)
t_dense = np.unique(np.round(np.geomspace(1, 1000, 60)).astype(int))
for ax, ratio in zip(axes[1:], [0.1, 10.0], strict=True):
    Wt = gd_closed_form(X, W0s_demo * ratio, Wstar, eta, t_dense)
    Pt = softmax(np.einsum("d,rtdc->rtc", X[0], Wt))
    for r in range(len(W0s_demo)):
        ax.semilogx(t_dense, Pt[r, :, 0], color=f"C{r}")
    ax.axhline(softmax(X[0] @ Wstar)[0], color="k", ls=":", label="teacher")
    ax.set_xlabel("gradient-descent step t")
    ax.set_ylabel("p(class 1) on sample 1")
    ax.set_title(f"trajectories, s₀/s* = {ratio:g}, c = {c_demo:g}")
    ax.legend(fontsize=7)
glue_figure("ch06-spectra", fig)

# %% [markdown]
# ```{glue:figure} ch06-spectra
# :name: fig-ch06-spectra
#
# Left: eigenvalues of the input correlation Σ (normalised to trace 1) for the
# exponential decay rates c and power-law exponents α used here. Middle and right: the
# predicted probability of class 1 on one training sample along gradient descent, for six
# initialisations, with small (middle) and large (right) initial weights relative to the
# teacher; dotted: the teacher's probability.
# ```
#
# ## A ribbon and a non-ribbon
#
# An ensemble is R = {glue:text}`ch06-R` initialisations, each observed at
# {glue:text}`ch06-nckpt` checkpoints (step 0 and log-spaced steps up to T). Its
# Bhattacharyya distance matrix (over the n training samples) is embedded by InPCA.

# %%
steps_demo = checkpoints(max(T_list), n_ckpt)
W0_demo = init_weights(n_init, d, n_classes, 1.0, seed + 4)
demo = {}
for ratio in (0.1, 10.0):
    P = ensemble_probabilities(X, W0_demo * ratio * logit_scale, Wstar, eta, steps_demo)
    demo[ratio] = inpca(bhattacharyya(P, threads=1), K, solver="full")
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), subplot_kw={"projection": "3d"})
for ax, (ratio, res) in zip(axes, demo.items(), strict=True):
    xyz = res.coords[:, :3].reshape(n_init, len(steps_demo), 3)
    for r in range(n_init):
        ax.plot(*xyz[r].T, "-", lw=0.8)
        ax.scatter(*xyz[r, -1], s=8, color="k")
    lab = [f"x{j + 1}" + (" (time-like)" if res.eigenvalues[j] < 0 else "") for j in range(3)]
    ax.set_xlabel(lab[0])
    ax.set_ylabel(lab[1])
    ax.set_zlabel(lab[2])
    ax.set_title(f"s₀/s* = {ratio:g}: ES₃ = {res.explained_stress[2]:.2f}, "
                 f"k90 = {k_at(res.explained_stress)}")
glue_figure("ch06-ribbons", fig)
glue("ch06-es3-small", float(demo[0.1].explained_stress[2]), display=False)
glue("ch06-es3-large", float(demo[10.0].explained_stress[2]), display=False)

# %%
small = demo[0.1]
glue_3d("ch06-ribbons-3d", small.coords[:, :3].reshape(n_init, len(steps_demo), 3),
        axis_labels=[f"x{j + 1}" + (" (time-like)" if small.eigenvalues[j] < 0 else "")
                     for j in range(3)])
record_spectrum("ch06-inpca", np.abs(small.eigenvalues), "InPCA |eigenvalues| of the "
                "trajectories, s₀/s* = 0.1", "linear softmax model")

# %% [markdown]
# ```{glue:figure} ch06-ribbons
# :name: fig-ch06-ribbons
#
# InPCA (first three axes, dimensionless; d_B in nats) of an ensemble of gradient-descent
# trajectories of the linear softmax model, exponential spectrum with the middle decay
# rate, T = the largest step count. Left: small initial weights (s₀/s* = 0.1), a thin
# ribbon: all trajectories follow nearly the same curve toward the teacher (black dots:
# the last checkpoints). Right: large initial weights (s₀/s* = 10): the trajectories start
# far apart in many directions and the cloud is thick.
# ```
#
# ```{glue:figure} ch06-ribbons-3d
# :name: fig-ch06-ribbons-3d
#
# The thin ribbon of {numref}`fig-ch06-ribbons` (left, s₀/s* = 0.1) in three dimensions:
# drag to turn it, scroll to zoom (lines: the trajectories; dots: the last checkpoints).
# ```
#
# With small initial weights the top three InPCA dimensions explain
# {glue:text}`ch06-es3-small:.3f` of the stress; with large ones only
# {glue:text}`ch06-es3-large:.3f`.
#
# ## The phase diagram
#
# We repeat this over a grid of decay rates c and scale ratios s₀/s*, for several step
# counts T, measure ES₃ (and k90, the number of InPCA dimensions that reach 90% explained
# stress) and compare with the mode-sum prediction computed from the same initialisations
# without any distance or softmax. A cell is in the *ribbon phase* when ES₃ ≥
# {glue:text}`ch06-thr`.

# %%
t0 = time.perf_counter()
pd_exp = phase_diagram("exp", rates, ratios, T_list, d=d, n=n, n_classes=n_classes,
                       n_init=n_init, n_ckpt=n_ckpt, logit_scale=logit_scale,
                       eta_frac=eta_frac, seed=seed, k=K)
es3, es3_pred = pd_exp.es[..., 2], pd_exp.es_expected[..., 2]
k90 = pd_exp.k90()
agree = boundary_agreement(es3, es3_pred, threshold)
rule_cut, rule_agree = best_scale_rule(es3, ratios, threshold)
glue("ch06-pd-time", time.perf_counter() - t0, display=False)
glue("ch06-pd-clamped", pd_exp.clamped, display=False)

fig, axes = plt.subplots(1, len(T_list), figsize=(4.2 * len(T_list), 3.8), squeeze=False)
for t, ax in enumerate(axes[0]):
    im = ax.pcolormesh(np.arange(len(ratios) + 1), np.arange(len(rates) + 1), es3[t],
                       vmin=0, vmax=1, cmap="viridis")
    ax.contour(np.arange(len(ratios)) + 0.5, np.arange(len(rates)) + 0.5, es3_pred[t],
               levels=[threshold], colors="w", linewidths=2)
    ax.contour(np.arange(len(ratios)) + 0.5, np.arange(len(rates)) + 0.5, es3[t],
               levels=[threshold], colors="r", linewidths=1, linestyles="--")
    ax.set_xticks(np.arange(len(ratios)) + 0.5, [f"{r:g}" for r in ratios], fontsize=7)
    ax.set_yticks(np.arange(len(rates)) + 0.5, [f"{c:g}" for c in rates])
    ax.set_xlabel("init-to-target scale s₀/s*")
    ax.set_ylabel("decay rate c")
    ax.set_title(f"T = {T_list[t]}: ES₃ (measured)")
fig.colorbar(im, ax=axes[0].tolist(), label="explained stress of 3 dimensions")
glue_figure("ch06-phase", fig, tight=False)

# %% [markdown]
# ```{glue:figure} ch06-phase
# :name: fig-ch06-phase
#
# Phase diagram: explained stress of the top three InPCA dimensions (colour) over the
# exponential decay rate c and the ratio s₀/s* of initial-weight to teacher scale, for
# three step counts T. Red dashed: the measured boundary ES₃ = 0.9; white: the boundary
# predicted by the analysis (the expected mode covariance over initial weights: no
# softmax, no d_B, no draw).
# ```
#
# The boundary predicted by the analysis alone — the mode sum averaged over initial
# weights, which never sees the ensemble's draws — puts {glue:text}`ch06-agree:.3f` of the
# {glue:text}`ch06-ncells` cells on the measured side of the threshold. That alone says
# little: the best rule with one parameter fitted to the measured cells, "ribbon iff
# s₀/s* ≤ {glue:text}`ch06-rule-cut`", scores {glue:text}`ch06-rule-agree:.3f`. The claim
# is that the analysis beats it (difference {glue:text}`lin_boundary:.3f`): it is
# {glue:text}`ch06-boundary-verdict`. The scale ratio is the dominant control:
# ES₃ ≥ {glue:text}`ch06-es3-min-small:.3f` in every cell with
# s₀/s* ≤ 0.1 and ≤ {glue:text}`ch06-es3-max-large:.3f` in every cell with s₀/s* ≥ 1;
# the boundary lies in between, where more steps raise ES₃. The cells the analysis puts
# on the wrong side are (T, c, s₀/s*): {glue:text}`ch06-boundary-miss`. The analysis
# holds where d_B is the Euclidean distance of the logits, near the uniform prediction;
# where the initial logits are large the softmax saturates and it need not. The clamp of
# the Bhattacharyya coefficient was hit
# {glue:text}`ch06-pd-clamped` times in the whole grid.

# %%
glue("ch06-ncells", int(es3.size), display=False)
glue("ch06-es3-min-small", float(es3[:, :, np.array(ratios) <= 0.1].min()), display=False)
glue("ch06-es3-max-large", float(es3[:, :, np.array(ratios) >= 1].max()), display=False)
glue_values({"ch06-agree": agree, "ch06-rule-cut": f"{rule_cut:g}",
             "ch06-rule-agree": rule_agree})
miss = zip(*np.nonzero((es3 >= threshold) != (es3_pred >= threshold)), strict=True)
glue("ch06-boundary-miss", "; ".join(f"({T_list[a]}, {rates[b]:g}, {ratios[e]:g})"
                                     for a, b, e in miss) or "none", display=False)
glue("ch06-boundary-verdict", VERDICT[claim(
    "lin_boundary", agree - rule_agree, ">", 0.0,
    "brief, phase diagram with analytic boundary",
    detail=f"fraction of the {es3.size} (T, c, s0/s*) cells where measured ES_3 and the "
           f"analytic one (expected mode covariance) fall on the same side of {threshold}, "
           "minus that of the best rule 'ribbon iff s0/s* <= r' fitted to the measured cells")],
    display=False)
i_fast, i_slow = int(np.argmax(rates)), int(np.argmin(rates))
big = [i for i, r in enumerate(ratios) if r >= 1]
gaps = k90[:, i_slow, big] - k90[:, i_fast, big]  # (T, ratios >= 1)
glue("ch06-decay-verdict", VERDICT[claim(
    "lin_decay_controls", int(gaps.min()), ">", 0, "brief (Mao et al. 2025), decay rate",
    detail="min over T and s0/s* >= 1 of k90(slowest c) - k90(fastest c)")], display=False)
drops = np.diff(es3, axis=-1)  # (T, c, successive ratios)
glue("ch06-scale-verdict", VERDICT[claim(
    "lin_scale_controls", float(drops.max()), "<", 0.0, "brief (Mao et al. 2025), scale",
    detail="max over T, c and successive s0/s* of the whole grid (" +
           ", ".join(f"{r:g}" for r in ratios) + ") of the change of ES_3")],
    display=False)
glue("ch06-contrast-verdict", VERDICT[claim(
    "lin_scale_contrast", float((es3[..., 0] - es3[..., -1]).min()), ">", 0.0,
    "brief (Mao et al. 2025), phase contrast of the scale ratio",
    detail=f"min over T and c of ES_3(s0/s* = {ratios[0]:g}) - ES_3(s0/s* = {ratios[-1]:g}) "
           "(the contrast between the two phases, not the monotone fall)")],
    display=False)
rises = [(T_list[a], rates[b], ratios[e], ratios[e + 1])
         for a, b, e in zip(*np.nonzero(drops >= 0), strict=True)]
glue("ch06-n-rises", len(rises), display=False)
glue("ch06-rises", "; ".join(f"T={a}, c={b:g}: {e:g}→{f:g}" for a, b, e, f in rises) or
     "none", display=False)

# %% [markdown]
# **Decay rate.** The claim — at every s₀/s* ≥ 1 and every T, the fastest decay needs
# fewer InPCA dimensions than the slowest — is {glue:text}`ch06-decay-verdict` (smallest
# gap in k90: {glue:text}`lin_decay_controls`).
# ES₃ alone is not monotone in c — the middle rates sit lowest at intermediate
# ratios — which is why k90 is the measure.
#
# **Scale.** The brief's statement — ES₃ falls as s₀/s* grows, at every decay rate — is
# judged on the whole grid of ratios: largest change between successive ratios
# {glue:text}`lin_scale_controls:.3f`, so the claim is
# {glue:text}`ch06-scale-verdict`. The steps where ES₃ did not fall were
# ({glue:text}`ch06-n-rises`): {glue:text}`ch06-rises`. Where the initial logits are large
# the softmax saturates: once s₀ ≫ s* the teacher no longer matters, the cloud is the
# (scale-free) spread of the initialisations, and ES₃ stops falling. The phase contrast
# that the analysis predicts — a thin ribbon at the smallest ratio, a thick cloud at the
# largest — is a separate claim, `lin_scale_contrast`: the smallest difference of ES₃
# between the two ends of the grid over all c and T is
# {glue:text}`lin_scale_contrast:.3f` (the claim is {glue:text}`ch06-contrast-verdict`).
#
# ## Explained stress and the number of steps

# %%
ratio_one = ratios.index(1.0) if 1.0 in ratios else 0
pd_steps = phase_diagram("exp", rates, [1.0], steps_T, d=d, n=n, n_classes=n_classes,
                         n_init=n_init, n_ckpt=n_ckpt, logit_scale=logit_scale,
                         eta_frac=eta_frac, seed=seed, k=K)
ks, ks_pred = pd_steps.k90()[:, :, 0], pd_steps.k90(predicted=True)[:, :, 0]  # (T, c)
steps_gap = int(np.abs(ks - ks_pred).max())
glue("ch06-steps-verdict", VERDICT[claim(
    "lin_steps_controls", steps_gap, "<=", 1, "brief (Mao et al. 2025), number of steps",
    detail=f"max over T and c of |k90 measured - k90 mode-sum| at s0/s* = 1 (k90 counted up "
           f"to the ensemble's dimension, {K})")], display=False)
slope = np.polyfit(np.log10(steps_T), ks.mean(1), 1)[0]
glue("ch06-steps-slope", float(slope), display=False)
glue("ch06-steps-trend", "falls" if slope < 0 else "rises", display=False)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for j, c in enumerate(rates):
    axes[0].semilogx(steps_T, ks[:, j], "o-", color=f"C{j}", label=f"c = {c:g}")
    axes[0].semilogx(steps_T, ks_pred[:, j], "x--", color=f"C{j}")
    axes[1].semilogx(steps_T, pd_steps.es[:, j, 0, 2], "o-", color=f"C{j}", label=f"c = {c:g}")
    axes[1].semilogx(steps_T, pd_steps.es_pred[:, j, 0, 2], "x--", color=f"C{j}")
axes[0].set_ylabel("k90 (InPCA dimensions for 90% stress)")
axes[1].set_ylabel("ES₃")
for ax in axes:
    ax.set_xlabel("number of gradient-descent steps T")
    ax.legend(fontsize=7)
axes[0].set_title("o measured (d_B, InPCA), x mode sum; s₀/s* = 1")
glue_figure("ch06-steps", fig)

# %% [markdown]
# ```{glue:figure} ch06-steps
# :name: fig-ch06-steps
#
# Dimension of the trajectory ensemble against the number of steps T (checkpoints
# log-spaced up to T), at s₀/s* = 1, for each decay rate. Left: k90; right: ES₃. Circles:
# measured with d_B and InPCA; crosses: the mode-sum prediction.
# ```
#
# Measured and predicted k90 differ by at most {glue:text}`lin_steps_controls` dimension
# over all T and c (k90 counted up to the ensemble's dimension,
# {glue:text}`ch06-K`): the claim is {glue:text}`ch06-steps-verdict`. With log-spaced
# checkpoints k90 {glue:text}`ch06-steps-trend`
# slowly as T grows (mean slope {glue:text}`ch06-steps-slope:.2f` per decade of T): more
# steps add late checkpoints near the teacher, where all trajectories have converged
# along the fast modes, and the spread along the slow modes is shared by fewer of the
# checkpoints.
#
# ## Power-law spectra
#
# The same comparison with λᵢ ∝ i^{−α} at the largest T (not a claim).

# %%
pd_pow = phase_diagram("power", power_alphas, ratios, [max(T_list)], d=d, n=n,
                       n_classes=n_classes, n_init=n_init, n_ckpt=n_ckpt,
                       logit_scale=logit_scale, eta_frac=eta_frac, seed=seed, k=K)
agree_pow = boundary_agreement(pd_pow.es[..., 2], pd_pow.es_pred[..., 2], threshold)
glue("ch06-agree-pow", agree_pow, display=False)
glue("ch06-k90-pow", ", ".join(
    f"α={a:g}: {int(pd_pow.k90()[0, j, ratio_one])}" for j, a in enumerate(power_alphas)),
    display=False)

# %% [markdown]
# For power-law spectra the mode sum places {glue:text}`ch06-agree-pow:.2f` of the cells
# on the measured side of the threshold; at s₀/s* = 1 the measured k90 is
# {glue:text}`ch06-k90-pow` — faster decay, fewer dimensions, as for the exponentials.
#
# ## Extensions: kernels and stochastic gradient descent
#
# **Kernel regression.** A kernel machine trained by gradient descent is a linear model
# in its feature space; with random Fourier features φ(a) of an RBF kernel
# (φ(a)·φ(b) ≈ exp(−|a − b|²/2ℓ²)), the nonzero eigenvalues of Φ̂ᵀΦ̂/n are those of the
# kernel matrix K/n, so the kernel's spectrum plays the role of Σ. We draw n points a in
# ℝ² (standard Gaussian), use {glue:text}`ch06-nfeat` features for several bandwidths ℓ,
# and run the same ensembles (T = the largest step count) over s₀/s*.
#
# **SGD.** For the linear model the mini-batch gradient is an unbiased estimate of the
# full gradient and is linear in W, so the *mean* SGD weights follow the GD formula
# exactly; we run {glue:text}`ch06-sgd-runs` SGD runs (batch {glue:text}`ch06-sgd-batch`)
# from one initialisation and compare the trajectory of the mean weights with GD.

# %%
glue("ch06-nfeat", kernel_features, display=False)
glue("ch06-sgd-runs", sgd_runs, display=False)
glue("ch06-sgd-batch", sgd_batch, display=False)
kern = kernel_ensembles(kernel_bandwidths, ratios, n=n, n_features=kernel_features,
                        n_classes=n_classes, n_init=n_init, n_ckpt=n_ckpt, T=max(T_list),
                        logit_scale=logit_scale, eta_frac=eta_frac, seed=seed, k=K)
glue("ch06-rff-err", float(kern.rff_error.max()), display=False)

sgd_steps = checkpoints(sgd_T, n_ckpt)
W0_sgd = init_weights(1, d, n_classes, logit_scale, seed + 11)[0]
W_sgd = sgd_trajectories(X, X @ Wstar, W0_sgd, eta, sgd_steps, sgd_batch, sgd_runs,
                         seed + 12)  # (R, T, d, C)
W_gd = gd_closed_form(X, W0_sgd, Wstar, eta, sgd_steps)  # (T, d, C)
P_gd = softmax(np.einsum("nd,tdc->tnc", X, W_gd))
P_runs = softmax(np.einsum("nd,rtdc->rtnc", X, W_sgd))
d_runs = np.stack([bhattacharyya_paired(P_runs[r], P_gd) for r in range(sgd_runs)])
tube = sgd_tube(X, W0_sgd, Wstar, eta, sgd_steps, sgd_batch)  # predicted mean d_B
tube_err = np.abs(np.log2(d_runs[:, 1:].mean(0) / tube[1:]))
glue("ch06-sgd-verdict", VERDICT[claim(
    "lin_sgd_tracks_gd", float(tube_err.max()), "<=", 1.0,
    "brief (Mao et al. 2025), SGD extension",
    detail=f"max over the checkpoints t >= 1 of |log2| of the mean over {sgd_runs} runs of "
           "d_B(SGD run, GD) at equal step over its prediction (exact second moments of "
           "the SGD error, d_B to second order): the tube's width within a factor 2")],
    display=False)
glue("ch06-sgd-spread", float(tube[1:].max()), display=False)

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for j, ell in enumerate(kernel_bandwidths):
    lamP, lamK = kern.feature_eigenvalues[j], kern.kernel_eigenvalues[j]
    axes[0].semilogy(np.arange(1, len(lamP) + 1), lamP, "-", color=f"C{j}",
                     label=f"features, ℓ = {ell:g}")
    axes[0].semilogy(np.arange(1, len(lamP) + 1), lamK[:len(lamP)], ":", color=f"C{j}")
    axes[1].semilogx(ratios, kern.es[j, :, 2], "o-", color=f"C{j}", label=f"ℓ = {ell:g}")
axes[0].set_ylim(1e-8, 2)
axes[0].set_xlabel("index k")
axes[0].set_ylabel("eigenvalue (solid: Φᵀ Φ/n, dotted: K/n)")
axes[0].set_title("kernel spectra")
axes[0].legend(fontsize=7)
axes[1].axhline(threshold, color="k", ls=":")
axes[1].set_xlabel("init-to-target scale s₀/s*")
axes[1].set_ylabel("ES₃ (measured)")
axes[1].set_title("kernel regression ensembles")
axes[1].legend(fontsize=7)
ax = axes[2]
q = np.quantile(d_runs, [0.1, 0.9], axis=0)
ax.fill_between(sgd_steps[1:], q[0, 1:], q[1, 1:], alpha=0.3, label="SGD runs to GD, 10–90%")
ax.loglog(sgd_steps[1:], d_runs[:, 1:].mean(0), "-", label="SGD runs to GD, mean")
ax.loglog(sgd_steps[1:], tube[1:], "k--", label="predicted mean (tube width)")
ax.set_xlabel("step t")
ax.set_ylabel("d_B to GD at equal step (nats)")
ax.set_title(f"SGD, batch {sgd_batch} of {n}")
ax.legend(fontsize=7)
glue_figure("ch06-ext", fig)

# %% [markdown]
# ```{glue:figure} ch06-ext
# :name: fig-ch06-ext
#
# Left: eigenvalues of the random-feature correlation Φᵀ Φ/n (solid) and of the RBF
# kernel matrix K/n (dotted) for three bandwidths ℓ; wider kernels decay faster. Middle:
# ES₃ of kernel-regression trajectory ensembles over s₀/s*; dotted line: the threshold.
# Right: Bhattacharyya distance (nats) to the GD trajectory at equal step of the SGD runs
# (band: 10–90 % of the runs; line: their mean) and the mean predicted by the analysis
# (dashed).
# ```
#
# With {glue:text}`ch06-nfeat` features the kernel matrix is reproduced only roughly
# (relative Frobenius error up to {glue:text}`ch06-rff-err:.2f`), but the two spectra
# agree in their leading eigenvalues, and the kernel machine we train *is* the feature
# model; the kernel
# ensembles behave as the linear ones, with the bandwidth
# (through the kernel's spectral decay) in place of c. The SGD runs stay in a tube
# around the GD trajectory whose width the analysis predicts: the error of an SGD run
# is multiplied at each step by I − ηΣ_B, Σ_B the batch's input correlation, so its mean
# follows GD and its second moments obey a linear recursion that we solve exactly (for
# batches drawn without replacement); to second order d_B is ⅛ of the softmax Fisher
# form of the logit deviation. The mean d_B of the runs to GD at equal step stays within
# a factor 2^{glue:text}`lin_sgd_tracks_gd:.2f` of the prediction at every checkpoint
# (largest predicted width {glue:text}`ch06-sgd-spread:.2g` nats): the claim (within a
# factor 2) is {glue:text}`ch06-sgd-verdict`.
#
# ## A bridge to chapter 4: linear models and small networks on images
#
# Chapter 4 embeds the trajectories of deep networks. As a small stand-in (chapter 4's
# networks are not available to this chapter), we train {glue:text}`ch06-img-seeds`
# linear softmax classifiers on the pixels and as many one-hidden-layer ReLU networks
# ({glue:text}`ch06-img-hidden` hidden units) on {glue:text}`ch06-img-train`
# {glue:text}`ch06-img-set` training images (average-pooled), with SGD on the
# cross-entropy (with chapter 4's training engine, on standardised images), record their
# predictions on {glue:text}`ch06-img-eval` test images at log-spaced checkpoints, and
# ask how much of the networks' geometry the InPCA basis of the linear trajectories
# explains. This is a reduced version of the paper's comparison
# (tiny networks, seconds of CPU).

# %%
glue("ch06-img-seeds", image_seeds, display=False)
glue("ch06-img-hidden", image_hidden, display=False)
glue("ch06-img-train", image_train, display=False)
glue("ch06-img-eval", image_eval, display=False)
glue("ch06-img-set", image_set, display=False)
if image_train > 0:
    fam = {name: image_trajectories(
        image_set, n_train=image_train, n_eval=image_eval, pool=image_pool, hidden=hidden,
        seeds=[seed + 100 + s for s in range(image_seeds)], epochs=image_epochs, lr=0.1,
        batch=50, n_ckpt=n_ckpt, subset_seed=seed)
        for name, hidden in (("linear", 0), ("MLP", image_hidden))}
    P_all = np.concatenate([fam["linear"], fam["MLP"]])
    D_all = bhattacharyya(P_all, threads=1)
    nl = len(fam["linear"])
    D_ll, D_dl, D_dd = D_all[:nl, :nl], D_all[nl:, :nl], D_all[nl:, nl:]
    k_lin = k_at(inpca(D_ll, min(K, nl), solver="full").explained_stress)
    lin_all = linear_basis_stress(D_ll, D_dl, D_dd, k=min(k_lin, nl))
    lin_3 = linear_basis_stress(D_ll, D_dl, D_dd, k=3)
    res_all = inpca(D_all, 3, solver="full")
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for j, (name, m) in enumerate((("linear", "o"), ("MLP", "^"))):
        xy = res_all.coords[:nl] if name == "linear" else res_all.coords[nl:]
        xy = xy.reshape(image_seeds, -1, 3)
        for s in range(image_seeds):
            ax.plot(xy[s, :, 0], xy[s, :, 1], m + "-", ms=3, color=f"C{j}",
                    label=name if s == 0 else None)
    ax.set_xlabel("InPCA x1" + (" (time-like)" if res_all.eigenvalues[0] < 0 else ""))
    ax.set_ylabel("InPCA x2" + (" (time-like)" if res_all.eigenvalues[1] < 0 else ""))
    ax.set_title(f"{image_set}: joint InPCA")
    ax.legend()
    fig.tight_layout()
else:
    lin_all = lin_3 = float("nan")
    k_lin = 0
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.text(0.5, 0.5, "bridge skipped (image_train = 0)", ha="center")
    ax.set_xlabel("InPCA x1")
    ax.set_ylabel("InPCA x2")
glue_figure("ch06-img", fig, tight=False)
glue("ch06-lin-all", lin_all, display=False)
glue("ch06-lin-3", lin_3, display=False)
glue("ch06-k-lin", k_lin, display=False)

# %% [markdown]
# ```{glue:figure} ch06-img
# :name: fig-ch06-img
#
# Joint InPCA (first two axes, dimensionless) of the prediction trajectories of linear
# softmax classifiers (circles) and small ReLU networks (triangles) trained on images;
# each line is one training run from initialisation to the last checkpoint.
# ```
#
# Projected on the InPCA axes of the linear trajectories alone, the networks'
# double-centred distance matrix is reproduced with an explained stress of
# {glue:text}`ch06-lin-3:.2f` using three linear axes and {glue:text}`ch06-lin-all:.2f`
# using the first k90 = {glue:text}`ch06-k-lin` axes (90% of the linear set's stress; the
# Gower projection divides by √|λ|, so adding weak axes can add noise rather than
# signal): the small networks' trajectories largely live in the space the linear models'
# trajectories span. With networks this small and trained this briefly,
# this is only an indication for chapter 4's deep networks, not a test of it.
#
# ## Summary
#
# The linear model reproduces the hyper-ribbon of training trajectories and makes its
# controls explicit: small initial weights relative to the targets, fast spectral decay
# and (mildly, with log-spaced checkpoints) more steps thin the ribbon; a mode-sum
# calculation with no distances at all places the phase boundary correctly in
# {glue:text}`ch06-agree:.2f` of the grid (against {glue:text}`ch06-rule-agree:.2f` for
# the best one-parameter rule); SGD runs stay in the tube around GD that the analysis
# predicts. The chapter ran in
# {glue:text}`ch06-wall:.0f` s.

# %%
glue("ch06-wall", time.perf_counter() - t_start, display=False)
