"""Network families (chapter 3): autoencoders, RBMs (CD-1), DBNs, caching."""

import itertools
import math

import pytest
import torch

from hyperribbon import nets

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_bars(n: int = 400, seed: int = 0) -> torch.Tensor:
    """Binary 4×4 images of one horizontal or vertical bar, with 5% flipped pixels."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 8, (n,), generator=g)
    x = torch.zeros(n, 4, 4)
    for i, j in enumerate(idx.tolist()):
        if j < 4:
            x[i, j, :] = 1
        else:
            x[i, :, j - 4] = 1
    flip = torch.rand(n, 4, 4, generator=g) < 0.05
    return torch.where(flip, 1 - x, x).reshape(n, 16)


def test_autoencoder_shapes_and_ranges():
    torch.manual_seed(0)
    m = nets.SigmoidAutoencoder([16, 8, 3])
    x = torch.rand(5, 16)
    h = m.encode(x)
    assert h.shape == (5, 3) and m.code_size == 3
    assert ((h > 0) & (h < 1)).all()
    assert torch.allclose(m.decode(h), torch.sigmoid(m.decode_logits(h)))
    assert torch.allclose(m(x), m.decode(h))
    # images (N, C, H, W) are flattened
    assert torch.allclose(m.encode(x.reshape(5, 1, 4, 4)), h)
    with pytest.raises(ValueError):
        nets.SigmoidAutoencoder([16])


def test_bernoulli_nll_matches_formula():
    torch.manual_seed(1)
    a, x = torch.randn(4, 6, dtype=torch.float64), torch.rand(4, 6, dtype=torch.float64)
    p = torch.sigmoid(a)
    manual = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum() / 4
    assert float(nets.bernoulli_nll(a, x)) == pytest.approx(float(manual), rel=1e-12)


def test_reconstruction_nll_does_not_depend_on_batching():
    torch.manual_seed(2)
    m = nets.SigmoidAutoencoder([16, 4, 2])
    x = torch.rand(10, 16)
    with torch.no_grad():
        whole = float(nets.bernoulli_nll(m.decode_logits(m.encode(x)), x))
    assert nets.reconstruction_nll(m, x, batch_size=3) == pytest.approx(whole, rel=1e-5)


def test_masking_noise_zeroes_the_fraction():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 100) + 1.0  # never zero before masking
    y = nets.masking_noise(x, 0.25, g)
    zero = (y == 0).double().mean().item()
    assert abs(zero - 0.25) < 4 * math.sqrt(0.25 * 0.75 / x.numel())
    assert torch.equal(y[y != 0], x[y != 0])
    with pytest.raises(ValueError):
        nets.masking_noise(x, 1.0, g)


def tiny_rbm(seed: int = 0) -> nets.RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = nets.RBM(3, 2).double()
    rbm.W.data = torch.randn(3, 2, generator=g, dtype=torch.float64)
    rbm.b.data = torch.randn(3, generator=g, dtype=torch.float64)
    rbm.c.data = torch.randn(2, generator=g, dtype=torch.float64)
    return rbm


def states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def test_rbm_conditionals_and_free_energy_by_enumeration():
    rbm = tiny_rbm()
    V, H = states(3), states(2)
    # joint p(v, h) ∝ exp(bᵀv + cᵀh + vᵀWh)
    logw = V @ rbm.b[:, None] + (H @ rbm.c)[None, :] + V @ rbm.W @ H.T  # (8, 4)
    p = torch.exp(logw - torch.logsumexp(logw.reshape(-1), 0))
    # marginal of v ∝ exp(−F(v))
    pv = torch.softmax(-rbm.free_energy(V), 0)
    assert torch.allclose(pv, p.sum(1))
    # p(h_j = 1 | v) and p(v_i = 1 | h) from the joint
    ph = (p / p.sum(1, keepdim=True)) @ H
    assert torch.allclose(rbm.hidden_prob(V), ph)
    pvh = ((p / p.sum(0, keepdim=True)).T @ V)
    assert torch.allclose(rbm.visible_prob(H), pvh)


def test_cd1_gradient_is_unbiased_for_its_expectation():
    """The CD-1 estimate averaged over its hidden samples equals the exact expectation,
    obtained by enumerating the sampled hidden states."""
    rbm = tiny_rbm(3)
    v0 = states(3)[[1, 5, 6]]
    ph0 = rbm.hidden_prob(v0)
    H = states(2)
    w = torch.prod(torch.where(H[None] == 1, ph0[:, None], 1 - ph0[:, None]), -1)  # (3, 4)
    exact = torch.zeros(3, 2, dtype=torch.float64)
    for j, h in enumerate(H):
        v1 = rbm.visible_prob(h.expand(3, 2))
        exact += ((w[:, j, None, None]) * (v0[:, :, None] * ph0[:, None, :]
                  - v1[:, :, None] * rbm.hidden_prob(v1)[:, None, :])).sum(0)
    exact /= 3
    g = torch.Generator().manual_seed(0)
    est = torch.stack([rbm.cd1_gradient(v0, g)[0] for _ in range(4000)]).mean(0)
    assert torch.allclose(est, exact, atol=0.02)


def test_cd1_training_lowers_reconstruction_error():
    x = toy_bars()
    g = torch.Generator().manual_seed(0)
    before = nets.RBM(16, 8, generator=g).reconstruction_error(x)
    rbm = nets.train_rbm(x, 8, epochs=30, lr=0.1, batch_size=20, seed=0)
    after = rbm.reconstruction_error(x)
    assert after < 0.5 * before


def test_unroll_matches_the_rbm_conditionals():
    rbms = [nets.RBM(6, 4), nets.RBM(4, 2)]
    g = torch.Generator().manual_seed(0)
    for r in rbms:
        for t in (r.W, r.b, r.c):
            t.data = torch.randn(t.shape, generator=g)
    m = nets.unroll(rbms)
    v = torch.rand(5, 6, generator=g)
    h = rbms[1].hidden_prob(rbms[0].hidden_prob(v))
    assert torch.allclose(m.encode(v), h, atol=1e-6)
    assert torch.allclose(m.decode(h), rbms[0].visible_prob(rbms[1].visible_prob(h)),
                          atol=1e-6)
    with pytest.raises(ValueError):
        nets.unroll([nets.RBM(6, 4), nets.RBM(3, 2)])


def test_train_dbn_shares_cached_lower_layers(tmp_path):
    x = toy_bars(200)
    m5 = nets.train_dbn(x, [16, 8, 3], epochs=2, seed=0, layer_cache=tmp_path)
    assert m5.sizes == [16, 8, 3]
    files = sorted(p.name for p in tmp_path.glob("rbm-*.pt"))
    assert len(files) == 2
    nets.train_dbn(x, [16, 8, 2], epochs=2, seed=0, layer_cache=tmp_path)
    assert len(list(tmp_path.glob("rbm-*.pt"))) == 3  # the 16 → 8 layer was reused
    again = nets.train_dbn(x, [16, 8, 3], epochs=2, seed=0, layer_cache=tmp_path)
    for a, b in zip(m5.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_sdae_training_lowers_the_loss():
    x = toy_bars(200)
    torch.manual_seed(0)
    m = nets.SigmoidAutoencoder([16, 8, 3])
    before = nets.reconstruction_nll(m, x)
    losses = nets.train_autoencoder(m, x, epochs=30, noise=0.25, lr=5e-2, batch_size=50)
    assert losses[-1] < losses[0]
    assert nets.reconstruction_nll(m, x) < 0.7 * before
    sdae = nets.train_sdae(x, [16, 8, 3], epochs=1, seed=0, device="cpu")
    assert not sdae.training


def test_config_key_identifies_the_configuration():
    a = nets.TrainConfig("sdae", [784, 10, 2], epochs=3, seed=0, data={"n": 5})
    assert a.key() == nets.TrainConfig("sdae", [784, 10, 2], 3, 0, {"n": 5}).key()
    for change in ({"epochs": 4}, {"seed": 1}, {"sizes": [784, 10, 3]}, {"noise": 0.1},
                   {"data": {"n": 6}}, {"family": "dbn"}):
        b = nets.TrainConfig(**{**a.__dict__, **change})
        assert b.key() != a.key(), change
    with pytest.raises(ValueError):
        nets.TrainConfig("vae", [784, 2], 1)


def test_fit_cached_trains_once(tmp_path):
    x = toy_bars(100)
    cfg = nets.TrainConfig("sdae", [16, 6, 2], epochs=1, seed=0, data={"name": "bars"})
    m1, cached1 = nets.fit_cached(cfg, x, tmp_path, device="cpu")
    m2, cached2 = nets.fit_cached(cfg, x, tmp_path, device="cpu")
    assert (cached1, cached2) == (False, True)
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)
    # other images → another key
    _, cached3 = nets.fit_cached(cfg, toy_bars(100, seed=1), tmp_path, device="cpu")
    assert not cached3
    dbn, _ = nets.fit_cached(nets.TrainConfig("dbn", [16, 6, 2], 1, noise=0.0), x, tmp_path,
                             device="cpu")
    assert dbn.sizes == [16, 6, 2]
    # written through util.atomic_path: only finished files are left in the cache
    assert {f.suffix for f in tmp_path.iterdir()} == {".pt"}
