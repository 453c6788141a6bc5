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
# # Jeffreys prior sampling of deep sigmoidal networks
#
# A trained generative network maps a low-dimensional code h ∈ [0, 1]^k to an image
# x̂(h). The set of all its reconstructions is a k-dimensional *model manifold* inside
# image space. Chapter 2 found that the model manifolds of sloppy models are
# *hyper-ribbons*, with widths falling off geometrically. Is that also true of the
# manifold of a deep network trained on images? {cite:t}`hayden2017jeffreys` answer by
# sampling the manifold *uniformly* — from the Jeffreys prior, the volume measure that
# the Fisher information metric induces on the code space — and looking at it. Their
# findings, which we re-derive here:
#
# 1. the manifold is an only slightly elongated **hyper-ball**, not a hyper-ribbon;
# 2. the reconstructions of real data sit predominantly on its **boundary**: far out from
#    its centre, beyond where most Jeffreys samples lie;
# 3. sampling a high-dimensional manifold is hard — so we check that the chains mix.
#
# **The metric.** The decoder gives Bernoulli probabilities x̂ᵢ(h) for the m = 784
# pixels. Pulled back to the code, the Fisher information of the pixels is
#
# $$ g(h) = J^\top \operatorname{diag}\!\left[\frac{1}{\hat x(1-\hat x)}\right] J,
#    \qquad J = \frac{\partial \hat x}{\partial h}\ (m\times k), $$
#
# and the Jeffreys prior is π(h) ∝ √det g(h) on the cube [0, 1]^k. We sample it in logit
# coordinates u (h = σ(u)), where the density, being a volume, transforms with the
# Jacobian: log √det g_u = log √det g_h + Σᵢ log σ'(uᵢ). We compute J with `torch.func`
# (`jacfwd`, vectorised over all chains at once), use the equivalent form
# J_aᵀ diag[x̂(1−x̂)] J_a with J_a the Jacobian of the output logits (no division by a
# vanishing x̂(1−x̂)), and take log det g from a Cholesky factor.

# %% tags=["parameters"]
profile: str = "ci"  # choices: smoke, ci, paper | the run profile (the runner sets it)
dataset: str = "mnist"  # choices: mnist, fashion-mnist | image set to learn (the paper: MNIST)
seed: int = 0  # range: [0, 4294967295] | random seed (weights, minibatches, noise, chains)
k_values: list[int] = [2, 5]  # range: [2, 30] | increasing | code sizes k (one at least 5)
hidden: list[int] = [500, 250]  # range: [8, 4096] | hidden widths from the image to the code
n_train: int = 10000  # range: [100, 60000] | training images (the first of the training split)
n_test: int = 2000  # range: [10, 10000] | held-out test images that are encoded
sdae_epochs: int = 8  # range: [1, 1000] | training epochs of the denoising autoencoders
sdae_noise: float = 0.25  # range: [0, 1) | masking-noise fraction of the SDAE input
rbm_epochs: int = 5  # range: [1, 1000] | CD-1 epochs of each RBM of the deep belief networks
dbn_finetune_epochs: int = 0  # range: [0, 1000] | fine-tuning epochs of the unrolled DBN (0: none)
n_chains: int = 32  # range: [4, 100000] | Metropolis chains run in parallel
n_steps: int = 1000  # range: [30, 10000000] | Metropolis steps per chain, burn-in included
n_burn: int = 500  # range: [10, 10000000] | burn-in steps (proposal adapting, not kept)
thin: int = 5  # range: [1, 10000] | keep every thin-th state after burn-in
n_uniform: int = 4000  # range: [10, 10000000] | uniform-in-code control samples
n_check: int = 5  # range: [1, 1000] | random codes of the finite-difference metric check
threads: int = 1  # range: [0, 1024] | torch CPU threads (0: torch's default)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, display

