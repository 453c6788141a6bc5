"""The data registry: lookup, checksums, loaders (IDX and CIFAR pickle), errors."""

import gzip
import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from hyperribbon import data


def idx_bytes(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    return head + arr.astype(np.uint8).tobytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def tiny(tmp_path):
    """A registry with a tiny IDX dataset and a tiny CIFAR-format dataset, made here."""
    rng = np.random.default_rng(0)
    root = tmp_path / "root"
    imgs = rng.integers(0, 256, size=(6, 4, 5), dtype=np.uint8)
    labs = np.array([0, 1, 2, 3, 4, 5], dtype=np.uint8)
    (root / "TINY" / "raw").mkdir(parents=True)
    files = {"imgs": idx_bytes(imgs), "labs": idx_bytes(labs)}
    for fn, b in files.items():
        (root / "TINY" / "raw" / fn).write_bytes(b)
    # CIFAR-10 python pickle batches in the real layout (dict with b"data", b"labels")
    (root / "cifar").mkdir()
    cif = {}
    batches = {}
    for fn, n in (("data_batch_1", 3), ("test_batch", 2)):
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = list(rng.integers(0, 10, size=n))
        batches[fn] = (x, y)
        blob = pickle.dumps({b"batch_label": fn.encode(), b"data": x, b"labels": y,
                             b"filenames": [b"f"] * n})
        (root / "cifar" / fn).write_bytes(blob)
        cif[fn] = {"md5": hashlib.md5(blob).hexdigest()}
    reg = {
        "tiny": {"folder": "TINY/raw", "format": "idx", "classes": 6,
                 "splits": {"train": ["imgs", "labs"]},
                 "files": {k: {"sha256": sha(b)} for k, b in files.items()},
                 "system": [str(tmp_path / "system")], "source": "made in the test"},
        "cifar": {"folder": "cifar", "format": "cifar-pickle", "classes": 10,
                  "splits": {"train": ["data_batch_1"], "test": ["test_batch"]},
                  "files": cif, "system": []},
    }
    return {"root": root, "reg": reg, "imgs": imgs, "labs": labs, "batches": batches}


def test_idx_loader_returns_the_written_arrays(tiny):
    x, y = data.load_images("tiny", "train", tiny["root"], tiny["reg"], download=False)
    assert x.shape == (6, 1, 4, 5) and str(x.dtype) == "torch.float32"
    np.testing.assert_allclose(x[:, 0].numpy() * 255, tiny["imgs"], atol=1e-4)
    assert y.tolist() == tiny["labs"].tolist()


def test_cifar_loader_on_real_format_files(tiny):
    x, y = data.load_images("cifar", "test", tiny["root"], tiny["reg"], download=False)
    raw, labels = tiny["batches"]["test_batch"]
    assert x.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(x.numpy().reshape(2, -1) * 255, raw, atol=1e-4)
    assert y.tolist() == labels
    assert any("test_batch" in k and v.startswith("md5:") for k, v in
               data.verified_files().items())


def test_gz_in_system_location_is_verified_decompressed(tiny, tmp_path):
    sysdir = tmp_path / "system"
    sysdir.mkdir()
    for fn in ("imgs", "labs"):
        src = tiny["root"] / "TINY" / "raw" / fn
        with gzip.open(sysdir / f"{fn}.gz", "wb") as f:
            f.write(src.read_bytes())
    shutil.rmtree(tiny["root"] / "TINY")
    found = data.locate("tiny", "train", tiny["root"], tiny["reg"], download=False)
    assert found["imgs"] == sysdir / "imgs.gz"
    x, _ = data.load_images("tiny", "train", tiny["root"], tiny["reg"], download=False)
    np.testing.assert_allclose(x[:, 0].numpy() * 255, tiny["imgs"], atol=1e-4)


def test_corrupt_file_names_file_and_both_hashes_and_is_left_alone(tiny):
    path = tiny["root"] / "TINY" / "raw" / "imgs"
    corrupted = bytearray(path.read_bytes())
    corrupted[-1] ^= 0xFF
    path.write_bytes(bytes(corrupted))
    want = tiny["reg"]["tiny"]["files"]["imgs"]["sha256"]
    with pytest.raises(data.DataError) as err:
        data.load_images("tiny", "train", tiny["root"], tiny["reg"], download=False)
    msg = str(err.value)
    assert str(path) in msg and want in msg and sha(bytes(corrupted)) in msg
    assert path.read_bytes() == bytes(corrupted)  # nothing destroyed


def test_truncated_gz_is_a_clear_error(tiny, tmp_path):
    sysdir = tmp_path / "system"
    sysdir.mkdir()
    src = (tiny["root"] / "TINY" / "raw" / "imgs").read_bytes()
    (sysdir / "imgs.gz").write_bytes(gzip.compress(src)[:20])
    os.unlink(tiny["root"] / "TINY" / "raw" / "imgs")
    with pytest.raises(data.DataError, match="corrupt or truncated"):
        data.locate("tiny", "train", tiny["root"], tiny["reg"], download=False)


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tiny):
    os.unlink(tiny["root"] / "TINY" / "raw" / "labs")
    with pytest.raises(data.DataError) as err:
        data.locate("tiny", "train", tiny["root"], tiny["reg"], download=False)
    msg = str(err.value)
    assert "missing labs" in msg and "hyperribbon data get tiny" in msg
    assert str(tiny["root"] / "TINY" / "raw" / "labs") in msg


