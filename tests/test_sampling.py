"""MCMC (chapter 3): the vectorised Metropolis sampler recovers known targets; R-hat, ESS."""

import math

import numpy as np
import pytest
import torch

from hyperribbon import sampling
from hyperribbon.jeffreys import embedding_log_volume

pytestmark = pytest.mark.usefixtures("one_thread")

COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64) * torch.tensor(
    [[4.0, 2.0], [2.0, 1.0]], dtype=torch.float64)  # variances 4 and 1, correlation 0.8
MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)


def gaussian_log_prob(x: torch.Tensor) -> torch.Tensor:
    d = x - MEAN
    return -0.5 * (d @ torch.linalg.inv(COV) * d).sum(-1)


def test_recovers_a_correlated_gaussian():
    x0 = MEAN + 6 * torch.randn(48, 2, generator=torch.Generator().manual_seed(1),
                                dtype=torch.float64)
    ch = sampling.metropolis(gaussian_log_prob, x0, n_steps=1500, n_burn=500, thin=2, seed=0)
    assert ch.samples.shape == (500, 48, 2)
    draws = ch.flat().numpy()
    n_eff = sampling.ess(ch.samples)
    se = np.sqrt(np.diag(COV.numpy()) / n_eff)
    assert np.all(np.abs(draws.mean(0) - MEAN.numpy()) < 4 * se)
    cov = np.cov(draws.T)
    # the variance of a sample variance is 2σ⁴/n: 4 standard errors with the ESS
    assert np.all(np.abs(np.diag(cov) - np.diag(COV.numpy()))
                  < 4 * np.sqrt(2 / n_eff) * np.diag(COV.numpy()))
    assert abs(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]) - 0.8) < 0.05
    assert np.all(sampling.rhat(ch.samples) < 1.05)
    assert 0.15 < float(ch.accept.mean()) < 0.4  # adapted towards 0.25
    assert ch.n_evals == 48 * 1501 and ch.evals_per_second > 0


def sphere(x: torch.Tensor) -> torch.Tensor:
    """The unit sphere in R³ parameterised by the polar and azimuthal angles (θ, φ)."""
    th, ph = x[0], x[1]
    return torch.stack([torch.sin(th) * torch.cos(ph), torch.sin(th) * torch.sin(ph),
                        torch.cos(th)])


TH, PH = (0.3, 1.3), (0.0, 1.5)


def patch_log_prob(x: torch.Tensor) -> torch.Tensor:
    """The Jeffreys (area) density of the sphere on the patch TH × PH, −inf outside."""
    inside = (x[:, 0] > TH[0]) & (x[:, 0] < TH[1]) & (x[:, 1] > PH[0]) & (x[:, 1] < PH[1])
    safe = torch.where(inside[:, None], x, x.new_tensor([0.8, 0.7]))
    lp = embedding_log_volume(sphere, safe)
    return torch.where(inside, lp, torch.full_like(lp, -math.inf))


def test_uniform_measure_on_a_sphere_patch():
    """The area element of the angles is sin θ, so cos θ and φ are uniform on the patch."""
    x = torch.tensor([[0.5, 0.3], [1.0, 1.2]], dtype=torch.float64)
    assert torch.allclose(embedding_log_volume(sphere, x), torch.log(torch.sin(x[:, 0])))
    g = torch.Generator().manual_seed(2)
    x0 = torch.stack([TH[0] + (TH[1] - TH[0]) * torch.rand(128, generator=g, dtype=torch.float64),
                      PH[0] + (PH[1] - PH[0]) * torch.rand(128, generator=g,
                                                           dtype=torch.float64)], 1)
    ch = sampling.metropolis(patch_log_prob, x0, n_steps=500, n_burn=200, thin=1, seed=3)
    c = torch.cos(ch.samples[..., 0])
    phi = ch.samples[..., 1]
    n_eff = sampling.ess(torch.stack([c, phi], -1))
    # uniform on [a, b]: mean (a + b)/2, standard deviation (b − a)/√12
    for v, (a, b), n in ((c, (math.cos(TH[1]), math.cos(TH[0])), n_eff[0]),
                         (phi, PH, n_eff[1])):
        se = (b - a) / math.sqrt(12 * n)
        assert abs(float(v.mean()) - (a + b) / 2) < 4 * se
        assert float(v.std()) == pytest.approx((b - a) / math.sqrt(12), rel=0.08)
    # and θ itself is not uniform: its density sin θ puts more mass at large θ
    assert float(ch.samples[..., 0].mean()) > sum(TH) / 2 + 0.02


