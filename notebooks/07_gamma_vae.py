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
# # Γ-VAE: curvature-regularised variational autoencoders
#
# Gene-expression profiles have tens of thousands of coordinates, yet the states a cell
# or a tissue actually visits lie near a low-dimensional set. Nonlinear embeddings —
# UMAP, or the latent space of a variational autoencoder (VAE) — keep each cell's
# neighbours close, but they are free to bend, stretch and fold the map so much that the
# relations *between* clusters that are not neighbours are lost: where a cluster sits
# relative to a distant one, or where an unseen cell type would land.
# {cite:t}`kim2024gammavae` propose to penalise the curvature of the manifold that the
# VAE's decoder generates (the Γ-VAE). They report that, on bulk RNA-seq of tumours and
# normal tissues (TCGA and GTEx), the regularised latent space shows the mesoscale
# structure of cancer types and re-embeds tissues of completely unseen cancer types as if
# they had been trained on; and that on single-cell lineage tracing of haematopoiesis
# {cite}`weinreb2020lineage`, keeping long-range relations to the differentiated cells
# separates undifferentiated cells by their eventual fate.
#
# This chapter builds the regulariser, trains plain VAEs and Γ-VAEs side by side, and
# tests those four statements: the penalty lowers the curvature, it keeps the fit, it
# keeps long-range structure, and it helps out of distribution and for fate prediction.

# %% tags=["parameters"]
profile: str = "ci"  # choices: smoke, ci, paper | the run profile (the runner sets it)
seed: int = 0  # range: [0, 42949672] | replicate r uses data and model seed 100·seed + r
dataset: str = "synthetic"  # choices: synthetic, xena, weinreb | the data set
n_seeds: int = 16  # range: [2, 1000] | replicates (data set and model seed) per γ
n_cells: int = 2000  # range: [100, 10000000] | synthetic cells per replicate
n_genes: int = 60  # range: [10, 100000] | synthetic genes
n_top: int = 5000  # range: [10, 100000] | genes kept by variance (real data sets)
true_dim: int = 8  # range: [5, 256] | dimension of the synthetic latent truth
fate_shift: float = 0.15  # range: [0, 1] | progenitors' shift towards their fate (of a branch)
transit_fraction: float = 0.05  # range: [0, 0.5] | synthetic cells on the branches
latent_dim: int = 2  # range: [1, 64] | latent dimension of the VAEs
hidden: int = 32  # range: [4, 4096] | hidden units per layer
beta: float = 1.0  # range: [0, inf) | weight of the KL term
gammas: list[float] = [0.0, 1.0, 3.0, 10.0, 30.0]  # range: [0, inf) | increasing | γ grid, from 0
tangent_weight: float = 1.0  # range: [0, inf) | weight of the tangent (Γ) part of the penalty
normal_weight: float = 0.0  # range: [0, inf) | weight of its normal part
scale_free: bool = False  # divide the penalty by E_v‖Jv‖⁴
curvature_mode: str = "auto"  # choices: auto, exact, random | how the penalty is computed
n_dirs: int = 4  # range: [1, 10000] | random directions per point (curvature_mode random)
steps: int = 1200  # range: [1, 100000000] | training steps (Adam, cosine decay)
batch: int = 64  # range: [1, 1000000] | cells per step and model
lr: float = 0.003  # range: (0, 1) | peak learning rate
n_penalty: int = 32  # range: [2, 1000000] | latent points per step for the penalty
fit_tolerance: float = 0.02  # range: [0, 1) | γ rule: training error within this of plain
n_holdout: int = 2  # range: [1, 100] | clusters held out, one at a time
test_fraction: float = 0.2  # range: (0, 0.9] | rows kept out of training
grid_n: int = 16  # range: [2, 1000] | latent grid points per dimension for the curvature
umap_baseline: bool = True  # the UMAP baseline on the first replicate (needs umap-learn)
device: str = "auto"  # choices: auto, cpu, cuda | where the VAEs train

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from hyperribbon import expression, scores, vae
from hyperribbon.compendium import (
    claim,
    errorbar_mean_se,
    glue,
    glue_figure,
    glue_values,
    mean_bound,
    mean_se,
)

VERDICT = {True: "reproduced", False: "not reproduced"}  # claim() returns whether it holds

vae.check_vae_params(gammas=gammas, latent_dim=latent_dim, hidden=hidden, beta=beta,
                     n_seeds=n_seeds, curvature_mode=curvature_mode, n_dirs=n_dirs,
                     dataset=dataset, datasets=expression.DATASETS, plain_first=True)
