"""Unit tests of hyperribbon.curvature: the curvature of a map against analytic facts
(quadratic maps, quadrature on the circle, explicit projections, finite differences)."""

import math

import numpy as np
import torch

from hyperribbon import curvature as curv

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


def tanh_map(seed: int, d: int, D: int, hidden: int):
    """A smooth map R^d → R^D with curvature of both kinds (two tanh layers, float64)."""
    g = torch.Generator().manual_seed(seed)
    W1, b1 = torch.randn(d, hidden, generator=g, dtype=F64), torch.randn(hidden, generator=g,
                                                                         dtype=F64)
    W2 = torch.randn(hidden, D, generator=g, dtype=F64) / hidden ** 0.5
    return lambda z: torch.tanh(z @ W1 + b1) @ W2


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
        R = curv.curvature(lambda x: x @ W + 1.0, z, mode=mode, split=True)
        for part in ("total", "tangent", "normal"):
            assert torch.allclose(R[part], torch.zeros(5, dtype=F64), atol=1e-12)


def test_exact_penalty_of_a_quadratic_decoder_is_analytic():
    rng = np.random.default_rng(1)
    for d in (1, 2, 3):
        A = sym(rng, 6, d)
        f = quadratic(A, torch.tensor(rng.normal(size=(6, d)), dtype=F64),
                      torch.zeros(6, dtype=F64))
        z = torch.tensor(rng.normal(size=(4, d)), dtype=F64)
        R = curv.curvature(f, z, mode="exact")["total"]
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
    assert torch.isclose(curv.sphere_average_sq(H, 2), fvv.pow(2).sum(-1).mean(), rtol=1e-12)


def test_metric_quartic_matches_quadrature_on_the_circle():
    J = torch.tensor(np.random.default_rng(3).normal(size=(6, 2)), dtype=F64)
    th = torch.arange(16, dtype=F64) * (2 * math.pi / 16)
    v = torch.stack([th.cos(), th.sin()], -1)
    assert torch.isclose(curv.metric_quartic(J), (v @ J.T).pow(2).sum(-1).pow(2).mean(),
                         rtol=1e-12)


def test_random_direction_estimator_is_unbiased():
    rng = np.random.default_rng(4)
    A = sym(rng, 8, 3)
    f = quadratic(A, torch.tensor(rng.normal(size=(8, 3)), dtype=F64),
                  torch.zeros(8, dtype=F64))
    z = torch.tensor(rng.normal(size=(1, 3)), dtype=F64)
    exact = curv.curvature(f, z, mode="exact", split=True)
    # 4000 independent one-direction estimates at the same point, in one call
    r = curv.curvature(f, z.expand(4000, 3).clone(), mode="random", n_dirs=1, split=True,
                      generator=torch.Generator().manual_seed(0))
    for k, xs in r.items():
        xs = xs.numpy()
        se = xs.std(ddof=1) / math.sqrt(len(xs))
        assert abs(xs.mean() - exact[k].item()) < 4 * se, k
        assert se < 0.05 * exact[k].item()  # the check has teeth


def test_tangent_and_normal_parts_sum_to_the_total_and_match_explicit_projection():
    rng = np.random.default_rng(5)
    fn = tanh_map(0, 2, 9, 6)
    z = torch.tensor(rng.normal(size=(1, 4, 2)), dtype=F64)
    R = curv.curvature(fn, z, mode="exact", split=True)
    assert torch.allclose(R["tangent"] + R["normal"], R["total"], rtol=1e-12)
    # independent: project every Hessian entry explicitly with the pseudo-inverse
    J, H = curv.hessian_entries(fn, z)
    P = J @ torch.linalg.pinv(J)
    HN = {k: h - (P @ h[..., None])[..., 0] for k, h in H.items()}
    assert torch.allclose(R["normal"], curv.sphere_average_sq(HN, 2), rtol=1e-8)
    assert (R["tangent"] > 0).all() and (R["normal"] > 0).all()


