"""Curvature of any pointwise map f: R^d → R^D, by nested forward-mode derivatives.

The second derivatives ∂²f/∂z_i∂z_j of a map split into a part tangent to its image (the
connection coefficients Γ, "parameter-effects curvature") and a part normal to it
(extrinsic curvature). The penalty at a point z is the mean over unit directions v
(uniform on the sphere S^{d-1}) of the squared second directional derivative,

    R(z) = E_v ‖P f_vv(z)‖²,      f_vv = Σ_ij ∂²f/∂z_i∂z_j v_i v_j,

with P = I (total), P_T (tangent: projector on the column space of J = ∂f/∂z) or
P_N = I − P_T (normal). It is rotation invariant in the latent space, and for small d it
is computed exactly from the Hessian entries H_ij (nested forward-mode ``torch.func.jvp``)
with the isotropic moment identity

    d(d+2) E_v ‖Σ_ij H_ij v_i v_j‖² = ‖Σ_i H_ii‖² + 2 Σ_ij ‖H_ij‖²;

for larger d it is estimated without bias from random directions (one nested jvp each).
``scale_free`` divides by E_v ‖J v‖⁴ (the same identity with H → JᵀJ), which makes R
invariant under a rescaling of the latent space.

:func:`curvature` is the entry point; :func:`reduce_exact` and :func:`reduce_random` turn
derivatives computed by other means (the Γ-VAE's hand-differentiated decoder,
:func:`hyperribbon.vae.decoder_curvature`) into the same parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.func import jvp

PARTS = ("total", "tangent", "normal")
MAX_EXACT_DIM = 10  # exact Hessian entries up to this latent dimension (d(d+1)/2 jvps)

Tensor = torch.Tensor


def _basis(z: Tensor, i: int) -> Tensor:
    e = torch.zeros_like(z)
    e[..., i] = 1.0
    return e


def hessian_entries(fn: Callable[[Tensor], Tensor], z: Tensor
                    ) -> tuple[Tensor, dict[tuple[int, int], Tensor]]:
    """Jacobian columns and second derivatives of a pointwise map by nested forward mode.

    ``fn`` maps ``z`` of shape (..., d) to (..., D), each point independently.

    Returns
    -------
    J : tensor (..., D, d), the Jacobian ∂f/∂z
    H : dict (i, j) → tensor (..., D) for i ≤ j, the second derivatives ∂²f/∂z_i∂z_j
    """
    d = z.shape[-1]
    cols, H = [], {}
    for i in range(d):
        ei = _basis(z, i)

        def inner(w: Tensor, ei: Tensor = ei) -> Tensor:
            return jvp(fn, (w,), (ei,))[1]

        for j in range(i, d):
            Ji, Hij = jvp(inner, (z,), (_basis(z, j),))
            H[(i, j)] = Hij
            if j == i:
                cols.append(Ji)
    return torch.stack(cols, dim=-1), H


def second_directional(fn: Callable[[Tensor], Tensor], z: Tensor, v: Tensor
                       ) -> tuple[Tensor, Tensor]:
    """(J v, f_vv): first and second directional derivatives along ``v`` (same shape as
    ``z``), by one nested forward-mode jvp."""
    def inner(w: Tensor) -> Tensor:
        return jvp(fn, (w,), (v,))[1]

    return jvp(inner, (z,), (v,))


def tangent_projector_apply(J: Tensor, h: Tensor, ridge: float = 1e-10) -> Tensor:
    """P_T h = J (JᵀJ)⁻¹ Jᵀ h, the part of ``h`` (..., D) in the column space of ``J``
    (..., D, d)."""
    c = (inverse_metric(J, ridge) @ tangent_coords(J, h)[..., None])[..., 0]
    return (J * c[..., None, :]).sum(-1)


def tangent_coords(J: Tensor, h: Tensor) -> Tensor:
    """Jᵀh (..., d) for ``h`` (..., D), by elementwise products (no tiny matmuls)."""
    return (J * h[..., :, None]).sum(-2)


def inverse_metric(J: Tensor, ridge: float = 1e-10) -> Tensor:
    """(JᵀJ + ε)⁻¹ (..., d, d); the tiny ridge ε (relative to tr JᵀJ / d) keeps a
    degenerate Jacobian finite. It acts in float64 only (1e-10 is below float32's
    resolution): the curvature parts call it on float64 copies."""
    G = J.transpose(-1, -2) @ J
    d = G.shape[-1]
    scale = G.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-30) / d
    eye = torch.eye(d, dtype=G.dtype, device=G.device)
    return torch.linalg.inv(G + ridge * scale[..., None, None] * eye)


def _quad(a: Tensor, M: Tensor, b: Tensor) -> Tensor:
    return (a * (M * b[..., None, :]).sum(-1)).sum(-1)


def _split(J: Tensor, second: dict, average: Callable[[dict, Callable], Tensor]
           ) -> tuple[Tensor, Tensor]:
    """Tangent and normal parts, computed in float64 and returned in J's dtype: in
    float32 the ridge of :func:`inverse_metric` is below the resolution and
    normal = total − tangent loses its sign to rounding where the curvature is nearly
    all tangent. ``average(vectors, inner)`` reduces second derivatives with a quadratic
    form ``inner(a, b)``."""
    J64 = J.double()
    s64 = {k: h.double() for k, h in second.items()}
    Ginv = inverse_metric(J64)
    total = average(s64, lambda a, b: (a * b).sum(-1))
    tangent = average({k: tangent_coords(J64, h) for k, h in s64.items()},
                      lambda a, b: _quad(a, Ginv, b))
    return tangent.to(J.dtype), (total - tangent).to(J.dtype)


def sphere_average_sq(H: dict[tuple[int, int], Tensor], d: int,
                      inner: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """E_v ‖Σ_ij H_ij v_i v_j‖² over v uniform on the unit sphere, exactly:
    (‖Σ_i H_ii‖² + 2 Σ_ij ‖H_ij‖²) / (d(d+2)). ``H`` holds i ≤ j (vectors over the last
    axis, or scalars); ``inner(a, a)`` replaces the squared norm when given (a quadratic
    form, e.g. the tangent part)."""
    def sq(x: Tensor) -> Tensor:
        if inner is not None:
            return inner(x, x)
        return x.pow(2).sum(-1) if x.dim() > 0 else x.pow(2)

    trace = sum(H[(i, i)] for i in range(d))
    frob = sum((1.0 if i == j else 2.0) * sq(h) for (i, j), h in H.items())
    return (sq(trace) + 2.0 * frob) / (d * (d + 2))


def metric_quartic(J: Tensor) -> Tensor:
    """E_v ‖J v‖⁴ over unit v, exactly: (tr(G)² + 2 tr(G²)) / (d(d+2)), G = JᵀJ."""
    G = J.transpose(-1, -2) @ J
    d = G.shape[-1]
    tr = G.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (tr.pow(2) + 2.0 * G.pow(2).sum((-1, -2))) / (d * (d + 2))


def random_unit(shape: Sequence[int], generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Directions uniform on the unit sphere (normalised Gaussians) of shape (..., d)."""
    v = torch.randn(*shape, generator=generator, dtype=dtype, device=device)
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def resolve_mode(mode: str, d: int) -> str:
    """"exact" or "random" for ``mode`` in a latent space of dimension ``d``: "auto" is
    exact up to :data:`MAX_EXACT_DIM` dimensions."""
    if mode == "auto":
        return "exact" if d <= MAX_EXACT_DIM else "random"
    if mode not in ("exact", "random"):
        raise ValueError(f"mode = {mode!r}: use exact, random or auto")
    return mode


