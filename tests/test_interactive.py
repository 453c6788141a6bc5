"""Interactive 3-D figures: offline HTML (no plotly.js inside, no CDN), the same points in
the plotly traces and the static image, clear errors on bad shapes."""

import base64
import io
import re

import numpy as np
import pytest

from hyperribbon.compendium.interactive import glue_3d, interactive_3d, plotly_figure


def test_trajectories_become_one_line_trace_per_group_through_every_point():
    paths = np.random.default_rng(0).normal(size=(4, 5, 3))
    fig = plotly_figure(paths, groups=["a", "a", "b", "b"])
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["a", "b"]
    # group a: trajectories 0 and 1, separated by one gap
    xs = list(lines[0].x)
    assert xs[:5] == pytest.approx(paths[0, :, 0]) and xs[5] is None
    assert xs[6:11] == pytest.approx(paths[1, :, 0])
    ends = [t for t in fig.data if t.mode == "markers"]
    assert list(ends[1].z) == pytest.approx(paths[2:, -1, 2])


def test_a_cloud_is_markers_and_bad_shapes_or_groups_are_refused():
    fig = plotly_figure(np.eye(3))
    assert len(fig.data) == 1 and fig.data[0].mode == "markers"
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        plotly_figure(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="one label per"):
        plotly_figure(np.zeros((5, 3)), groups=["a"])


def test_html_is_offline_and_keeps_a_static_image():
    from PIL import Image

    out = interactive_3d("ch09-x", np.random.default_rng(1).normal(size=(3, 4, 3)))
    html = out.html
    assert 'id="hr3d-ch09-x"' in html and "Plotly.newPlot" in html
    assert re.findall(r"<script[^>]*>", html) == ["<script>"]  # inline: nothing loaded
    assert "://" not in html  # no URL at all: no CDN
    assert "MathJax" not in html
    img = Image.open(io.BytesIO(out.png))
    assert img.format == "PNG" and min(img.size) > 100
    assert base64.b64encode(out.png).decode() in html  # the <noscript> copy
    bundle = out._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png"}


def test_glue_3d_glues_both_representations(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    # a kernel's formatter (a terminal shell's keeps only text/plain)
    monkeypatch.setattr(shell.display_formatter, "active_types",
                        ["text/plain", "text/html", "image/png"])
    published = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append((data, metadata)))
    glue_3d("ch09-cloud", np.zeros((4, 3)) + np.arange(4)[:, None])
    ((data, meta),) = published
    assert data["application/papermill.record/text/html"].startswith(
        '<div class="hr-interactive-3d">')
    assert "application/papermill.record/image/png" in data
    assert meta["scrapbook"]["name"] == "ch09-cloud"
