"""Unit tests of hyperribbon.vae: the curvature penalty against analytic facts, the
batched VAE, and the analyses (Procrustes, AUROC, logistic regression, ...)."""

import math
import sys

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import pdist
from torch.func import jvp

from hyperribbon import vae

torch.set_default_dtype(torch.float32)
F64 = torch.float64


# ---------------------------------------------------------------------------------------
# Maps with known derivatives

def quadratic(A: torch.Tensor, c: torch.Tensor, b: torch.Tensor):
    """f_k(z) = ½ zᵀA_k z + c_k·z + b_k: Hessian entries A_k[i, j], Jacobian A z + c."""
    return lambda z: 0.5 * torch.einsum("...i,kij,...j->...k", z, A, z) + z @ c.T + b


def sym(rng, D, d):
    A = rng.normal(size=(D, d, d))
    return torch.tensor(A + A.transpose(0, 2, 1), dtype=F64)


def exact_total(A: torch.Tensor) -> torch.Tensor:
    """(‖Σ_i A_ii‖² + 2 Σ_ij ‖A_ij‖²) / (d(d+2)) for a quadratic map (constant)."""
    d = A.shape[-1]
    tr = torch.einsum("kii->k", A)
    return (tr.pow(2).sum() + 2 * A.pow(2).sum()) / (d * (d + 2))


def test_penalty_is_zero_for_an_affine_decoder():
    rng = np.random.default_rng(0)
    W = torch.tensor(rng.normal(size=(3, 7)), dtype=F64)
    z = torch.tensor(rng.normal(size=(5, 3)), dtype=F64)
    for mode in ("exact", "random"):
        R = vae.curvature(lambda x: x @ W + 1.0, z, mode=mode, split=True)
        for part in ("total", "tangent", "normal"):
            assert torch.allclose(R[part], torch.zeros(5, dtype=F64), atol=1e-12)


def test_exact_penalty_of_a_quadratic_decoder_is_analytic():
    rng = np.random.default_rng(1)
    for d in (1, 2, 3):
        A = sym(rng, 6, d)
        f = quadratic(A, torch.tensor(rng.normal(size=(6, d)), dtype=F64),
                      torch.zeros(6, dtype=F64))
        z = torch.tensor(rng.normal(size=(4, d)), dtype=F64)
        R = vae.curvature(f, z, mode="exact")["total"]
        assert torch.allclose(R, exact_total(A).expand(4), rtol=1e-12)


def test_sphere_average_matches_quadrature_on_the_circle():
    # for d = 2, E_v‖f_vv‖² is the mean over the angle of a trigonometric polynomial of
    # degree 4: an equispaced rule with 16 nodes integrates it exactly
    rng = np.random.default_rng(2)
    A = sym(rng, 5, 2)
    th = torch.arange(16, dtype=F64) * (2 * math.pi / 16)
    v = torch.stack([th.cos(), th.sin()], -1)
    fvv = torch.einsum("ti,kij,tj->tk", v, A, v)
    H = {(0, 0): A[:, 0, 0], (0, 1): A[:, 0, 1], (1, 1): A[:, 1, 1]}
    assert torch.isclose(vae.sphere_average_sq(H, 2), fvv.pow(2).sum(-1).mean(), rtol=1e-12)


def test_metric_quartic_matches_quadrature_on_the_circle():
    J = torch.tensor(np.random.default_rng(3).normal(size=(6, 2)), dtype=F64)
    th = torch.arange(16, dtype=F64) * (2 * math.pi / 16)
    v = torch.stack([th.cos(), th.sin()], -1)
    assert torch.isclose(vae.metric_quartic(J), (v @ J.T).pow(2).sum(-1).pow(2).mean(),
                         rtol=1e-12)


