"""Expression data for chapter 7: a synthetic generator with known latent geometry, and
loaders of the real data sets (UCSC Xena TcgaTargetGtex; Weinreb et al. 2020 LARRY).

The synthetic generator is the default everywhere (it runs offline) and is named
"synthetic" in every output: a branching differentiation process (a progenitor pool
branching into fates) plus separate "tissue" clusters and other continuous programmes in
a ``true_dim``-dimensional latent space, seen through smooth sigmoidal gene programmes
with negative-binomial counts, then preprocessed like the real data. Each progenitor
carries a hidden fate, a weak shift towards its destination; the ground-truth latent
positions are kept for scoring.

The real data sets are registered in ``data/datasets.yml`` (``kind: expression``: files,
canonical URLs, license, citation, checksums where known) and found through
:mod:`hyperribbon.data` under the data root (``HYPERRIBBON_DATA``); a missing file is a
:class:`~hyperribbon.data.DataMissing` that says how to get it, a file with a registered
sha256 is verified before use. They are downloaded only on request
(``hyperribbon data get xena``), never implicitly.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import DataError, DataMissing, entry, locate

SYNTHETIC = "synthetic"
REAL = ("xena", "weinreb")
DATASETS = (SYNTHETIC, *REAL)


# ---------------------------------------------------------------------------------------
# The data as the chapter uses it

@dataclass
class ExpressionData:
    """A preprocessed expression matrix with its labels.

    Attributes
    ----------
    X : (N, G) float32, preprocessed (log, top genes by variance, z-scored per gene)
    labels : (N,) int, cluster index into ``label_names``
    label_names : cluster names (cell type / tissue / cancer type)
    fate : (N,) int, eventual fate (index into ``fate_names``) of cells whose fate is
        known, −1 elsewhere
    progenitor : (N,) bool, the undifferentiated cells whose fate is to be predicted
    reference : condensed pairwise distances between the label centroids (label order):
        ground-truth latent distances (synthetic) or distances in preprocessed gene space
    source : "synthetic (...)" or the data set's name; shown in every output
    latent : (N, true_dim) ground-truth latent positions (synthetic only)
    """

    X: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    fate: np.ndarray
    fate_names: list[str]
    progenitor: np.ndarray
    reference: np.ndarray
    source: str
    genes: list[str] = field(default_factory=list)
    latent: np.ndarray | None = None
    geometry: dict = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.source.startswith(SYNTHETIC)

    def subset(self, rows: np.ndarray) -> ExpressionData:
        """The same data restricted to ``rows`` (labels and reference unchanged)."""
        return ExpressionData(self.X[rows], self.labels[rows], self.label_names,
                              self.fate[rows], self.fate_names, self.progenitor[rows],
                              self.reference, self.source, self.genes,
                              None if self.latent is None else self.latent[rows],
                              self.geometry)


def condensed_distances(C: np.ndarray) -> np.ndarray:
    """Upper-triangle Euclidean distances between the rows of ``C`` (i < j, row-major)."""
    i, j = np.triu_indices(len(C), 1)
    return np.linalg.norm(C[i] - C[j], axis=1)


def preprocess(logexpr: np.ndarray, n_top: int | None = None,
               genes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Keep the ``n_top`` genes of largest variance (all when None) and z-score each gene.

    ``logexpr``: (N, G) log expression (e.g. log2(TPM+1)). Constant genes get z = 0.
    Returns the (N, n_top) float32 matrix and the kept gene names.
    """
    x = np.asarray(logexpr, dtype=np.float64)
    var = x.var(0)
    keep = np.arange(x.shape[1]) if n_top is None or n_top >= x.shape[1] else \
        np.sort(np.argsort(-var, kind="stable")[:n_top])
    x = x[:, keep]
    sd = x.std(0)
    z = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    names = [str(genes[k]) for k in keep] if genes is not None else [f"g{k}" for k in keep]
    return z.astype(np.float32), names


def log_normalise(counts: np.ndarray, scale: float = 1e4) -> np.ndarray:
    """log2(counts / library size · scale + 1) per cell (rows)."""
    c = np.asarray(counts, dtype=np.float64)
    lib = c.sum(1, keepdims=True)
    return np.log2(c / np.where(lib > 0, lib, 1.0) * scale + 1.0)