from hyperribbon.compendium import claim, glue, glue_figure, glue_values, record_spectrum
from hyperribbon.data import load_images
from hyperribbon.jeffreys import check_params, html_table, metric_check, study
from hyperribbon.manifold import sample_box
from hyperribbon.nets import TrainConfig, fit_cached, reconstruction_nll
from hyperribbon.odes import exp_decay
from hyperribbon.scores import pca, project
from hyperribbon.util import torch_threads

check_params(k_values=k_values, n_chains=n_chains, n_steps=n_steps, n_burn=n_burn,
             thin=thin, n_train=n_train, n_test=n_test, dataset=dataset, hidden=hidden)
torch_threads(threads or None)  # for the whole chapter (0: torch's default)
t_start = time.perf_counter()
FAMILIES = {"sdae": "stacked denoising autoencoder", "dbn": "deep belief network"}
K_MAIN = min(k for k in k_values if k >= 5)  # the code size of the detailed figures
K_MIN = min(k_values)

x_train, _ = load_images(dataset, "train")
x_test, y_test = load_images(dataset, "test")
x_train = x_train[:n_train].reshape(n_train, -1)
x_test, y_test = x_test[:n_test].reshape(n_test, -1), y_test[:n_test]
print(f"{dataset}: {n_train} training and {n_test} test images of {x_train.shape[1]} pixels; "
      f"torch threads: {torch.get_num_threads()}")
glue_values({
    "ch03-dataset": dataset,
    "ch03-ntrain": n_train,
    "ch03-ntest": n_test,
    "ch03-kvalues": ", ".join(map(str, k_values)),
    "ch03-kmain": K_MAIN,
    "ch03-kmin": K_MIN,
    "ch03-sizes": " → ".join(map(str, [784, *hidden, "k"])),
    "ch03-noise": sdae_noise,
    "ch03-sdae-epochs": sdae_epochs,
    "ch03-rbm-epochs": rbm_epochs,
    "ch03-finetune": dbn_finetune_epochs,
    "ch03-chains": n_chains,
    "ch03-steps": n_steps,
    "ch03-burn": n_burn,
    "ch03-thin": thin,
    "ch03-nuniform": n_uniform,
})

# %% [markdown]
# ## Two families of networks
#
# Both families have the layer widths {glue:text}`ch03-sizes` with a sigmoid after every
# layer (a k-unit sigmoid code; the decoder mirrors the encoder and ends in sigmoid pixel
# probabilities), and are trained on the first {glue:text}`ch03-ntrain` images of the
# {glue:text}`ch03-dataset` training split, for each code size k ∈
# {{glue:text}`ch03-kvalues`}:
#
# - **SDAE** — a stacked denoising autoencoder {cite}`vincent2010stacked`, trained end to
#   end with Adam on the Bernoulli likelihood (binary cross-entropy) of the clean image
#   given an input with a fraction {glue:text}`ch03-noise` of its pixels masked to zero,
#   for {glue:text}`ch03-sdae-epochs` epochs.
# - **DBN** — a deep belief network {cite}`hinton2006reducing`: a stack of
#   Bernoulli restricted Boltzmann machines pretrained greedily with one-step
#   contrastive divergence (CD-1) {cite}`hinton2002training`, {glue:text}`ch03-rbm-epochs`
#   epochs each, each RBM trained on the hidden probabilities of the one below, then
#   unrolled into an encoder and a decoder with tied (transposed) weights;
#   {glue:text}`ch03-finetune` fine-tuning epochs.
#
# Trained weights are cached by a hash of the training configuration (the lower RBMs are
# shared between code sizes), so re-running the notebook does not retrain.

# %%
models, train_info = {}, []
for fam in FAMILIES:
    for k in k_values:
        cfg = TrainConfig(family=fam, sizes=[x_train.shape[1], *hidden, k],
                          epochs=sdae_epochs if fam == "sdae" else rbm_epochs, seed=seed,
                          data={"dataset": dataset, "split": "train", "n": n_train},
                          noise=sdae_noise if fam == "sdae" else 0.0,
                          finetune_epochs=dbn_finetune_epochs if fam == "dbn" else 0)
        t0 = time.perf_counter()
        models[fam, k], cached = fit_cached(cfg, x_train)
        train_info.append((fam, k, reconstruction_nll(models[fam, k], x_test), cached,
                           time.perf_counter() - t0))