def test_random_direction_estimator_is_unbiased():
    rng = np.random.default_rng(4)
    A = sym(rng, 8, 3)
    f = quadratic(A, torch.tensor(rng.normal(size=(8, 3)), dtype=F64),
                  torch.zeros(8, dtype=F64))
    z = torch.tensor(rng.normal(size=(1, 3)), dtype=F64)
    exact = vae.curvature(f, z, mode="exact", split=True)
    # 4000 independent one-direction estimates at the same point, in one call
    r = vae.curvature(f, z.expand(4000, 3).clone(), mode="random", n_dirs=1, split=True,
                      generator=torch.Generator().manual_seed(0))
    for k, xs in r.items():
        xs = xs.numpy()
        se = xs.std(ddof=1) / math.sqrt(len(xs))
        assert abs(xs.mean() - exact[k].item()) < 4 * se, k
        assert se < 0.05 * exact[k].item()  # the check has teeth


def test_tangent_and_normal_parts_sum_to_the_total_and_match_explicit_projection():
    rng = np.random.default_rng(5)
    p = vae.init_params([0], 9, 2, 6, dtype=F64)
    z = torch.tensor(rng.normal(size=(1, 4, 2)), dtype=F64)
    fn = vae.decoder_fn(p)
    R = vae.curvature(fn, z, mode="exact", split=True)
    assert torch.allclose(R["tangent"] + R["normal"], R["total"], rtol=1e-12)
    # independent: project every Hessian entry explicitly with the pseudo-inverse
    J, H = vae.hessian_entries(fn, z)
    P = J @ torch.linalg.pinv(J)
    HN = {k: h - (P @ h[..., None])[..., 0] for k, h in H.items()}
    assert torch.allclose(R["normal"], vae.sphere_average_sq(HN, 2), rtol=1e-8)
    assert (R["tangent"] > 0).all() and (R["normal"] > 0).all()


def test_scale_free_penalty_is_invariant_under_latent_rescaling():
    p = vae.init_params([1], 7, 2, 5, dtype=F64)
    fn = vae.decoder_fn(p)
    z = torch.randn(1, 3, 2, dtype=F64)
    c = 2.5
    a = vae.curvature(fn, z, split=True, scale_free=True)
    b = vae.curvature(lambda w: fn(w / c), z * c, split=True, scale_free=True)
    plain = vae.curvature(lambda w: fn(w / c), z * c)["total"]
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-10)
    assert torch.allclose(plain, vae.curvature(fn, z)["total"] / c ** 4, rtol=1e-10)


def test_hessian_entries_second_directional_and_jacobian_match_a_quadratic():
    rng = np.random.default_rng(6)
    A = sym(rng, 4, 3)
    C = torch.tensor(rng.normal(size=(4, 3)), dtype=F64)
    f = quadratic(A, C, torch.ones(4, dtype=F64))
    z = torch.tensor(rng.normal(size=(2, 3)), dtype=F64)
    J, H = vae.hessian_entries(f, z)
    assert torch.allclose(J, torch.einsum("kij,nj->nki", A, z) + C, rtol=1e-12)
    assert torch.allclose(vae.jacobian(f, z), J, rtol=1e-12)
    for (i, j), h in H.items():
        assert torch.allclose(h, A[:, i, j].expand(2, 4), rtol=1e-12)
    v = torch.tensor(rng.normal(size=(2, 3)), dtype=F64)
    Jv, fvv = vae.second_directional(f, z, v)
    assert torch.allclose(Jv, (J @ v[..., None])[..., 0], rtol=1e-12)
    assert torch.allclose(fvv, torch.einsum("ni,kij,nj->nk", v, A, v), rtol=1e-12)


def test_jacobian_matches_central_differences():
    p = vae.init_params([2], 5, 3, 4, dtype=F64)
    fn = vae.decoder_fn(p)
    z = torch.randn(1, 2, 3, dtype=F64)
    J = vae.jacobian(fn, z)
    eps = 1e-6
    for i in range(3):
        e = torch.zeros_like(z)
        e[..., i] = eps
        assert torch.allclose(J[..., i], (fn(z + e) - fn(z - e)) / (2 * eps), atol=1e-8)


