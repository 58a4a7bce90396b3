"""Sampling: z from seeds, and images from a generator for a batch of z."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .images import to_uint8
from .seeds import z_rows


def z_from_seeds(seeds: Iterable[int], latent_dim: int) -> torch.Tensor:
    """(N, latent_dim) float32 z, one row per seed, identical on every machine (``seeds.z_rows``)."""
    return torch.from_numpy(z_rows(seeds, latent_dim))


@torch.no_grad()
def generate(
    generator: nn.Module,
    z: torch.Tensor,
    output: str,
    classes: torch.Tensor | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """uint8 (N, H, W, C) images for z (N, latent_dim), in eval mode so each image depends on its z alone (and,
    for a class-conditional G, on its class: indices (N,) or class weights (N, K))."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    chunks = []
    try:
        for i in range(0, len(z), batch_size):
            part = z[i : i + batch_size].to(device)
            out = generator(part) if classes is None else generator(part, classes[i : i + batch_size].to(device))
            chunks.append(to_uint8(out, output))
    finally:
        generator.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros((0,), np.uint8)