# ---------------------------------------------------------------------------------------
# The synthetic generator

@dataclass
class Geometry:
    """The declared latent geometry of the synthetic data (true_dim-dimensional)."""

    true_dim: int
    fate_ends: np.ndarray      # (n_fates, true_dim): where each branch ends
    tissue_centres: np.ndarray  # (n_tissues, true_dim)
    progenitor_sd: float
    tissue_sd: float
    other_sd: float
    fate_shift: float


def synthetic_geometry(true_dim: int = 8, n_fates: int = 2, n_tissues: int = 6,
                       branch_length: float = 4.0, tissue_radius: float = 5.0,
                       tissue_arc: float = 2.0, tissue_rise: float = 2.0,
                       progenitor_sd: float = 0.5, tissue_sd: float = 0.5,
                       other_sd: float = 0.6, fate_shift: float = 0.15,
                       seed: int = 0) -> Geometry:
    """The declared latent geometry.

    Fate k's branch runs from the origin (the progenitor pool) to ``branch_length · e_k``
    (dimensions 0 … n_fates−1). The tissues share programmes, like related organs and
    cancer types: their centres lie evenly along an arc of ``tissue_arc`` radians and
    radius ``tissue_radius`` in dimensions n_fates, n_fates+1, rising by
    ``tissue_rise`` along dimension n_fates+2, shifted as a whole by a random vector of
    the branch plane (so tissues relate to the fates) — neighbours along the arc are
    related, its ends far apart. The remaining dimensions carry the other programmes.
    """
    if n_fates < 2 or n_fates + 3 > true_dim:
        raise ValueError(f"n_fates = {n_fates}, true_dim = {true_dim}: need n_fates ≥ 2 "
                         "and true_dim ≥ n_fates + 3")
    if n_tissues < 1:
        raise ValueError(f"n_tissues = {n_tissues}: need ≥ 1")
    rng = np.random.default_rng(seed + 104729)
    ends = np.zeros((n_fates, true_dim))
    ends[np.arange(n_fates), np.arange(n_fates)] = branch_length
    s = np.linspace(0.0, 1.0, n_tissues) if n_tissues > 1 else np.zeros(1)
    phase = rng.uniform(0, 2 * np.pi)
    centres = np.zeros((n_tissues, true_dim))
    centres[:, n_fates] = tissue_radius * np.cos(phase + tissue_arc * s)
    centres[:, n_fates + 1] = tissue_radius * np.sin(phase + tissue_arc * s)
    centres[:, n_fates + 2] = tissue_rise * s
    centres[:, :n_fates] = rng.normal(scale=0.3 * branch_length, size=n_fates)
    return Geometry(true_dim, ends, centres, progenitor_sd, tissue_sd, other_sd, fate_shift)