display(HTML(html_table(
    ["family", "k", "test NLL (nats/image)", "weights", "time (s)"],
    [[f.upper(), k, f"{nll:.1f}", "cached" if c else "trained", f"{t:.1f}"]
     for f, k, nll, c, t in train_info])))

# %% [markdown]
# ## Is the metric right? Autodiff against finite differences
#
# At {glue:text}`ch03-ncheck` random logit codes u ~ N(0, 1.5²)^k of every network we
# compare log det g_u from the autodiff metric (float64) with the one from central finite
# differences of x̂(u) (step 10⁻⁵, float64), g_fd = J_fdᵀ diag[1/(x̂(1−x̂))] J_fd. The
# relative error is |Δ log det g| / max(|log det g|, 1), maximised over codes and code
# sizes. The sampler itself runs the float32 model, where a metric whose Jacobi-scaled
# Cholesky pivots fall below k·ε₃₂ counts as singular (zero density); the same check on
# the float32 model tests that path. Both are *diagnostics* of our code, not results of
# the paper.

# %%
glue("ch03-ncheck", n_check, display=False)
for fam in FAMILIES:
    for dtype, name, tol in ((torch.float64, "metric_check", 1e-5),
                             (torch.float32, "metric_check_f32", 1e-3)):
        errs = [metric_check(models[fam, k], n_check, seed=seed + k, dtype=dtype)[0]
                for k in k_values]
        claim(f"jeffreys_{name}_{fam}", max(errs), "<=", tol,
              "Hayden et al. 2017, Sec. 2 (Fisher metric of the code space)",
              f"{FAMILIES[fam]}: max over k ∈ {k_values} and {n_check} random codes of "
              f"|Δ log det g|/max(|log det g|, 1), autodiff ({dtype}) vs central "
              "differences (float64)", kind="diagnostic")

# %% [markdown]
# The autodiff metric agrees with finite differences to a relative error of
# {glue:text}`jeffreys_metric_check_sdae:.1e` (SDAE) and
# {glue:text}`jeffreys_metric_check_dbn:.1e` (DBN) in float64, at the level of the
# finite-difference error itself, and of {glue:text}`jeffreys_metric_check_f32_sdae:.1e`
# and {glue:text}`jeffreys_metric_check_f32_dbn:.1e` in the float32 the sampler uses
# (float32 rounding; no random code is treated as singular).
#
# ## Sampling the Jeffreys prior
#
# For each network, {glue:text}`ch03-chains` random-walk Metropolis chains run in parallel
# on log √det g_u, starting overdispersed (h uniform in [0.02, 0.98]^k). During the
# {glue:text}`ch03-burn` burn-in steps the proposal adapts — its scale towards an
# acceptance rate of 0.25, its shape to the covariance of the chains' recent states — and
# then it is frozen; of the remaining steps (of {glue:text}`ch03-steps` in all) every
# {glue:text}`ch03-thin`th state is kept. Mixing is judged on the first three principal
# coordinates of the sampled reconstructions, by the split R̂ {cite}`vehtari2021rank` and
# the effective sample size (ESS). As a control that is *not* Jeffreys,
# {glue:text}`ch03-nuniform` codes are drawn uniformly in the cube, and the
# {glue:text}`ch03-ntest` held-out test images are encoded, h = enc(x).

# %%
studies = {}
for fam in FAMILIES:
    for k in k_values:
        studies[fam, k] = study(models[fam, k], x_test, n_chains, n_steps, n_burn, thin,
                                n_uniform, seed=seed, desc=fam.upper())
