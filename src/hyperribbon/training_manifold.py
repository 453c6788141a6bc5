"""Chapter 4: a grid of training runs and the geometry of all their checkpoints.

After Mao et al., PNAS 2024 (``../shared/papers/04_training_manifold.md``). The grid is
data (:func:`build_grid` returns configurations, each a list of :class:`RunSpec` over
seeds); :func:`study` trains it with :func:`hyperribbon.training.train` (cached), drops
runs above the training-error threshold, and computes the geometry of the brief:

- the d_B matrix of every checkpoint of every kept run, with P0, P* and points on the
  geodesic between them, and its InPCA (signed eigenvalues, explained stress);
- the progress t* of every checkpoint (d_B to the geodesic, ``00_common.md``);
- standard runs re-indexed on a grid over the progress range they all reach
  (:func:`hyperribbon.trajectory.common_range`: never over padding), tube widths of the
  seeds of each configuration around their mean trajectory, run-to-run trajectory
  distances and their decomposition (same configuration / same architecture / different
  architectures), configuration distances (mean over seed pairs) and their
  complete-linkage dendrogram;
- the wider member of a family against the narrower one (epochs to each progress level);
- corner initialisations on held-out samples: distance to the standard runs' end point
  at the start and at the end.

Means of models are taken on the sphere of sqrt(p) (:func:`hyperribbon.trajectory.sphere_mean`),
not as the arithmetic mean of p the authors' code uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperribbon import trajectory as tj
from hyperribbon.inpca import InPCA, bhattacharyya, bhattacharyya_paired, inpca
from hyperribbon.training import (
    INITS,
    OPTIMIZERS,
    Run,
    RunSpec,
    Samples,
    SpecError,
    samples,
    train,
)

CORNERS = tuple(i for i in INITS if i != "standard")
VARIATIONS = ("sgd", "wd", "augment")


@dataclass(frozen=True)
class Config:
    """One configuration of the grid: its runs differ only in their seed.

    Attributes
    ----------
    name : e.g. "mlp-64 adam", "mlp-64 nesterov +augment", "mlp-64 nesterov corner:noisy"
    arch : architecture label "family-width" (what the architecture claims compare)
    family, width, optimizer : as in the specs
    variation : "" or one of :data:`VARIATIONS`
    corner : "standard" or one of :data:`CORNERS`
    specs : one RunSpec per seed
    """

    name: str
    arch: str
    family: str
    width: int
    optimizer: str
    variation: str
    corner: str
    specs: tuple[RunSpec, ...]


def parse_arch(text: str) -> tuple[str, int, int]:
    """"family-width" or "family-width-depth" → (family, width, depth); depth 0 is the
    family's default. A clear error otherwise."""
    parts = text.split("-")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"archs: {text!r} is not 'family-width' or 'family-width-depth' "
                         f"(e.g. mlp-64, wrn-64-16)")
    return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0


