"""The training engine: many small image classifiers, their predictions checkpointed.

A run is a value (:class:`RunSpec`): the training samples, the architecture, the
optimiser and its schedule, the initialisation, the seed, the checkpoint schedule and the
named sample sets whose predictions are recorded. :func:`train` takes a list of them and
returns one :class:`Run` per specification: the steps and epochs of every checkpoint, the
softmax predictions (float32, evaluation mode, un-augmented images) on each recorded
sample set, optionally the penultimate features there, and the loss and error on the
training samples and on every recorded set.

- **Never twice.** A finished run lives in ``cache_dir("runs")/<key>/`` as plain ``.npy``
  arrays and a ``meta.json`` with their sha256 (no pickles), written into a temporary
  folder and renamed into place; the key hashes the specification and
  :data:`ENGINE_VERSION`. A damaged run is detected by its checksums and retrained.
- **Never lost.** While training, the state (parameters, optimiser, random-number
  generators, step, predictions so far) is saved every ``save_every`` steps, atomically; a
  run killed at any point resumes from there and ends bitwise identical on the CPU.
- **Ensembles where they pay.** Runs that differ only in their seed can train together as
  one vmapped ensemble (``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``;
  BatchNorm statistics are stacked too). :func:`choose_path` picks it on CUDA; on a CPU,
  where it can be slower or faster than a loop depending on the architecture and the
  load (``benchmarks/bench_training.py``), only when a short measurement
  (:func:`measure_paths`) finds it faster. Either way the units of work (ensembles or
  single runs) go to parallel processes with one intra-op thread each (``workers``).
- **Any executor.** A run depends only on its specification and the data; :func:`train`
  hands groups of runs to any ``concurrent.futures``-style executor, whose workers write
  to the shared cache, and then only loads.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperribbon import data as data_mod
from hyperribbon.nets import ARCH_DEPTH, Classifier, check_architecture, classifier
from hyperribbon.util import cache_dir, progress, resolve_device

#: Bump when a change to this module changes what a run produces.
ENGINE_VERSION = 2

OPTIMIZERS = ("sgd", "nesterov", "adam")
SCHEDULES = ("cosine", "constant")
INITS = ("standard", "random_labels", "tiny_subset", "noisy")
LABELS = ("true", "random")
METHODS = ("supervised", "protonet", "simclr")
#: Authors-like checkpoints in epochs: (until epoch, every so many epochs) segments, the
#: last interval continuing to the end; t = 0, the first step and the last are added.
DEFAULT_CHECKPOINTS: tuple[tuple[float, float], ...] = ((2.0, 0.25), (10.0, 1.0),
                                                        (1e9, 2.0))


class SpecError(ValueError):
    """A run specification that cannot be trained (the message names the field)."""


# ---------------------------------------------------------------------------------------
# Specifications


@dataclass(frozen=True)
class Samples:
    """A fixed, seeded subset of one split of a registered image dataset.

    The selection walks a permutation of the split drawn from ``seed``; ``balanced``
    takes the next images of each class in turn (n / classes each, the remainder to the
    first classes), else the next images. ``offset`` skips the first ``offset`` images of
    that walk (per class when balanced), so ``Samples(n=1000, offset=2000)`` is disjoint
    from ``Samples(n=2000)`` with the same seed, and a smaller ``n`` is a prefix of a
    larger one. ``classes`` keeps only those classes; ``pool`` average-pools the images.
    """

    dataset: str = "fashion-mnist"
    split: str = "train"
    n: int = 1000
    seed: int = 0
    balanced: bool = True
    offset: int = 0
    classes: tuple[int, ...] | None = None
    pool: int = 1

    def check(self, where: str) -> None:
        if self.n < 1:
            raise SpecError(f"{where}.n must be >= 1, got {self.n}")
        if self.offset < 0:
            raise SpecError(f"{where}.offset must be >= 0, got {self.offset}")
        if self.pool < 1:
            raise SpecError(f"{where}.pool must be >= 1, got {self.pool}")
        reg = data_mod.registry()
        if self.dataset not in reg:
            raise SpecError(f"{where}.dataset: {self.dataset!r} is not registered "
                            f"(known: {', '.join(sorted(reg))})")
        splits = reg[self.dataset].get("splits", {})
        if self.split not in splits:
            raise SpecError(f"{where}.split: {self.split!r} is not a split of "
                            f"{self.dataset} ({', '.join(splits)})")
        n_classes = int(reg[self.dataset].get("classes", 0))
        if self.classes is not None and (
                len(set(self.classes)) < 2 or min(self.classes) < 0
                or max(self.classes) >= n_classes):
            raise SpecError(f"{where}.classes must name at least two distinct classes in "
                            f"[0, {n_classes}), got {self.classes}")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run (its :meth:`key` is the cache key).

    Parameters
    ----------
    train : the training samples.
    record : ((name, Samples), ...) sets whose predictions are recorded at every
        checkpoint (evaluation mode, un-augmented images).
    arch, width, depth : the classifier (:func:`hyperribbon.nets.classifier`).
    optimizer : "sgd", "nesterov" (SGD with Nesterov momentum) or "adam".
    lr, momentum, weight_decay : optimiser settings (momentum for sgd / nesterov).
    schedule : "cosine" (stepped every iteration, to 0 at the end) or "constant".
    batch_size, epochs : minibatches drawn without replacement each epoch (the last,
        incomplete one dropped).
    augment : random crop (padding H / 8: 4 for 32-pixel images) and horizontal flip of
        every training batch, on tensors (:func:`augment`).
    labels : "true", or "random": a fixed random label per training image (``label_seed``).
    init : "standard" (PyTorch's default initialisation) or a corner: "random_labels"
        (pre-trained for ``init_epochs`` on random labels of the training samples),
        "tiny_subset" (pre-trained for ``init_epochs`` on the first ``init_n`` training
        samples), "noisy" (N(0, init_scale^2) added to the weight matrices and
        convolution kernels only; biases and normalisation parameters unchanged).
        Pre-training uses the run's optimiser at a constant learning rate.
    seed : initial weights, minibatch order, augmentation, noise.
    checkpoints : ((until_epoch, every_epochs), ...); see :func:`checkpoint_steps`.
    log_checkpoints : > 0: that many checkpoints log-spaced in steps instead.
    features : also record the penultimate features on the recorded sets.
    imprint : name of a recorded set to imprint on: at every checkpoint the class means
        of its penultimate features are prototypes, and every other recorded set gets
        ``imprinted_<set>``, the log-softmax of −‖f − μ_c‖² over all classes
        (:func:`hyperribbon.imprinting.imprint`), whatever the task trained on.
    method : "supervised" (cross-entropy of the head), "protonet" (episodic
        meta-learning: one ``n_way``-way ``k_shot``-shot episode with ``n_query``
        queries per class each step, the prototypical loss on the features) or "simclr"
        (two augmented views of each batch, NT-Xent at ``temperature`` on the features;
        labels unused).
    """

    train: Samples = field(default_factory=lambda: Samples(n=2000))
    record: tuple[tuple[str, Samples], ...] = ()
    arch: str = "mlp"
    width: int = 64
    depth: int = 0
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_size: int = 100
    epochs: int = 10
    augment: bool = False
    labels: str = "true"
    label_seed: int = 0
    init: str = "standard"
    init_epochs: int = 0
    init_n: int = 200
    init_scale: float = 0.0
    seed: int = 0
    checkpoints: tuple[tuple[float, float], ...] = DEFAULT_CHECKPOINTS
    log_checkpoints: int = 0
    features: bool = False
    imprint: str = ""
    method: str = "supervised"
    n_way: int = 5
    k_shot: int = 5
    n_query: int = 10
    temperature: float = 0.5

    def __post_init__(self) -> None:
        for name, value, allowed in (("arch", self.arch, tuple(ARCH_DEPTH)),
                                     ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES),
                                     ("labels", self.labels, LABELS),
                                     ("init", self.init, INITS),
                                     ("method", self.method, METHODS)):
            if value not in allowed:
                raise SpecError(f"RunSpec.{name}: {value!r} is not one of "
                                f"{', '.join(allowed)}")
        for name in ("lr", "batch_size", "epochs"):
            if not getattr(self, name) > 0:
                raise SpecError(f"RunSpec.{name} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise SpecError(f"RunSpec.weight_decay must be >= 0 and momentum in [0, 1), got "
                            f"{self.weight_decay} and {self.momentum}")
        if self.init in ("random_labels", "tiny_subset") and self.init_epochs < 1:
            raise SpecError(f"RunSpec.init_epochs must be >= 1 for init={self.init!r}")
        if self.init == "tiny_subset" and not 1 <= self.init_n < self.train.n:
            raise SpecError(f"RunSpec.init_n must be in [1, {self.train.n}) (the training "
                            f"samples), got {self.init_n}")
        if self.init == "noisy" and not self.init_scale > 0:
            raise SpecError("RunSpec.init_scale must be > 0 for init='noisy'")
        if self.batch_size > self.train.n:
            raise SpecError(f"RunSpec.batch_size {self.batch_size} exceeds the "
                            f"{self.train.n} training samples")
        if self.method == "protonet" and (self.n_way < 2 or self.k_shot < 1
                                          or self.n_query < 1):
            raise SpecError(f"RunSpec.n_way must be >= 2 and k_shot, n_query >= 1, got "
                            f"{self.n_way}, {self.k_shot}, {self.n_query}")
        if self.method == "protonet" and self.n_way > len(
                self.train.classes or range(self.n_classes)):
            raise SpecError(f"RunSpec.n_way {self.n_way} exceeds the classes of the task")
        if self.method == "simclr" and not self.temperature > 0:
            raise SpecError(f"RunSpec.temperature must be > 0, got {self.temperature}")
        names = [n for n, _ in self.record]
        if len(set(names)) != len(names) or "fit" in names:
            raise SpecError(f"RunSpec.record: names must be distinct and not 'fit', got "
                            f"{names}")
        if self.imprint and (self.imprint not in names or len(names) < 2):
            raise SpecError(f"RunSpec.imprint: {self.imprint!r} must name a recorded set, "
                            f"with at least one other set to evaluate on (have {names})")
        self.train.check("RunSpec.train")
        for name, s in self.record:
            s.check(f"RunSpec.record[{name}]")
            if s.dataset != self.train.dataset or s.pool != self.train.pool:
                raise SpecError(f"RunSpec.record[{name}]: dataset and pool must be those of "
                                f"the training samples ({self.train.dataset}, pool "
                                f"{self.train.pool})")
        try:
            check_architecture(self.arch, self.width, self.depth, self.image_shape)
        except ValueError as exc:
            raise SpecError(f"RunSpec (arch={self.arch}, width={self.width}): {exc}") from None
        checkpoint_steps(self)  # raises on a schedule that does not fit

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the (pooled) images."""
        c, h, w = data_mod.entry(self.train.dataset).get("shape", (1, 28, 28))
        p = self.train.pool
        return int(c), int(h) // p, int(w) // p

    @property
    def n_classes(self) -> int:
        return int(data_mod.entry(self.train.dataset)["classes"])

    @property
    def steps_per_epoch(self) -> int:
        return max(self.train.n // self.batch_size, 1)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def key(self) -> str:
        """sha256 (16 hex digits) of the specification and :data:`ENGINE_VERSION`."""
        blob = json.dumps({"spec": asdict(self), "engine": ENGINE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def group_key(self) -> str:
        """Key of everything but the seed: runs sharing it can train as one ensemble."""
        blob = json.dumps({**asdict(replace(self, seed=0)), "engine": ENGINE_VERSION},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_steps(spec: RunSpec) -> np.ndarray:
    """The optimisation steps at which predictions are recorded.

    With ``log_checkpoints = n``: 0 and n − 1 log-spaced steps to the end (distinct).
    Otherwise, from the ``checkpoints`` segments ((until_epoch, every_epochs), ...): every
    ``every`` epochs (rounded to whole steps, at least one) until ``until``, the last
    interval continuing to the end; plus step 0, step 1 and the last step. The authors'
    schedule is ((5, 0.25), (25, 1), (65, 4), (1e9, 15)).

    Returns
    -------
    numpy.ndarray of int64, increasing, from 0 to ``spec.total_steps``.
    """
    T, per = spec.total_steps, spec.steps_per_epoch
    if spec.log_checkpoints:
        if not 2 <= spec.log_checkpoints <= T + 1:
            raise SpecError(f"RunSpec.log_checkpoints must be in [2, {T + 1}] (the "
                            f"training length in steps + 1), got {spec.log_checkpoints}")
        from hyperribbon.linear import checkpoints  # the schedule of chapter 6

        return checkpoints(T, spec.log_checkpoints).astype(np.int64)
    segs = spec.checkpoints
    if not segs:
        raise SpecError("RunSpec.checkpoints must hold at least one (until, every) segment")
    steps, t, prev = [0, 1, T], 0, 0.0
    for until, every in segs:
        if not every > 0 or until <= prev:
            raise SpecError(f"RunSpec.checkpoints: segment ({until}, {every}) must have "
                            f"every > 0 and until > {prev}")
        if prev == 0 and every > spec.epochs:
            raise SpecError(f"RunSpec.checkpoints: the first interval ({every} epochs) is "
                            f"beyond the training length ({spec.epochs} epochs)")
        stride = max(int(round(every * per)), 1)
        end = min(int(round(until * per)), T)
        while t + stride <= end:
            t += stride
            steps.append(t)
        prev = until
        if end >= T:
            break
    return np.unique(np.asarray(steps, dtype=np.int64))


# ---------------------------------------------------------------------------------------
# Data on tensors


@lru_cache(maxsize=8)
def _split(dataset: str, split: str, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of a split, standardised per channel with the training split's statistics,
    average-pooled; labels."""
    x, y = data_mod.load_images(dataset, split)
    ref = x if split == "train" else data_mod.load_images(dataset, "train")[0]
    mean = ref.mean(dim=(0, 2, 3), keepdim=True)
    std = ref.std(dim=(0, 2, 3), keepdim=True)
    x = (x - mean) / std
    if pool > 1:
        x = nn.functional.avg_pool2d(x, pool)
    return x.contiguous(), y


