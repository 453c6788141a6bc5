"""Unit tests of hyperribbon.expression: the synthetic generator reproduces its declared
geometry; the loaders parse small files written here in the real formats (UCSC Xena
TcgaTargetGtex, Weinreb et al. 2020); missing and corrupt files give clear errors."""

import gzip
import hashlib

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from hyperribbon import data
from hyperribbon import expression as ex
from hyperribbon.data import DataError, verified_files

# ---------------------------------------------------------------------------------------
# The synthetic generator


def test_condensed_distances_match_pdist():
    C = np.random.default_rng(0).normal(size=(6, 4))
    assert np.allclose(ex.condensed_distances(C), pdist(C))


def test_preprocess_keeps_top_variance_genes_and_zscores():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 5)) * [1, 5, 0.1, 3, 0]
    z, names = ex.preprocess(x, 2, ["a", "b", "c", "d", "e"])
    assert names == ["b", "d"]
    assert np.allclose(z.mean(0), 0, atol=1e-6) and np.allclose(z.std(0), 1, atol=1e-5)
    zall, _ = ex.preprocess(x)
    assert np.allclose(zall[:, 4], 0)  # a constant gene stays finite


def test_log_normalise():
    c = np.array([[1, 3, 0], [0, 0, 0]])
    out = ex.log_normalise(c, scale=4)
    assert np.allclose(out[0], np.log2([2, 4, 1])) and np.allclose(out[1], 0)


def test_geometry_is_as_declared():
    g = ex.synthetic_geometry(true_dim=8, n_fates=2, n_tissues=5, branch_length=4,
                              tissue_radius=5, tissue_arc=2.0, tissue_rise=2.0, seed=3)
    assert np.allclose(np.linalg.norm(g.fate_ends, axis=1), 4)
    assert np.isclose(g.fate_ends[0] @ g.fate_ends[1], 0)
    c = g.tissue_centres
    # on an arc of radius 5 in dims 2, 3 ...
    assert np.allclose(np.hypot(c[:, 2], c[:, 3]), 5)
    # ... evenly spaced: consecutive tissues are equally far apart (chord ⊕ rise step)
    step = np.sqrt((2 * 5 * np.sin(2.0 / 4 / 2)) ** 2 + (2.0 / 4) ** 2)
    assert np.allclose(np.linalg.norm(np.diff(c, axis=0), axis=1), step)
    assert np.allclose(c[:, 5:], 0)  # the other programmes carry no cluster signal
    with pytest.raises(ValueError, match="n_fates"):
        ex.synthetic_geometry(true_dim=4, n_fates=2)


def test_latent_sample_has_the_declared_centres_and_hidden_fate_shift():
    g = ex.synthetic_geometry(seed=0)
    lat = ex.synthetic_latent(g, 6000, seed=1)
    z, lab = lat["z"], lat["labels"]
    assert len(lat["label_names"]) == len(lat["centres"]) == 1 + 2 * 2 + 6
    for k in range(len(lat["centres"])):
        n = (lab == k).sum()
        # the declared centre is the population mean up to sampling error
        se = np.sqrt(max(g.progenitor_sd, g.other_sd, g.tissue_sd) ** 2 + 1.5) / np.sqrt(n)
        assert np.all(np.abs(z[lab == k].mean(0) - lat["centres"][k]) < 5 * se + 0.05), k
    prog = lat["progenitor"]
    fa, fb = prog & (lat["fate"] == 0), prog & (lat["fate"] == 1)
    shift = z[fa].mean(0) - z[fb].mean(0)
    want = g.fate_shift * (g.fate_ends[0] - g.fate_ends[1])
    assert np.allclose(shift[:2], want[:2], atol=0.06)
    assert (lat["fate"][~prog & (lab > 0) & (lab <= 4)] >= 0).all()


def test_gene_programmes_and_expected_counts():
    prog = ex.gene_programmes(8, 30, seed=0, per_gene=2)
    assert np.allclose(np.linalg.norm(prog["W"], axis=1), 1)
    assert ((prog["W"] != 0).sum(1) == 2).all()
    lib = np.array([100.0, 2000.0])
    mu = ex.expected_counts(np.zeros((2, 8)), prog, lib)
    assert np.allclose(mu.sum(1), lib)
    # sigmoid programmes are bounded: far out every rate saturates
    far = ex.expected_counts(np.full((1, 8), 1e3), prog, lib[:1])
    assert np.isfinite(far).all()


