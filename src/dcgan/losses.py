"""GAN losses as pure functions of the discriminator's logits."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossPair = tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), on logits (softplus is the stable form)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def bce_g(fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating: -log D(G(z)); fake labels are real for the generator cost."""
    return F.softplus(-fake).mean()


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least squares (Mao et al. 2017) with targets 1 and 0, summed as the tutorial's MSE terms."""
    return (real - 1).pow(2).mean() + fake.pow(2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    """Least squares: push D's output on fakes toward the real target 1."""
    return (fake - 1).pow(2).mean()


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): margins at +1 and -1."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: raise D's score on fakes."""
    return -fake.mean()


LOSS_FUNCTIONS: dict[str, LossPair] = {
    "bce": (bce_d, bce_g),
    "lsgan": (lsgan_d, lsgan_g),
    "hinge": (hinge_d, hinge_g),
}


def get_losses(name: str) -> LossPair:
    """(discriminator loss, generator loss) for a loss name."""
    return LOSS_FUNCTIONS[name]


def decision_threshold(name: str) -> float:
    """D's output that separates 'real' from 'fake' for a loss (least squares targets 1 and 0)."""
    return 0.5 if name == "lsgan" else 0.0