def reduce_exact(J: Tensor | None, H: dict[tuple[int, int], Tensor], d: int,
                 split: bool = False, scale_free: bool = False) -> dict[str, Tensor]:
    """Penalty parts from the Jacobian (..., D, d) and the Hessian entries (i ≤ j):
    the exact sphere averages of ‖f_vv‖² and ‖P_T f_vv‖² (the tangent part, computed
    in the latent space as uᵀ(JᵀJ)⁻¹u with u = Jᵀf_vv); the normal part is their
    difference (P_T is an orthogonal projector). Divided by E_v‖Jv‖⁴ when
    ``scale_free``."""
    out = {"total": sphere_average_sq(H, d)}
    if split:
        out["tangent"], out["normal"] = _split(
            J, H, lambda V, inner: sphere_average_sq(V, d, inner=inner))
    if scale_free:
        denom = metric_quartic(J).clamp_min(1e-30)
        out = {k: v / denom for k, v in out.items()}
    return out


def reduce_random(J: Tensor | None, fvv: Sequence[Tensor], split: bool = False,
                  scale_free: bool = False) -> dict[str, Tensor]:
    """Penalty parts estimated from second directional derivatives along random unit
    directions (each (..., D)): means of ‖f_vv‖² and of its tangent part; the normal part
    is their difference, so the parts sum to the total exactly."""
    out = {"total": torch.stack([h.pow(2).sum(-1) for h in fvv]).mean(0)}
    if split:
        out["tangent"], out["normal"] = _split(
            J, dict(enumerate(fvv)),
            lambda V, inner: torch.stack([inner(v, v) for v in V.values()]).mean(0))
    if scale_free:
        denom = metric_quartic(J).clamp_min(1e-30)
        out = {k: v / denom for k, v in out.items()}
    return out


def curvature(fn: Callable[[Tensor], Tensor], z: Tensor, *, mode: str = "auto",
              n_dirs: int = 4, split: bool = False, scale_free: bool = False,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The curvature penalty of any pointwise map ``fn`` at latent points ``z`` (..., d),
    by nested forward-mode ``torch.func.jvp``.

    Parameters
    ----------
    fn : pointwise map (..., d) → (..., D) (a decoder with its weights bound)
    mode : "exact" (Hessian entries, d(d+1)/2 nested jvps), "random" (``n_dirs`` random
        unit directions, unbiased) or "auto" (exact when d ≤ :data:`MAX_EXACT_DIM`)
    split : also return the tangent (Γ) and normal parts; they sum to the total
    scale_free : divide by E_v ‖J v‖⁴

    Returns
    -------
    dict with "total" (and "tangent", "normal" when ``split``), each of shape z.shape[:-1].
    """
    d = z.shape[-1]
    if resolve_mode(mode, d) == "exact":
        J, H = hessian_entries(fn, z)
        return reduce_exact(J, H, d, split, scale_free)
    J = jacobian(fn, z) if (split or scale_free) else None
    fvv = [second_directional(fn, z, random_unit(z.shape, generator, z.dtype, z.device))[1]
           for _ in range(n_dirs)]
    return reduce_random(J, fvv, split, scale_free)


def jacobian(fn: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    """The Jacobian ∂f/∂z (..., D, d) of a pointwise map by d forward-mode jvps."""
    return torch.stack([jvp(fn, (z,), (_basis(z, i),))[1] for i in range(z.shape[-1])],
                       dim=-1)

