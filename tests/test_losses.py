"""NT-Xent, the prototypical loss, episodes and augmentations (hyperribbon.losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyperribbon import losses as L

pytestmark = pytest.mark.usefixtures("one_thread")


def test_nt_xent_two_orthogonal_pairs():
    # views a1 = b1 = e1, a2 = b2 = e2: each view's positive has similarity 1, its two
    # negatives 0, so every term is -log(e^(1/t) / (e^(1/t) + 2)).
    z = torch.eye(2, dtype=torch.float64)
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert L.nt_xent(z, z.clone(), t).item() == pytest.approx(expected, rel=1e-12)
    # rows are normalised first: scaling an embedding changes nothing
    assert L.nt_xent(3 * z, z, t).item() == pytest.approx(expected, rel=1e-12)


def test_nt_xent_asymmetric_hand_computed():
    # a1 = (1,0), a2 = (1,0), b1 = (1,0), b2 = (-1,0); s = cosine / t
    z1 = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    z2 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    t = 0.7
    e, f = math.exp(1 / t), math.exp(-1 / t)
    terms = [
        -math.log(e / (e + e + f)),  # a1: positive b1 (+1); negatives a2 (+1), b2 (-1)
        -math.log(f / (e + e + f)),  # a2: positive b2 (-1); negatives a1 (+1), b1 (+1)
        -math.log(e / (e + e + f)),  # b1: positive a1 (+1); negatives a2 (+1), b2 (-1)
        math.log(3.0),  # b2: positive a2 (-1); negatives a1 (-1), b1 (-1)
    ]
    assert L.nt_xent(z1, z2, t).item() == pytest.approx(sum(terms) / 4, rel=1e-12)


def test_nt_xent_gradient_and_errors():
    z1 = torch.randn(5, 3, requires_grad=True)
    loss = L.nt_xent(z1, torch.randn(5, 3), 0.1)
    loss.backward()
    assert torch.isfinite(z1.grad).all()
    with pytest.raises(ValueError, match="shape"):
        L.nt_xent(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        L.nt_xent(torch.randn(4, 3), torch.randn(4, 3), 0.0)


def test_prototypical_two_way_one_shot():
    # prototypes (0,0) and (2,0); query (0.5, 0) of class 0: d^2 = 0.25 and 2.25,
    # loss = -log(e^-0.25 / (e^-0.25 + e^-2.25)) = log(1 + e^-2)
    s = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    st, qt = torch.tensor([0, 1]), torch.tensor([0])
    logits = L.prototype_logits(s, st, q, 2)
    assert torch.allclose(logits, torch.tensor([[-0.25, -2.25]], dtype=torch.float64))
    loss = L.prototypical_loss(s, st, q, qt, 2)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-12)


def test_prototypical_two_shot_means():
    # class 1's two shots (0,2) and (0,4) give the prototype (0,3); query (0,3) sits on it
    s = torch.tensor([[0.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    st = torch.tensor([0, 1, 0, 1])
    q = torch.tensor([[0.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(L.prototype_logits(s, st, q, 2),
                          torch.tensor([[-9.0, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="every one of the 3 classes"):
        L.prototype_logits(s, st, q, 3)


def test_episode_sampler():
    y = np.repeat(np.arange(5), 6)
    ep = L.EpisodeSampler(y, n_way=3, k_shot=2, n_query=3, seed=1).sample()
    assert len(set(ep.classes.tolist())) == 3
    assert ep.support.size == 6 and ep.query.size == 9
    assert np.intersect1d(ep.support, ep.query).size == 0
    assert np.array_equal(y[ep.support], ep.classes[ep.support_targets])
    assert np.array_equal(y[ep.query], ep.classes[ep.query_targets])
    again = L.EpisodeSampler(y, 3, 2, 3, seed=1).sample()
    assert np.array_equal(ep.support, again.support) and np.array_equal(ep.query, again.query)
    eps = L.EpisodeSampler(y, 2, 1, 1, seed=0, classes=[1, 4])
    for _, e in zip(range(5), eps, strict=False):
        assert set(e.classes.tolist()) == {1, 4}
    with pytest.raises(ValueError, match="class .* has 6 samples"):
        L.sample_episode(y, 2, 4, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_way=6 exceeds the 5 classes"):
        L.sample_episode(y, 6, 1, 1, np.random.default_rng(0))


def test_random_crop_is_a_window_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5) + 1
    assert torch.equal(L.random_crop(x, 0, g), x)
    out = L.random_crop(x, 2, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert out.shape == x.shape
    for n in range(2):  # each output equals one of the 25 windows of its padded image
        assert any(torch.equal(out[n], padded[n, :, i:i + 5, j:j + 5])
                   for i in range(5) for j in range(5))
    many = L.random_crop(x.repeat(50, 1, 1, 1), 2, g)
    assert len({tuple(m.flatten().tolist()) for m in many[::2]}) > 5  # offsets vary


def test_flip_and_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 4, 4, generator=g)
    assert torch.equal(L.random_flip(x, g, p=1.0), x.flip(-1))
    assert torch.equal(L.random_flip(x, g, p=0.0), x)
    f = L.random_flip(x, g)
    same = (f == x).flatten(1).all(1)
    flipped = (f == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same | flipped) and same.any() and flipped.any()
    assert torch.equal(L.gaussian_noise(x, 0.0, g), x)
    noisy = L.gaussian_noise(torch.zeros(20000), 0.5, g)
    assert noisy.std().item() == pytest.approx(0.5, rel=0.05)


def test_contrastive_views():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 6, 6, generator=g)
    v1, v2 = L.contrastive_views(x, g, padding=2, noise=0.01)
    assert v1.shape == v2.shape == x.shape and not torch.equal(v1, v2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        L.random_crop(x[0], 2, g)
