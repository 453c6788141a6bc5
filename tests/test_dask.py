"""Sweeps and training grids on a real Dask cluster (no mocks): a local cluster gives the
sequential table, a worker SIGKILLed in the middle of a point does not lose it, a grid of
runs fills the shared cache once and a damaged run is retrained; the shared cache never
holds code (the compiled kernel lives in a per-user folder)."""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import needs_fashion_mnist
from hyperribbon import inpca
from hyperribbon.compendium import cluster, sweep
from hyperribbon.compendium.train_grid import train_grid
from hyperribbon.util import InputError


def _grid(tmp_path, content: dict, name: str = "grid.yml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(content, sort_keys=False))
    return p


def _table(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_local_cluster_sweep_gives_the_sequential_table(toy, tmp_path):
    g = _grid(tmp_path, {"grid": {"seed": [0, 1]}})
    par = sweep.sweep("01", g, "ci", tmp_path / "par", jobs=2)
    sweep.sweep("01", g, "ci", tmp_path / "seq")
    assert [r.status for r in par] == ["ok", "ok"]
    assert _table(tmp_path / "par" / "sweep.csv") == _table(tmp_path / "seq" / "sweep.csv")
    assert (tmp_path / "par" / "toy_value.png").stat().st_size > 0


def test_a_worker_killed_mid_point_does_not_lose_the_point(toy, tmp_path):
    from distributed import Client, LocalCluster

    g = _grid(tmp_path, {"grid": {"seed": [0, 1], "sleep": [3.0]}})
    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as lc, Client(lc) as client:
        env = {**os.environ, "CI": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "hyperribbon.compendium.cli", "sweep",
                                 "01", str(g), "--out", str(out),
                                 "--scheduler", lc.scheduler_address],
                                env=env, cwd=toy, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        victim = None
        while victim is None and time.time() < deadline and proc.poll() is None:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy and out.exists() and list(out.glob(".*.running.ipynb")):
                victim = busy[0]
            time.sleep(0.2)
        assert victim is not None, "no point was ever running on a worker"
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    rows = _table(out / "sweep.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert not list(out.glob("*.failed.ipynb"))
    clean = tmp_path / "clean"
    sweep.sweep("01", g, "ci", clean)
    assert rows == _table(clean / "sweep.csv")
    # a re-run finds every point finished and redoes nothing
    assert [r.status for r in sweep.sweep("01", g, "ci", out)] == ["skipped", "skipped"]


@needs_fashion_mnist
def test_a_training_grid_fills_the_cache_once_and_retrains_a_damaged_run(tmp_path):
    g = _grid(tmp_path, {
        "device": "cpu",
        "base": {"arch": "mlp", "width": 16, "epochs": 2, "batch_size": 50,
                 "train": {"n": 200, "pool": 2},
                 "record": {"test": {"split": "test", "n": 100, "pool": 2}},
                 "checkpoints": [[1, 0.5], [1e9, 1]]},
        "grid": {"seed": [0, 1], "train.seed": [0, 1]}})
    cache = tmp_path / "cache"
    first = train_grid(g, jobs=2, cache=cache)
    assert len(first.runs) == len(first.trained) == 4
    assert len({r.spec.key() for r in first.runs}) == 4
    again = train_grid(g, jobs=2, cache=cache)
    assert again.trained == []

    run = first.runs[1]
    f = run.path / "probs_test.npy"
    good = np.load(f).copy()
    raw = bytearray(f.read_bytes())
    raw[-3] ^= 0x40  # one bit of one prediction
    f.write_bytes(bytes(raw))
    damaged = np.load(f)
    assert not np.allclose(damaged, good, rtol=1e-6, atol=0)
    with pytest.warns(UserWarning, match="probs_test.npy"):
        third = train_grid(g, cache=cache)
    assert third.trained == [run.spec]
    # retrained here, not on a one-thread worker: equal up to the order of float sums
    np.testing.assert_allclose(third.runs[1].probs("test"), good, rtol=1e-6, atol=0)


def test_a_scheduler_and_jobs_together_are_refused():
    with pytest.raises(InputError, match="either --scheduler"):
        cluster.check_request("tcp://127.0.0.1:8786", 2)
    with pytest.raises(InputError, match="--jobs must be >= 1"):
        cluster.check_request(None, 0)
    with cluster.executor(None, 1) as ex:
        assert ex is None


def test_an_unreachable_scheduler_is_named(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    with pytest.raises(InputError, match="cannot reach the Dask scheduler at tcp://127.0.0"):
        with cluster.executor("tcp://127.0.0.1:9"):
            pass


def test_the_compiled_kernel_is_built_per_user_never_in_the_shared_cache(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_CACHE", str(tmp_path / "shared"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "mine"))
    inpca._kernel.cache_clear()
    try:
        lib = inpca._kernel()
        if lib is None:
            pytest.skip("no C compiler")
        assert os.path.dirname(lib._name) == str(tmp_path / "mine" / "hyperribbon-kernels")
        assert oct(os.stat(inpca.kernel_dir()).st_mode & 0o777) == oct(0o700)
        assert not (tmp_path / "shared").exists() or not any(
            p.suffix == ".so" for p in (tmp_path / "shared").rglob("*"))
        # a folder others can write is refused: the torch path is used instead
        os.chmod(inpca.kernel_dir(), 0o777)
        with pytest.raises(PermissionError, match="writable by others"):
            inpca.kernel_dir()
        inpca._kernel.cache_clear()
        with pytest.warns(UserWarning, match="writable by others"):
            assert inpca._kernel() is None
    finally:
        inpca._kernel.cache_clear()


def test_parallel_points_never_read_a_half_written_kernelspec():
    from hyperribbon.compendium import run

    kfile = run._kernel_dir() / "kernels" / run.KERNEL_NAME / "kernel.json"
    before = os.stat(kfile)
    run._kernel_dir()  # another point starting: the file is left as it is, not rewritten
    after = os.stat(kfile)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert yaml.safe_load(kfile.read_text())["argv"][0] == sys.executable