expression.check_available(dataset)
t_start = time.perf_counter()
seeds = [100 * seed + r for r in range(n_seeds)]
rest = 1.0 - transit_fraction
kw = ({"n_cells": n_cells, "n_genes": n_genes, "true_dim": true_dim, "fate_shift": fate_shift,
       "fractions": (0.3 * rest, transit_fraction, 0.25 * rest, 0.45 * rest)}
      if dataset == "synthetic" else {"n_top": n_top})
pairs = expression.replicates(dataset, seeds, test_fraction, **kw)
data = pairs[0][0]
reps = [vae.Replicate(d.X, d.labels, d.reference, test, np.where(d.progenitor, d.fate, -1))
        for d, test in pairs]
print(f"data: {data.source}")
print(f"{len(reps)} replicates × {data.X.shape[0]} rows × {data.X.shape[1]} genes; "
      f"{len(data.label_names)} clusters: {', '.join(data.label_names)}")
glue("ch07-source", data.source, display=False)
glue_values({
    "ch07-n-seeds": n_seeds,
    "ch07-n-rows": data.X.shape[0],
    "ch07-n-genes": data.X.shape[1],
    "ch07-n-clusters": len(data.label_names),
    "ch07-true-dim": true_dim,
    "ch07-latent-dim": latent_dim,
    "ch07-steps": steps,
    "ch07-fit-tol": f"{100 * fit_tolerance:g} %",
    "ch07-gammas": ", ".join(f"{g:g}" for g in gammas),
    "ch07-fate-shift": fate_shift,
})

# %% [markdown]
# ## Data
#
# The papers' data — UCSC Xena's TCGA + TARGET + GTEx recompute {cite}`vivian2017toil`
# and the in-vitro LARRY data of {cite:t}`weinreb2020lineage` — are registered in
# `data/datasets.yml` (kind: expression) with their sources, licenses and citations;
# with a network, `hyperribbon data get xena` (or `weinreb`) puts them under the data root,
# and `dataset=xena` or `dataset=weinreb` runs this chapter on them. They cannot be
# fetched where the book is built, so by default it runs on **synthetic data with known
# geometry**, named as such in every output: this run used
# {glue:text}`ch07-source`.
#
# The synthetic generator imitates the structure the paper is about, in a latent space of
# {glue:text}`ch07-true-dim` dimensions — four times the dimension of the VAEs' latent
# space, as real expression has far more programmes than a 2-D map can hold:
#
# * a **branching differentiation**: a progenitor pool branching into two fates A and B
#   (a few transit cells on each branch, mature cells at the ends). Every progenitor
#   carries a **hidden fate**: a weak shift, {glue:text}`ch07-fate-shift` of the branch
#   length, towards its destination — smaller than the spread of the pool;
# * **tissues**, separate clusters whose centres lie evenly along an arc, so that
#   neighbouring tissues share programmes (as related organs and cancer types do) and the
#   ends of the arc are far apart;
# * **other programmes** (cell-cycle-like variation) that every cell carries, unrelated
#   to the clusters.
#
# Each gene responds to two latent directions through a sigmoid; counts are negative
# binomial; preprocessing is that of the real data (log-normalisation, z-scoring). The
# ground truth — every cell's latent position, every cluster's centre, every
# progenitor's fate — is kept for scoring. A 2-D map cannot hold an 8-D truth, so every
# embedding below distorts something; the question is what.
#
# ## Method
#
# **The regulariser.** The decoder f maps the latent space to expression space; its
# image is a surface, the model manifold. Its second derivatives ∂²f/∂z_i∂z_j split into
# a part *tangent* to the surface — the connection coefficients Γ, the
# "parameter-effects curvature" that measures how unevenly the latent coordinates run
# over the surface — and a part *normal* to it, the extrinsic curvature of the surface
# itself. At a latent point z the penalty is the mean over directions v of the unit
# sphere,
#
# $$ R(z) = \mathbb{E}_v \,\| P\, \partial^2_{vv} f(z) \|^2, \qquad
#    d(d+2)\,\mathbb{E}_v \|H[v,v]\|^2 = \Big\|\sum_i H_{ii}\Big\|^2 + 2\sum_{ij}\|H_{ij}\|^2, $$
#
# with P the projector on the tangent plane (the column space of J = ∂f/∂z), on its
# complement, or the identity. For a small latent dimension it is computed exactly from
# the Hessian entries H_ij by nested forward-mode differentiation (`torch.func.jvp`, and
# in training an equivalent hand-written forward-mode pass through the decoder's tanh
# layers that the tests check against it); for a larger one it is estimated without bias
# from random directions. It is rotation invariant in the latent space and vanishes
# exactly for an affine decoder. A Γ of zero means that the metric JᵀJ is constant, so
# that straight lines and distances in the latent space are straight lines and distances
# on the manifold — the property that should keep long-range relations.
#
# **Training.** Loss = −log p(x|z) + β·KL + γ·R, a Gaussian likelihood with learned
# per-gene variances on the z-scored data, β = 1, R taken on posterior samples of each
# minibatch and on points spread over the latent cloud (on segments between random
# pairs of posterior samples). We penalise the tangent part (weights: tangent
# {glue:text}`ch07-wt`, normal {glue:text}`ch07-wn`): the Γ of the method's name. The
# γ grid is {glue:text}`ch07-gammas`; γ = 0 is the plain VAE. Every γ is trained on
# {glue:text}`ch07-n-seeds` replicates — each a fresh synthetic data set and model seed —
# all models batched into one training loop ({glue:text}`ch07-steps` Adam steps).
#
# **The chosen γ.** One Γ-VAE is compared with the plain VAE throughout: the largest γ
# of the grid whose mean *training* reconstruction error stays within
# {glue:text}`ch07-fit-tol` of the plain VAE's. The rule looks at the fit only, never at
# the scores; the fit claim is then checked on held-out cells.

