"""Chapter 5's run builder and analyses (hyperribbon.task_space)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_fashion_mnist as needs_data
from hyperribbon import task_space as ts
from hyperribbon import tasks as tk
from hyperribbon import training as tr

KW = dict(methods=["protonet", "simclr"], per_class=20, n_imprint=100, n_eval=100,
          same_set=False, pool=2, arch="mlp", width=32, optimizer="adam", lr=3e-3,
          batch_size=50, epochs=2, seeds=[0, 1], subset_seed=0, checkpoints=[1, 0.5, 1e9, 1],
          n_way=3, k_shot=2, n_query=3, temperature=0.5, method_epochs=2)


def _tasks(*names):
    return tk.parse_tasks(names, "fashion-mnist")


def test_runs_cover_every_task_and_method_with_the_right_labels():
    groups = ts.build_runs(_tasks("all", "shoe", "random_labels"), **KW)
    assert [g.name for g in groups] == ["all", "shoe", "random_labels", "all (protonet)",
                                        "all (simclr)"]
    by = {g.name: g for g in groups}
    assert by["shoe"].specs[0].train.classes == (5, 7)
    assert by["shoe"].specs[0].train.n == 40 and by["all"].specs[0].train.n == 200
    assert by["random_labels"].specs[0].labels == "random"
    assert by["all (protonet)"].specs[0].method == "protonet"
    assert by["all (simclr)"].specs[0].method == "simclr"
    assert all(s.imprint == "imprint" for g in groups for s in g.specs)
    assert [s.seed for s in by["all"].specs] == [0, 1]


def test_the_imprinting_set_is_disjoint_from_every_tasks_training_images():
    groups = ts.build_runs(_tasks("all", "shoe"), **KW)
    labels = np.repeat(np.arange(10), 60)
    rec = dict(groups[0].specs[0].record)
    imp = set(tr.select(rec["imprint"], labels))
    for g in groups:
        assert not imp & set(tr.select(g.specs[0].train, labels))
    same = ts.build_runs(_tasks("all"), **{**KW, "same_set": True})
    rec = dict(same[0].specs[0].record)
    assert rec["imprint"] == rec["eval"]


@pytest.mark.parametrize("change, culprit", [
    ({"methods": ["fixmatch"]}, "methods"), ({"checkpoints": [1, 0.5, 2]}, "checkpoints"),
    ({"n_way": 12}, "n_way"), ({"lr": 0.0}, "lr"), ({"seeds": []}, "seeds"),
])
def test_a_bad_run_list_is_refused_naming_the_culprit(change, culprit):
    with pytest.raises(ValueError, match=culprit):
        ts.build_runs(_tasks("all", "shoe"), **{**KW, **change})


def _study(gain, names, kinds=None):
    """A Study holding only what the transfer and diversity analyses read."""
    cat = tk.task_catalogue("fashion-mnist")
    task_objs = [cat[n] for n in names]
    groups = [ts.TaskRuns(t.name, t, "supervised", ()) for t in task_objs]
    evals = [t for t in task_objs if t.kind != "random_labels"]
    return ts.Study(groups=groups, runs=[], group_of=np.zeros(0, int), labels=np.zeros(0),
                    n_ckpt=np.zeros(0), embedding=None, progress=[], accuracy=[],
                    eval_tasks=evals, gain=np.asarray(gain, float), riemann=np.zeros(0),
                    dist_groups=[], task_dist=np.zeros((0, 0)))


def test_transfer_is_judged_against_the_random_label_control():
    # rows: shoe, footwear, random; columns: shoe, footwear
    st = _study([[0.5, 0.3], [0.2, 0.6], [0.25, 0.1]], ["shoe", "footwear", "random_labels"])
    frac, excess, names = ts.transfer_beyond_control(st)
    assert names == ["shoe", "footwear"]
    np.testing.assert_allclose(excess, [[0.25, 0.2], [-0.05, 0.5]])
    assert frac == 0.5  # off-diagonal: shoe→footwear +0.2, footwear→shoe −0.05
    with pytest.raises(ValueError, match="random-label"):
        ts.transfer_beyond_control(_study([[1.0]], ["shoe"]))


def test_diversity_compares_each_diverse_task_with_its_natural_partner():
    names = ["footwear", "diverse_footwear", "shirt"]
    # columns: footwear, diverse_footwear, shirt; gains on the other task (shirt) decide
    st = _study([[0.9, 0.1, 0.2], [0.1, 0.9, 0.5], [0.3, 0.3, 0.9]], names)
    partition = tk.groups("fashion-mnist")
    mean, pairs, rho = ts.diversity(st, partition)
    assert pairs == [("footwear", "diverse_footwear", pytest.approx(0.3))]
    assert mean == pytest.approx(0.3)
    assert np.isfinite(rho)


@needs_data
def test_a_tiny_study_measures_transfer_progress_and_methods(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_CACHE", str(tmp_path))
    groups = ts.build_runs(_tasks("all", "footwear", "shirt", "random_labels"), **KW)
    st = ts.study(groups, n_geodesic=5, grid_n=7, device="cpu")
    assert st.gain.shape == (len(groups), 3)
    assert len(st.embedding.row_means) == int(st.n_ckpt.sum()) + 5
    for p in st.progress:
        assert np.all((p >= 0) & (p <= 1))
    # the full task is the eval task "all": its progress equals the run's own progress
    first = [r for r in range(len(st.runs)) if st.group_of[r] == 0]
    gain_all = np.mean([st.progress[r][-1] - st.progress[r][0] for r in first])
    assert st.gain[0, 0] == pytest.approx(gain_all)
    d_sup, d_rand, note = ts.contrastive_closeness(st, "all (simclr)", "all",
                                                   "random_labels")
    assert (np.isfinite(d_sup) and np.isfinite(d_rand)) or note
