"""Chapter 4's grid builder and geometry helpers (hyperribbon.training_manifold) and the
trajectory helpers they rely on."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_fashion_mnist as needs_data
from hyperribbon import training_manifold as tm
from hyperribbon import trajectory as tj

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = dict(dataset="fashion-mnist", n_train=200, n_embed=100, pool=2,
            archs=["mlp-16", "mlp-32", "cnn-4"], optimizers=["nesterov", "adam"],
            sgd_lr=0.05, adam_lr=0.003, batch_size=50, ref_batch=100, epochs=2,
            seeds=[0, 1], variations=["sgd", "wd", "augment"], weight_decay=1e-3,
            corners=["random_labels", "tiny_subset", "noisy"], corner_epochs=3, tiny_n=20,
            noise_scale=0.1, subset_seed=0, checkpoints=[1, 0.5, 1e9, 1])


def test_the_grid_holds_every_configuration_once_with_its_seeds_and_corners():
    configs = tm.build_grid(**GRID)
    names = [c.name for c in configs]
    assert len(names) == len(set(names)) == 3 * 2 + 3 + 3
    for c in configs:
        assert [s.seed for s in c.specs] == [0, 1]
        assert len({s.group_key() for s in c.specs}) == 1
    by = {c.name: c for c in configs}
    assert by["mlp-16 nesterov"].specs[0].lr == pytest.approx(0.025)  # batch 50 of 100
    assert by["cnn-4 adam"].specs[0].lr == pytest.approx(0.0015)
    assert by["mlp-16 nesterov +wd"].specs[0].weight_decay == 1e-3
    assert by["mlp-16 nesterov +augment"].specs[0].augment
    assert by["mlp-16 sgd +sgd"].specs[0].optimizer == "sgd"
    corners = {c.corner: c.specs[0] for c in configs if c.corner != "standard"}
    assert corners["random_labels"].init_epochs == 3
    assert corners["tiny_subset"].init_n == 20
    assert corners["noisy"].init_scale == 0.1
    rec = dict(configs[0].specs[0].record)
    assert rec["train"].split == "train" and rec["test"].split == "test"
    assert rec["train"].n == rec["test"].n == 100


@pytest.mark.parametrize("change, culprit", [
    ({"optimizers": ["rmsprop"]}, "optimizers"), ({"corners": ["frozen"]}, "corners"),
    ({"variations": ["dropout"]}, "variations"), ({"archs": ["mlp"]}, "archs"),
    ({"archs": ["vgg-16"]}, "arch"), ({"n_embed": 500}, "n_embed"),
    ({"checkpoints": [1, 0.5, 3]}, "checkpoints"), ({"checkpoints": [1, 5.0]}, "checkpoints"),
    ({"archs": ["mlp-2-3"]}, "width"), ({"sgd_lr": 0.0}, "lr"),
])
def test_a_bad_grid_is_refused_naming_the_culprit(change, culprit):
    with pytest.raises(ValueError, match=culprit):
        tm.build_grid(**{**GRID, **change})


def test_decomposition_averages_the_right_pairs():
    # runs: config 0 (arch a) x2, config 1 (arch a), config 2 (arch b)
    configs = [tm.Config(n, a, "f", 1, "o", "", "standard", ()) for n, a in
               (("c0", "a"), ("c1", "a"), ("c2", "b"))]
    of = np.array([0, 0, 1, 2])
    D = np.array([[0, 1, 2, 5], [1, 0, 4, 7], [2, 4, 0, 9], [5, 7, 9, 0]], float)
    dec = tm.decomposition(D, of, configs)
    assert dec == {"seed": 1.0, "same_arch": 3.0, "between_arch": 7.0}


def test_dendrogram_purity_is_one_for_separated_architectures_and_less_when_mixed():
    D = np.array([[0, 1, 9, 9], [1, 0, 9, 9], [9, 9, 0, 1], [9, 9, 1, 0]], float)
    assert tm.dendrogram_purity(D, ["a", "a", "b", "b"])[0] == 1.0
    assert tm.dendrogram_purity(D, ["a", "b", "a", "b"])[0] == 0.5


def test_faster_fraction_counts_levels_reached_in_no_more_epochs():
    narrow = np.array([0.0, 1.0, 2.0, 4.0, np.nan])
    wide = np.array([0.0, 0.5, 3.0, 3.0, 1.0])
    assert tm.faster_fraction(narrow, wide) == 0.75  # level 2 slower; the NaN one skipped
    with pytest.raises(ValueError, match="no progress level"):
        tm.faster_fraction([np.nan], [1.0])


def test_geodesic_points_have_their_own_progress():
    y = np.array([0, 2, 1, 2])
    P0, Ps = tj.uniform(4, 3), tj.one_hot(y, 3)
    t = np.linspace(0, 1, 7)
    np.testing.assert_allclose(tj.progress(tj.geodesic(P0, Ps, t), P0, Ps), t, atol=1e-8)


def test_common_range_is_the_largest_start_to_the_smallest_maximum():
    ts = [np.array([0.0, 0.3, 0.9, 0.8]), np.array([0.1, 0.5, 0.7]), np.array([0.05, 1.0])]
    assert tj.common_range(ts) == (0.1, 0.7)
    with pytest.raises(ValueError, match="no progress range"):
        tj.common_range([np.array([0.0, 0.2]), np.array([0.5, 0.9])])


def test_index_to_epochs_interpolates_between_checkpoints():
    epochs = np.array([0.0, 0.25, 0.5, 2.0])
    out = tj.index_to_epochs([0.0, 0.5, 2.5, np.nan, 3.0], epochs)
    np.testing.assert_allclose(out[[0, 1, 2, 4]], [0.0, 0.125, 1.25, 2.0])
    assert np.isnan(out[3])


def test_sphere_mean_of_copies_is_the_model_and_is_symmetric():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(tj.sphere_mean(np.stack([p, p, p])), p)
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(tj.sphere_mean(np.stack([a, b])), [[0.5, 0.5]])


@needs_data
def test_a_tiny_study_accounts_for_dropped_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERRIBBON_CACHE", str(tmp_path))
    grid = {**GRID, "archs": ["mlp-16", "mlp-32"], "optimizers": ["nesterov"],
            "variations": [], "corners": ["noisy"]}
    configs = tm.build_grid(**grid)
    full = tm.study(configs, drop_error=1.0, n_geodesic=5, grid_n=7, device="cpu")
    assert not full.dropped and len(full.runs) == 6
    errs = sorted(float(r.error("fit")[-1]) for r in full.runs)
    cut = errs[2]
    st = tm.study(configs, drop_error=cut, n_geodesic=5, grid_n=7, device="cpu")
    assert len(st.runs) + len(st.dropped) == 6
    assert all(e > cut for _, _, e in st.dropped)
    assert all(float(r.error("fit")[-1]) <= cut for r in st.runs)
    n = int(full.n_ckpt.sum()) + 5
    assert full.embedding.coords.shape[0] == n
    s = tm.summary(full)
    assert 0 < s["es3"] <= 1 and set(s["decomposition"]) == {"seed", "same_arch",
                                                             "between_arch"}
    assert len(s["corner_ratios"]) == 2  # two seeds of the noisy corner
    assert "| mlp-16 nesterov | 2 / 2 |" in tm.config_table(full)