# %%
glue("ch07-wt", f"{tangent_weight:g}", display=False)
glue("ch07-wn", f"{normal_weight:g}", display=False)
cfg = vae.TrainConfig(latent_dim=latent_dim, hidden=hidden, beta=beta, steps=steps, batch=batch,
                      lr=lr, n_penalty=n_penalty, curvature_mode=curvature_mode, n_dirs=n_dirs,
                      tangent_weight=tangent_weight, normal_weight=normal_weight,
                      scale_free=scale_free, device=device)
t0 = time.perf_counter()
sweep = vae.gamma_sweep(reps, gammas, seeds, cfg, grid_n=grid_n)
print(f"γ sweep: {sweep.model.n_models} VAEs trained and scored in "
      f"{time.perf_counter() - t0:.0f} s")
g_star = vae.choose_gamma(gammas, sweep.rec_train, fit_tolerance)
gi = gammas.index(g_star)
glue("ch07-gstar", f"{g_star:g}", display=False)
fit_change = sweep.rec_test[gi].mean() / sweep.rec_test[0].mean() - 1
glue_values({
    "ch07-rec-plain": sweep.rec_test[0].mean(),
    "ch07-rec-star": sweep.rec_test[gi].mean(),
    "ch07-R-plain": sweep.R[0].mean(),
    "ch07-R-star": sweep.R[gi].mean(),
    "ch07-RT-plain": sweep.R_tangent[0].mean(),
    "ch07-RT-star": sweep.R_tangent[gi].mean(),
    "ch07-RF-plain": sweep.R_scale_free[0].mean(),
    "ch07-RF-star": sweep.R_scale_free[gi].mean(),
    "ch07-spread-plain": sweep.Z[0].std(2).mean(),
    "ch07-spread-star": sweep.Z[gi].std(2).mean(),
})
print(f"chosen γ = {g_star:g}; test reconstruction error {sweep.rec_test[0].mean():.4f} "
      f"(plain) → {sweep.rec_test[gi].mean():.4f}")

# %%
x = np.arange(len(gammas))
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
for arr, lab, st in [(sweep.R, "total", "o-"), (sweep.R_tangent, "tangent (Γ)", "s-"),
                     (sweep.R_normal, "normal", "^-")]:
    errorbar_mean_se(a1, x, arr, fmt=st, label=lab)
a1.set_yscale("log")
a1.set_ylabel("mean curvature R on the latent grid")
a1.legend(title="part of R", fontsize=8)
for arr, lab, st in [(sweep.rec_train, "training cells", "o-"),
                     (sweep.rec_test, "held-out cells", "s-")]:
    errorbar_mean_se(a2, x, arr, fmt=st, label=lab)
a2.axhline((1 + fit_tolerance) * sweep.rec_train[0].mean(), color="grey", ls=":",
           label=f"plain + {100 * fit_tolerance:g} % (training)")
a2.set_ylabel("reconstruction error (MSE, z-scored genes)")
a2.legend(fontsize=8)
for a in (a1, a2):
    a.set_xticks(x, [f"{g:g}" for g in gammas])
    a.set_xlabel("penalty weight γ")
    a.axvline(gi, color="k", lw=0.8, alpha=0.4)
glue_figure("ch07-curvature", fig)

