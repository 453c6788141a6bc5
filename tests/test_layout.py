"""The package's layers: the base below the science below the compendium machinery.

Imports are read from the source (also those inside functions), so a lazy import of the
machinery from a science module fails here as surely as one at the top.
"""

import pytest

from hyperribbon.compendium.reuse import PACKAGE_DIR, imported_names

BASE = {"paths", "data", "util"}
MODULES = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__")
SCIENCE = [m for m in MODULES if m not in BASE]


def _imports(module: str) -> set[str]:
    path = PACKAGE_DIR / f"{module}.py"
    return imported_names(path.read_text(), f"hyperribbon.{module}")


def test_the_package_is_split_into_base_science_and_compendium():
    assert BASE <= set(MODULES)
    assert (PACKAGE_DIR / "compendium" / "__init__.py").is_file()
    for machinery in ("run", "params", "claims", "provenance", "sweep", "cli"):
        assert not (PACKAGE_DIR / f"{machinery}.py").exists(), \
            f"{machinery}.py belongs in hyperribbon/compendium/"


@pytest.mark.parametrize("module", SCIENCE)
def test_science_never_imports_the_compendium(module):
    bad = {n for n in _imports(module) if n.startswith("hyperribbon.compendium")}
    assert not bad, f"hyperribbon.{module} imports the compendium machinery: {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(BASE))
def test_the_base_imports_only_the_base(module):
    allowed = {"hyperribbon"} | {f"hyperribbon.{b}" for b in BASE}
    # ``from .paths import data_root`` yields hyperribbon.paths and .paths.data_root
    bad = {n for n in _imports(module) if ".".join(n.split(".")[:2]) not in allowed}
    assert not bad, f"hyperribbon.{module} (base) imports {sorted(bad)}"


def test_the_layering_check_sees_imports_inside_functions():
    src = "def f():\n    from .compendium import run\n    import hyperribbon.compendium.claims\n"
    assert imported_names(src, "hyperribbon.vae") == {
        "hyperribbon.compendium", "hyperribbon.compendium.run",
        "hyperribbon.compendium.claims"}

