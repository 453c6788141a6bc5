"""Benchmark: Bhattacharyya distances + InPCA, ours against the authors' approach.

For each N (models) with M samples and C classes, in one run:

(a) ours: ``hyperribbon.inpca.bhattacharyya`` (float64, exact) + ``inpca(D, k)`` (partial
    eigensolver for N > 1000); the float32 option is timed too, with its error;
(b) a reference that follows the authors' published code (grasp-lyrl/low-dimensional-
    deepnets, ``utils/distance.py::dbhat`` and ``utils/embed.py``): per chunk of samples a
    batched product of sqrt(p) for all pairs (``torch.bmm``, float64), -log, accumulated
    in float64 numpy; then W = -L D L / 2 as two dense products and a full
    ``numpy.linalg.eigh``;
(c) the achieved GFLOP/s of our distance step (2 N^2 M C flops, the full matrix) against
    this machine's float64 / float32 GEMM rate measured here with numpy.

Every (method, N) runs in a fresh subprocess, which reports its peak resident memory
(``ru_maxrss``; it includes the input array of N M C float64 and the interpreter). Wall
and CPU seconds are both reported because other processes may share the cores; the load
average is printed. Writes a markdown table to stdout and to ``benchmarks/results.md``.

    .venv/bin/python benchmarks/bench_inpca.py                    # N = 500, 2000, 8000
    .venv/bin/python benchmarks/bench_inpca.py --sizes 500 2000   # quick
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


def make_models(n: int, m: int, c: int, seed: int = 0) -> np.ndarray:
    """Softmax predictions of n synthetic models on a 3-dimensional latent manifold plus
    noise (so the InPCA spectrum has structure, as for training trajectories)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((3, m, c))
    z = rng.standard_normal((n, 3)) * [3.0, 2.0, 1.0]
    P = np.empty((n, m, c))
    for b0 in range(0, n, 256):
        b1 = min(n, b0 + 256)
        x = np.einsum("nk,kmc->nmc", z[b0:b1], basis)
        x += 0.5 * rng.standard_normal(x.shape)
        x -= x.max(-1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(-1, keepdims=True)
        P[b0:b1] = x
    return P


def rss_now() -> float:
    """Current resident memory in GiB (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except OSError:
        return peak_rss()


def peak_rss() -> float:
    """Peak resident memory of this process in GiB."""
    scale = 2**30 if sys.platform == "darwin" else 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
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
        s = torch.from_numpy(np.sqrt(P[:, n0:n0 + chunk])).transpose(0, 1)  # (m, N, C)
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


def worker(method: str, n: int, m: int, c: int, k: int, tmp: str) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able dict."""
    res: dict = {"method": method, "N": n, "load_start": os.getloadavg()[0]}
    if method == "ours":
        import torch

        from hyperribbon.inpca import bhattacharyya, inpca, kernel_available

        warm = bhattacharyya(make_models(40, 8, c))  # compile / load the kernel, import
        inpca(warm, k=2, solver="partial")  # torch and scipy, initialise LAPACK (eigh)
        inpca(warm, k=2, solver="full")
        res["backend"] = "kernel" if kernel_available() else "torch"
        res["threads"] = torch.get_num_threads()
    else:
        reference_inpca(reference_distances(make_models(40, 8, c)), 2)  # import torch
    P = make_models(n, m, c)
    res["rss_input"] = rss_now()
    if method == "ours":
        D, res["t_dist"], res["cpu_dist"] = timed(lambda: bhattacharyya(P))
        r, res["t_eig"], res["cpu_eig"] = timed(lambda: inpca(D, k=k))
        lam = r.eigenvalues
        res["es"] = r.explained_stress.tolist()
        res["peak"] = peak_rss()
        D32, res["t_dist32"], res["cpu_dist32"] = timed(lambda: bhattacharyya(P, dtype="float32"))
        res["err32"] = float(np.abs(D32 - D).max())
    else:
        D, res["t_dist"], res["cpu_dist"] = timed(lambda: reference_distances(P))
        (lam, _), res["t_eig"], res["cpu_eig"] = timed(lambda: reference_inpca(D, k))
        res["peak"] = peak_rss()
    np.save(os.path.join(tmp, f"{method}_{n}_rows.npy"), D[:64])
    np.save(os.path.join(tmp, f"{method}_{n}_eig.npy"), lam)
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


def run_worker(method: str, n: int, args: argparse.Namespace, tmp: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, str(n), "--samples", str(args.samples),
           "--classes", str(args.classes), "--k", str(args.k), "--tmp", tmp]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{method} N={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=10, help="InPCA components")
    ap.add_argument("--no-reference-above", type=int, default=None,
                    help="skip the reference for N above this")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        method, n = args.worker[0], int(args.worker[1])
        print(json.dumps(worker(method, n, args.samples, args.classes, args.k, args.tmp)))
        return

    M, C = args.samples, args.classes
    t_start = time.strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()
    (r64, c64), (r32, _) = gemm_rate(np.float64), gemm_rate(np.float32)
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            ours = run_worker("ours", n, args, tmp)
            ref = None
            if args.no_reference_above is None or n <= args.no_reference_above:
                ref = run_worker("reference", n, args, tmp)
            flops = 2.0 * n * n * M * C
            row = dict(N=n, ours=ours, ref=ref, flops=flops)
            if ref is not None:
                a = np.load(os.path.join(tmp, f"ours_{n}_rows.npy"))
                b = np.load(os.path.join(tmp, f"reference_{n}_rows.npy"))
                row["dD"] = float(np.abs(a - b).max())
                ea = np.load(os.path.join(tmp, f"ours_{n}_eig.npy"))
                eb = np.load(os.path.join(tmp, f"reference_{n}_eig.npy"))
                row["dlam"] = float(np.abs(ea - eb).max() / np.abs(eb).max())
            rows.append(row)
            print(f"N={n}: ours {ours['t_dist']:.2f}+{ours['t_eig']:.2f} s"
                  + (f", reference {ref['t_dist']:.2f}+{ref['t_eig']:.2f} s" if ref else ""),
                  file=sys.stderr, flush=True)
    r64_end = gemm_rate(np.float64)[0]
    load1 = os.getloadavg()

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cmd = "python benchmarks/bench_inpca.py " + " ".join(sys.argv[1:])
    lines = [
        f"# InPCA benchmark ({t_start})",
        "",
        f"`{cmd.strip()}` — M = {M} samples, C = {C} classes, k = {args.k} InPCA "
        f"components; {cpu}, {os.cpu_count()} cores, backend {rows[0]['ours']['backend']}, "
        f"{rows[0]['ours']['threads']} threads.",
        f"numpy GEMM rate: float64 {r64:.1f} GFLOP/s (at the end: {r64_end:.1f}), "
        f"float32 {r32:.1f} GFLOP/s; float64 per CPU second {c64:.1f} GFLOP/s. "
        f"Load average (1 min) at start {load0[0]:.2f}, "
        f"at end {load1[0]:.2f}: other processes shared the cores, so wall times are "
        "upper bounds; the CPU seconds are ours alone.",
        "",
        "| N | ours: d_B s (CPU s) | ours: InPCA s | reference: d_B s | reference: InPCA s "
        "| speed-up total | d_B GFLOP/s | d_B time / f64 GEMM bound | / f32 GEMM bound "
        "| d_B CPU s / f64 GEMM CPU s "
        "| float32 d_B s | float32 max abs err | max abs ΔD vs ref | peak RSS ours / ref (GiB) "
        "| input (GiB) |",
        "|---" * 15 + "|",
    ]
    for row in rows:
        o, r = row["ours"], row["ref"]
        tot = o["t_dist"] + o["t_eig"]
        speed = None if r is None else (r["t_dist"] + r["t_eig"]) / tot
        bound64, bound32 = row["flops"] / (r64 * 1e9), row["flops"] / (r32 * 1e9)
        lines.append(
            f"| {row['N']} | {o['t_dist']:.2f} ({o['cpu_dist']:.2f}) | {o['t_eig']:.2f} "
            f"| {fmt(r and r['t_dist'], '.1f')} | {fmt(r and r['t_eig'], '.1f')} "
            f"| {fmt(speed, '.1f')}× | {row['flops'] / o['t_dist'] / 1e9:.1f} "
            f"| {o['t_dist'] / bound64:.2f} | {o['t_dist'] / bound32:.2f} "
            f"| {o['cpu_dist'] / (row['flops'] / (c64 * 1e9)):.2f} "
            f"| {o['t_dist32']:.2f} | {o['err32']:.1e} | {fmt(row.get('dD'), '.1e')} "
            f"| {o['peak']:.2f} / {fmt(r and r['peak'], '.2f')} | {o['rss_input']:.2f} |"
        )
        if r is not None:
            notes.append(f"N = {row['N']}: relative difference of the top-{args.k} "
                         f"eigenvalues ours vs reference {row['dlam']:.1e}; ES_3 = "
                         f"{o['es'][min(2, len(o['es']) - 1)]:.3f}.")
    lines += ["", "Flops counted as 2 N² M C (the full matrix; ours computes the upper "
              "triangle only). 'd_B time / GEMM bound' = our distance time divided by the "
              "time a GEMM of that many flops takes at the measured rate (target ≤ 2); the "
              "CPU-second version compares CPU time with CPU time and is less sensitive to "
              "other processes on the machine.", ""]
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