# %% [markdown]
# ## Curvature and fit against γ
#
# ```{glue:figure} ch07-curvature
# :name: fig-ch07-curvature
#
# Left: mean curvature of the decoder on a grid spread over each model's latent cloud
# (mean ± standard error over the replicates; log scale) — total, tangent (Γ) and normal
# parts. Right: reconstruction error (mean squared error per z-scored gene) on the
# training cells and on held-out cells, with the tolerance of the rule that picks γ
# (dotted). The vertical line marks the chosen γ.
# ```
#
# The penalised part falls steeply with γ: at the chosen γ = {glue:text}`ch07-gstar` the
# tangent curvature is {glue:text}`ch07-RT-star:.3g` against
# {glue:text}`ch07-RT-plain:.3g` for the plain VAE, and the total curvature
# {glue:text}`ch07-R-star:.3g` against {glue:text}`ch07-R-plain:.3g`. Part of that fall
# is only a change of scale: the penalty can be lowered by stretching the latent space
# (second derivatives fall as the square of the stretch), and the latent cloud's spread
# per coordinate goes from {glue:text}`ch07-spread-plain:.2f` to
# {glue:text}`ch07-spread-star:.2f`. The claim is therefore judged on the *scale-free*
# curvature, the penalised part divided at each point by E_v‖Jv‖⁴ — a squared curvature
# of the surface in expression space, unchanged when the latent space is stretched:
# {glue:text}`ch07-RF-star:.3g` at the chosen γ against {glue:text}`ch07-RF-plain:.3g`.
# The fit hardly moves: the test error is
# {glue:text}`ch07-rec-star:.4f` against {glue:text}`ch07-rec-plain:.4f`. (Penalising the
# normal part as well, `normal_weight=1`, lowers the curvature more but costs fit much
# faster: bending is what lets the surface follow nonlinear data, whereas Γ only
# concerns how the coordinates run over it.)

# %%
glue("ch07-curv-verdict", VERDICT[claim(
    "gvae_curvature_down", vae.monotone_ratio(sweep.R_scale_free.mean(1)), "<", 1.0,
    ref="Kim et al. 2024, Γ-VAE regulariser (curvature vs γ)",
    detail="max over consecutive γ of R(γ_{k+1})/R(γ_k), R = mean over the latent grid of "
           "the penalised curvature divided by E_v‖Jv‖⁴ at each point (scale-free: "
           "unchanged by a stretch of the latent space), averaged over replicates")],
    display=False)
claim("gvae_fit_kept", fit_change, "<=", 0.10,
      ref="Kim et al. 2024 (regularisation at little cost in reconstruction)",
      detail="relative increase of the held-out reconstruction error at the chosen γ over "
             "the plain VAE, mean over replicates; a consequence of the rule that picks γ "
             "(training error within the tolerance), checked here on held-out cells")

# %% [markdown]
# The first claim's value is the largest ratio between the mean scale-free curvature at
# one γ and at the previous one ({glue:text}`gvae_curvature_down:.3g`; below 1 means a
# strict decrease over the whole grid): the claim is {glue:text}`ch07-curv-verdict`. The
# second is the relative change of the held-out reconstruction error at the chosen γ
# ({glue:text}`gvae_fit_kept:.3g`, must stay within 10 %). It follows from the rule that
# picks γ (training error within {glue:text}`ch07-fit-tol` of the plain VAE's), so it
# tests little more than that the rule carries over to cells the models never saw.
#
# ## Latent spaces
#
# Figure {numref}`fig-ch07-embeddings` shows the first replicate embedded by PCA, by the
# plain VAE and by the Γ-VAE (and UMAP {cite}`mcinnes2018umap` where `umap-learn` is
# installed — it is in `requirements.txt`, but the chapter runs without it).

# %%
Zp = scores.pca_embed(data.X, latent_dim, fit_rows=~reps[0].test)
Zu = scores.umap_embed(data.X, latent_dim, seed=seeds[0]) if umap_baseline else None
if Zu is None:
    print("UMAP baseline skipped: " + ("umap-learn is not installed" if umap_baseline
                                       else "umap_baseline=False"))
panels = [("PCA", Zp), ("plain VAE (γ = 0)", sweep.Z[0, 0]),
          (f"Γ-VAE (γ = {g_star:g})", sweep.Z[gi, 0])] + ([("UMAP", Zu)] if Zu is not None
                                                            else [])
cmap = plt.get_cmap("tab20")
fig, axes = plt.subplots(2, len(panels), figsize=(3.4 * len(panels), 6.4), squeeze=False)
prog = data.progenitor
for j, (title, Z) in enumerate(panels):
    Z = scores.as_plane(Z)
    ax = axes[0, j]
    for k, name in enumerate(data.label_names):
        sel = data.labels == k
        ax.scatter(Z[sel, 0], Z[sel, 1], s=3, color=cmap(k % 20), label=name, rasterized=True)
    ax.set_title(title, fontsize=10)
    ax = axes[1, j]
    ax.scatter(Z[~prog, 0], Z[~prog, 1], s=2, color="0.85", rasterized=True)
    for f, name in enumerate(data.fate_names):
        sel = prog & (data.fate == f)
        ax.scatter(Z[sel, 0], Z[sel, 1], s=3, color=["tab:red", "tab:blue", "tab:green",
                                                     "tab:purple"][f % 4],
                   label=f"progenitor → {name}", rasterized=True)
    for a in axes[:, j]:
        a.set_xlabel("coordinate 1")
        a.set_ylabel("coordinate 2")
