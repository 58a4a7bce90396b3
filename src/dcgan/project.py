"""Projection into z (GAN inversion): for each picture, the z whose image best matches it.

Each target is optimised from several random starts at once (best of N) with Adam on a cosine-decayed
learning rate. The loss is the pixel error in the model's range plus a feature distance: the
discriminator's own activations after each of its blocks, every position's channel vector scaled to unit
length first (as LPIPS does with VGG features), so that the match is judged on structure the trained D
has learned to see, not on colours alone. A small pull of z toward the shell where Gaussian z lie keeps
the answer in the region G was trained on, where walks and arithmetic behave. Everything is a pure
function of (generator, discriminator, targets, seed): the same seed gives the same z on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .images import to_model_range, to_uint8
from .models import Discriminator
from .options import PROJECT_LR, PROJECT_STARTS, PROJECT_STEPS

FEATURE_WEIGHT = 1.0
PRIOR_WEIGHT = 1e-3
CLASS_SAMPLES = 64  # images drawn in each class to find the class nearest a picture
CLASS_CHUNK = 64  # pictures compared at once


@dataclass(frozen=True)
class ProjectionResult:
    """z for each target, the images they give, and how close those are."""

    z: np.ndarray  # (N, latent_dim) float32
    images: np.ndarray  # (N, H, W, C) uint8
    loss: np.ndarray  # (N,) the final loss of the best start
    psnr: np.ndarray  # (N,) dB, of the uint8 reconstruction against the uint8 target
    classes: np.ndarray | None = None  # (N,) int64, the class each z was found in (a class-conditional G)


class DiscriminatorFeatures(nn.Module):
    """Activations of D after each block, for a feature distance (D in eval mode, frozen)."""

    def __init__(self, discriminator: Discriminator) -> None:
        super().__init__()
        self.blocks: nn.Sequential = discriminator.features.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for layer in self.blocks:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Every position's channel vector scaled to unit length."""
    return x / (x.norm(dim=1, keepdim=True) + 1e-8)


def feature_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """(B,) mean over layers of the squared distance between unit-length channel vectors at each position."""
    total = torch.zeros(a[0].shape[0], device=a[0].device)
    for x, y in zip(a, b):
        total = total + (_unit(x) - _unit(y)).pow(2).sum(dim=1).mean(dim=(1, 2))
    return total / len(a)


def pairwise_feature_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """(N, M): feature_distance between each of a's N images and each of b's M, without repeating them."""
    total = torch.zeros(a[0].shape[0], b[0].shape[0], device=a[0].device)
    for x, y in zip(a, b):
        x, y = _unit(x), _unit(y)
        positions = x.shape[2] * x.shape[3]
        squares = x.pow(2).sum(dim=1).mean(dim=(1, 2))[:, None] + y.pow(2).sum(dim=1).mean(dim=(1, 2))[None, :]
        total = total + squares - 2 * torch.einsum("nchw,mchw->nm", x, y) / positions
    return total / len(a)


def likeliest_classes(
    generator: nn.Module,
    targets: np.ndarray,
    output: str,
    num_classes: int,
    features: DiscriminatorFeatures | None = None,
    samples: int = CLASS_SAMPLES,
    seed: int = 0,
) -> torch.Tensor:
    """(N,) for each uint8 target (N, H, W, C), the class of a class-conditional G whose own images come
    closest to it: ``samples`` z (from ``seed``) drawn in every class, and the class of the one nearest the
    target under the projection's own distance (pixel error plus, with ``features``, D's feature distance).
    It is where projection starts best: a model trained on clusters has classes no user knows by name.
    (D's class term is no guide: it scores how much more often the data than G show a picture in a class,
    and G learns to make that even.)"""
    device = next(generator.parameters()).device
    generator = generator.eval()
    z = torch.randn(samples, int(generator.latent_dim), generator=torch.Generator().manual_seed(seed)).to(device)  # type: ignore[arg-type]
    picks = []
    with torch.no_grad():
        for first in range(0, len(targets), CLASS_CHUNK):
            target = to_model_range(torch.from_numpy(np.array(targets[first : first + CLASS_CHUNK])).to(device), output)
            wanted = features(target) if features is not None else None
            nearest = []
            for k in range(num_classes):  # one class's images at a time: memory stays that of one batch
                images = generator(z, torch.full((samples,), k, device=device))
                distance = torch.cdist(target.flatten(1), images.flatten(1)).pow(2) / target[0].numel()
                if features is not None and wanted is not None:
                    distance = distance + FEATURE_WEIGHT * pairwise_feature_distance(wanted, features(images))
                nearest.append(distance.min(dim=1).values)
            picks.append(torch.stack(nearest, dim=1).argmin(dim=1).cpu())
    return torch.cat(picks)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) peak signal-to-noise ratio in dB between uint8 image batches (N, H, W, C)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return np.where(mse > 0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), np.inf)


def project(
    generator: nn.Module,
    targets: np.ndarray,
    output: str,
    features: DiscriminatorFeatures | None = None,
    steps: int = PROJECT_STEPS,
    starts: int = PROJECT_STARTS,
    seed: int = 0,
    lr: float = PROJECT_LR,
    feature_weight: float = FEATURE_WEIGHT,
    on_step: Callable[[int], None] | None = None,
    classes: torch.Tensor | None = None,
) -> ProjectionResult:
    """z for each uint8 target (N, H, W, C) at the generator's size and channels (in ``classes`` (N,), for a
    class-conditional generator)."""
    device = next(generator.parameters()).device
    generator = generator.eval().requires_grad_(False)
    n = len(targets)
    latent_dim = int(generator.latent_dim)  # type: ignore[arg-type]
    target = to_model_range(torch.from_numpy(np.array(targets)).to(device), output)  # a copy: memmaps are read-only
    target = target.repeat_interleave(starts, dim=0)  # (N * starts, C, H, W): each start of image i
    wanted = features(target) if features is not None else None
    z0 = torch.randn(n * starts, latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
    labels = None if classes is None else classes.to(device).repeat_interleave(starts)

    def draw(latent: torch.Tensor, chosen: torch.Tensor | None) -> torch.Tensor:
        return generator(latent) if chosen is None else generator(latent, chosen)

    def losses() -> torch.Tensor:
        image = draw(z, labels)
        loss = (image - target).pow(2).mean(dim=(1, 2, 3))
        if features is not None and wanted is not None and feature_weight > 0:
            loss = loss + feature_weight * feature_distance(features(image), wanted)
        # Gaussian z of dimension D lie near |z|^2 = D: stay on that shell.
        return loss + PRIOR_WEIGHT * (z.pow(2).mean(dim=1) - 1.0).pow(2)

    for step in range(steps):
        for group in optimizer.param_groups:  # cosine decay, a short warm-up
            group["lr"] = lr * min(1.0, (step + 1) / 10) * 0.5 * (1 + math.cos(math.pi * step / steps))
        optimizer.zero_grad(set_to_none=True)
        losses().sum().backward()
        optimizer.step()
        if on_step is not None:
            on_step(step)
    with torch.no_grad():
        final = losses().view(n, starts)
        best = final.argmin(dim=1)
        chosen = z.detach().view(n, starts, latent_dim)[torch.arange(n), best]
        images = to_uint8(draw(chosen, None if classes is None else classes.to(device)), output)
    return ProjectionResult(
        z=chosen.cpu().numpy().astype(np.float32),
        images=images,
        loss=final.min(dim=1).values.cpu().numpy(),
        psnr=psnr(images, targets),
        classes=None if classes is None else classes.cpu().numpy().astype(np.int64),
    )
