"""Nearest training images of generated ones, in the metrics' feature space: does the model copy?

``dcgan nearest`` draws the grid; ``real_to_real`` gives the scale against which a distance is small.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .images import label_scale, make_grid, to_rgb
from .metrics import Extractor, MetricsError, folder_features, generated_images


def nearest_neighbours(
    query: np.ndarray, pool: np.ndarray, k: int = 1, exclude: np.ndarray | None = None, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) and Euclidean distances (Q, k) of each query's k nearest rows of pool, nearest
    first; ``exclude[i]`` is a pool index that query i may not match (itself)."""
    pool = np.asarray(pool, np.float32)
    pool_sq = (pool.astype(np.float64) ** 2).sum(1)
    k = min(k, len(pool) - (exclude is not None))
    indices, distances = [], []
    for start in range(0, len(query), chunk):
        q = np.asarray(query[start : start + chunk], np.float32)
        d2 = (q.astype(np.float64) ** 2).sum(1)[:, None] + pool_sq[None, :] - 2.0 * (q @ pool.T)
        if exclude is not None:
            d2[np.arange(len(q)), exclude[start : start + chunk]] = np.inf
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(d2, idx, 1)
        order = np.argsort(part, axis=1)
        indices.append(np.take_along_axis(idx, order, 1))
        distances.append(np.sqrt(np.maximum(np.take_along_axis(part, order, 1), 0.0)))
    return np.concatenate(indices), np.concatenate(distances)


@dataclass(frozen=True)
class NearestResult:
    """Generated images beside their nearest real images in feature space."""

    seeds: list[int]
    generated: np.ndarray  # (n, S, S, C) uint8
    neighbours: np.ndarray  # (n, k, S, S, C) uint8, nearest first
    files: list[list[str]]  # (n, k) file of each neighbour, relative to the real folder
    distances: np.ndarray  # (n, k)
    real_to_real: float  # median distance from a real image to its nearest other real image

    @property
    def median_nearest(self) -> float:
        """Median over the generated images of the distance to their nearest real image."""
        return float(np.median(self.distances[:, 0]))

    @property
    def closest(self) -> int:
        """Row of the generated image nearest to any real one (the likeliest copy)."""
        return int(self.distances[:, 0].argmin())


def nearest_real(
    run: str | os.PathLike,
    real_dir: str | os.PathLike,
    extractor: Extractor,
    n: int = 16,
    k: int = 3,
    device: str = "cpu",
    ema: bool = True,
    reference: int = 1000,
    progress: bool = True,
    precise_bn: bool = False,
) -> NearestResult:
    """Images for seeds 0..n-1 and their k nearest images of real_dir (decoded as the run decodes them).

    ``real_to_real`` (over at most ``reference`` real images) gives the scale: a generated image much
    closer to a training image than real images are to each other is likely a copy. ``precise_bn``: G's
    batch-norm statistics re-estimated on loading (``runs.load_generator``).
    """
    from .devices import resolve_device
    from .runs import load_generator

    if n < 1 or k < 1:
        raise MetricsError("-n and -k must be at least 1")
    loaded = load_generator(run, resolve_device(device), ema=ema, precise_bn=precise_bn)
    model = loaded.model
    generated = np.concatenate(
        list(
            generated_images(
                loaded.net, model.latent_dim, model.output, n, model.num_classes, class_draw=loaded.class_draw
            )
        )
    )
    # Real images decoded as the run decoded its training data, into the default cache.
    real = folder_features(
        real_dir, extractor, loaded.model.image_size, replace(loaded.data, cache_dir=None), progress=progress
    )
    fake_features = np.asarray(extractor(generated), np.float32)
    idx, dist = nearest_neighbours(fake_features, real.features, k)
    real_to_real = float("nan")
    if len(real.features) > 1:
        picked = np.random.default_rng(0).permutation(len(real.features))[:reference]
        _, ref = nearest_neighbours(real.features[picked], real.features, 1, exclude=picked)
        real_to_real = float(np.median(ref[:, 0]))
    pixels = real.prepared.images
    return NearestResult(
        seeds=list(range(n)),
        generated=generated,
        neighbours=np.stack([pixels[row] for row in idx]),
        files=[[real.prepared.files[j] for j in row] for row in idx],
        distances=dist,
        real_to_real=real_to_real,
    )


def nearest_grid(result: NearestResult) -> Any:
    """One row per seed: the generated image, then its nearest real images, labelled by distance."""

    n, k = result.neighbours.shape[:2]
    rows = []
    labels = []
    for i in range(n):
        rows.append(result.generated[i])
        rows.extend(result.neighbours[i])
        labels.append(f"seed {result.seeds[i]}")
        labels.extend(f"d={d:.3g}" for d in result.distances[i])
    tiles = np.stack([to_rgb(t) for t in rows])  # gray and transparent pictures beside colour ones
    return make_grid(tiles, columns=k + 1, labels=labels, scale=label_scale(tiles.shape[1]))
