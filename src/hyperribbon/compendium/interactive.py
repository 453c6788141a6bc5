"""Interactive 3-D figures that work offline, with a static image kept.

:func:`glue_3d` glues one output with two representations: ``text/html``, a plotly
figure *without* plotly.js inside (the book serves the ``plotly.min.js`` of the pinned
plotly wheel from ``_static``, loaded on the pages that need it; no CDN, no MathJax
script) followed by the static image in a ``<noscript>`` for readers without JavaScript;
and ``image/png``, the same points drawn by matplotlib, for print and PDF.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

HTML_CLASS = "hr-interactive-3d"


def _as_paths(points: Any) -> tuple[np.ndarray, bool]:
    """``points`` as an array of shape (m, t, 3); whether it was a cloud (n, 3)."""
    a = np.asarray(points, dtype=float)
    if a.ndim == 2 and a.shape[1] == 3:
        return a[:, None, :], True
    if a.ndim == 3 and a.shape[2] == 3:
        return a, False
    raise ValueError(f"points: expected shape (n, 3) (a cloud) or (m, t, 3) "
                     f"(m trajectories of t points), got {a.shape}")


def _groups(groups: Sequence[Any] | None, m: int) -> list[str]:
    if groups is None:
        return [""] * m
    if len(groups) != m:
        raise ValueError(f"groups: expected one label per point or trajectory ({m}), "
                         f"got {len(groups)}")
    return [str(g) for g in groups]


def plotly_figure(points: Any, groups: Sequence[Any] | None = None,
                  axis_labels: Sequence[str] = ("x1", "x2", "x3"), title: str = ""):
    """The plotly figure of :func:`glue_3d`: a cloud as markers, trajectories as lines
    with their last point marked; one legend entry and colour per group label."""
    import plotly.graph_objects as go
    from matplotlib.colors import to_hex

    paths, cloud = _as_paths(points)
    labels = _groups(groups, len(paths))
    colours = {g: f"C{i % 10}" for i, g in enumerate(dict.fromkeys(labels))}
    fig = go.Figure()
    for g in colours:
        idx = [i for i, lab in enumerate(labels) if lab == g]
        colour = to_hex(colours[g])
        name = g or ("points" if cloud else "trajectories")
        if cloud:
            xyz = paths[idx, 0, :]
            fig.add_trace(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers",
                                       marker={"size": 3, "color": colour}, name=name))
            continue
        # trajectories of a group: one trace, separated by gaps (None)
        sep = np.full((len(idx), 1, 3), np.nan)
        xyz = np.concatenate([paths[idx], sep], axis=1).reshape(-1, 3)
        xyz = [[None if np.isnan(v) else float(v) for v in col] for col in xyz.T]
        fig.add_trace(go.Scatter3d(x=xyz[0], y=xyz[1], z=xyz[2], mode="lines",
                                   line={"width": 3, "color": colour}, name=name,
                                   legendgroup=name))
        end = paths[idx, -1, :]
        fig.add_trace(go.Scatter3d(x=end[:, 0], y=end[:, 1], z=end[:, 2], mode="markers",
                                   marker={"size": 3, "color": colour}, legendgroup=name,
                                   showlegend=False, name=f"{name} (end)"))
    ax = dict(zip(("xaxis", "yaxis", "zaxis"),
                  ({"title": {"text": t}} for t in axis_labels), strict=True))
    fig.update_layout(title={"text": title}, scene=ax, height=520,
                      margin={"l": 0, "r": 0, "t": 40 if title else 10, "b": 0},
                      showlegend=any(labels), template="plotly_white")
    return fig


def static_png(points: Any, groups: Sequence[Any] | None = None,
               axis_labels: Sequence[str] = ("x1", "x2", "x3"), title: str = "") -> bytes:
    """The same points drawn by matplotlib (3-D axes), as PNG bytes."""
    from matplotlib.figure import Figure

    paths, cloud = _as_paths(points)
    labels = _groups(groups, len(paths))
    fig = Figure(figsize=(6.5, 5.2))
    ax = fig.add_subplot(projection="3d")
    colours = {g: f"C{i % 10}" for i, g in enumerate(dict.fromkeys(labels))}
    for g, c in colours.items():
        idx = [i for i, lab in enumerate(labels) if lab == g]
        if cloud:
            ax.scatter(*paths[idx, 0, :].T, s=4, color=c, label=g or None)
            continue
        for j, i in enumerate(idx):
            ax.plot(*paths[i].T, "-", lw=0.8, color=c, label=(g or None) if j == 0 else None)
        ax.scatter(*paths[idx, -1, :].T, s=6, color=c)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_zlabel(axis_labels[2])
    if title:
        ax.set_title(title)
    if any(labels):
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


class Interactive3D:
    """An output with an offline interactive 3-D view (``text/html``) and a static image
    (``image/png``); what :func:`glue_3d` glues."""

    def __init__(self, html: str, png: bytes) -> None:
        self.html, self.png = html, png

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/html": self.html, "image/png": base64.b64encode(self.png).decode()}


def interactive_3d(name: str, points: Any, groups: Sequence[Any] | None = None,
                   axis_labels: Sequence[str] = ("x1", "x2", "x3"),
                   title: str = "") -> Interactive3D:
    """The output :func:`glue_3d` glues (arguments as there)."""
    fig = plotly_figure(points, groups, axis_labels, title)
    png = static_png(points, groups, axis_labels, title)
    div = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                      div_id=f"hr3d-{name}", config={"displaylogo": False, "responsive": True})
    img = base64.b64encode(png).decode()
    html = (f'<div class="{HTML_CLASS}">{div}<noscript><img alt="{name} (static)" '
            f'src="data:image/png;base64,{img}"></noscript></div>')
    return Interactive3D(html, png)


def glue_3d(name: str, points: Any, groups: Sequence[Any] | None = None,
            axis_labels: Sequence[str] = ("x1", "x2", "x3"), title: str = "") -> None:
    """Glue a 3-D embedding the reader can turn, offline; place it like any glued figure
    (``{glue:figure} name`` in a markdown cell).

    Parameters
    ----------
    name : str
        Glue key, prefixed with the chapter (``"ch04-inpca-3d"``).
    points : array_like, shape (n, 3) or (m, t, 3)
        A point cloud (markers), or m trajectories of t points each (lines, the last
        point marked), e.g. the first three InPCA coordinates.
    groups : sequence of length n (cloud) or m (trajectories), optional
        A label per point or trajectory: one colour and legend entry per label.
    axis_labels : three str
        Axis titles (say which are time-like for InPCA).
    title : str
        Figure title.
    """
    from .claims import glue

    glue(name, interactive_3d(name, points, groups, axis_labels, title), display=False)