axes[0, -1].legend(fontsize=6, markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5))
if data.fate_names:
    axes[1, -1].legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5))
glue_figure("ch07-embeddings", fig)

# %% [markdown]
# ```{glue:figure} ch07-embeddings
# :name: fig-ch07-embeddings
#
# The first replicate ({glue:text}`ch07-source`) in two dimensions: PCA, the plain VAE,
# the Γ-VAE at the chosen γ (and UMAP when installed). Top: cells coloured by cluster.
# Bottom: the progenitors coloured by their hidden eventual fate, all other cells grey.
# Axes are latent (or principal) coordinates, without units.
# ```
#
# ## Long-range structure
#
# For each model we take the centroid of every cluster in the latent space and ask how
# well the distances between them follow the true distances between the clusters' centres
# in the {glue:text}`ch07-true-dim`-dimensional latent truth (for real data: their
# distances in preprocessed expression space), by Spearman's rank correlation over all
# pairs of the {glue:text}`ch07-n-clusters` clusters.

# %%
pca_lr = np.array([scores.centroid_spearman(scores.pca_embed(r.X, latent_dim, ~r.test),
                                            r.labels, r.reference) for r in reps])
lr_plain, lr_star = sweep.long_range[0].mean(), sweep.long_range[gi].mean()
lr_diff = sweep.long_range[gi] - sweep.long_range[0]
lr_mean, lr_se = mean_se(lr_diff)
glue_values({
    "ch07-lr-plain": lr_plain,
    "ch07-lr-star": lr_star,
    "ch07-lr-pca": pca_lr.mean(),
    "ch07-lr-diff": lr_mean,
    "ch07-lr-se": lr_se,
})
glue("ch07-lr-wins", int((lr_diff > 0).sum()), display=False)
lr_umap = (scores.centroid_spearman(Zu, reps[0].labels, reps[0].reference) if Zu is not None
           else float("nan"))
glue("ch07-lr-umap", "not computed" if Zu is None else
     f"{lr_umap:.3f} (plain VAE {sweep.long_range[0, 0]:.3f}, Γ-VAE "
     f"{sweep.long_range[gi, 0]:.3f} on the same replicate)", display=False)
print("long-range Spearman, mean over replicates:",
      ", ".join(f"γ={g:g}: {v:.3f}" for g, v in zip(gammas, sweep.long_range.mean(1),
                                                    strict=True)), f"| PCA {pca_lr.mean():.3f}")
glue("ch07-lr-verdict", VERDICT[claim(
    "gvae_long_range", mean_bound(lr_diff, "lower"), ">", 0.0,
    ref="Kim et al. 2024, abstract and bulk RNA-seq results (mesoscale structure)",
    detail="lower end of the 95 % confidence interval (Student's t over replicates) of the "
           "mean paired difference, Γ-VAE (chosen γ) minus plain VAE, of the Spearman "
           "correlation between latent centroid distances and true distances")],
    display=False)

# %% [markdown]
# At the chosen γ the correlation is {glue:text}`ch07-lr-star:.3f` against
# {glue:text}`ch07-lr-plain:.3f` for the plain VAE: a difference of
# {glue:text}`ch07-lr-diff:.3f` ± {glue:text}`ch07-lr-se:.3f` (paired standard error
# over replicates), the Γ-VAE ahead in {glue:text}`ch07-lr-wins` of
# {glue:text}`ch07-n-seeds` replicates. PCA, a linear map, scores
# {glue:text}`ch07-lr-pca:.3f`: a flat map is the natural keeper of large distances.
# UMAP, which keeps neighbourhoods and nothing else, scores {glue:text}`ch07-lr-umap` on
# the first replicate (it is computed there only, to keep the page's run time short).
#
# **How the comparative claims are judged.** This claim and the two below compare the
# Γ-VAE with the plain VAE over replicates. A difference of means has a sign even when
# there is no effect, and that sign would then change with the notebook's seed; so each
# claim is recorded as the end of the 95 % confidence interval (Student's t over the
# paired replicate differences) on the side the paper's statement needs: here the lower
# end, {glue:text}`gvae_long_range:.3f`, must be above zero. This asks more than the
# sign of the mean, never less; when the effect is real and larger than the replicate
# noise, it passes.
#
# **At this scale the claim is {glue:text}`ch07-lr-verdict`.** In our earlier trials
# with other seeds and settings (notebook seeds 0–5 with 8 replicates each, 12
# replicates, hidden layers twice as wide and longer training, 100 genes instead of 60,
# fewer or more transit cells, the total instead of the tangent penalty) the mean
# difference stayed within a few hundredths of zero, of either sign, and never clear of
# the spread between replicates — the arrangement a 2-D map gives to an 8-D truth
# depends far more on the data set and the seed than on the penalty. Since each
# replicate's plain VAE and Γ-VAEs share their initial weights, minibatches and noise
# (common random numbers), the six-seed sweep finds the difference small but below zero
# at every seed: the penalty, if anything, costs a little long-range structure here.
# Where the claim fails it is declared so at the `ci` scale
# (see the claims table; `hyperribbon sweep 07 notebooks/sweeps/07_seeds.yml` repeats
# this chapter over six seeds); what would settle it is the `paper` profile (many more
# replicates, larger networks trained to convergence, where a plain VAE bends much more)
# or the real TCGA/GTEx data, on which the paper's statement was made.
#
# ## Held-out clusters
#
# The paper's test of generalisation: train without one cluster, embed it with the
# model that never saw it, and compare with where the model trained on everything puts
# it. The two latent spaces are aligned by an orthogonal Procrustes fit (rotation,
# reflection, translation) on the cells they share; the score is the distance between
# the held-out cluster's two centroids divided by its radius (root-mean-square distance
# of its cells to its centroid), and the fraction of the re-embedded cells' 15 nearest
# neighbours that belong to the cluster. The held-out clusters are chosen by a rule that
# ignores the scores: interior tissues of the arc, evenly spaced (their programmes are
# shared with the tissues kept — the situation of an unseen cancer type whose relatives
# are in the training set).