rows = []
for (fam, k), s in studies.items():
    sat, bd = s.saturated(), s.boundary()
    rows.append([fam.upper(), k, f"{s.aspect():.2f}", f"{s.aspect(hellinger=True):.2f}",
                 f"{sat['data']:.2f}", f"{sat['jeffreys']:.2f}", f"{sat['uniform']:.2f}",
                 f"{np.median(bd['data']):.3f}", f"{np.median(bd['jeffreys']):.3f}",
                 f"{s.rhat.max():.3f}", f"{float(s.chains.accept.mean()):.2f}",
                 f"{s.ess.min():.0f}", f"{s.chains.evals_per_second:.0f}",
                 f"{s.ess_per_second():.0f}"])
display(HTML(html_table(
    ["family", "k", "σ₁/σ_k (pixels)", "σ₁/σ_k (Hellinger)", "saturated: data", "Jeffreys",
     "uniform", "median boundary distance: data", "Jeffreys", "max R̂", "acceptance",
     "min ESS", "evaluations/s", "ESS/s"], rows)))
for fam in FAMILIES:
    s = studies[fam, K_MAIN]
    sat = s.saturated()
    for name, v in [("evals", f"{s.chains.evals_per_second:.0f}"),
                    ("ess-per-s", f"{s.ess_per_second():.0f}"),
                    ("sat-data", f"{sat['data']:.2f}"), ("sat-jeff", f"{sat['jeffreys']:.2f}"),
                    ("sat-unif", f"{sat['uniform']:.2f}"),
                    ("aspect", f"{s.aspect():.2f}"),
                    ("bd-data", f"{np.median(s.boundary()['data']):.3f}"),
                    ("bd-jeff", f"{np.median(s.boundary()['jeffreys']):.3f}"),
                    ("aspect-hel", f"{s.aspect(hellinger=True):.2f}")]:
        glue(f"ch03-{fam}-{name}", v, display=False)
    sat_min = studies[fam, K_MIN].saturated()
    glue(f"ch03-{fam}-kmin-sat-data", f"{sat_min['data']:.2f}", display=False)
    glue(f"ch03-{fam}-kmin-sat-jeff", f"{sat_min['jeffreys']:.2f}", display=False)

# %% [markdown]
# ### Do the chains mix?
#
# {numref}`fig-ch03-mixing` shows the first principal coordinate of a few chains after
# burn-in, and R̂ of the first three coordinates for every network.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), gridspec_kw={"width_ratios": [2, 2, 1.4]})
for ax, fam in zip(axes[:2], FAMILIES, strict=True):
    s = studies[fam, K_MAIN]
    steps = n_burn + thin * (1 + np.arange(s.pc_draws.shape[0]))
    ax.plot(steps, s.pc_draws[:, :6, 0], lw=0.7)
    ax.set(xlabel="Metropolis step", ylabel="principal coordinate 1 (pixel units)",
           title=f"{fam.upper()}, k = {K_MAIN}: six of {n_chains} chains")
width = 0.8 / len(studies)
for i, ((fam, k), s) in enumerate(studies.items()):
    axes[2].bar(np.arange(3) + (i - len(studies) / 2 + 0.5) * width, s.rhat, width,
                label=f"{fam.upper()} k={k}")
axes[2].axhline(1.1, color="k", ls="--", lw=1, label="1.1")
axes[2].set(xticks=range(3), xticklabels=["PC1", "PC2", "PC3"], ylabel="split R̂",
            ylim=(0.98, max(1.15, max(s.rhat.max() for s in studies.values()) + 0.02)),
            title="R̂ per coordinate")
axes[2].legend(fontsize=7, ncol=2)
glue_figure("ch03-mixing", fig)

