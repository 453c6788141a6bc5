"""Every chapter notebook: its form, the smoke profile, the ci profile and its claims."""

import re

import pytest
import yaml

from conftest import ROOT
from hyperribbon.compendium import cli, run

NOTEBOOKS = run.notebooks(ROOT)
IDS = sorted(NOTEBOOKS)


def test_toc_lists_exactly_the_notebooks():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*book/papers/(\d\d_\w+)", toc))
    assert listed == {p.stem for p in NOTEBOOKS.values()}


def test_profiles_cover_the_notebooks():
    profiles = yaml.safe_load((ROOT / "notebooks" / "profiles.yml").read_text()) or {}
    for p in NOTEBOOKS.values():
        assert p.stem in profiles, f"{p.stem} missing from notebooks/profiles.yml"
        assert profiles[p.stem].get("claims"), f"{p.stem}: no expected claims listed"
    assert set(profiles) <= {p.stem for p in NOTEBOOKS.values()}


@pytest.mark.parametrize("nid", IDS)
def test_notebook_form(nid):
    path = NOTEBOOKS[nid]
    text = path.read_text()
    spec = run.spec(path)  # exactly one parameters cell, every line with a valid spec
    assert spec, f"{path.name}: empty parameters cell"
    for p in spec.values():
        assert p.help, f"{path.name}: parameter {p.name} has no help text"
    assert "sys.path" not in text, f"{path.name} edits sys.path"
    assert not re.search(r"matplotlib\.use\(|%matplotlib|MPLBACKEND", text), \
        f"{path.name} sets a matplotlib backend"
    for prof in run.PROFILES:
        run.resolve_parameters(path, prof, root=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("nid", IDS)
def test_notebook_runs_under_smoke_deterministically(nid, tmp_path):
    """Runs under smoke; the same point run twice on CPU gives identical claim values."""
    first = run.execute(NOTEBOOKS[nid], "smoke", out_dir=tmp_path / "a", root=ROOT)
    second = run.execute(NOTEBOOKS[nid], "smoke", out_dir=tmp_path / "b", root=ROOT)
    assert first.status == second.status == "ok"
    assert first.claims, "the notebook recorded no claims"
    assert [(c["name"], c["value"]) for c in first.claims] == \
        [(c["name"], c["value"]) for c in second.claims]


@pytest.mark.slow
def test_notebooks_run_under_ci_and_claims_hold(ci_notebooks, capsys):
    assert {r.notebook for r in ci_notebooks} == {p.stem for p in NOTEBOOKS.values()}
    code = cli.main(["claims", "--check"])
    out = capsys.readouterr()
    assert code == 0, out.err


def test_jupytext_pairs_the_notebooks_as_py_percent():
    from jupytext.config import (
        find_jupytext_configuration_file,
        load_jupytext_configuration_file,
    )

    path = find_jupytext_configuration_file(str(ROOT / "notebooks"))
    assert path == str(ROOT / ".jupytext.toml")
    assert load_jupytext_configuration_file(path).formats == ["ipynb,py:percent"]