# %%
held = expression.holdout_clusters(data, n_holdout)
glue("ch07-held", ", ".join(data.label_names[c] for c in held), display=False)
t0 = time.perf_counter()
ho = vae.heldout_sweep(reps, held, [0.0, g_star], seeds, cfg, sweep.Z[[0, gi]])
print(f"held-out clusters ({', '.join(data.label_names[c] for c in held)}): "
      f"{len(held) * 2 * n_seeds} VAEs in {time.perf_counter() - t0:.0f} s")
ood_plain, ood_star = ho.ratio[:, 0].mean(), ho.ratio[:, 1].mean()
ood_diff = (ho.ratio[:, 1] - ho.ratio[:, 0]).mean(0)  # per replicate, mean over clusters
ood_better = int((ood_diff < 0).sum())
ood_mean, ood_se = mean_se(ood_diff)
glue_values({
    "ch07-ood-plain": ood_plain,
    "ch07-ood-star": ood_star,
    "ch07-ood-wins": ood_better,
    "ch07-ood-rel": ood_star / ood_plain,
    "ch07-ood-diff": ood_mean,
    "ch07-ood-se": ood_se,
    "ch07-knn-plain": ho.knn[:, 0].mean(),
    "ch07-knn-star": ho.knn[:, 1].mean(),
})
print(f"displacement / radius: plain {ood_plain:.3f}, Γ-VAE {ood_star:.3f}; 15-NN agreement "
      f"{ho.knn[:, 0].mean():.3f} → {ho.knn[:, 1].mean():.3f}")
glue("ch07-ood-verdict", VERDICT[claim(
    "gvae_ood", mean_bound(ood_diff, "upper"), "<", 0.0,
    ref="Kim et al. 2024, bulk RNA-seq: unseen cancer types re-embedded as if trained on",
    detail="upper end of the 95 % confidence interval (Student's t over replicates) of the "
           "mean paired difference, Γ-VAE minus plain VAE, of the held-out centroid's "
           "displacement over its radius after Procrustes (mean over held-out clusters)")],
    display=False)

# %%
c0 = held[0]
lab0 = reps[0].labels
hm = lab0 == c0
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, k, title in [(axes[0], 0, "plain VAE (γ = 0)"), (axes[1], 1, f"Γ-VAE (γ = {g_star:g})")]:
    Zw, Zo = sweep.Z[[0, gi][k], 0], ho.Z_without[0, k, 0]
    moved = scores.as_plane(scores.align_heldout(Zw, Zo, hm))
    Zw = scores.as_plane(Zw)
    ax.scatter(Zw[~hm, 0], Zw[~hm, 1], s=2, color="0.8", label="other cells", rasterized=True)
    ax.scatter(Zw[hm, 0], Zw[hm, 1], s=4, color="tab:blue",
               label=f"{data.label_names[c0]}, trained with", rasterized=True)
    ax.scatter(moved[:, 0], moved[:, 1], s=4, color="tab:orange", marker="x",
               label=f"{data.label_names[c0]}, never seen (aligned)", rasterized=True)
    ax.set_title(f"{title}: displacement/radius {ho.ratio[0, k, 0]:.2f}", fontsize=10)
    ax.set_xlabel("latent coordinate 1")
    ax.set_ylabel("latent coordinate 2")