def synthetic_latent(geom: Geometry, n_cells: int, seed: int = 0,
                     fractions: tuple[float, float, float, float] = (0.25, 0.2, 0.2, 0.35)
                     ) -> dict[str, np.ndarray]:
    """Sample cells in the latent space of ``geom``.

    ``fractions``: progenitors, transit (branch, pseudotime 0.2–0.7), mature
    (pseudotime 0.8–1.0) and tissue cells. Each progenitor has a hidden fate k and sits
    at ``fate_shift · fate_end_k`` + isotropic noise. All cells also vary along every
    latent dimension by ``other_sd`` (the other programmes).

    Returns
    -------
    dict with "z" (n, true_dim), "labels" (n,), "fate" (n,; −1 for tissues),
    "progenitor" (n, bool), "pseudotime" (n,; NaN for tissues), "label_names" (list),
    "centres" (n_labels, true_dim) the declared centre of every label.
    """
    rng = np.random.default_rng(seed)
    F, T, D = len(geom.fate_ends), len(geom.tissue_centres), geom.true_dim
    fr = np.asarray(fractions, float) / np.sum(fractions)
    n_prog, n_tr, n_mat = (int(round(n_cells * f)) for f in fr[:3])
    n_tis = n_cells - n_prog - n_tr - n_mat
    names = ["progenitor"] + [f"transit {chr(65 + k)}" for k in range(F)] + \
        [f"fate {chr(65 + k)}" for k in range(F)] + [f"tissue {j + 1}" for j in range(T)]
    z, lab, fate, ptime = [], [], [], []
    # progenitors: hidden fate, weak shift towards the destination
    f = rng.integers(0, F, n_prog)
    z.append(geom.fate_shift * geom.fate_ends[f] + rng.normal(scale=geom.progenitor_sd,
                                                              size=(n_prog, D)))
    lab.append(np.zeros(n_prog, int))
    fate.append(f)
    ptime.append(np.full(n_prog, geom.fate_shift))
    for n, (lo, hi), off in ((n_tr, (0.2, 0.7), 1), (n_mat, (0.8, 1.0), 1 + F)):
        f = rng.integers(0, F, n)
        t = rng.uniform(lo, hi, n)
        z.append(t[:, None] * geom.fate_ends[f] + rng.normal(scale=geom.progenitor_sd * 0.6,
                                                             size=(n, D)))
        lab.append(off + f)
        fate.append(f)
        ptime.append(t)
    j = rng.integers(0, T, n_tis)
    z.append(geom.tissue_centres[j] + rng.normal(scale=geom.tissue_sd, size=(n_tis, D)))
    lab.append(1 + 2 * F + j)
    fate.append(np.full(n_tis, -1))
    ptime.append(np.full(n_tis, np.nan))
    zz = np.concatenate(z)
    zz = zz + rng.normal(scale=geom.other_sd, size=zz.shape) * _other_mask(F, D)
    centres = np.concatenate([
        geom.fate_shift * geom.fate_ends.mean(0, keepdims=True),
        0.45 * geom.fate_ends, 0.9 * geom.fate_ends, geom.tissue_centres])
    labels = np.concatenate(lab)
    return {"z": zz, "labels": labels, "fate": np.concatenate(fate),
            "progenitor": labels == 0, "pseudotime": np.concatenate(ptime),
            "label_names": names, "centres": centres}


def _other_mask(n_fates: int, true_dim: int) -> np.ndarray:
    """The other programmes vary in the dimensions beyond the branch plane and the
    tissue arc."""
    m = np.ones(true_dim)
    m[:n_fates + 3] = 0.0
    return m


def gene_programmes(true_dim: int, n_genes: int, seed: int = 0,
                    per_gene: int = 2) -> dict[str, np.ndarray]:
    """Random sigmoidal gene programmes: gene g responds to ``per_gene`` latent
    dimensions through log-rate_g(z) = base_g + amp_g · σ(steep_g (w_g·z − c_g))."""
    rng = np.random.default_rng(seed + 7)
    W = np.zeros((n_genes, true_dim))
    for g in range(n_genes):
        dims = rng.choice(true_dim, size=min(per_gene, true_dim), replace=False)
        W[g, dims] = rng.normal(size=len(dims))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return {"W": W, "c": rng.normal(scale=1.5, size=n_genes),
            "steep": rng.uniform(0.6, 1.5, n_genes), "amp": rng.uniform(1.5, 4.0, n_genes),
            "base": rng.normal(loc=0.0, scale=0.5, size=n_genes)}


def expected_counts(z: np.ndarray, prog: dict[str, np.ndarray], library: np.ndarray
                    ) -> np.ndarray:
    """Mean counts (n, G): library size × normalised exp(log-rate) of every programme."""
    from scipy.special import expit

    s = prog["steep"] * (z @ prog["W"].T - prog["c"])
    lograte = prog["base"] + prog["amp"] * expit(s)
    rate = np.exp(lograte)
    return library[:, None] * rate / rate.sum(1, keepdims=True)


def nb_sample(mean: np.ndarray, dispersion: float, rng: np.random.Generator) -> np.ndarray:
    """Negative-binomial counts with the given means and dispersion r (variance
    μ + μ²/r), as a Gamma–Poisson mixture."""
    lam = rng.gamma(shape=dispersion, scale=mean / dispersion)
    return rng.poisson(lam)