for fam in FAMILIES:
    worst_rhat = max(float(s.rhat.max()) for (f, _), s in studies.items() if f == fam)
    claim(f"jeffreys_mixing_{fam}", worst_rhat, "<=", 1.1,
          "Hayden et al. 2017, Sec. 3 (sampling high-dimensional manifolds)",
          f"{FAMILIES[fam]}: largest split R-hat of the first three principal coordinates "
          f"of the sampled reconstructions, over k ∈ {k_values}")
    accs = [float(s.chains.accept.mean()) for (f, _), s in studies.items() if f == fam]
    claim(f"jeffreys_acceptance_{fam}", max(accs, key=lambda a: abs(a - 0.325)), "in",
          [0.15, 0.5], "Hayden et al. 2017, Sec. 3 (random-walk Metropolis)",
          f"{FAMILIES[fam]}: post-burn-in acceptance rate farthest from the middle of "
          f"[0.15, 0.5], over k ∈ {k_values}", kind="diagnostic")

# %% [markdown]
# ```{glue:figure} ch03-mixing
# :name: fig-ch03-mixing
#
# Mixing of the Jeffreys samplers. Left and middle: traces of the first principal
# coordinate of the sampled reconstructions (pixel units, after burn-in) for six chains
# of each family at k = {glue:text}`ch03-kmain`. Right: split R̂ of the first three
# principal coordinates for every family and code size; the dashed line is the
# threshold 1.1.
# ```
#
# Every chain explores the same range, and the largest R̂ is
# {glue:text}`jeffreys_mixing_sdae:.3f` (SDAE) and {glue:text}`jeffreys_mixing_dbn:.3f`
# (DBN). The acceptance rates after burn-in stay near the target 0.25 (the one farthest
# from the middle of [0.15, 0.5] is {glue:text}`jeffreys_acceptance_sdae:.2f` for the
# SDAE and {glue:text}`jeffreys_acceptance_dbn:.2f` for the DBN) — by construction, since
# the proposal is tuned to 0.25 during burn-in: a *diagnostic* that the tuning settled,
# not a result. On this machine one
# log-density evaluation (a forward-mode Jacobian through the decoder and a k × k
# Cholesky factor) runs at {glue:text}`ch03-sdae-evals` (SDAE) and
# {glue:text}`ch03-dbn-evals` (DBN) evaluations per second at k =
# {glue:text}`ch03-kmain`, all chains in one batch; the samplers produce
# {glue:text}`ch03-sdae-ess-per-s` and {glue:text}`ch03-dbn-ess-per-s` effective samples
# per second (the smallest ESS of the three coordinates per second of sampling).
#
# ## What the samples look like

# %%
def mosaic(x: np.ndarray, n: int = 6) -> np.ndarray:
    """The first n² images (each 28 × 28) tiled into one n × n picture."""
    return x[: n * n].reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)


rng = np.random.default_rng(seed)
fig, axes = plt.subplots(2, 2, figsize=(8, 8))
for row, fam in enumerate(FAMILIES):
    s = studies[fam, K_MAIN]
    pick = rng.choice(len(s.x_jeffreys), 36, replace=False)
    for ax, img, what in ((axes[row, 0], s.x_jeffreys[pick], "Jeffreys samples"),
                          (axes[row, 1], s.x_data, "reconstructed test images")):
        ax.imshow(mosaic(img), cmap="gray_r", vmin=0, vmax=1)
        ax.set(title=f"{fam.upper()}, k = {K_MAIN}: {what}", xticks=[], yticks=[])
glue_figure("ch03-recons", fig)

# %% [markdown]
# ```{glue:figure} ch03-recons
# :name: fig-ch03-recons
#
# Left: reconstructions x̂(h) of 36 random Jeffreys samples h of each network
# (k = {glue:text}`ch03-kmain`; pixel value 0 white, 1 black). Right: reconstructions
# x̂(enc(x)) of the first 36 test images.
# ```
#
# Uniform sampling of the manifold produces blurry, prototype-like digits; the
# reconstructions of real images are crisper — they are the extreme points of the
# manifold, as the next figures show.
#
# ## The shape: a hyper-ball, not a hyper-ribbon
#
# The principal widths σ₁ ≥ σ₂ ≥ … of the sampled reconstructions measure the extent of
# the manifold in its successive directions. A k-dimensional hyper-ribbon would have
# σ₁/σ_k of 100 or more; {numref}`fig-ch03-widths` compares the widths with those of the
# sum-of-exponentials model of chapter 2 (six decay rates, 50 time points), a
# hyper-ribbon.

