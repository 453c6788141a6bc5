"""Every mistake at the command line: one line naming the culprit, exit status 2, no
traceback, and nothing started."""

import pytest

from conftest import ROOT
from hyperribbon.compendium import cli


@pytest.fixture
def files(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_REGISTRY", str(ROOT / "data" / "datasets.yml"))
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("n: [1, 2\n")
    a_list = tmp_path / "list.yml"
    a_list.write_text("- 1\n- 2\n")
    folder = tmp_path / "folder.yml"
    folder.mkdir()
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"\xff\xfe\x00n: 1")
    return {"missing": tmp_path / "nope.yml", "bad_yaml": bad_yaml, "list": a_list,
            "folder": folder, "binary": binary}


CASES = [
    (["run", "01", "-f", "{missing}"], ["nope.yml", "no such file"]),
    (["run", "01", "-f", "{folder}"], ["folder.yml", "cannot be read"]),
    (["run", "01", "-f", "{binary}"], ["binary.yml", "cannot be read"]),
    (["run", "01", "-f", "{bad_yaml}"], ["bad.yml", "not valid YAML", "line"]),
    (["run", "01", "-f", "{list}"], ["list.yml", "expected a mapping"]),
    (["run", "01", "-p", "nope=1"], ["unknown parameter 'nope'"]),
    (["run", "99"], ["no notebook '99'", "01 (01_toy)"]),
    (["run", "--profile", "fast", "01"], ["'fast'", "smoke"]),
    (["sweep", "01", "{missing}"], ["grid file", "nope.yml", "no such file"]),
    (["sweep", "01", "{bad_yaml}"], ["grid file", "bad.yml", "not valid YAML"]),
    (["sweep", "01", "{list}"], ["grid file", "list.yml", "expected a grid"]),
    (["sweep", "99", "{list}"], ["no notebook '99'"]),
    (["sweep", "01", "{missing}", "--profile", "fast"], ["'fast'"]),
    (["sweep", "01", "{list}", "--jobs", "0"], ["--jobs must be >= 1"]),
    (["sweep", "01", "{list}", "--jobs", "2", "--scheduler", "tcp://h:1"],
     ["either --scheduler", "not both"]),
    (["train", "{missing}"], ["run grid", "nope.yml", "no such file"]),
    (["train", "{bad_yaml}"], ["run grid", "bad.yml", "not valid YAML"]),
    (["train", "{list}"], ["list.yml", "'runs' must be a list of mappings"]),
    (["train", "{list}", "--jobs", "0"], ["--jobs must be >= 1"]),
    (["claims", "--dir", "{missing}"], ["nope.yml", "no such folder"]),
    (["data", "check", "nope"], ["unknown dataset 'nope'", "mnist"]),
    (["data", "get", "nope"], ["unknown dataset 'nope'"]),
    (["data", "hash", "nope"], ["unknown dataset 'nope'"]),
    (["nope"], ["invalid choice: 'nope'"]),
]


@pytest.mark.parametrize("argv, fragments", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_mistake_is_one_line_and_exit_2(files, argv, fragments, capsys, monkeypatch):
    monkeypatch.setattr("papermill.execute_notebook",
                        lambda *a, **k: pytest.fail("a kernel was started"))
    code = cli.main([a.format(**files) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


def test_a_missing_data_registry_is_named(toy, capsys):
    assert cli.main(["data", "check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "datasets.yml: no such file" in err and len(err.splitlines()) == 1


def test_profiles_yml_that_is_not_yaml_is_named(toy, capsys):
    (toy / "notebooks" / "profiles.yml").write_text("01_toy: {ci: [\n")
    assert cli.main(["run", "01", "--out", str(toy / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "profiles.yml" in err and "not valid YAML" in err and len(err.splitlines()) == 1


def test_a_profile_unknown_to_a_grid_file_is_named(toy, tmp_path, capsys):
    g = tmp_path / "g.yml"
    g.write_text("profile: fast\ngrid: {n: [3]}\n")
    assert cli.main(["sweep", "01", str(g), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown profile 'fast'" in err and len(err.splitlines()) == 1
