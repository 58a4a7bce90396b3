"""Scoring a generator while it trains: the real images' features are computed once, then each evaluation
draws the same seeds and reports FID, KID, precision and recall."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .features import InceptionFeatures
from .scores import scores
from .sources import generated_images


class TrainingScorer:
    """FID/KID/precision/recall of a generator against training images whose features are computed once."""

    def __init__(self, inception: str | os.PathLike | None, device: Any, real_images: np.ndarray, n: int) -> None:
        self.extractor = InceptionFeatures(inception or None, device=device)
        self.real = self.extractor(real_images)
        self.n = n  # generated images per score, seeds 0..n-1

    def __call__(
        self, generator: Any, latent_dim: int, output: str, num_classes: int = 0, class_draw: tuple[float, ...] = ()
    ) -> dict[str, float]:
        chunks = generated_images(generator, latent_dim, output, self.n, num_classes, class_draw=class_draw)
        fake = np.concatenate([self.extractor(c) for c in chunks])
        result = scores(fake, self.real, kid_subset_size=min(1000, self.n))
        return {k: float(v) for k, v in result.items() if k in ("fid", "kid", "kid_std", "precision", "recall")}