def test_metropolis_arguments_and_thinning():
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    ch = sampling.metropolis(gaussian_log_prob, x0 + MEAN, 50, 20, thin=3, seed=0)
    assert ch.samples.shape == (10, 4, 2) and ch.log_prob.shape == (10, 4)
    assert torch.allclose(ch.log_prob, gaussian_log_prob(ch.samples.reshape(-1, 2)).reshape(10, 4))
    assert ch.flat().shape == (40, 2)
    for kw in ({"n_burn": 50}, {"n_burn": -1}, {"thin": 0}):
        with pytest.raises(ValueError):
            sampling.metropolis(gaussian_log_prob, x0, **{"n_steps": 50, "n_burn": 10, **kw})
    with pytest.raises(ValueError, match="not finite"):
        sampling.metropolis(lambda x: torch.full((len(x),), -math.inf), x0, 10, 5)
    # same seed, same chains (CPU runs are deterministic)
    again = sampling.metropolis(gaussian_log_prob, x0 + MEAN, 50, 20, thin=3, seed=0)
    assert torch.equal(ch.samples, again.samples)


def ar1(n: int, chains: int, rho: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty((n, chains))
    x[0] = rng.standard_normal(chains)
    eps = rng.standard_normal((n, chains)) * np.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + eps[t]
    return x


def test_ess_of_ar1_chains():
    """An AR(1) chain with coefficient ρ has integrated autocorrelation (1 + ρ)/(1 − ρ)."""
    n, c = 4000, 8
    for rho in (0.0, 0.5, 0.9):
        want = n * c * (1 - rho) / (1 + rho)
        got = sampling.ess(ar1(n, c, rho, seed=int(10 * rho)))[0]
        assert got == pytest.approx(want, rel=0.15), rho


def test_rhat_detects_chains_that_disagree():
    x = ar1(1000, 8, 0.5, seed=0)
    assert sampling.rhat(x)[0] < 1.01
    # affine invariance; rank-normalised R-hat is invariant to monotone maps
    assert sampling.rhat(3 * x + 5)[0] == pytest.approx(sampling.rhat(x)[0], rel=1e-12)
    assert sampling.rhat(np.exp(x), rank=True)[0] == pytest.approx(
        sampling.rhat(x, rank=True)[0], rel=1e-12)
    shifted = x + np.arange(8)[None, :] * 0.5  # chain means 0, 0.5, ..., 3.5
    assert sampling.rhat(shifted)[0] > 1.1
    # a chain drifting within itself is caught by splitting it
    drift = x + np.linspace(0, 3, 1000)[:, None]
    assert sampling.rhat(drift)[0] > 1.1
    # several coordinates at once
    both = np.stack([x, shifted], -1)
    r = sampling.rhat(torch.as_tensor(both))
    assert r.shape == (2,) and r[0] < 1.01 < 1.1 < r[1]
    with pytest.raises(ValueError):
        sampling.rhat(x[:3])


def test_rhat_by_hand():
    """Two chains of four draws, R-hat computed by hand."""
    x = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
    # halves: [0,1], [2,3], [1,2], [3,4] (n = 2); within variances all 0.5 → W = 0.5
    # half means 0.5, 2.5, 1.5, 3.5 → variance 5/3; var+ = W/2 + 5/3
    want = math.sqrt((0.5 / 2 + 5 / 3) / 0.5)
    assert sampling.rhat(x)[0] == pytest.approx(want, rel=1e-12)
