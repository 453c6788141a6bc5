"""Claims: a named number computed by a notebook, the relation it must satisfy, and
where the paper states it.

Inside a notebook, :func:`claim` glues the value (for ``{glue:text}`` in the prose),
displays PASS/FAIL, and emits the record as a display output of MIME type
:data:`CLAIM_MIME`; the runner collects those outputs into the executed notebook's
metadata. Outside a notebook, :func:`collect` reads the records of executed notebooks,
:func:`table` joins them with the expected claims and the declared failures
(``notebooks/claims_status.yml``) into the claims table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..util import InputError, read_yaml

CLAIM_MIME = "application/vnd.hyperribbon.claim+json"
RELATIONS = (">=", ">", "<=", "<", "==", "in")
#: What a record is: a paper's ``claim``, or a ``diagnostic`` of our own machinery (a
#: sampler's acceptance rate, a finite-difference agreement), shown apart from the claims.
KINDS = ("claim", "diagnostic")


@dataclass
class Claim:
    """One recorded claim."""

    name: str
    value: Any
    relation: str
    target: Any
    ref: str
    detail: str = ""
    passed: bool = False
    kind: str = "claim"

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(value: Any, relation: str, target: Any) -> bool:
    """Whether ``value relation target`` holds.

    ``in`` takes a closed interval ``[lo, hi]``. A NaN value never passes.

    >>> evaluate(6.0, ">=", 5), evaluate(0.3, "in", [0, 0.25])
    (True, False)
    """
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; use one of {', '.join(RELATIONS)}")
    if isinstance(value, float) and math.isnan(value):
        return False
    if relation == "in":
        if not (isinstance(target, (list, tuple)) and len(target) == 2):
            raise ValueError(f"relation 'in' needs a target [lo, hi], got {target!r}")
        lo, hi = target
        return bool(lo <= value <= hi)
    ops = {
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a == b,
    }
    return bool(ops[relation](value, target))


def _values(x: Any) -> np.ndarray:
    """``x`` flattened to floats, NaN values dropped."""
    a = np.asarray(x, dtype=float).ravel()
    return a[~np.isnan(a)]


def mean_se(x: Any) -> tuple[float, float]:
    """Mean of ``x`` and its standard error ``s/√n`` (``s`` with ``n - 1`` in the
    denominator), NaN values dropped; the standard error is NaN for fewer than two values.

    >>> mean_se([1.0, 2.0, 3.0])  # s = 1
    (2.0, 0.5773502691896258)
    """
    a = _values(x)
    if len(a) < 2:
        return (float(a.mean()) if len(a) else float("nan")), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))


def mean_bound(x: Any, side: str, level: float = 0.95) -> float:
    """One-sided confidence bound of the mean of ``x`` (Student's t, ``n - 1`` degrees of
    freedom): ``mean - t·se`` for ``side="lower"``, ``mean + t·se`` for ``"upper"``,
    with ``t`` the ``(1 + level)/2`` quantile — the end of the two-sided ``level``
    interval, ``se`` as in :func:`mean_se`. A comparative claim ("A exceeds B, mean over
    seeds") recorded as the lower bound of the paired differences A − B passes only when
    the difference stands clear of its replicate noise, so its verdict does not flip with
    the seed when the effect is about zero. NaN values are dropped; fewer than two values
    give NaN.

    >>> round(mean_bound([1.0, 2.0, 3.0], "lower"), 4)  # 2 - 4.3027·1/√3
    -0.4841
    """
    from scipy.stats import t as student_t

    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    a = _values(x)
    if len(a) < 2:
        return float("nan")
    m, se = mean_se(a)
    half = float(student_t.ppf((1 + level) / 2, len(a) - 1)) * se
    return m - half if side == "lower" else m + half


def errorbar_mean_se(ax: Any, x: Any, samples: Any, **kwargs: Any) -> Any:
    """Draw the mean ± standard error of each row of ``samples`` (shape ``(len(x), n)``)
    at ``x`` on the matplotlib axes ``ax``, computed as :func:`mean_se` does (``n - 1``
    in the variance, NaN dropped), so a figure and the text quoting it agree.
    ``kwargs`` go to ``ax.errorbar`` (``capsize`` defaults to 3). Returns its container.
    """
    rows = np.asarray(samples, dtype=float)
    if rows.ndim != 2 or len(rows) != len(x):
        raise ValueError(f"samples: expected shape (len(x) = {len(x)}, n), got {rows.shape}")
    m, se = np.array([mean_se(r) for r in rows]).T
    return ax.errorbar(x, m, se, **{"capsize": 3, **kwargs})


def _plain(value: Any) -> Any:
    """numpy/torch scalars → Python scalars (JSON-serialisable)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            pass
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def glue(name: str, value: Any, display: bool = False) -> None:
    """Glue a value or a figure for the book (myst_nb's glue; see the myst-nb docs)."""
    from myst_nb import glue as _glue

    _glue(name, value, display=display)


def glue_values(values: Mapping[str, Any]) -> None:
    """Glue every ``name: value`` of ``values`` for ``{glue:text}`` in the prose, without
    showing it in place. numpy and torch scalars become Python numbers first, so the book
    reads ``0.25``, never ``np.float64(0.25)``."""
    for name, value in values.items():
        glue(name, _plain(value), display=False)


def glue_figure(name: str, fig: Any, tight: bool = True) -> None:
    """Glue a finished matplotlib figure for the book and close it.

    ``tight`` applies ``fig.tight_layout()`` first (leave it off for figures laid out by
    hand, e.g. with a colorbar spanning several axes). The figure is glued without being
    displayed in place, so the book shows it once, where the text calls for it, and is
    closed so a long notebook does not hold every figure in memory.
    """
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    glue(name, fig, display=False)
    plt.close(fig)


def claim(name: str, value: Any, relation: str, target: Any, ref: str,
          detail: str = "", kind: str = "claim") -> bool:
    """Record a claim from a notebook (glued, displayed with PASS/FAIL, and stored), and
    return whether it holds (for prose generated from the verdict).

    Parameters
    ----------
    name : str
        Unique name (``[a-z0-9_]``), also the glue key of the value.
    value : number or bool
        The value computed by the notebook.
    relation, target :
        The relation the value must satisfy: one of ``>=, >, <=, <, ==`` with a number,
        or ``in`` with ``[lo, hi]``.
    ref : str
        Where the paper states it (section, figure, equation).
    detail : str
        One line on how the value was computed.
    kind : str
        ``"claim"`` (a result of the paper) or ``"diagnostic"`` (a check of our own
        machinery, recorded and checked alike but shown apart from the paper's claims).
    """
    if kind not in KINDS:
        raise ValueError(f"claim kind {kind!r}: use one of {', '.join(KINDS)}")
    if not name or not all(ch.isalnum() or ch == "_" for ch in name) or name != name.lower():
        raise ValueError(f"claim name {name!r} must be lower-case letters, digits and '_'")
    value = _plain(value)
    target = _plain(target)
    passed = evaluate(value, relation, target)
    record = Claim(name, value, relation, target, ref, detail, passed, kind)
    from IPython.display import display

    try:
        glue(name, value, display=False)
    except ImportError:  # outside a kernel with myst-nb: keep going, the record still counts
        pass
    verdict = "PASS" if passed else "FAIL"
    label = "Claim" if kind == "claim" else "Diagnostic"
    tgt = f"[{_fmt(target[0])}, {_fmt(target[1])}]" if relation == "in" else _fmt(target)
    text = f"**{label} `{name}`** = {_fmt(value)} (must be {relation} {tgt}; {ref}): **{verdict}**"
    display({"text/markdown": text, "text/plain": text, CLAIM_MIME: record.to_dict()},
            raw=True)
    return passed


# ---------------------------------------------------------------------------------------
# Reading claims back from executed notebooks

def claims_in_notebook(nb: Mapping) -> list[dict]:
    """The claim records emitted by the cells of an executed notebook (in order)."""
    out = []
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) or []:
            data = o.get("data", {})
            if CLAIM_MIME in data:
                rec = data[CLAIM_MIME]
                out.append(json.loads(rec) if isinstance(rec, str) else dict(rec))
    return out