def build_grid(*, dataset: str, n_train: int, n_embed: int, pool: int, archs: Sequence[str],
               optimizers: Sequence[str], sgd_lr: float, adam_lr: float, batch_size: int,
               ref_batch: int, epochs: int, seeds: Sequence[int], variations: Sequence[str],
               weight_decay: float, corners: Sequence[str], corner_epochs: int,
               tiny_n: int, noise_scale: float, subset_seed: int,
               checkpoints: Sequence[float]) -> list[Config]:
    """The chapter's grid of configurations, each over ``seeds``.

    Every architecture (``archs``, "family-width") with every optimiser; the variations
    (plain SGD, weight decay, augmentation) and the corner initialisations on the first
    architecture with the first optimiser. Learning rates are given at ``ref_batch`` and
    scaled linearly with the batch size. Predictions are recorded on ``n_embed`` training
    samples (a subset of the training samples) and ``n_embed`` test samples.
    ``checkpoints`` is the flat list (until_epoch, every_epochs, until, every, …) of
    :func:`hyperribbon.training.checkpoint_steps`.

    Raises
    ------
    ValueError (a :class:`~hyperribbon.training.SpecError`) naming the parameter, before
    anything trains.
    """
    if not archs or not optimizers or not seeds:
        raise ValueError("archs, optimizers and seeds must each name at least one value")
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise ValueError(f"optimizers: {o!r} is not one of {', '.join(OPTIMIZERS)}")
    for v in variations:
        if v not in VARIATIONS:
            raise ValueError(f"variations: {v!r} is not one of {', '.join(VARIATIONS)}")
    for c in corners:
        if c not in CORNERS:
            raise ValueError(f"corners: {c!r} is not one of {', '.join(CORNERS)}")
    if n_embed > n_train:
        raise ValueError(f"n_embed ({n_embed}) must not exceed n_train ({n_train}): the "
                         f"training samples embedded are a subset of those trained on")
    if len(checkpoints) < 2 or len(checkpoints) % 2:
        raise ValueError(f"checkpoints: give (until_epoch, every_epochs) pairs, got "
                         f"{list(checkpoints)}")
    checkpoints = tuple(zip(checkpoints[::2], checkpoints[1::2], strict=True))
    scale = batch_size / ref_batch
    lr = {"sgd": sgd_lr * scale, "nesterov": sgd_lr * scale, "adam": adam_lr * scale}
    train_s = Samples(dataset, "train", n_train, subset_seed, pool=pool)
    record = (("train", Samples(dataset, "train", n_embed, subset_seed, pool=pool)),
              ("test", Samples(dataset, "test", n_embed, subset_seed, pool=pool)))
    configs = []

    def add(name: str, arch: str, opt: str, variation: str = "", corner: str = "standard",
            **kw: Any) -> None:
        fam, width, depth = parse_arch(arch)
        try:
            specs = tuple(RunSpec(train=train_s, record=record, arch=fam, width=width,
                                  depth=depth,
                                  optimizer=opt, lr=lr[opt], batch_size=batch_size,
                                  epochs=epochs, seed=s, checkpoints=checkpoints, **kw)
                          for s in seeds)
        except SpecError as exc:
            raise SpecError(f"configuration {name!r}: {exc}") from None
        configs.append(Config(name, arch, fam, width, opt, variation, corner, specs))

    for a in archs:
        for o in optimizers:
            add(f"{a} {o}", a, o)
    base_a, base_o = archs[0], optimizers[0]
    extra = {"sgd": ("sgd", {}),
             "wd": (base_o, {"weight_decay": weight_decay}),
             "augment": (base_o, {"augment": True})}
    for v in variations:
        opt, kw = extra[v]
        add(f"{base_a} {opt} +{v}", base_a, opt, variation=v, **kw)
    for c in corners:
        kw = {"random_labels": {"init_epochs": corner_epochs},
              "tiny_subset": {"init_epochs": corner_epochs, "init_n": tiny_n},
              "noisy": {"init_scale": noise_scale}}[c]
        add(f"{base_a} {base_o} corner:{c}", base_a, base_o, corner=c, init=c, **kw)
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"the grid repeats a configuration: {names}")
    return configs


@dataclass
class Study:
    """Everything the chapter plots and claims (see the module docstring). Runs are the
    kept ones; ``r`` indexes them.

    - ``configs``, ``runs``, ``run_config``: kept runs and each one's configuration index.
    - ``dropped``: (config name, seed, final training error) of the runs above the threshold.
    - ``labels_train``, ``labels_test``: labels of the embedded samples.
    - ``n_ckpt``: checkpoints per kept run, in the embedding's order.
    - ``embedding``: InPCA of all checkpoints, then the ``n_geodesic`` geodesic points
      (from P0 to P*).
    - ``geodesic_t``: progress of the geodesic points.
    - ``progress_train``, ``progress_test``: per kept run, progress of each checkpoint.
    - ``grid``: the progress values the standard runs are re-indexed on (common range).
    - ``std_runs``: indices of the standard runs (no corner).
    - ``reindexed``: (R_std, G, M, C) float32 re-indexed trajectories (train samples).
    - ``epochs_at``: (R_std, G) epoch at which each standard run reaches each grid value.
    - ``run_dist``: (R_std, R_std) trajectory distances.
    - ``tubes``: configuration index → (S, G) tube widths.
    - ``std_configs``, ``config_dist``: configurations with standard runs, and their
      distances (mean over seed pairs).
    - ``corner_dist``: run index → (d_start, d_end) on test samples to the standard end.
    - ``std_end_spread``: d_B of each standard seed's end (test) to their mean end.
    - ``train_s``, ``geometry_s``: wall times.
    """

    configs: list[Config]
    runs: list[Run]
    run_config: np.ndarray
    dropped: list[tuple[str, int, float]]
    labels_train: np.ndarray
    labels_test: np.ndarray
    n_ckpt: np.ndarray
    embedding: InPCA
    geodesic_t: np.ndarray
    progress_train: list[np.ndarray]
    progress_test: list[np.ndarray]
    grid: np.ndarray
    std_runs: np.ndarray
    reindexed: np.ndarray
    epochs_at: np.ndarray
    run_dist: np.ndarray
    tubes: dict[int, np.ndarray]
    std_configs: np.ndarray
    config_dist: np.ndarray
    corner_dist: dict[int, tuple[float, float]]
    std_end_spread: np.ndarray
    train_s: float = 0.0
    geometry_s: float = 0.0


