"""The geodesic P0 -> P*, progress, re-indexing, tubes, distances and lengths against
independent facts: endpoints, the sphere angle, brute-force minimisation, the known
length 2 arccos(1/sqrt(C)) and the Fisher metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from hyperribbon.inpca import bhattacharyya, bhattacharyya_paired
from hyperribbon.trajectory import (
    geodesic,
    geodesic_angle,
    mean_trajectory,
    one_hot,
    progress,
    reindex,
    riemann_length,
    slerp,
    trajectory_distance,
    trajectory_distances,
    tube_widths,
    uniform,
)

FAST = settings(max_examples=50, deadline=None)


def endpoints(rng, m, c):
    y = rng.integers(0, c, m)
    return uniform(m, c), one_hot(y, c)


def test_constructors():
    np.testing.assert_array_equal(uniform(2, 4), np.full((2, 4), 0.25))
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert one_hot(np.array([1, 3])).shape == (2, 4)
    with pytest.raises(ValueError):
        one_hot([0, 3], 3)
    with pytest.raises(ValueError):
        uniform(3, 1)


def test_geodesic_endpoints_and_angle():
    rng = np.random.default_rng(0)
    P0, P1 = endpoints(rng, 30, 10)
    G = geodesic(P0, P1, [0.0, 1.0])
    np.testing.assert_allclose(G[0], P0, atol=1e-15)
    np.testing.assert_allclose(G[1], P1, atol=1e-15)
    theta = geodesic_angle(P0, P1)
    np.testing.assert_allclose(theta, np.arccos(1 / np.sqrt(10)), rtol=1e-14)


@FAST
@given(t=st.floats(0, 1), m=st.integers(1, 30), c=st.integers(2, 12),
       seed=st.integers(0, 2**32 - 1))
def test_geodesic_points_are_normalised_and_at_angle_t_theta(t, m, c, seed):
    rng = np.random.default_rng(seed)
    P0, P1 = endpoints(rng, m, c)
    g = geodesic(P0, P1, t)
    assert (g >= 0).all()
    np.testing.assert_allclose(g.sum(-1), 1.0, atol=1e-14)
    theta = np.arccos(1 / np.sqrt(c))
    # angle from P0 is t theta, from P1 (1 - t) theta: the point is on the great circle
    np.testing.assert_allclose(np.sqrt(g * P0).sum(-1), np.cos(t * theta), atol=1e-12)
    np.testing.assert_allclose(np.sqrt(g * P1).sum(-1), np.cos((1 - t) * theta), atol=1e-12)


def test_slerp_between_equal_points():
    a = np.sqrt(np.random.default_rng(1).dirichlet(np.ones(5), size=4))
    np.testing.assert_allclose(slerp(a, a, 0.3), a, atol=1e-15)


@FAST
@given(ts=st.lists(st.floats(0, 1), min_size=1, max_size=6), m=st.integers(1, 40),
       c=st.integers(2, 12), seed=st.integers(0, 2**32 - 1))
def test_progress_of_geodesic_points(ts, m, c, seed):
    P0, P1 = endpoints(np.random.default_rng(seed), m, c)
    t, d = progress(geodesic(P0, P1, np.array(ts)), P0, P1, return_distance=True)
    np.testing.assert_allclose(t, ts, atol=1e-9)
    np.testing.assert_allclose(d, 0.0, atol=1e-14)


def test_progress_of_many_models_in_blocks():
    rng = np.random.default_rng(10)
    P0, P1 = endpoints(rng, 3, 3)
    ts = rng.uniform(0, 1, 2500)
    np.testing.assert_allclose(progress(geodesic(P0, P1, ts), P0, P1), ts, atol=1e-9)


def test_progress_matches_brute_force_minimisation():
    rng = np.random.default_rng(2)
    P0, P1 = endpoints(rng, 40, 10)
    # models between P0 and P*: noisy mixtures, plus a pure random one
    w = rng.uniform(0, 1, size=(6, 1, 1))
    Q = (1 - w) * rng.dirichlet(np.ones(10), size=(6, 40)) + w * P1
    t, d = progress(Q, P0, P1, return_distance=True)
    assert ((t > 0) & (t < 1)).any()
    for q, tq, dq in zip(Q, t, d, strict=True):
        res = minimize_scalar(lambda s, q=q: bhattacharyya_paired(geodesic(P0, P1, s), q),
                              bounds=(0, 1), method="bounded", options={"xatol": 1e-10})
        assert dq <= res.fun + 1e-12
        assert tq == pytest.approx(res.x, abs=1e-5)
        assert dq == pytest.approx(bhattacharyya_paired(geodesic(P0, P1, tq), q), abs=1e-14)
    assert progress(P0, P0, P1) == 0.0
    assert progress(P1, P0, P1) == pytest.approx(1.0, abs=1e-12)


def test_progress_with_a_zero_probability_on_the_truth():
    """A model that gives the true class probability 0 on a sample is infinitely far from
    P*: its progress stays inside (0, 1) and the clamp keeps it finite."""
    rng = np.random.default_rng(3)
    P0, P1 = endpoints(rng, 20, 4)
    q = geodesic(P0, P1, 0.7)
    y = P1[0].argmax()
    q[0] = 0.0
    q[0, (y + 1) % 4] = 1.0
    t, d = progress(q, P0, P1, return_distance=True)
    assert 0 < t < 1 and np.isfinite(d)
    res = minimize_scalar(lambda s: bhattacharyya_paired(geodesic(P0, P1, s), q),
                          bounds=(0, 1), method="bounded", options={"xatol": 1e-10})
    assert t == pytest.approx(res.x, abs=1e-5)


def test_progress_bounds():
    P0, P1 = endpoints(np.random.default_rng(4), 10, 3)
    g = geodesic(P0, P1, 0.8)
    assert progress(g, P0, P1, bounds=(0.0, 0.5)) == 0.5
    assert progress(g, P0, P1, bounds=(0.9, 1.0)) == 0.9
    with pytest.raises(ValueError, match="bounds"):
        progress(g, P0, P1, bounds=(0.5, 1.5))


def test_reindex_geodesic_trajectory_returns_geodesic_points():
    rng = np.random.default_rng(5)
    P0, P1 = endpoints(rng, 25, 10)
    tk = np.sort(np.r_[0.0, rng.uniform(0, 1, 8), 1.0])
    traj = geodesic(P0, P1, tk)
    grid = np.linspace(0, 1, 41)
    r = reindex(traj, progress(traj, P0, P1), grid)
    np.testing.assert_allclose(r.points, geodesic(P0, P1, grid), atol=1e-12)
    assert r.reached.all()
    np.testing.assert_allclose(np.interp(r.index, np.arange(len(tk)), tk), grid, atol=1e-9)


def test_reindex_first_passage_and_unreached_values():
    rng = np.random.default_rng(6)
    P0, P1 = endpoints(rng, 15, 5)
    tk = np.array([0.1, 0.5, 0.3, 0.6])  # non-monotone progress
    traj = geodesic(P0, P1, tk)
    r = reindex(traj, tk, [0.0, 0.1, 0.4, 0.55, 0.6, 0.9])
    np.testing.assert_allclose(r.index[:5], [0.0, 0.0, 0.75, 2 + 0.25 / 0.3, 3.0])
    assert list(r.reached) == [True] * 5 + [False]
    assert np.isnan(r.index[5])
    np.testing.assert_allclose(r.points[0], traj[0], atol=1e-15)  # before the first
    np.testing.assert_allclose(r.points[5], traj[3], atol=1e-15)  # never reached: last
    np.testing.assert_allclose(r.points[2], geodesic(P0, P1, 0.4), atol=1e-12)
    assert reindex(traj, tk).grid.shape == (51,)


def test_tubes_and_trajectory_distances():
    rng = np.random.default_rng(7)
    P0, P1 = endpoints(rng, 20, 10)
    grid = np.linspace(0, 1, 11)
    base = geodesic(P0, P1, grid)
    same = np.stack([base, base, base])
    np.testing.assert_allclose(mean_trajectory(same), base, atol=1e-15)
    np.testing.assert_allclose(tube_widths(same), 0.0, atol=1e-14)
    noisy = np.stack([0.8 * base + 0.2 * rng.dirichlet(np.ones(10), size=(11, 20))
                      for _ in range(4)])
    w = tube_widths(noisy)
    assert w.shape == (4, 11) and (w > 0).all()
    mean = mean_trajectory(noisy)
    np.testing.assert_allclose(mean.sum(-1), 1.0, atol=1e-14)
    # the normalised mean of sqrt(p) is the point of least sum of squared chords
    np.testing.assert_allclose(w[2], bhattacharyya_paired(noisy[2], mean), atol=1e-15)
    assert trajectory_distance(noisy[0], noisy[0]) == pytest.approx(0.0, abs=1e-14)
    T = trajectory_distances(noisy, device="cpu")
    assert np.array_equal(T, T.T)
    assert T[0, 1] == pytest.approx(trajectory_distance(noisy[0], noisy[1]), rel=1e-12)
    assert T[1, 3] == pytest.approx(np.mean([bhattacharyya(noisy[[1, 3], g], device="cpu")[0, 1]
                                             for g in range(11)]), rel=1e-12)


@pytest.mark.parametrize("c", [2, 10])
def test_riemann_length_of_the_geodesic(c):
    """The Fisher length of the P0 -> P* geodesic is 2 arccos(1/sqrt(C)) per sample; the
    discrete sum of sqrt(8 d_B) converges to it as O(1/K^2)."""
    P0, P1 = endpoints(np.random.default_rng(8), 12, c)
    exact = 2 * np.arccos(1 / np.sqrt(c))
    errs = []
    for k in (50, 100):
        length = riemann_length(geodesic(P0, P1, np.linspace(0, 1, k + 1)))
        errs.append(abs(length - exact))
    assert errs[1] < 1e-4 * exact
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.05)
    assert riemann_length(geodesic(P0, P1, [0.3])) == 0.0


def test_length_constant_matches_the_fisher_metric():
    """sqrt(8 d_B) of a small step equals the Fisher length sqrt(mean_n sum_c dp^2 / p)."""
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.ones(6), size=50)
    v = rng.standard_normal(p.shape) * p
    v -= p * v.sum(-1, keepdims=True)
    eps = 1e-5
    ds = eps * np.sqrt(np.mean(np.sum(v**2 / p, axis=-1)))
    assert riemann_length(np.stack([p, p + eps * v])) == pytest.approx(ds, rel=1e-4)


@FAST
@given(n=st.integers(1, 8), m=st.integers(1, 20), c=st.integers(2, 8),
       seed=st.integers(0, 2**32 - 1), alpha=st.sampled_from([0.1, 1.0, 5.0]))
def test_random_models_properties(n, m, c, seed, alpha):
    rng = np.random.default_rng(seed)
    P0, P1 = endpoints(rng, m, c)
    Q = rng.dirichlet(np.full(c, alpha), size=(n, m))
    t, d = progress(Q, P0, P1, return_distance=True)
    assert ((t >= 0) & (t <= 1)).all() and (d >= -1e-15).all()
    # t* minimises the distance: nearby points on the geodesic are no closer
    for s in (np.clip(t - 1e-3, 0, 1), np.clip(t + 1e-3, 0, 1)):
        ds = bhattacharyya_paired(np.stack([geodesic(P0, P1, x) for x in s]), Q)
        assert (ds >= d - 1e-13).all()
    D = bhattacharyya(Q, device="cpu")
    np.testing.assert_allclose(np.diag(bhattacharyya(Q, Q[::-1], device="cpu")),
                               bhattacharyya_paired(Q, Q[::-1]), atol=1e-13)
    assert (D >= -1e-15).all()
