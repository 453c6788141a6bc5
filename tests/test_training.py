"""The training engine: specifications, checkpoints, ensembles, cache, resume, corners."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import needs_fashion_mnist
from hyperribbon import training as tr
from hyperribbon.nets import ARCH_DEPTH, classifier

pytestmark = pytest.mark.usefixtures("one_thread")

needs_data = needs_fashion_mnist

TINY = tr.RunSpec(train=tr.Samples(n=200, pool=2), arch="mlp", width=16,
                  record=(("test", tr.Samples(split="test", n=100, pool=2)),),
                  optimizer="nesterov", lr=0.05, batch_size=50, epochs=3,
                  checkpoints=((1.0, 0.5), (1e9, 1.0)))


# ---------------------------------------------------------------------------------------
# Specifications and schedules


def test_the_authors_checkpoint_schedule_gives_their_count():
    # CIFAR-10 at batch 200: 250 steps per epoch; the authors' 200-epoch runs have 62-67
    # checkpoints, 4-5 per epoch in epochs 0-4 and the last step included.
    spec = tr.RunSpec(train=tr.Samples(n=50000), batch_size=200, epochs=200,
                      checkpoints=((5, 0.25), (25, 1), (65, 4), (1e9, 15)))
    steps = tr.checkpoint_steps(spec)
    assert 62 <= len(steps) <= 67
    assert steps[0] == 0 and steps[1] == 1 and steps[-1] == 200 * 250
    early = steps[(steps > 0) & (steps <= 250)]
    assert len(early) in (4, 5)
    assert np.all(np.diff(steps) > 0)


def test_log_checkpoints_are_distinct_and_end_at_the_last_step():
    spec = replace(TINY, log_checkpoints=6)
    steps = tr.checkpoint_steps(spec)
    assert steps[0] == 0 and steps[-1] == spec.total_steps == 12
    assert len(set(steps.tolist())) == len(steps) <= 6


@pytest.mark.parametrize("change, field", [
    ({"arch": "resnet"}, "arch"), ({"optimizer": "rmsprop"}, "optimizer"),
    ({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"), ({"init": "pretrained"}, "init"),
    ({"init": "noisy"}, "init_scale"), ({"init": "random_labels"}, "init_epochs"),
    ({"log_checkpoints": 100}, "log_checkpoints"),
    ({"checkpoints": ((10.0, 5.0),)}, "checkpoints"),
    ({"arch": "mlp", "width": 2, "depth": 3}, "width"),
    ({"arch": "wrn", "depth": 12}, "depth"), ({"batch_size": 500}, "batch_size"),
    ({"train": tr.Samples(dataset="imagenet")}, "dataset"),
])
def test_a_bad_specification_names_its_field(change, field):
    with pytest.raises(tr.SpecError, match=field):
        replace(TINY, **change)


def test_the_key_follows_the_specification_and_the_engine_version(monkeypatch):
    assert TINY.key() == replace(TINY).key()
    assert TINY.key() != replace(TINY, seed=1).key()
    assert TINY.group_key() == replace(TINY, seed=1).group_key()
    assert TINY.group_key() != replace(TINY, lr=0.1).group_key()
    old = TINY.key()
    monkeypatch.setattr(tr, "ENGINE_VERSION", tr.ENGINE_VERSION + 1)
    assert TINY.key() != old


def test_the_cosine_schedule_has_its_analytic_values():
    spec = replace(TINY, schedule="cosine", lr=0.2)
    T = spec.total_steps
    assert tr.lr_at(spec, 0) == pytest.approx(0.2)
    assert tr.lr_at(spec, T // 2) == pytest.approx(0.1 * (1 + math.cos(math.pi * (T // 2) / T)))
    assert tr.lr_at(spec, T) == pytest.approx(0.0, abs=1e-12)
    assert tr.lr_at(replace(spec, schedule="constant"), T - 1) == 0.2


def test_selection_is_balanced_nested_and_offsets_are_disjoint():
    y = np.repeat(np.arange(4), 50)
    a = tr.select(tr.Samples(n=40, seed=3), y)
    b = tr.select(tr.Samples(n=80, seed=3), y)
    c = tr.select(tr.Samples(n=40, seed=3, offset=20), y)
    assert np.bincount(y[a]).tolist() == [10] * 4
    assert set(a) <= set(b)
    assert not set(c) & set(b[np.isin(b, a)]) and not set(a) & set(c)
    sub = tr.select(tr.Samples(n=20, seed=3, classes=(1, 3)), y)
    assert set(y[sub]) == {1, 3}
    with pytest.raises(tr.SpecError, match="class"):
        tr.select(tr.Samples(n=400, seed=3), y)


def test_augmentation_crops_a_shifted_window_and_flips():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = tr.augment(x, g, pad=2)
    assert out.shape == x.shape
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # every output is one of the 25 windows, flipped or not
        windows = [xp[i, :, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1))
                   for w in windows)
    flipped = tr.augment(x, torch.Generator().manual_seed(1), pad=0)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


# ---------------------------------------------------------------------------------------
# Architectures and corners


@pytest.mark.parametrize("arch", sorted(ARCH_DEPTH))
def test_every_family_splits_into_features_and_a_linear_head(arch):
    net = classifier(arch, 8, (1, 28, 28), 10)
    x = torch.randn(3, 1, 28, 28)
    f = net.features(x)
    assert f.shape == (3, net.n_features)
    assert torch.allclose(net(x), net.head(f))


def test_noisy_weights_add_noise_of_the_stated_scale_to_weights_only():
    torch.manual_seed(0)
    a = classifier("wrn", 8, (1, 28, 28), 10)
    b = classifier("wrn", 8, (1, 28, 28), 10)
    b.load_state_dict(a.state_dict())
    tr.add_weight_noise(b, 0.5, torch.Generator().manual_seed(0))
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    noise = torch.cat([(pb[n] - pa[n]).flatten() for n in pa
                       if n.endswith("weight") and pa[n].ndim >= 2])
    assert noise.std().item() == pytest.approx(0.5, rel=0.05)
    for n in pa:
        if not (n.endswith("weight") and pa[n].ndim >= 2):  # biases, BatchNorm
            assert torch.equal(pa[n], pb[n]), n


@needs_data
def test_random_label_pretraining_leaves_the_model_at_chance_on_the_true_labels(tmp_path):
    spec = replace(TINY, init="random_labels", init_epochs=60, epochs=1,
                   checkpoints=((1e9, 1.0),))
    [run] = tr.train([spec], device="cpu", cache=tmp_path)
    [std] = tr.train([replace(spec, init="standard", init_epochs=0)], device="cpu",
                     cache=tmp_path)
    assert 0.75 <= run.error("fit")[0] <= 0.97  # chance is 0.9 on true labels
    # it did leave P0: a standard initialisation predicts nearly uniformly, the corner
    # confidently (wrong) labels
    from hyperribbon.inpca import bhattacharyya_paired
    from hyperribbon.trajectory import uniform
    P0 = uniform(100, 10)[None]
    d_corner = bhattacharyya_paired(run.probs("test")[:1], P0)[0]
    d_std = bhattacharyya_paired(std.probs("test")[:1], P0)[0]
    assert d_corner > 10 * d_std


# ---------------------------------------------------------------------------------------
# Ensembles, cache, resume


@needs_data
@pytest.mark.parametrize("arch, width", [("linear", 1), ("mlp", 16), ("cnn", 4),
                                         ("convmixer", 8), ("wrn", 4)])
@pytest.mark.parametrize("opt", ["nesterov", "adam"])
def test_an_ensemble_equals_separate_trainings(tmp_path, arch, width, opt):
    specs = [replace(TINY, arch=arch, width=width, optimizer=opt, epochs=2,
                     lr=0.05 if opt == "nesterov" else 1e-3, weight_decay=1e-4,
                     augment=True, seed=s) for s in (0, 1, 2)]
    tr.train_group(specs, "cpu", str(tmp_path / "ens"), path="ensemble")
    for s in specs:
        tr.train_group([s], "cpu", str(tmp_path / "loop"), path="loop")
    for s in specs:
        e = tr.load_cached(s, tmp_path / "ens")
        lo = tr.load_cached(s, tmp_path / "loop")
        assert e.meta["path"] == "ensemble" and lo.meta["path"] == "loop"
        np.testing.assert_allclose(e.probs("test"), lo.probs("test"), atol=2e-4)
        np.testing.assert_array_equal(e.steps, lo.steps)


@needs_data
def test_the_cache_never_trains_twice_and_detects_damage(tmp_path):
    [a] = tr.train([TINY], device="cpu", cache=tmp_path)
    stamp = (a.path / "meta.json").stat().st_mtime_ns
    [b] = tr.train([TINY], device="cpu", cache=tmp_path)
    assert (b.path / "meta.json").stat().st_mtime_ns == stamp  # a hit
    assert tr.load_cached(replace(TINY, lr=0.06), tmp_path) is None  # a miss
    assert a.probs("test").shape == (len(tr.checkpoint_steps(TINY)), 100, 10)
    assert np.allclose(a.probs("test").sum(-1), 1, atol=1e-5)
    assert a.error("fit")[-1] < a.error("fit")[0]
    f = a.path / "probs_test.npy"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="damaged"):
        [c] = tr.train([TINY], device="cpu", cache=tmp_path)
    np.testing.assert_array_equal(c.probs("test"), np.load(a.path / "probs_test.npy"))
    assert json.loads((c.path / "meta.json").read_text())["key"] == TINY.key()


_TRAIN_IN_A_FRESH_PROCESS = (
    "import pickle, sys, torch; torch.set_num_threads(1); "
    "from hyperribbon import training as tr; "
    "tr.train_group(pickle.loads(sys.stdin.buffer.read()), 'cpu', sys.argv[1], "
    "save_every=7)")


def _train_in_subprocess(spec: tr.RunSpec, cache) -> subprocess.Popen:
    """Start training ``spec`` into ``cache`` in a fresh Python process (one thread), as a
    user's interrupted job would; the caller waits or kills it."""
    import pickle

    env = {**os.environ, "HYPERRIBBON_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", _TRAIN_IN_A_FRESH_PROCESS, str(cache)],
                            stdin=subprocess.PIPE, env=env)
    proc.stdin.write(pickle.dumps([spec]))
    proc.stdin.close()
    return proc