def synthetic_expression(n_cells: int = 2000, n_genes: int = 200, true_dim: int = 8,
                         n_fates: int = 2, n_tissues: int = 6, fate_shift: float = 0.15,
                         library_size: float = 5000.0, dispersion: float = 10.0,
                         n_top: int | None = None, seed: int = 0,
                         fractions: tuple[float, float, float, float] = (0.25, 0.2, 0.2, 0.35),
                         **geometry) -> ExpressionData:
    """Synthetic branching expression with known latent geometry (see the module doc).

    The geometry and the gene programmes depend on ``seed`` too, so every seed is a
    fresh data set. ``reference`` holds the ground-truth distances between the declared
    label centres; ``latent`` the cells' true positions; ``fate`` the hidden fate of the
    progenitors (and the branch of every differentiating cell).
    """
    geom = synthetic_geometry(true_dim, n_fates, n_tissues, fate_shift=fate_shift,
                              seed=seed, **geometry)
    lat = synthetic_latent(geom, n_cells, seed, fractions)
    prog = gene_programmes(true_dim, n_genes, seed)
    rng = np.random.default_rng(seed + 31)
    lib = library_size * np.exp(rng.normal(scale=0.25, size=n_cells))
    counts = nb_sample(expected_counts(lat["z"], prog, lib), dispersion, rng)
    X, genes = preprocess(log_normalise(counts), n_top,
                          [f"synthetic_gene_{g}" for g in range(n_genes)])
    src = (f"synthetic (branching, {n_fates} fates, {n_tissues} tissues, true dimension "
           f"{true_dim}, {n_cells} cells, {len(genes)} genes, seed {seed})")
    return ExpressionData(X, lat["labels"], lat["label_names"], lat["fate"],
                          [f"fate {chr(65 + k)}" for k in range(n_fates)], lat["progenitor"],
                          condensed_distances(lat["centres"]), src, genes, lat["z"],
                          {"geometry": geom, "centres": lat["centres"], "counts": counts,
                           "pseudotime": lat["pseudotime"]})


# ---------------------------------------------------------------------------------------
# Readers of the real file formats

def _open_text(path: Path, encoding: str = "utf-8"):
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")


def read_table(path: Path, sep: str = "\t", encoding: str = "utf-8"
               ) -> tuple[list[str], list[list[str]]]:
    """A (gzipped) delimited text table with a header row → (header, rows)."""
    try:
        with _open_text(Path(path), encoding) as f:
            lines = [ln.rstrip("\r\n") for ln in f if ln.strip()]
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); the file is corrupt or "
                        "truncated") from exc
    if not lines:
        raise DataError(f"{path}: empty table")
    header = lines[0].split(sep)
    rows = [ln.split(sep) for ln in lines[1:]]
    bad = next((k for k, r in enumerate(rows) if len(r) != len(header)), None)
    if bad is not None:
        raise DataError(f"{path}: row {bad + 2} has {len(rows[bad])} fields, the header "
                        f"{len(header)}; the file is corrupt or not {sep!r}-separated")
    return header, rows


