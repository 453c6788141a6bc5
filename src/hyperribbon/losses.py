"""Losses of the representation-learning methods of chapter 5, and their inputs.

* :func:`nt_xent`: SimCLR's normalised temperature-scaled cross-entropy over the 2N
  views of N images (two augmentations each; the positive of a view is its twin, the
  other 2N - 2 views are negatives).
* :func:`prototypical_loss`: prototypical networks on an N-way K-shot episode
  (prototypes = support class means; query logits = -squared Euclidean distances).
* :class:`EpisodeSampler`: seeded N-way K-shot episodes of a labelled pool.
* Batched tensor augmentations for contrastive views (random crop with padding,
  horizontal flip, Gaussian noise) on (N, C, H, W) tensors, without per-image loops.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Episode",
    "EpisodeSampler",
    "contrastive_views",
    "gaussian_noise",
    "nt_xent",
    "prototype_logits",
    "prototypical_loss",
    "random_crop",
    "random_flip",
    "sample_episode",
]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent loss (SimCLR) of two views of N images.

    With u_1..u_2N the L2-normalised rows of [z1; z2], s_ij = u_i . u_j / temperature and
    p(i) the twin of view i (i + N or i - N):

        L = (1 / 2N) sum_i -log( exp(s_i,p(i)) / sum_{j != i} exp(s_ij) ).

    Parameters
    ----------
    z1, z2 : torch.Tensor, shape (N, D), N >= 2
        Projections of the first and second view of each image (row n of each: one image).
    temperature : float > 0

    Returns
    -------
    torch.Tensor, scalar
    """
    if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 must both have shape (N >= 2, D), got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    s = (u @ u.T) / temperature
    s = s.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=s.device), float("-inf"))
    twin = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(s.device)
    return F.cross_entropy(s, twin)


def prototype_logits(support: torch.Tensor, support_targets: torch.Tensor,
                     query: torch.Tensor, n_way: int) -> torch.Tensor:
    """Query logits of a prototypical network: -||q - c_k||^2, c_k the mean of class k's
    support embeddings.

    Parameters
    ----------
    support : torch.Tensor, shape (S, D)
    support_targets : torch.Tensor of int, shape (S,), values in [0, n_way)
    query : torch.Tensor, shape (Q, D)
    n_way : int

    Returns
    -------
    torch.Tensor, shape (Q, n_way)
    """
    if support.ndim != 2 or query.ndim != 2 or support.shape[1] != query.shape[1]:
        raise ValueError(f"support {tuple(support.shape)} and query {tuple(query.shape)} "
                         "must be (rows, D) with one D")
    t = support_targets.to(support.device).long()
    counts = torch.bincount(t, minlength=n_way)
    if counts.numel() != n_way or (counts == 0).any():
        raise ValueError(f"every one of the {n_way} classes needs a support sample, got "
                         f"counts {counts.tolist()}")
    protos = torch.zeros(n_way, support.shape[1], dtype=support.dtype, device=support.device)
    protos = protos.index_add(0, t, support) / counts[:, None].to(support.dtype)
    return -torch.cdist(query, protos).pow(2)


