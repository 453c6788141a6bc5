"""The atlas: every chapter's spectrum on one log axis.

All seven papers are about one phenomenon: the spectra of model manifolds (Fisher
eigenvalues, manifold widths, InPCA eigenvalues) spread over many decades and fall
roughly geometrically. Inside a notebook, :func:`record_spectrum` stores a chapter's
spectrum as a display output of MIME type :data:`SPECTRUM_MIME` (the runner copies the
records into the executed notebook's metadata, beside its claims). At build time,
:func:`collect` reads them back and :func:`atlas_page` writes the book's atlas page: one
curve per record, normalised to its largest value, against the index, with its fitted
decay rate (:func:`decay_rate`).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPECTRUM_MIME = "application/vnd.hyperribbon.spectrum+json"


@dataclass(frozen=True)
class Spectrum:
    """One chapter's spectrum: positive values, descending, the largest equal to 1."""

    name: str
    values: tuple[float, ...]
    label: str
    model_class: str
    dropped: int = 0  # values ≤ 0 (round-off below the numerical floor) left out

    @property
    def decades(self) -> float:
        """Decades spanned, ``log10(max / min)``."""
        return float(-np.log10(self.values[-1]))

    @property
    def rate(self) -> float:
        """Fitted decay rate in decades per index (:func:`decay_rate`)."""
        return decay_rate(self.values)


def normalise(values: Any) -> tuple[np.ndarray, int]:
    """``values`` sorted descending, divided by the largest, values ≤ 0 dropped.

    Returns the normalised values and how many were dropped. At least two positive finite
    values are needed.

    >>> normalise([2.0, 8.0, 0.0, 4.0])
    (array([1.  , 0.5 , 0.25]), 1)
    """
    a = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError("spectrum: values must be finite (got NaN or inf)")
    pos = np.sort(a[a > 0])[::-1]
    if len(pos) < 2:
        raise ValueError(f"spectrum: need at least two positive values, got {len(pos)} "
                         f"of {len(a)}")
    return pos / pos[0], int(len(a) - len(pos))


def decay_rate(values: Any) -> float:
    """Decades per index by which a spectrum falls: minus the least-squares slope of
    ``log10(value / max)`` against the index, over the positive values sorted descending.

    A geometric spectrum ``q**k`` gives ``-log10(q)`` exactly.

    >>> round(decay_rate([1.0, 0.1, 0.01, 0.001]), 12)
    1.0
    """
    v, _ = normalise(values)
    k = np.arange(len(v))
    slope = np.polyfit(k, np.log10(v), 1)[0]
    return float(-slope)


def make_spectrum(name: str, values: Any, label: str, model_class: str) -> Spectrum:
    """A :class:`Spectrum` from raw values (checked and normalised by :func:`normalise`)."""
    if not name or not all(ch.isalnum() or ch in "_-" for ch in name):
        raise ValueError(f"spectrum name {name!r}: use letters, digits, '_' and '-'")
    for what, text in (("label", label), ("model_class", model_class)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"spectrum {name!r}: {what} must be a non-empty string")
    v, dropped = normalise(values)
    return Spectrum(name, tuple(float(x) for x in v), label, model_class, dropped)


def record_spectrum(name: str, values: Any, label: str, model_class: str) -> Spectrum:
    """Record a chapter's spectrum for the atlas (call it in a notebook, once per spectrum).

    Parameters
    ----------
    name : str
        Key of the spectrum, unique in the book; prefix it with the chapter
        (``"ch02-widths"``).
    values : array_like, shape (n,)
        The spectrum: Fisher eigenvalues, manifold widths or InPCA eigenvalues, any
        order and scale (sorted descending and divided by the largest here; values ≤ 0
        are dropped and counted).
    label : str
        What the values are, for the legend (``"widths of the exponential-decay
        manifold"``).
    model_class : str
        The kind of model (``"ODE"``, ``"deep network"``, ``"linear model"``, ...).

    Shows one line (values, decades spanned, decay rate) and stores the record as an
    output of MIME type :data:`SPECTRUM_MIME`. Returns the :class:`Spectrum`.
    """
    from IPython.display import display

    s = make_spectrum(name, values, label, model_class)
    text = (f"Spectrum `{name}` recorded for the atlas ({label}; {model_class}): "
            f"{len(s.values)} values over {s.decades:.3g} decades, falling "
            f"{s.rate:.3g} decades per index")
    display({"text/markdown": text, "text/plain": text, SPECTRUM_MIME: asdict(s)}, raw=True)
    return s


