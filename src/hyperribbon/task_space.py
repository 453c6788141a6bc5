"""Chapter 5: networks trained on many tasks, and by several methods, in one space.

After Ramesh et al., ICML 2023 (``../shared/papers/05_task_space.md``). Every run is a
:class:`~hyperribbon.training.RunSpec` of the training engine, trained on a task's
classes (or on per-image random labels) with one backbone, that imprints at every
checkpoint: class-mean prototypes of its penultimate features over a fixed imprinting
set (disjoint from the evaluation set unless asked otherwise) turn it into a model over
all classes on one fixed evaluation set (:mod:`hyperribbon.imprinting`). From those
models :func:`study` computes

- the InPCA of every checkpoint of every run with P0, P* and the geodesic;
- progress on the full task, and on task B of a run trained on task A (samples and
  predictions restricted to B's classes from log-probabilities, renormalised, against
  B's P0 and P*), the transfer matrix (final minus initial progress, seed-averaged) and
  the random-label control;
- trajectories re-indexed on the full task's progress over the range every compared run
  reaches, seed-averaged on the sphere, their distances, and the WordNet distances of
  the same tasks (:mod:`hyperribbon.tasks`);
- supervised, episodic (prototypical) and contrastive (SimCLR) runs on the full task.

Riemann lengths are Fisher lengths, sum_k sqrt(8 d_B(P_k, P_k+1))
(:func:`hyperribbon.trajectory.riemann_length`; the authors' sum 2 sqrt(d_B) is this
divided by sqrt(2)).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperribbon import imprinting as imp
from hyperribbon import tasks as tk
from hyperribbon import trajectory as tj
from hyperribbon.inpca import InPCA, bhattacharyya, bhattacharyya_paired, inpca
from hyperribbon.training import Run, RunSpec, Samples, SpecError, samples, train

METHODS = ("supervised", "protonet", "simclr")


@dataclass(frozen=True)
class TaskRuns:
    """One task trained by one method over several seeds."""

    name: str
    task: tk.Task
    method: str
    specs: tuple[RunSpec, ...]


def build_runs(task_list: Sequence[tk.Task], *, methods: Sequence[str], per_class: int,
               n_imprint: int, n_eval: int, same_set: bool, pool: int, arch: str,
               width: int, optimizer: str, lr: float, batch_size: int, epochs: int,
               seeds: Sequence[int], subset_seed: int, checkpoints: Sequence[float],
               n_way: int, k_shot: int, n_query: int, temperature: float,
               method_epochs: int) -> list[TaskRuns]:
    """The chapter's runs: every task supervised, and the full task by each other method.

    Each task trains on ``per_class`` images of each of its classes (random labels: of
    every class); the imprinting set holds ``n_imprint`` further training images
    (balanced over all classes, disjoint from every task's training images), or the
    evaluation set itself with ``same_set`` (the authors' choice); the evaluation set is
    ``n_eval`` balanced test images. ``checkpoints`` is the flat (until, every) list of
    :func:`hyperribbon.training.checkpoint_steps`. The other methods train for
    ``method_epochs``.

    Raises
    ------
    ValueError naming the parameter, before anything trains.
    """
    for m in methods:
        if m not in METHODS[1:]:
            raise ValueError(f"methods: {m!r} is not one of {', '.join(METHODS[1:])}")
    if not task_list or not seeds:
        raise ValueError("tasks and seeds must each name at least one value")
    if len(checkpoints) < 2 or len(checkpoints) % 2:
        raise ValueError(f"checkpoints: give (until_epoch, every_epochs) pairs, got "
                         f"{list(checkpoints)}")
    ckpt = tuple(zip(checkpoints[::2], checkpoints[1::2], strict=True))
    dataset = task_list[0].dataset
    C = len(tk.class_names(dataset))
    ev = Samples(dataset, "test", n_eval, subset_seed, pool=pool)
    im = ev if same_set else Samples(dataset, "train", n_imprint, subset_seed,
                                     offset=per_class, pool=pool)
    record = (("imprint", im), ("eval", ev))
    full = next((t for t in task_list if t.kind == "full"), tk.full_task(dataset))
    out = []

    def add(name: str, task: tk.Task, method: str, n_epochs: int, **kw: Any) -> None:
        rand = task.kind == "random_labels"
        train_s = Samples(dataset, "train", per_class * len(task.classes), subset_seed,
                          classes=None if len(task.classes) == C else task.classes,
                          pool=pool)
        try:
            specs = tuple(RunSpec(
                train=train_s, record=record, arch=arch, width=width, optimizer=optimizer,
                lr=lr, batch_size=min(batch_size, train_s.n), epochs=n_epochs,
                labels="random" if rand else "true", label_seed=task.seed, seed=s,
                checkpoints=ckpt, imprint="imprint", method=method, **kw) for s in seeds)
        except SpecError as exc:
            raise SpecError(f"task {name!r}: {exc}") from None
        out.append(TaskRuns(name, task, method, specs))

    for t in task_list:
        add(t.name, t, "supervised", epochs)
    for m in methods:
        kw = ({"n_way": n_way, "k_shot": k_shot, "n_query": n_query} if m == "protonet"
              else {"temperature": temperature})
        add(f"{full.name} ({m})", full, m, method_epochs, **kw)
    return out


@dataclass
class Study:
    """What the chapter plots and claims; ``r`` indexes runs, in the order of the groups'
    specs.

    - ``groups``, ``runs``, ``group_of``: the TaskRuns, their runs, each run's group.
    - ``labels``: evaluation labels (M,).
    - ``n_ckpt``: checkpoints per run.
    - ``embedding``: InPCA of every checkpoint (imprinted predictions on the evaluation
      set), then the ``n_geodesic`` points of the P0 → P* geodesic.
    - ``progress``, ``accuracy``: per run, progress on the full task and imprinted
      accuracy of each checkpoint.
    - ``eval_tasks``: the non-random tasks progress is measured on.
    - ``gain``: (n_groups, n_eval_tasks) seed-averaged final − initial progress.
    - ``riemann``: per run, the Fisher length of its trajectory.
    - ``dist_groups``: indices of the supervised non-random task groups.
    - ``task_dist``: (T, T) trajectory distances between those tasks — seed-averaged
      trajectories re-indexed over the progress range the runs of both reach, mean d_B
      over it; NaN for a pair that shares no range.
    - ``train_s``, ``geometry_s``: wall times.
    """

    groups: list[TaskRuns]
    runs: list[Run]
    group_of: np.ndarray
    labels: np.ndarray
    n_ckpt: np.ndarray
    embedding: InPCA
    progress: list[np.ndarray]
    accuracy: list[np.ndarray]
    eval_tasks: list[tk.Task]
    gain: np.ndarray
    riemann: np.ndarray
    dist_groups: list[int]
    task_dist: np.ndarray
    train_s: float = 0.0
    geometry_s: float = 0.0


def _reindexed_mean(logps: Sequence[np.ndarray], progs: Sequence[np.ndarray],
                    grid: np.ndarray) -> np.ndarray:
    """Seed-averaged (sphere mean) trajectory of runs re-indexed on ``grid``."""
    pts = np.stack([tj.reindex(np.exp(lp), t, grid).points
                    for lp, t in zip(logps, progs, strict=True)])
    return tj.mean_trajectory(pts)


def _pair_distance(logp: Sequence[np.ndarray], prog: Sequence[np.ndarray],
                   ra: np.ndarray, rb: np.ndarray, grid_n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """d_B at equal progress between the seed-averaged trajectories of runs ``ra`` and
    ``rb``, over the range all of them reach; empty arrays when there is none."""
    try:
        lo, hi = tj.common_range([prog[r] for r in np.concatenate([ra, rb])])
    except ValueError:
        return np.zeros(0), np.zeros(0)
    grid = np.linspace(lo, hi, grid_n)
    ta, tb = (_reindexed_mean([logp[r] for r in rr], [prog[r] for r in rr], grid)
              for rr in (ra, rb))
    return grid, bhattacharyya_paired(ta, tb)


def study(groups: Sequence[TaskRuns], *, n_geodesic: int = 51, grid_n: int = 41,
          workers: int = 1, device: str = "auto") -> Study:
    """Train every run (cached) and compute the chapter's geometry; see :class:`Study`."""
    t0 = time.perf_counter()
    specs = [s for g in groups for s in g.specs]
    runs = train(specs, workers=workers, device=device, desc="chapter 5 runs")
    t1 = time.perf_counter()
    group_of = np.repeat(np.arange(len(groups)), [len(g.specs) for g in groups])
    y = samples(dict(groups[0].specs[0].record)["eval"])[1].numpy()
    C = groups[0].specs[0].n_classes
    logp = [np.asarray(r.array("imprinted_eval"), dtype=np.float64) for r in runs]
    logp = [lp - np.logaddexp.reduce(lp, axis=-1, keepdims=True) for lp in logp]
    full = tuple(range(C))
    prog = [imp.progress_on_task(lp, y, full) for lp in logp]
    acc = [(lp.argmax(-1) == y).mean(-1) for lp in logp]
    n_ckpt = np.array([len(lp) for lp in logp])
    P0, Ps = tj.uniform(len(y), C), tj.one_hot(y, C)
    pts = np.concatenate([np.exp(lp) for lp in logp]
                         + [tj.geodesic(P0, Ps, np.linspace(0, 1, n_geodesic))])
    pts /= pts.sum(-1, keepdims=True)
    emb = inpca(bhattacharyya(pts, device=device), k=min(10, len(pts)))

    eval_tasks = list({g.task.name: g.task for g in groups
                       if g.task.kind != "random_labels"}.values())
    gain = np.zeros((len(groups), len(eval_tasks)))
    for gi in range(len(groups)):
        members = np.flatnonzero(group_of == gi)
        first = np.stack([logp[r][0] for r in members])
        last = np.stack([logp[r][-1] for r in members])
        gain[gi] = imp.transfer_matrix(first, last, y, [t.classes for t in eval_tasks]
                                       ).mean(0)
    riemann = np.array([tj.riemann_length(np.exp(lp)) for lp in logp])

    sup = [gi for gi, g in enumerate(groups) if g.method == "supervised"
           and g.task.kind != "random_labels"]
    task_dist = np.zeros((len(sup), len(sup)))
    for i, a in enumerate(sup):
        for j in range(i + 1, len(sup)):
            d = _pair_distance(logp, prog, np.flatnonzero(group_of == a),
                               np.flatnonzero(group_of == sup[j]), grid_n)[1]
            task_dist[i, j] = task_dist[j, i] = d.mean() if len(d) else np.nan
    return Study(groups=list(groups), runs=runs, group_of=group_of, labels=y, n_ckpt=n_ckpt,
                 embedding=emb, progress=prog, accuracy=acc, eval_tasks=eval_tasks,
                 gain=gain, riemann=riemann, dist_groups=sup, task_dist=task_dist,
                 train_s=t1 - t0,
                 geometry_s=time.perf_counter() - t1)


def transfer_beyond_control(st: Study) -> tuple[float, np.ndarray, list[str]]:
    """Gain on task B from training on task A minus the random-label control's gain on B.

    Returns
    -------
    (fraction of ordered pairs A ≠ B of supervised non-random tasks with a positive
    excess, the (A, B) excess matrix over those tasks, their names)
    """
    ctrl = [gi for gi, g in enumerate(st.groups) if g.task.kind == "random_labels"]
    if not ctrl:
        raise ValueError("no random-label task was trained: the transfer claim needs it")
    names = [t.name for t in st.eval_tasks]
    rows = [next(gi for gi, g in enumerate(st.groups) if g.method == "supervised"
                 and g.task.name == n) for n in names]
    excess = st.gain[rows] - st.gain[ctrl[0]][None, :]
    off = ~np.eye(len(names), dtype=bool)
    return float(np.mean(excess[off] > 0)), excess, names


def diversity(st: Study, partition: Sequence[tuple[str, Sequence[int]]]
              ) -> tuple[float, list[tuple[str, str, float]], float]:
    """Size-matched diverse task against its natural group task: the difference of their
    mean gains on the other tasks (excluding both and the full task).

    Returns
    -------
    (mean difference over pairs, [(natural, diverse, difference)], Spearman ρ of the mean
    gain on other tasks against the number of groups spanned, over all supervised
    non-random tasks)
    """
    from scipy.stats import spearmanr

    names = [t.name for t in st.eval_tasks]
    row = {g.task.name: gi for gi, g in enumerate(st.groups) if g.method == "supervised"}

    def others(a: str, skip: set[str]) -> float:
        cols = [j for j, n in enumerate(names) if n not in skip and
                st.eval_tasks[j].kind != "full"]
        return float(st.gain[row[a], cols].mean())

    pairs = []
    for n in names:
        d = f"diverse_{n}"
        if d in row and n in row:
            skip = {n, d}
            pairs.append((n, d, others(d, skip) - others(n, skip)))
    if not pairs:
        raise ValueError("no (natural, diverse_natural) task pair was trained")
    tasks_ = [t for t in st.eval_tasks if t.kind != "full"]
    spans = [tk.groups_spanned(t, partition) for t in tasks_]
    mean_other = [others(t.name, {t.name}) for t in tasks_]
    rho = float(spearmanr(spans, mean_other)[0]) if len(set(spans)) > 1 else float("nan")
    return float(np.mean([p[2] for p in pairs])), pairs, rho


def wordnet_agreement(st: Study) -> tuple[float, int, np.ndarray, np.ndarray]:
    """Spearman ρ between trajectory distances and WordNet task distances over pairs of
    tasks that share no class.

    Returns
    -------
    (ρ (NaN with fewer than 3 pairs), number of pairs, trajectory distances, WordNet
    distances of those pairs); pairs without a shared progress range are left out
    """
    from scipy.stats import spearmanr

    tasks_ = [st.groups[g].task for g in st.dist_groups]
    wn = tk.task_distances(tasks_)
    i, j = np.triu_indices(len(tasks_), 1)
    disjoint = np.array([not set(tasks_[a].classes) & set(tasks_[b].classes)
                         for a, b in zip(i, j, strict=True)], dtype=bool)
    disjoint &= np.isfinite(st.task_dist[i, j])
    if disjoint.sum() < 3:
        return float("nan"), int(disjoint.sum()), st.task_dist[i, j][disjoint], \
            wn[i, j][disjoint]
    d, w = st.task_dist[i, j][disjoint], wn[i, j][disjoint]
    return float(spearmanr(d, w)[0]), int(disjoint.sum()), d, w


def method_distances(st: Study, a: str, b: str, grid_n: int = 41
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Distance at equal progress between the seed-averaged trajectories of two groups
    (by name), over the progress range all their runs reach.

    Returns
    -------
    (grid, d_B at each grid value)
    """
    idx = {g.name: gi for gi, g in enumerate(st.groups)}
    for n in (a, b):
        if n not in idx:
            raise ValueError(f"no group named {n!r} ({', '.join(idx)})")
    logp = [np.asarray(r.array("imprinted_eval"), dtype=np.float64) for r in st.runs]
    grid, d = _pair_distance(logp, st.progress, np.flatnonzero(st.group_of == idx[a]),
                             np.flatnonzero(st.group_of == idx[b]), grid_n)
    if not len(d):
        raise ValueError(f"{a} and {b} share no progress range")
    return grid, d


def meta_convergence(st: Study, supervised: str, episodic: str
                     ) -> tuple[float, np.ndarray, np.ndarray, str]:
    """End / middle distance between the episodic and the supervised mean trajectories at
    equal progress (:func:`method_distances`).

    Returns
    -------
    (ratio, grid, distances, note); ratio NaN and the note saying why when the two share
    no progress range.
    """
    try:
        grid, d = method_distances(st, supervised, episodic)
    except ValueError as exc:
        return float("nan"), np.zeros(0), np.zeros(0), str(exc)
    mid = len(grid) // 2
    return float(d[-1] / d[mid]), grid, d, ""


def contrastive_closeness(st: Study, contrastive: str, supervised: str, random: str
                          ) -> tuple[float, float, str]:
    """Mean distance at equal progress of the contrastive trajectory to the supervised
    one and to the random-label one (each pair over the range both reach).

    Returns
    -------
    (d to supervised, d to random labels, note); NaN with the reason in the note when a
    pair shares no progress range (e.g. a contrastive run that never leaves P0).
    """
    out, notes = [], []
    for other in (supervised, random):
        try:
            out.append(float(method_distances(st, contrastive, other)[1].mean()))
        except ValueError as exc:
            out.append(float("nan"))
            notes.append(f"{contrastive} vs {other}: {exc}")
    return out[0], out[1], "; ".join(notes)
