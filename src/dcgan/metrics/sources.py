"""Features of a source (a run folder or checkpoint, whose generator draws images, or a folder of images),
the cache of folder features, and ``compare``, the function behind ``dcgan fid``.

Features of image folders are cached under ``<cache>/fid-stats``, keyed by the folder's content
fingerprint (see ``dataset``), the preprocessing, the extractor's identity and the number of images.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DataConfig, size_text
from ..files import atomic_write
from ..progress import progress_bar
from ..runs import is_run
from .features import INCEPTION_SIZE, Extractor, MetricsError
from .scores import scores

STATS_FORMAT = 2  # bump when the cached feature files change meaning
_CHUNK = 100  # images handed to the extractor at once: bounds memory and paces the progress bar


def _extract(extractor: Extractor, chunks: Iterable[np.ndarray], total: int, desc: str, progress: bool) -> np.ndarray:
    parts = []
    with progress_bar(total, desc, progress) as bar:
        for images in chunks:
            parts.append(np.asarray(extractor(images), dtype=np.float32))
            bar.update(len(images))
    return np.concatenate(parts)


def generated_images(
    generator: Any,
    latent_dim: int,
    output: str,
    n: int,
    num_classes: int = 0,
    only_class: int | None = None,
    class_draw: Sequence[float] = (),
) -> Iterator[np.ndarray]:
    """uint8 (N, H, W, C) chunks of images for seeds 0..n-1, the seeds ``dcgan generate -n`` uses; a
    class-conditional G draws seed s as class s mod K (every class equally), or all as ``only_class``; one
    trained on clusters (``class_draw``, plan.RunPlan) each seed's cluster, as ``dcgan generate`` does."""
    import torch

    from ..sampling import generate, z_from_seeds

    for start in range(0, n, _CHUNK):
        seeds = range(start, min(n, start + _CHUNK))
        classes = sample_classes(seeds, num_classes, latent_dim, only_class, class_draw)
        yield generate(
            generator, z_from_seeds(seeds, latent_dim), output, None if classes is None else torch.from_numpy(classes)
        )


def sample_classes(
    seeds: range, num_classes: int, latent_dim: int, only_class: int | None = None, class_draw: Sequence[float] = ()
) -> np.ndarray | None:
    """The class ``generated_images`` draws each seed in: (N,) int64, or None for an unconditional G."""
    from ..seeds import seed_classes

    if not num_classes:
        return None
    if only_class is not None:
        return np.full(len(seeds), only_class, dtype=np.int64)
    if class_draw:
        return seed_classes(seeds, class_draw, latent_dim)
    return np.arange(seeds.start, seeds.stop, dtype=np.int64) % num_classes


@dataclass(frozen=True)
class GeneratedFeatures:
    """Features of images drawn from a trained generator, and what drew them."""

    features: np.ndarray  # (N, D) float32
    loaded: Any  # runs.LoadedGenerator: the model, the checkpoint, how its run decoded data


def generator_features(
    path: str | os.PathLike,
    extractor: Extractor,
    n: int = 10_000,
    device: str = "cpu",
    ema: bool = True,
    progress: bool = True,
    precise_bn: bool = False,
) -> GeneratedFeatures:
    """Features of n images from a run folder or checkpoint, drawn with seeds 0..n-1 (``precise_bn``: as
    ``runs.load_generator``)."""
    return _loaded_features(_load(path, device, ema, precise_bn), extractor, n, progress)


def _load(path: str | os.PathLike, device: str, ema: bool, precise_bn: bool) -> Any:
    from ..devices import resolve_device
    from ..runs import load_generator

    return load_generator(path, resolve_device(device), ema=ema, precise_bn=precise_bn)


def _loaded_features(loaded: Any, extractor: Extractor, n: int = 10_000, progress: bool = True) -> GeneratedFeatures:
    """Features of n images from a loaded generator (``runs.load_generator``), drawn with seeds 0..n-1."""
    if n < 2:
        raise MetricsError(f"-n must be at least 2, got {n}")
    model = loaded.model
    chunks = generated_images(
        loaded.net, model.latent_dim, model.output, n, model.num_classes, class_draw=loaded.class_draw
    )
    features = _extract(extractor, chunks, n, "features (generated)", progress)
    return GeneratedFeatures(features=features, loaded=loaded)


