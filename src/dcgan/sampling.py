"""Sampling: z from seeds, and images from a generator for a batch of z."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .config import MAX_SEED
from .images import to_uint8
from .seeds import seed_classes, z_rows


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


PRECISE_BN_SAMPLES = 4_096  # z vectors whose batch statistics re-estimate the norms (--precise-bn)
PRECISE_BN_BATCH = 64  # their batch size: the statistics of a batch this size, as training normalised with
PRECISE_BN_FIRST_SEED = MAX_SEED + 1 - PRECISE_BN_SAMPLES  # the last seeds of the 32-bit range: the same z everywhere
PRECISE_BN_BATCHES = PRECISE_BN_SAMPLES // PRECISE_BN_BATCH


@torch.no_grad()
def precise_bn(
    generator: nn.Module,
    latent_dim: int,
    num_classes: int = 0,
    class_weights: Sequence[float] | np.ndarray | None = None,
    batches: int = PRECISE_BN_BATCHES,
) -> None:
    """Re-estimate a generator's batch-norm statistics for its own weights, in place (PreciseBN, Wu & Johnson
    2021, "Rethinking 'Batch' in BatchNorm").

    The moving average of G copies the live G's running statistics, which follow other weights; here each
    norm's mean and variance become the average over ``PRECISE_BN_SAMPLES`` fixed z (batches of
    ``PRECISE_BN_BATCH``, each normalised with its own statistics, as in training) of this network's own
    activations. A class-conditional G (``class_weights``: each class's share, uniform when None) draws
    each z's class as a seed does (``seeds.seed_classes``). Deterministic; no random stream is touched.
    ``batches``: fewer only to time it (``precise_bn_seconds``).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    sums: dict[nn.Module, list[torch.Tensor]] = {}

    def running(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = module.running_mean, module.running_var
        assert isinstance(mean, torch.Tensor) and isinstance(var, torch.Tensor)
        return mean, var

    def batch_statistics(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].float()
        dims = [d for d in range(x.ndim) if d != 1]
        n = x.numel() // x.shape[1]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        total = sums.setdefault(module, [torch.zeros_like(mean), torch.zeros_like(var)])
        total[0] += mean
        total[1] += var * n / max(n - 1, 1)
        for kept, batch in zip(running(module), (mean, var)):
            kept.copy_(batch)  # eval mode then normalises with this batch's statistics, as training does

    was_training = generator.training
    generator.eval()  # no module updates its own statistics (nor, under DDP, all-reduces them)
    hooks = [m.register_forward_pre_hook(batch_statistics) for m in norms]
    try:
        for b in range(batches):
            _precise_bn_batch(generator, b, latent_dim, num_classes, class_weights)
    finally:
        for hook in hooks:
            hook.remove()
        generator.train(was_training)
    for module, totals in sums.items():
        for kept, total in zip(running(module), totals):
            kept.copy_(total / batches)


def precise_bn_seconds(generator: nn.Module, latent_dim: int, num_classes: int = 0) -> float:
    """About how many seconds ``precise_bn`` takes for this generator on this machine: a one-batch re-estimation
    of a copy timed (the second of two; the first pays one-off set-up) times the number of batches. The
    generator itself is not touched."""
    probe = copy.deepcopy(generator)
    device = next(probe.parameters()).device
    precise_bn(probe, latent_dim, num_classes, batches=1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the kernels run asynchronously: time them, not their launch
    started = time.perf_counter()
    precise_bn(probe, latent_dim, num_classes, batches=1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) * PRECISE_BN_BATCHES


def _precise_bn_batch(
    generator: nn.Module, b: int, latent_dim: int, num_classes: int, class_weights: Sequence[float] | np.ndarray | None
) -> None:
    """The forward pass of ``precise_bn``'s batch ``b``: its fixed z (and classes, drawn by ``class_weights``)."""
    device = next(generator.parameters()).device
    weights = list(class_weights) if class_weights is not None and len(class_weights) else [1.0] * num_classes
    first = PRECISE_BN_FIRST_SEED + b * PRECISE_BN_BATCH
    seeds = range(first, first + PRECISE_BN_BATCH)
    z = z_from_seeds(seeds, latent_dim).to(device)
    if num_classes:
        generator(z, torch.from_numpy(seed_classes(seeds, weights, latent_dim)).to(device))
    else:
        generator(z)
