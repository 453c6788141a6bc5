"""util: device choice, progress bars, cache folder."""

import pytest
import torch

from hyperribbon import util


def test_resolve_device():
    assert util.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert util.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            util.resolve_device("cuda")


def test_progress_is_quiet_in_ci_and_under_the_runner(monkeypatch, capsys):
    monkeypatch.setenv("CI", "1")
    assert not util.interactive()
    assert list(util.progress(range(3), desc="x")) == [0, 1, 2]
    monkeypatch.delenv("CI")
    monkeypatch.setenv("HYPERRIBBON_PROGRESS", "0")
    assert not util.interactive()
    assert list(util.progress(range(3))) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HYPERRIBBON_CACHE", str(tmp_path / "c"))
    p = util.cache_dir("ch03", "weights")
    assert p == tmp_path / "c" / "ch03" / "weights" and p.is_dir()
