"""The reuse key: a notebook re-runs when what it depends on changes, and only then."""

import shutil

from conftest import ROOT
from hyperribbon.compendium import run
from hyperribbon.compendium.provenance import PROVENANCE_SOURCE
from hyperribbon.compendium.reuse import (
    PACKAGE_DIR,
    dependencies,
    imported_names,
    module_file,
    source_key,
)

NOTEBOOKS = run.notebooks(ROOT)


def _keys(pkg_dir) -> dict[str, str]:
    return {nid: source_key(p.read_text(), "ci", {"seed": 0}, {}, (PROVENANCE_SOURCE,),
                            pkg_dir=pkg_dir) for nid, p in NOTEBOOKS.items()}


def test_relative_and_absolute_imports_are_resolved():
    src = ("import numpy\nimport hyperribbon.fisher\nfrom hyperribbon import odes, vae\n"
           "from .data import entry\nfrom .. import util\n")
    names = imported_names(src, "hyperribbon.compendium.run")
    assert {"hyperribbon.fisher", "hyperribbon.odes", "hyperribbon.vae",
            "hyperribbon.compendium.data", "hyperribbon"} <= names
    assert "numpy" not in names
    assert module_file("hyperribbon.vae") == PACKAGE_DIR / "vae.py"
    assert module_file("hyperribbon.compendium") == PACKAGE_DIR / "compendium" / "__init__.py"
    assert module_file("hyperribbon.vae.curvature_of_nothing") is None


def test_dependencies_follow_the_package_transitively():
    deps = dependencies("from hyperribbon.jeffreys import study\n")
    rel = {p.relative_to(PACKAGE_DIR).as_posix() for p in deps}
    # jeffreys imports sampling and scores at the top, fisher and data inside functions
    assert {"__init__.py", "jeffreys.py", "scores.py", "sampling.py", "fisher.py",
            "data.py", "paths.py"} <= rel
    assert "vae.py" not in rel and not any(r.startswith("compendium/") for r in rel)


def test_editing_chapter_7s_module_reruns_chapter_7_only(tmp_path):
    assert "07" in NOTEBOOKS
    pkg = tmp_path / "hyperribbon"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = _keys(pkg)
    assert before == _keys(PACKAGE_DIR)  # the key does not depend on where the package is
    vae = pkg / "vae.py"
    vae.write_text(vae.read_text() + "\n# an edit\n")
    after = _keys(pkg)
    changed = {nid for nid in NOTEBOOKS if before[nid] != after[nid]}
    assert changed == {"07"}


def test_editing_the_claims_module_reruns_every_chapter(tmp_path):
    pkg = tmp_path / "hyperribbon"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = _keys(pkg)
    claims = pkg / "compendium" / "claims.py"
    claims.write_text(claims.read_text() + "\n# an edit\n")
    after = _keys(pkg)
    assert all(before[n] != after[n] for n in NOTEBOOKS)


def test_profile_parameters_and_data_checksums_enter_the_key():
    src = "from hyperribbon import fisher\n"
    base = source_key(src, "ci", {"seed": 0}, {})
    assert source_key(src, "smoke", {"seed": 0}, {}) != base
    assert source_key(src, "ci", {"seed": 1}, {}) != base
    assert source_key(src, "ci", {"seed": 0}, {"mnist": {"f": {"sha256": "0"}}}) != base
    assert source_key(src, "ci", {"seed": 0}, {}) == base


def test_run_key_names_the_registered_datasets_in_the_parameters():
    assert "mnist" in run.dataset_checksums({"dataset": "mnist", "seed": 0})
    assert run.dataset_checksums({"dataset": "synthetic", "names": ["x"]}) == {}
