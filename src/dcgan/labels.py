"""Classes of the pictures of a folder: from its top-level subfolders, from a labels file, or found in the
pictures themselves (clusters), for class-conditional training (``--classes``).

``assign_classes`` maps each decoded file to a class index, lists what it could not map (pictures outside
every class folder, labels-file rows whose files are missing or unusable) and refuses a class list that
cannot train: fewer than two classes, or a class whose pictures were all unusable. ``cluster_labels``
groups the decoded pictures by k-means on their pixels' principal components, for a folder that is not
sorted into kinds: self-conditioning (after Liu et al. 2020, "Diverse Image Generation via
Self-Conditioned GANs", who cluster D's features; here the pixels, so the classes exist before training).
On Fashion-MNIST 20 such clusters took FID from 19.88 to 13.65 (BENCHMARKS.md, issue 26). No torch.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from .errors import UserError

FOLDERS = "folders"
MIN_PER_CLUSTER = 10  # pictures per cluster, on average, below which k-means groups noise
CLUSTER_COMPONENTS = 50  # principal components the pictures are clustered on
CLUSTER_FIT_SAMPLE = 10_000  # pictures the principal axes are computed from
CLUSTER_MAX_VALUES = 1024  # pixel values per picture clustered: larger pictures are subsampled to this
CLUSTER_ITERATIONS = 30


class LabelError(UserError):
    """The classes cannot be read or cannot train; the message says which and why."""


@dataclass(frozen=True)
class Classes:
    """Each used file's class (-1: none), the class names, and what could not be mapped."""

    labels: np.ndarray  # (N,) int64, index into names, -1 for a file without a class
    names: tuple[str, ...]
    counts: dict[str, int]  # usable images per class
    unlabelled: list[str]  # used files that belong to no class (left out of training)
    missing: list[str]  # labels-file rows whose file is missing or was skipped

    @property
    def fingerprint(self) -> str:
        """Names the mapping, so that a resumed run notices a changed class list or relabelled files."""
        h = hashlib.sha256("\0".join(self.names).encode())
        h.update(self.labels.astype(np.int64).tobytes())
        return h.hexdigest()[:24]

    def report(self) -> dict[str, object]:
        return {"classes": dict(self.counts), "unlabelled": self.unlabelled, "labels_missing": self.missing}


def _key(path: str) -> str:
    """A relative path as the scan writes it: forward slashes, no './'."""
    return "/".join(part for part in PurePosixPath(path.replace("\\", "/")).parts if part != ".")


