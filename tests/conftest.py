"""Shared fixtures: the compendium root, a toy compendium, executed ci notebooks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def have_data(name: str) -> bool:
    """Whether the train and test splits of a registered image dataset are present."""
    from hyperribbon import data

    try:
        data.locate(name, "train")
        data.locate(name, "test")
        return True
    except data.DataError:
        return False


#: Skip a test that trains on Fashion-MNIST where it is not present.
needs_fashion_mnist = pytest.mark.skipif(not have_data("fashion-mnist"),
                                         reason="Fashion-MNIST is not present")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def toy(tmp_path, monkeypatch) -> Path:
    """A copy of a tiny compendium (one toy notebook) with HYPERRIBBON_ROOT pointing at it."""
    root = tmp_path / "toy"
    shutil.copytree(FIXTURES / "toy", root)
    monkeypatch.setenv("HYPERRIBBON_ROOT", str(root))
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-tensor tests: extra threads only add
    overhead (and contend on a shared machine). Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def ci_notebooks() -> list:
    """Every chapter notebook executed under the `ci` profile into book/papers (reused when
    notebook, package, profile and parameters are unchanged)."""
    from hyperribbon.compendium import run

    old = os.environ.pop("HYPERRIBBON_ROOT", None)
    try:
        return run.run(None, "ci") if run.notebooks(ROOT) else []
    finally:
        if old is not None:
            os.environ["HYPERRIBBON_ROOT"] = old
