"""What the book shows of a chapter: folded code, the claims card, anchors, tallies; and
the book's own MathJax and plotly.js (no CDN)."""

import io
import json
import tarfile

import pytest

from hyperribbon.compendium import assets
from hyperribbon.compendium.book import (
    claims_card,
    fold_tags,
    prepare_chapter,
    tally,
)
from hyperribbon.compendium.claims import CLAIM_MIME, Row
from hyperribbon.compendium.provenance import PROVENANCE_MIME
from hyperribbon.util import InputError


def code(source, tags=(), outputs=()):
    return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)},
            "outputs": list(outputs), "execution_count": 1}


def test_plotting_and_injected_parameters_cells_are_folded_computation_is_not():
    assert "hide-input" in fold_tags(code("fig, ax = plt.subplots()\nglue_figure('a', fig)"))
    assert "hide-input" in fold_tags(code("glue_3d('a', xyz)"))
    assert fold_tags(code("n = 3\n", ["injected-parameters"])) == [
        "injected-parameters", "hide-input"]
    assert fold_tags(code("res = study(n)")) == []
    assert fold_tags(code("x = 1", ["parameters"])) == ["parameters"]  # the defaults stay
    assert fold_tags(code("glue_figure(1)", ["remove-input"])) == ["remove-input"]
    assert fold_tags({"cell_type": "markdown", "source": "glue_figure(", "metadata": {}}) == []


ROWS = [Row("01_a", "x_big", 6.0, ">=", 5, True, "ci", status="PASS"),
        Row("01_a", "x_small", 0.5, "<", 0.1, False, "ci", status="FAILS (declared)",
            reason="too few samples"),
        Row("01_a", "x_gone", None, "", None, None, "ci", status="MISSING"),
        Row("02_b", "y", 1.0, ">=", 0, True, "ci", status="PASS")]


def test_tally_counts_each_status_in_order():
    assert tally(ROWS[:3]) == "1 PASS · 1 FAILS (declared) · 1 MISSING"
    assert tally([]) == "no claims"


def test_card_lists_the_chapters_claims_linked_where_computed():
    card = claims_card("01_a", ROWS)
    assert card.count("<tr data-claim=") == 3 and "y</code>" not in card
    assert '<a href="#claim-x_big"><code>x_big</code></a>' in card
    assert 'href="#claim-x_gone"' not in card  # never computed: nothing to link to
    assert 'title="too few samples">FAILS (declared)' in card
    assert "&gt;= 5" in card and "1 PASS · 1 FAILS (declared) · 1 MISSING" in card


def test_prepared_chapter_opens_with_the_card_and_drops_record_outputs():
    rec = {"name": "x_big", "value": 6.0}
    nb = {"cells": [
        {"cell_type": "markdown", "source": "# Title\nThe question.", "metadata": {}},
        code("n = 3", ["injected-parameters"]),
        code("claim('x_big', ...)", outputs=[{"output_type": "display_data", "metadata": {},
                                              "data": {"text/markdown": "PASS",
                                                       CLAIM_MIME: rec}}]),
        code("show_provenance()", ["remove-input"], outputs=[
            {"output_type": "display_data", "metadata": {},
             "data": {PROVENANCE_MIME: {}}}])],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    before = json.dumps(nb)
    out = prepare_chapter(nb, "01_a", ROWS)
    assert json.dumps(nb) == before  # the executed notebook itself is left alone
    kinds = [(c["cell_type"], "".join(c["source"])[:12]) for c in out["cells"]]
    assert kinds[0] == ("markdown", "# Title")
    assert 'class="hr-claims-card"' in out["cells"][1]["source"]
    assert kinds[2] == ("markdown", "The question")
    assert "hide-input" in out["cells"][3]["metadata"]["tags"]
    assert out["cells"][4]["source"] == '<span id="claim-x_big"></span>'
    assert out["cells"][5]["outputs"][0]["data"] == {"text/markdown": "PASS"}
    assert out["cells"][6]["outputs"] == []  # only the provenance record: nothing left
    assert len({c.get("id") for c in out["cells"] if c["cell_type"] == "markdown"
                and c.get("id")}) == 4


def _tgz(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_integrity_is_npms_sha512_string(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")  # sha512("abc"), base64, as in the SRI spec's examples
    assert assets.integrity(p) == (
        "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4q"
        "mslPpUyknw==")


def test_unpack_keeps_only_what_tex_chtml_loads(tmp_path):
    tgz = _tgz(tmp_path / "m.tgz", {"package/es5/tex-chtml.js": "mj",
                                    "package/es5/output/chtml/fonts/woff-v2/a.woff": "f",
                                    "package/es5/tex-svg.js": "svg", "package/README.md": "r"})
    dest = assets.unpack_mathjax(tgz, tmp_path / "static" / "mathjax")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [".version", "output/chtml/fonts/woff-v2/a.woff", "tex-chtml.js"]
    with pytest.raises(InputError, match="tex-chtml.js"):
        assets.unpack_mathjax(_tgz(tmp_path / "e.tgz", {"package/x.js": ""}), tmp_path / "e")


def test_a_tarball_that_is_not_the_registrys_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_CACHE", str(tmp_path))
    (tmp_path / "npm").mkdir()
    fake = _tgz(tmp_path / "npm" / f"mathjax-{assets.MATHJAX_VERSION}.tgz",
                {"package/es5/tex-chtml.js": "not mathjax"})
    with pytest.raises(InputError, match=f"{fake.name}: integrity"):
        assets.mathjax_tarball()


def test_plotly_js_is_the_wheels_own_bundle():
    js = assets.plotly_js()
    assert js.parent.name == "package_data"
    assert js.read_text(errors="replace")[:400].lstrip().startswith("/**\n* plotly.js v")