def test_projector_helpers_against_linear_algebra():
    rng = np.random.default_rng(7)
    J = torch.tensor(rng.normal(size=(3, 8, 2)), dtype=F64)
    h = torch.tensor(rng.normal(size=(3, 8)), dtype=F64)
    assert torch.allclose(vae.tangent_coords(J, h), (J.transpose(-1, -2) @ h[..., None])[..., 0])
    assert torch.allclose(vae.inverse_metric(J), torch.linalg.inv(J.transpose(-1, -2) @ J),
                          rtol=1e-8)
    Ph = vae.tangent_projector_apply(J, h)
    assert torch.allclose(vae.tangent_projector_apply(J, Ph), Ph, rtol=1e-8)  # idempotent
    assert torch.allclose(vae.tangent_coords(J, h - Ph), torch.zeros(3, 2, dtype=F64),
                          atol=1e-8)  # the rest is orthogonal to the columns
    inside = (J @ torch.tensor([[1.0], [-2.0]], dtype=F64))[..., 0]
    assert torch.allclose(vae.tangent_projector_apply(J, inside), inside, rtol=1e-8)


def test_random_unit_directions_are_isotropic_unit_vectors():
    v = vae.random_unit((20000, 3), torch.Generator().manual_seed(0), F64)
    assert torch.allclose(v.norm(dim=-1), torch.ones(20000, dtype=F64))
    cov = (v.T @ v / len(v)).numpy()
    assert np.allclose(cov, np.eye(3) / 3, atol=0.01)


# ---------------------------------------------------------------------------------------
# The batched VAE

def test_taylor_mode_decoder_derivatives_equal_nested_jvp():
    p = vae.init_params([0, 1], 6, 3, 5, dtype=F64)
    z = torch.randn(2, 4, 3, dtype=F64)
    dirs = torch.randn(2, 2, 4, 3, dtype=F64)
    first, second = vae.decoder_taylor(p, z, dirs, [(0, 0), (0, 1)])
    fn = vae.decoder_fn(p)
    for a in range(2):
        assert torch.allclose(first[a], jvp(fn, (z,), (dirs[a],))[1], rtol=1e-10)
    for k, (a, b) in enumerate([(0, 0), (0, 1)]):
        mixed = jvp(lambda w, a=a: jvp(fn, (w,), (dirs[a],))[1], (z,), (dirs[b],))[1]
        assert torch.allclose(second[k], mixed, rtol=1e-10)


@pytest.mark.parametrize("kw", [{}, {"split": True}, {"split": True, "scale_free": True}])
def test_decoder_curvature_equals_the_generic_curvature(kw):
    p = vae.init_params([3, 4], 7, 2, 5, dtype=F64)
    z = torch.randn(2, 5, 2, dtype=F64)
    a = vae.curvature(vae.decoder_fn(p), z, **kw)
    b = vae.decoder_curvature(p, z, **kw)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-10)
    r = vae.decoder_curvature(p, z, mode="random", n_dirs=3, split=True,
                              generator=torch.Generator().manual_seed(0))
    assert torch.allclose(r["tangent"] + r["normal"], r["total"])


def test_init_params_per_model_seed_and_shapes():
    a = vae.init_params([5, 6], 10, 2, 8)
    b = vae.init_params([6], 10, 2, 8)
    assert a["e1.W"].shape == (2, 10, 8) and a["d3.W"].shape == (2, 8, 10)
    assert a["e2.W"].shape == (2, 8, 4)
    for k in a:
        assert torch.equal(a[k][1], b[k][0])  # a model does not depend on its neighbours
    with pytest.raises(ValueError, match="likelihood"):
        vae.init_params([0], 3, 2, likelihood="poisson")