def _cache_file(data: DataConfig, fingerprint: str, channels: int, identity: str, n: int) -> Path:
    from ..dataset import cache_root

    key = json.dumps(
        {"data": fingerprint, "channels": channels, "extractor": identity, "n": n, "format": STATS_FORMAT},
        sort_keys=True,
    )
    return cache_root(data) / "fid-stats" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


@dataclass(frozen=True)
class FolderFeatures:
    """Features of the images of a folder, and the decoded images they came from."""

    features: np.ndarray  # (N, D) float32
    prepared: Any  # dataset.PreparedData: pixels (memory-mapped), file names, report, fingerprint
    cached: bool  # True when the features were read from the stats cache


def folder_features(
    path: str | os.PathLike,
    extractor: Extractor,
    image_size: int | str,
    data: DataConfig | None = None,
    limit: int | None = None,
    progress: bool = True,
    classes: str | None = None,
) -> FolderFeatures:
    """Features of a folder's images decoded at image_size (the first ``limit`` in file order, or all).

    The decoded pixels are cached by ``prepare_dataset``; the features too when the extractor has an
    ``identity``. A changed folder (its content) or other preprocessing gets a fresh entry.
    """
    from ..dataset import prepare_dataset

    data = data or DataConfig()
    prepared = prepare_dataset(path, image_size, data, progress=progress, classes=classes)
    images = prepared.images if limit is None else prepared.images[:limit]
    if len(images) < 2:
        raise MetricsError(f"{str(path)!r}: metrics need at least 2 usable images, found {len(images)}")
    identity = getattr(extractor, "identity", None)
    cache = (
        _cache_file(data, prepared.fingerprint, prepared.report["channels"], str(identity), len(images))
        if identity is not None
        else None
    )
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as stored:
                return FolderFeatures(features=stored["features"], prepared=prepared, cached=True)
        except (OSError, ValueError, KeyError):
            cache.unlink(missing_ok=True)  # a damaged entry: compute it again
    chunks = (images[i : i + _CHUNK] for i in range(0, len(images), _CHUNK))
    features = _extract(extractor, chunks, len(images), f"features ({Path(path).name or path})", progress)
    if cache is not None:
        atomic_write(cache, lambda f: np.savez(f, features=features), durable=False)
    return FolderFeatures(features=features, prepared=prepared, cached=False)


def native_size(folder: str | os.PathLike) -> int:
    """The shorter side of the folder's first readable image, at most 299 (64 when none can be read)."""
    from PIL import Image

    from ..imagefiles import scan_folder

    for rel in scan_folder(folder).images if Path(folder).is_dir() else []:
        try:
            with Image.open(Path(folder) / rel) as img:
                return max(8, min(INCEPTION_SIZE, *img.size))
        except (OSError, ValueError, SyntaxError):
            continue
    return 64