def read_xena_matrix(path: Path, samples: Sequence[str] | None = None,
                     n_top: int | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """Read a UCSC Xena genes × samples matrix (gzipped TSV: a header ``sample`` + sample
    ids, then one row per gene: id and log2(TPM + 0.001) values).

    Returns log2(TPM + 1) as (n_samples, n_genes) float32, the sample ids and the gene
    ids. ``samples`` keeps those columns (in that order); ``n_top`` keeps the genes of
    largest log2(TPM+1) variance, streaming (two passes, one gene row in memory at a
    time, so the full 60k × 19k matrix never is).
    """
    path = Path(path)

    def rows():
        try:
            with _open_text(path) as f:
                header = f.readline().rstrip("\r\n").split("\t")
                if len(header) < 2:
                    raise DataError(f"{path}: not a Xena matrix (header {header[:3]})")
                yield header
                for k, line in enumerate(f, start=2):
                    if not line.strip():
                        continue
                    parts = line.rstrip("\r\n").split("\t")
                    if len(parts) != len(header):
                        raise DataError(f"{path}: line {k} has {len(parts)} fields, the "
                                        f"header {len(header)}; the file is corrupt or "
                                        "truncated")
                    yield parts
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot be read ({exc}); the file is corrupt or "
                            "truncated") from exc

    def values(parts, cols):
        try:
            v = np.array(parts[1:], dtype=np.float64)[cols]
        except ValueError as exc:
            raise DataError(f"{path}: gene {parts[0]!r} has a non-numeric value") from exc
        return np.log2(np.exp2(v) - 0.001 + 1.0).astype(np.float32)

    it = rows()
    header = next(it)
    ids = header[1:]
    if samples is None:
        cols = np.arange(len(ids))
    else:
        pos = {s: k for k, s in enumerate(ids)}
        miss = [s for s in samples if s not in pos]
        if miss:
            raise DataError(f"{path}: {len(miss)} requested samples are not in the matrix "
                            f"(e.g. {miss[0]!r})")
        cols = np.array([pos[s] for s in samples], dtype=int)
    keep: set[str] | None = None
    if n_top is not None:
        var = [(values(p, cols).var(), p[0]) for p in it]
        var.sort(key=lambda t: -t[0])
        keep = {g for _, g in var[:n_top]}
        it = rows()
        next(it)
    genes, data = [], []
    for p in it:
        if keep is None or p[0] in keep:
            genes.append(p[0])
            data.append(values(p, cols))
    if not data:
        raise DataError(f"{path}: no gene rows")
    return np.stack(data, axis=1), [ids[c] for c in cols], genes


XENA_LABEL = "primary disease or tissue"


def read_xena_phenotype(path: Path) -> dict[str, dict[str, str]]:
    """The Xena TcgaTargetGTEX phenotype table → sample id → {column: value} (columns
    sample, detailed_category, primary disease or tissue, _primary_site, _sample_type,
    _gender, _study)."""
    header, rows = read_table(Path(path), encoding="latin-1")
    if header[0] != "sample" or XENA_LABEL not in header:
        raise DataError(f"{path}: not the Xena phenotype table (header {header})")
    return {r[0]: dict(zip(header, r, strict=True)) for r in rows}


def _reference_from_X(X: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    return condensed_distances(np.stack([X[labels == c].mean(0) for c in range(n)]))


def load_xena(root: Path | None = None, reg: dict | None = None, n_top: int = 5000,
              label: str = XENA_LABEL, min_per_label: int = 20,
              max_per_label: int | None = None, seed: int = 0) -> ExpressionData:
    """TCGA + TARGET + GTEx (UCSC Xena TOIL recompute): log2(TPM+1), top ``n_top``
    genes by variance, z-scored; labels = ``label`` (tissue / cancer type) with at least
    ``min_per_label`` samples, at most ``max_per_label`` drawn per label. No fates."""
    files = locate("xena", root=root, reg=reg)
    e = entry("xena", reg)
    pheno = read_xena_phenotype(files[e["phenotype"]])
    by: dict[str, list[str]] = {}
    for s, row in pheno.items():
        by.setdefault(row.get(label, ""), []).append(s)
    rng = np.random.default_rng(seed)
    keep_labels = sorted(k for k, v in by.items() if k and len(v) >= min_per_label)
    samples: list[str] = []
    for k in keep_labels:
        v = by[k]
        if max_per_label is not None and len(v) > max_per_label:
            v = list(rng.choice(v, max_per_label, replace=False))
        samples += v
    with _open_text(files[e["matrix"]]) as f:
        have = set(f.readline().rstrip("\r\n").split("\t")[1:])
    samples = [s for s in samples if s in have]
    if not samples:
        raise DataError("xena: no sample of the phenotype table is in the matrix")
    logx, ids, genes = read_xena_matrix(files[e["matrix"]], samples, n_top)
    X, genes = preprocess(logx, None, genes)
    names = sorted({pheno[s][label] for s in ids})
    lab = np.array([names.index(pheno[s][label]) for s in ids])
    return ExpressionData(X, lab, names, np.full(len(ids), -1), [],
                          np.zeros(len(ids), bool), _reference_from_X(X, lab, len(names)),
                          "xena (UCSC Xena TcgaTargetGtex, TOIL recompute)", genes)


def read_mtx(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """A (gzipped) Matrix Market coordinate file → (rows, cols, values, shape), 0-based."""
    try:
        with _open_text(Path(path)) as f:
            head = f.readline()
            if not head.startswith("%%MatrixMarket matrix coordinate"):
                raise DataError(f"{path}: not a MatrixMarket coordinate file")
            pattern = "pattern" in head
            line = f.readline()
            while line.startswith("%"):
                line = f.readline()
            n_r, n_c, nnz = (int(t) for t in line.split())
            body = np.loadtxt(f, ndmin=2) if nnz else np.zeros((0, 3))
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); the file is corrupt or "
                        "truncated") from exc
    if len(body) != nnz:
        raise DataError(f"{path}: header says {nnz} entries, found {len(body)}")
    r, c = body[:, 0].astype(np.int64) - 1, body[:, 1].astype(np.int64) - 1
    v = np.ones(nnz) if pattern else body[:, 2]
    if nnz and (r.min() < 0 or c.min() < 0 or r.max() >= n_r or c.max() >= n_c):
        raise DataError(f"{path}: an entry lies outside the declared {n_r} × {n_c}")
    return r, c, v, (n_r, n_c)


