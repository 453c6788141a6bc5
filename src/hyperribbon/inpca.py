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
  under ``cache_dir("kernels")`` and loaded with ``ctypes``) fuses the 10-term products,
  the clamp, the clamp count and the running product in registers, over cache-sized
  tiles of the upper triangle (d_B is symmetric, so half the pairs are computed), in as
  many threads as ``torch.get_num_threads()``. Without a C compiler, and on CUDA, the
  same computation runs as chunked batched matrix products in torch (``backend="torch"``).

``dtype="float32"`` computes the coefficients and the running products in float32 (the
exponents still exactly, the final logarithms in float64): about twice as fast, with an
absolute error of about 1e-8 on d_B (measured in ``benchmarks/bench_inpca.py``) -- fine
for an embedding, not for tests at 1e-12. The default ``"float64"`` is exact.
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
from typing import Any, Literal

import numpy as np

from hyperribbon.util import cache_dir, progress, resolve_device

__all__ = [
    "CLAMP",
    "InPCA",
    "bhattacharyya",
    "bhattacharyya_paired",
    "double_centre",
    "explained_stress",
    "inpca",
    "kernel_available",
]

CLAMP = 1e-12
"""Default lower clamp of the per-sample Bhattacharyya coefficient (before the log)."""

_LN2 = float(np.log(2.0))
_SUM_ATOL = 1e-5  # rows of float32 softmax outputs sum to 1 within ~C * 6e-8

# ---------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------


def _as_probabilities(P: Any, name: str) -> Any:
    """Numpy or torch array of shape (models, samples, classes), else ValueError."""
    import torch

    if not isinstance(P, torch.Tensor):
        P = np.asarray(P)
        if P.dtype.kind not in "fiu":
            raise ValueError(f"{name} must hold real numbers, got dtype {P.dtype}")
    elif P.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {P.dtype}")
    if P.ndim != 3:
        raise ValueError(f"{name} must have shape (models, samples, classes), got {tuple(P.shape)}")
    if min(P.shape) == 0:
        raise ValueError(f"{name} is empty: shape {tuple(P.shape)}")
    return P


def _validate(P: Any, name: str, atol: float = _SUM_ATOL, block: int = 1024) -> None:
    """Check, in blocks of models, that ``P`` holds finite, non-negative probability rows
    summing to 1 within ``atol``; raise ValueError naming the first offending index.

    Cheap summaries first (row sums, which are not finite when an entry is not, and the
    minimum); the offending index is looked for only when a block fails."""
    import torch

    lib = torch if isinstance(P, torch.Tensor) else np
    for i0 in range(0, P.shape[0], block):
        x = P[i0:i0 + block]
        s = x.sum(-1, dtype=lib.float64)
        if bool((lib.abs(s - 1) <= atol).all()) and float(x.min()) >= 0:
            continue
        x = x.cpu().numpy() if lib is torch else np.asarray(x)
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
    src = _kernel_source()
    base = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
    for flags in (["-march=native", *base], base):
        key = hashlib.sha256("\0".join([src, cc, *flags, _cpu_signature(),
                                        platform.machine()]).encode()).hexdigest()[:16]
        lib = cache_dir("kernels") / f"bhattacharyya_{key}.so"
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


