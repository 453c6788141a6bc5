"""Notebook parameters: the spec written next to the defaults, and its validation.

Every line of a notebook's ``parameters`` cell reads::

    name: type = literal  # spec | spec | help text

with ``type`` one of :data:`TYPES` and the spec parts any of ``range: [lo, hi]``
(brackets closed, parentheses open, ``inf`` allowed; applies to every element of a
list), ``choices: a, b, c``, ``len: N``, ``increasing``. The last part is the help.
:func:`parse_cell` reads the cell statically (nothing is executed), and
:func:`validate` checks overrides against it so that a bad value is refused before any
kernel starts.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from dataclasses import dataclass, field
from typing import Any

from ..util import InputError

TYPES = ("int", "float", "str", "bool", "list[int]", "list[float]", "list[str]")


class ParameterError(InputError):
    """A parameter override that the notebook's spec refuses."""


@dataclass
class Param:
    """The spec of one notebook parameter."""

    name: str
    type: str
    default: Any
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: list[str] | None = None
    length: int | None = None
    increasing: bool = False
    extra: dict = field(default_factory=dict)

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        parts = [self.type]
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(repr, self.choices)))
        if self.lo is not None or self.hi is not None:
            lb = "(" if self.lo_open else "["
            rb = ")" if self.hi_open else "]"
            lo = "-inf" if self.lo is None else _num(self.lo)
            hi = "inf" if self.hi is None else _num(self.hi)
            parts.append(f"in {lb}{lo}, {hi}{rb}")
        if self.length is not None:
            parts.append(f"of length {self.length}")
        if self.increasing:
            parts.append("strictly increasing")
        return ", ".join(parts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


_RANGE = re.compile(r"^([\[(])\s*([^,]+?)\s*,\s*([^\])]+?)\s*([\])])$")


def _bound(text: str) -> float | None:
    text = text.strip()
    if text in ("inf", "+inf"):
        return None
    if text == "-inf":
        return None
    return float(ast.literal_eval(text))


def _parse_spec(param: Param, comment: str, where: str) -> None:
    parts = [p.strip() for p in comment.split("|")]
    param.help = parts[-1] if parts else ""
    if "=" in param.help:
        raise ParameterError(f"{where}: the help text {param.help!r} contains '=', which "
                             "papermill's parameter parser misreads; reword it")
    for part in parts[:-1]:
        if not part:
            continue
        key, _, rest = part.partition(":")
        key, rest = key.strip(), rest.strip()
        if key == "range":
            m = _RANGE.match(rest)
            if not m:
                raise ParameterError(f"{where}: bad range {rest!r} (write e.g. [0, 1) or (0, inf))")
            param.lo_open, param.hi_open = m.group(1) == "(", m.group(4) == ")"
            param.lo, param.hi = _bound(m.group(2)), _bound(m.group(3))
        elif key == "choices":
            param.choices = [c.strip() for c in rest.split(",") if c.strip()]
        elif key == "len":
            param.length = int(rest)
        elif key == "increasing":
            param.increasing = True
        else:
            raise ParameterError(f"{where}: unknown spec {key!r} in {part!r}")


def parse_cell(source: str, notebook: str = "notebook") -> dict[str, Param]:
    """Parse a ``parameters`` cell into ``{name: Param}`` without executing it."""
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    tree = ast.parse(source)
    params: dict[str, Param] = {}
    for node in tree.body:
        where = f"{notebook}, parameters cell line {node.lineno}"
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            raise ParameterError(f"{where}: every statement must be `name: type = value  # spec`")
        typ = ast.unparse(node.annotation)
        if typ not in TYPES:
            raise ParameterError(f"{where}: type {typ!r} not supported (use one of {TYPES})")
        if node.value is None:
            raise ParameterError(f"{where}: parameter {node.target.id!r} needs a default")
        default = ast.literal_eval(node.value)
        p = Param(node.target.id, typ, default)
        _parse_spec(p, comments.get(node.end_lineno or node.lineno, ""), where)
        _check(p, default, f"{notebook}: the default of")
        params[p.name] = p
    return params


def _type_ok(typ: str, v: Any) -> bool:
    if typ == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if typ == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if typ == "str":
        return isinstance(v, str)
    if typ == "bool":
        return isinstance(v, bool)
    return False


def _check(p: Param, value: Any, context: str) -> Any:
    """Validate (and normalise: int → float where a float is expected) one value."""
    def fail(why: str) -> ParameterError:
        return ParameterError(
            f"{context} parameter {p.name!r} = {value!r}: {why}; allowed: {p.allowed()}"
            + (f" ({p.help})" if p.help else ""))

    if p.type.startswith("list["):
        elem = p.type[5:-1]
        if not isinstance(value, (list, tuple)):
            raise fail("not a list")
        items = list(value)
        if p.length is not None and len(items) != p.length:
            raise fail(f"has {len(items)} elements")
        if not items and p.length is None:
            raise fail("is empty")
    else:
        elem, items = p.type, [value]
    out = []
    for v in items:
        if not _type_ok(elem, v):
            raise fail(f"{type(v).__name__} where {elem} is expected")
        if elem == "float":
            v = float(v)
            if math.isnan(v):
                raise fail("NaN")
        if p.choices is not None and str(v) not in p.choices:
            raise fail(f"{v!r} is not a valid choice")
        if elem in ("int", "float"):
            if p.lo is not None and (v < p.lo or (p.lo_open and v == p.lo)):
                raise fail("out of range")
            if p.hi is not None and (v > p.hi or (p.hi_open and v == p.hi)):
                raise fail("out of range")
        out.append(v)
    if p.increasing and any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise fail("not strictly increasing")
    return out if p.type.startswith("list[") else out[0]


def coerce(p: Param, text: str) -> Any:
    """Turn a command-line string (``-p name=value``) into a Python value for ``p``."""
    if p.type == "str":
        return text
    if p.type == "bool":
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        return text  # validate() reports it
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if p.type == "list[str]":
            return [s.strip() for s in text.split(",")]
        return text


def validate(spec: dict[str, Param], values: dict[str, Any], notebook: str) -> dict[str, Any]:
    """Check overrides against the spec; return them normalised.

    Raises
    ------
    ParameterError
        Naming the notebook, the parameter, the value and what is allowed.
    """
    out = {}
    for name, value in values.items():
        if name not in spec:
            known = ", ".join(sorted(spec))
            raise ParameterError(
                f"{notebook}: unknown parameter {name!r}; this notebook takes: {known}")
        out[name] = _check(spec[name], value, f"{notebook}:")
    return out