@dataclass
class Row:
    """One line of the claims table."""

    notebook: str
    name: str
    value: Any
    relation: str
    target: Any
    passed: bool | None
    profile: str | None
    ref: str = ""
    status: str = ""  # PASS, FAIL, FAILS (declared), MISSING, NOW PASSES (declared)
    reason: str = ""
    kind: str = "claim"  # or "diagnostic" (see KINDS)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d


def load_status(path: Path) -> dict[str, dict]:
    """Declared failures: ``claims_status.yml`` (claim name → reason, tried, settle)."""
    if not path.exists():
        return {}
    data = read_yaml(path, "a mapping claim name → declaration")
    out = {}
    for name, decl in data.items():
        if isinstance(decl, str):
            decl = {"reason": decl}
        if not isinstance(decl, dict) or not decl.get("reason"):
            raise InputError(f"{path}: claim {name!r} needs at least a 'reason'")
        out[str(name)] = decl
    return out


def table(executed: Iterable[Path], expected: Mapping[str, list[str]],
          status: Mapping[str, dict]) -> list[Row]:
    """Build the claims table from executed notebooks.

    Parameters
    ----------
    executed : paths of executed notebooks (``NN_name.ipynb``)
    expected : notebook stem → claim names it must record
    status : declared failures (:func:`load_status`)
    """
    import nbformat

    rows: list[Row] = []
    for path in sorted(executed):
        nb = nbformat.read(str(path), as_version=4)
        meta = nb.metadata.get("hyperribbon", {})
        profile = meta.get("profile")
        stem = path.stem
        recs = meta.get("claims") or claims_in_notebook(nb)
        seen = set()
        for rec in recs:
            seen.add(rec["name"])
            row = Row(stem, rec["name"], rec["value"], rec["relation"], rec["target"],
                      bool(rec["passed"]), profile, rec.get("ref", ""),
                      kind=rec.get("kind", "claim"))
            decl = status.get(rec["name"])
            if decl is None:
                row.status = "PASS" if row.passed else "FAIL"
            elif row.passed:
                row.status = "NOW PASSES"
                row.reason = "declared as failing in claims_status.yml but passes: remove it"
            else:
                row.status = "FAILS (declared)"
                row.reason = decl["reason"]
            rows.append(row)
        for name in expected.get(stem, []):
            if name not in seen:
                rows.append(Row(stem, name, None, "", None, None, profile,
                                status="MISSING",
                                reason="expected in profiles.yml but not recorded"))
    return rows


def problems(rows: Iterable[Row], profiles: Iterable[str] = ("ci", "paper")) -> list[Row]:
    """Rows that make ``claims --check`` fail: an undeclared failure, a missing claim, or a
    declared failure that now passes, in notebooks executed under one of ``profiles``."""
    return [r for r in rows if r.profile in profiles
            and r.status in ("FAIL", "MISSING", "NOW PASSES")]
