"""Differentiable augmentation for small datasets (DiffAugment, Zhao et al. 2020) and its adaptive
probability (the overfitting heuristic of StyleGAN2-ADA, Karras et al. 2020).

D sees real and generated images only through these transforms, in both the D and the G step, so it
cannot memorise the few real images; the transforms are differentiable, so G's gradient flows through
them. Every random number comes from the generator the augmenter is given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .config import AUGMENT_TRANSFORMS
from .config import parse_policy as _canonical_policy

POLICIES = AUGMENT_TRANSFORMS


def _uniform(n: int, like: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen, device=like.device, dtype=like.dtype)


def brightness(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Add a per-image shift in [-0.5, 0.5]."""
    return x + (_uniform(x.shape[0], x, gen) - 0.5)


def saturation(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Scale each pixel's distance from its channel mean by a factor in [0, 2]."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x.shape[0], x, gen) * 2) + mean


def contrast(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Scale each image's distance from its mean by a factor in [0.5, 1.5]."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x.shape[0], x, gen) + 0.5) + mean


def color(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Brightness, saturation (colour images only) and contrast; an alpha channel is left as it is."""
    if x.shape[1] == 4:
        return torch.cat([color(x[:, :3], gen), x[:, 3:]], dim=1)
    x = brightness(x, gen)
    if x.shape[1] > 1:
        x = saturation(x, gen)
    return contrast(x, gen)


def _shifted_index(size: int, shift: torch.Tensor) -> torch.Tensor:
    # (B, size) source coordinates into a copy padded by one zero pixel on each side; clamping a
    # coordinate that leaves the image onto the border reads a zero, which is the zero padding.
    base = torch.arange(size, device=shift.device)
    return (base[None, :] - shift[:, None] + 1).clamp(0, size + 1)


def translation(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels, up to ratio x its size in each direction, filling with zeros."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (b,), generator=gen, device=x.device)
    tx = torch.randint(-sx, sx + 1, (b,), generator=gen, device=x.device)
    padded = F.pad(x, [1, 1, 1, 1])
    rows = _shifted_index(h, ty)[:, None, :, None].expand(b, x.shape[1], h, w + 2)
    out = padded.gather(2, rows)
    cols = _shifted_index(w, tx)[:, None, None, :].expand(b, x.shape[1], h, w)
    return out.gather(3, cols)


def cutout(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of half the image size (clipped at the borders) at a random place in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b,), generator=gen, device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b,), generator=gen, device=x.device)
    ys = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - ch // 2)
    xs = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - cw // 2)
    inside = ((ys >= 0) & (ys < ch))[:, :, None] & ((xs >= 0) & (xs < cw))[:, None, :]  # (B, H, W)
    return x * (~inside)[:, None].to(x.dtype)


def random_flip(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2 (--mirror, applied to the real images only)."""
    flip = torch.rand(x.shape[0], 1, 1, 1, generator=gen, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


TRANSFORMS: dict[str, Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def parse_policy(text: str) -> tuple[str, ...]:
    """'color,translation,cutout' -> a tuple of transform names ('colour' is accepted); ValueError otherwise."""
    return tuple(_canonical_policy(text).split(","))


class Augmenter:
    """Applies each transform of a policy to each image with probability p (p = 1: DiffAugment as published).

    p is a float, or a 0-dim tensor read on the device (a captured CUDA graph cannot read a Python value
    that changes). generator None draws from the device's default generator.
    """

    def __init__(self, policy: tuple[str, ...], p: float | torch.Tensor, generator: torch.Generator | None) -> None:
        self.policy = policy
        self.p = p
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        on_device = isinstance(self.p, torch.Tensor)
        if not on_device and self.p <= 0:
            return x
        for name in self.policy:
            augmented = TRANSFORMS[name](x, self.generator)
            if on_device or self.p < 1:
                keep = torch.rand(x.shape[0], 1, 1, 1, generator=self.generator, device=x.device) >= self.p
                augmented = torch.where(keep, x, augmented)
            x = augmented
        return x


def adjust_p(p: float, real_sign_mean: float, images: int, target: float = 0.6, speed_images: int = 100_000) -> float:
    """ADA's rule: raise p when D is too sure of the reals (E[sign D(x)] above target), lower it otherwise.

    p can move from 0 to 1 in ``speed_images`` images (ADA uses 500k; DCGAN runs are shorter).
    """
    step = images / speed_images
    return float(min(1.0, max(0.0, p + (step if real_sign_mean > target else -step))))
