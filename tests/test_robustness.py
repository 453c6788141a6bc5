"""The robustness page: claims across the seeds of a sweep."""

import pytest

from hyperribbon.compendium import robustness as R
from hyperribbon.compendium.claims import Row


def rec(name, seed, value, passed, kind="claim", notebook="01_toy"):
    return R.SeedRecord(notebook, name, kind, seed, value, passed, "ci")


def test_summarise_counts_passes_orders_seeds_and_finds_unstable_verdicts():
    recs = [rec("a", 2, 3.0, True), rec("a", 0, 1.0, False), rec("a", 1, 2.0, True),
            rec("b", 1, 5.0, True), rec("b", 0, 4.0, True),
            rec("c", 0, True, True, kind="diagnostic"), rec("c", 1, True, True, "diagnostic")]
    a, b, c = R.summarise(recs)
    assert (a.seeds, a.values, a.n_pass, a.unstable) == ([0, 1, 2], [1.0, 2.0, 3.0], 2, True)
    assert a.stats() == (1.0, 2.0, 3.0)
    assert (b.n_pass, b.unstable, b.stats()) == (2, False, (4.0, 4.5, 5.0))
    assert c.kind == "diagnostic" and c.stats() is None  # booleans have no median
    all_fail = R.summarise([rec("d", 0, 0.0, False), rec("d", 1, 0.0, False)])[0]
    assert not all_fail.unstable  # failing at every seed is stable (and declared, or a bug)


def test_page_and_claims_table_mark_an_unstable_claim():
    recs = [rec("a", 0, 1.0, False), rec("a", 1, 2.0, True), rec("b", 0, 4.0, True),
            rec("b", 1, 5.0, True)]
    s = R.summarise(recs)
    page = R.robustness_page(s)
    assert "## 01_toy" in page and "1 of 2 claims and diagnostics pass at every seed" in page
    row_a = next(line for line in page.splitlines() if line.startswith("| `a`"))
    assert "| 1 ✗ | 2 |" in row_a and "1 of 2 **unstable**" in row_a
    assert "| 4 | 4.5 | 5 | 2 of 2 |" in page
    rows = [Row("01_toy", "a", 2.0, ">=", 1.5, True, "ci"),
            Row("01_toy", "b", 5.0, ">=", 1, True, "ci", reason="declared")]
    R.mark_unstable(rows, s)
    assert rows[0].reason.startswith("verdict changes with the seed (1 of 2 seeds pass")
    assert rows[1].reason == "declared"
    assert "No seed sweeps have been run yet" in R.robustness_page([])


@pytest.mark.slow
def test_page_from_a_two_seed_smoke_sweep(toy, tmp_path):
    """The generation end to end: a two-seed sweep of the toy notebook, read back."""
    from hyperribbon.compendium import sweep

    grid = toy / "notebooks" / "sweeps" / "01_seeds.yml"
    grid.parent.mkdir()
    grid.write_text("profile: smoke\ngrid:\n  seed: [0, 1]\n")
    sweep.sweep("01", grid)
    (folder,) = R.sweep_folders(toy)
    assert folder == toy / "sweeps" / "01_toy-01_seeds"
    page = R.write_page(tmp_path / "robustness.md").read_text()
    assert "Seeds 0, 1 (profile smoke): 2 of 2 claims and diagnostics pass" in page
    assert "| `toy_value` | claim | 3 | 3 | 3 | 3 | 3 | 2 of 2 |" in page  # smoke: n = 3


@pytest.mark.slow
def test_page_from_a_two_seed_smoke_sweep_of_chapter_2(tmp_path):
    """CI's check of the page on a real chapter: chapter 2 at seeds 0 and 1 (smoke)."""
    from conftest import ROOT
    from hyperribbon.compendium import run, sweep

    grid = tmp_path / "02_seeds.yml"
    grid.write_text("profile: smoke\ngrid:\n  seed: [0, 1]\n")
    out = tmp_path / "02_chebyshev-02_seeds"
    sweep.sweep("02", grid, out=out)
    (s,) = [s for s in R.summarise(R.collect([out])) if s.name == "cheb_span_exp"]
    assert s.notebook == "02_chebyshev" and s.seeds == [0, 1] and s.profile == "smoke"
    assert s.values[0] != s.values[1]  # the seed changes the draws
    page = R.write_page(tmp_path / "robustness.md", [out]).read_text()
    assert all(f"| `{name}` |" in page for name in run.expected_claims(ROOT)["02_chebyshev"])
