"""The atlas's spectrum records: normalisation, the fitted decay rate, the record a
notebook emits, reading it back, and the page with one curve per spectrum."""

import re

import nbformat
import numpy as np
import pytest

from hyperribbon.compendium.atlas import (
    SPECTRUM_MIME,
    atlas_page,
    curve_id,
    decay_rate,
    make_spectrum,
    normalise,
    record_spectrum,
    spectra_in_notebook,
)


@pytest.mark.parametrize("q", [0.5, 0.1, 0.9, 1e-3])
def test_a_geometric_spectrum_gives_its_rate(q):
    values = q ** np.arange(12)
    assert decay_rate(values) == pytest.approx(-np.log10(q), rel=1e-12)
    # order, scale and round-off zeros do not change it
    shuffled = np.random.default_rng(0).permutation(values) * 37.0
    assert decay_rate(np.append(shuffled, [0.0, -1e-17])) == pytest.approx(-np.log10(q))


def test_rate_is_the_least_squares_slope_by_hand():
    # log10 values 0, -1, -3: slope through (0,0), (1,-1), (2,-3) is -1.5
    assert decay_rate([1.0, 0.1, 0.001]) == pytest.approx(1.5)


def test_normalise_sorts_scales_and_counts_what_it_drops():
    v, dropped = normalise([2.0, 8.0, 0.0, 4.0, -1.0])
    np.testing.assert_allclose(v, [1.0, 0.5, 0.25])
    assert dropped == 2
    with pytest.raises(ValueError, match="two positive"):
        normalise([1.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        normalise([1.0, np.nan])


def test_spectrum_fields_are_checked():
    s = make_spectrum("ch09-x", [1.0, 1e-6], "widths", "ODE")
    assert s.decades == pytest.approx(6.0)
    with pytest.raises(ValueError, match="label"):
        make_spectrum("ch09-x", [1.0, 0.1], " ", "ODE")
    with pytest.raises(ValueError, match="name"):
        make_spectrum("bad name", [1.0, 0.1], "w", "ODE")


def test_record_in_a_kernel_is_read_back_from_outputs_and_metadata(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    published = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append(data))
    record_spectrum("ch09-widths", [1.0, 0.1, 0.01], "widths of a toy", "toy model")
    (data,) = published
    assert "2 decades" in data["text/markdown"] and "1 decades per index" in data["text/plain"]
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
    nb.cells.append(cell)
    (s,) = spectra_in_notebook(nb)
    assert (s.name, s.values, s.model_class) == ("ch09-widths", (1.0, 0.1, 0.01), "toy model")
    nb.metadata["hyperribbon"] = {"spectra": [data[SPECTRUM_MIME]] * 2}
    assert len(spectra_in_notebook(nb)) == 2  # the runner's copy in the metadata wins


def test_page_has_one_curve_per_spectrum_and_names_chapters_without_one():
    a = make_spectrum("ch01-fisher", 10.0 ** -np.arange(8.0), "Fisher", "ODE")
    b = make_spectrum("ch02-widths", 0.5 ** np.arange(6.0), "widths", "ODE")
    page = atlas_page({"01_a": [a], "02_b": [b], "03_c": []})
    ids = re.findall(r'<g id="(atlas-curve-[^"]+)"', page)
    assert ids == [curve_id("01_a", "ch01-fisher"), curve_id("02_b", "ch02-widths")]
    assert "| 7 | 1 |" in page  # decades and rate of 10^-k
    assert "[03_c](papers/03_c.ipynb)" in page.split("without a spectrum")[1]
    # the inline SVG is one HTML block: no blank line inside the figure
    fig = page[page.index("<figure"):page.index("</figure>")]
    assert "\n\n" not in fig