def _pack(P: np.ndarray, n0: int, n1: int, rows: int, pw: int, dtype: np.dtype) -> np.ndarray:
    """sqrt of samples [n0, n1) of P in the panel layout of the kernel; padding models are
    uniform distributions (they never clamp and are sliced away)."""
    N, _, C = P.shape
    m = n1 - n0
    S = np.empty((rows, m, C), dtype=dtype)
    np.sqrt(P[:, n0:n1], out=S[:N], casting="same_kind", dtype=dtype)
    S[N:] = np.sqrt(1.0 / C)
    return np.ascontiguousarray(S.reshape(rows // pw, pw, m, C).transpose(0, 2, 3, 1))


def _logsum_kernel(A: np.ndarray, B: np.ndarray | None, chunk: int, precision: str,
                   clamp: float, threads: int) -> tuple[np.ndarray, np.ndarray, int]:
    """prod, ex (padded) with sum_n log max(bc, clamp) = log(prod) + ex log 2, and the
    number of clamped coefficients of the full matrix."""
    lib = _kernel()
    assert lib is not None
    fn = getattr(lib, f"bc_tiles_{_PRECISIONS[precision]['S']}")
    pw = _PANEL[precision]
    ftype, itype = (np.float64, np.int64) if precision == "float64" else (np.float32, np.int32)
    group = _group(clamp, precision)
    upper = B is None
    Na, M, C = A.shape
    Nb = Na if upper else B.shape[0]
    ra, rb = -(-Na // pw) * pw, -(-Nb // pw) * pw
    prod = np.ones((ra, rb), dtype=ftype)
    ex = np.zeros((ra, rb), dtype=itype)
    npan = rb // pw
    nblocks = -(-npan // _TJ)
    threads = max(1, min(threads, nblocks))
    count = 0
    with ThreadPoolExecutor(threads) as pool:
        for n0 in progress(range(0, M, chunk), desc="bhattacharyya", total=-(-M // chunk)):
            n1 = min(M, n0 + chunk)
            pa = _pack(A, n0, n1, ra, pw, ftype)
            pb = pa if upper else _pack(B, n0, n1, rb, pw, ftype)
            jobs = [pool.submit(fn, pa.ctypes.data, pb.ctypes.data, n1 - n0, C, ra, npan, t,
                                threads, int(upper), clamp, group, prod.ctypes.data,
                                ex.ctypes.data, rb) for t in range(threads)]
            count += sum(job.result() for job in jobs)
    # the kernel counts pairs i <= j once; the diagonal (sum p = 1) never clamps
    return prod, ex, 2 * count if upper else count


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


def _logsum_torch(A: Any, B: Any | None, chunk: int, precision: str, clamp: float,
                  dev: Any) -> tuple[Any, int]:
    """sum_n log max(bc, clamp) as an (Na, Nb) float64 torch tensor on ``dev``, and the
    number of clamped coefficients, by chunked batched matrix products."""
    import torch

    tdt = torch.float64 if precision == "float64" else torch.float32
    upper = B is None
    Na, M, _ = A.shape
    Nb = Na if upper else B.shape[0]
    block = 2048 if dev.type == "cuda" else 256
    group = _group(clamp, "float64")
    out = torch.zeros((Na, Nb), dtype=torch.float64, device=dev)
    count = 0

    def roots(X: Any, n0: int, n1: int) -> Any:
        x = X[:, n0:n1]
        x = x if isinstance(x, torch.Tensor) else torch.from_numpy(x.copy(order="C"))
        return x.to(dev, tdt).sqrt().transpose(0, 1).contiguous()

    for n0 in progress(range(0, M, chunk), desc="bhattacharyya", total=-(-M // chunk)):
        n1 = min(M, n0 + chunk)
        Sa = roots(A, n0, n1)
        Sb = Sa if upper else roots(B, n0, n1)
        for i0 in range(0, Na, block):
            for j0 in range(i0 if upper else 0, Nb, block):
                bc = torch.bmm(Sa[:, i0:i0 + block], Sb[:, j0:j0 + block].transpose(1, 2))
                bc = bc.to(torch.float64)
                low = int((bc < clamp).sum())
                count += 2 * low if upper and j0 != i0 else low
                out[i0:i0 + block, j0:j0 + block] += _sum_log(bc.clamp_(min=clamp), group)
    if upper:
        out = torch.triu(out) + torch.triu(out, 1).T
    return out, count


def _mirror_upper(D: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle of the square D onto its lower triangle, in place."""
    N = D.shape[0]
    for b0 in range(0, N, block):
        b1 = min(N, b0 + block)
        D[b0:b1, :b0] = D[:b0, b0:b1].T
        sub = D[b0:b1, b0:b1]
        il = np.tril_indices(b1 - b0, -1)
        sub[il] = sub.T[il]


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
) -> np.ndarray | tuple[np.ndarray, int]:
    """Matrix of Bhattacharyya distances between two sets of models.

    ``D[i, j] = -(1/M) sum_n log max(sum_c sqrt(P[i, n, c] Q[j, n, c]), clamp)``.

    Parameters
    ----------
    P, Q : array_like or torch.Tensor, shape (N, M, C) and (N', M, C)
        Class probabilities of N models on M samples (rows: non-negative, finite, summing
        to 1 within 1e-5). ``Q=None`` means ``Q = P``: then only the pairs i <= j are
        computed and D is exactly symmetric with a zero diagonal up to rounding.
    chunk : int
        Samples per chunk (the unit of memory and of the progress bar).
    device : str
        "auto" (CUDA when present), "cpu", "cuda", ... -- see ``resolve_device``.
    dtype : {"float64", "float32"}
        Precision of the coefficients. "float64" (default) is exact to rounding;
        "float32" is about twice as fast on the CPU kernel with absolute errors about
        1e-8 (logs and sums stay float64 in both).
    clamp : float
        Lower clamp of the per-sample coefficient before the log (default 1e-12: a pair
        of samples with disjoint supports contributes -log(1e-12) / M = 27.6 / M).
    backend : {"auto", "kernel", "torch"}
        "kernel": the compiled C kernel (CPU only); "torch": chunked ``torch.bmm`` (any
        device); "auto": the kernel on the CPU when it compiles, else torch.
    threads : int, optional
        Kernel threads (default ``torch.get_num_threads()``). Results do not depend on it.
    return_clamped : bool
        Also return the number of (i, j, n) coefficients of the full N x N' x M array that
        hit the clamp (0 means the clamp changed nothing).

    Returns
    -------
    D : numpy.ndarray, float64, shape (N, N')
    n_clamped : int
        Only with ``return_clamped=True``.

    Notes
    -----
    Memory beyond the inputs: kernel backend 2 N N' 8 bytes of running products and
    exponents (4 bytes each for float32) plus the N x N' float64 result and two packed
    chunks of N chunk C values -- 1.5 GB for N = N' = 8000; torch backend the result, one
    chunk of square roots, and ``chunk * block**2`` coefficients (block = 256 models on
    the CPU, 2048 on CUDA). On CUDA the torch backend runs in the requested precision
    (float64 by default, TF32 is not used) and agrees with the CPU to rounding.

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
        if Q.shape[1:] != P.shape[1:]:
            raise ValueError(f"P and Q must share (samples, classes): {tuple(P.shape)} vs "
                             f"{tuple(Q.shape)}")
        _validate(Q, "Q")
    M = P.shape[1]
    dev = resolve_device(device)
    use_kernel = dev.type == "cpu" and backend != "torch" and _kernel() is not None
    if backend == "kernel" and not use_kernel:
        raise RuntimeError("backend='kernel' needs the CPU and a C compiler "
                           "(see kernel_available())")

    if use_kernel:
        def host(X: Any) -> np.ndarray:
            return X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X

        A, B = host(P), None if Q is None else host(Q)
        prod, ex, count = _logsum_kernel(A, B, chunk, dtype, clamp,
                                         threads or torch.get_num_threads())
        Na, Nb = A.shape[0], (A if B is None else B).shape[0]
        D = np.empty((Na, Nb))
        for r0 in range(0, Na, 1024):
            r1 = min(Na, r0 + 1024)
            lp = np.log(prod[r0:r1, :Nb], dtype=np.float64)
            lp += ex[r0:r1, :Nb] * _LN2
            np.multiply(lp, -1.0 / M, out=D[r0:r1])
        del prod, ex
        if B is None:
            _mirror_upper(D)
    else:
        L, count = _logsum_torch(P, Q, chunk, dtype, clamp, dev)
        D = (L * (-1.0 / M)).cpu().numpy()
    return (D, count) if return_clamped else D


def bhattacharyya_paired(P: Any, Q: Any, *, clamp: float = CLAMP) -> np.ndarray:
    """Distances between matched models: ``d[i] = d_B(P[i], Q[i])``.

    Parameters
    ----------
    P, Q : array_like, shape (N, M, C) (or (M, C) for a single model)
        Class probabilities; validated as in :func:`bhattacharyya`.
    clamp : float
        Lower clamp of the per-sample coefficient.

    Returns
    -------
    numpy.ndarray, float64, shape (N,) (a 0-d array for single models)
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
    d = -np.log(np.maximum(bc, clamp)).mean(axis=1)
    return d[0] if single else d


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
            d_B of each new point to each of the N reference points.

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


def inpca(
    D: Any,
    k: int | None = None,
    *,
    solver: Literal["auto", "full", "partial"] = "auto",
    full_spectrum: bool = False,
    seed: int = 0,
) -> InPCA:
    """Intensive PCA of a symmetric distance matrix (Quinn et al. 2019).

    Parameters
    ----------
    D : array_like, shape (N, N)
        Symmetric matrix of distances (d_B), zero diagonal.
    k : int, optional
        Number of components, by |eigenvalue| at both ends of the spectrum; None: all N.
    solver : {"auto", "full", "partial"}
        "full": ``numpy.linalg.eigh`` (O(N^3)); "partial": ARPACK
        (``scipy.sparse.linalg.eigsh``, which="LM": the k largest |lambda|, both ends);
        "auto": partial when k is given, N > 1000 and k < N / 20.
    full_spectrum : bool
        Also store all N eigenvalues (costs a full ``eigvalsh`` with the partial solver).
    seed : int
        Seed of the ARPACK start vector (deterministic).

    Returns
    -------
    InPCA
        Eigenpairs, coordinates, explained stress (from ||W||_F^2, exact without the full
        spectrum) and the Gower projection.
    """
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1] or D.shape[0] < 2:
        raise ValueError(f"D must be a square matrix with N >= 2, got shape {D.shape}")
    if not np.isfinite(D).all():
        raise ValueError("D has non-finite entries")
    N = D.shape[0]
    tol = 1e-10 * max(float(np.abs(D).max()), 1e-300)
    for b0 in range(0, N, 1024):  # in blocks: no N x N temporaries
        if np.abs(D[b0:b0 + 1024] - D[:, b0:b0 + 1024].T).max() > tol:
            raise ValueError("D must be symmetric")
    k = N if k is None else int(k)
    if not 1 <= k <= N:
        raise ValueError(f"k must be in [1, {N}], got {k}")
    if solver == "auto":
        solver = "partial" if (k < N and N > 1000 and k < N / 20) else "full"
    if solver not in ("full", "partial"):
        raise ValueError(f"solver must be 'auto', 'full' or 'partial', got {solver!r}")

    row_means = D.mean(axis=0)
    grand = float(row_means.mean())
    W = double_centre(D)
    flat = W.ravel()
    total = float(flat @ flat)
    spectrum = None
    if solver == "full" or k >= N - 1:
        lam, V = np.linalg.eigh(W)
        order = np.argsort(-np.abs(lam), kind="stable")
        if full_spectrum:
            spectrum = lam[order]
        lam, V = lam[order[:k]], V[:, order[:k]]
    else:
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(seed).standard_normal(N)
        lam, V = eigsh(W, k=k, which="LM", v0=v0, tol=0.0)
        order = np.argsort(-np.abs(lam), kind="stable")
        lam, V = lam[order], V[:, order]
        if full_spectrum:
            allv = np.linalg.eigvalsh(W)
            spectrum = allv[np.argsort(-np.abs(allv), kind="stable")]
    V = _fix_signs(V)
    coords = V * np.sqrt(np.abs(lam))
    return InPCA(eigenvalues=lam, eigenvectors=V, coords=coords,
                 explained_stress=explained_stress(lam, total), total=total,
                 row_means=row_means, grand_mean=grand, spectrum=spectrum)