def decomposition(run_dist: np.ndarray, config_of: np.ndarray, configs: Sequence[Config]
                  ) -> dict[str, float]:
    """Mean trajectory distance between pairs of distinct runs that share the
    configuration (seed spread), share the architecture but not the configuration
    (optimiser / regularisation effect included), or differ in architecture.

    Returns
    -------
    {"seed": …, "same_arch": …, "between_arch": …} (NaN where no pair exists)
    """
    arch = np.array([configs[c].arch for c in config_of])
    same_c = config_of[:, None] == config_of[None, :]
    same_a = arch[:, None] == arch[None, :]
    off = ~np.eye(len(config_of), dtype=bool)

    def mean(mask: np.ndarray) -> float:
        return float(run_dist[mask & off].mean()) if (mask & off).any() else float("nan")

    return {"seed": mean(same_c), "same_arch": mean(same_a & ~same_c),
            "between_arch": mean(~same_a)}


def dendrogram_purity(config_dist: np.ndarray, arch_labels: Sequence[str]
                      ) -> tuple[float, np.ndarray, np.ndarray]:
    """Complete-linkage clustering of configurations cut into as many clusters as there
    are architectures; purity = the fraction of configurations in a cluster whose
    majority architecture is their own (1 when every architecture joins itself first).

    Returns
    -------
    (purity, linkage matrix, cluster of each configuration)
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = np.asarray(config_dist, dtype=np.float64)
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, 0.0)
    Z = linkage(squareform(np.maximum(D, 0.0), checks=False), method="complete")
    n_arch = len(set(arch_labels))
    clusters = fcluster(Z, t=n_arch, criterion="maxclust")
    labels = np.asarray(arch_labels)
    good = 0
    for c in np.unique(clusters):
        _, counts = np.unique(labels[clusters == c], return_counts=True)
        good += counts.max()
    return good / len(labels), Z, clusters


def faster_fraction(epochs_narrow: np.ndarray, epochs_wide: np.ndarray) -> float:
    """Fraction of progress levels the wide network reaches in no more epochs than the
    narrow one (levels either never reaches are skipped)."""
    a, b = np.asarray(epochs_narrow, float), np.asarray(epochs_wide, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        raise ValueError("no progress level is reached by both networks")
    return float(np.mean(b[ok] <= a[ok]))


def _rows(P: Any) -> np.ndarray:
    """float64 copy of stored float32 softmax rows, renormalised to sum to 1 exactly."""
    P = np.asarray(P, dtype=np.float64)
    return P / P.sum(-1, keepdims=True)


def study(configs: Sequence[Config], *, drop_error: float = 0.10, n_geodesic: int = 51,
          grid_n: int = 51, workers: int = 1, device: str = "auto", executor: Any = None
          ) -> Study:
    """Train the grid (cached) and compute its geometry; see :class:`Study`."""
    t0 = time.perf_counter()
    specs = [s for c in configs for s in c.specs]
    runs_all = train(specs, workers=workers, device=device, executor=executor,
                     desc="chapter 4 runs")
    runs, run_config, dropped, it = [], [], [], iter(runs_all)
    for ci, c in enumerate(configs):
        for s in c.specs:
            r = next(it)
            err = float(r.error("fit")[-1])
            if err > drop_error:
                dropped.append((c.name, s.seed, err))
            else:
                runs.append(r)
                run_config.append(ci)
    run_config = np.asarray(run_config)
    if not len(runs):
        raise RuntimeError("every run missed the training-error threshold: train longer")
    t1 = time.perf_counter()
    rec = dict(configs[0].specs[0].record)
    y_tr = samples(rec["train"])[1].numpy()
    y_te = samples(rec["test"])[1].numpy()
    C = configs[0].specs[0].n_classes
    P0, Ps = tj.uniform(len(y_tr), C), tj.one_hot(y_tr, C)
    P0t, Pst = tj.uniform(len(y_te), C), tj.one_hot(y_te, C)

    n_ckpt = np.array([len(r.steps) for r in runs])
    geo_t = np.linspace(0.0, 1.0, n_geodesic)
    pts = np.concatenate([_rows(r.probs("train")) for r in runs]
                         + [tj.geodesic(P0, Ps, geo_t)])
    pts = _rows(pts)
    D = bhattacharyya(pts, device=device)
    emb = inpca(D, k=min(10, len(D)))
    prog_tr = [tj.progress(_rows(r.probs("train")), P0, Ps) for r in runs]
    prog_te = [tj.progress(_rows(r.probs("test")), P0t, Pst) for r in runs]

    std = np.flatnonzero([configs[c].corner == "standard" for c in run_config])
    lo, hi = tj.common_range([prog_tr[r] for r in std])
    grid = np.linspace(lo, hi, grid_n)
    re = [tj.reindex(_rows(runs[r].probs("train")), prog_tr[r], grid) for r in std]
    traj = np.stack([x.points for x in re]).astype(np.float32)
    epochs_at = np.stack([tj.index_to_epochs(x.index, runs[r].epochs)
                          for x, r in zip(re, std, strict=True)])
    run_dist = tj.trajectory_distances(traj.astype(np.float64), device=device)
    cfg_of = run_config[std]
    tubes = {}
    for c in np.unique(cfg_of):
        members = np.flatnonzero(cfg_of == c)
        if len(members) > 1:
            tubes[int(c)] = tj.tube_widths(traj[members].astype(np.float64))
    std_cfgs = np.unique(cfg_of)
    cd = np.zeros((len(std_cfgs), len(std_cfgs)))
    for i, a in enumerate(std_cfgs):
        for j, b in enumerate(std_cfgs):
            block = run_dist[np.ix_(cfg_of == a, cfg_of == b)]
            if a == b:
                n = block.shape[0]
                block = block[~np.eye(n, dtype=bool)] if n > 1 else np.zeros(1)
            cd[i, j] = block.mean()

    # corners, on held-out samples, against the end point of their own standard config
    corner_dist, spread = {}, np.zeros(0)
    for r in np.flatnonzero([configs[c].corner != "standard" for c in run_config]):
        c = configs[run_config[r]]
        base = [i for i, b in enumerate(configs) if b.corner == "standard"
                and not b.variation and (b.arch, b.optimizer) == (c.arch, c.optimizer)]
        members = np.flatnonzero(np.isin(run_config, base))
        if not len(members):
            continue  # its standard runs were all dropped
        ends = _rows(np.stack([runs[m].probs("test")[-1] for m in members]))
        end = tj.sphere_mean(ends)
        spread = bhattacharyya_paired(ends, np.broadcast_to(end, ends.shape))
        p = _rows(runs[r].probs("test")[[0, -1]])
        d = bhattacharyya_paired(p, np.broadcast_to(end, p.shape))
        corner_dist[int(r)] = (float(d[0]), float(d[1]))
    return Study(configs=list(configs), runs=runs, run_config=run_config, dropped=dropped,
                 labels_train=y_tr, labels_test=y_te, n_ckpt=n_ckpt, embedding=emb,
                 geodesic_t=geo_t, progress_train=prog_tr, progress_test=prog_te, grid=grid,
                 std_runs=std, reindexed=traj, epochs_at=epochs_at, run_dist=run_dist,
                 tubes=tubes, std_configs=std_cfgs, config_dist=cd, corner_dist=corner_dist,
                 std_end_spread=spread, train_s=t1 - t0,
                 geometry_s=time.perf_counter() - t1)


def wider_pairs(configs: Sequence[Config]) -> list[tuple[int, int]]:
    """(narrow, wide) configuration indices: same family, optimiser, variation and corner,
    two widths (every narrower–wider pair)."""
    out = []
    for i, a in enumerate(configs):
        for j, b in enumerate(configs):
            if (a.family, a.optimizer, a.variation, a.corner) == \
                    (b.family, b.optimizer, b.variation, b.corner) and a.width < b.width:
                out.append((i, j))
    return out


def bigger_faster(st: Study) -> dict[str, float]:
    """Per (narrow → wide) pair of kept configurations: the fraction of levels of the
    common progress grid that the wide one reaches, averaged over seeds, in no more
    epochs (:func:`faster_fraction`)."""
    cfg_of = st.run_config[st.std_runs]
    out = {}
    for i, j in wider_pairs(st.configs):
        if (cfg_of == i).any() and (cfg_of == j).any():
            out[f"{st.configs[i].name} → {st.configs[j].width}"] = faster_fraction(
                st.epochs_at[cfg_of == i].mean(0), st.epochs_at[cfg_of == j].mean(0))
    return out


def summary(st: Study) -> dict[str, Any]:
    """The numbers the chapter claims, computed from a :class:`Study`.

    - ``es3``: explained stress of the top three InPCA dimensions;
    - ``decomposition``: :func:`decomposition` of the run-to-run trajectory distances;
    - ``arch_ratio``: mean distance between architectures / mean distance between
      configurations of one architecture that differ in optimiser or seed (the same-arch
      pairs include same-configuration, different-seed pairs);
    - ``purity``: :func:`dendrogram_purity` of the configuration dendrogram;
    - ``tube_median``, ``tube_ratio``: median tube width of seeds around their
      configuration's mean, and its ratio to the mean distance between architectures;
    - ``faster``: :func:`bigger_faster` per pair and ``faster_min`` the smallest;
    - ``corner_ratios``: end / start distance of each corner run to the standard end point
      (held-out samples), ``corner_max`` the largest; ``end_spread`` the mean distance of
      standard seeds' ends to their mean.
    """
    cfg_of = st.run_config[st.std_runs]
    dec = decomposition(st.run_dist, cfg_of, st.configs)
    arch = np.array([st.configs[c].arch for c in cfg_of])
    off = ~np.eye(len(cfg_of), dtype=bool)
    same_a = (arch[:, None] == arch[None, :]) & off
    within = float(st.run_dist[same_a].mean()) if same_a.any() else float("nan")
    tubes = np.concatenate([t.ravel() for t in st.tubes.values()]) if st.tubes else \
        np.array([np.nan])
    purity = dendrogram_purity(st.config_dist, [st.configs[c].arch for c in st.std_configs]
                               )[0] if len(st.std_configs) > 1 else float("nan")
    faster = bigger_faster(st)
    ratios = {st.configs[st.run_config[r]].name + f" (seed {st.runs[r].spec.seed})": e / s
              for r, (s, e) in st.corner_dist.items()}
    return {
        "es3": float(st.embedding.explained_stress[min(2, len(st.embedding.eigenvalues) - 1)]),
        "decomposition": dec,
        "arch_ratio": dec["between_arch"] / within,
        "purity": purity,
        "tube_median": float(np.median(tubes)),
        "tube_ratio": float(np.median(tubes)) / dec["between_arch"],
        "faster": faster,
        "faster_min": min(faster.values()) if faster else float("nan"),
        "corner_ratios": ratios,
        "corner_max": max(ratios.values()) if ratios else float("nan"),
        "end_spread": float(np.mean(st.std_end_spread)) if len(st.std_end_spread) else
        float("nan"),
    }


def config_table(st: Study) -> str:
    """Markdown table of every configuration: runs kept / trained, final training and test
    error (mean over kept seeds), wall time of training per run."""
    lines = ["| configuration | kept / runs | train error | test error | s per run |",
             "|---|---|---|---|---|"]
    for ci, c in enumerate(st.configs):
        kept = np.flatnonzero(st.run_config == ci)
        tr_err = [float(st.runs[r].error("fit")[-1]) for r in kept]
        te_err = [float(st.runs[r].error("test")[-1]) for r in kept]
        wall = [float(st.runs[r].meta.get("wall_s", np.nan)) for r in kept]
        fmt = (lambda v: f"{np.mean(v):.3f}") if len(kept) else (lambda v: "–")
        lines.append(f"| {c.name} | {len(kept)} / {len(c.specs)} | {fmt(tr_err)} | "
                     f"{fmt(te_err)} | {np.mean(wall) if wall else float('nan'):.1f} |")
    return "\n".join(lines)