def prototypical_loss(support: torch.Tensor, support_targets: torch.Tensor,
                      query: torch.Tensor, query_targets: torch.Tensor,
                      n_way: int) -> torch.Tensor:
    """Prototypical-network loss of one episode: cross-entropy of the query logits
    (:func:`prototype_logits`, a log-softmax over the n_way prototypes).

    Returns
    -------
    torch.Tensor, scalar: mean over queries of -log softmax(-d^2)[true class]
    """
    logits = prototype_logits(support, support_targets, query, n_way)
    return F.cross_entropy(logits, query_targets.to(logits.device).long())


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot episode: positions in the pool and targets in [0, n_way).

    Attributes
    ----------
    classes : (n_way,) the pool's classes drawn, in target order.
    support, support_targets : (n_way * k_shot,)
    query, query_targets : (n_way * n_query,)
    """

    classes: np.ndarray
    support: np.ndarray
    support_targets: np.ndarray
    query: np.ndarray
    query_targets: np.ndarray


def sample_episode(labels: Any, n_way: int, k_shot: int, n_query: int,
                   rng: np.random.Generator,
                   classes: Sequence[int] | None = None) -> Episode:
    """Draw one episode: n_way classes, then k_shot + n_query distinct samples of each.

    Parameters
    ----------
    labels : array_like of int, shape (N,), the pool's labels.
    n_way, k_shot, n_query : int >= 1 (n_way >= 2)
    rng : numpy.random.Generator
    classes : the classes to draw from (a task's); default every label present.

    Returns
    -------
    Episode
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError("labels must be a 1-d array of integers")
    pool = np.unique(y) if classes is None else np.asarray(sorted(set(classes)))
    if n_way < 2 or k_shot < 1 or n_query < 1:
        raise ValueError(f"need n_way >= 2, k_shot >= 1, n_query >= 1, got {n_way}, "
                         f"{k_shot}, {n_query}")
    if n_way > pool.size:
        raise ValueError(f"n_way={n_way} exceeds the {pool.size} classes available")
    drawn = rng.choice(pool, size=n_way, replace=False)
    sup, qry = [], []
    for c in drawn:
        pos = np.flatnonzero(y == c)
        if pos.size < k_shot + n_query:
            raise ValueError(f"class {c} has {pos.size} samples; an episode needs "
                             f"k_shot + n_query = {k_shot + n_query}")
        pick = rng.choice(pos, size=k_shot + n_query, replace=False)
        sup.append(pick[:k_shot])
        qry.append(pick[k_shot:])
    return Episode(classes=drawn, support=np.concatenate(sup),
                   support_targets=np.repeat(np.arange(n_way), k_shot),
                   query=np.concatenate(qry),
                   query_targets=np.repeat(np.arange(n_way), n_query))


class EpisodeSampler:
    """Seeded stream of N-way K-shot episodes (:func:`sample_episode`).

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    n_way, k_shot, n_query : int
    seed : int
    classes : optional subset of classes (a task's).
    """

    def __init__(self, labels: Any, n_way: int, k_shot: int, n_query: int, seed: int = 0,
                 classes: Sequence[int] | None = None) -> None:
        self.labels = np.asarray(labels)
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.classes = classes
        self.rng = np.random.default_rng(seed)

    def sample(self) -> Episode:
        """The next episode."""
        return sample_episode(self.labels, self.n_way, self.k_shot, self.n_query, self.rng,
                              self.classes)

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()


def _check_images(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(x.shape)}")


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                mode: str = "constant") -> torch.Tensor:
    """Per-image random H x W crop of the images padded by ``padding`` on each side.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
    padding : int >= 0
    generator : torch.Generator on x's device, optional
    mode : ``torch.nn.functional.pad`` mode ("constant": zeros, "reflect", "replicate")

    Returns
    -------
    torch.Tensor, shape (N, C, H, W)
    """
    _check_images(x)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x.clone()
    N, C, H, W = x.shape
    xp = F.pad(x, (padding,) * 4, mode=mode)
    dy = torch.randint(0, 2 * padding + 1, (N,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (N,), generator=generator, device=x.device)
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(W, device=x.device))[:, None, None, :]
    n = torch.arange(N, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return xp[n, c, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None,
                p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability ``p``; shape (N, C, H, W) kept."""
    _check_images(x)
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def gaussian_noise(x: torch.Tensor, std: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add independent N(0, std^2) noise to every pixel (no clipping)."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    if std == 0:
        return x.clone()
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + std * noise


def contrastive_views(x: torch.Tensor, generator: torch.Generator | None = None,
                      padding: int = 4, flip: bool = True, noise: float = 0.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views of a batch (crop, then flip, then noise).

    Returns
    -------
    v1, v2 : torch.Tensor, each of x's shape (N, C, H, W)
    """
    def view() -> torch.Tensor:
        v = random_crop(x, padding, generator)
        if flip:
            v = random_flip(v, generator)
        return gaussian_noise(v, noise, generator)

    return view(), view()