def test_encode_decode_match_a_plain_mlp():
    p = vae.init_params([0, 1], 6, 2, 5)
    x = torch.randn(2, 3, 6)
    mu, logvar = vae.encode(p, x)
    h = torch.tanh(x[1] @ p["e1.W"][1] + p["e1.b"][1])
    out = h @ p["e2.W"][1] + p["e2.b"][1]
    assert torch.allclose(mu[1], out[:, :2], atol=1e-6)
    assert torch.allclose(logvar[1], out[:, 2:], atol=1e-6)
    z = torch.randn(2, 3, 2)
    h = torch.tanh(torch.tanh(z[0] @ p["d1.W"][0] + p["d1.b"][0]) @ p["d2.W"][0] + p["d2.b"][0])
    assert torch.allclose(vae.decode(p, z)[0], h @ p["d3.W"][0] + p["d3.b"][0], atol=1e-6)
    assert torch.equal(vae.decoder_fn(p)(z), vae.decode(p, z))


def test_likelihoods_and_kl_against_scipy():
    rng = np.random.default_rng(8)
    x, m, lv = (torch.tensor(rng.normal(size=(3, 4)), dtype=F64) for _ in range(3))
    want = -stats.norm.logpdf(x, m, np.exp(0.5 * lv.numpy())).sum(-1)
    assert np.allclose(vae.gaussian_nll(x, m, lv).numpy(), want)
    k = torch.tensor(rng.integers(0, 30, size=(3, 4)), dtype=F64)
    mu, r = torch.tensor(rng.uniform(0.5, 20, (3, 4)), dtype=F64), 3.0
    want = -stats.nbinom.logpmf(k.numpy(), r, r / (r + mu.numpy())).sum(-1)
    got = vae.nb_nll(k, mu.log(), torch.full((3, 4), math.log(r), dtype=F64))
    assert np.allclose(got.numpy(), want)
    s = torch.tensor(rng.uniform(0.2, 2, (3, 4)), dtype=F64)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m, s),
                                            torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(vae.kl_standard_normal(m, 2 * s.log()), ref)


def test_penalty_points_lie_in_the_cloud():
    mu = torch.rand(2, 50, 2) * 4 - 2
    lv = torch.full((2, 50, 2), -20.0)  # posterior samples = means
    zp = vae.penalty_points(mu, lv, 40, torch.Generator().manual_seed(0))
    assert zp.shape == (2, 40, 2)
    lo, hi = mu.amin(1, keepdim=True), mu.amax(1, keepdim=True)
    assert ((zp >= lo - 1e-3) & (zp <= hi + 1e-3)).all()


def test_loss_terms_penalise_only_the_chosen_models():
    p = vae.init_params([0, 1, 2], 5, 2, 4)
    x = torch.randn(3, 8, 5)
    t = vae.loss_terms(p, x, vae.TrainConfig(hidden=4, n_penalty=6),
                       torch.Generator().manual_seed(0), penalised=torch.tensor([1]))
    assert t["R"][0] == 0 and t["R"][2] == 0 and t["R"][1] > 0
    assert t["rec"].shape == (3,) and (t["kl"] >= 0).all()