def read_labels_file(path: str | os.PathLike) -> dict[str, str]:
    """A CSV of path,label rows (a header row 'path,label' is allowed) -> {relative path: label}."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise LabelError(f"--classes {str(path)!r}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise LabelError(f"--classes {str(path)!r}: not a UTF-8 text file") from None
    mapping: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise LabelError(f"--classes {str(path)!r}, line {number}: expected 'path,label', got {','.join(row)!r}")
        mapping[_key(row[0].strip())] = row[1].strip()
    if not mapping:
        raise LabelError(f"--classes {str(path)!r}: no path,label rows")
    return mapping


def assign_classes(source: str, files: list[str], skipped: list[str]) -> Classes:
    """Classes for the used ``files`` (relative to the data folder) by ``source``: 'folders' or a labels file.

    ``skipped`` are the image files the decode could not use: a class whose every picture is among them
    is named in the error.
    """
    if source == FOLDERS:

        def folder(rel: str) -> str | None:
            parts = PurePosixPath(_key(rel)).parts
            return parts[0] if len(parts) > 1 else None

        of = {rel: folder(rel) for rel in files}
        declared = {c for c in (folder(rel) for rel in [*files, *skipped]) if c is not None}
        missing: list[str] = []
        where = "class folders"
    else:
        mapping = read_labels_file(source)
        of = {rel: mapping.get(_key(rel)) for rel in files}
        declared = set(mapping.values())
        used = {_key(rel) for rel in files}
        missing = sorted(p for p in mapping if p not in used)
        where = f"labels in {source!r}"
    counts = Counter(c for c in of.values() if c is not None)
    empty = sorted(declared - set(counts))
    if empty:
        raise LabelError(
            f"class(es) with no usable picture: {', '.join(empty)} (see the data report for why each file was skipped)"
        )
    names = tuple(sorted(counts))
    if len(names) < 2:
        raise LabelError(
            f"--classes needs at least two classes; found {len(names)} among the {where}"
            + (f" ({names[0]})" if names else "")
        )
    index = {name: i for i, name in enumerate(names)}
    labels = np.array([index[c] if c is not None else -1 for c in (of[rel] for rel in files)], dtype=np.int64)
    unlabelled = [rel for rel in files if of[rel] is None]
    return Classes(
        labels=labels, names=names, counts={n: counts[n] for n in names}, unlabelled=unlabelled, missing=missing
    )


def cluster_labels(images: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Each picture's cluster (0..k-1) among the pictures (N, H, W, C) uint8: k-means (k-means++
    start, ``seed``) on the first CLUSTER_COMPONENTS principal components of the pixel values (every f-th
    pixel of each row and column, f the smallest that leaves at most CLUSTER_MAX_VALUES values: 28x28 gray
    keeps all 784, 64x64 RGB 16x16x3), the axes computed from at most CLUSTER_FIT_SAMPLE evenly spaced
    pictures, the pictures projected a chunk at a time (memory stays small for a large memory-mapped
    folder)."""
    n = len(images)
    if n < k * MIN_PER_CLUSTER:
        raise LabelError(
            f"--classes clusters:{k} needs at least {k * MIN_PER_CLUSTER} usable pictures ({MIN_PER_CLUSTER} a "
            f"cluster on average); this folder has {n}: ask for at most clusters:{max(2, n // MIN_PER_CLUSTER)}"
            + (" (or leave --classes out)" if n < 2 * MIN_PER_CLUSTER else "")
        )
    _, height, width, channels = images.shape
    step = 1
    while -(-height // step) * -(-width // step) * channels > CLUSTER_MAX_VALUES:
        step += 1

    def values(part: np.ndarray) -> np.ndarray:
        return part[:, ::step, ::step].reshape(len(part), -1).astype(np.float32) / 255.0

    fit = values(images[:: max(1, n // CLUSTER_FIT_SAMPLE)])
    mean = fit.mean(0)
    _, _, axes = np.linalg.svd(fit - mean, full_matrices=False)
    axes = axes[:CLUSTER_COMPONENTS].T
    chunk = 4096
    points = np.concatenate([(values(images[i : i + chunk]) - mean) @ axes for i in range(0, n, chunk)]).astype(
        np.float64
    )
    return _kmeans(points, k, np.random.default_rng(seed)).astype(np.int64)


def as_clusters(labels: np.ndarray, k: int) -> Classes:
    """Cluster labels (``cluster_labels``) as the classes cluster00, cluster01, ... (as many digits as k needs)."""
    names = tuple(f"cluster{i:0{len(str(k - 1))}d}" for i in range(k))
    counts = np.bincount(labels, minlength=k)
    return Classes(
        labels=labels, names=names, counts={n: int(c) for n, c in zip(names, counts)}, unlabelled=[], missing=[]
    )


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means with the k-means++ start (Arthur & Vassilvitskii 2007): each point's cluster. A cluster
    left empty restarts at the point farthest from its centre, so every one of the k keeps members."""
    squared = (points**2).sum(1)

    def distances(centres: np.ndarray) -> np.ndarray:
        return np.maximum(squared[:, None] - 2 * points @ centres.T + (centres**2).sum(1)[None, :], 0)

    centres = [points[rng.integers(len(points))]]
    nearest = distances(np.stack(centres))[:, 0]
    for _ in range(1, k):
        total = nearest.sum()  # 0 when every picture is the same: any start will do
        centres.append(points[rng.choice(len(points), p=nearest / total if total > 0 else None)])
        nearest = np.minimum(nearest, distances(centres[-1][None])[:, 0])
    centre = np.stack(centres)
    labels = np.full(len(points), -1)
    for _ in range(CLUSTER_ITERATIONS):
        d = distances(centre)
        new = d.argmin(1)
        own = d[np.arange(len(points)), new]
        for empty in np.setdiff1d(np.arange(k), new):
            far = int(own.argmax())
            new[far], own[far] = empty, -1.0  # -1: not moved twice
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            centre[c] = points[labels == c].mean(0)
    return labels


def class_shares(labels: np.ndarray, k: int) -> np.ndarray:
    """Each of the k classes' share of the labelled images, float64 summing to 1."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return counts / counts.sum()


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling probability per image that draws every class equally often."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()


def resolve_class(text: str, names: tuple[str, ...]) -> int:
    """A class given by name or index -> its index; LabelError listing the known classes otherwise."""
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    raise LabelError(
        f"unknown class {text!r}; this model knows {', '.join(names)} (or their indices 0-{len(names) - 1})"
    )
