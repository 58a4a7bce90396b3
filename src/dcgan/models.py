"""The DCGAN generator and discriminator (Radford et al. 2015), built for any supported size.

Guidelines from the paper, as the tutorial this project grew from explains them (see README):
no pooling (strided convolutions down, transposed convolutions up), batch norm everywhere except
G's output and D's input, ReLU in G with tanh (or sigmoid) on the output, LeakyReLU(0.2) in D,
weights drawn from N(0, 0.02). D returns logits: the sigmoid lives in the loss, where it is safe
under autocast.

Sizes: G starts from a 4x4 map (7x7 for 28, so MNIST-style data trains at its native size) and
doubles until it reaches the image size; D mirrors it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelSpec


def start_size(image_size: int) -> int:
    """Spatial size of G's first feature map (and of D's last)."""
    return 7 if image_size == 28 else 4


def num_stages(image_size: int) -> int:
    """How many times G doubles the spatial size (and D halves it)."""
    return int(round(math.log2(image_size // start_size(image_size))))


def _widths(width: int, max_mult: int, stages: int) -> list[int]:
    # Channels at each resolution from the image side inward: w, 2w, 4w, ... capped at max_mult * w.
    return [width * min(2**i, max_mult) for i in range(stages)]


class Generator(nn.Module):
    """z (B, latent_dim) -> image (B, C, S, S) in [-1, 1] (tanh) or [0, 1] (sigmoid)."""

    def __init__(self, config: ModelSpec) -> None:
        super().__init__()
        self.latent_dim = config.latent_dim
        stages = num_stages(config.image_size)
        widths = _widths(config.g_width, config.max_width_mult, stages)[::-1]  # deepest first
        first = start_size(config.image_size)
        layers: list[nn.Module] = [
            # A transposed conv from a 1x1 "image" is the paper's projection of z to the first map.
            nn.ConvTranspose2d(config.latent_dim, widths[0], first, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        # Output layer: no batch norm (the paper found it destabilises training).
        layers.append(nn.ConvTranspose2d(widths[-1], config.channels, 4, 2, 1, bias=False))
        layers.append(nn.Tanh() if config.output == "tanh" else nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class Discriminator(nn.Module):
    """image (B, C, S, S) -> logits (B,)."""

    def __init__(self, config: ModelSpec) -> None:
        super().__init__()
        stages = num_stages(config.image_size)
        widths = _widths(config.d_width, config.max_width_mult, stages)
        # Input layer: no batch norm (the paper's guideline).
        layers: list[nn.Module] = [nn.Conv2d(config.channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            # With spectral norm the layer's scale is already controlled; batch norm would fight it (SNGAN has none).
            norm = nn.Identity() if config.spectral_norm else nn.BatchNorm2d(c_out)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), norm, nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        last = start_size(config.image_size)
        if config.d_head == "conv":
            # The tutorial's code: one convolution over the whole last map gives one logit.
            self.head = nn.Conv2d(widths[-1], 1, last, 1, 0, bias=False)
        else:
            # The tutorial's text: global average pooling, no fully connected layer. A 1x1 conv then the
            # spatial mean equals pooling then a linear map, and keeps D fully convolutional.
            self.head = nn.Conv2d(widths[-1], 1, 1, 1, 0, bias=True)
        init_weights(self)
        if config.spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)).mean(dim=(1, 2, 3))  # (B,)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions; N(1, 0.02) scale and zero shift for batch norm (Radford et al.)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_models(spec: ModelSpec) -> tuple[Generator, Discriminator]:
    """Both networks, with the initial weights drawn from torch's global stream."""
    return Generator(spec), Discriminator(spec)