@needs_data
def test_a_run_killed_mid_way_resumes_bitwise_equal(tmp_path):
    # every stage runs in a fresh process with the same settings, so that nothing left in
    # the test process by other tests (thread pools, backends) can touch the numbers
    spec = replace(TINY, epochs=40, arch="cnn", width=4, optimizer="adam", lr=1e-3,
                   augment=True)
    ref, cache = tmp_path / "ref", tmp_path / "killed"
    assert _train_in_subprocess(spec, ref).wait() == 0
    proc = _train_in_subprocess(spec, cache)
    deadline = time.time() + 120
    while not list(cache.glob("partial-*.pt")) and time.time() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tr.load_cached(spec, cache) is None and list(cache.glob("partial-*.pt"))
    assert _train_in_subprocess(spec, cache).wait() == 0  # resumes from the saved state
    a, b = tr.load_cached(spec, ref), tr.load_cached(spec, cache)
    for name in ("probs_test", "loss_fit", "error_test", "steps"):
        np.testing.assert_array_equal(a.array(name), b.array(name))
    assert not list(cache.glob("partial-*.pt"))


def test_the_engine_picks_an_ensemble_on_a_cpu_only_when_it_measures_faster():
    assert tr.choose_path("cpu", "mlp", 32) == "loop"  # no measurement: the loop
    assert tr.choose_path("cpu", "mlp", 32, timings=(1.0, 0.5)) == "ensemble"
    assert tr.choose_path("cpu", "mlp", 32, timings=(1.0, 0.9)) == "loop"  # within margin
    assert tr.choose_path("cpu", "mlp", 1, timings=(1.0, 0.1)) == "loop"
    assert tr.choose_path("cuda", "cnn", 32) == "ensemble"
    assert tr.choose_path("cuda", "cnn", 1) == "loop"


