"""``hyperribbon embed``: InPCA of anyone's predictions from the command line."""

from __future__ import annotations

import numpy as np

from hyperribbon.compendium import cli
from hyperribbon.inpca import bhattacharyya, inpca


def test_embed_writes_the_embedding_of_a_prediction_array(tmp_path, capsys):
    P = np.random.default_rng(0).dirichlet(np.ones(4), size=(12, 20))
    np.save(tmp_path / "p.npy", P)
    assert cli.main(["embed", str(tmp_path / "p.npy"), "--k", "3",
                     "--out", str(tmp_path / "out")]) == 0
    assert "12 models embedded" in capsys.readouterr().out
    spectrum = np.load(tmp_path / "out" / "embedding.npz")
    expect = inpca(bhattacharyya(P, device="cpu"), k=3).eigenvalues
    np.testing.assert_allclose(spectrum["eigenvalues"], expect, rtol=1e-8)
    assert (tmp_path / "out" / "coords.csv").exists()


def test_embed_names_a_bad_row_or_a_missing_file_in_one_line(tmp_path, capsys):
    P = np.full((3, 5, 2), 0.5)
    P[1, 4] = [0.9, 0.3]
    np.save(tmp_path / "bad.npy", P)
    assert cli.main(["embed", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.npy[1, 4]" in err
    assert cli.main(["embed", str(tmp_path / "none.npy")]) == 2
    assert "not found" in capsys.readouterr().err
