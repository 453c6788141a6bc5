"""Grid files of training runs: both forms, the conversions to RunSpec, and every mistake
named in one line (file, run, field) before anything trains."""

from __future__ import annotations

import pytest
import torch
import yaml

from hyperribbon.compendium import cli
from hyperribbon.compendium.train_grid import load_run_grid
from hyperribbon.training import RunSpec, Samples
from hyperribbon.util import InputError

BASE = {"arch": "mlp", "width": 16, "epochs": 2, "batch_size": 50,
        "train": {"n": 200, "pool": 2}}


def _file(tmp_path, content, name="runs.yml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(content, sort_keys=False))
    return p


def test_a_list_of_runs_gives_those_specifications(tmp_path):
    g = load_run_grid(_file(tmp_path, [BASE, {**BASE, "seed": 3, "optimizer": "adam"}]))
    tiny = RunSpec(train=Samples(n=200, pool=2), arch="mlp", width=16, epochs=2,
                   batch_size=50)
    assert g.specs == [tiny, RunSpec(**{**tiny.__dict__, "seed": 3, "optimizer": "adam"})]
    assert g.device == "auto"


def test_the_product_form_overlays_base_grid_and_runs(tmp_path):
    g = load_run_grid(_file(tmp_path, {
        "device": "cpu",
        "base": {**BASE, "record": {"test": {"split": "test", "n": 100, "pool": 2}},
                 "checkpoints": [[1, 0.5], ["1e9", 1]], "lr": 1},
        "grid": {"seed": [0, 1], "train.n": [200, 400]},
        "runs": [{"width": 32, "train.classes": [0, 1]}]}))
    assert g.device == "cpu"
    assert [(s.seed, s.train.n) for s in g.specs[:4]] == [(0, 200), (0, 400), (1, 200),
                                                          (1, 400)]
    assert all(s.train.pool == 2 for s in g.specs)  # a dotted name keeps the other fields
    last = g.specs[4]
    assert last.width == 32 and last.train.classes == (0, 1) and last.train.n == 200
    assert last.record == (("test", Samples(split="test", n=100, pool=2)),)
    assert last.checkpoints == ((1.0, 0.5), (1e9, 1.0)) and last.lr == 1.0
    assert isinstance(last.lr, float)


@pytest.mark.parametrize("content, fragments", [
    ({"base": {**BASE, "widht": 8}, "grid": {"seed": [0]}},
     ["run 0 (seed=0)", "unknown RunSpec field widht", "width"]),
    ({"base": {**BASE, "train": {"n": 200, "pol": 2}}, "runs": [{}]},
     ["unknown Samples field train.pol"]),
    ({"base": BASE, "grid": {"width": [16, "wide"]}},
     ["run 1 (width=wide)", "width: expected int, got 'wide'"]),
    ({"base": BASE, "runs": [{"augment": "yes"}]}, ["augment: expected bool"]),
    ({"base": BASE, "runs": [{"checkpoints": [[1, 0.5, 2]]}]},
     ["checkpoints[0]: expected 2 items"]),
    ({"base": BASE, "runs": [{"batch_size": 500}]},
     ["run 0", "RunSpec.batch_size 500 exceeds the 200 training samples"]),
    ({"base": BASE, "runs": [{"arch": "mlp"}, {}]}, ["runs 0 and 1 are the same run"]),
    ({"base": BASE, "runs": [{"width.n": 3}]}, ["'width.n' sets a field of 'width'"]),
    ({"base": BASE, "grid": {"seed": []}}, ["'grid' must map field names to non-empty"]),
    ({"base": BASE}, ["the grid has no runs"]),
    ({"base": BASE, "seeds": [1]}, ["unknown keys ['seeds']"]),
    ({"base": BASE, "runs": [{}], "device": 0}, ["'device' must be a string"]),
    ([BASE, 3], ["'runs' must be a list of mappings"]),
])
def test_a_mistake_names_the_file_the_run_and_the_field(tmp_path, content, fragments):
    p = _file(tmp_path, content)
    with pytest.raises(InputError) as err:
        load_run_grid(p)
    msg = str(err.value)
    assert msg.startswith(str(p)) and "\n" not in msg
    for f in fragments:
        assert f in msg, msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_the_train_command_refuses_a_device_that_is_not_here(tmp_path, capsys):
    p = _file(tmp_path, {"base": BASE, "runs": [{}], "device": "cuda"})
    assert cli.main(["train", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert "device" in err and "CUDA is not available" in err and len(err.splitlines()) == 1