@needs_data
def test_measure_paths_times_both_paths():
    specs = [replace(TINY, seed=s, init="noisy", init_scale=0.1) for s in range(4)]
    loop, ens = tr.measure_paths(specs, "cpu", steps=2)
    assert loop > 0 and ens > 0


# ---------------------------------------------------------------------------------------
# Methods and imprinting (chapter 5)

IMPRINT = replace(TINY, record=(("imp", tr.Samples(n=100, offset=20, pool=2)),
                                ("test", tr.Samples(split="test", n=100, pool=2))),
                  imprint="imp", features=True, epochs=10, width=64)


@needs_data
@pytest.mark.parametrize("method", ["supervised", "protonet", "simclr"])
def test_imprinted_predictions_follow_the_recorded_features(tmp_path, method):
    from hyperribbon.imprinting import imprint

    spec = replace(IMPRINT, method=method, n_way=4, k_shot=3, n_query=5)
    [run] = tr.train([spec], device="cpu", cache=tmp_path)
    y_imp = tr.samples(spec.record[0][1])[1].numpy()
    y_te = tr.samples(spec.record[1][1])[1].numpy()
    logp = run.array("imprinted_test")
    assert logp.shape == (len(run.steps), 100, 10)
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1, atol=1e-4)
    for k in (0, -1):
        expect = imprint(run.array("features_imp")[k], y_imp, run.array("features_test")[k],
                         10)
        np.testing.assert_allclose(logp[k], expect, atol=1e-3, rtol=1e-4)
    acc = (logp.argmax(-1) == y_te).mean(-1)
    if method != "simclr":  # labelled methods improve the imprinted accuracy
        assert acc[-1] > acc[0]