def compare(
    a: str | os.PathLike,
    b: str | os.PathLike,
    extractor: Extractor,
    n: int = 10_000,
    image_size: int | None = None,
    device: str = "cpu",
    ema: bool = True,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    progress: bool = True,
    per_class: bool = False,
    precise_bn: bool = False,
) -> dict[str, Any]:
    """FID, KID, precision and recall between two sources, each a run folder, a checkpoint or a folder of images.

    A run gives n images (seeds 0..n-1; a class-conditional run draws seed s in class s mod K). Image folders
    are decoded at ``image_size`` when given, else at the image size of a run being compared (with its
    crop/pad settings, as clean-fid recommends), else each folder at its own native size: the result does not
    depend on the order of A and B. Precision and recall treat a run as the generated side (A when both or
    neither side is a run). ``per_class``: a class-conditional run against a folder whose top-level
    subfolders are its classes; adds the FID of each class (intra-FID) and their mean. Returns the
    ``scores`` keys plus a description of each side, the folders' sizes and the extractor's identity.
    ``precise_bn``: a run's batch-norm statistics re-estimated on loading (``runs.load_generator``).
    """
    sources = {"a": a, "b": b}
    runs = {side: _load(source, device, ema, precise_bn) for side, source in sources.items() if is_run(source)}
    if per_class:
        _check_per_class(list(runs.values()))
    features: dict[str, np.ndarray] = {}
    described: dict[str, str] = {}
    run_side, loaded = None, None
    data, size = DataConfig(), image_size
    for side, source in sources.items():
        if side in runs:
            got = _loaded_features(runs[side], extractor, n, progress)
            features[side] = got.features
            if run_side is None:
                run_side, loaded = side, got.loaded
                size = size or got.loaded.model.image_size
                data = replace(got.loaded.data, cache_dir=None)  # as the run decoded, into the default cache
            described[side] = f"{len(got.features)} images generated by {source} ({got.loaded.describe()})"
    sizes: dict[str, int | str] = {}
    real_labels = None
    for side in sources:
        if side in features:
            continue
        sizes[side] = size or native_size(sources[side])
        got_folder = folder_features(
            sources[side], extractor, sizes[side], data, progress=progress, classes="folders" if per_class else None
        )
        features[side] = got_folder.features
        real_labels = (got_folder.prepared.labels, got_folder.prepared.class_names)
        described[side] = f"{len(got_folder.features)} images of {sources[side]} at {size_text(sizes[side])}"
    generated, real = ("b", "a") if run_side == "b" else ("a", "b")
    result = scores(features[generated], features[real], kid_subsets, kid_subset_size)
    result["n_a"], result["n_b"] = len(features["a"]), len(features["b"])
    if per_class and loaded is not None and real_labels is not None:
        model = loaded.model  # per_class: a run is one side (_check_per_class)
        drawn = sample_classes(
            range(len(features[generated])), model.num_classes, model.latent_dim, None, loaded.class_draw
        )
        result["per_class"] = _per_class(features[generated], drawn, features[real], loaded.class_names, *real_labels)
        result["intra_fid"] = float(np.mean([row["fid"] for row in result["per_class"].values()]))
    same = features["a"].shape == features["b"].shape and np.array_equal(features["a"], features["b"])
    return {
        **result,
        "kid_subsets": kid_subsets,
        "kid_subset_size": min(kid_subset_size, result["n_a"], result["n_b"]),
        "a": described["a"],
        "b": described["b"],
        "image_size": sizes.get("a") or sizes.get("b"),
        "image_sizes": sizes,
        "same_images": bool(same),
        "features": features["a"].shape[1],
        "extractor": str(getattr(extractor, "identity", type(extractor).__name__)),
    }


def _check_per_class(runs: list[Any]) -> None:
    """Refuse --per-class before any image is drawn unless one side is a run trained on class subfolders."""
    loaded = runs[0] if len(runs) == 1 else None
    if loaded is None or not loaded.class_names:
        raise MetricsError("--per-class compares a class-conditional run with a folder of class subfolders")
    if loaded.class_draw:
        raise MetricsError(
            "--per-class: this model's classes are clusters it made of its training pictures (--classes clusters:K), "
            "which no folder's subfolders name; it compares a model trained on class subfolders"
        )


def _per_class(
    fake: np.ndarray,
    fake_labels: Any,
    real: np.ndarray,
    names: tuple[str, ...],
    real_labels: Any,
    real_names: tuple[str, ...],
) -> dict[str, dict[str, float]]:
    """FID of each class: generated images by the class they were drawn in; real images by their folder."""
    from .scores import feature_stats, frechet_distance

    missing = [name for name in names if name not in real_names]
    if missing:
        raise MetricsError(
            f"--per-class: no subfolder for class(es) {', '.join(missing)} in the real folder "
            f"(it has {', '.join(real_names) or 'none'})"
        )
    out = {}
    for index, name in enumerate(names):
        mine = fake[fake_labels == index]
        theirs = real[real_labels == real_names.index(name)]
        if min(len(mine), len(theirs)) < 2:
            raise MetricsError(
                f"--per-class: class {name!r} has {len(mine)} generated and {len(theirs)} real "
                "images; FID needs at least 2 of each (raise -n)"
            )
        fid = frechet_distance(*feature_stats(mine), *feature_stats(theirs))
        out[name] = {"fid": fid, "n_generated": len(mine), "n_real": len(theirs)}
    return out