# %%
record_spectrum("ch03-widths", studies["sdae", K_MAIN].widths.sigma,
                f"PCA widths of Jeffreys-prior samples (SDAE, k = {K_MAIN})",
                "deep sigmoidal network")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for (fam, k), s in studies.items():
    sig = s.widths.sigma[: k + 3]
    ax.semilogy(np.arange(1, len(sig) + 1), sig / sig[0], "o-" if fam == "sdae" else "s--",
                ms=4, label=f"{fam.upper()}, k = {k}")
theta = sample_box(np.full(6, 0.008), np.full(6, 8.0), 4000, seed)
ribbon = pca(exp_decay(theta, np.linspace(0, 1, 50))).sigma[:10]
ax.semilogy(np.arange(1, 11), ribbon / ribbon[0], "k^:", ms=4,
            label="hyper-ribbon: sum of 6 exponentials (ch. 2)")
ax.axhline(0.1, color="grey", lw=0.8, ls="--")
ax.set(xlabel="principal direction n", ylabel="width σₙ / σ₁",
       title="Widths of the sampled model manifolds")
ax.legend(fontsize=8)
glue_figure("ch03-widths", fig)
glue("ch03-ribbon-aspect", f"{ribbon[0] / ribbon[5]:.0f}", display=False)

for fam in FAMILIES:
    aspects = {k: studies[fam, k].aspect(hellinger=True) for k in k_values}
    claim(f"jeffreys_hyperball_{fam}", max(aspects.values()), "<=", 10,
          "Hayden et al. 2017, abstract and Sec. 4 (an only slightly elongated hyper-ball)",
          f"{FAMILIES[fam]}: largest aspect ratio σ1/σk of the PCA of the Jeffreys-sampled "
          f"reconstructions in the coordinates (2√x̂, 2√(1−x̂)), where the Fisher metric is "
          f"Euclidean, over k ∈ {k_values}: "
          + ", ".join(f"k={k}: {a:.2f}" for k, a in aspects.items()))

# %% [markdown]
# ```{glue:figure} ch03-widths
# :name: fig-ch03-widths
#
# Principal widths σₙ of the Jeffreys-sampled reconstructions (pixel space), relative to
# the largest, for each family and code size, beyond n = k as well (the manifold is
# curved, so it has widths beyond its dimension). Black: the hyper-ribbon of chapter 2,
# whose sixth width is 1/{glue:text}`ch03-ribbon-aspect` of its first. The dashed line
# marks a factor 10.
# ```
#
# Distances on the manifold are Fisher distances, and for Bernoulli pixels the Fisher
# metric is the Euclidean one of the coordinates (2√x̂ᵢ, 2√(1−x̂ᵢ)) — two per pixel
# (2√x̂ alone would be right for Poisson counts, not for Bernoulli pixels). In those
# coordinates the widths over the first k directions fall by less than a factor of ten:
# the largest aspect ratio σ₁/σ_k is {glue:text}`jeffreys_hyperball_sdae:.3g` for the
# SDAE and {glue:text}`jeffreys_hyperball_dbn:.3g` for the DBN (at
# k = {glue:text}`ch03-kmain`: {glue:text}`ch03-sdae-aspect-hel` and
# {glue:text}`ch03-dbn-aspect-hel`; in plain pixel coordinates, as in the figure,
# {glue:text}`ch03-sdae-aspect` and {glue:text}`ch03-dbn-aspect`). The sampled manifold is
# a slightly elongated hyper-ball, as the paper found.
#
# ## Where the data sit: on the boundary
#
# Encode the held-out test images, h = enc(x). A unit is *saturated* when hᵢ < 0.05 or
# hᵢ > 0.95. {numref}`fig-ch03-projection` places the data among the samples in the
# principal plane of the samples, and {numref}`fig-ch03-radius` measures how far out they
# are: the radius in the whitened frame of the top k principal directions (each divided by
# its width σ), where a uniformly filled ball has radii spread up to its rim.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
for ax, fam in zip(axes, FAMILIES, strict=True):
    s = studies[fam, K_MAIN]
    w = s.widths
    zj = w.projections[:, :2]
    zd = project(s.x_data, w.mean, w.components[:2])
    ax.scatter(zj[:, 0], zj[:, 1], s=3, c="0.75", label="Jeffreys samples", rasterized=True)
    sc = ax.scatter(zd[:, 0], zd[:, 1], s=5, c=y_test.numpy(), cmap="tab10", vmin=-0.5,
                    vmax=9.5, label="encoded test images", rasterized=True)
    ax.set(xlabel="principal coordinate 1 (pixel units)",
           ylabel="principal coordinate 2 (pixel units)", title=f"{fam.upper()}, k = {K_MAIN}")
    ax.legend(loc="lower right", fontsize=8, markerscale=3)
