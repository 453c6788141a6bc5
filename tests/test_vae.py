"""Unit tests of hyperribbon.vae: the batched VAE and its hand-differentiated decoder
curvature against the generic one, the likelihoods, training, and the chapter's
experiments (the curvature of a map: test_curvature.py; the scores: test_scores.py)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.func import jvp

from hyperribbon import curvature as curv
from hyperribbon import vae
from hyperribbon.curvature import curvature

torch.set_default_dtype(torch.float32)
F64 = torch.float64


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
    a = curvature(vae.decoder_fn(p), z, **kw)
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
    zp = vae.penalty_points(mu, lv, 40, vae.SeedStreams([0, 1]))
    assert zp.shape == (2, 40, 2)
    lo, hi = mu.amin(1, keepdim=True), mu.amax(1, keepdim=True)
    assert ((zp >= lo - 1e-3) & (zp <= hi + 1e-3)).all()


def test_loss_terms_penalise_only_the_chosen_models():
    p = vae.init_params([0, 1, 2], 5, 2, 4)
    x = torch.randn(3, 8, 5)
    for mode in ("exact", "random"):
        t = vae.loss_terms(p, x, vae.TrainConfig(hidden=4, n_penalty=6, curvature_mode=mode),
                           vae.SeedStreams([0, 1, 2]), penalised=torch.tensor([1]))
        assert t["R"][0] == 0 and t["R"][2] == 0 and t["R"][1] > 0
        assert t["rec"].shape == (3,) and (t["kl"] >= 0).all()


def test_seed_streams_are_common_per_seed_and_independent_of_the_others():
    a, b = vae.SeedStreams([5, 3, 5]), vae.SeedStreams([3])
    for _ in range(2):  # the streams stay in step over successive draws
        x, y = a.randn(4, 2), b.randn(4, 2)
        assert x.shape == (3, 4, 2)
        assert torch.equal(x[0], x[2]) and not torch.equal(x[0], x[1])
        assert torch.equal(x[1], y[0])
    i = a.randint(7, 1000)
    assert i.min() >= 0 and i.max() == 6 and torch.equal(i[0], i[2])
    u = a.rand(1000)
    assert 0 <= u.min() and u.max() < 1


def test_models_with_one_seed_see_the_same_random_numbers_whatever_their_gamma():
    X = torch.randn(60, 5).numpy()
    cfg = vae.TrainConfig(steps=5, batch=8, hidden=4, n_penalty=4)
    m = vae.train(X, [0.0, 0.0, 1.0], [7, 7, 7], cfg)
    assert all(torch.equal(v[0], v[1]) for v in m.params.values())
    assert m.history[0, 2] > m.history[0, 0]  # the same batch, plus γ·R
    alone = vae.train(X, [0.0], [7], cfg)
    assert all(torch.allclose(v[0], alone.params[k][0]) for k, v in m.params.items())


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
    assert np.array_equal(sw.R_penalised, sw.R)  # default weights 1, 1: the total
    assert np.isfinite(sw.fate_auroc[:, 0]).all() and np.isnan(sw.fate_auroc[:, 1]).all()
    # the scores are those of each model on its own replicate
    m = sw.model.select([3])
    assert np.allclose(sw.Z[1, 1], vae.embed(m, reps[1].X)[0])
    assert sw.rec_test[1, 1] == pytest.approx(vae.reconstruction_error(m, reps[1].X[test])[0])
    # scale-free curvature: the nested-jvp curvature over E_v‖Jv‖⁴, on the same grid
    grid = torch.as_tensor(vae.latent_grid(sw.Z[1, 1][~test], 4, seed=1), dtype=F64)[None]
    f = vae.decoder_fn({k: v.double() for k, v in m.params.items()})
    free = curv.curvature(f, grid)["total"] / curv.metric_quartic(curv.jacobian(f, grid))
    assert sw.R_scale_free[1, 1] == pytest.approx(free.mean().item(), rel=1e-4)
    ho = vae.heldout_sweep(reps, [1], [0.0, 1.0], [0, 1], cfg, sw.Z)
    assert ho.ratio.shape == (1, 2, 2) and (ho.ratio >= 0).all()
    assert ((ho.knn >= 0) & (ho.knn <= 1)).all()
    with pytest.raises(ValueError, match="replicates"):
        vae.gamma_sweep(reps, [0.0], [0], cfg)


def test_penalised_curvature_weights_the_parts():
    parts = {"total": np.array([5.0]), "tangent": np.array([2.0]), "normal": np.array([3.0])}
    assert vae.penalised_curvature(parts, 1.0, 1.0) == 5.0
    assert vae.penalised_curvature(parts, 2.0, 2.0) == 10.0
    assert vae.penalised_curvature(parts, 1.0, 0.0) == 2.0
    assert vae.penalised_curvature(parts, 0.5, 2.0) == 7.0
    assert vae.penalised_curvature({"total": parts["total"]}, 1.0, 1.0) == 5.0  # no split


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