WEINREB_FATES = ("Neutrophil", "Monocyte")


def weinreb_fates(time: np.ndarray, cell_type: Sequence[str], clone_rows: np.ndarray,
                  clone_cols: np.ndarray, early: float = 2.0,
                  fates: Sequence[str] = WEINREB_FATES) -> np.ndarray:
    """Eventual fate of each early undifferentiated cell from its clone: the majority
    among ``fates`` of its clone-mates at later time points (−1 without such mates or
    on a tie, and for every other cell)."""
    ct = np.asarray(cell_type)
    t = np.asarray(time, float)
    n = len(t)
    counts = np.zeros((clone_cols.max() + 1 if len(clone_cols) else 0, len(fates)))
    late = t[clone_rows] > early
    for k, name in enumerate(fates):
        sel = late & (ct[clone_rows] == name)
        np.add.at(counts[:, k], clone_cols[sel], 1)
    out = np.full(n, -1)
    for r, c in zip(clone_rows, clone_cols, strict=True):
        if t[r] == early and ct[r] == "undiff":
            row = counts[c]
            top = np.flatnonzero(row == row.max())
            if row.max() > 0 and len(top) == 1:
                out[r] = int(top[0])
    return out


def load_weinreb(root: Path | None = None, reg: dict | None = None, n_top: int = 5000,
                 max_cells: int | None = 20000, seed: int = 0) -> ExpressionData:
    """Weinreb et al. 2020 in-vitro LARRY data: normalised counts (cells × genes mtx),
    gene names, metadata (time point, cell type annotation) and clone matrix; log2(x+1),
    top ``n_top`` genes, z-scored. Labels = cell type annotation; ``fate`` of day-2
    undifferentiated cells (neutrophil / monocyte) from their clones. At most
    ``max_cells`` cells are kept (all fate-labelled ones first)."""
    files = locate("weinreb", root=root, reg=reg)
    e = entry("weinreb", reg)
    r, c, v, (n, g) = read_mtx(files[e["counts"]])
    genes = _read_lines(files[e["genes"]])
    header, meta = read_table(files[e["metadata"]])
    if len(genes) != g or len(meta) != n:
        raise DataError(f"weinreb: {n} × {g} counts but {len(meta)} metadata rows and "
                        f"{len(genes)} gene names")
    col = {h: k for k, h in enumerate(header)}
    for need in ("Time point", "Cell type annotation"):
        if need not in col:
            raise DataError(f"{files[e['metadata']]}: no column {need!r}")
    time = np.array([float(m[col["Time point"]]) for m in meta])
    ctype = [m[col["Cell type annotation"]] for m in meta]
    cr, cc, _, (cn, _) = read_mtx(files[e["clones"]])
    if cn != n:
        raise DataError(f"weinreb: the clone matrix has {cn} rows, the counts {n}")
    fate = weinreb_fates(time, ctype, cr, cc)
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(fate >= 0)
    others = rng.permutation(np.flatnonzero(fate < 0))
    if max_cells is not None:
        others = others[:max(0, max_cells - len(rows))]
    rows = np.sort(np.concatenate([rows, others]))
    dense = np.zeros((n, g), np.float32)
    dense[r, c] = v
    X, kept = preprocess(np.log2(dense[rows] + 1.0), n_top, genes)
    names = sorted({ctype[i] for i in rows})
    lab = np.array([names.index(ctype[i]) for i in rows])
    return ExpressionData(X, lab, names, fate[rows], list(WEINREB_FATES), fate[rows] >= 0,
                          _reference_from_X(X, lab, len(names)),
                          "weinreb (Weinreb et al. 2020, in-vitro LARRY)", kept)


