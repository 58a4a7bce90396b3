"""The DCGAN generator and discriminator (Radford et al. 2015), built for any supported size.

Guidelines from the paper, as the tutorial this project grew from explains them (see README):
no pooling (strided convolutions down, transposed convolutions up), batch norm everywhere except
G's output and D's input, ReLU in G with tanh (or sigmoid) on the output, LeakyReLU(0.2) in D,
weights drawn from N(0, 0.02). D returns logits: the sigmoid lives in the loss, where it is safe
under autocast.

Sizes: G starts from a 4x4 map (7x7 for 28, so MNIST-style data trains at its native size; a small
rectangle such as 4x3 for 64x48) and doubles until it reaches the image size; D mirrors it.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelSpec, first_map


def _widths(width: int, max_mult: int, stages: int) -> list[int]:
    # Channels at each resolution from the image side inward: w, 2w, 4w, ... capped at max_mult * w.
    return [width * min(2**i, max_mult) for i in range(stages)]


CLASS_EMBEDDING = 32  # length of the class vector joined to z (class_input "concat")
# Its initial scale. Drawn N(0, 1) like z, the class vector outweighed z and G drew nearly one picture per
# class; N(0, 0.3^2) follows the class as well and keeps z's variety (Fashion-MNIST, 3,000 steps: class
# fidelity 91% -> 90%, Frechet distance on a classifier's features 82 -> 25; BENCHMARKS.md, "Class-conditional
# training on Fashion-MNIST").
CLASS_EMBEDDING_STD = 0.3


def class_weights(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices (B,) -> one-hot (B, K) floats; soft weights (B, K) pass through (latent arithmetic mixes
    classes)."""
    if classes.dtype in (torch.int64, torch.int32):
        return nn.functional.one_hot(classes.long(), num_classes).float()
    return classes.float()


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without its own scale and shift; each class has its own (a weighted mix for soft classes)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(features, affine=False)
        self.scale = nn.Parameter(torch.ones(num_classes, features))
        self.shift = nn.Parameter(torch.zeros(num_classes, features))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        scale, shift = weights @ self.scale, weights @ self.shift  # (B, C)
        return self.norm(x) * scale[:, :, None, None].to(x.dtype) + shift[:, :, None, None].to(x.dtype)


