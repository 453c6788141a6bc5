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


def test_torch_threads_sets_and_restores(monkeypatch):
    before = torch.get_num_threads()
    with util.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), util.torch_threads(1):  # restored on an error too
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with util.torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads = 0"), util.torch_threads(0):
        pass


def test_torch_threads_as_a_statement_holds_until_changed():
    before = torch.get_num_threads()
    try:
        util.torch_threads(1)
        assert torch.get_num_threads() == 1
        util.torch_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_atomic_path_replaces_only_on_success(tmp_path):
    dest = tmp_path / "sub" / "table.csv"
    with util.atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp != dest
        tmp.write_text("new")
        assert not dest.exists()  # nothing visible before the block ends
    assert dest.read_text() == "new"
    with pytest.raises(OSError), util.atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise OSError("disk full")
    assert dest.read_text() == "new"  # the old file stands, the temporary is gone
    assert [p.name for p in dest.parent.iterdir()] == ["table.csv"]


@pytest.mark.parametrize("text, fragment", [
    (None, "no such file"), ("a: [1\n", "not valid YAML at line"),
    ("- 1\n", "expected a mapping, found a list"), (b"\xff\xfe", "cannot be read")])
def test_read_yaml_names_the_file_and_the_problem(tmp_path, text, fragment):
    f = tmp_path / "x.yml"
    if isinstance(text, bytes):
        f.write_bytes(text)
    elif text is not None:
        f.write_text(text)
    with pytest.raises(util.InputError, match=fragment) as err:
        util.read_yaml(f)
    assert str(err.value).startswith(str(f)) and "\n" not in str(err.value)
    f.write_text("")
    assert util.read_yaml(f) == {}


def test_cache_dir_lives_in_paths():
    from hyperribbon import paths

    assert util.cache_dir is paths.cache_dir
