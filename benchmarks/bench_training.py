"""K small networks of one architecture trained for the same number of steps: the training
engine's chosen path against a plain Python loop of K separate trainings, in one run.

    python benchmarks/bench_training.py [--k 32] [--arch mlp cnn] [--device auto]

For each architecture it times, on fresh caches:

- ``loop``: K separate trainings one after the other in this process (torch's default
  intra-op threads), the baseline;
- ``engine``: ``hyperribbon.training.train`` with one worker process per core — on CUDA
  one vmapped ensemble of K models (``torch.func``); on a CPU whichever of the ensemble
  and the loop of single-thread runs its short measurement (``measure_paths``) finds
  faster;
- ``ensemble``: the vmapped ensemble forced, for reference (the engine uses it on CUDA
  only, because on CPUs it was slower than a loop).

It prints the ratios (loop time / path time: > 1 is faster than the loop), steps per
second per model, and the peak resident memory of the process and of its children.
Data: Fashion-MNIST through the registry (``HYPERRIBBON_DATA``).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from dataclasses import replace

import torch

from hyperribbon import training as tr

WIDTH = {"mlp": 64, "cnn": 8, "convmixer": 16, "wrn": 8, "linear": 1}


def _peak_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def bench(arch: str, k: int, device: str, n_train: int, epochs: int) -> dict:
    base = tr.RunSpec(train=tr.Samples(n=n_train, pool=2), arch=arch, width=WIDTH[arch],
                      record=(("test", tr.Samples(split="test", n=500, pool=2)),),
                      optimizer="nesterov", lr=0.05, batch_size=50, epochs=epochs,
                      checkpoints=((1e9, float(epochs)),))
    specs = [replace(base, seed=s) for s in range(k)]
    dev = tr.resolve_device(device)
    tr.samples(base.train)  # load the data once, outside the timings
    out = {"arch": arch, "k": k, "steps": base.total_steps, "device": str(dev)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for s in specs:
            tr.train_group([s], str(dev), f"{tmp}/loop", path="loop", save_every=0)
        out["loop_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tr.train(specs, device=str(dev), cache=f"{tmp}/engine",
                 workers=os.cpu_count() or 1)
        out["engine_s"] = time.perf_counter() - t0
        out["engine_path"] = tr.load_cached(specs[0], f"{tmp}/engine").meta["path"]
        t0 = time.perf_counter()
        tr.train_group(specs, str(dev), f"{tmp}/ens", path="ensemble", save_every=0)
        out["ensemble_s"] = time.perf_counter() - t0
    out["peak_mib"], out["peak_children_mib"] = _peak_mib()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--arch", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    for arch in a.arch:
        r = bench(arch, a.k, a.device, a.n_train, a.epochs)
        steps = r["steps"] * r["k"]
        print(f"{arch}: K={r['k']}, {r['steps']} steps each, {r['device']}; engine path "
              f"'{r['engine_path']}'")
        for name in ("loop", "engine", "ensemble"):
            t = r[f"{name}_s"]
            print(f"  {name:9s} {t:7.1f} s  ratio {r['loop_s'] / t:5.2f}  "
                  f"{steps / t / r['k']:7.1f} steps/s per model")
        print(f"  peak RSS {r['peak_mib']:.0f} MiB (this process), "
              f"{r['peak_children_mib']:.0f} MiB (largest worker)")


if __name__ == "__main__":
    main()