class Generator(nn.Module):
    """z (B, latent_dim) [and classes (B,) or class weights (B, K)] -> image (B, C, S, S) in [-1, 1] (tanh)
    or [0, 1] (sigmoid)."""

    def __init__(self, config: ModelSpec) -> None:
        super().__init__()
        self.spec = config
        self.latent_dim = config.latent_dim
        self.num_classes = config.num_classes
        concat = config.num_classes > 0 and config.class_input == "concat"
        conditional_norm = config.num_classes > 0 and config.class_input == "cbn"
        first_w, first_h, stages = first_map(config.image_size)
        widths = _widths(config.g_width, config.max_width_mult, stages)[::-1]  # deepest first

        def norm(width: int) -> nn.Module:
            return ConditionalBatchNorm2d(width, config.num_classes) if conditional_norm else nn.BatchNorm2d(width)

        inputs = config.latent_dim + (CLASS_EMBEDDING if concat else 0)

        def refine(width: int) -> list[nn.Module]:
            # --g-depth: 3x3 stride-1 convolutions at one resolution, each with its norm and ReLU.
            block: list[nn.Module] = []
            for _ in range(config.g_depth):
                block += [nn.Conv2d(width, width, 3, 1, 1, bias=False), norm(width), nn.ReLU(inplace=True)]
            return block

        layers: list[nn.Module] = [
            # A transposed conv from a 1x1 "image" is the paper's projection of z to the first map.
            nn.ConvTranspose2d(inputs, widths[0], (first_h, first_w), 1, 0, bias=False),
            norm(widths[0]),
            nn.ReLU(inplace=True),
            *refine(widths[0]),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), norm(c_out), nn.ReLU(inplace=True)]
            layers += refine(c_out)
        # Output layer: no batch norm (the paper found it destabilises training).
        layers.append(nn.ConvTranspose2d(widths[-1], config.channels, 4, 2, 1, bias=False))
        layers.append(nn.Tanh() if config.output == "tanh" else nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        if concat:
            self.class_embedding = nn.Parameter(torch.empty(config.num_classes, CLASS_EMBEDDING))
        init_weights(self)

    def forward(self, z: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        x = z.view(z.shape[0], self.latent_dim, 1, 1)
        if not self.num_classes:
            return self.net(x)
        if classes is None:
            raise ValueError("this generator is class-conditional: give the classes")
        weights = class_weights(classes, self.num_classes).to(z.device)
        if self.spec.class_input == "concat":
            joined = weights @ self.class_embedding  # (B, CLASS_EMBEDDING)
            return self.net(torch.cat([x, joined.to(x.dtype)[:, :, None, None]], dim=1))
        for layer in self.net:
            x = layer(x, weights) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class Discriminator(nn.Module):
    """image (B, C, S, S) [and classes (B,)] -> logits (B,). A class-conditional D adds the projection of
    Miyato & Koyama (2018): the inner product of a class embedding with the last features summed over
    positions (their global sum pooling; a mean made the class term and its gradient one per position, 49
    times smaller at 28x28, and D learned the classes too slowly for G to follow them)."""

    def __init__(self, config: ModelSpec) -> None:
        super().__init__()
        last_w, last_h, stages = first_map(config.image_size)
        widths = _widths(config.d_width, config.max_width_mult, stages)
        # Input layer: no batch norm (the paper's guideline).
        layers: list[nn.Module] = [
            nn.Conv2d(config.channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
        ]

        def norm(width: int) -> nn.Module:
            # With spectral norm the layer's scale is already controlled; batch norm would fight it (SNGAN has none).
            return nn.Identity() if config.spectral_norm else nn.BatchNorm2d(width)

        def refine(width: int) -> list[nn.Module]:
            # --d-depth: 3x3 stride-1 convolutions after a strided one, at its resolution (SNGAN's CNN D pairs them).
            block: list[nn.Module] = []
            for _ in range(config.d_depth):
                block += [nn.Conv2d(width, width, 3, 1, 1, bias=False), norm(width), nn.LeakyReLU(0.2, True)]
            return block

        layers += refine(widths[0])
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), norm(c_out), nn.LeakyReLU(0.2, True)]
            layers += refine(c_out)
        self.features = nn.Sequential(*layers)
        if config.d_head == "conv":
            # The tutorial's code: one convolution over the whole last map gives one logit.
            self.head = nn.Conv2d(widths[-1], 1, (last_h, last_w), 1, 0, bias=False)
        else:
            # The tutorial's text: global average pooling, no fully connected layer. A 1x1 conv then the
            # spatial mean equals pooling then a linear map, and keeps D fully convolutional.
            self.head = nn.Conv2d(widths[-1], 1, 1, 1, 0, bias=True)
        self.num_classes = config.num_classes
        if self.num_classes:
            self.class_embedding = nn.Embedding(config.num_classes, widths[-1])
        init_weights(self)
        if config.spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Embedding)):
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images)
        logits = self.head(h).mean(dim=(1, 2, 3))  # (B,)
        if not self.num_classes:
            return logits
        if classes is None:
            raise ValueError("this discriminator is class-conditional: give the classes")
        pooled = h.sum(dim=(2, 3))  # (B, C)
        return logits + (self.class_embedding(classes.long()).to(pooled.dtype) * pooled).sum(dim=1)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions and D's class embedding; N(1, 0.02) scale and zero shift for batch norm
    (Radford et al.), per class for conditional batch norm; G's class vector N(0, CLASS_EMBEDDING_STD^2)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, ConditionalBatchNorm2d):
            nn.init.normal_(m.scale, 1.0, 0.02)
            nn.init.zeros_(m.shift)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
    embedding = getattr(module, "class_embedding", None)
    if isinstance(embedding, nn.Parameter):
        nn.init.normal_(embedding, 0.0, CLASS_EMBEDDING_STD)  # G's class vector, beside z ~ N(0, 1)


def build_models(spec: ModelSpec) -> tuple[Generator, Discriminator]:
    """Both networks, with the initial weights drawn from torch's global stream."""
    return Generator(spec), Discriminator(spec)
