"""Bhattacharyya distances between prediction sets and intensive PCA (InPCA).

A model is an array of class probabilities ``p[n, c]`` on M samples; a set of N models
is an array of shape ``(N, M, C)``. The Bhattacharyya distance of two models (see
``00_common.md``) is

    d_B(P, Q) = -(1/M) sum_n log max(sum_c sqrt(p_nc q_nc), clamp),

an N x N matrix for a set of models, costing 2 N^2 M C flops. InPCA (Quinn et al., PNAS
2019) double-centres that matrix, W = -1/2 L D L, and embeds the models with the
eigenvectors of W scaled by sqrt|lambda|; negative eigenvalues are kept as time-like axes.

How the distances are computed fast and exactly
-----------------------------------------------
With C = 10 classes the per-sample coefficient ``sum_c sqrt(p q)`` is a GEMM with an
inner dimension of only 10, so it costs 20 flops per (pair, sample) -- and then each of
the N^2 M coefficients needs a logarithm, which costs more than the 20 flops. Two tricks
remove that bottleneck without giving up float64:

* ``sum_n log b_n = log prod_n b_n``: the coefficients of a pair are multiplied over the
  samples, and the binary exponent of the running product is moved into an integer
  every G samples (G = 25 for the default clamp in float64, 3 in float32: the product of
  G clamped coefficients cannot underflow; frexp by bit operations, exact), so the only
  logarithms left are one per pair at the end (one per G samples on the torch path).
  The result differs from a float64 sum of logs by rounding only (relative 1e-16 per
  product; the tests ask 1e-12).
* On the CPU a small C kernel (compiled on first use with the system C compiler, cached
  in a per-user folder, never the shared cache (:func:`kernel_dir`), and loaded with
  ``ctypes``) fuses the 10-term products,
  the clamp, the clamp count and the running product in registers, over cache-sized
  tiles of the upper triangle (d_B is symmetric, so half the pairs are computed), in as
  many threads as ``torch.get_num_threads()``. Without a C compiler, and on CUDA, the
  same computation runs as chunked batched matrix products in torch (``backend="torch"``).

``dtype="float32"`` computes the coefficients and the running products in float32 (the
exponents still exactly, the final logarithms in float64): about twice as fast, with an
absolute error of about 1e-8 on d_B (measured in ``benchmarks/bench_inpca.py``) -- fine
for an embedding, not for tests at 1e-12. The default ``"float64"`` is exact.

At scale (10^4 - 10^5 models)
-----------------------------
* **Bounded memory.** ``bhattacharyya(P, out=...)`` computes D in blocks of rows (one
  triangle: the diagonal block in the kernel's triangular mode, the rest of the row as a
  rectangle), writes each block and its mirror image straight into ``out`` -- a numpy
  array, a ``.npy`` file opened as a memory map, or a (CUDA) tensor -- and reads the
  input one block of models and samples at a time from any array-like (``np.memmap``,
  :class:`RowStack` of per-run arrays, h5py). ``inpca(D, k, overwrite=True)`` then
  double-centres D in place (:func:`double_centre_inplace`, ||W||_F^2 accumulated
  blockwise so the explained stress is exact), so the peak is one N x N matrix plus a
  block (512 MiB by default).
* **Partial eigensolvers at both ends.** :func:`top_eigenpairs`: a randomised block
  subspace iteration with Rayleigh-Ritz ordered by |theta| (numpy, or torch on the
  GPU: one GEMM pass over W per iteration) and ARPACK (``eigsh(which="LM")``).
* **Landmarks.** :func:`landmark_inpca` embeds L models exactly and places the others
  by the Gower projection (:meth:`InPCA.project`) of :func:`cross_block`, which also
  adds new checkpoints to an existing embedding; :func:`compare_embeddings` measures
  the difference from the exact embedding.
* **The clamp is reported**: whenever a coefficient hits it, a :class:`ClampWarning`
  says how many (``return_clamped=True`` hands the count to the caller instead).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hyperribbon.util import progress, resolve_device

__all__ = [
    "CLAMP",
    "ClampWarning",
    "InPCA",
    "LandmarkInPCA",
    "RowStack",
    "bhattacharyya",
    "bhattacharyya_paired",
    "compare_embeddings",
    "cross_block",
    "double_centre",
    "double_centre_inplace",
    "explained_stress",
    "inpca",
    "kernel_available",
    "landmark_inpca",
    "report_clamp",
    "sum_tolerance",
    "top_eigenpairs",
]

CLAMP = 1e-12
"""Default lower clamp of the per-sample Bhattacharyya coefficient (before the log)."""

_LN2 = float(np.log(2.0))
_SUM_ATOL = 1e-5  # least tolerance of the row sums (float64 inputs)

# ---------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------


def _as_probabilities(P: Any, name: str) -> Any:
    """P itself when it is an array-like of shape (models, samples, classes) with a real
    dtype (numpy or torch arrays, memmaps, :class:`RowStack`, h5py datasets: nothing is
    read), else ValueError. Other inputs (lists) become numpy arrays."""
    import torch

    if isinstance(P, torch.Tensor):
        if P.is_complex():
            raise ValueError(f"{name} must hold real numbers, got dtype {P.dtype}")
    else:
        if not all(hasattr(P, a) for a in ("shape", "dtype", "__getitem__")):
            P = np.asarray(P)
        if np.dtype(P.dtype).kind not in "fiu":
            raise ValueError(f"{name} must hold real numbers, got dtype {P.dtype}")
    if len(P.shape) != 3:
        raise ValueError(f"{name} must have shape (models, samples, classes), got {tuple(P.shape)}")
    if min(P.shape) == 0:
        raise ValueError(f"{name} is empty: shape {tuple(P.shape)}")
    return P


def sum_tolerance(dtype: Any, n_classes: int) -> float:
    """Tolerance of |sum_c p_c - 1| for predictions stored in ``dtype`` over C classes.

    ``max(1e-5, C * eps(dtype))``: a softmax computed and stored in float32 sums to 1
    within C float32 epsilons even with naive summation (1.2e-4 for C = 1000, ImageNet's
    scale; 1e-5 for C = 10); float64 predictions get 1e-5.

    Parameters
    ----------
    dtype : numpy or torch dtype
    n_classes : int

    Returns
    -------
    float
    """
    import torch

    if isinstance(dtype, torch.dtype):
        eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    else:
        eps = np.finfo(dtype).eps if np.dtype(dtype).kind == "f" else 0.0
    return max(_SUM_ATOL, n_classes * float(eps))


def _validate(P: Any, name: str, atol: float | None = None, block: int | None = None) -> None:
    """Check, in blocks of models, that ``P`` holds finite, non-negative probability rows
    summing to 1 within ``atol`` (default :func:`sum_tolerance`); raise ValueError naming
    ``name``, the first offending model and sample, and the row.

    Cheap summaries first (row sums, which are not finite when an entry is not, and the
    minimum); the offending index is looked for only when a block fails. Reads P a block
    at a time (any array-like)."""
    import torch

    lib = torch if isinstance(P, torch.Tensor) else np
    atol = sum_tolerance(P.dtype, P.shape[-1]) if atol is None else atol
    block = block or max(1, (1 << 22) // max(1, P.shape[1] * P.shape[2]))
    for i0 in range(0, P.shape[0], block):
        x = P[i0:i0 + block]
        x = x if lib is torch else np.asarray(x)
        s = x.sum(-1, dtype=lib.float64)
        if bool((lib.abs(s - 1) <= atol).all()) and float(x.min()) >= 0:
            continue
        x = x.cpu().numpy() if lib is torch else x
        s = s.cpu().numpy() if lib is torch else s
        checks = ((~np.isfinite(x)).any(-1), "is not finite",
                  (x < 0).any(-1), "has a negative probability",
                  ~(np.abs(s - 1) <= atol), f"does not sum to 1 (tolerance {atol:g})")
        for bad, what in zip(checks[::2], checks[1::2], strict=True):
            if bad.any():
                i, n = (int(v) for v in np.argwhere(bad)[0])
                row = np.array2string(x[i, n], precision=4, threshold=12, max_line_width=200)
                raise ValueError(f"{name}[{i0 + i}, {n}] (model {i0 + i}, sample {n}) "
                                 f"{what}: {row}")


# ---------------------------------------------------------------------------------------
# The C kernel (CPU)
# ---------------------------------------------------------------------------------------

_KERNEL_TEMPLATE = r"""
/* One tile function per precision, generated from this template by hyperribbon.inpca.
   Packed layout: X[((panel * ms + n) * C + c) * PW + lane] holds sqrt(p) of model
   panel * PW + lane, sample n, class c. For every pair (i, j) of a tile the kernel
   multiplies max(sum_c a_i b_j, clamp) over the ms samples into prod[i, j] and keeps the
   binary exponent of the product in ex[i, j] (prod stays in [0.5, 1)). */