@pytest.fixture(scope="module")
def tiny():
    """Two clusters on a curved 1-D arc in 12 dimensions, and models trained on it."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 3, 240)
    lab = (t > 1.5).astype(int)
    W = rng.normal(size=(2, 12))
    X = np.stack([np.cos(t), np.sin(t)], 1) @ W + 0.05 * rng.normal(size=(240, 12))
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    cfg = vae.TrainConfig(steps=150, batch=32, hidden=16, n_penalty=16, lr=5e-3)
    model = vae.train(X, [0.0, 0.0, 3.0], [0, 1, 0], cfg)
    return {"X": X, "labels": lab, "t": t, "model": model, "cfg": cfg}


def test_train_is_deterministic_lowers_the_loss_and_gamma_lowers_curvature(tiny):
    m = tiny["model"]
    assert m.history[-20:].mean(0)[0] < m.history[:20].mean(0)[0]
    again = vae.train(tiny["X"], [0.0, 0.0, 3.0], [0, 1, 0], tiny["cfg"])
    assert all(torch.equal(m.params[k], again.params[k]) for k in m.params)
    Z = vae.embed(m, tiny["X"])
    R = vae.curvature_on(m, vae.latent_grid(Z[0], 8), split=False)["total"].mean(1)
    assert R[2] < R[0]
    assert m.select([2]).gammas.tolist() == [3.0]
    with pytest.raises(ValueError, match="gamma"):
        vae.train(tiny["X"], [-1.0], [0], tiny["cfg"])


def test_embed_and_reconstruction_error_match_encode_decode(tiny):
    m = tiny["model"].select([0])
    X = tiny["X"][:10]
    mu, _ = vae.encode(m.params, torch.tensor(X)[None])
    assert np.allclose(vae.embed(m, X)[0], mu[0].detach().numpy(), atol=1e-6)
    out = vae.decode(m.params, mu)[0].detach().numpy()
    assert np.isclose(vae.reconstruction_error(m, X)[0], ((out - X) ** 2).mean(), rtol=1e-5)


def test_curvature_on_equals_decoder_curvature(tiny):
    m = tiny["model"]
    Z = np.random.default_rng(0).normal(size=(7, 2))
    got = vae.curvature_on(m, Z, split=True, chunk=3)
    want = vae.decoder_curvature(m.params, torch.tensor(Z, dtype=torch.float32)[None]
                                 .expand(3, -1, -1).contiguous(), split=True)
    for k in want:
        assert np.allclose(got[k], want[k].numpy(), rtol=1e-3, atol=1e-6)


def test_latent_grid_covers_the_quantile_box():
    Z = np.random.default_rng(0).normal(size=(500, 2))
    g = vae.latent_grid(Z, 5, quantiles=(0.1, 0.9))
    assert g.shape == (25, 2)
    assert np.allclose(g.min(0), np.quantile(Z, 0.1, axis=0))
    assert np.allclose(g.max(0), np.quantile(Z, 0.9, axis=0))
    r = vae.latent_grid(np.random.default_rng(1).normal(size=(100, 6)), 10, max_points=50)
    assert r.shape == (50, 6)


# ---------------------------------------------------------------------------------------
# Analyses

def test_pca_recovers_a_planted_plane():
    rng = np.random.default_rng(9)
    P = rng.normal(size=(300, 2)) * [3.0, 1.0]
    Q, _ = np.linalg.qr(rng.normal(size=(10, 2)))
    X = P @ Q.T + 5.0
    Z = vae.pca_embed(X, 2)
    assert np.allclose(pdist(Z), pdist(P - P.mean(0)), atol=1e-8)


def test_centroids_pairwise_and_spearman():
    Z = np.array([[0.0, 0], [2, 0], [10, 0], [12, 0], [0, 5], [0, 7]])
    lab = np.array([0, 0, 1, 1, 2, 2])
    C = vae.centroids(Z, lab)
    assert np.allclose(C, [[1, 0], [11, 0], [0, 6]])
    assert np.allclose(vae.pairwise(C), pdist(C))
    # a rotated and scaled copy has Spearman 1 against the true distances
    R = np.array([[0.0, -1], [1, 0]])
    assert vae.centroid_spearman(3 * Z @ R, lab, pdist(C)) == pytest.approx(1.0)


def test_procrustes_recovers_a_rigid_motion_and_displacement_ratio():
    rng = np.random.default_rng(10)
    A = rng.normal(size=(50, 2))
    A[:10] += [8.0, 0.0]  # the held-out cluster, apart from the rest
    th = 0.7
    Rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    B = A @ Rot + [3.0, -1.0]
    Q, a, b = vae.procrustes_align(A, B)
    assert np.allclose((A - a) @ Q + b, B)
    held = np.zeros(50, bool)
    held[:10] = True
    assert vae.displacement_ratio(B, A, held) == pytest.approx(0.0, abs=1e-9)
    # move the held cluster (in the "without" embedding) by one cluster radius
    A2 = A.copy()
    radius = np.sqrt(((B[held] - B[held].mean(0)) ** 2).sum(1).mean())
    A2[held] += radius * np.array([1.0, 0.0]) @ Rot.T
    assert vae.displacement_ratio(B, A2, held) == pytest.approx(1.0, rel=1e-6)
    r = vae.reembed_heldout(B, A, held, held.astype(int), 1, k=5)
    assert r["ratio"] == pytest.approx(0.0, abs=1e-9) and r["knn"] == pytest.approx(1.0)


def test_knn_agreement_counts_neighbour_labels():
    ref = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [5, 5], [5.1, 5]])
    lab = np.array([1, 1, 0, 0, 0])
    q = np.array([[0.05, 0.0]])
    assert vae.knn_agreement(ref, lab, q, 1, k=2) == 1.0
    assert vae.knn_agreement(ref, lab, q, 1, k=3) == pytest.approx(2 / 3)


def test_auroc_equals_pair_counting():
    rng = np.random.default_rng(11)
    s = rng.integers(0, 5, 60).astype(float)  # with ties
    y = rng.random(60) < 0.4
    pos, neg = s[y], s[~y]
    want = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) \
        / (len(pos) * len(neg))
    assert vae.auroc(s, y) == pytest.approx(want)
    assert math.isnan(vae.auroc(s, np.zeros(60, bool)))


def test_logistic_fit_is_a_stationary_point_and_recovers_the_truth():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(20000, 2))
    w_true = np.array([1.5, -0.5, 0.3])
    p = 1 / (1 + np.exp(-(X @ w_true[:2] + w_true[2])))
    y = rng.random(20000) < p
    w = vae.logistic_fit(X, y, l2=0.0)
    assert np.allclose(w, w_true, atol=0.08)


def test_cv_auroc_and_fate_auroc():
    rng = np.random.default_rng(13)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] > 0
    assert vae.cv_auroc(X, y) > 0.98
    assert abs(vae.cv_auroc(X, rng.random(200) < 0.5) - 0.5) < 0.12
    fate = np.where(y, 1, 0)
    fate[:20] = -1  # ignored rows
    assert vae.fate_auroc(X, fate) == pytest.approx(vae.cv_auroc(X[20:], y[20:]))
    three = np.digitize(X[:, 0], [-0.5, 0.5])
    assert 0.5 < vae.fate_auroc(X, three) <= 1.0
    assert math.isnan(vae.fate_auroc(X, np.zeros(200, int)))


def test_choose_gamma_and_monotone_ratio():
    g = [0, 1, 3, 10]
    assert vae.choose_gamma(g, [1.0, 1.01, 1.015, 1.05]) == 3
    assert vae.choose_gamma(g, [1.0, 1.05, 1.06, 1.07]) == 1  # none within: smallest > 0
    assert vae.choose_gamma(g, np.array([[1.0, 1.0], [1.0, 1.04], [2, 2], [3, 3]])) == 1
    with pytest.raises(ValueError):
        vae.choose_gamma([1, 2], [1.0, 1.0])
    assert vae.monotone_ratio([4.0, 2.0, 1.0]) == 0.5
    assert vae.monotone_ratio([4.0, 2.0, 3.0]) == 1.5


def test_check_vae_params_names_the_parameter():
    vae.check_vae_params(gammas=[0, 1], latent_dim=2, dataset="synthetic", plain_first=True,
                         datasets=("synthetic", "xena"))
    for kw, word in [({"gammas": [0, -1]}, "gammas"), ({"gammas": []}, "gammas"),
                     ({"latent_dim": 0}, "latent_dim"),
                     ({"latent_dim": 12, "curvature_mode": "exact"}, "exact"),
                     ({"curvature_mode": "fast"}, "curvature_mode"),
                     ({"likelihood": "poisson"}, "likelihood"), ({"beta": -1}, "beta"),
                     ({"hidden": 0}, "hidden"), ({"n_seeds": 0}, "n_seeds"),
                     ({"n_dirs": 0}, "n_dirs"),
                     ({"dataset": "mnist", "datasets": ("synthetic",)}, "dataset"),
                     ({"gammas": [1, 2], "plain_first": True}, "start with 0")]:
        args = {"gammas": [0, 1], "latent_dim": 2} | kw
        with pytest.raises(ValueError, match=word):
            vae.check_vae_params(**args)


def test_umap_keeps_separated_blobs_apart_and_is_seeded():
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (60, 5)), rng.normal(20, 1, (60, 5))])
    y = np.repeat([0, 1], 60)
    Z = vae.umap_embed(X, 2, seed=3)
    assert Z.shape == (120, 2)
    assert vae.knn_agreement(Z, y, Z[:60], 0, k=10) == 1.0  # every neighbour from its blob
    assert np.array_equal(Z, vae.umap_embed(X, 2, seed=3))


def test_as_plane():
    Z = np.arange(12.0).reshape(4, 3)
    assert np.array_equal(vae.as_plane(Z), Z[:, :2])
    assert np.array_equal(vae.as_plane(Z[:, :1]), np.column_stack([Z[:, 0], np.zeros(4)]))


def test_umap_embed_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import fails as when not installed
    assert vae.umap_embed(np.zeros((10, 3))) is None


def test_sweeps_shapes_and_heldout_scores(tiny):
    X, lab = tiny["X"], tiny["labels"]
    cfg = vae.TrainConfig(steps=30, batch=16, hidden=8, n_penalty=8)
    test = np.arange(len(X)) % 5 == 0
    fate = np.where(np.arange(len(X)) < 60, lab, -1)
    reps = [vae.Replicate(X, lab, np.array([1.0]), test, fate),
            vae.Replicate(X[::-1].copy(), lab[::-1].copy(), np.array([1.0]), test)]
    sw = vae.gamma_sweep(reps, [0.0, 1.0], [0, 1], cfg, grid_n=4)
    assert sw.Z.shape == (2, 2, len(X), 2) and sw.rec_test.shape == (2, 2)
    assert np.allclose(sw.R_tangent + sw.R_normal, sw.R)
    assert np.isfinite(sw.fate_auroc[:, 0]).all() and np.isnan(sw.fate_auroc[:, 1]).all()
    # the scores are those of each model on its own replicate
    m = sw.model.select([3])
    assert np.allclose(sw.Z[1, 1], vae.embed(m, reps[1].X)[0])
    assert sw.rec_test[1, 1] == pytest.approx(vae.reconstruction_error(m, reps[1].X[test])[0])
    ho = vae.heldout_sweep(reps, [1], [0.0, 1.0], [0, 1], cfg, sw.Z)
    assert ho.ratio.shape == (1, 2, 2) and (ho.ratio >= 0).all()
    assert ((ho.knn >= 0) & (ho.knn <= 1)).all()
    with pytest.raises(ValueError, match="replicates"):
        vae.gamma_sweep(reps, [0.0], [0], cfg)


def test_adam_first_step_is_lr_times_sign_and_it_converges():
    p = torch.tensor([3.0, -2.0, 0.5], dtype=F64, requires_grad=True)
    opt = vae.Adam([p])
    (p.pow(2) * torch.tensor([1.0, 10.0, 100.0], dtype=F64)).sum().backward()
    opt.step(0.1)  # bias-corrected moments of one gradient: the step is lr · sign(g)
    assert torch.allclose(p.detach(), torch.tensor([2.9, -1.9, 0.4], dtype=F64), atol=1e-6)
    for _ in range(2000):
        p.grad = None
        (p.pow(2) * torch.tensor([1.0, 10.0, 100.0], dtype=F64)).sum().backward()
        opt.step(0.01)
    assert p.abs().max() < 1e-2
