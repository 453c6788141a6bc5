"""The runner on a toy compendium: execution, provenance, reuse, refusals, failures."""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

from hyperribbon.compendium import book, cli, run
from hyperribbon.compendium.params import ParameterError
from hyperribbon.util import InputError


def read(p: Path):
    return nbformat.read(str(p), as_version=4)


@pytest.fixture
def executed(toy):
    out = toy / "out"
    results = run.run(["01"], "ci", out_dir=out)
    return toy, out, results


def test_run_writes_notebook_with_claims_and_provenance(executed):
    toy, out, results = executed
    assert [r.status for r in results] == ["ok"]
    nb = read(out / "01_toy.ipynb")
    meta = nb.metadata["hyperribbon"]
    assert meta["profile"] == "ci"
    assert meta["parameters"]["n"] == 10  # from profiles.yml
    assert [c["name"] for c in meta["claims"]] == ["toy_value", "toy_ratio"]
    assert all(c["passed"] for c in meta["claims"])
    (spectrum,) = meta["spectra"]  # stored beside the claims, normalised: rate 1 per index
    assert spectrum["name"] == "toy-geometric" and spectrum["values"][0] == 1.0
    prov = meta["provenance"]
    for key in ("commit", "dirty", "python", "numpy", "torch", "device", "data", "wall_s"):
        assert key in prov
    # the venv's own kernel ran it
    assert Path(prov["python_executable"]).resolve().parent == Path(sys.executable).resolve().parent
    # provenance is visible at the end of the notebook
    last = nb.cells[-1]
    assert "hyperribbon-provenance" in last.metadata["tags"]
    assert "Provenance of this run" in json.dumps(last.outputs)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_unchanged_run_is_reused_and_changed_one_reruns(executed):
    toy, out, _ = executed
    before = (out / "01_toy.ipynb").stat().st_mtime_ns
    assert run.run(["01"], "ci", out_dir=out)[0].status == "reused"
    assert (out / "01_toy.ipynb").stat().st_mtime_ns == before
    r = run.run(["01"], "ci", ["n=11"], out_dir=out)[0]
    assert r.status == "ok"
    assert read(out / "01_toy.ipynb").metadata["hyperribbon"]["parameters"]["n"] == 11


@pytest.mark.parametrize("pairs, fragment", [
    (["nope=1"], "unknown parameter 'nope'"),
    (["n=abc"], "str where int is expected"),
    (["n=1000"], "out of range"),
    (["scale=0"], "out of range"),
    (["weights=[0.9, 0.1]"], "not strictly increasing"),
    (["profile=fast"], "not a valid choice"),
])
def test_bad_parameters_are_refused_before_any_kernel(executed, pairs, fragment, monkeypatch):
    toy, out, _ = executed
    before = (out / "01_toy.ipynb").read_bytes()
    monkeypatch.setattr("papermill.execute_notebook",
                        lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(ParameterError, match=fragment) as err:
        run.run(["01"], "ci", pairs, out_dir=out)
    assert "01_toy" in str(err.value)
    assert (out / "01_toy.ipynb").read_bytes() == before


def test_bad_profile_value_in_profiles_yml_is_refused(toy):
    (toy / "notebooks" / "profiles.yml").write_text("01_toy:\n  ci: {n: 0}\n")
    with pytest.raises(ParameterError, match="profiles.yml, profile ci.*out of range"):
        run.run(["01"], "ci", out_dir=toy / "out")


def test_params_file(toy, tmp_path):
    f = tmp_path / "p.yml"
    f.write_text("n: 7\nscale: 2\n")
    r = run.run(["01"], "ci", files=[f], out_dir=toy / "out")[0]
    assert read(r.output).metadata["hyperribbon"]["parameters"]["scale"] == 2.0
    f.write_text("n: 7.5\n")
    with pytest.raises(ParameterError, match="'n' = 7.5"):
        run.run(["01"], "ci", files=[f], out_dir=toy / "out")


def test_failing_notebook_keeps_previous_output_and_exits_nonzero(executed, capsys):
    toy, out, _ = executed
    before = (out / "01_toy.ipynb").read_bytes()
    code = cli.main(["run", "01", "--out", str(out), "-p", "fail=true"])
    err = capsys.readouterr().err
    assert code == 1
    assert "asked to fail" in err and "01_toy.failed.ipynb" in err
    assert (out / "01_toy.ipynb").read_bytes() == before
    failed = read(out / "01_toy.failed.ipynb")
    assert "asked to fail" in json.dumps([c.get("outputs", []) for c in failed.cells])
    assert not [p for p in os.listdir(out) if p.endswith(".running.ipynb")]


def test_cli_refuses_unknown_parameter_with_exit_2(toy, capsys):
    assert cli.main(["run", "01", "--out", str(toy / "out"), "-p", "bogus=1"]) == 2
    assert "unknown parameter 'bogus'" in capsys.readouterr().err
    assert not (toy / "out" / "01_toy.ipynb").exists()


def test_unknown_notebook_id(toy):
    with pytest.raises(InputError, match="no notebook '09'.*01 \\(01_toy\\)"):
        run.select(toy, ["09"])


def test_claims_command_check_and_json(executed, capsys):
    toy, out, _ = executed
    assert cli.main(["claims", "--dir", str(out), "--check", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"toy_value", "toy_ratio"}
    for r in rows:
        assert {"notebook", "name", "value", "relation", "target", "passed",
                "profile"} <= set(r)
    # a claim expected by profiles.yml but not recorded makes --check fail
    prof = toy / "notebooks" / "profiles.yml"
    prof.write_text(prof.read_text().replace("toy_ratio]", "toy_ratio, toy_absent]"))
    assert cli.main(["claims", "--dir", str(out), "--check"]) == 1
    assert "MISSING" in capsys.readouterr().err


def test_declared_failure_is_accepted_and_shown(toy, capsys):
    out = toy / "out"
    run.run(["01"], "ci", ["weights=[0.0, 0.5]", "n=1"], out_dir=out)  # toy_value = 1 < 3
    assert cli.main(["claims", "--dir", str(out), "--check"]) == 1
    (toy / "notebooks" / "claims_status.yml").write_text(
        "toy_value:\n  reason: n=1 is too small\n  tried: nothing\n  settle: n >= 3\n")
    assert cli.main(["claims", "--dir", str(out), "--check"]) == 0
    page = book.claims_page(book.claim_rows(out))
    assert "FAILS (declared)" in page and "n=1 is too small" in page


def test_exactly_one_parameters_cell_is_required(toy):
    nbp = toy / "notebooks" / "01_toy.py"
    nbp.write_text(nbp.read_text().replace('# %% tags=["parameters"]', "# %%"))
    with pytest.raises(run.RunError, match="exactly one cell tagged 'parameters'"):
        run.spec(nbp)