typedef @T@ VT_@S@ __attribute__((vector_size(64)));
typedef @I@ VI_@S@ __attribute__((vector_size(64)));
#define VL_@S@ (64 / (int)sizeof(@T@))
#define PW_@S@ (2 * VL_@S@)

static inline VT_@S@ ldt_@S@(const @T@* p) { VT_@S@ v; memcpy(&v, p, sizeof v); return v; }
static inline VI_@S@ ldi_@S@(const @I@* p) { VI_@S@ v; memcpy(&v, p, sizeof v); return v; }

static void micro_@S@(const @T@* restrict A, const @T@* restrict B, int64_t ms, int64_t C,
                      int64_t ia, @T@ clamp, int64_t G, const VI_@S@ valid[@RI@][2],
                      int64_t* count,
                      @T@* prod, @I@* ex, int64_t ld)
{
    const VT_@S@ vcl = (VT_@S@){0} + clamp;
    const VI_@S@ emask = (VI_@S@){0} + (@I@)@EMASK@;
    const VI_@S@ bias = (VI_@S@){0} + (@I@)@BIAS@;
    const VI_@S@ mmask = (VI_@S@){0} + (@I@)@MMASK@;
    const VI_@S@ half = (VI_@S@){0} + (@I@)((@I@)@BIAS@ << @SHIFT@);
    VT_@S@ P[@RI@][2]; VI_@S@ E[@RI@][2]; VI_@S@ cnt = (VI_@S@){0};
    for (int r = 0; r < @RI@; r++) for (int w = 0; w < 2; w++) {
        P[r][w] = ldt_@S@(prod + r * ld + w * VL_@S@);
        E[r][w] = ldi_@S@(ex + r * ld + w * VL_@S@);
    }
    int64_t g = 0;
    for (int64_t n = 0; n < ms; n++) {
        VT_@S@ bc[@RI@][2];
        for (int r = 0; r < @RI@; r++) { bc[r][0] = (VT_@S@){0}; bc[r][1] = (VT_@S@){0}; }
        const @T@* a = A + n * C * PW_@S@ + ia;
        const @T@* b = B + n * C * PW_@S@;
        for (int64_t c = 0; c < C; c++) {
            VT_@S@ b0 = ldt_@S@(b + c * PW_@S@), b1 = ldt_@S@(b + c * PW_@S@ + VL_@S@);
            for (int r = 0; r < @RI@; r++) {
                @T@ s = a[c * PW_@S@ + r];
                bc[r][0] += s * b0; bc[r][1] += s * b1;
            }
        }
        for (int r = 0; r < @RI@; r++) for (int w = 0; w < 2; w++) {
            VI_@S@ lo = bc[r][w] < vcl;
            cnt -= lo & valid[r][w];
            P[r][w] *= (VT_@S@)(((VI_@S@)bc[r][w] & ~lo) | ((VI_@S@)vcl & lo));
        }
        if (++g == G || n == ms - 1) {
            g = 0;
            for (int r = 0; r < @RI@; r++) for (int w = 0; w < 2; w++) {
                VI_@S@ bits = (VI_@S@)P[r][w];
                E[r][w] += ((bits >> @SHIFT@) & emask) - bias;
                P[r][w] = (VT_@S@)((bits & mmask) | half);
            }
        }
    }
    for (int r = 0; r < @RI@; r++) for (int w = 0; w < 2; w++) {
        memcpy(prod + r * ld + w * VL_@S@, &P[r][w], sizeof P[r][w]);
        memcpy(ex + r * ld + w * VL_@S@, &E[r][w], sizeof E[r][w]);
    }
    @I@ cv[VL_@S@]; memcpy(cv, &cnt, sizeof cv);
    for (int l = 0; l < VL_@S@; l++) *count += cv[l];
}

/* Rows [0, nrows) of A against the column panels of B in blocks of TJ panels: blocks
   blk0, blk0 + blkstep, ... (one thread each). upper: A is B and only pairs i <= j are
   counted (every pair with i <= j is computed). Returns the number of clamped
   coefficients among the counted pairs. */
int64_t bc_tiles_@S@(const @T@* A, const @T@* B, int64_t ms, int64_t C, int64_t nrows,
                     int64_t npan, int64_t blk0, int64_t blkstep, int32_t upper,
                     @T@ clamp, int64_t G, @T@* prod, @I@* ex, int64_t ld)
{
    int64_t count = 0;
    VI_@S@ full[@RI@][2], diag[@RI@][2];
    for (int r = 0; r < @RI@; r++) for (int w = 0; w < 2; w++) full[r][w] = (VI_@S@){0} - 1;
    for (int64_t jb = blk0 * TJ; jb < npan; jb += blkstep * TJ) {
        int64_t jend = jb + TJ < npan ? jb + TJ : npan;
        int64_t iend = upper ? jend * PW_@S@ : nrows;
        if (iend > nrows) iend = nrows;
        for (int64_t i = 0; i < iend; i += @RI@) {
            const @T@* Ap = A + (i / PW_@S@) * ms * C * PW_@S@;
            int64_t ia = i % PW_@S@;
            for (int64_t jp = jb; jp < jend; jp++) {
                int64_t j = jp * PW_@S@;
                if (upper && i > j + PW_@S@ - 1) continue;
                const VI_@S@ (*valid)[2] = (const VI_@S@ (*)[2])full;
                if (upper && i + @RI@ - 1 > j) {
                    for (int r = 0; r < @RI@; r++) for (int w = 0; w < 2; w++) {
                        @I@ lane[VL_@S@];
                        for (int l = 0; l < VL_@S@; l++)
                            lane[l] = (j + w * VL_@S@ + l >= i + r) ? -1 : 0;
                        memcpy(&diag[r][w], lane, sizeof lane);
                    }
                    valid = (const VI_@S@ (*)[2])diag;
                }
                micro_@S@(Ap, B + jp * ms * C * PW_@S@, ms, C, ia, clamp, G, valid, &count,
                          prod + i * ld + j, ex + i * ld + j, ld);
            }
        }
    }
    return count;
}
"""

# Per precision: element type, integer type of the same width, rows per micro-tile,
# exponent layout.
_PRECISIONS = {
    "float64": dict(T="double", I="int64_t", S="f64", RI="8", SHIFT="52",
                    EMASK="0x7ff", BIAS="1022", MMASK="0x800fffffffffffffLL"),
    "float32": dict(T="float", I="int32_t", S="f32", RI="4", SHIFT="23",
                    EMASK="0xff", BIAS="126", MMASK="0x807fffff"),
}
_PANEL = {"float64": 16, "float32": 32}  # models per packed panel (two 64-byte vectors)
_TJ = 4  # column panels per block (a block's packed data stays in L2)


def _kernel_source() -> str:
    src = f"#include <stdint.h>\n#include <string.h>\n#define TJ {_TJ}\n"
    for spec in _PRECISIONS.values():
        body = _KERNEL_TEMPLATE
        for key, val in spec.items():
            body = body.replace(f"@{key}@", val)
        src += body
    return src


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((ln for ln in fh if ln.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def kernel_dir() -> Path:
    """The per-user folder of the compiled kernel: ``$XDG_CACHE_HOME`` (default
    ``~/.cache``) ``/hyperribbon-kernels``, mode 0700.

    Never ``HYPERRIBBON_CACHE``: a cache shared by the workers of a cluster holds data
    only, and a shared library loaded from a folder others can write would run their code.
    Raises PermissionError when the folder is not owned by this user or is writable by
    others.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    d = base / "hyperribbon-kernels"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(f"{d} is not owned by this user or is writable by others")
    return d