def test_a_flat_image_has_no_normal_part_in_float32():
    # f = A·g(z) with g a diffeomorphism of the plane: the image is a plane, so all the
    # curvature is tangent and the normal part is exactly 0. Computed naively in float32
    # (ridge below resolution) about half of these points came out negative.
    g = torch.Generator().manual_seed(0)
    A = 3 * torch.randn(2, 30, generator=g)
    fn = lambda z: (z + 0.7 * z ** 2 + 0.3 * z[..., :1] * z[..., 1:]) @ A  # noqa: E731
    z = torch.randn(500, 2, generator=g)
    for mode in ("exact", "random"):
        R = curv.curvature(fn, z, mode=mode, split=True, generator=g)
        assert R["normal"].dtype == torch.float32
        assert (R["normal"] >= 0).all()
        assert (R["normal"] <= 1e-4 * R["total"]).all()


def test_scale_free_penalty_is_invariant_under_latent_rescaling():
    fn = tanh_map(1, 2, 7, 5)
    z = torch.randn(1, 3, 2, dtype=F64)
    c = 2.5
    a = curv.curvature(fn, z, split=True, scale_free=True)
    b = curv.curvature(lambda w: fn(w / c), z * c, split=True, scale_free=True)
    plain = curv.curvature(lambda w: fn(w / c), z * c)["total"]
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-10)
    assert torch.allclose(plain, curv.curvature(fn, z)["total"] / c ** 4, rtol=1e-10)


def test_hessian_entries_second_directional_and_jacobian_match_a_quadratic():
    rng = np.random.default_rng(6)
    A = sym(rng, 4, 3)
    C = torch.tensor(rng.normal(size=(4, 3)), dtype=F64)
    f = quadratic(A, C, torch.ones(4, dtype=F64))
    z = torch.tensor(rng.normal(size=(2, 3)), dtype=F64)
    J, H = curv.hessian_entries(f, z)
    assert torch.allclose(J, torch.einsum("kij,nj->nki", A, z) + C, rtol=1e-12)
    assert torch.allclose(curv.jacobian(f, z), J, rtol=1e-12)
    for (i, j), h in H.items():
        assert torch.allclose(h, A[:, i, j].expand(2, 4), rtol=1e-12)
    v = torch.tensor(rng.normal(size=(2, 3)), dtype=F64)
    Jv, fvv = curv.second_directional(f, z, v)
    assert torch.allclose(Jv, (J @ v[..., None])[..., 0], rtol=1e-12)
    assert torch.allclose(fvv, torch.einsum("ni,kij,nj->nk", v, A, v), rtol=1e-12)


def test_jacobian_matches_central_differences():
    fn = tanh_map(2, 3, 5, 4)
    z = torch.randn(1, 2, 3, dtype=F64)
    J = curv.jacobian(fn, z)
    eps = 1e-6
    for i in range(3):
        e = torch.zeros_like(z)
        e[..., i] = eps
        assert torch.allclose(J[..., i], (fn(z + e) - fn(z - e)) / (2 * eps), atol=1e-8)


def test_projector_helpers_against_linear_algebra():
    rng = np.random.default_rng(7)
    J = torch.tensor(rng.normal(size=(3, 8, 2)), dtype=F64)
    h = torch.tensor(rng.normal(size=(3, 8)), dtype=F64)
    assert torch.allclose(curv.tangent_coords(J, h), (J.transpose(-1, -2) @ h[..., None])[..., 0])
    assert torch.allclose(curv.inverse_metric(J), torch.linalg.inv(J.transpose(-1, -2) @ J),
                          rtol=1e-8)
    Ph = curv.tangent_projector_apply(J, h)
    assert torch.allclose(curv.tangent_projector_apply(J, Ph), Ph, rtol=1e-8)  # idempotent
    assert torch.allclose(curv.tangent_coords(J, h - Ph), torch.zeros(3, 2, dtype=F64),
                          atol=1e-8)  # the rest is orthogonal to the columns
    inside = (J @ torch.tensor([[1.0], [-2.0]], dtype=F64))[..., 0]
    assert torch.allclose(curv.tangent_projector_apply(J, inside), inside, rtol=1e-8)


def test_random_unit_directions_are_isotropic_unit_vectors():
    v = curv.random_unit((20000, 3), torch.Generator().manual_seed(0), F64)
    assert torch.allclose(v.norm(dim=-1), torch.ones(20000, dtype=F64))
    cov = (v.T @ v / len(v)).numpy()
    assert np.allclose(cov, np.eye(3) / 3, atol=0.01)
