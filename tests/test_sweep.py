"""Sweeps on the toy compendium: validation, resumption after kill -9, failures, data
faults, determinism, the table and the figures."""

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from hyperribbon.compendium import cli, sweep
from hyperribbon.compendium.params import ParameterError


def grid(tmp_path, content: dict, name="grid.yml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(content, sort_keys=False))
    return p


def table(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_load_grid_product_and_points(tmp_path):
    g = sweep.load_grid(grid(tmp_path, {"grid": {"seed": [0, 1], "n": [3, 4]},
                                        "points": [{"seed": 9}]}))
    assert g.points == [{"seed": 0, "n": 3}, {"seed": 0, "n": 4}, {"seed": 1, "n": 3},
                        {"seed": 1, "n": 4}, {"seed": 9}]
    assert g.swept == ["seed", "n"]
    with pytest.raises(ParameterError, match="non-empty list"):
        sweep.load_grid(grid(tmp_path, {"grid": {"seed": 3}}))
    with pytest.raises(ParameterError, match="unknown keys"):
        sweep.load_grid(grid(tmp_path, {"grid": {"seed": [1]}, "seeds": 1}))


def test_point_id_is_stable_and_distinct():
    a = sweep.point_id({"seed": 1, "n": 2})
    assert a == sweep.point_id({"n": 2, "seed": 1})
    assert a != sweep.point_id({"seed": 1, "n": 3})
    assert a.startswith("n=2,seed=1-")


def test_one_bad_point_refuses_the_whole_sweep(toy, tmp_path, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook",
                        lambda *a, **k: pytest.fail("a kernel was started"))
    g = grid(tmp_path, {"grid": {"seed": [0, 1], "n": [5, 500]}})
    with pytest.raises(ParameterError, match=r"point 1 \{'seed': 0, 'n': 500\}.*'n' = 500"):
        sweep.sweep("01", g, "ci", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_failing_point_is_recorded_and_the_others_complete(toy, tmp_path, capsys):
    g = grid(tmp_path, {"grid": {"fail": [False, True], "seed": [1]}})
    out = tmp_path / "out"
    code = cli.main(["sweep", "01", str(g), "--out", str(out)])
    assert code == 1
    rows = {r["fail"]: r for r in table(out / "sweep.csv")}
    assert rows["false"]["status"] == "ok" and rows["false"]["claim:toy_value"] == "10.0"
    assert rows["true"]["status"] == "failed"
    assert "failed" in rows["true"]["error"]
    failed_id = rows["true"]["point"]
    assert (out / f"{failed_id}.failed.ipynb").exists()
    assert "asked to fail" in (out / "logs" / f"{failed_id}.log").read_text()
    assert (out / "toy_value.png").stat().st_size > 0


def test_kill_9_mid_point_then_resume_equals_uninterrupted(toy, tmp_path):
    g = grid(tmp_path, {"grid": {"seed": [0, 1, 2], "sleep": [2.0]}})
    out = tmp_path / "killed"
    env = {**os.environ, "HYPERRIBBON_ROOT": str(toy), "CI": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hyperribbon.compendium.cli", "sweep",
                             "01", str(g), "--out", str(out)], env=env, cwd=toy,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait: one point finished, the next one running
        done = list(out.glob("seed=*.ipynb")) if out.exists() else []
        running = list(out.glob(".*.running.ipynb")) if out.exists() else []
        if len(done) == 1 and running:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the sweep never reached its second point")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("seed=*.ipynb")}
    assert len(finished) == 1 and not (out / "sweep.csv").exists()

    results = sweep.sweep("01", g, "ci", out)
    assert sorted(r.status for r in results) == ["ok", "ok", "skipped"]
    for name, mtime in finished.items():  # the finished point was not re-executed
        assert (out / name).stat().st_mtime_ns == mtime
    assert not list(out.glob(".*.running.ipynb"))

    clean = tmp_path / "clean"
    sweep.sweep("01", g, "ci", clean)
    assert table(out / "sweep.csv") == table(clean / "sweep.csv")
    assert {r["glue:toy_noise"] for r in table(clean / "sweep.csv")} == {
        repr(float(np.random.default_rng(s).normal())) for s in (0, 1, 2)}


def _idx(arr):
    return bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()


def test_corrupt_data_file_fails_its_point_naming_the_file(toy, tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "TINY").mkdir(parents=True)
    files = {"imgs": _idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
             "labs": _idx(np.array([0, 1], dtype=np.uint8))}
    for k, b in files.items():
        (root / "TINY" / k).write_bytes(b)
    reg = {"tiny": {"folder": "TINY", "format": "idx", "classes": 2,
                    "splits": {"train": ["imgs", "labs"]},
                    "files": {k: {"sha256": hashlib.sha256(b).hexdigest()}
                              for k, b in files.items()}}}
    reg_file = tmp_path / "reg.yml"
    reg_file.write_text(yaml.safe_dump(reg))
    monkeypatch.setenv("HYPERRIBBON_REGISTRY", str(reg_file))
    monkeypatch.setenv("HYPERRIBBON_DATA", str(root))
    monkeypatch.setenv("HYPERRIBBON_DOWNLOAD", "0")
    out = tmp_path / "out"
    g1 = grid(tmp_path, {"grid": {"dataset": ["tiny"], "seed": [0]}}, "g1.yml")
    assert [r.status for r in sweep.sweep("01", g1, "ci", out)] == ["ok"]
    good = {p: p.read_bytes() for p in out.glob("*.ipynb")}

    corrupt = bytearray(files["imgs"])
    corrupt[-1] ^= 0xFF
    (root / "TINY" / "imgs").write_bytes(bytes(corrupt))
    g2 = grid(tmp_path, {"grid": {"dataset": ["tiny"], "seed": [0, 1]}}, "g2.yml")
    results = {r.params["seed"]: r for r in sweep.sweep("01", g2, "ci", out)}
    assert results[0].status == "skipped"  # finished before, not touched
    assert results[1].status == "failed"
    assert "sha256 mismatch" in results[1].error and str(root / "TINY" / "imgs") in results[1].error
    for p, content in good.items():
        assert p.read_bytes() == content
    assert (root / "TINY" / "imgs").read_bytes() == bytes(corrupt)


def test_same_point_twice_gives_identical_claims(toy, tmp_path):
    g = grid(tmp_path, {"grid": {"seed": [4]}})
    a = table(sweep.sweep("01", g, "ci", tmp_path / "a") and tmp_path / "a" / "sweep.csv")
    b = table(sweep.sweep("01", g, "ci", tmp_path / "b") and tmp_path / "b" / "sweep.csv")
    assert a == b


def test_shipped_grid_files_validate_against_their_notebooks():
    """notebooks/sweeps/NN_*.yml: every point resolves against chapter NN's parameters."""
    from conftest import ROOT
    from hyperribbon.compendium import run

    grids = sorted((ROOT / "notebooks" / "sweeps").glob("*.yml"))
    assert grids
    for g in grids:
        grid = sweep.load_grid(g)
        (nb,) = run.select(ROOT, [g.name[:2]])
        for point in grid.points:
            run.resolve_parameters(nb, grid.profile or "ci", point, ROOT)
