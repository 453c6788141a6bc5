"""Claims: relations, records from notebook outputs, the table and its check."""

import json

import nbformat
import pytest

from hyperribbon.compendium.claims import (
    CLAIM_MIME,
    claims_in_notebook,
    evaluate,
    load_status,
    problems,
    table,
)


@pytest.mark.parametrize("value, rel, target, ok", [
    (5, ">=", 5, True), (4.999, ">=", 5, False), (5, ">", 5, False), (1e-3, "<", 1e-2, True),
    (2, "<=", 2, True), (True, "==", True, True), (0.5, "in", [0, 1], True),
    (1.5, "in", [0, 1], False), (float("nan"), "<", 1, False), (float("nan"), ">", 1, False),
])
def test_evaluate(value, rel, target, ok):
    assert evaluate(value, rel, target) is ok


def test_evaluate_rejects_unknown_relation_and_bad_interval():
    with pytest.raises(ValueError, match="unknown relation"):
        evaluate(1, "~", 1)
    with pytest.raises(ValueError, match=r"\[lo, hi\]"):
        evaluate(1, "in", 1)


def _nb(path, claims, profile="ci"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={CLAIM_MIME: c})
                    for c in claims]
    nb.cells.append(cell)
    nb.metadata["hyperribbon"] = {"profile": profile}
    nbformat.write(nb, str(path))
    return path


def rec(name, value, passed):
    return {"name": name, "value": value, "relation": ">=", "target": 1, "ref": "r",
            "detail": "", "passed": passed}


def test_records_are_read_back_from_outputs(tmp_path):
    p = _nb(tmp_path / "01_a.ipynb", [rec("a", 2, True), rec("b", 0, False)])
    got = claims_in_notebook(nbformat.read(str(p), as_version=4))
    assert [c["name"] for c in got] == ["a", "b"]


def test_table_statuses_and_check(tmp_path):
    p = _nb(tmp_path / "01_a.ipynb", [rec("ok", 2, True), rec("bad", 0, False),
                                      rec("declared", 0, False), rec("fixed", 3, True)])
    expected = {"01_a": ["ok", "bad", "declared", "fixed", "absent"]}
    status = {"declared": {"reason": "too small"}, "fixed": {"reason": "was failing"}}
    rows = {r.name: r for r in table([p], expected, status)}
    assert rows["ok"].status == "PASS"
    assert rows["bad"].status == "FAIL"
    assert rows["declared"].status == "FAILS (declared)" and rows["declared"].reason == "too small"
    assert rows["fixed"].status == "NOW PASSES"
    assert rows["absent"].status == "MISSING"
    assert {r.name for r in problems(rows.values())} == {"bad", "fixed", "absent"}


def test_smoke_runs_are_not_checked(tmp_path):
    p = _nb(tmp_path / "01_a.ipynb", [rec("bad", 0, False)], profile="smoke")
    assert problems(table([p], {}, {})) == []


def test_load_status(tmp_path):
    f = tmp_path / "s.yml"
    f.write_text("a: {reason: why, tried: x}\nb: just a reason\n")
    assert load_status(f) == {"a": {"reason": "why", "tried": "x"},
                              "b": {"reason": "just a reason"}}
    f.write_text("a: {tried: x}\n")
    with pytest.raises(ValueError, match="needs at least a 'reason'"):
        load_status(f)
    assert load_status(tmp_path / "none.yml") == {}


def test_claim_in_a_kernel_emits_record_and_glue(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    published = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append(data))
    from hyperribbon.compendium.claims import claim

    assert claim("toy_x", 0.25, "in", [0, 1], ref="eq. 3") is True
    recs = [d[CLAIM_MIME] for d in published if CLAIM_MIME in d]
    assert recs == [{"name": "toy_x", "value": 0.25, "relation": "in", "target": [0, 1],
                     "ref": "eq. 3", "detail": "", "passed": True, "kind": "claim"}]
    assert any("PASS" in d.get("text/markdown", "") for d in published)
    json.dumps(recs)  # serialisable
    with pytest.raises(ValueError, match="lower-case"):
        claim("Bad Name", 1, ">=", 0, ref="x")
    with pytest.raises(ValueError, match="use one of claim, diagnostic"):
        claim("toy_y", 1, ">=", 0, ref="x", kind="check")
    published.clear()
    assert claim("toy_acc", 0.6, "in", [0.15, 0.5], ref="sampler", kind="diagnostic") is False
    assert [d[CLAIM_MIME]["kind"] for d in published if CLAIM_MIME in d] == ["diagnostic"]
    assert any("**Diagnostic `toy_acc`**" in d.get("text/markdown", "") for d in published)


