"""The parameter spec of a notebook's parameters cell and its validation."""

import math

import pytest

from hyperribbon.compendium.params import ParameterError, coerce, parse_cell, validate

CELL = '''
profile: str = "ci"  # choices: smoke, ci, paper | the run profile
n: int = 5  # range: [1, 100] | how many
scale: float = 1.0  # range: (0, inf) | a positive scale
frac: float = 0.5  # range: [0, 1) | half-open
box: list[float] = [0.1, 10.0]  # range: (0, inf) | len: 2 | increasing | a box
names: list[str] = ["a"]  # choices: a, b | names
flag: bool = False  # a flag
'''


@pytest.fixture
def spec():
    return parse_cell(CELL, "nb.py")


def test_parse_reads_types_defaults_and_specs(spec):
    assert list(spec) == ["profile", "n", "scale", "frac", "box", "names", "flag"]
    assert spec["n"].type == "int" and spec["n"].default == 5
    assert (spec["n"].lo, spec["n"].hi) == (1, 100)
    assert spec["scale"].lo == 0 and spec["scale"].lo_open and spec["scale"].hi is None
    assert spec["box"].length == 2 and spec["box"].increasing
    assert spec["profile"].choices == ["smoke", "ci", "paper"]
    assert spec["flag"].help == "a flag"


def test_valid_values_pass_and_ints_widen_to_float(spec):
    out = validate(spec, {"n": 100, "scale": 3, "frac": 0.0, "box": [1, 2]}, "nb.py")
    assert out == {"n": 100, "scale": 3.0, "frac": 0.0, "box": [1.0, 2.0]}
    assert isinstance(out["scale"], float)


@pytest.mark.parametrize("values, fragment", [
    ({"nope": 1}, "unknown parameter 'nope'"),
    ({"n": 1.5}, "float where int is expected"),
    ({"n": True}, "bool where int is expected"),
    ({"n": 0}, "out of range"),
    ({"n": 101}, "out of range"),
    ({"scale": 0.0}, "out of range"),
    ({"frac": 1.0}, "out of range"),
    ({"scale": math.nan}, "NaN"),
    ({"profile": "fast"}, "not a valid choice"),
    ({"box": [1.0]}, "has 1 elements"),
    ({"box": [2.0, 1.0]}, "not strictly increasing"),
    ({"box": 3.0}, "not a list"),
    ({"names": ["c"]}, "not a valid choice"),
    ({"flag": "yes"}, "str where bool is expected"),
])
def test_bad_values_are_refused_naming_the_parameter(spec, values, fragment):
    with pytest.raises(ParameterError) as err:
        validate(spec, values, "nb.py")
    msg = str(err.value)
    assert fragment in msg and "nb.py" in msg
    assert repr(next(iter(values))) in msg or next(iter(values)) in msg


def test_error_lists_what_is_allowed(spec):
    with pytest.raises(ParameterError, match=r"allowed: int, in \[1, 100\]"):
        validate(spec, {"n": 0}, "nb.py")


def test_coerce_from_command_line(spec):
    assert coerce(spec["n"], "7") == 7
    assert coerce(spec["box"], "[1, 2]") == [1, 2]
    assert coerce(spec["flag"], "true") is True
    assert coerce(spec["profile"], "smoke") == "smoke"
    assert coerce(spec["names"], "a,b") == ["a", "b"]


@pytest.mark.parametrize("cell, fragment", [
    ("x = 1  # no annotation", "every statement"),
    ("x: dict = {}  # help", "not supported"),
    ("x: int = 0  # range: [1, 2] | help", "out of range"),
    ("x: int = 1  # bounds: 1 | help", "unknown spec"),
    ("x: int = 1  # range: 1..2 | help", "bad range"),
    ("x: int = 1  # range: [0, 2] | must be >= 1", "contains '='"),
])
def test_malformed_cells_are_reported(cell, fragment):
    with pytest.raises(ParameterError, match=fragment):
        parse_cell(cell, "nb.py")