axes[1].legend(fontsize=7, markerscale=3)
glue_figure("ch07-heldout", fig)

# %% [markdown]
# ```{glue:figure} ch07-heldout
# :name: fig-ch07-heldout
#
# Re-embedding a held-out cluster ({glue:text}`ch07-held`; shown: the first, in the first
# replicate). Blue: where the model trained on all cells puts it. Orange crosses: where
# the model that never saw it puts it, after aligning its latent space to the first by
# Procrustes on the shared cells. Left the plain VAE, right the Γ-VAE; the titles give
# the displacement of the centroid over the cluster's radius.
# ```
#
# Averaged over replicates and held-out clusters, the held-out centroid moves by
# {glue:text}`ch07-ood-star:.2f` cluster radii with the Γ-VAE against
# {glue:text}`ch07-ood-plain:.2f` with the plain VAE (ratio
# {glue:text}`ch07-ood-rel:.2f`; difference {glue:text}`ch07-ood-diff:.2f` ±
# {glue:text}`ch07-ood-se:.2f`, paired standard error), and the share of its re-embedded
# cells whose 15 nearest neighbours belong to it goes from
# {glue:text}`ch07-knn-plain:.2f` to {glue:text}`ch07-knn-star:.2f`; the Γ-VAE moves it
# less in {glue:text}`ch07-ood-wins` of {glue:text}`ch07-n-seeds` replicates. The claim
# records the upper end of the 95 % confidence interval of that difference,
# {glue:text}`gvae_ood:.2f`, which must be below zero.
#
# **At this scale the claim is {glue:text}`ch07-ood-verdict`.** The paper's picture — a decoder
# whose coordinates run evenly over its manifold extends to an unseen mixture of known
# programmes in the place the full model gives it, where a freely bent one need not — did
# not show in our trials. Pooled over notebook seeds 0–5 with 8 replicates each and two held-out
# tissues (96 paired re-embeddings), the Γ-VAE moved the unseen cluster less in fewer
# than half of the pairs, and the paired difference of the log displacement was not
# distinguishable from zero; with the plain mean of the ratio, as the claim was first
# written, the verdict followed the seed (it passed for three of the six seeds and
# failed for the others), because the ratio is heavy-tailed: a few replicates in which
# one of the two models sends the unseen cluster far away dominate the mean. Where the
# claim fails it is declared so at the `ci` scale; more replicates and converged networks (the
# `paper` profile), or the real TCGA data with its many cancer types, would settle it.
#
# ## Fate of the progenitors
#
# Finally the single-cell claim: can the eventual fate of a progenitor be read from its
# position in the latent space? For each model, a logistic regression on the latent
# coordinates of the progenitors, cross-validated (5 stratified folds), predicts the
# hidden fate; the score is the area under the ROC curve of the pooled out-of-fold
# predictions.

# %%
if np.all(np.isnan(sweep.fate_auroc)):
    print(f"{data.source}: no fate labels, so no fate analysis; gvae_fate is not defined")
    fate_star = fate_plain = float("nan")
else:
    fate_plain, fate_star = sweep.fate_auroc[0].mean(), sweep.fate_auroc[gi].mean()
fate_diff = sweep.fate_auroc[gi] - sweep.fate_auroc[0]
fate_mean, fate_se = mean_se(fate_diff)
glue("ch07-fate-diff", fate_mean, display=False)
glue("ch07-fate-se", fate_se, display=False)
glue("ch07-fate-wins", int(np.sum(fate_diff > 0)), display=False)
fate_pca = np.array([scores.fate_auroc(scores.pca_embed(r.X, latent_dim, ~r.test), r.fate)
                     if r.fate is not None else np.nan for r in reps])
fate_true = np.array([scores.fate_auroc(d.latent, np.where(d.progenitor, d.fate, -1))
                      if d.latent is not None else np.nan for d, _ in pairs])
glue_values({
    "ch07-fate-plain": fate_plain,
    "ch07-fate-star": fate_star,
    "ch07-fate-pca": np.nanmean(fate_pca) if np.any(np.isfinite(fate_pca))
        else float("nan"),
    "ch07-fate-true": np.nanmean(fate_true) if np.any(np.isfinite(fate_true))
        else float("nan"),
})
fig, ax = plt.subplots(figsize=(7.5, 3.6))
errorbar_mean_se(ax, x, sweep.fate_auroc, fmt="o-", label="VAE (mean ± s.e. over replicates)")
for s in range(n_seeds):
    ax.plot(x, sweep.fate_auroc[:, s], color="tab:blue", alpha=0.2, lw=0.8)
if np.any(np.isfinite(fate_pca)):
    ax.axhline(np.nanmean(fate_pca), color="tab:green", ls="--", label="PCA")