def test_diagnostics_are_a_kind_of_their_own_in_the_table_and_on_the_page(tmp_path):
    from hyperribbon.compendium.book import claims_page

    old = rec("old", 2, True)  # a record written before kinds existed is a claim
    diag = {**rec("acc", 0, False), "kind": "diagnostic"}
    p = _nb(tmp_path / "01_a.ipynb", [old, {**rec("new", 2, True), "kind": "claim"}, diag])
    rows = table([p], {}, {})
    assert {r.name: r.kind for r in rows} == {"old": "claim", "new": "claim",
                                              "acc": "diagnostic"}
    assert [r.name for r in problems(rows)] == ["acc"]  # a failing diagnostic still fails
    page = claims_page(rows)
    head, diagnostics = page.split("## Diagnostics")
    assert "`old`" in head and "`new`" in head and "`acc`" not in head
    assert "`acc`" in diagnostics and "`old`" not in diagnostics
    assert "## Diagnostics" not in claims_page(rows[:2])


def test_mean_bound_against_tabulated_t_and_coverage():
    import numpy as np

    from hyperribbon.compendium.claims import mean_bound

    # t_{0.975, 4} = 2.7764 (standard tables); x = 1..5: mean 3, s = √2.5
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    half = 2.7764 * (2.5 ** 0.5) / 5 ** 0.5
    assert abs(mean_bound(x, "lower") - (3 - half)) < 1e-3
    assert abs(mean_bound(x, "upper") - (3 + half)) < 1e-3
    assert mean_bound([1.0, float("nan")], "lower") != mean_bound([1.0, float("nan")], "lower")
    # coverage: the lower bound lies below the true mean in ≈ 97.5 % of normal samples
    rng = np.random.default_rng(0)
    below = np.mean([mean_bound(rng.normal(0.3, 1.0, 8), "lower") < 0.3 for _ in range(4000)])
    assert abs(below - 0.975) < 0.01
    with pytest.raises(ValueError, match="side"):
        mean_bound(x, "both")
    with pytest.raises(ValueError, match="level"):
        mean_bound(x, "lower", 1.5)


@pytest.mark.parametrize("tight", [True, False])
def test_glue_figure_publishes_an_image_lays_out_and_closes(monkeypatch, tight):
    import matplotlib
    import matplotlib.pyplot as plt
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats

    from hyperribbon.compendium.claims import glue_figure

    shell = InteractiveShell.instance()
    select_figure_formats(shell, {"png"})  # as the inline backend of a kernel does
    published = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append((data, metadata)))
    fig, ax = plt.subplots()
    ax.set_ylabel("a label\nover\nfour lines")
    glue_figure("toy-fig", fig, tight=tight)
    assert not plt.fignum_exists(fig.number)  # closed
    default_left = matplotlib.rcParams["figure.subplot.left"]
    assert bool(fig.subplotpars.left != default_left) is tight  # tight_layout moved axes
    images = [(d, m) for d, m in published if "application/papermill.record/image/png" in d]
    assert len(images) == 1
    assert images[0][1]["scrapbook"]["name"] == "toy-fig"


def test_mean_se_by_hand_and_against_the_spread_of_means():
    import numpy as np

    from hyperribbon.compendium.claims import mean_se

    # x = 1..5: mean 3, s² = 10/4, se = √(2.5/5)
    assert mean_se([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((3.0, 0.5 ** 0.5))
    assert mean_se([[1.0, float("nan")], [3.0, 5.0]]) == pytest.approx((3.0, 2 / 3 ** 0.5))
    m, se = mean_se([4.0])
    assert m == 4.0 and np.isnan(se)
    # se estimates the standard deviation of the mean over repeated samples: σ/√n
    rng = np.random.default_rng(1)
    samples = rng.normal(0.0, 2.0, (3000, 25))
    ses = [mean_se(s)[1] for s in samples]
    assert np.mean(ses) == pytest.approx(2.0 / 5, rel=0.02)
    assert samples.mean(1).std() == pytest.approx(2.0 / 5, rel=0.05)


def test_glue_values_glues_each_as_a_plain_number(monkeypatch):
    import numpy as np
    import torch

    from hyperribbon.compendium import claims

    glued = []
    monkeypatch.setattr(claims, "glue", lambda name, v, display: glued.append((name, v,
                                                                               display)))
    claims.glue_values({"a-x": np.float64(0.25), "a-n": np.int64(3), "a-t": torch.tensor(2.5),
                        "a-s": "mnist"})
    assert glued == [("a-x", 0.25, False), ("a-n", 3, False), ("a-t", 2.5, False),
                     ("a-s", "mnist", False)]
    assert [type(v) for _, v, _ in glued] == [float, int, float, str]


def test_errorbar_mean_se_draws_what_mean_se_computes():
    import matplotlib.pyplot as plt
    import numpy as np

    from hyperribbon.compendium.claims import errorbar_mean_se

    samples = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, np.nan]])
    fig, ax = plt.subplots()
    bars = errorbar_mean_se(ax, [0, 1], samples, fmt="o")
    line, _, (segments,) = bars.lines
    assert np.allclose(line.get_ydata(), [2.0, 3.0])
    # row 1: s = 1, se = 1/√3; row 2 (NaN dropped): s = √2, se = √2/√2 = 1
    half = [(seg[1, 1] - seg[0, 1]) / 2 for seg in segments.get_segments()]
    assert np.allclose(half, [1 / np.sqrt(3), 1.0])
    with pytest.raises(ValueError, match="samples"):
        errorbar_mean_se(ax, [0, 1, 2], samples)
    plt.close(fig)