fig.colorbar(sc, ax=axes, ticks=range(10), label="digit class")
glue_figure("ch03-projection", fig, tight=False)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, fam in zip(axes, FAMILIES, strict=True):
    r = studies[fam, K_MAIN].radii()
    bins = np.linspace(0, np.percentile(np.concatenate(list(r.values())), 99.5), 50)
    for name, color in (("jeffreys", "0.5"), ("uniform", "tab:orange"), ("data", "tab:blue")):
        ax.hist(r[name], bins, density=True, histtype="step", lw=1.5, color=color,
                label={"jeffreys": "Jeffreys samples", "uniform": "uniform in h",
                       "data": "encoded test images"}[name])
    ax.set(xlabel="whitened radius (units of the widths σ)", ylabel="probability density",
           title=f"{fam.upper()}, k = {K_MAIN}")
    ax.legend(fontsize=8)
glue_figure("ch03-radius", fig)

for fam in FAMILIES:
    ranks = {k: studies[fam, k].radius_rank() for k in k_values}
    claim(f"jeffreys_data_outward_{fam}", min(ranks.values()), ">=", 0.75,
          "Hayden et al. 2017, abstract and Sec. 4 (data predominantly on the boundary)",
          f"{FAMILIES[fam]}: min over k ∈ {k_values} of the median over encoded test images "
          "of the fraction of Jeffreys samples with a smaller whitened radius (0.5 if the "
          "data followed the prior); per k: "
          + ", ".join(f"k={k}: {r:.3f}" for k, r in ranks.items()))

