"""paths: the compendium root, the data root and the cache, and their overrides."""

import pytest

from conftest import ROOT
from hyperribbon import paths


def test_repo_root_is_found_upward_and_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HYPERRIBBON_ROOT", raising=False)
    assert paths.repo_root(ROOT / "src" / "hyperribbon") == ROOT
    other = tmp_path / "c"
    (other / "notebooks").mkdir(parents=True)
    (other / "notebooks" / "profiles.yml").write_text("{}\n")
    assert paths.repo_root(other / "notebooks") == other
    monkeypatch.setenv("HYPERRIBBON_ROOT", str(other))
    assert paths.repo_root(ROOT) == other


def test_repo_root_missing_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_ROOT", str(tmp_path))
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "a" / "b" / "paths.py"))
    with pytest.raises(paths.RootNotFound, match="HYPERRIBBON_ROOT"):
        paths.repo_root(tmp_path)


def test_data_root_default_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("HYPERRIBBON_DATA", raising=False)
    monkeypatch.setenv("HYPERRIBBON_ROOT", str(ROOT))
    assert paths.data_root() == ROOT / "data" / "raw"
    monkeypatch.setenv("HYPERRIBBON_DATA", str(tmp_path))
    assert paths.data_root() == tmp_path


def test_cache_dir_is_created_under_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_CACHE", str(tmp_path / "c"))
    p = paths.cache_dir("ch07", "vae")
    assert p == tmp_path / "c" / "ch07" / "vae" and p.is_dir()