def _read_lines(path: Path) -> list[str]:
    try:
        with _open_text(Path(path)) as f:
            return [ln.strip() for ln in f if ln.strip()]
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from exc


def load(name: str, seed: int = 0, root: Path | None = None, reg: dict | None = None,
         **kwargs) -> ExpressionData:
    """The chapter's data by name: "synthetic" (the default, offline), "xena" or
    "weinreb" (files under the data root; a clear :class:`DataError` when missing)."""
    if name == SYNTHETIC:
        return synthetic_expression(seed=seed, **kwargs)
    if name == "xena":
        return load_xena(root, reg, seed=seed, **kwargs)
    if name == "weinreb":
        return load_weinreb(root, reg, seed=seed, **kwargs)
    raise DataError(f"unknown expression dataset {name!r}; use one of {', '.join(DATASETS)}")


def check_available(name: str, root: Path | None = None, reg: dict | None = None) -> None:
    """Raise a :class:`DataError` that says how to obtain a real data set when its files
    are missing (or ``ValueError`` for an unknown name); nothing for "synthetic"."""
    if name not in DATASETS:
        raise ValueError(f"dataset = {name!r}: use one of {', '.join(DATASETS)}")
    if name != SYNTHETIC:
        try:
            locate(name, root=root, reg=reg)
        except DataMissing as exc:
            raise DataMissing(f"{exc} Without a network, use dataset=synthetic.") from None


def test_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """A random boolean mask of about ``fraction`` of ``n`` rows (the test split)."""
    if not 0 < fraction < 1:
        raise ValueError(f"test_fraction = {fraction}: must be in (0, 1)")
    return np.random.default_rng(seed + 99991).random(n) < fraction


def replicates(name: str, seeds: Sequence[int], test_fraction: float = 0.2,
               root: Path | None = None, reg: dict | None = None,
               **kwargs) -> list[tuple[ExpressionData, np.ndarray]]:
    """One (data, test mask) pair per seed: a fresh synthetic data set per seed, or the
    same real data set with a fresh test split per seed."""
    if name == SYNTHETIC:
        data = [synthetic_expression(seed=int(s), **kwargs) for s in seeds]
    else:
        one = load(name, seed=int(seeds[0]), root=root, reg=reg, **kwargs)
        data = [one] * len(seeds)
    return [(d, test_rows(len(d.X), test_fraction, int(s)))
            for d, s in zip(data, seeds, strict=True)]


def holdout_clusters(data: ExpressionData, n: int) -> list[int]:
    """The clusters to hold out, chosen without looking at any score: for the synthetic
    data, ``n`` interior tissues evenly spaced along the tissue arc (their programmes are
    shared with the tissues kept, as related cancer types share theirs); for real data,
    the ``n`` most populous clusters other than the progenitors."""
    if data.synthetic:
        tissues = [k for k, name in enumerate(data.label_names) if name.startswith("tissue")]
        inner = tissues[1:-1]
        if not 1 <= n <= len(inner):
            raise ValueError(f"n_holdout = {n}: choose 1 … {len(inner)} (interior tissues)")
        return [inner[int(round(x))] for x in np.linspace(0, len(inner) - 1, n)]
    counts = np.bincount(data.labels, minlength=len(data.label_names)).astype(float)
    counts[np.unique(data.labels[data.progenitor])] = -1
    if not 1 <= n < len(data.label_names):
        raise ValueError(f"n_holdout = {n}: choose 1 … {len(data.label_names) - 1}")
    return [int(k) for k in np.argsort(-counts, kind="stable")[:n]]
