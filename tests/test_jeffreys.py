"""The code-space Fisher metric, its Jeffreys density, and the chapter-3 analyses."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from hyperribbon import jeffreys as J
from hyperribbon.nets import SigmoidAutoencoder

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(k: int = 3, seed: int = 0) -> SigmoidAutoencoder:
    torch.manual_seed(seed)
    m = SigmoidAutoencoder([20, 8, k]).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3.0)  # larger weights: a less trivial, more curved decoder
    return m


class FlatDecoder(nn.Module):
    """x̂ᵢ(h) = sin²(αᵢ + (Bh)ᵢ): the Bernoulli Fisher metric is 4 Σ dφᵢ², so g_h = 4BᵀB
    exactly, the same at every code; the Jeffreys prior is uniform on the cube."""

    def __init__(self, B: torch.Tensor, alpha: float = 0.2):
        super().__init__()
        self.B = nn.Parameter(B)
        self.alpha = alpha
        self.code_size = B.shape[1]

    def decode_logits(self, h):
        phi = self.alpha + h @ self.B.T
        return 2 * torch.log(torch.tan(phi))  # logit(sin²φ) = log tan²φ

    def decode(self, h):
        return torch.sigmoid(self.decode_logits(h))

    def encode(self, x):
        return torch.sigmoid(4 * (x[..., : self.code_size] - 0.5))


def flat_decoder(k: int, m: int = 6, seed: int = 0) -> FlatDecoder:
    g = torch.Generator().manual_seed(seed)
    B = torch.rand(m, k, generator=g, dtype=torch.float64) * 1.3 / k  # α + Bh < π/2
    return FlatDecoder(B)


def test_metric_matches_finite_differences():
    m = tiny_model()
    u = 1.5 * torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for coords, codes in (("logit", u), ("code", torch.sigmoid(u))):
        g = J.metric(m, codes, coords)
        assert g.shape == (4, 3, 3)
        for i in range(4):
            fd = J.metric_fd(m, codes[i].numpy(), coords=coords)
            assert np.allclose(g[i].detach().numpy(), fd, rtol=1e-6, atol=1e-12 * np.abs(fd).max())
    err, ad, fd = J.metric_check(m, n_codes=3)
    assert err < 1e-7 and ad.shape == fd.shape == (3,)
    err32, ad32, fd32 = J.metric_check(m, n_codes=3, dtype=torch.float32)
    assert np.array_equal(fd32, fd)  # the reference is float64 either way
    assert 1e-9 < err32 < 1e-4  # float32 rounding: visible, but small
    with pytest.raises(ValueError, match="float32 or torch.float64"):
        J.metric_check(m, dtype=torch.float16)


def test_metric_check_reports_a_singular_metric_as_an_infinite_error():
    m = tiny_model(seed=1)
    with torch.no_grad():
        w = m.decoder[0].weight  # two code units move the pixels almost alike
        w[:, 0] = w[:, 1] + 1e-4 * torch.randn(len(w), generator=torch.Generator().manual_seed(0),
                                               dtype=w.dtype)
    assert J.metric_check(m, n_codes=2)[0] < 1e-3  # finite in float64 ...
    assert J.metric_check(m, n_codes=2, dtype=torch.float32)[0] == math.inf  # log 0 in f32


def test_bernoulli_metric_is_the_hellinger_pullback():
    """Bernoulli Fisher information = Euclidean metric of (2√p, 2√(1−p)) per pixel."""
    m = tiny_model(seed=4)
    u = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def hellinger(ui):
        a = m.decode_logits(torch.sigmoid(ui))
        return torch.cat([2 * torch.sqrt(torch.sigmoid(a)), 2 * torch.sqrt(torch.sigmoid(-a))])

    with torch.no_grad():  # the package's map is the same
        x = torch.sigmoid(m.decode_logits(torch.sigmoid(u[0]))).numpy()
        assert np.allclose(J.hellinger(x), hellinger(u[0]).numpy(), rtol=1e-12)

    with torch.no_grad():
        assert torch.allclose(J.log_volume(m, u), J.embedding_log_volume(hellinger, u),
                              rtol=1e-10)
        g = J.metric(m, u)
        assert torch.allclose(J.log_volume(m, u), 0.5 * torch.linalg.slogdet(g)[1], rtol=1e-10)


def test_log_volume_transforms_as_a_density():
    """π_u(u) = π_h(σ(u)) · Π σ'(uᵢ) — including far out, where σ'(u) underflows naively."""
    m = tiny_model(seed=5)
    u = torch.tensor([[0.3, -1.0, 2.0], [40.0, -60.0, 0.5]], dtype=torch.float64)
    with torch.no_grad():
        lu = J.log_volume(m, u)
        lh = J.log_volume(m, torch.sigmoid(u), coords="code")
    log_dsig = (-u.abs() - 2 * torch.log1p(torch.exp(-u.abs()))).sum(-1)
    assert torch.allclose(lu, lh + log_dsig, rtol=1e-10)
    assert torch.isfinite(lu).all()


def test_flat_decoder_has_the_analytic_volume():
    dec = flat_decoder(3)
    h = torch.rand(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = 0.5 * torch.logdet(4 * dec.B.T @ dec.B)
    with torch.no_grad():
        got = J.log_volume(dec, h, coords="code")
    assert torch.allclose(got, want.expand(6), rtol=1e-10)


def test_singular_metric_is_reported():
    B = torch.tensor([[0.3, 0.3], [0.5, 0.5], [0.2, 0.2]], dtype=torch.float64)  # equal columns
    dec = FlatDecoder(B)
    h = torch.full((2, 2), 0.4, dtype=torch.float64)
    with torch.no_grad(), pytest.raises(J.SingularMetricError, match="singular"):
        J.log_volume(dec, h, coords="code")
    with torch.no_grad():
        out = J.log_volume(dec, h, coords="code", singular="-inf")
    assert torch.isneginf(out).all()
    with pytest.raises(ValueError):
        J.log_volume(dec, h, singular="nan")
    with pytest.raises(ValueError):
        J.metric(dec, h, coords="pixels")


def test_embedding_volume_of_a_plane_and_a_sphere():
    A = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]], dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    got = J.embedding_log_volume(lambda v: A @ v, x)
    assert torch.allclose(got, 0.5 * torch.logdet(A.T @ A).expand(4))


def test_saturation_boundary_radius_aspect():
    h = np.array([[0.5, 0.5], [0.01, 0.5], [0.5, 0.97], [0.2, 0.3]])
    assert J.saturated_fraction(h) == pytest.approx(0.5)
    assert J.saturated_fraction(torch.as_tensor(h), lo=0.25, hi=0.75) == pytest.approx(0.75)
    assert np.allclose(J.boundary_distance(h), [0.5, 0.01, 0.03, 0.2])
    # points at ±σ along each principal axis have whitened radius 1
    comps = np.eye(3)[:2]
    pts = np.array([[2.0, 0, 0], [0, -0.5, 0], [2.0, 0.5, 7.0]]) + 1.0
    r = J.whitened_radius(pts, np.ones(3), comps, np.array([2.0, 0.5]))
    assert np.allclose(r, [1.0, 1.0, math.sqrt(2)])
    assert J.aspect_ratio(np.array([1.0, 4.0, 2.0]), 3) == 4.0
    assert J.aspect_ratio(np.array([4.0, 2.0, 1.0]), 2) == 2.0
    with pytest.raises(ValueError):
        J.aspect_ratio(np.ones(3), 4)


def test_uniform_codes():
    u = J.uniform_codes(20000, 3, seed=0)
    assert u.shape == (20000, 3) and float(u.min()) >= 0 and float(u.max()) <= 1
    assert torch.allclose(u.mean(0), torch.full((3,), 0.5), atol=0.01)
    assert torch.equal(u, J.uniform_codes(20000, 3, seed=0))
    # saturated fraction of a uniform cube: 1 − 0.9^k
    assert J.saturated_fraction(u) == pytest.approx(1 - 0.9**3, abs=0.01)


def test_check_params():
    ok = dict(k_values=[2, 5], n_chains=8, n_steps=100, n_burn=50, thin=2, n_train=100,
              n_test=10, dataset="mnist", hidden=[50, 20])
    J.check_params(**ok)
    for change, name in (({"k_values": [2, 40]}, "k_values"), ({"k_values": [2, 3]}, "k_values"),
                         ({"k_values": [5, 5]}, "k_values"), ({"hidden": [50, 5]}, "k_values"),
                         ({"n_chains": 2}, "n_chains"), ({"n_burn": 100}, "n_burn"),
                         ({"thin": 5}, "thin"), ({"n_train": 70000}, "n_train"),
                         ({"n_test": 20000}, "n_test"), ({"dataset": "cifar10"}, "dataset")):
        with pytest.raises(ValueError, match=name):
            J.check_params(**{**ok, **change})
    with pytest.raises(Exception, match="unknown dataset"):
        J.check_params(**{**ok, "dataset": "nope"})


def test_study_of_a_flat_decoder_samples_the_uniform_cube():
    """With g_h constant the Jeffreys prior is uniform on [0, 1]^k: its samples are as
    often saturated as uniform codes (1 − 0.9^k), and the chains mix."""
    k = 2
    dec = flat_decoder(k, seed=1)
    x = torch.rand(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = J.study(dec, x, n_chains=64, n_steps=400, n_burn=150, thin=1, n_uniform=500, seed=0)
    n = s.h_jeffreys.shape[0]
    assert n == 64 * 250 and s.x_jeffreys.shape == (n, 6)
    sat = s.saturated()
    n_eff = float(np.min(s.ess))
    p = 1 - 0.9**k
    assert abs(sat["jeffreys"] - p) < 4 * math.sqrt(p * (1 - p) / n_eff) + 0.01
    assert np.allclose(s.h_jeffreys.mean(0), 0.5, atol=0.05)
    assert np.all(s.rhat < 1.1) and 0.15 < float(s.chains.accept.mean()) < 0.4
    assert s.h_data.shape == (50, k) and s.pc_draws.shape == (250, 64, 3)
    r = s.radii()
    assert set(r) == {"jeffreys", "data", "uniform"} and r["data"].shape == (50,)
    # whitened: the samples' radius² averages k over the top-k directions
    assert np.mean(r["jeffreys"] ** 2) == pytest.approx(k, rel=1e-6)
    assert s.boundary()["uniform"].shape == (500,)
    assert s.aspect() >= 1 and s.aspect(hellinger=True) >= 1 and s.ess_per_second() > 0


def test_html_table():
    t = J.html_table(["a", "b<"], [[1, "x&y"], [2.5, "z"]])
    assert t.count("<tr>") == 3 and t.count("<td>") == 4
    assert "<th>b&lt;</th>" in t and "<td>x&amp;y</td>" in t
    with pytest.raises(ValueError):
        J.html_table(["a"], [[1, 2]])


def test_hellinger_distance_is_the_bhattacharyya_divergence():
    rng = np.random.default_rng(0)
    p, q = rng.uniform(0, 1, (2, 50))
    bc = np.sqrt(p * q) + np.sqrt((1 - p) * (1 - q))
    d2 = np.sum((J.hellinger(p) - J.hellinger(q)) ** 2)
    assert d2 == pytest.approx(8 * np.sum(1 - bc), rel=1e-12)
    assert J.hellinger(np.zeros((3, 4))).shape == (3, 8)
    with pytest.raises(ValueError, match="must lie in"):
        J.hellinger(np.array([0.5, 1.2]))


def test_median_rank():
    rng = np.random.default_rng(1)
    ref = rng.exponential(size=20000)
    assert J.median_rank(rng.exponential(size=20000), ref) == pytest.approx(0.5, abs=0.02)
    assert J.median_rank(ref.max() + 1 + rng.uniform(size=5), ref) == 1.0
    assert J.median_rank([2.5], [1, 2, 3, 4]) == 0.5  # two of four below
    assert J.median_rank([0.0, 1.5, 5.0], [1, 2, 3, 4]) == 0.25
    with pytest.raises(ValueError, match="at least one"):
        J.median_rank([], [1.0])