@functools.lru_cache(maxsize=1)
def _kernel() -> ctypes.CDLL | None:
    """Compile (once per machine, cached) and load the C kernel; None when impossible."""
    if os.environ.get("HYPERRIBBON_NO_KERNEL"):
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        warnings.warn("no C compiler found: bhattacharyya uses the (slower) torch path",
                      stacklevel=3)
        return None
    try:
        folder = kernel_dir()
    except PermissionError as exc:
        warnings.warn(f"{exc}: bhattacharyya uses the (slower) torch path", stacklevel=3)
        return None
    src = _kernel_source()
    base = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
    for flags in (["-march=native", *base], base):
        key = hashlib.sha256("\0".join([src, cc, *flags, _cpu_signature(),
                                        platform.machine()]).encode()).hexdigest()[:16]
        lib = folder / f"bhattacharyya_{key}.so"
        if not lib.exists():
            with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
                c_file = os.path.join(tmp, "kernel.c")
                with open(c_file, "w") as fh:
                    fh.write(src)
                out = os.path.join(tmp, lib.name)
                res = subprocess.run([cc, *flags, "-o", out, c_file], capture_output=True,
                                     text=True)
                if res.returncode != 0:
                    continue
                os.replace(out, lib)
        handle = ctypes.CDLL(str(lib))
        for spec in _PRECISIONS.values():
            fn = getattr(handle, f"bc_tiles_{spec['S']}")
            real = ctypes.c_double if spec["T"] == "double" else ctypes.c_float
            i64, vp = ctypes.c_int64, ctypes.c_void_p
            fn.restype = i64
            fn.argtypes = [vp, vp, i64, i64, i64, i64, i64, i64, ctypes.c_int32, real, i64,
                           vp, vp, i64]
        return handle
    warnings.warn(f"compiling the Bhattacharyya kernel with {cc} failed: "
                  "bhattacharyya uses the (slower) torch path", stacklevel=3)
    return None


def kernel_available() -> bool:
    """True when the compiled CPU kernel can be used (a C compiler was found).

    Returns
    -------
    bool
        Whether ``bhattacharyya(..., backend="kernel")`` works on this machine. Set
        ``HYPERRIBBON_NO_KERNEL=1`` to force the torch path.
    """
    return _kernel() is not None


