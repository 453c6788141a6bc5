"""Imprinting, restriction to a task and progress on a task (hyperribbon.imprinting)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperribbon import imprinting as I
from hyperribbon.trajectory import one_hot, progress, uniform

pytestmark = pytest.mark.usefixtures("one_thread")


def _clusters(n_per_class: int, C: int = 4, D: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = 5.0 * np.eye(C, D)
    y = np.repeat(np.arange(C), n_per_class)
    return centres[y] + 0.3 * rng.standard_normal((y.size, D)), y


def test_prototypes_are_class_means():
    F = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 4.0], [1.0, 2.0]])
    y = np.array([0, 0, 1, 1])
    assert np.array_equal(I.prototypes(F, y, 2), [[1.0, 0.0], [1.0, 3.0]])
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        I.prototypes(F, y, 3)


def test_logits_and_log_probs_hand_computed():
    f = np.array([[0.0, 0.0]])
    mu = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert np.allclose(I.imprinted_logits(f, mu), [[-1.0, -4.0]])
    # softmax of (-1, -4): 1 / (1 + e^-3), e^-3 / (1 + e^-3)
    lp = I.log_probs(I.imprinted_logits(f, mu))
    assert np.allclose(np.exp(lp), [[1 / (1 + np.exp(-3)), np.exp(-3) / (1 + np.exp(-3))]])


def test_imprinting_separable_toy_gives_the_right_class():
    Fi, yi = _clusters(20, seed=0)
    Fe, ye = _clusters(30, seed=1)
    lp = I.imprint(torch.from_numpy(Fi).float(), torch.from_numpy(yi), Fe, 4)
    assert lp.shape == (120, 4) and lp.dtype == np.float64
    assert np.array_equal(lp.argmax(1), ye)
    assert np.allclose(np.exp(lp).sum(1), 1.0)


def test_imprinting_split_disjoint_balanced_and_authors_option():
    y = np.repeat(np.arange(3), 10)
    imp, ev = I.imprinting_split(y, n_imprint=4, n_eval=5, seed=0)
    assert np.intersect1d(imp, ev).size == 0
    assert np.array_equal(np.bincount(y[imp]), [4, 4, 4])
    assert np.array_equal(np.bincount(y[ev]), [5, 5, 5])
    imp2, ev2 = I.imprinting_split(y, n_imprint=4, n_eval=5, seed=0)
    assert np.array_equal(imp, imp2) and np.array_equal(ev, ev2)  # fixed by the seed
    same_i, same_e = I.imprinting_split(y, n_imprint=4, n_eval=5, seed=0, same_set=True)
    assert np.array_equal(same_i, same_e)
    with pytest.raises(ValueError, match="class 0 has 10 samples; the split needs 11"):
        I.imprinting_split(y, n_imprint=6, n_eval=5)


def test_restriction_renormalises():
    lp = np.log(np.array([[0.1, 0.2, 0.3, 0.4]]))
    r = np.exp(I.restrict_log_probs(lp, [1, 3]))
    assert np.allclose(r, [[1 / 3, 2 / 3]])
    # from logits (shifted log-probabilities) the same
    assert np.allclose(np.exp(I.restrict_log_probs(lp + 7.0, [1, 3])), r)


def test_restriction_of_a_sharp_model_from_logits_stays_finite():
    logits = np.array([[0.0, -1e4, -1e4 - 1.0]])
    assert np.exp(log := I.log_probs(logits))[0, 1] == 0.0  # probabilities underflow
    for s in (logits, log):
        r = np.exp(I.restrict_log_probs(s, [1, 2]))
        assert np.isfinite(r).all()
        assert np.allclose(r, [[np.e / (1 + np.e), 1 / (1 + np.e)]])


def test_restrict_samples_remaps_labels():
    idx, tgt = I.restrict_samples(np.array([8, 5, 7, 0, 9]), [9, 5, 7])
    assert idx.tolist() == [1, 2, 4] and tgt.tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="no evaluation sample"):
        I.restrict_samples(np.array([0, 1]), [2, 3])


def test_progress_on_all_classes_equals_full_progress():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 40)
    logits = 3.0 * rng.standard_normal((6, 40, 5))
    t = I.progress_on_task(logits, y, range(5))
    P = np.exp(I.log_probs(logits))
    assert np.allclose(t, progress(P, uniform(40, 5), one_hot(y, 5)), atol=1e-10)


def test_task_view_and_progress_on_a_task():
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    big = 50.0
    # right on samples of classes 0 and 1, indifferent between 2 and 3 elsewhere
    logits = np.zeros((8, 4))
    logits[y < 2, y[y < 2]] = big
    P, P0, P1 = I.task_view(logits, y, (2, 3))
    assert P.shape == P0.shape == P1.shape == (4, 2) and np.allclose(P, 0.5)
    assert float(I.progress_on_task(logits, y, (2, 3))) == pytest.approx(0.0, abs=1e-9)
    assert float(I.progress_on_task(logits, y, (0, 1))) == pytest.approx(1.0, abs=1e-6)


def test_transfer_matrix_final_minus_initial():
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    start = np.zeros((2, 8, 4))  # uniform: progress 0 everywhere
    final = np.zeros((2, 8, 4))
    final[0, y < 2, y[y < 2]] = 50.0  # run A=0 learnt {0, 1}
    final[1, y >= 2, y[y >= 2]] = 50.0  # run A=1 learnt {2, 3}
    G = I.transfer_matrix(start, final, y, [(0, 1), (2, 3)])
    assert G.shape == (2, 2)
    assert np.allclose(G, np.eye(2), atol=1e-6)


def test_extract_features_batches_match_one_pass():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5),
                              torch.nn.Dropout(0.5))
    x = torch.randn(7, 3, 2, 2)
    net.train()
    F = I.extract_features(net, x, batch_size=3, device="cpu")
    assert net.training  # mode restored
    with torch.no_grad():
        ref = net.eval()(x).double().numpy()  # eval: dropout off
    assert F.shape == (7, 5) and np.allclose(F, ref, atol=1e-6)