def test_unknown_dataset_and_split(tiny):
    with pytest.raises(data.DataError, match="unknown dataset 'nope'"):
        data.locate("nope", reg=tiny["reg"])
    with pytest.raises(data.DataError, match="no split 'val'"):
        data.locate("tiny", "val", tiny["root"], tiny["reg"])


def test_check_reports_present_missing_corrupt(tiny):
    statuses = {s.name: s.status for s in data.check(tiny["root"], tiny["reg"])}
    assert statuses == {"tiny": "present", "cifar": "present"}
    (tiny["root"] / "cifar" / "test_batch").write_bytes(b"garbage")
    os.unlink(tiny["root"] / "TINY" / "raw" / "imgs")
    statuses = {s.name: s.status for s in data.check(tiny["root"], tiny["reg"])}
    assert statuses == {"tiny": "missing", "cifar": "corrupt"}
    # the verdict comes from the kind of error, not from words in its message or path
    moved = tiny["root"].parent / "missing files here"
    shutil.copytree(tiny["root"], moved)
    statuses = {s.name: s.status for s in data.check(moved, tiny["reg"])}
    assert statuses == {"tiny": "missing", "cifar": "corrupt"}


def test_read_idx_rejects_non_idx(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(data.DataError, match="not an unsigned-byte IDX"):
        data.read_idx(p)
    p.write_bytes(idx_bytes(np.zeros((2, 2)))[:-1])
    with pytest.raises(data.DataError, match="size mismatch"):
        data.read_idx(p)


def test_registry_of_the_compendium_is_complete():
    reg = data.registry()
    assert {"mnist", "fashion-mnist", "cifar10", "xena", "weinreb"} <= set(reg)
    for name, e in reg.items():
        assert e.get("kind") in ("images", "expression"), name
        assert "sizes" in e, f"{name}: sizes missing"
        for key in ("folder", "format", "files", "source", "license", "citation"):
            assert e.get(key), f"{name}: {key} missing"
        if e["kind"] == "images":
            assert set(e["sizes"]) == set(e["splits"]) and e.get("shape")
            for split in e["splits"].values():
                assert set(split) <= set(e["files"])
        else:
            assert all(spec["url"].startswith("https://") for spec in e["files"].values())


def test_registered_sizes_are_the_published_ones():
    # LeCun et al. 1998 and Xiao et al. 2017: 60000 + 10000; Krizhevsky 2009: 50000 + 10000
    assert [data.size(n, s) for n in ("mnist", "fashion-mnist", "cifar10")
            for s in ("train", "test")] == [60000, 10000] * 2 + [50000, 10000]
    with pytest.raises(data.DataError, match="no registered size of split 'val'"):
        data.size("mnist", "val")
    with pytest.raises(data.UnknownDataset, match="unknown dataset 'nope'"):
        data.size("nope", "train")


@pytest.mark.skipif(not os.environ.get("HYPERRIBBON_DATA"),
                    reason="no data root given (CI sets HYPERRIBBON_DATA)")
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_datasets_verify_and_load(name):
    x, y = data.load_images(name, "test", download=False)
    assert x.shape == (data.size(name, "test"), 1, 28, 28) and y.shape == (10000,)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert sorted(set(y.tolist())) == list(range(10))
    assert np.bincount(y.numpy()).min() > 800  # every class present in force


def test_debian_fashion_mnist_matches_the_registry():
    sysdir = Path("/usr/share/datasets/fashion-mnist")
    if not sysdir.exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed here")
    e = data.entry("fashion-mnist")
    for fn, spec in e["files"].items():
        assert data.file_hash(sysdir / f"{fn}.gz") == spec["sha256"]


def test_downloads_allowed_follows_the_environment(monkeypatch):
    monkeypatch.delenv("HYPERRIBBON_DOWNLOAD", raising=False)
    assert data.downloads_allowed()
    monkeypatch.setenv("HYPERRIBBON_DOWNLOAD", "1")
    assert data.downloads_allowed()
    monkeypatch.setenv("HYPERRIBBON_DOWNLOAD", "0")
    assert not data.downloads_allowed()
    with pytest.raises(data.DataMissing):  # and a missing set is then an error, no fetch
        data.locate("mnist", root=Path("/nonexistent-root"))
