"""The scores, as functions of two feature sets (N, D): FID, KID, and precision and recall."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .features import INSTALL_HINT, MetricsError, MetricsUnavailable

PR_NEIGHBOURS = 3  # k of Kynkaanniemi et al. (2019)
_CHUNK = 1024  # rows of a distance matrix computed at once


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise MetricsError(f"statistics need at least 2 feature vectors, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrtm() -> tuple[Callable[[np.ndarray], np.ndarray], type[Warning]]:
    """scipy's matrix square root and the warning it gives for singular matrices."""
    try:
        from scipy.linalg import LinAlgWarning, sqrtm
    except ImportError:
        raise MetricsUnavailable(f"FID needs scipy, which is not installed: {INSTALL_HINT}") from None
    return sqrtm, LinAlgWarning


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance of two Gaussians: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017)."""
    sqrtm, singular_warning = _sqrtm()
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: means {mu1.shape} {mu2.shape}, covariances {s1.shape} {s2.shape}")
    with warnings.catch_warnings():
        # With fewer images than features the product is singular (scipy warns) and its root can
        # blow up: then nudge both diagonals, as the reference implementation (TTUR) does.
        warnings.simplefilter("ignore", singular_warning)
        root = sqrtm(s1 @ s2)
        if not np.isfinite(root).all():
            offset = np.eye(len(s1)) * eps
            root = sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(root):
        # Rounding leaves a tiny imaginary part; a large one means the root is meaningless.
        if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
            raise MetricsError(
                f"FID is numerically unstable here (imaginary component "
                f"{np.abs(np.diagonal(root).imag).max():.3g}): use more images"
            )
        root = root.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root))


def kid(
    feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 with the kernel
    k(x, y) = (x.y / d + 1)^3 on random subsets; returns (mean, standard deviation over the subsets).

    The subset size is clipped to the smaller set. The estimator assumes the two sets are independent
    samples; for one set against itself (the same images) it would come out negative, so that case is 0.
    """
    # Dot products in float32 (as StyleGAN2-ADA computes KID; twice the speed), the rest in float64.
    a, b = np.asarray(feats_a, np.float32), np.asarray(feats_b, np.float32)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise MetricsError(f"KID needs at least 2 images on each side, got {len(a)} and {len(b)}")
    if subsets < 1:
        raise MetricsError("KID needs at least one subset")
    if a.shape == b.shape and np.array_equal(a, b):
        return 0.0, 0.0
    d = a.shape[1]

    def kernel(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return ((p @ q.T).astype(np.float64) / d + 1.0) ** 3

    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        # Unbiased: a point's kernel with itself is left out of the within-set means.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[i] = within - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


def _squared_distances(x: np.ndarray, y: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    d2 = (x.astype(np.float64) ** 2).sum(1)[:, None] + y_sq[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d2, 0.0)


def knn_radii(features: np.ndarray, k: int = PR_NEIGHBOURS) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row (N,)."""
    x = np.asarray(features, np.float32)
    if len(x) <= k:
        raise MetricsError(f"precision and recall need more than {k} images on each side, got {len(x)}")
    x_sq = (x.astype(np.float64) ** 2).sum(1)
    radii = np.empty(len(x))
    for start in range(0, len(x), _CHUNK):
        d2 = _squared_distances(x[start : start + _CHUNK], x, x_sq)
        # The row's distance to itself (0) is the smallest; the k-th other neighbour is the (k+1)-th smallest.
        radii[start : start + len(d2)] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _coverage(queries: np.ndarray, pool: np.ndarray, pool_radii: np.ndarray) -> float:
    """Share of queries that fall inside at least one pool row's k-NN ball."""
    q, p = np.asarray(queries, np.float32), np.asarray(pool, np.float32)
    p_sq = (p.astype(np.float64) ** 2).sum(1)
    inside = 0
    for start in range(0, len(q), _CHUNK):
        d2 = _squared_distances(q[start : start + _CHUNK], p, p_sq)
        inside += int((d2 <= pool_radii[None, :]).any(axis=1).sum())
    return inside / len(q)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision is the share of generated images
    inside the k-NN manifold of the real ones (fidelity), recall the share of real images inside the
    manifold of the generated ones (variety)."""
    return _coverage(fake, real, knn_radii(real, k)), _coverage(real, fake, knn_radii(fake, k))


def scores(
    feats_a: np.ndarray, feats_b: np.ndarray, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """{"fid", "kid", "kid_std", "precision", "recall", "n_a", "n_b"} of two feature sets (N, D).

    Precision and recall read B as the real side and A as the generated one (``dcgan fid RUN DATA``);
    they need more than 3 images on each side and are left out below that.
    """
    mu_a, sigma_a = feature_stats(feats_a)
    mu_b, sigma_b = feature_stats(feats_b)
    kid_mean, kid_std = kid(feats_a, feats_b, kid_subsets, kid_subset_size, seed)
    result: dict[str, Any] = {
        "fid": frechet_distance(mu_a, sigma_a, mu_b, sigma_b),
        "kid": kid_mean,
        "kid_std": kid_std,
    }
    if min(len(feats_a), len(feats_b)) > PR_NEIGHBOURS:
        result["precision"], result["recall"] = precision_recall(feats_b, feats_a)
    return {**result, "n_a": len(feats_a), "n_b": len(feats_b)}
