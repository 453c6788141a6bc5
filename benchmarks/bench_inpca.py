"""Benchmark: Bhattacharyya distances + InPCA at scale, ours against the authors' approach.

For each N (models) with M samples and C classes, in one run, every (method, N) in a
fresh subprocess that reports its peak resident memory (``ru_maxrss``: it includes the
interpreter, the pages of the memory-mapped input it read and of the N x N matrix):

(a) ours, the bounded-memory pipeline: predictions in a float32 ``.npy`` file read
    through a memory map block by block; ``bhattacharyya(P, out=FILE.npy)`` writes the
    N x N float64 matrix in row blocks into a memory-mapped file (``--in-memory``: a
    numpy array) mirrored as it goes; ``inpca(D, k, overwrite=True)`` checks it,
    double-centres it in place (||W||_F^2 blockwise: exact explained stress) and finds
    the top-k eigenpairs by |lambda| at both ends with the block subspace iteration.
    ``--dtype`` picks the precision of the coefficients (the output is float64 either
    way). For N <= ``--extras-up-to``: the other precision's time and error, and landmark
    InPCA (``--landmarks`` of them) with its difference from the exact embedding;
(b) a reference that follows the authors' published code (grasp-lyrl/low-dimensional-
    deepnets, ``utils/distance.py::dbhat`` and ``utils/embed.py``): per chunk of samples a
    batched product of sqrt(p) for all pairs (``torch.bmm``, float64), -log, accumulated
    in float64 numpy; then W = -L D L / 2 as two dense products and a full
    ``numpy.linalg.eigh`` sorted by |lambda| (both ends);
(c) the achieved rate of our distance step (2 N^2 M C flops, the full matrix; we compute
    one triangle) against this machine's float64 / float32 GEMM rate measured here.

Wall and CPU seconds are both reported because other processes may share the cores; the
load average is printed. Writes a markdown table to stdout and to ``--out``.

    .venv/bin/python benchmarks/bench_inpca.py --sizes 30000 8000 --samples 1000 \\
        --reference-up-to 8000 --dtype-above 8000 float32     # the issue's targets
    .venv/bin/python benchmarks/bench_inpca.py --sizes 500 2000 --samples 500   # quick
    .venv/bin/python benchmarks/bench_inpca.py --device cuda --sizes 100000 --samples 2000 \
        --reference-up-to 0 --extras-up-to 0 --dtype float32   # the GPU target
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_models(n: int, m: int, c: int, seed: int = 0, out: np.ndarray | None = None,
                dtype: type = np.float64) -> np.ndarray:
    """Softmax predictions of n synthetic models on a 3-dimensional latent manifold plus
    noise (so the InPCA spectrum has structure, as for training trajectories); written
    block by block into ``out`` (e.g. a memory-mapped file) when given."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((3, m, c))
    z = rng.standard_normal((n, 3)) * [3.0, 2.0, 1.0]
    P = np.empty((n, m, c), dtype=dtype) if out is None else out
    for b0 in range(0, n, 256):
        b1 = min(n, b0 + 256)
        x = np.einsum("nk,kmc->nmc", z[b0:b1], basis)
        x += 0.5 * rng.standard_normal(x.shape)
        x -= x.max(-1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(-1, keepdims=True)
        P[b0:b1] = x
    return P


def input_file(tmp: str, n: int, m: int, c: int) -> str:
    """The predictions of ``make_models`` as a float32 .npy file (created once)."""
    from hyperribbon.util import atomic_path  # light: no torch, no numerics

    path = os.path.join(tmp, f"P_{n}_{m}_{c}.npy")
    if not os.path.exists(path):
        with atomic_path(path) as part:
            mm = np.lib.format.open_memmap(part, "w+", np.float32, (n, m, c))
            make_models(n, m, c, out=mm)
            mm.flush()
            del mm
    return path


def peak_rss() -> float:
    """Peak resident memory of this process in GiB."""
    scale = 2**30 if sys.platform == "darwin" else 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def timed(fn):
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def reference_distances(P: np.ndarray, max_bytes: float = 2**28) -> np.ndarray:
    """The authors' dbhat in float64: per chunk of samples a batched product of sqrt(p)
    for all pairs (``torch.bmm``, as in their code), then -log and the sum over samples in
    float64 numpy (coefficients clamped at 1e-12 where they set inf to 100)."""
    import torch

    N, M, _ = P.shape
    chunk = max(1, int(max_bytes // (8 * N * N)))
    w = np.zeros((N, N))
    for n0 in range(0, M, chunk):
        s = torch.from_numpy(np.sqrt(P[:, n0:n0 + chunk], dtype=np.float64)).transpose(0, 1)
        b = torch.bmm(s, s.transpose(1, 2)).numpy()  # (m, N, N)
        w -= np.log(np.maximum(b, 1e-12)).sum(0)
    return w / M


def reference_inpca(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The authors' embedding: W = -L D L / 2 by dense products, full eigh, sort by |l|."""
    N = D.shape[0]
    L = np.eye(N) - 1.0 / N
    W = -L @ D @ L / 2
    lam, V = np.linalg.eigh(W)
    order = np.argsort(-np.abs(lam))[:k]
    return lam[order], V[:, order] * np.sqrt(np.abs(lam[order]))


def worker(method: str, n: int, a: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able dict."""
    res: dict = {"method": method, "N": n, "load_start": os.getloadavg()[0]}
    src = input_file(a.tmp, n, a.samples, a.classes)
    if method == "ours":
        import warnings

        import torch

        from hyperribbon.inpca import (
            ClampWarning,
            bhattacharyya,
            compare_embeddings,
            inpca,
            kernel_available,
            landmark_inpca,
        )

        warnings.simplefilter("ignore", ClampWarning)  # counted and reported below
        warm = bhattacharyya(make_models(64, 8, a.classes))  # compile / load the kernel
        inpca(warm, k=2, solver="subspace")
        inpca(warm, k=2, solver="full")
        res["backend"] = "kernel" if kernel_available() else "torch"
        res["threads"] = torch.get_num_threads()
        dtype = a.dtype_above[1] if a.dtype_above and n > a.dtype_above[0] else a.dtype
        res["dtype"] = dtype
        P = np.load(src, mmap_mode="r")
        if a.device == "cuda":  # input and matrix on the GPU (untested here: no GPU)
            P = torch.from_numpy(np.ascontiguousarray(P)).cuda()
            out = torch.empty((n, n), dtype=getattr(torch, a.gpu_matrix), device="cuda")
            res["storage"] = f"CUDA tensor ({a.gpu_matrix})"
            torch.cuda.synchronize()
        else:
            out = None if a.in_memory else os.path.join(a.tmp, f"D_{n}.npy")
            res["storage"] = "memory" if a.in_memory else "memmap file"

        def sync(x):
            if a.device == "cuda":
                torch.cuda.synchronize()
            return x

        (D, res["clamped"]), res["t_dist"], res["cpu_dist"] = timed(lambda: sync(
            bhattacharyya(P, dtype=dtype, out=out, device=a.device, return_clamped=True)))
        rows = D[:64].cpu().numpy() if a.device == "cuda" else np.array(D[:64])
        r, res["t_eig"], res["cpu_eig"] = timed(lambda: inpca(D, k=a.k, overwrite=True))
        res["peak"] = peak_rss()
        if a.device == "cuda":
            res["peak_gpu"] = torch.cuda.max_memory_allocated() / 2**30
        lam = r.eigenvalues
        res["es"] = r.explained_stress.tolist()
        res["lam"] = lam.tolist()
        del D
        if n <= a.extras_up_to:
            other = "float32" if dtype == "float64" else "float64"
            D2, res["t_other"], _ = timed(lambda: bhattacharyya(
                P, dtype=other, device=a.device, return_clamped=True)[0])
            res["other"], res["err_other"] = other, float(np.abs(D2[:64] - rows).max())
            del D2
            L = min(a.landmarks, n)
            lm, res["t_landmark"], _ = timed(lambda: landmark_inpca(P, a.k, L, dtype=dtype,
                                                                    device=a.device))
            res["landmarks"] = L
            res["landmark_diff"] = compare_embeddings(lm.coords, r.coords, lm.signs, r.signs)
            res["landmark_diff3"] = compare_embeddings(lm.coords[:, :3], r.coords[:, :3],
                                                       lm.signs[:3], r.signs[:3])
    else:
        reference_inpca(reference_distances(make_models(40, 8, a.classes)), 2)  # warm up
        P = np.load(src, mmap_mode="r")
        D, res["t_dist"], res["cpu_dist"] = timed(lambda: reference_distances(P))
        (lam, _), res["t_eig"], res["cpu_eig"] = timed(lambda: reference_inpca(D, a.k))
        res["peak"] = peak_rss()
        rows = D[:64]
    np.save(os.path.join(a.tmp, f"{method}_{n}_rows.npy"), rows)
    np.save(os.path.join(a.tmp, f"{method}_{n}_eig.npy"), lam)
    res["load_end"] = os.getloadavg()[0]
    return res


def gemm_rate(dtype: type, n: int = 3000, repeat: int = 3) -> tuple[float, float]:
    """GFLOP/s of an n x n numpy matmul: per wall second and per CPU second (all threads),
    best of ``repeat``."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    a @ b
    runs = [timed(lambda: a @ b)[1:] for _ in range(repeat)]
    flops = 2 * n**3 / 1e9
    return flops / min(r[0] for r in runs), flops / min(r[1] for r in runs)


def run_worker(method: str, n: int, argv: list[str], tmp: str) -> dict:
    cmd = [sys.executable, __file__, *argv, "--worker", method, str(n), "--tmp", tmp]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{method} N={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[30000, 8000])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=10, help="InPCA components")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--dtype-above", nargs=2, metavar=("N", "DTYPE"), default=None,
                    help="use DTYPE for sizes above N")
    ap.add_argument("--reference-up-to", type=int, default=8000,
                    help="run the reference for N up to this")
    ap.add_argument("--extras-up-to", type=int, default=8000,
                    help="time the other precision and landmarks for N up to this")
    ap.add_argument("--landmarks", type=int, default=2000)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: input and N x N matrix on the GPU, eigensolver there too")
    ap.add_argument("--gpu-matrix", default="float32", choices=["float32", "float64"],
                    help="dtype of the N x N matrix on the GPU")
    ap.add_argument("--in-memory", action="store_true",
                    help="the N x N matrix in memory instead of a memory-mapped file")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dtype_above:
        args.dtype_above = (int(args.dtype_above[0]), args.dtype_above[1])
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args)))
        return
    argv = sys.argv[1:]
    M, C = args.samples, args.classes
    t_start = time.strftime("%Y-%m-%d %H:%M")
    up0 = uptime()
    (r64, c64), (r32, _) = gemm_rate(np.float64), gemm_rate(np.float32)
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for n in args.sizes:
            input_file(tmp, n, M, C)
            ours = run_worker("ours", n, argv, tmp)
            print(f"N={n}: ours {ours['t_dist']:.1f}+{ours['t_eig']:.1f} s, peak "
                  f"{ours['peak']:.2f} GiB", file=sys.stderr, flush=True)
            rows.append(dict(N=n, ours=ours, ref=None))
        for row in rows:
            n = row["N"]
            if n > args.reference_up_to:
                continue
            ref = row["ref"] = run_worker("reference", n, argv, tmp)
            print(f"N={n}: reference {ref['t_dist']:.1f}+{ref['t_eig']:.1f} s",
                  file=sys.stderr, flush=True)
            a = np.load(os.path.join(tmp, f"ours_{n}_rows.npy"))
            b = np.load(os.path.join(tmp, f"reference_{n}_rows.npy"))
            row["dD"] = float(np.abs(a - b).max())
            ea = np.load(os.path.join(tmp, f"ours_{n}_eig.npy"))
            eb = np.load(os.path.join(tmp, f"reference_{n}_eig.npy"))
            row["dlam"] = float(np.abs(ea - eb).max() / np.abs(eb).max())
    r64_end = gemm_rate(np.float64)[0]
    up1 = uptime()

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    o0 = rows[0]["ours"]
    cmd = ".venv/bin/python benchmarks/bench_inpca.py " + " ".join(sys.argv[1:])
    lines = [
        f"# InPCA benchmark ({t_start})",
        "",
        f"`{cmd.strip()}` — M = {M} samples, C = {C} classes, top-{args.k} InPCA "
        f"components at both ends of the spectrum; {cpu}, {os.cpu_count()} cores, "
        f"device {args.device}, backend {o0['backend'] if args.device == 'cpu' else 'torch'}, "
        f"{o0['threads']} threads; input: float32 `.npy` read through a memory map; "
        f"N x N matrix: {o0['storage']}.",
        f"numpy GEMM rate: float64 {r64:.1f} GFLOP/s (at the end: {r64_end:.1f}), "
        f"float32 {r32:.1f} GFLOP/s; float64 per CPU second {c64:.1f} GFLOP/s.",
        f"`uptime` at start: `{up0}`; at end: `{up1}` — other engineers' processes shared "
        "the two cores, so wall times are upper bounds; the CPU seconds are ours alone.",
        "",
        "| N | d_B precision | d_B s (CPU s) | InPCA s (CPU s) | total s | d_B GFLOP/s "
        "| d_B / f64 GEMM bound | peak RSS GiB | N×N f64 + input GiB | peak / (N×N f64 + "
        "input) | reference d_B + InPCA s | speed-up | max abs ΔD vs ref | rel. Δλ vs ref "
        "| ES_3 | clamped |",
        "|---" * 16 + "|",
    ]
    notes = []
    for row in rows:
        o, r, n = row["ours"], row["ref"], row["N"]
        flops = 2.0 * n * n * M * C
        tot = o["t_dist"] + o["t_eig"]
        base = (8.0 * n * n + 4.0 * n * M * C) / 2**30
        rt = None if r is None else r["t_dist"] + r["t_eig"]
        lines.append(
            f"| {n} | {o['dtype']} | {o['t_dist']:.1f} ({o['cpu_dist']:.1f}) "
            f"| {o['t_eig']:.1f} ({o['cpu_eig']:.1f}) | {tot:.1f} "
            f"| {flops / o['t_dist'] / 1e9:.1f} | {o['t_dist'] / (flops / (r64 * 1e9)):.2f} "
            f"| {o['peak']:.2f} | {base:.2f} | {o['peak'] / base:.2f} "
            f"| {fmt(rt, '.0f')} | {fmt(rt and rt / tot, '.1f')}× "
            f"| {fmt(row.get('dD'), '.1e')} | {fmt(row.get('dlam'), '.1e')} "
            f"| {o['es'][min(2, len(o['es']) - 1)]:.3f} | {o['clamped']} |")
        if r is not None:
            notes.append(f"N = {n}: reference distances {r['t_dist']:.0f} s "
                         f"(CPU {r['cpu_dist']:.0f} s), W and full eigh {r['t_eig']:.0f} s, "
                         f"peak RSS {r['peak']:.2f} GiB.")
        if "peak_gpu" in o:
            notes.append(f"N = {n}: peak GPU memory allocated {o['peak_gpu']:.2f} GiB.")
        if "t_other" in o:
            notes.append(f"N = {n}: the {o['other']} d_B takes {o['t_other']:.1f} s; its "
                         f"largest difference from the {o['dtype']} one "
                         f"{o['err_other']:.1e}.")
            notes.append(f"N = {n}: landmark InPCA with {o['landmarks']} landmarks "
                         f"{o['t_landmark']:.1f} s; relative difference of its embedded "
                         f"distances from the exact embedding's (`compare_embeddings`, "
                         f"2000 models): {o['landmark_diff']:.3f} over the top {args.k} "
                         f"axes, {o['landmark_diff3']:.3f} over the top 3.")
    lines += ["", "Flops counted as 2 N² M C (the full matrix; ours computes one triangle). "
              "'InPCA' is the whole `inpca(D, k, overwrite=True)`: symmetry and finiteness "
              "check, in-place double centring with ||W||_F² (exact explained stress) and "
              "the top-k eigenpairs by |λ| (block subspace iteration). Peak RSS is the "
              "process's maximum resident set (interpreter, torch, the pages of the "
              "memory-mapped input and matrix it touched).", ""]
    lines += [f"- {x}" for x in notes]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
