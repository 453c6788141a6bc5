"""Network families of the compendium.

Chapters 4, 5 and 6's image bridge: image classifiers ``head(features(x))`` of five
families (:func:`classifier`: linear, MLP, all-convolutional CNN, ConvMixer, wide ResNet),
trained by :mod:`hyperribbon.training`.

Chapter 3 (Jeffreys prior sampling): generative sigmoid networks that map a k-unit code
h ∈ [0, 1]^k to an image x̂(h) ∈ (0, 1)^m, trained on flattened images with pixel values
in [0, 1] read as Bernoulli probabilities.

- :class:`SigmoidAutoencoder`: encoder m → … → k and decoder k → … → m, every layer
  affine + sigmoid. :meth:`~SigmoidAutoencoder.decode_logits` gives the output's
  pre-activation (for a numerically stable Bernoulli likelihood and Fisher metric).
- :func:`train_sdae`: a stacked denoising autoencoder (masking noise, Bernoulli
  likelihood, i.e. binary cross-entropy), trained end to end.
- :class:`RBM`, :func:`train_rbm` (CD-1), :func:`train_dbn`: a deep belief network
  pretrained greedily as a stack of RBMs and unrolled into a :class:`SigmoidAutoencoder`
  (decoder weights = transposed encoder weights, with the RBMs' visible biases).
- :func:`fit_cached`: either family, cached on disk by a hash of its training
  configuration (lower DBN layers are shared between code sizes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .util import atomic_path, cache_dir, progress, resolve_device

#: Bump when the training code changes in a way that changes the weights it produces.
TRAINING_VERSION = 1
FAMILIES = ("sdae", "dbn")


def _sigmoid_stack(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class SigmoidAutoencoder(nn.Module):
    """Encoder ``sizes[0] → … → sizes[-1]`` and mirrored decoder, all sigmoid layers.

    Parameters
    ----------
    sizes : list of int
        Layer widths from the input to the code, e.g. ``[784, 500, 250, 5]``.

    Attributes
    ----------
    encoder : nn.Sequential, x (…, m) → h (…, k), ending in a sigmoid.
    decoder : nn.Sequential, h (…, k) → output logits a (…, m); x̂ = σ(a).
    """

    def __init__(self, sizes: list[int]):
        super().__init__()
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least two positive widths, got {sizes}")
        self.sizes = list(sizes)
        self.encoder = _sigmoid_stack(self.sizes, last_activation=True)
        self.decoder = _sigmoid_stack(self.sizes[::-1], last_activation=False)

    @property
    def code_size(self) -> int:
        """k, the number of code units."""
        return self.sizes[-1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code h = enc(x) ∈ (0, 1)^k of images (…, m) (or (…, C, H, W), flattened)."""
        if x.shape[-1] != self.sizes[0]:
            x = x.reshape(*x.shape[: x.ndim - 3], -1) if x.ndim >= 3 else x
        return self.encoder(x)

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Output pre-activations a(h) (…, m); the reconstruction is σ(a)."""
        return self.decoder(h)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Reconstruction x̂(h) = σ(a(h)) ∈ (0, 1)^m."""
        return torch.sigmoid(self.decoder(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x̂(enc(x))."""
        return self.decode(self.encode(x))


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the Bernoulli negative log-likelihood Σ_i BCE(σ(a_i), x_i) (nats)."""
    return nn.functional.binary_cross_entropy_with_logits(
        logits, x, reduction="sum") / max(len(x), 1)


def reconstruction_nll(model: SigmoidAutoencoder, x: torch.Tensor,
                       batch_size: int = 2048) -> float:
    """Mean Bernoulli negative log-likelihood (nats per image) of x under x̂(enc(x))."""
    x = x.reshape(len(x), -1)
    dev = next(model.parameters()).device
    tot = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(dev)
            tot += float(bernoulli_nll(model.decode_logits(model.encode(xb)), xb)) * len(xb)
    return tot / max(len(x), 1)


# ---------------------------------------------------------------------------------------
# Stacked denoising autoencoder


def masking_noise(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Set a random ``fraction`` of the entries of x to zero (Vincent et al.'s masking noise)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"masking fraction must be in [0, 1), got {fraction}")
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= fraction
    return x * keep


def train_autoencoder(model: SigmoidAutoencoder, x: torch.Tensor, epochs: int,
                      noise: float = 0.0, lr: float = 3e-3, batch_size: int = 128,
                      seed: int = 0, desc: str = "autoencoder") -> list[float]:
    """Train (in place) by Adam on the Bernoulli likelihood of the clean x given the
    corrupted input (masking noise ``noise``). Returns the mean loss of each epoch."""
    x = x.reshape(len(x), -1)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in progress(range(epochs), desc=desc):
        perm = torch.randperm(len(x), generator=gen, device=x.device)
        tot = 0.0
        for i in range(0, len(x), batch_size):
            xb = x[perm[i:i + batch_size]]
            inp = masking_noise(xb, noise, gen) if noise > 0 else xb
            loss = bernoulli_nll(model.decode_logits(model.encode(inp)), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(xb)
        losses.append(tot / len(x))
    return losses


def train_sdae(x: torch.Tensor, sizes: list[int], epochs: int = 10, noise: float = 0.25,
               lr: float = 3e-3, batch_size: int = 128, seed: int = 0,
               device: str = "auto") -> SigmoidAutoencoder:
    """A stacked denoising autoencoder trained end to end.

    Parameters
    ----------
    x : (N, m) or (N, C, H, W) tensor in [0, 1]
    sizes : widths from the input to the code, ``[m, …, k]``
    epochs, lr, batch_size : Adam training schedule
    noise : masking-noise fraction of the input
    seed : initial weights, minibatch order and noise
    """
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = SigmoidAutoencoder(sizes).to(dev)
    train_autoencoder(model, x.to(dev), epochs, noise, lr, batch_size, seed, desc="SDAE")
    return model.eval()


# ---------------------------------------------------------------------------------------
# Restricted Boltzmann machines and deep belief networks


class RBM(nn.Module):
    """Bernoulli–Bernoulli restricted Boltzmann machine.

    p(h_j = 1 | v) = σ(c_j + Σ_i v_i W_ij), p(v_i = 1 | h) = σ(b_i + Σ_j W_ij h_j).
    """

    def __init__(self, n_visible: int, n_hidden: int, generator: torch.Generator | None = None):
        super().__init__()
        w = 0.01 * torch.randn(n_visible, n_hidden, generator=generator)
        self.W = nn.Parameter(w, requires_grad=False)
        self.b = nn.Parameter(torch.zeros(n_visible), requires_grad=False)
        self.c = nn.Parameter(torch.zeros(n_hidden), requires_grad=False)

    def hidden_prob(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v)."""
        return torch.sigmoid(v @ self.W + self.c)

    def visible_prob(self, h: torch.Tensor) -> torch.Tensor:
        """p(v = 1 | h)."""
        return torch.sigmoid(h @ self.W.T + self.b)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = −b·v − Σ_j log(1 + exp(c_j + (vW)_j)), so p(v) ∝ exp(−F(v))."""
        return -(v @ self.b) - nn.functional.softplus(v @ self.W + self.c).sum(-1)

    def reconstruction_error(self, v: torch.Tensor) -> float:
        """Mean squared error per entry of the mean-field reconstruction v → p(h|v) → p(v|h)."""
        with torch.no_grad():
            return float(((self.visible_prob(self.hidden_prob(v)) - v) ** 2).mean())

    def cd1_gradient(self, v0: torch.Tensor, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One-step contrastive divergence estimate of ∂ log p / ∂(W, b, c), batch-averaged.

        Positive phase at the data, negative phase after one Gibbs step with sampled
        hidden units and mean-field visible units (Hinton's practical guide, 2010).
        """
        ph0 = self.hidden_prob(v0)
        h0 = (torch.rand(ph0.shape, generator=generator, device=v0.device) < ph0).to(v0.dtype)
        v1 = self.visible_prob(h0)
        ph1 = self.hidden_prob(v1)
        n = len(v0)
        dW = (v0.T @ ph0 - v1.T @ ph1) / n
        return dW, (v0 - v1).mean(0), (ph0 - ph1).mean(0)


def train_rbm(v: torch.Tensor, n_hidden: int, epochs: int = 10, lr: float = 0.1,
              batch_size: int = 100, momentum: float = 0.9, weight_decay: float = 2e-4,
              seed: int = 0, desc: str = "RBM") -> RBM:
    """Train a Bernoulli RBM on v (N, n_visible) ∈ [0, 1] by CD-1 with momentum.

    Visible biases start at the log-odds of the data means; momentum is 0.5 for the first
    five epochs, then ``momentum`` (Hinton, *A practical guide to training RBMs*, 2010).
    """
    gen = torch.Generator(device=v.device).manual_seed(seed)
    rbm = RBM(v.shape[1], n_hidden, generator=torch.Generator().manual_seed(seed)).to(v.device)
    p = v.mean(0).clamp(1e-3, 1 - 1e-3)
    rbm.b.data = torch.log(p / (1 - p)).to(v.dtype)
    rbm.W.data = rbm.W.data.to(v.dtype)
    rbm.c.data = rbm.c.data.to(v.dtype)
    vel = [torch.zeros_like(t) for t in (rbm.W, rbm.b, rbm.c)]
    for ep in progress(range(epochs), desc=desc):
        mom = 0.5 if ep < 5 else momentum
        perm = torch.randperm(len(v), generator=gen, device=v.device)
        for i in range(0, len(v), batch_size):
            grads = rbm.cd1_gradient(v[perm[i:i + batch_size]], gen)
            grads = (grads[0] - weight_decay * rbm.W.data, grads[1], grads[2])
            for t, vt, g in zip((rbm.W, rbm.b, rbm.c), vel, grads, strict=True):
                vt.mul_(mom).add_(g, alpha=lr)
                t.data.add_(vt)
    return rbm


def unroll(rbms: list[RBM]) -> SigmoidAutoencoder:
    """The autoencoder of a stack of RBMs: encoder h_l = σ(h_{l−1} W_l + c_l), decoder
    with the transposed weights and the visible biases, in reverse order."""
    sizes = [rbms[0].W.shape[0]] + [r.W.shape[1] for r in rbms]
    for a, b in zip(rbms[:-1], rbms[1:], strict=True):
        if a.W.shape[1] != b.W.shape[0]:
            raise ValueError("consecutive RBMs must match: hidden of one = visible of next")
    model = SigmoidAutoencoder(sizes).to(rbms[0].W.device, rbms[0].W.dtype)
    enc = [m for m in model.encoder if isinstance(m, nn.Linear)]
    dec = [m for m in model.decoder if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, r in zip(enc, rbms, strict=True):
            lin.weight.copy_(r.W.T)
            lin.bias.copy_(r.c)
        for lin, r in zip(dec, rbms[::-1], strict=True):
            lin.weight.copy_(r.W)
            lin.bias.copy_(r.b)
    return model


def train_dbn(x: torch.Tensor, sizes: list[int], epochs: int = 10, lr: float = 0.1,
              batch_size: int = 100, seed: int = 0, finetune_epochs: int = 0,
              device: str = "auto", layer_cache: Path | None = None) -> SigmoidAutoencoder:
    """A deep belief network: RBMs pretrained greedily by CD-1 (each on the hidden
    probabilities of the one below), unrolled, optionally fine-tuned as an autoencoder.

    With ``layer_cache``, each RBM is stored there under a hash of the configuration of the
    layers up to it, so stacks with the same lower layers share them.
    """
    dev = resolve_device(device)
    v = x.reshape(len(x), -1).to(dev)
    rbms = []
    for depth, n_hidden in enumerate(sizes[1:], start=1):
        cfg = {"layers": sizes[:depth + 1], "epochs": epochs, "lr": lr, "batch": batch_size,
               "seed": seed, "data": _tensor_digest(x), "version": TRAINING_VERSION}
        path = (layer_cache / f"rbm-{_digest(cfg)}.pt") if layer_cache else None
        rbm = RBM(v.shape[1], n_hidden).to(dev)
        if path is not None and path.exists():
            rbm.load_state_dict(torch.load(path, map_location=dev))
        else:
            rbm = train_rbm(v, n_hidden, epochs, lr, batch_size, seed=seed + depth,
                            desc=f"RBM {depth}")
            if path is not None:
                with atomic_path(path) as tmp:
                    torch.save(rbm.state_dict(), tmp)
        rbms.append(rbm)
        with torch.no_grad():
            v = rbm.hidden_prob(v)
    model = unroll(rbms)
    if finetune_epochs:
        train_autoencoder(model, x.to(dev), finetune_epochs, 0.0, seed=seed, desc="DBN tune")
    return model.eval()


# ---------------------------------------------------------------------------------------
# Caching by configuration


@dataclass
class TrainConfig:
    """Everything that determines a trained network (its hash is the cache key).

    ``data`` identifies the training images (dataset, split, count; :func:`fit_cached`
    adds a digest of the tensor itself).
    """

    family: str
    sizes: list[int]
    epochs: int
    seed: int = 0
    data: dict = field(default_factory=dict)
    noise: float = 0.25
    lr: float | None = None
    batch_size: int | None = None
    finetune_epochs: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")

    def key(self) -> str:
        """sha256 (first 16 hex digits) of the configuration and the training version."""
        return _digest({**asdict(self), "version": TRAINING_VERSION})


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tensor_digest(x: torch.Tensor) -> str:
    t = x.detach().to("cpu", torch.float32).contiguous()
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]


def fit_cached(cfg: TrainConfig, x: torch.Tensor, cache: Path | None = None,
               device: str = "auto") -> tuple[SigmoidAutoencoder, bool]:
    """Train the network ``cfg`` describes on x, or load it from the cache.

    Parameters
    ----------
    cfg : TrainConfig
    x : the training images (N, m) or (N, C, H, W); a digest of them joins the key
    cache : folder (default ``cache_dir("ch03")``)

    Returns
    -------
    (model, cached) : the network in eval mode, and whether it came from the cache
    """
    cache = Path(cache) if cache is not None else cache_dir("ch03")
    cache.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    full = TrainConfig(**{**asdict(cfg), "data": {**cfg.data, "digest": _tensor_digest(x)}})
    path = cache / f"{cfg.family}-{full.key()}.pt"
    if path.exists():
        model = SigmoidAutoencoder(cfg.sizes).to(dev)
        model.load_state_dict(torch.load(path, map_location=dev))
        return model.eval(), True
    opts = {k: v for k, v in (("lr", cfg.lr), ("batch_size", cfg.batch_size)) if v is not None}
    if cfg.family == "sdae":
        model = train_sdae(x, cfg.sizes, cfg.epochs, cfg.noise, seed=cfg.seed, device=device,
                           **opts)
    else:
        model = train_dbn(x, cfg.sizes, cfg.epochs, seed=cfg.seed,
                          finetune_epochs=cfg.finetune_epochs, device=device,
                          layer_cache=cache, **opts)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return model.eval(), False


# ---------------------------------------------------------------------------------------
# Image classifiers (chapters 4, 5 and the image bridge of chapter 6)
#
# Every classifier is ``head(features(x))``: ``features`` maps images (N, C, H, W) to
# penultimate features (N, F) and ``head`` is one linear layer F -> classes, so chapter 5
# can imprint class prototypes on the features of any checkpoint.

#: Classifier families and the depth each takes when ``depth=0``.
ARCH_DEPTH = {"linear": 0, "mlp": 2, "cnn": 3, "convmixer": 2, "wrn": 10}


class Classifier(nn.Module):
    """``head(features(x))`` with a linear head on F penultimate features."""

    def __init__(self, features: nn.Module, n_features: int, n_classes: int):
        super().__init__()
        self.features = features
        self.n_features = n_features
        self.head = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) of images x (N, C, H, W)."""
        return self.head(self.features(x))


class _Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _WideBlock(nn.Module):
    """Pre-activation basic block of a wide ResNet (BN-ReLU-conv twice, 1x1 shortcut when
    the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.short = (nn.Conv2d(c_in, c_out, 1, stride, bias=False)
                      if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(a))))
        return out + (x if self.short is None else self.short(a))


def _conv_out(n: int, stride: int) -> int:
    return (n - 1) // stride + 1  # 3x3 conv, padding 1


def classifier(arch: str, width: int, in_shape: tuple[int, int, int], n_classes: int,
               depth: int = 0) -> Classifier:
    """A small image classifier of one family.

    Parameters
    ----------
    arch : {"linear", "mlp", "cnn", "convmixer", "wrn"}
        - ``linear``: softmax regression on the flattened image (F = C·H·W).
        - ``mlp``: ``depth`` ReLU layers of widths width, width/2, width/4, … (F = last).
        - ``cnn``: all-convolutional: 3x3 convolutions with ReLU of ``width``, then
          ``2 width`` channels at stride 2 (``depth`` layers in all), flattened (F =
          channels · spatial size; a flatten + linear head trains where 1x1-conv + global
          pooling did not at these widths).
        - ``convmixer``: patch embedding (patch = round(H / 8)), ``depth`` blocks of a
          residual depthwise 5x5 convolution and a pointwise convolution, each with GELU
          and BatchNorm, global average pooling (F = width) — Trockman & Kolter's design.
        - ``wrn``: wide ResNet of ``depth`` layers ((depth − 4) / 6 pre-activation blocks
          per group; groups of width, 2 width, 4 width channels at strides 1, 2, 2),
          BatchNorm, global average pooling (F = 4 width). WRN-10-4 is width 64.
    width : int
        The family's base width (units or channels).
    in_shape : (C, H, W) of the images.
    n_classes : int
    depth : int
        0 picks the family default (:data:`ARCH_DEPTH`).
    """
    if arch not in ARCH_DEPTH:
        raise ValueError(f"arch must be one of {sorted(ARCH_DEPTH)}, got {arch!r}")
    depth = depth or ARCH_DEPTH[arch]
    c, h, w = in_shape
    check_architecture(arch, width, depth, in_shape)
    if arch == "linear":
        return Classifier(nn.Flatten(), c * h * w, n_classes)
    if arch == "mlp":
        sizes = [c * h * w] + [width >> i for i in range(depth)]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return Classifier(nn.Sequential(*layers), sizes[-1], n_classes)
    if arch == "cnn":
        layers, ch, hh, ww = [], c, h, w
        for i in range(depth):
            out, stride = (width, 1) if i == 0 else (2 * width, 2)
            layers += [nn.Conv2d(ch, out, 3, stride, 1), nn.ReLU()]
            ch, hh, ww = out, _conv_out(hh, stride), _conv_out(ww, stride)
        return Classifier(nn.Sequential(*layers, nn.Flatten()), ch * hh * ww, n_classes)
    if arch == "convmixer":
        p = max(1, round(h / 8))
        layers = [nn.Conv2d(c, width, p, p), nn.GELU(), nn.BatchNorm2d(width)]
        for _ in range(depth):
            layers += [_Residual(nn.Sequential(
                nn.Conv2d(width, width, 5, groups=width, padding=2), nn.GELU(),
                nn.BatchNorm2d(width))),
                nn.Conv2d(width, width, 1), nn.GELU(), nn.BatchNorm2d(width)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return Classifier(nn.Sequential(*layers), width, n_classes)
    n = (depth - 4) // 6
    layers, ch = [nn.Conv2d(c, width, 3, 1, 1, bias=False)], width
    for g, stride in enumerate((1, 2, 2)):
        for i in range(n):
            layers.append(_WideBlock(ch, width << g, stride if i == 0 else 1))
            ch = width << g
    layers += [nn.BatchNorm2d(ch), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), ch, n_classes)


def check_architecture(arch: str, width: int, depth: int, in_shape: tuple[int, int, int]
                       ) -> None:
    """Raise ValueError naming the field when (arch, width, depth) cannot be built."""
    if arch not in ARCH_DEPTH:
        raise ValueError(f"arch must be one of {sorted(ARCH_DEPTH)}, got {arch!r}")
    depth = depth or ARCH_DEPTH[arch]
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if arch == "mlp" and (depth < 1 or width >> (depth - 1) < 1):
        raise ValueError(f"width {width} does not fit an MLP of depth {depth}: the last "
                         f"layer would have {width >> max(depth - 1, 0)} units")
    if arch == "cnn" and depth < 1:
        raise ValueError(f"depth of a cnn must be >= 1, got {depth}")
    if arch == "wrn" and (depth < 10 or (depth - 4) % 6):
        raise ValueError(f"depth of a wrn must be 6n + 4 with n >= 1 (10, 16, 22, …), "
                         f"got {depth}")
    if arch == "convmixer" and min(in_shape[1:]) < 8:
        raise ValueError(f"a convmixer needs images of at least 8x8, got {in_shape}")