def test_nb_sample_moments():
    rng = np.random.default_rng(0)
    x = ex.nb_sample(np.full(200000, 8.0), 4.0, rng)
    assert abs(x.mean() - 8) < 0.05 and abs(x.var() - (8 + 64 / 4)) < 0.5


def test_synthetic_expression_is_labelled_deterministic_and_consistent():
    a = ex.synthetic_expression(n_cells=300, n_genes=40, seed=2)
    b = ex.synthetic_expression(n_cells=300, n_genes=40, seed=2)
    assert a.synthetic and a.source.startswith("synthetic")
    assert np.array_equal(a.X, b.X) and a.X.shape == (300, 40)
    assert np.allclose(a.reference, pdist(a.geometry["centres"]))
    assert a.latent.shape == (300, 8)
    assert a.progenitor.sum() == (a.labels == 0).sum() > 0
    sub = a.subset(np.arange(10))
    assert sub.X.shape == (10, 40) and sub.source == a.source
    assert not np.array_equal(ex.synthetic_expression(n_cells=300, n_genes=40, seed=3).X,
                              a.X)


# ---------------------------------------------------------------------------------------
# Real formats, written here


def sha_gz(path) -> str:
    with gzip.open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def xena(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "root" / "xena-toil"
    folder.mkdir(parents=True)
    samples = [f"TCGA-{i:02d}-01" for i in range(6)] + [f"GTEX-{i:02d}" for i in range(4)]
    tpm = rng.gamma(1.0, 20.0, size=(5, 10))
    tpm[4] = 3.0  # constant gene
    vals = np.log2(tpm + 0.001)
    lines = ["sample\t" + "\t".join(samples)]
    lines += [f"ENSG0000000000{g}.1\t" + "\t".join(f"{v:.4f}" for v in vals[g])
              for g in range(5)]
    with gzip.open(folder / "TcgaTargetGtex_rsem_gene_tpm.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    head = ["sample", "detailed_category", "primary disease or tissue", "_primary_site",
            "_sample_type", "_gender", "_study"]
    dis = ["Lung Adenocarcinoma"] * 3 + ["Breast Invasive Carcinoma"] * 3 + ["Lung"] * 4
    rows = ["\t".join(head)] + [
        "\t".join([s, "x", d, "site", "Primary Tumor", "Female", "TCGA" if s[0] == "T"
                   else "GTEX"]) for s, d in zip(samples, dis, strict=True)]
    rows.append("\t".join(["TCGA-99-01", "x", "Lung", "site", "t", "Male", "TCGA"]))
    with gzip.open(folder / "TcgaTargetGTEX_phenotype.txt.gz", "wt", encoding="latin-1") as f:
        f.write("\n".join(rows) + "\n")
    reg = {"xena": {"title": "test", "folder": "xena-toil",
                    "matrix": "TcgaTargetGtex_rsem_gene_tpm.gz",
                    "phenotype": "TcgaTargetGTEX_phenotype.txt.gz",
                    "files": {"TcgaTargetGtex_rsem_gene_tpm.gz": {"url": "https://x/m.gz"},
                              "TcgaTargetGTEX_phenotype.txt.gz": {"url": "https://x/p.gz"}}}}
    return {"root": tmp_path / "root", "reg": reg, "tpm": tpm, "samples": samples,
            "folder": folder, "dis": dis}


def test_read_xena_matrix_converts_to_log2_tpm_plus_one(xena):
    logx, ids, genes = ex.read_xena_matrix(xena["folder"] / "TcgaTargetGtex_rsem_gene_tpm.gz")
    assert ids == xena["samples"] and len(genes) == 5
    assert np.allclose(logx, np.log2(xena["tpm"].T + 1), atol=1e-3)
    sub, ids2, genes2 = ex.read_xena_matrix(
        xena["folder"] / "TcgaTargetGtex_rsem_gene_tpm.gz", samples=ids[::-1], n_top=2)
    var = np.log2(xena["tpm"] + 1).var(1)
    assert set(genes2) == {genes[k] for k in np.argsort(-var)[:2]}
    assert ids2 == ids[::-1]
    with pytest.raises(DataError, match="not in the matrix"):
        ex.read_xena_matrix(xena["folder"] / "TcgaTargetGtex_rsem_gene_tpm.gz",
                            samples=["nope"])


def test_read_xena_phenotype_and_load_xena(xena):
    ph = ex.read_xena_phenotype(xena["folder"] / "TcgaTargetGTEX_phenotype.txt.gz")
    assert ph["GTEX-01"]["primary disease or tissue"] == "Lung"
    d = ex.load_xena(xena["root"], xena["reg"], n_top=3, min_per_label=3)
    assert d.X.shape == (10, 3) and not d.synthetic and "xena" in d.source
    assert d.label_names == ["Breast Invasive Carcinoma", "Lung", "Lung Adenocarcinoma"]
    assert (d.fate == -1).all() and not d.progenitor.any()
    C = np.stack([d.X[d.labels == k].mean(0) for k in range(3)])
    assert np.allclose(d.reference, pdist(C))
    assert len(ex.load_xena(xena["root"], xena["reg"], min_per_label=4).label_names) == 1


def test_truncated_and_malformed_files_are_clear_errors(xena):
    m = xena["folder"] / "TcgaTargetGtex_rsem_gene_tpm.gz"
    raw = m.read_bytes()
    m.write_bytes(raw[: len(raw) // 2])  # truncated gzip
    with pytest.raises(DataError, match="corrupt or truncated"):
        ex.read_xena_matrix(m)
    with gzip.open(m, "wt") as f:
        f.write("sample\tA\tB\nG1\t1.0\n")
    with pytest.raises(DataError, match="line 2 has 2 fields"):
        ex.read_xena_matrix(m)
    with gzip.open(m, "wt") as f:
        f.write("sample\tA\nG1\tNA?\n")
    with pytest.raises(DataError, match="non-numeric"):
        ex.read_xena_matrix(m)
    p = xena["folder"] / "TcgaTargetGTEX_phenotype.txt.gz"
    with gzip.open(p, "wt") as f:
        f.write("id\tfoo\nA\tB\n")
    with pytest.raises(DataError, match="not the Xena phenotype"):
        ex.read_xena_phenotype(p)


def test_read_table_checks_field_counts(tmp_path):
    t = tmp_path / "t.txt"
    t.write_text("a\tb\n1\t2\n3\n")
    with pytest.raises(DataError, match="row 3"):
        ex.read_table(t)
    t.write_text("a\tb\n1\t2\n")
    assert ex.read_table(t) == (["a", "b"], [["1", "2"]])


def write_mtx(path, dense, field="real"):
    r, c = np.nonzero(dense)
    lines = [f"%%MatrixMarket matrix coordinate {field} general", "%",
             f"{dense.shape[0]} {dense.shape[1]} {len(r)}"]
    lines += [f"{i + 1} {j + 1} {dense[i, j]:g}" for i, j in zip(r, c, strict=True)]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture
def weinreb(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "root" / "weinreb2020"
    folder.mkdir(parents=True)
    n, g = 12, 6
    counts = rng.poisson(2.0, size=(n, g)).astype(float) * 1.5
    write_mtx(folder / "stateFate_inVitro_normed_counts.mtx.gz", counts)
    with gzip.open(folder / "stateFate_inVitro_gene_names.txt.gz", "wt") as f:
        f.write("\n".join(f"Gene{k}" for k in range(g)) + "\n")
    # cells 0-3 day 2 undiff; clones: {0, 4, 5} → neutrophil; {1, 6, 7} → monocyte (2:1);
    # {2, 8, 9} → tie; 3 has no clone
    time = [2, 2, 2, 2, 4, 6, 4, 6, 4, 6, 4, 6]
    ctype = ["undiff"] * 4 + ["Neutrophil", "Neutrophil", "Monocyte", "Monocyte",
                              "Neutrophil", "Monocyte", "Baso", "Monocyte"]
    clones = np.zeros((n, 4), int)
    for c, members in enumerate([[0, 4, 5], [1, 6, 7, 11], [2, 8, 9], [10]]):
        clones[members, c] = 1
    clones[11, 1] = 1
    head = ["Library", "Cell barcode", "Time point", "Starting population",
            "Cell type annotation", "Well", "SPRING-x", "SPRING-y"]
    rows = ["\t".join(head)] + ["\t".join(["d6_2", f"AAA{k}", f"{time[k]:.1f}", "LK",
                                           ctype[k], "0", "1.0", "2.0"]) for k in range(n)]
    with gzip.open(folder / "stateFate_inVitro_metadata.txt.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    write_mtx(folder / "stateFate_inVitro_clone_matrix.mtx.gz", clones, "integer")
    files = ["stateFate_inVitro_normed_counts.mtx.gz", "stateFate_inVitro_gene_names.txt.gz",
             "stateFate_inVitro_metadata.txt.gz", "stateFate_inVitro_clone_matrix.mtx.gz"]
    reg = {"weinreb": {"title": "test", "folder": "weinreb2020", "counts": files[0],
                       "genes": files[1], "metadata": files[2], "clones": files[3],
                       "files": {f: {"url": f"https://x/{f}"} for f in files}}}
    return {"root": tmp_path / "root", "reg": reg, "counts": counts, "folder": folder,
            "time": time, "ctype": ctype, "clones": clones}


def test_read_mtx_roundtrip_and_errors(weinreb, tmp_path):
    r, c, v, shape = ex.read_mtx(weinreb["folder"] / "stateFate_inVitro_normed_counts.mtx.gz")
    dense = np.zeros(shape)
    dense[r, c] = v
    assert np.allclose(dense, weinreb["counts"])
    bad = tmp_path / "bad.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n2 2 3\n1 1 1\n")
    with pytest.raises(DataError, match="header says 3 entries"):
        ex.read_mtx(bad)
    bad.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n3 1 1\n")
    with pytest.raises(DataError, match="outside"):
        ex.read_mtx(bad)
    bad.write_text("hello\n")
    with pytest.raises(DataError, match="not a MatrixMarket"):
        ex.read_mtx(bad)


def test_weinreb_fates_from_clone_majority(weinreb):
    r, c = np.nonzero(weinreb["clones"])
    f = ex.weinreb_fates(np.array(weinreb["time"], float), weinreb["ctype"], r, c)
    assert f[:4].tolist() == [0, 1, -1, -1]  # neutrophil, monocyte (2 vs 0), tie, none
    assert (f[4:] == -1).all()


def test_load_weinreb(weinreb):
    d = ex.load_weinreb(weinreb["root"], weinreb["reg"], n_top=4)
    assert d.X.shape == (12, 4) and "weinreb" in d.source and not d.synthetic
    assert d.fate[:4].tolist() == [0, 1, -1, -1] and d.progenitor.sum() == 2
    assert set(d.label_names) == set(weinreb["ctype"])
    lx = np.log2(weinreb["counts"] + 1)
    keep = np.sort(np.argsort(-lx.var(0), kind="stable")[:4])
    assert np.allclose(d.X, (lx[:, keep] - lx[:, keep].mean(0)) / lx[:, keep].std(0),
                       atol=1e-5)
    few = ex.load_weinreb(weinreb["root"], weinreb["reg"], max_cells=3)
    assert len(few.X) == 3 and (few.fate >= 0).sum() == 2  # fate-labelled cells kept first


def test_missing_dataset_says_how_to_get_it(xena, tmp_path):
    with pytest.raises(data.DataMissing) as e:
        ex.check_available("xena", tmp_path / "empty", xena["reg"])
    msg = str(e.value)
    assert "https://x/m.gz" in msg and "dataset=synthetic" in msg and "data get xena" in msg
    ex.check_available("xena", xena["root"], xena["reg"])
    ex.check_available("synthetic")
    with pytest.raises(data.UnknownDataset, match="unknown dataset 'nope'"):
        data.locate("nope", root=xena["root"], reg=xena["reg"])
    with pytest.raises(DataError, match="unknown expression dataset"):
        ex.load("nope")


def test_registered_checksum_is_verified(xena):
    m = xena["folder"] / "TcgaTargetGtex_rsem_gene_tpm.gz"
    spec = xena["reg"]["xena"]["files"]["TcgaTargetGtex_rsem_gene_tpm.gz"]
    spec["sha256"] = sha_gz(m)  # of the uncompressed bytes
    found = data.locate("xena", root=xena["root"], reg=xena["reg"])
    assert found["TcgaTargetGtex_rsem_gene_tpm.gz"] == m
    assert verified_files()[str(m)] == spec["sha256"]  # recorded for the run's provenance
    spec["sha256"] = "0" * 64
    with pytest.raises(DataError, match="sha256 mismatch"):
        data.locate("xena", root=xena["root"], reg=xena["reg"])


def test_fetch_downloads_from_the_registered_urls(xena, tmp_path, monkeypatch):
    # file:// URLs: the downloader runs end to end without a network
    monkeypatch.delenv("HYPERRIBBON_DOWNLOAD", raising=False)
    src = xena["folder"]
    reg = {"xena": dict(xena["reg"]["xena"])}
    reg["xena"]["files"] = {fn: {"url": (src / fn).as_uri()} for fn in
                            ("TcgaTargetGtex_rsem_gene_tpm.gz",
                             "TcgaTargetGTEX_phenotype.txt.gz")}
    out = data.fetch("xena", tmp_path / "dl", reg)
    assert (out / "TcgaTargetGtex_rsem_gene_tpm.gz").read_bytes() == \
        (src / "TcgaTargetGtex_rsem_gene_tpm.gz").read_bytes()
    reg["xena"]["files"]["TcgaTargetGTEX_phenotype.txt.gz"]["url"] = (tmp_path / "no").as_uri()
    (out / "TcgaTargetGTEX_phenotype.txt.gz").unlink()
    with pytest.raises(DataError, match="failed"):
        data.fetch("xena", tmp_path / "dl", reg)
    monkeypatch.setenv("HYPERRIBBON_DOWNLOAD", "0")  # downloads off: refused, nothing written
    with pytest.raises(DataError, match="downloads are off"):
        data.fetch("xena", tmp_path / "dl2", reg)
    assert not (tmp_path / "dl2").exists()


def test_check_reports_present_missing_and_corrupt(xena, tmp_path):
    (st,) = data.check(xena["root"], xena["reg"])
    assert (st.name, st.status) == ("xena", "present") and "no registered sha256" in st.detail
    assert data.check(tmp_path / "empty", xena["reg"])[0].status == "missing"
    assert data.check(tmp_path / "no sha256 mismatch", xena["reg"])[0].status == "missing"
    xena["reg"]["xena"]["files"]["TcgaTargetGtex_rsem_gene_tpm.gz"]["sha256"] = "0" * 64
    assert data.check(xena["root"], xena["reg"])[0].status == "corrupt"


def test_cli_data_check_lists_expression_sets(tmp_path, monkeypatch, capsys):
    from hyperribbon.compendium.cli import main

    monkeypatch.setenv("HYPERRIBBON_DATA", str(tmp_path))
    monkeypatch.setenv("HYPERRIBBON_DOWNLOAD", "0")
    assert main(["data", "check", "xena", "weinreb"]) == 0
    out = capsys.readouterr().out
    assert "xena" in out and "weinreb" in out and "missing" in out and "mnist" not in out
    assert main(["data", "check", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["data", "get", "xena"]) == 1  # downloads off: a clear error
    assert "downloads are off" in capsys.readouterr().err


def test_repository_registry_lists_both_datasets():
    reg = data.registry()
    for name, keys in (("xena", ("matrix", "phenotype")),
                       ("weinreb", ("counts", "genes", "metadata", "clones"))):
        e = reg[name]
        for k in keys:
            assert e[k] in e["files"]
        for spec in e["files"].values():
            assert spec["url"].startswith("https://")
        assert e["license"] and e["citation"] and e["source"]


def test_load_dispatches(xena):
    assert ex.load("synthetic", seed=0, n_cells=100, n_genes=20).synthetic
    assert ex.load("xena", root=xena["root"], reg=xena["reg"], min_per_label=3).X.shape[0] == 10


def test_replicates_splits_and_availability_check(xena):
    reps = ex.replicates("synthetic", [3, 4], 0.25, n_cells=200, n_genes=12)
    assert len(reps) == 2 and reps[0][0].source != reps[1][0].source
    for _, test in reps:
        assert test.dtype == bool and 0.1 < test.mean() < 0.4
    assert np.array_equal(ex.test_rows(100, 0.3, 1), ex.test_rows(100, 0.3, 1))
    with pytest.raises(ValueError, match="test_fraction"):
        ex.test_rows(10, 1.5, 0)
    real = ex.replicates("xena", [0, 1], 0.5, root=xena["root"], reg=xena["reg"],
                         min_per_label=3)
    assert real[0][0] is real[1][0] and not np.array_equal(real[0][1], real[1][1])
    ex.check_available("synthetic")
    with pytest.raises(ValueError, match="dataset"):
        ex.check_available("mnist")
    with pytest.raises(DataError, match="dataset=synthetic"):
        ex.check_available("weinreb", xena["root"], {"weinreb": {
            "folder": "w", "files": {"a.gz": {"url": "https://x/a.gz"}}}})


def test_holdout_clusters_rule(xena):
    d = ex.synthetic_expression(n_cells=300, n_genes=12, n_tissues=6, seed=0)
    names = [d.label_names[c] for c in ex.holdout_clusters(d, 2)]
    assert names == ["tissue 2", "tissue 5"]  # interior of the arc, evenly spaced
    assert [d.label_names[c] for c in ex.holdout_clusters(d, 4)] == \
        ["tissue 2", "tissue 3", "tissue 4", "tissue 5"]
    with pytest.raises(ValueError, match="n_holdout"):
        ex.holdout_clusters(d, 5)
    real = ex.load_xena(xena["root"], xena["reg"], min_per_label=3)
    assert ex.holdout_clusters(real, 1) == [real.label_names.index("Lung")]  # the largest