def select(s: Samples, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Indices of the samples ``s`` describes, given the labels of its split (see
    :class:`Samples`). Raises SpecError when the split has too few images."""
    y = np.asarray(labels)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(s.seed)).numpy()
    classes = sorted(set(y.tolist())) if s.classes is None else sorted(s.classes)
    perm = perm[np.isin(y[perm], classes)]
    if not s.balanced:
        if s.offset + s.n > len(perm):
            raise SpecError(f"{s.dataset}/{s.split}: {s.n} samples after {s.offset} asked, "
                            f"{len(perm)} available")
        return perm[s.offset:s.offset + s.n]
    counts = np.full(len(classes), s.n // len(classes))
    counts[: s.n % len(classes)] += 1
    picked = []
    for c, k in zip(classes, counts, strict=True):
        idx = perm[y[perm] == c]
        if s.offset + k > len(idx):
            raise SpecError(f"{s.dataset}/{s.split}: class {c} has {len(idx)} images, "
                            f"{s.offset + k} needed")
        picked.append(idx[s.offset:s.offset + k])
    order = np.argsort(np.concatenate([np.flatnonzero(np.isin(perm, p)) for p in picked]))
    return np.concatenate(picked)[order]  # in permutation order (classes interleaved)


def samples(s: Samples) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (n, C, H, W) float32 standardised, labels (n,) int64) of ``s``."""
    x, y = _split(s.dataset, s.split, s.pool)
    idx = torch.from_numpy(select(s, y))
    return x[idx], y[idx]


def augment(x: torch.Tensor, generator: torch.Generator, pad: int | None = None
            ) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip of a batch (N, C, H, W),
    one draw per image, without Python loops over images. The default padding is H / 8
    (4 for 32-pixel images, as the authors; 3 for 28, 1 for 14)."""
    n, c, h, w = x.shape
    pad = max(1, h // 8) if pad is None else pad
    xp = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device)
    flip = torch.rand(n, generator=generator, device=x.device) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = dx[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(-1), cols)[:, None, :]
    out = xp[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]
    return out.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------
# One group of runs (same everything but the seed), as a loop or as a vmapped ensemble


def _build(spec: RunSpec, device: torch.device) -> Classifier:
    torch.manual_seed(spec.seed)
    return classifier(spec.arch, spec.width, spec.image_shape, spec.n_classes,
                      spec.depth).to(device)


def add_weight_noise(model: nn.Module, scale: float, generator: torch.Generator) -> None:
    """Add N(0, scale^2) to every weight matrix and convolution kernel of ``model`` in
    place (parameters named ``weight`` with two or more dimensions); biases and
    normalisation parameters are left as they are."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim >= 2:
                p.add_(scale * torch.randn(p.shape, generator=generator).to(p.device))


def _optimizer(spec: RunSpec, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum,
                           nesterov=spec.optimizer == "nesterov",
                           weight_decay=spec.weight_decay)


def lr_at(spec: RunSpec, step: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based): cosine from ``lr`` to 0 over
    the run, stepped every iteration, or constant."""
    if spec.schedule == "constant":
        return spec.lr
    return 0.5 * spec.lr * (1.0 + math.cos(math.pi * step / spec.total_steps))


def _initial_model(spec: RunSpec, device: torch.device) -> Classifier:
    """The model at t = 0: standard initialisation, or a corner."""
    model = _build(spec, device)
    if spec.init == "noisy":
        add_weight_noise(model, spec.init_scale,
                         torch.Generator().manual_seed(spec.seed + 1_000_003))
    elif spec.init in ("random_labels", "tiny_subset"):
        pre = replace(spec, init="standard", epochs=spec.init_epochs, schedule="constant",
                      record=(), features=False, checkpoints=((1e9, float(spec.init_epochs)),),
                      log_checkpoints=0)
        if spec.init == "random_labels":
            pre = replace(pre, labels="random", label_seed=spec.label_seed + 1)
        else:
            pre = replace(pre, train=replace(spec.train, n=spec.init_n),
                          batch_size=min(spec.batch_size, spec.init_n))
        state = _Group([pre], device, ensemble=False)
        state.run_to_end()
        model.load_state_dict(state.models[0].state_dict())
    return model


class _Group:
    """K runs that differ only in their seed, trained in lock step."""

    def __init__(self, specs: list[RunSpec], device: torch.device, ensemble: bool):
        self.specs, self.device, self.ensemble = specs, device, ensemble
        s0 = specs[0]
        self.x, self.y = (t.to(device) for t in samples(s0.train))
        if s0.labels == "random":
            from hyperribbon.tasks import random_labels

            self.y = torch.from_numpy(random_labels(len(self.y), s0.n_classes,
                                                    s0.label_seed)).to(device)
        self.y_np = self.y.cpu().numpy()
        self.sets = {name: tuple(t.to(device) for t in samples(s)) for name, s in s0.record}
        self.models = [_initial_model(s, device) for s in specs]
        self.gens = [torch.Generator(device=device).manual_seed(s.seed) for s in specs]
        self.steps = checkpoint_steps(s0)
        self.step = 0
        self.records: dict[str, list[np.ndarray]] = {}
        if ensemble:
            from torch.func import stack_module_state

            self.params, self.buffers = stack_module_state(self.models)
            self.base = _build(s0, torch.device("meta"))
            self.opt = _optimizer(s0, list(self.params.values()))
        else:
            self.opts = [_optimizer(s, list(m.parameters()))
                         for s, m in zip(specs, self.models, strict=True)]

    # -- forward passes -----------------------------------------------------------------
    def _call(self, x: torch.Tensor, shared: bool, what: str = "logits") -> torch.Tensor:
        """Logits (K, n, classes) or features (K, n, F); x (n, ...) shared by all models
        or (K, n, ...) one batch per model."""
        if not self.ensemble:
            outs = []
            for k, m in enumerate(self.models):
                xb = x if shared else x[k]
                outs.append(m(xb) if what == "logits" else m.features(xb))
            return torch.stack(outs)
        from torch.func import functional_call, vmap

        def f(p, b, xb):
            out = functional_call(self.base, (p, b), (xb,)) if what == "logits" else \
                functional_call(self.base.features, _prefix(p, b), (xb,))
            return out

        return vmap(f, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, x)

    def _train_mode(self, on: bool) -> None:
        for m in self.models + ([self.base] if self.ensemble else []):
            m.train(on)

    # -- recording ----------------------------------------------------------------------
    def record(self) -> None:
        self._train_mode(False)
        s0 = self.specs[0]
        feats: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, (x, y) in [("fit", (self.x, self.y)), *self.sets.items()]:
                logits = torch.cat([self._call(x[i:i + 2000], True)
                                    for i in range(0, len(x), 2000)], dim=1)
                logp = torch.log_softmax(logits.double(), -1)
                loss = -logp.gather(-1, y[None, :, None].expand(len(logp), -1, 1)).mean((1, 2))
                err = (logits.argmax(-1) != y[None]).double().mean(1)
                self._append(f"loss_{name}", loss.cpu().numpy())
                self._append(f"error_{name}", err.cpu().numpy())
                if name == "fit":
                    continue
                self._append(f"probs_{name}", logp.exp().float().cpu().numpy())
                if s0.features or s0.imprint:
                    feats[name] = torch.cat([self._call(x[i:i + 2000], True, "features")
                                             for i in range(0, len(x), 2000)], dim=1)
                if s0.features:
                    self._append(f"features_{name}", feats[name].float().cpu().numpy())
            if s0.imprint:
                from hyperribbon.imprinting import imprint

                f_imp = feats[s0.imprint].double().cpu().numpy()
                y_imp = self.sets[s0.imprint][1].cpu().numpy()
                for name in self.sets:
                    if name != s0.imprint:
                        f_ev = feats[name].double().cpu().numpy()
                        self._append(f"imprinted_{name}", np.stack([
                            imprint(f_imp[k], y_imp, f_ev[k], s0.n_classes)
                            for k in range(len(self.specs))]).astype(np.float32))
        self._append("steps", np.full(len(self.specs), self.step, dtype=np.int64))
        self._train_mode(True)

    def _append(self, name: str, value: np.ndarray) -> None:
        self.records.setdefault(name, []).append(value)

    # -- one optimisation step ----------------------------------------------------------
    def train_step(self) -> None:
        s0 = self.specs[0]
        per = s0.steps_per_epoch
        b = self.step % per
        if b == 0:  # a new epoch: a new permutation per run
            self.perms = [torch.randperm(len(self.x), generator=g, device=self.device)
                          for g in self.gens]
        idx = [p[b * s0.batch_size:(b + 1) * s0.batch_size] for p in self.perms]
        xs = [self.x[i] for i in idx]
        if s0.augment:
            xs = [augment(xb, g) for xb, g in zip(xs, self.gens, strict=True)]
        lr = lr_at(s0, self.step)
        if self.ensemble:
            logits = self._call(torch.stack(xs), shared=False)
            ys = torch.stack([self.y[i] for i in idx])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), ys.flatten(),
                                               reduction="none").view(len(xs), -1).mean(1)
            for g in self.opt.param_groups:
                g["lr"] = lr
            self.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.opt.step()
        else:
            for k, (m, opt, xb, i) in enumerate(zip(self.models, self.opts, xs, idx,
                                                    strict=True)):
                loss = self._loss(k, m, xb, i)
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.step += 1

    def _loss(self, k: int, m: Classifier, xb: torch.Tensor, i: torch.Tensor
              ) -> torch.Tensor:
        """The loss of model k on its batch (indices i, images xb) for the run's method."""
        s = self.specs[k]
        if s.method == "supervised":
            return nn.functional.cross_entropy(m(xb), self.y[i])
        from hyperribbon import losses

        if s.method == "simclr":
            v1, v2 = losses.contrastive_views(self.x[i], self.gens[k],
                                              padding=max(1, self.x.shape[-1] // 8))
            return losses.nt_xent(m.features(v1), m.features(v2), s.temperature)
        seed = int(torch.randint(0, 2**62, (1,), generator=self.gens[k],
                                 device=self.device))
        ep = losses.sample_episode(self.y_np, s.n_way, s.k_shot, s.n_query,
                                   np.random.default_rng(seed))
        sup = torch.from_numpy(ep.support).to(self.device)
        qry = torch.from_numpy(ep.query).to(self.device)
        to = {"device": self.device}
        return losses.prototypical_loss(m.features(self.x[sup]),
                                        torch.from_numpy(ep.support_targets).to(**to),
                                        m.features(self.x[qry]),
                                        torch.from_numpy(ep.query_targets).to(**to),
                                        s.n_way)

    def run_to_end(self, on_step=None) -> None:
        todo = set(self.steps.tolist())
        total = self.specs[0].total_steps
        if self.step == 0 and not self.records:
            self.record()
        while self.step < total:
            self.train_step()
            if self.step in todo:
                self.record()
            if on_step is not None:
                on_step(self)

    # -- state for resuming -------------------------------------------------------------
    def state(self) -> dict:
        st: dict[str, Any] = {"step": self.step, "gens": [g.get_state() for g in self.gens],
                              "records": {k: [torch.from_numpy(np.ascontiguousarray(a))
                                              for a in v] for k, v in self.records.items()}}
        if self.step % self.specs[0].steps_per_epoch:
            st["perms"] = self.perms
        if self.ensemble:
            st["params"], st["buffers"] = dict(self.params), dict(self.buffers)
            st["opt"] = self.opt.state_dict()
        else:
            st["models"] = [m.state_dict() for m in self.models]
            st["opts"] = [o.state_dict() for o in self.opts]
        return st

    def load(self, st: dict) -> None:
        self.step = int(st["step"])
        for g, s in zip(self.gens, st["gens"], strict=True):
            g.set_state(s)
        self.records = {k: [t.numpy() for t in v] for k, v in st["records"].items()}
        if "perms" in st:
            self.perms = st["perms"]
        with torch.no_grad():
            if self.ensemble:
                for d, key in ((self.params, "params"), (self.buffers, "buffers")):
                    for name, t in st[key].items():
                        d[name].copy_(t)
                self.opt.load_state_dict(st["opt"])
            else:
                for m, s in zip(self.models, st["models"], strict=True):
                    m.load_state_dict(s)
                for o, s in zip(self.opts, st["opts"], strict=True):
                    o.load_state_dict(s)

    def results(self) -> list[dict[str, np.ndarray]]:
        """Per run: name → array stacked over checkpoints."""
        out = []
        for k in range(len(self.specs)):
            arrays = {name: np.stack([a[k] for a in v]) for name, v in self.records.items()}
            per = self.specs[k].steps_per_epoch
            arrays["epochs"] = arrays["steps"] / per
            out.append(arrays)
        return out


def _prefix(params: dict, buffers: dict) -> tuple[dict, dict]:
    """Parameters and buffers of ``features.*`` with the prefix removed."""
    cut = len("features.")
    return ({k[cut:]: v for k, v in params.items() if k.startswith("features.")},
            {k[cut:]: v for k, v in buffers.items() if k.startswith("features.")})


# ---------------------------------------------------------------------------------------
# The cache


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Run:
    """A finished run in the cache; arrays are read on demand (memory-mapped).

    Attributes
    ----------
    spec : RunSpec
    path : its folder
    """

    spec: RunSpec
    path: Path

    def array(self, name: str) -> np.ndarray:
        """A stored array, memory-mapped: ``steps``, ``epochs``, ``probs_<set>``
        (K, M, C) float32, ``features_<set>`` (K, M, F), ``loss_<set>`` / ``error_<set>``
        (K,) with set ``fit`` for the training samples."""
        f = self.path / f"{name}.npy"
        if not f.exists():
            have = sorted(p.stem for p in self.path.glob("*.npy"))
            raise KeyError(f"run {self.path.name} has no array {name!r} ({', '.join(have)})")
        return np.load(f, mmap_mode="r")

    @property
    def steps(self) -> np.ndarray:
        return self.array("steps")

    @property
    def epochs(self) -> np.ndarray:
        return self.array("epochs")

    def probs(self, name: str) -> np.ndarray:
        """Softmax predictions (K, M, C) on the recorded set ``name``."""
        return self.array(f"probs_{name}")

    def error(self, name: str = "fit") -> np.ndarray:
        return self.array(f"error_{name}")

    def loss(self, name: str = "fit") -> np.ndarray:
        return self.array(f"loss_{name}")

    @property
    def meta(self) -> dict:
        return json.loads((self.path / "meta.json").read_text())


def run_dir(spec: RunSpec, cache: Path | None = None) -> Path:
    """Folder of a run in the cache (``cache_dir("runs")`` by default)."""
    return (Path(cache) if cache is not None else cache_dir("runs")) / spec.key()


def load_cached(spec: RunSpec, cache: Path | None = None) -> Run | None:
    """The cached run, or None when absent or damaged (a damaged one is removed with a
    warning naming the file, so that it is retrained)."""
    path = run_dir(spec, cache)
    meta_f = path / "meta.json"
    if not meta_f.exists():
        return None
    try:
        meta = json.loads(meta_f.read_text())
        bad = [f for f, h in meta["files"].items() if _sha256(path / f) != h]
    except (OSError, ValueError, KeyError) as exc:
        bad = [f"meta.json ({exc})"]
    if bad:
        import warnings

        warnings.warn(f"cached run {path} is damaged ({', '.join(bad)}): retraining it",
                      stacklevel=2)
        shutil.rmtree(path, ignore_errors=True)
        return None
    return Run(spec, path)


def _write_run(spec: RunSpec, arrays: dict[str, np.ndarray], cache: Path | None,
               info: dict) -> Run:
    final = run_dir(spec, cache)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    for name, a in arrays.items():
        np.save(tmp / f"{name}.npy", a)
        files[f"{name}.npy"] = _sha256(tmp / f"{name}.npy")
    meta = {"key": spec.key(), "engine": ENGINE_VERSION, "spec": asdict(spec),
            "files": files, **info}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)  # a damaged leftover
    try:
        tmp.rename(final)
    except OSError:  # another worker finished the same run first
        shutil.rmtree(tmp, ignore_errors=True)
    return Run(spec, final)


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------
# Training many runs


#: An ensemble must measure this much faster than the loop to be chosen on a CPU.
ENSEMBLE_MARGIN = 1.2
_TIMINGS: dict[tuple, tuple[float, float]] = {}


def measure_paths(specs: Sequence[RunSpec], device: torch.device | str = "cpu",
                  steps: int = 5) -> tuple[float, float]:
    """Seconds per optimisation step of all K runs as a loop and as one vmapped ensemble,
    with this process's intra-op threads: the best of ``steps`` timed steps after two warm-up
    steps (corner initialisations are measured from the standard one: the step is the
    same). The ensemble is not measured (inf) where it cannot be used: one run, or a
    method other than supervised.

    Returns
    -------
    (loop, ensemble) seconds for one step of every run.
    """
    specs = [replace(s, init="standard") for s in specs]
    dev = torch.device(device)
    paths = [(_Group(specs[:1], dev, ensemble=False), len(specs))]
    if len(specs) > 1 and specs[0].method == "supervised":
        paths.append((_Group(specs, dev, ensemble=True), 1))
    out = [float("inf"), float("inf")]
    for i, (group, scale) in enumerate(paths):
        group.train_step()
        group.train_step()
        best = float("inf")
        for _ in range(steps):
            t0 = time.perf_counter()
            group.train_step()
            best = min(best, time.perf_counter() - t0)
        out[i] = best * scale
    return out[0], out[1]


def choose_path(device: torch.device | str, arch: str, k: int,
                method: str = "supervised", timings: tuple[float, float] | None = None
                ) -> str:
    """"ensemble" or "loop" for k runs of one architecture on ``device``.

    Only supervised groups of more than one run can be ensembles (episodes and
    contrastive views run as a loop). On CUDA a vmapped ensemble always. On a CPU it
    depends (vmapped ensembles measured 0.7–1.0x a plain loop for small MLPs and
    0.2–0.3x for small CNNs on one machine, and faster than the loop on the same machine
    under load; ``benchmarks/bench_training.py``), so the engine measures
    (:func:`measure_paths`, passed as ``timings``) and takes the ensemble only when it is
    at least :data:`ENSEMBLE_MARGIN` times faster; without a measurement, the loop.
    """
    dev = torch.device(device)
    if k < 2 or method != "supervised":
        return "loop"
    if dev.type == "cuda":
        return "ensemble"
    if timings is not None and timings[1] * ENSEMBLE_MARGIN < timings[0]:
        return "ensemble"
    return "loop"


#: Below this estimated work (seconds on one core) the default executor stays in process:
#: starting worker processes (each imports torch) costs more than it saves.
POOL_MIN_SECONDS = 20.0


def _timings(group: list[RunSpec], dev: torch.device) -> tuple[float, float] | None:
    """Measured (loop, ensemble) step times of a CPU group, cached per shape of work."""
    s = group[0]
    if dev.type != "cpu":
        return None
    key = (s.arch, s.width, s.depth, s.batch_size, s.image_shape, s.augment, s.method,
           len(group))
    if key not in _TIMINGS:
        _TIMINGS[key] = measure_paths(group, dev)
    return _TIMINGS[key]


def train_group(specs: Sequence[RunSpec], device: str = "auto", cache: str | None = None,
                path: str | None = None, save_every: int = 200, threads: int | None = None
                ) -> list[str]:
    """Train runs that share :meth:`RunSpec.group_key` (or a single run) and write them to
    the cache; resumes from a saved state. Returns the folders written.

    This is the unit handed to an executor: its arguments are plain values.
    """
    specs = list(specs)
    if len({s.group_key() for s in specs}) != 1:
        raise ValueError("train_group: the runs must differ only in their seed")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    cache_p = Path(cache) if cache is not None else None
    if cache_p is not None:
        cache_p.mkdir(parents=True, exist_ok=True)
    todo = [s for s in specs if load_cached(s, cache_p) is None]
    if not todo:
        return [str(run_dir(s, cache_p)) for s in specs]
    path = path or choose_path(dev, todo[0].arch, len(todo), todo[0].method)
    if path == "ensemble" and todo[0].method != "supervised":
        raise ValueError(f"train_group: method {todo[0].method!r} trains as a loop only")
    partial = run_dir(todo[0], cache_p).with_name(
        "partial-" + hashlib.sha256("".join(s.key() for s in todo).encode()).hexdigest()[:16]
        + ".pt")
    t0 = time.perf_counter()
    group = _Group(todo, dev, ensemble=path == "ensemble")
    if partial.exists():
        try:
            group.load(torch.load(partial, map_location=dev, weights_only=True))
        except Exception as exc:  # noqa: BLE001 - a damaged state: start afresh
            import warnings

            warnings.warn(f"could not resume from {partial} ({exc}); starting afresh",
                          stacklevel=2)
            group = _Group(todo, dev, ensemble=path == "ensemble")

    def save(g: _Group) -> None:
        if save_every and g.step % save_every == 0:
            _save_state(partial, g.state())

    group.run_to_end(on_step=save)
    wall = time.perf_counter() - t0
    info = {"path": path, "device": str(dev), "group_size": len(todo), "wall_s": wall}
    for spec, arrays in zip(todo, group.results(), strict=True):
        _write_run(spec, arrays, cache_p, info)
    partial.unlink(missing_ok=True)
    return [str(run_dir(s, cache_p)) for s in specs]


def _check_data(specs: Sequence[RunSpec]) -> None:
    """Every dataset the runs need is present (or fetchable), before anything trains."""
    for name in sorted({s.train.dataset for s in specs}):
        for split in sorted({s.train.split for s in specs if s.train.dataset == name}
                            | {r.split for s in specs for _, r in s.record
                               if r.dataset == name} | {"train"}):
            data_mod.locate(name, split)


#: Relative cost of a training step per unit of width (for scheduling only).
_ARCH_COST = {"linear": 0.1, "mlp": 0.1, "cnn": 4.0, "convmixer": 1.0, "wrn": 12.0}


def available_dataset(name: str, fallback: str) -> tuple[str, str]:
    """``name`` when its files are present (or may be fetched), else ``fallback``.

    Returns
    -------
    (dataset, note) : the dataset to use and one sentence saying which and why, for the
        chapter's output.
    """
    try:
        data_mod.locate(name, "train")
        data_mod.locate(name, "test")
        return name, f"dataset: {name}"
    except data_mod.DataError as exc:
        if name == fallback:
            raise
        data_mod.locate(fallback, "train")
        return fallback, (f"dataset: {fallback} — {name} is not available here ({exc}); "
                          f"the nearest real dataset is used instead")


def _unit_path(unit: list[RunSpec]) -> str:
    """A unit of work of several runs is an ensemble chosen by :func:`train`."""
    return "ensemble" if len(unit) > 1 else "loop"


def _one_thread() -> None:
    torch.set_num_threads(1)


def train(specs: Sequence[RunSpec], *, executor: Executor | None = None,
          workers: int | None = None, device: str = "auto", cache: Path | None = None,
          desc: str = "training") -> list[Run]:
    """Train (or load from the cache) every run; one :class:`Run` per specification.

    Parameters
    ----------
    specs : run specifications (checked, and their data located, before anything trains).
    executor : any ``concurrent.futures.Executor`` (e.g. a Dask client's); its workers
        must see the same cache folder. Default: in-process, or a pool of ``workers``
        processes with one intra-op thread each.
    workers : processes for the default executor on a CPU (default: one per core), each
        with one intra-op thread (runs in parallel beat threads inside one small run). The
        pool starts only when the measured work exceeds :data:`POOL_MIN_SECONDS`; smaller
        work trains in this process.
    device : "auto", "cpu", "cuda", …
    cache : the cache folder (default ``cache_dir("runs")``).

    Returns
    -------
    list of Run, in the order of ``specs`` (arrays memory-mapped on demand).
    """
    specs = list(specs)
    for i, s in enumerate(specs):
        if not isinstance(s, RunSpec):
            raise TypeError(f"specs[{i}] is a {type(s).__name__}, not a RunSpec")
    _check_data(specs)
    cache_s = str(cache) if cache is not None else None
    missing = [s for s in dict.fromkeys(specs) if load_cached(s, cache) is None]
    dev = resolve_device(device)
    groups: dict[str, list[RunSpec]] = {}
    for s in missing:
        groups.setdefault(s.group_key(), []).append(s)
    units, work = [], 0.0
    for g in groups.values():
        t = _timings(g, dev)
        if choose_path(dev, g[0].arch, len(g), g[0].method, t) == "ensemble":
            units.append(g)
        else:
            units += [[s] for s in g]
        if t is not None:  # estimated seconds on one core, pre-training included
            work += min(t) * g[0].total_steps * (1 + g[0].init_epochs / g[0].epochs)
    # longest first, so that parallel workers finish together (a rough cost model)
    units.sort(key=lambda u: -len(u) * u[0].epochs * u[0].train.n * u[0].width
               * _ARCH_COST[u[0].arch] * (1 + u[0].init_epochs / u[0].epochs))
    own = None
    workers = (os.cpu_count() or 1) if workers is None else workers
    # a pool pays when there are units for every worker and enough work to cover the
    # start-up of the processes; a lone ensemble runs here, on all of this process's threads
    if executor is None and workers > 1 and len(units) >= workers and dev.type == "cpu" \
            and work > POOL_MIN_SECONDS:
        import multiprocessing

        own = executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_one_thread)
    try:
        if executor is None:
            for u in progress(units, desc=desc):
                train_group(u, str(dev), cache_s, _unit_path(u))
        else:
            futures = [executor.submit(train_group, u, str(dev), cache_s, _unit_path(u))
                       for u in units]
            for f in progress(futures, desc=desc):
                f.result()
    finally:
        if own is not None:
            own.shutdown()
    runs = []
    for s in specs:
        r = load_cached(s, cache)
        if r is None:
            raise RuntimeError(f"run {s.key()} was trained but is not in the cache "
                               f"{run_dir(s, cache).parent}")
        runs.append(r)
    return runs