if np.any(np.isfinite(fate_true)):
    ax.axhline(np.nanmean(fate_true), color="k", ls=":", label="true latent positions")
ax.axvline(gi, color="k", lw=0.8, alpha=0.4)
ax.set_xticks(x, [f"{g:g}" for g in gammas])
ax.set_xlabel("penalty weight γ")
ax.set_ylabel("fate AUROC of progenitors")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
glue_figure("ch07-fate", fig)
glue("ch07-fate-verdict", VERDICT[claim(
    "gvae_fate", mean_bound(fate_diff, "lower"), ">", 0.0,
    ref="Kim et al. 2024, single-cell lineage tracing (Weinreb et al. 2020): fate "
        "separation of undifferentiated cells",
    detail="lower end of the 95 % confidence interval (Student's t over replicates) of the "
           "mean paired difference, Γ-VAE minus plain VAE, of the cross-validated "
           "logistic-regression AUROC of the progenitors' hidden fate from latent coordinates")],
    display=False)

# %% [markdown]
# ```{glue:figure} ch07-fate
# :name: fig-ch07-fate
#
# Cross-validated AUROC of predicting a progenitor's hidden fate from its latent
# coordinates, against γ (faint lines: single replicates). Dashed: PCA; dotted: the true
# latent positions (the ceiling set by how weak the hidden shift is). The vertical line
# marks the chosen γ.
# ```
#
# The fate is read with an AUROC of {glue:text}`ch07-fate-star:.3f` from the Γ-VAE
# against {glue:text}`ch07-fate-plain:.3f` from the plain VAE: a difference of
# {glue:text}`ch07-fate-diff:.3f` ± {glue:text}`ch07-fate-se:.3f` (paired standard error;
# the claim's lower confidence end is {glue:text}`gvae_fate:.3f`), the
# Γ-VAE ahead in {glue:text}`ch07-fate-wins` of {glue:text}`ch07-n-seeds` replicates. The
# true positions allow {glue:text}`ch07-fate-true:.3f`; PCA, whose two axes are spent on
# the largest variations (tissues, other programmes), only {glue:text}`ch07-fate-pca:.3f`.
#
# **At this scale the claim is {glue:text}`ch07-fate-verdict`.** Both VAEs keep the
# direction from the progenitor pool to the two fates — the branches connect them, so even a freely
# bent map must — and both stay about equally far below the ceiling set by the true
# positions. In our trials (the settings listed above, including a sparse transit
# population so that the fates are reached mostly through long-range relations, and
# notebook seeds 0–5) the difference stayed within a hundredth of zero, of either sign,
# and the lower end of its confidence interval was below zero at every seed, also with
# common random numbers, which shrink its standard error to a few thousandths. Where
# the claim fails it is
# declared so at the `ci` scale; the real lineage-tracing data
# (`dataset=weinreb`), on which the paper made it, or the `paper` profile would settle
# it.
#
# ## Where this differs from the paper
#
# * **Data.** The paper uses TCGA + GTEx bulk RNA-seq (top ~5 000 protein-coding genes)
#   and the Weinreb et al. single-cell data; here, offline, a synthetic generator with
#   known geometry (a few thousand cells and {glue:text}`ch07-n-genes` genes per
#   replicate). The loaders of both real data sets are in `hyperribbon.expression`
#   (tested on small files in the real formats); `dataset=xena` or `dataset=weinreb`
#   runs this notebook on them where they have been downloaded.
# * **The penalty's form and constants.** The paper's exact normalisation is not
#   available. Ours is the sphere average of the squared second directional derivative,
#   which for a 2-D latent space is computed exactly; we penalise its tangent (Γ) part.
#   The paper's network sizes, β and γ values are not known to us; ours are small
#   (hidden layers of {glue:text}`ch07-hidden` units, latent dimension
#   {glue:text}`ch07-latent-dim`) so that {glue:text}`ch07-n-models` VAEs train in a few
#   minutes on two CPU cores.
# * **Scale.** At this scale the long-range, held-out and fate effects, if present, are
#   of the order of the spread between replicates (verdicts: long-range structure
#   {glue:text}`ch07-lr-verdict`, held-out clusters {glue:text}`ch07-ood-verdict`, fate
#   {glue:text}`ch07-fate-verdict`); the `paper` profile (more replicates, cells, genes
#   and steps, on a GPU)
#   is where they should be measured with confidence.
# * **Claims as tested here** are differences between means over replicates of the
#   Γ-VAE at the chosen γ and the plain VAE, judged by the end of their 95 % confidence
#   interval; the paper shows the effects on single trained models and figures.

# %%
glue("ch07-hidden", hidden, display=False)
glue("ch07-n-models", sweep.model.n_models + len(held) * 2 * n_seeds, display=False)
print(f"chapter 7 finished in {time.perf_counter() - t_start:.0f} s")