def spectra_in_notebook(nb: Mapping) -> list[Spectrum]:
    """The spectra recorded by an executed notebook: from its metadata when the runner
    stored them there, else from the cells' outputs (in order)."""
    recs = (nb.get("metadata", {}).get("hyperribbon", {}) or {}).get("spectra")
    if recs is None:
        recs = []
        for cell in nb.get("cells", []):
            for o in cell.get("outputs", []) or []:
                rec = (o.get("data") or {}).get(SPECTRUM_MIME)
                if rec is not None:
                    recs.append(json.loads(rec) if isinstance(rec, str) else dict(rec))
    return [Spectrum(r["name"], tuple(r["values"]), r["label"], r["model_class"],
                     r.get("dropped", 0)) for r in recs]


def collect(executed: list[Path]) -> dict[str, list[Spectrum]]:
    """notebook stem → its recorded spectra (empty list when it records none)."""
    import nbformat

    return {p.stem: spectra_in_notebook(nbformat.read(str(p), as_version=4))
            for p in sorted(executed)}


def curve_id(stem: str, name: str) -> str:
    """The id of a spectrum's curve in the atlas figure (``atlas-curve-STEM-NAME``)."""
    return f"atlas-curve-{stem}-{name}"


def atlas_svg(spectra: Mapping[str, list[Spectrum]]) -> str:
    """The atlas figure as inline SVG: each spectrum against its index on one log axis,
    each curve a group with id :func:`curve_id`, its decay rate in the legend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 5.0))
    ax = fig.subplots()
    markers = "osD^v<>ph*"
    n = 0
    for stem, recs in spectra.items():
        for s in recs:
            (line,) = ax.semilogy(np.arange(len(s.values)), s.values,
                                  marker=markers[n % len(markers)], ms=3.5, lw=1.2,
                                  color=f"C{n % 10}",
                                  label=f"ch{stem[:2]} · {s.label} ({s.rate:.2g} dec/index)")
            line.set_gid(curve_id(stem, s.name))
            n += 1
    ax.set_xlabel("index k (largest first)")
    ax.set_ylabel("value / largest value")
    ax.set_title("Spectra of the model manifolds of every chapter")
    ax.grid(True, which="major", alpha=0.3)
    if n:
        ax.legend(fontsize=7.5, loc="upper right", framealpha=0.9)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: inline in HTML
    # an HTML block in markdown ends at a blank line: keep the SVG in one block
    return "\n".join(line for line in svg.splitlines() if line.strip())


def atlas_page(spectra: Mapping[str, list[Spectrum]]) -> str:
    """The book's atlas page (MyST markdown): the figure, a table of every spectrum with
    its decades and decay rate, and the chapters that record none."""
    rows = []
    for stem, recs in spectra.items():
        for s in recs:
            dropped = f" ({s.dropped} ≤ 0 left out)" if s.dropped else ""
            rows.append(f"| [{stem}](papers/{stem}.ipynb) | {s.label} | {s.model_class} "
                        f"| {len(s.values)}{dropped} | {s.decades:.3g} | {s.rate:.3g} |")
    without = [stem for stem, recs in spectra.items() if not recs]
    none_text = ""
    if without:
        none_text = ("\n\n**Chapters without a spectrum in this build:** "
                     + ", ".join(f"[{s}](papers/{s}.ipynb)" for s in without)
                     + ". Their executed notebooks record none (a chapter records its "
                     "spectrum with `record_spectrum`; one executed before it did so "
                     "shows here until it is run again).")
    table = ("| chapter | spectrum | model class | values | decades spanned "
             "| decay rate (decades per index) |\n|---|---|---|---|---|---|\n"
             + "\n".join(rows) + "\n") if rows else "*No chapter has recorded a spectrum.*\n"
    caption = ("Every chapter's spectrum, each divided by its largest value, against "
               "its index on one logarithmic axis; the legend gives each curve's fitted "
               "decay rate (decades per index).")
    return (
        "# Atlas of spectra\n\n"
        "All seven papers describe one phenomenon: the spectra of model manifolds — "
        "Fisher eigenvalues, manifold widths, InPCA eigenvalues — spread over many "
        "decades and fall roughly geometrically, the signature of a *hyper-ribbon*. "
        "Each chapter exports its spectrum beside its claims; this page is generated "
        "at build time from the executed chapters (`hyperribbon book`), nothing here "
        "is typed in. The decay rate is minus the least-squares slope of "
        "log10(value / largest) against the index: a geometric spectrum q^k falls "
        "−log10 q decades per index.\n\n"
        f'<figure class="hr-atlas" id="fig-atlas">\n{atlas_svg(spectra)}\n'
        f"<figcaption>{html.escape(caption)}</figcaption>\n</figure>\n\n"
        + table + none_text + "\n")