def _pack(X: Any, i0: int, i1: int, n0: int, n1: int, rows: int, pw: int,
          dtype: type) -> np.ndarray:
    """sqrt of models [i0, i1), samples [n0, n1) of X in the panel layout of the kernel;
    padding models (up to ``rows``) are uniform distributions (they never clamp and are
    sliced away). Reads only that block of X (any array-like)."""
    C = X.shape[2]
    n, m = i1 - i0, n1 - n0
    S = np.empty((rows, m, C), dtype=dtype)
    np.sqrt(_host(X[i0:i1, n0:n1]), out=S[:n], casting="same_kind", dtype=dtype)
    S[n:] = np.sqrt(1.0 / C)
    return np.ascontiguousarray(S.reshape(rows // pw, pw, m, C).transpose(0, 2, 3, 1))


def _host(x: Any) -> np.ndarray:
    """A numpy view (or copy) of a block read from any array-like or torch tensor."""
    import torch

    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _kernel_rows(A: Any, B: Any, i0: int, i1: int, j0: int, j1: int, upper: bool,
                 chunk: int, precision: str, clamp: float, pool: ThreadPoolExecutor,
                 threads: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Running products and exponents (padded) of rows [i0, i1) of A against the models
    [j0, j1) of B, with sum_n log max(bc, clamp) = log(prod) + ex log 2, and the number of
    clamped coefficients these rows contribute to the full matrix.

    ``upper``: B is A and j0 = i0; the diagonal block [i0, i1)^2 is computed for i <= j
    only (the kernel's triangular mode), the rest of the row block as a rectangle, and
    each clamp counts twice (the mirrored pair). i1 - i0 must then be a multiple of the
    panel width unless j1 = i1."""
    lib = _kernel()
    assert lib is not None
    fn = getattr(lib, f"bc_tiles_{_PRECISIONS[precision]['S']}")
    pw = _PANEL[precision]
    ftype, itype = (np.float64, np.int64) if precision == "float64" else (np.float32, np.int32)
    group = _group(clamp, precision)
    M, C = A.shape[1], A.shape[2]
    nb = i1 - i0
    ra = -(-nb // pw) * pw
    rect = (j1 - i0 - nb) if upper else (j1 - j0)
    if upper and rect and nb % pw:
        raise AssertionError("row block not aligned to the kernel's panels")
    rb = (ra if upper else 0) + -(-rect // pw) * pw
    prod = np.ones((ra, rb), dtype=ftype)
    ex = np.zeros((ra, rb), dtype=itype)
    fsz, isz = prod.itemsize, ex.itemsize
    count = 0
    for n0 in range(0, M, chunk):
        n1 = min(M, n0 + chunk)
        if upper:
            pb = _pack(A, i0, j1, n0, n1, rb, pw, ftype)  # rb = ra when rect = 0
            calls = [(pb, pb, ra // pw, 1, 0)]
            if rect:
                calls.append((pb, pb[ra // pw:], (rb - ra) // pw, 0, ra))
        else:
            pa = _pack(A, i0, i1, n0, n1, ra, pw, ftype)
            calls = [(pa, _pack(B, j0, j1, n0, n1, rb, pw, ftype), rb // pw, 0, 0)]
        jobs = []
        for a, b, npan, up, off in calls:
            nj = max(1, min(-(-npan // _TJ), 4 * threads))
            jobs += [pool.submit(fn, a.ctypes.data, b.ctypes.data, n1 - n0, C, ra, npan, t,
                                 nj, up, clamp, group, prod.ctypes.data + off * fsz,
                                 ex.ctypes.data + off * isz, rb) for t in range(nj)]
        count += sum(job.result() for job in jobs)
    # upper: the kernel counts pairs i <= j once; the diagonal (sum p = 1) never clamps
    return prod, ex, 2 * count if upper else count


def _torch_rows(A: Any, B: Any, i0: int, i1: int, j0: int, j1: int, upper: bool,
                chunk: int, precision: str, clamp: float, dev: Any) -> tuple[Any, int]:
    """sum_n log max(bc, clamp) for rows [i0, i1) of A against models [j0, j1) of B as
    an (i1 - i0, j1 - j0) float64 tensor on ``dev`` (``upper``: B is A, j0 = i0, and the
    part below the diagonal is left at 0), and the clamp count of these rows in the full
    matrix; chunked batched matrix products."""
    import torch

    tdt = torch.float64 if precision == "float64" else torch.float32
    nb, ncol = i1 - i0, j1 - j0
    sub = 2048 if dev.type == "cuda" else 256
    group = _group(clamp, "float64")
    out = torch.zeros((nb, ncol), dtype=torch.float64, device=dev)
    count = 0

    def roots(X: Any, r0: int, r1: int, n0: int, n1: int) -> Any:
        x = X[r0:r1, n0:n1]
        x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, order="C"))
        return x.to(dev, tdt).sqrt().transpose(0, 1).contiguous()

    for n0 in range(0, A.shape[1], chunk):
        n1 = min(A.shape[1], n0 + chunk)
        Sb = roots(B, j0, j1, n0, n1)
        Sa = Sb[:, :nb] if upper else roots(A, i0, i1, n0, n1)
        for ii in range(0, nb, sub):
            for jj in range(ii if upper else 0, ncol, sub):
                bc = torch.bmm(Sa[:, ii:ii + sub], Sb[:, jj:jj + sub].transpose(1, 2))
                bc = bc.to(torch.float64)
                low = int((bc < clamp).sum())
                count += 2 * low if upper and jj != ii else low
                out[ii:ii + sub, jj:jj + sub] += _sum_log(bc.clamp_(min=clamp), group)
    return out, count


def _output(out: Any, shape: tuple[int, int]) -> Any:
    """The array the distances go to: a new float64 array (None), a new ``.npy`` file
    opened as a memmap (a path), or the given numpy/torch array of that shape."""
    import torch

    if out is None:
        return np.empty(shape)
    if isinstance(out, str | os.PathLike):
        return np.lib.format.open_memmap(os.fspath(out), mode="w+", dtype=np.float64,
                                         shape=shape)
    if tuple(out.shape) != shape:
        raise ValueError(f"out must have shape {shape}, got {tuple(out.shape)}")
    ok = out.is_floating_point() if isinstance(out, torch.Tensor) else out.dtype.kind == "f"
    if not ok:
        raise ValueError(f"out must hold floating-point numbers, got dtype {out.dtype}")
    return out


def _put(out: Any, rows: slice, cols: slice, value: Any) -> None:
    """out[rows, cols] = value across numpy and torch (any device)."""
    import torch

    if isinstance(out, torch.Tensor):
        if not isinstance(value, torch.Tensor):
            value = torch.from_numpy(np.ascontiguousarray(value))
        out[rows, cols] = value.to(out.device, out.dtype)
    else:
        out[rows, cols] = _host(value)


def _symmetrize_block(out: Any, i0: int, i1: int) -> None:
    """Copy the upper triangle of out[i0:i1, i0:i1] onto its lower triangle, in place."""
    import torch

    sub = out[i0:i1, i0:i1]
    if isinstance(out, torch.Tensor):
        sub.copy_(torch.triu(sub) + torch.triu(sub, 1).T)
    else:
        il = np.tril_indices(i1 - i0, -1)
        sub[il] = sub.T[il]


_BLOCK_BYTES = 1 << 29  # working memory of one row block (running products and exponents)
_BLOCK_ROWS = 2048  # more rows per block measured no faster (N = 8000: 6.2 s in one block,
# 2.9 s in blocks of 512 to 2048 rows: the running products of a block stay closer to cache)


def _row_block(block: int | None, Na: int, Nb: int, per_entry: int, cuda: bool) -> int:
    """Rows per block: given, or as many as fit ``_BLOCK_BYTES`` (at most
    ``_BLOCK_ROWS``; on CUDA 8 times as much and no cap: fewer re-reads of the columns'
    square roots); a multiple of 64 (the kernel's panels) unless it covers every row."""
    if block is None:
        block = (8 * _BLOCK_BYTES // max(1, per_entry * Nb) if cuda else
                 min(_BLOCK_ROWS, _BLOCK_BYTES // max(1, per_entry * Nb)))
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    return Na if block >= Na else max(64, block // 64 * 64)


def _fill(P: Any, Q: Any | None, out: Any, *, chunk: int, precision: str, clamp: float,
          use_kernel: bool, dev: Any, threads: int, block: int | None) -> int:
    """Write d_B(P, Q) (Q None: P against itself, upper triangle computed and mirrored)
    into ``out`` in row blocks; return the clamp count of the full matrix."""
    symmetric = Q is None
    B = P if symmetric else Q
    Na, Nb, M = P.shape[0], B.shape[0], P.shape[1]
    per = (16 if precision == "float64" else 8) if use_kernel else 8
    block = _row_block(block, Na, Nb, per, dev.type == "cuda")
    count = 0
    pool = ThreadPoolExecutor(threads) if use_kernel else None
    try:
        for i0 in progress(range(0, Na, block), desc="bhattacharyya", total=-(-Na // block)):
            i1 = min(Na, i0 + block)
            j0 = i0 if symmetric else 0
            rows = slice(i0, i1)
            if use_kernel:
                prod, ex, c = _kernel_rows(P, B, i0, i1, j0, Nb, symmetric, chunk, precision,
                                           clamp, pool, threads)
                step = max(1, (1 << 24) // max(1, Nb - j0))  # rows per conversion
                for r0 in range(0, i1 - i0, step):
                    r1 = min(i1 - i0, r0 + step)
                    d = np.log(prod[r0:r1, :Nb - j0], dtype=np.float64)
                    d += ex[r0:r1, :Nb - j0] * _LN2
                    d *= -1.0 / M
                    _put(out, slice(i0 + r0, i0 + r1), slice(j0, Nb), d)
                    if symmetric and i1 < Nb:
                        _put(out, slice(i1, Nb), slice(i0 + r0, i0 + r1), d[:, i1 - i0:].T)
                del prod, ex
            else:
                L, c = _torch_rows(P, B, i0, i1, j0, Nb, symmetric, chunk, precision, clamp,
                                   dev)
                L *= -1.0 / M
                _put(out, rows, slice(j0, Nb), L)
                if symmetric and i1 < Nb:
                    _put(out, slice(i1, Nb), rows, L[:, i1 - i0:].T)
                del L
            if symmetric:
                _symmetrize_block(out, i0, i1)
            count += c
    finally:
        if pool is not None:
            pool.shutdown()
    return count


def _group(clamp: float, precision: str) -> int:
    """Most coefficients >= clamp whose product times 0.5 stays a normal float."""
    tiny = np.finfo(np.dtype(precision)).tiny
    g = int(np.floor((np.log(tiny) - np.log(0.5)) / np.log(clamp)))
    if g < 1:
        raise ValueError(f"clamp={clamp:g} is too small for {precision} (>= {2 * tiny:.3g})")
    return min(g, 64)


def _sum_log(bc: Any, group: int) -> Any:
    """sum over dim 0 of log(bc) for bc >= clamp (float64), via products of ``group``
    coefficients (see ``_group``: no underflow)."""
    import torch

    m = bc.shape[0]
    g = m // group
    out = torch.zeros(bc.shape[1:], dtype=torch.float64, device=bc.device)
    if g:
        out += torch.log(bc[:g * group].reshape(g, group, *bc.shape[1:]).prod(1)).sum(0)
    if m > g * group:
        out += torch.log(bc[g * group:]).sum(0)
    return out




# ---------------------------------------------------------------------------------------
# The clamp, reported
# ---------------------------------------------------------------------------------------


class ClampWarning(UserWarning):
    """Some per-sample Bhattacharyya coefficients were below the clamp (see CLAMP)."""


def report_clamp(n_clamped: int, n_total: int, where: str, clamp: float = CLAMP) -> None:
    """Warn (:class:`ClampWarning`) when coefficients hit the clamp; silent otherwise.

    Parameters
    ----------
    n_clamped : int
        Per-sample coefficients sum_c sqrt(p q) that were below ``clamp``.
    n_total : int
        All coefficients that entered the distances (pairs x samples).
    where : str
        The computation, named in the message.
    clamp : float
        The clamp used.
    """
    if n_clamped > 0:
        warnings.warn(f"{where}: {n_clamped} of {n_total} per-sample Bhattacharyya "
                      f"coefficients ({100 * n_clamped / max(n_total, 1):.3g}%) were below "
                      f"the clamp {clamp:g} and were clamped to it",
                      ClampWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------


class RowStack:
    """Several arrays of models (runs) seen as one (N, M, C) array, read lazily.

    Parameters
    ----------
    arrays : sequence of array_like, each (K_r, M, C) or (M, C)
        The runs (np.memmap, np.ndarray, h5py datasets, ...), same (M, C). A 2-d array
        is one model.
    names : sequence of str, optional
        A name per run (default ``run0``, ``run1``, ...).

    Attributes
    ----------
    shape : (N, M, C) with N = sum_r K_r
    run : (N,) index of each model's run
    checkpoint : (N,) index of each model within its run

    Slicing ``stack[i0:i1]``, ``stack[i0:i1, n0:n1]`` and ``stack[i]`` reads only those
    models (and samples) into a new numpy array.
    """

    def __init__(self, arrays: Any, names: Any = None) -> None:
        self.arrays = [a if getattr(a, "ndim", 0) == 3 else np.asarray(a)[None] for a in arrays]
        if not self.arrays:
            raise ValueError("RowStack needs at least one array")
        self.names = [f"run{r}" for r in range(len(self.arrays))] if names is None \
            else [str(n) for n in names]
        if len(self.names) != len(self.arrays):
            raise ValueError(f"{len(self.names)} names for {len(self.arrays)} arrays")
        tail = tuple(self.arrays[0].shape[1:])
        for a, n in zip(self.arrays, self.names, strict=True):
            if getattr(a, "ndim", 0) != 3 or tuple(a.shape[1:]) != tail:
                raise ValueError(f"{n}: shape {tuple(a.shape)} does not match (models, "
                                 f"{tail[0]}, {tail[1]}) of {self.names[0]}")
        sizes = np.array([a.shape[0] for a in self.arrays])
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        self.shape = (int(self._starts[-1]), *tail)
        self.dtype = np.result_type(*[np.dtype(a.dtype) for a in self.arrays])
        self.ndim = 3
        self.run = np.repeat(np.arange(len(sizes)), sizes)
        self.checkpoint = np.concatenate([np.arange(k) for k in sizes])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(rows, int | np.integer):
            i = int(rows) + (self.shape[0] if rows < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"model {rows} out of range for {self.shape[0]} models")
            r = int(np.searchsorted(self._starts, i, side="right")) - 1
            return np.asarray(self.arrays[r][(i - self._starts[r], *rest)])
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("RowStack takes an integer or a contiguous slice of models")
        i0, i1, _ = rows.indices(self.shape[0])
        parts = []
        for r, a in enumerate(self.arrays):
            lo, hi = max(i0, self._starts[r]), min(i1, self._starts[r + 1])
            if lo < hi:
                parts.append(np.asarray(a[(slice(lo - self._starts[r], hi - self._starts[r]),
                                           *rest)]))
        if not parts:
            return np.empty((0, *np.empty(self.shape[1:])[rest].shape), dtype=self.dtype)
        return np.concatenate(parts).astype(self.dtype, copy=False)


def bhattacharyya(
    P: Any,
    Q: Any | None = None,
    *,
    chunk: int = 64,
    device: str = "auto",
    dtype: Literal["float64", "float32"] = "float64",
    clamp: float = CLAMP,
    backend: Literal["auto", "kernel", "torch"] = "auto",
    threads: int | None = None,
    return_clamped: bool = False,
    out: Any = None,
    block: int | None = None,
) -> Any:
    """Matrix of Bhattacharyya distances between two sets of models.

    ``D[i, j] = -(1/M) sum_n log max(sum_c sqrt(P[i, n, c] Q[j, n, c]), clamp)``,
    computed in blocks of rows: memory beyond ``out`` is one block of rows.

    Parameters
    ----------
    P, Q : array_like, shape (N, M, C) and (N', M, C)
        Class probabilities of N models on M samples (rows: non-negative, finite, summing
        to 1 within the tolerance of :func:`sum_tolerance`): numpy or torch arrays, or
        any array-like read block by block (``np.memmap``, :class:`RowStack`, h5py).
        ``Q=None`` means ``Q = P``: then only the pairs i <= j are computed and D is
        exactly symmetric with a zero diagonal up to rounding.
    chunk : int
        Samples per chunk.
    device : str
        "auto" (CUDA when present), "cpu", "cuda", ... -- see ``resolve_device``.
    dtype : {"float64", "float32"}
        Precision of the coefficients. "float64" (default) is exact to rounding;
        "float32" is about twice as fast on the CPU kernel with absolute errors about
        1e-8 (logs and sums stay float64 in both).
    clamp : float
        Lower clamp of the per-sample coefficient before the log (default 1e-12: a pair
        of samples with disjoint supports contributes -log(1e-12) / M = 27.6 / M). When
        it acts, a :class:`ClampWarning` says how often (unless ``return_clamped``).
    backend : {"auto", "kernel", "torch"}
        "kernel": the compiled C kernel (CPU only); "torch": chunked ``torch.bmm`` (any
        device); "auto": the kernel on the CPU when it compiles, else torch.
    threads : int, optional
        Kernel threads (default ``torch.get_num_threads()``). Results do not depend on it.
    return_clamped : bool
        Also return the number of (i, j, n) coefficients of the full N x N' x M array that
        hit the clamp (0 means the clamp changed nothing); no warning is issued then.
    out : None, path, numpy array (or memmap) or torch tensor, shape (N, N'), optional
        Where D is written: None, a new float64 array; a path (str or PathLike), a new
        float64 ``.npy`` file opened as a memory map (``np.load(path, mmap_mode="r")``
        reads it back); an array, filled in place (float32 halves the memory; a CUDA
        tensor keeps D on the GPU).
    block : int, optional
        Rows per block (rounded down to a multiple of 64); default: as many as fit in
        512 MiB of working memory, at most 2048 (CUDA: 4 GiB, no cap). On CUDA pass P
        as a CUDA tensor when it fits: every row block re-reads the columns' samples.

    Returns
    -------
    D : numpy.ndarray (float64, shape (N, N')), or ``out`` when given
    n_clamped : int
        Only with ``return_clamped=True``.

    Notes
    -----
    Memory beyond the inputs and ``out``: one row block of running products (the kernel:
    16 bytes per entry in float64, 8 in float32; torch: 8) plus packed chunks of
    (N' chunk C) square roots. Results do not depend on ``block`` or ``threads`` (the
    kernel is bitwise reproducible). On CUDA the torch backend runs in the requested
    precision (float64 by default, TF32 is not used) and agrees with the CPU to rounding.

    Raises
    ------
    ValueError
        Bad shapes, or a row that is not finite, has a negative entry or does not sum to
        1; the message names the model and sample index.
    """
    import torch

    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if backend not in ("auto", "kernel", "torch"):
        raise ValueError(f"backend must be 'auto', 'kernel' or 'torch', got {backend!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if not 0 < clamp < 1:
        raise ValueError(f"clamp must be in (0, 1), got {clamp}")
    _group(clamp, dtype)
    P = _as_probabilities(P, "P")
    _validate(P, "P")
    if Q is not None:
        Q = _as_probabilities(Q, "Q")
        if tuple(Q.shape[1:]) != tuple(P.shape[1:]):
            raise ValueError(f"P and Q must share (samples, classes): {tuple(P.shape)} vs "
                             f"{tuple(Q.shape)}")
        _validate(Q, "Q")
    dev = resolve_device(device)
    use_kernel = dev.type == "cpu" and backend != "torch" and _kernel() is not None
    if backend == "kernel" and not use_kernel:
        raise RuntimeError("backend='kernel' needs the CPU and a C compiler "
                           "(see kernel_available())")
    Na, Nb, M = P.shape[0], (P if Q is None else Q).shape[0], P.shape[1]
    D = _output(out, (Na, Nb))
    count = _fill(P, Q, D, chunk=chunk, precision=dtype, clamp=clamp, use_kernel=use_kernel,
                  dev=dev, threads=threads or torch.get_num_threads(), block=block)
    if return_clamped:
        return D, count
    report_clamp(count, Na * Nb * M, "bhattacharyya", clamp)
    return D


def cross_block(
    new: Any,
    reference: Any,
    *,
    block: int = 4096,
    out: Any = None,
    return_clamped: bool = False,
    **kwargs: Any,
) -> Any:
    """Distances D(new, reference) for adding models to an existing embedding.

    The new models are read ``block`` at a time (from any array-like: a memmap, a
    :class:`RowStack` of runs, ...), so only the (n_new, L) result and one block are in
    memory; feed the result to :meth:`InPCA.project` to place them.

    Parameters
    ----------
    new : array_like, shape (n_new, M, C)
    reference : array_like, shape (L, M, C)
        The models the embedding was computed from (e.g. the landmarks).
    block : int
        New models per block.
    out : None, path or array of shape (n_new, L), optional
        As in :func:`bhattacharyya`.
    return_clamped : bool
        Also return the clamp count (no warning then).
    **kwargs
        Passed to :func:`bhattacharyya` (``device``, ``dtype``, ``threads``, ...).

    Returns
    -------
    numpy.ndarray (or ``out``), shape (n_new, L); and the clamp count if asked.
    """
    new = _as_probabilities(new, "new")
    reference = _as_probabilities(reference, "reference")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    n, L = new.shape[0], reference.shape[0]
    D = _output(out, (n, L))
    count = 0
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        d, c = bhattacharyya(new[b0:b1], reference, return_clamped=True, **kwargs)
        _put(D, slice(b0, b1), slice(0, L), d)
        count += c
    if return_clamped:
        return D, count
    report_clamp(count, n * L * new.shape[1], "cross_block", kwargs.get("clamp", CLAMP))
    return D


def bhattacharyya_paired(P: Any, Q: Any, *, clamp: float = CLAMP,
                         return_clamped: bool = False) -> Any:
    """Distances between matched models: ``d[i] = d_B(P[i], Q[i])``.

    Parameters
    ----------
    P, Q : array_like, shape (N, M, C) (or (M, C) for a single model)
        Class probabilities; validated as in :func:`bhattacharyya`.
    clamp : float
        Lower clamp of the per-sample coefficient; when it acts a :class:`ClampWarning`
        says how often (unless ``return_clamped``).
    return_clamped : bool
        Also return the number of (i, n) coefficients that hit the clamp.

    Returns
    -------
    d : numpy.ndarray, float64, shape (N,) (a 0-d array for single models)
    n_clamped : int
        Only with ``return_clamped=True``.
    """
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    single = P.ndim == 2
    P3, Q3 = (P[None], Q[None]) if single else (P, Q)
    P3, Q3 = _as_probabilities(P3, "P"), _as_probabilities(Q3, "Q")
    if P3.shape != Q3.shape:
        raise ValueError(f"P and Q must have the same shape: {P3.shape} vs {Q3.shape}")
    _validate(P3, "P")
    _validate(Q3, "Q")
    bc = np.einsum("nmc,nmc->nm", np.sqrt(P3), np.sqrt(Q3))
    n_clamped = int(np.count_nonzero(bc < clamp))
    d = -np.log(np.maximum(bc, clamp)).mean(axis=1)
    d = d[0] if single else d
    if return_clamped:
        return d, n_clamped
    report_clamp(n_clamped, bc.size, "bhattacharyya_paired", clamp)
    return d


# ---------------------------------------------------------------------------------------
# InPCA
# ---------------------------------------------------------------------------------------


def double_centre(D: np.ndarray) -> np.ndarray:
    """W = -1/2 L D L with L = I - 11^T/N, for a symmetric D (new array).

    Parameters
    ----------
    D : numpy.ndarray, shape (N, N)

    Returns
    -------
    numpy.ndarray, float64, shape (N, N)
    """
    W = np.array(D, dtype=np.float64)
    r = W.mean(axis=0)
    g = r.mean()
    W -= r[:, None]
    W -= r[None, :]
    W += g
    W *= -0.5
    return W


def _rows_per_block(N: int) -> int:
    return max(1, (1 << 23) // max(N, 1))  # about 64 MB of float64 per block


def double_centre_inplace(D: Any) -> tuple[np.ndarray, float, float]:
    """Double-centre a symmetric matrix in place, block by block: D becomes
    W = -1/2 L D L (L = I - 11^T/N) with no N x N temporary.

    Parameters
    ----------
    D : numpy.ndarray (a memmap too) or torch.Tensor (any device), shape (N, N)
        Symmetric, float32 or float64; overwritten by W.

    Returns
    -------
    row_means : numpy.ndarray, float64, shape (N,)
        Column (= row) means of the original D (what :meth:`InPCA.project` needs).
    grand_mean : float
        Mean of the original D.
    total : float
        ||W||_F^2 = sum of all squared eigenvalues of W (accumulated in float64).
    """
    import torch

    is_t = isinstance(D, torch.Tensor)
    N = D.shape[0]
    step = _rows_per_block(N)
    f64 = torch.float64 if is_t else np.float64
    r = torch.zeros(N, dtype=f64, device=D.device) if is_t else np.zeros(N)
    for b0 in range(0, N, step):
        r += D[b0:b0 + step].sum(0, dtype=f64)
    r /= N
    g = float(r.mean())
    rw = r.to(D.dtype) if is_t else r
    total = 0.0
    for b0 in range(0, N, step):
        blk = D[b0:b0 + step]
        blk -= rw[b0:b0 + step, None]
        blk -= rw[None, :]
        blk += g
        blk *= -0.5
        if is_t:
            total += float(torch.linalg.vector_norm(blk, dtype=torch.float64) ** 2)
        else:
            b64 = blk.astype(np.float64, copy=False).ravel()
            total += float(b64 @ b64)
    return (r.cpu().numpy() if is_t else r), g, total


def explained_stress(eigenvalues: np.ndarray, total: float) -> np.ndarray:
    """Explained stress of the first k eigenvalues, for k = 1, 2, ...

    ES_k = 1 - sqrt(1 - sum_{i<=k} lambda_i^2 / sum_all lambda_i^2), with ``total`` =
    sum_all lambda_i^2 = ||W||_F^2 (the Frobenius norm squared once).

    Parameters
    ----------
    eigenvalues : numpy.ndarray
        Eigenvalues in the order they are added (InPCA: by |lambda|, descending).
    total : float
        Sum of the squares of all eigenvalues.

    Returns
    -------
    numpy.ndarray, same length as ``eigenvalues``, values in [0, 1]
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if total <= 0:
        return np.ones_like(lam)
    frac = np.cumsum(lam**2) / total
    return 1.0 - np.sqrt(np.clip(1.0 - frac, 0.0, 1.0))


def _by_magnitude(lam: np.ndarray) -> np.ndarray:
    return np.argsort(-np.abs(lam), kind="stable")


def top_eigenpairs(
    W: Any,
    k: int,
    *,
    method: Literal["auto", "arpack", "subspace", "eigh"] = "auto",
    tol: float = 1e-10,
    maxiter: int = 2000,
    oversample: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The k eigenpairs of a symmetric matrix largest in |lambda| (both ends of the
    spectrum at once), without a full decomposition.

    Parameters
    ----------
    W : numpy.ndarray (a memmap too) or torch.Tensor (any device), shape (N, N)
        Symmetric, float32 or float64 (not modified).
    k : int
        Number of eigenpairs, 1 <= k < N.
    method : {"auto", "arpack", "subspace", "eigh"}
        "arpack": ``scipy.sparse.linalg.eigsh(which="LM")`` (numpy, CPU); "subspace":
        randomised block subspace iteration with Rayleigh-Ritz (numpy or torch: one
        pass over W per iteration as one matrix product with a block of k + oversample
        vectors, so it runs at GEMM speed on the CPU and on a GPU); "eigh": full
        decomposition; "auto": "subspace".
    tol : float
        Subspace iteration stops when every residual ||W v - lambda v|| is below
        ``tol * |lambda_1|`` (float32 matrices: at least 100 float32 epsilons).
    maxiter : int
        Most subspace iterations (a warning says when they did not suffice).
    oversample : int, optional
        Extra vectors of the subspace block (default max(k, 10)); convergence goes as
        |lambda_{k+oversample+1} / lambda_k| per iteration.
    seed : int
        Seed of the random start (deterministic results).

    Returns
    -------
    eigenvalues : numpy.ndarray, float64, shape (k,)
        Sorted by |lambda| descending, signs kept.
    eigenvectors : numpy.ndarray, float64, shape (N, k)
        Orthonormal columns.
    """
    import torch

    is_t = isinstance(W, torch.Tensor)
    N = W.shape[0]
    if not 1 <= k < N:
        raise ValueError(f"k must be in [1, {N - 1}], got {k}")
    if method == "auto":
        method = "subspace"
    if method == "eigh":
        lam, V = torch.linalg.eigh(W) if is_t else np.linalg.eigh(W)
        lam, V = _host(lam).astype(np.float64), _host(V).astype(np.float64)
        order = _by_magnitude(lam)[:k]
        return lam[order], V[:, order]
    if method == "arpack":
        if is_t:
            raise ValueError("method='arpack' needs a numpy array; use 'subspace' for tensors")
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(seed).standard_normal(N)
        lam, V = eigsh(W, k=k, which="LM", v0=v0, tol=0.0)
        order = _by_magnitude(lam)
        return lam[order].astype(np.float64), V[:, order].astype(np.float64)
    if method != "subspace":
        raise ValueError(f"method must be 'auto', 'arpack', 'subspace' or 'eigh', got "
                         f"{method!r}")
    return _subspace(W, k, tol, maxiter, max(k, 10) if oversample is None else oversample,
                     seed)


def _subspace(W: Any, k: int, tol: float, maxiter: int, oversample: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Block subspace iteration with Rayleigh-Ritz (ordered by |theta|): converges to the
    eigenvectors of largest |lambda| whatever their signs."""
    import torch

    is_t = isinstance(W, torch.Tensor)
    N = W.shape[0]
    p = min(N, k + oversample)
    X = np.random.default_rng(seed).standard_normal((N, p))
    if is_t:
        X = torch.from_numpy(X).to(W.device, W.dtype)
        qr, eps = torch.linalg.qr, torch.finfo(W.dtype).eps
    else:
        X = X.astype(W.dtype)
        qr, eps = np.linalg.qr, np.finfo(W.dtype).eps
    tol = max(tol, 100 * eps)
    X = qr(X)[0]
    res = np.inf
    for _ in range(maxiter):
        Y = W @ X
        H = _host(X.T @ Y).astype(np.float64)
        theta, S = np.linalg.eigh((H + H.T) / 2)
        order = _by_magnitude(theta)
        theta, S = theta[order], S[:, order]
        St = torch.from_numpy(S).to(W.device, W.dtype) if is_t else S.astype(W.dtype)
        V, WV = X @ St, Y @ St
        R = _host(WV[:, :k] - V[:, :k] * (torch.from_numpy(theta[:k]).to(W.device, W.dtype)
                                          if is_t else theta[:k].astype(W.dtype)))
        res = float(np.linalg.norm(R.astype(np.float64), axis=0).max())
        if res <= tol * abs(theta[0]):
            break
        X = qr(WV)[0]
    else:
        warnings.warn(f"subspace iteration: residual {res / abs(theta[0]):.2g} |lambda_1| "
                      f"after {maxiter} iterations (tol {tol:g})", stacklevel=3)
    return theta[:k].copy(), _host(V[:, :k]).astype(np.float64)


@dataclass(frozen=True)
class InPCA:
    """Result of :func:`inpca`.

    Attributes
    ----------
    eigenvalues : (k,) eigenvalues of W sorted by |lambda| descending, signs kept.
    eigenvectors : (N, k) unit eigenvectors (sign fixed: largest |component| positive).
    coords : (N, k) coordinates v * sqrt|lambda|; d_ij ~ sum_k sign_k (x_ik - x_jk)^2.
    explained_stress : (k,) ES_1 ... ES_k.
    total : sum of all lambda^2 = ||W||_F^2.
    row_means : (N,) column means of D (used by :meth:`project`).
    grand_mean : mean of D.
    spectrum : all N eigenvalues sorted by |lambda| (only with ``full_spectrum=True``).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    coords: np.ndarray
    explained_stress: np.ndarray
    total: float
    row_means: np.ndarray = field(repr=False)
    grand_mean: float
    spectrum: np.ndarray | None = field(default=None, repr=False)

    @property
    def signs(self) -> np.ndarray:
        """+1 for space-like, -1 for time-like (negative eigenvalue) axes."""
        return np.where(self.eigenvalues < 0, -1.0, 1.0)

    def project(self, D_new: Any) -> np.ndarray:
        """Coordinates of new points from their distances to the reference points (Gower).

        Parameters
        ----------
        D_new : array_like, shape (n_new, N) or (N,)
            d_B of each new point to each of the N reference points (see
            :func:`cross_block`).

        Returns
        -------
        numpy.ndarray, shape (n_new, k) (or (k,))
            ``-1/2 (d - mean(d) - row_means + grand_mean) V / (sign(lambda) sqrt|lambda|)``;
            a reference point gets its own coordinates back.
        """
        d = np.asarray(D_new, dtype=np.float64)
        single = d.ndim == 1
        d = np.atleast_2d(d)
        if d.shape[1] != self.row_means.shape[0]:
            raise ValueError(f"D_new must have {self.row_means.shape[0]} columns, got "
                             f"{d.shape[1]}")
        w = -0.5 * (d - d.mean(axis=1, keepdims=True) - self.row_means[None, :]
                    + self.grand_mean)
        lam = self.eigenvalues
        x = (w @ self.eigenvectors) / (np.sign(lam) * np.sqrt(np.abs(lam)))
        return x[0] if single else x


def _fix_signs(V: np.ndarray) -> np.ndarray:
    idx = np.argmax(np.abs(V), axis=0)
    s = np.sign(V[idx, np.arange(V.shape[1])])
    s[s == 0] = 1.0
    return V * s


def _check_distance_matrix(D: Any) -> None:
    """Square, N >= 2, finite and symmetric (relative 1e-10, or 10 epsilons of its
    dtype); checked in blocks of rows."""
    import torch

    if D.ndim != 2 or D.shape[0] != D.shape[1] or D.shape[0] < 2:
        raise ValueError(f"D must be a square matrix with N >= 2, got shape {tuple(D.shape)}")
    is_t = isinstance(D, torch.Tensor)
    lib = torch if is_t else np
    N = D.shape[0]
    step = _rows_per_block(N)
    amax = 0.0
    for b0 in range(0, N, step):
        blk = D[b0:b0 + step]
        if not bool(lib.isfinite(blk).all()):
            raise ValueError("D has non-finite entries")
        amax = max(amax, float(abs(blk).max()))
    eps = (torch.finfo if is_t else np.finfo)(D.dtype).eps
    tol = max(1e-10, 10 * eps) * max(amax, 1e-300)
    for b0 in range(0, N, step):
        if float(abs(D[b0:b0 + step] - D[:, b0:b0 + step].T).max()) > tol:
            raise ValueError("D must be symmetric")


def inpca(
    D: Any,
    k: int | None = None,
    *,
    solver: Literal["auto", "full", "partial", "subspace"] = "auto",
    full_spectrum: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    tol: float = 1e-10,
) -> InPCA:
    """Intensive PCA of a symmetric distance matrix (Quinn et al. 2019).

    Parameters
    ----------
    D : array_like (a memmap too) or torch.Tensor (any device), shape (N, N)
        Symmetric matrix of distances (d_B), zero diagonal, float32 or float64.
    k : int, optional
        Number of components, by |eigenvalue| at both ends of the spectrum; None: all N.
    solver : {"auto", "full", "partial", "subspace"}
        "full": ``eigh`` (O(N^3)); "partial": ARPACK (``scipy.sparse.linalg.eigsh``,
        which="LM": the k largest |lambda|, both ends; numpy only); "subspace": block
        subspace iteration (:func:`top_eigenpairs`; numpy or torch, on the GPU for CUDA
        tensors; matrix products with a block of vectors, so faster than ARPACK's
        matrix-vector products for large N); "auto": "full" unless k is given,
        N > 1000 and k < N / 20, then "subspace".
    full_spectrum : bool
        Also store all N eigenvalues (a full ``eigvalsh``, which copies W).
    seed : int
        Seed of the iterative solvers' start (deterministic).
    overwrite : bool
        Double-centre D in place (D becomes W): memory stays at one N x N matrix. Without
        it W is a float64 (numpy) or same-dtype (torch) copy.
    tol : float
        Relative residual of the subspace solver (see :func:`top_eigenpairs`).

    Returns
    -------
    InPCA
        Eigenpairs, coordinates, explained stress (from ||W||_F^2, computed blockwise:
        exact without the full spectrum) and the Gower projection.
    """
    import torch

    is_t = isinstance(D, torch.Tensor)
    if not is_t:
        D = np.asarray(D)
        if D.dtype not in (np.float32, np.float64):
            D = D.astype(np.float64)
    _check_distance_matrix(D)
    N = D.shape[0]
    k = N if k is None else int(k)
    if not 1 <= k <= N:
        raise ValueError(f"k must be in [1, {N}], got {k}")
    if solver == "auto":
        big = k < N and N > 1000 and k < N / 20
        solver = "subspace" if big else "full"
    if solver not in ("full", "partial", "subspace"):
        raise ValueError(f"solver must be 'auto', 'full', 'partial' or 'subspace', got "
                         f"{solver!r}")
    if solver == "partial" and is_t:
        raise ValueError("solver='partial' (ARPACK) needs a numpy array; use 'subspace'")
    if overwrite:
        W = D
    else:
        W = D.clone() if is_t else np.array(D, dtype=np.float64)
    row_means, grand, total = double_centre_inplace(W)
    spectrum = None
    if solver == "full" or k >= N - 1:
        lam, V = (torch.linalg.eigh(W) if is_t else np.linalg.eigh(W))
        lam, V = _host(lam).astype(np.float64), _host(V).astype(np.float64)
        order = _by_magnitude(lam)
        if full_spectrum:
            spectrum = lam[order]
        lam, V = lam[order[:k]], V[:, order[:k]]
    else:
        lam, V = top_eigenpairs(W, k, method="arpack" if solver == "partial" else "subspace",
                                tol=tol, seed=seed)
        if full_spectrum:
            allv = _host(torch.linalg.eigvalsh(W) if is_t else np.linalg.eigvalsh(W))
            spectrum = allv[_by_magnitude(allv)].astype(np.float64)
    V = _fix_signs(V)
    coords = V * np.sqrt(np.abs(lam))
    return InPCA(eigenvalues=lam, eigenvectors=V, coords=coords,
                 explained_stress=explained_stress(lam, total), total=total,
                 row_means=row_means, grand_mean=grand, spectrum=spectrum)


# ---------------------------------------------------------------------------------------
# Landmark InPCA
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandmarkInPCA:
    """Result of :func:`landmark_inpca`.

    Attributes
    ----------
    reference : InPCA of the landmarks alone (exact); ``reference.project`` places more.
    landmarks : (L,) indices of the landmarks among the N models (sorted).
    coords : (N, k) coordinates of every model: the landmarks' own, the rest by Gower.
    n_clamped : clamp count of all distances computed ((L + N) x L x M coefficients).
    """

    reference: InPCA
    landmarks: np.ndarray
    coords: np.ndarray
    n_clamped: int

    @property
    def eigenvalues(self) -> np.ndarray:
        """(k,) eigenvalues of the landmarks' W (signs kept)."""
        return self.reference.eigenvalues

    @property
    def signs(self) -> np.ndarray:
        """+1 space-like, -1 time-like axes."""
        return self.reference.signs


def _take(P: Any, idx: np.ndarray) -> np.ndarray:
    """Models ``idx`` of an array-like as one in-memory array."""
    import torch

    if isinstance(P, np.ndarray | torch.Tensor):
        return _host(P[torch.from_numpy(idx) if isinstance(P, torch.Tensor) else idx])
    return np.stack([_host(P[int(i)]) for i in idx])


def landmark_inpca(
    P: Any,
    k: int,
    landmarks: Any,
    *,
    seed: int = 0,
    block: int = 4096,
    solver: Literal["auto", "full", "partial", "subspace"] = "auto",
    **kwargs: Any,
) -> LandmarkInPCA:
    """InPCA of many models through landmarks: the landmarks are embedded exactly, every
    other model placed by the Gower projection of its distances to them.

    Costs L^2 + N L distances instead of N^2 (memory: the L x L matrix and one block of
    N x L). With all points as landmarks it is exactly :func:`inpca`.

    Parameters
    ----------
    P : array_like, shape (N, M, C)
        Models (any array-like; read ``block`` models at a time).
    k : int
        Components.
    landmarks : int or array_like of int
        How many landmarks to draw at random (seeded, without replacement), or their
        indices.
    seed : int
        Seed of the draw and of the eigensolver.
    block : int
        Models per block of the cross distances.
    solver : str
        Passed to :func:`inpca` for the landmarks.
    **kwargs
        Passed to :func:`bhattacharyya` (``device``, ``dtype``, ``clamp``, ...).

    Returns
    -------
    LandmarkInPCA
    """
    P = _as_probabilities(P, "P")
    N, M = P.shape[0], P.shape[1]
    if isinstance(landmarks, int | np.integer):
        if not 2 <= landmarks <= N:
            raise ValueError(f"landmarks must be in [2, {N}], got {landmarks}")
        idx = np.sort(np.random.default_rng(seed).choice(N, int(landmarks), replace=False))
    else:
        idx = np.unique(np.asarray(landmarks, dtype=np.int64))
        if idx.size < 2 or idx[0] < 0 or idx[-1] >= N:
            raise ValueError(f"landmarks must be at least 2 distinct indices in [0, {N})")
    PL = _take(P, idx)
    DL, count = bhattacharyya(PL, return_clamped=True, **kwargs)
    ref = inpca(DL, k, solver=solver, seed=seed, overwrite=True)
    del DL
    coords = np.empty((N, ref.eigenvalues.size))
    for b0 in range(0, N, block):
        d, c = cross_block(P[b0:b0 + block], PL, return_clamped=True, **kwargs)
        coords[b0:b0 + d.shape[0]] = ref.project(d)
        count += c
    coords[idx] = ref.coords
    report_clamp(count, (idx.size + N) * idx.size * M, "landmark_inpca",
                 kwargs.get("clamp", CLAMP))
    return LandmarkInPCA(reference=ref, landmarks=idx, coords=coords, n_clamped=count)


def compare_embeddings(X: Any, Y: Any, signs_x: Any, signs_y: Any | None = None, *,
                       sample: int = 2000, seed: int = 0) -> float:
    """Relative difference of two embeddings of the same models, by their distances.

    ``||Dx - Dy||_F / ||Dy||_F`` with ``Dx_ij = sum_k sign_k (x_ik - x_jk)^2`` (the
    Minkowski-like squared distance the embedding reproduces), over a random subset of
    ``sample`` models: invariant to translations, axis signs and rotations (or boosts)
    that preserve the metric, so it compares a landmark embedding with the exact one.

    Parameters
    ----------
    X, Y : array_like, shape (N, k) and (N, k')
    signs_x, signs_y : array_like, shape (k,), (k',)
        +1 / -1 per axis (``InPCA.signs``); ``signs_y`` defaults to ``signs_x``.
    sample : int
        Models compared (all when N is smaller).
    seed : int

    Returns
    -------
    float
    """
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must embed the same models: {X.shape} vs {Y.shape}")
    sx = np.asarray(signs_x, dtype=np.float64)
    sy = sx if signs_y is None else np.asarray(signs_y, dtype=np.float64)
    if sx.shape != X.shape[1:] or sy.shape != Y.shape[1:]:
        raise ValueError("one sign per axis is needed")
    N = X.shape[0]
    idx = np.sort(np.random.default_rng(seed).choice(N, min(N, sample), replace=False))

    def dist(Z: np.ndarray, s: np.ndarray) -> np.ndarray:
        z = Z[idx]
        return sum(s[a] * (z[:, None, a] - z[None, :, a]) ** 2 for a in range(z.shape[1]))

    dx, dy = dist(X, sx), dist(Y, sy)
    return float(np.linalg.norm(dx - dy) / max(np.linalg.norm(dy), 1e-300))