# %% [markdown]
# ```{glue:figure} ch03-projection
# :name: fig-ch03-projection
#
# The Jeffreys samples (grey) and the reconstructions of the encoded test images (colour:
# digit class) projected on the first two principal directions of the samples
# (k = {glue:text}`ch03-kmain`, pixel units).
# ```
#
# ```{glue:figure} ch03-radius
# :name: fig-ch03-radius
#
# Distribution of the whitened radius of the Jeffreys samples (grey), of uniform-in-h
# codes (orange) and of the encoded test images (blue), at k = {glue:text}`ch03-kmain`.
# ```
#
# The data sit far out: at k = {glue:text}`ch03-kmain` a fraction
# {glue:text}`ch03-sdae-sat-data` (SDAE) and {glue:text}`ch03-dbn-sat-data` (DBN) of the
# encoded test images have at least one saturated unit, against
# {glue:text}`ch03-sdae-sat-jeff` and {glue:text}`ch03-dbn-sat-jeff` of the Jeffreys
# samples (and {glue:text}`ch03-sdae-sat-unif` and {glue:text}`ch03-dbn-sat-unif` of
# uniform codes; at k = {glue:text}`ch03-kmin`, {glue:text}`ch03-sdae-kmin-sat-data` vs
# {glue:text}`ch03-sdae-kmin-sat-jeff` for the SDAE and {glue:text}`ch03-dbn-kmin-sat-data`
# vs {glue:text}`ch03-dbn-kmin-sat-jeff` for the DBN). Saturation is a biased witness,
# though: "at least one of k units saturated" tends to one as k grows for any codes. The
# claim `jeffreys_data_outward` therefore compares data and prior on one scale that does
# not depend on k: the whitened radius of {numref}`fig-ch03-radius`. For each encoded test
# image, take the fraction of Jeffreys samples that lie closer to the centre; if the data
# were distributed as the prior, the median of that fraction would be 0.5 at every k. The
# claim asks that it be at least 0.75 — half of the data beyond the prior's upper quartile
# of radius — at every k the profile runs; the smallest value over k is
# {glue:text}`jeffreys_data_outward_sdae:.3f` (SDAE) and
# {glue:text}`jeffreys_data_outward_dbn:.3f` (DBN). At k = 5 the data sit beyond nearly
# all the prior's samples for both families. At k = 2 the SDAE's value depends strongly on
# the training seed — over the five seeds of the {doc}`robustness page <../robustness>` it
# ranges from well below one half to nearly one — so this claim's verdict for the SDAE
# changes with the seed at this scale; the DBN's does not.
#
# The two families reach the boundary differently. The DBN's code units are the top
# RBM's hidden probabilities, which are saturated for nearly every image: the median
# distance of the data codes to the boundary of the cube is
# {glue:text}`ch03-dbn-bd-data` (Jeffreys samples: {glue:text}`ch03-dbn-bd-jeff`), so its
# data sit on the boundary almost by construction. The SDAE learns to push its codes
# towards the boundary under masking noise (median distance
# {glue:text}`ch03-sdae-bd-data` against {glue:text}`ch03-sdae-bd-jeff` for its
# samples). The Jeffreys samples themselves are only a little less often saturated than
# uniform codes: the volume is spread fairly evenly over the cube, and the data occupy its
# rim.
#
# ## Where our settings differ from the paper's
#
# - **Sizes and training.** The paper's exact architectures are not available; we use
#   {glue:text}`ch03-sizes` with sigmoid units, {glue:text}`ch03-ntrain` training
#   images and short training (the `paper` profile trains on all of MNIST, longer, and
#   goes up to k = 30). The networks are therefore less accurate than the paper's; the
#   geometry we measure is that of *these* networks.
# - **SDAE training.** The paper's SDAE is stacked: each denoising autoencoder is trained
#   layer by layer on the codes of the one below. Ours is trained end to end, all layers
#   at once, with masking noise on the input image only.
# - **DBN.** The paper fine-tunes the unrolled DBN; under `ci` we do not
#   ({glue:text}`ch03-finetune` epochs), to keep the chapter within its four-minute budget
#   on two CPU cores (the `paper` profile fine-tunes for 10 epochs). Its code units are
#   therefore the top RBM's hidden probabilities, which saturate for nearly every image.
# - **Sampler.** We use random-walk Metropolis in logit coordinates with a proposal
#   adapted during burn-in and then frozen, many chains vectorised; the chains are short
#   ({glue:text}`ch03-steps` steps), which suffices at k ≤ 5 (R̂ above) but not
#   necessarily at k = 30, where the paper stresses how hard sampling becomes.
# - **Thresholds.** "Saturated" means a unit below 0.05 or above 0.95, and the shape is
#   judged by σ₁/σ_k ≤ 10 in the Fisher-Euclidean coordinates, the data's position by
#   their median radius rank ≥ 0.75 among the Jeffreys samples — criteria of this
#   reproduction, not numbers from the paper.

# %%
print(f"chapter 3 ran in {time.perf_counter() - t_start:.0f} s")