def test_the_new_fields_are_checked():
    with pytest.raises(tr.SpecError, match="imprint"):
        replace(TINY, imprint="nope")
    with pytest.raises(tr.SpecError, match="n_way"):
        replace(TINY, method="protonet", n_way=1)
    with pytest.raises(tr.SpecError, match="n_way"):
        replace(TINY, method="protonet", n_way=4,
                train=tr.Samples(n=200, pool=2, classes=(0, 1, 2)))
    with pytest.raises(tr.SpecError, match="temperature"):
        replace(TINY, method="simclr", temperature=0.0)
    assert tr.choose_path("cuda", "cnn", 8, "protonet") == "loop"


@needs_data
def test_a_task_trains_on_its_classes_only(tmp_path):
    spec = replace(TINY, train=tr.Samples(n=200, pool=2, classes=(3, 7)))
    x, y = tr.samples(spec.train)
    assert set(y.tolist()) == {3, 7} and len(y) == 200
    [run] = tr.train([spec], device="cpu", cache=tmp_path)
    assert run.error("fit")[-1] < 0.5


@needs_data
def test_tiny_subset_pretraining_starts_from_a_model_that_learnt_a_little(tmp_path):
    spec = replace(TINY, init="tiny_subset", init_n=20, init_epochs=30, epochs=1,
                   batch_size=10, checkpoints=((1e9, 1.0),))
    [run] = tr.train([spec], device="cpu", cache=tmp_path)
    [std] = tr.train([replace(spec, init="standard", init_epochs=0)], device="cpu",
                     cache=tmp_path)
    # 20 labelled images already beat chance at t = 0; a standard start does not
    assert run.error("test")[0] < 0.75 < std.error("test")[0]
