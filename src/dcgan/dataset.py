"""Decode a folder once into a uint8 cache (N, H, W, C) that later runs memory-map.

The first pass decodes in parallel and accounts for every file in a report; the cache is keyed by the
file list, sizes, modification times and every preprocessing setting, so a changed folder rebuilds it.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import DataConfig
from .imagefiles import DecodeSettings, decode_file, parse_colour, scan_folder

CACHE_FORMAT = 1
_CHUNK = 1024  # images per copy when reshaping the cache: bounded memory for folders larger than RAM


class DataError(Exception):
    """The data cannot be used for training; the message says why (shown without a traceback)."""


@dataclass(frozen=True)
class PreparedData:
    """A decoded dataset: pixels memory-mapped from the cache, and what was done with every file."""

    images: np.ndarray  # (N, S, S, C) uint8, read-only memory map
    files: list[str]  # the source file of each image, relative to the data folder
    report: dict[str, Any]
    fingerprint: str  # identifies the file list and the preprocessing
    cache_dir: Path


def default_cache_root() -> Path:
    """$DCGAN_CACHE, else $XDG_CACHE_HOME/dcgan, else ~/.cache/dcgan."""
    if os.environ.get("DCGAN_CACHE"):
        return Path(os.environ["DCGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dcgan"


def folder_fingerprint(root: Path, files: list[str]) -> str:
    """A hash of each file's path, size and modification time: cheap, and changes when the folder does."""
    h = hashlib.sha256()
    for rel in files:
        st = os.stat(root / rel)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def _decode_job(args: tuple[str, DecodeSettings]):
    return decode_file(*args)


def _decode_all(root: Path, files: list[str], settings: DecodeSettings, workers: int, progress: bool):
    """Yield Decoded results in file order, decoding on several processes when there are many files."""
    jobs = [(str(root / rel), settings) for rel in files]
    workers = workers or os.cpu_count() or 1
    bar = _progress_bar(len(jobs), "decoding", progress)
    try:
        if workers == 1 or len(jobs) < 64:
            for job in jobs:
                yield _decode_job(job)
                bar.update()
        else:
            with cf.ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_decode_job, jobs, chunksize=32):
                    yield result
                    bar.update()
    finally:
        bar.close()


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr, leave=False)


def _write_final(tmp_rgb: np.ndarray, n: int, channels: int, out_path: Path) -> None:
    """Copy the first n RGB images into an .npy of the chosen channel count, a chunk at a time."""
    size = tmp_rgb.shape[1]
    final = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.uint8, shape=(n, size, size, channels))
    for start in range(0, n, _CHUNK):
        chunk = np.asarray(tmp_rgb[start:min(n, start + _CHUNK)])
        if channels == 1:
            # ITU-R 601 luma, the weights Pillow's convert("L") uses.
            luma = chunk[..., 0] * 0.299 + chunk[..., 1] * 0.587 + chunk[..., 2] * 0.114
            chunk = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
        final[start:start + len(chunk)] = chunk
    final.flush()
    del final


def prepare_dataset(root: str | os.PathLike, image_size: int, data: DataConfig, channels: int | None = None,
                    progress: bool = True) -> PreparedData:
    """Scan, decode (or reuse the cache) and return the dataset; raises DataError when nothing is usable."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder")
    try:
        parse_colour(data.background)
    except ValueError as e:
        raise DataError(f"--background: {e}") from None
    if data.fit not in ("crop", "pad"):
        raise DataError(f"--fit must be crop or pad, got {data.fit!r}")
    scan = scan_folder(root)
    if not scan.images:
        raise DataError(f"no image files in {str(root)!r} (looked for .jpg .jpeg .png .webp .bmp .gif .tif .tiff, "
                        f"in subfolders too; {len(scan.ignored)} other file(s) found)")
    settings = DecodeSettings(size=image_size, fit=data.fit, background=data.background, min_size=data.min_size)
    # The fingerprint names the data (files and preprocessing); the cache key adds how it is stored.
    fingerprint = hashlib.sha256(json.dumps({"files": folder_fingerprint(root, scan.images),
                                             "settings": asdict(settings)}, sort_keys=True).encode()).hexdigest()[:24]
    key = hashlib.sha256(f"{fingerprint}/{channels}/{CACHE_FORMAT}".encode()).hexdigest()[:24]
    cache_root = Path(data.cache_dir) if data.cache_dir else default_cache_root()
    cache_dir = cache_root / key
    if not (cache_dir / "report.json").exists():
        _build_cache(root, scan, settings, channels, cache_dir, data.workers, progress)
    with open(cache_dir / "report.json", encoding="utf-8") as f:
        report = json.load(f)
    with open(cache_dir / "files.json", encoding="utf-8") as f:
        files = json.load(f)
    images = np.load(cache_dir / "images.npy", mmap_mode="r")
    report = {**report, "root": str(root.resolve()), "cache": str(cache_dir)}
    return PreparedData(images=images, files=files, report=report, fingerprint=fingerprint, cache_dir=cache_dir)


def _build_cache(root: Path, scan, settings: DecodeSettings, channels: int | None, cache_dir: Path,
                 workers: int, progress: bool) -> None:
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_dir.parent))
    try:
        size = settings.size
        tmp = np.lib.format.open_memmap(work / "rgb.npy", mode="w+", dtype=np.uint8,
                                        shape=(len(scan.images), size, size, 3))
        used: list[str] = []
        skipped: list[dict[str, str]] = []
        duplicates: list[list[str]] = []
        upscaled: list[str] = []
        first_by_digest: dict[str, str] = {}
        all_gray = True
        for rel, result in zip(scan.images, _decode_all(root, scan.images, settings, workers, progress)):
            if result.pixels is None:
                skipped.append({"path": rel, "reason": result.reason})
                continue
            if result.digest in first_by_digest:
                first = first_by_digest[result.digest]
                duplicates.append([first, rel])
                skipped.append({"path": rel, "reason": f"duplicate (same bytes as {first})"})
                continue
            first_by_digest[result.digest] = rel
            tmp[len(used)] = result.pixels
            used.append(rel)
            all_gray = all_gray and result.grayscale
            if result.upscaled:
                upscaled.append(rel)
        tmp.flush()
        resolved_channels = channels or (1 if all_gray else 3)
        if used:
            _write_final(tmp, len(used), resolved_channels, work / "images.npy")
        del tmp
        (work / "rgb.npy").unlink()
        report = {
            "used": len(used),
            "image_files": len(scan.images),
            "skipped": skipped,
            "skipped_by_reason": dict(Counter(_reason_kind(s["reason"]) for s in skipped)),
            "duplicates": duplicates,
            "upscaled": upscaled,
            "other_files": [{"path": p, "reason": r} for p, r in scan.ignored],
            "channels": resolved_channels,
            "image_size": size,
            "settings": asdict(settings),
        }
        if not used:
            # Nothing to cache: report why without leaving a cache behind.
            kinds = ", ".join(f"{k}: {v}" for k, v in report["skipped_by_reason"].items())
            raise DataError(f"no usable image in {str(root)!r}: {len(scan.images)} image file(s), all skipped ({kinds})")
        for name, value in (("report.json", report), ("files.json", used)):
            with open(work / name, "w", encoding="utf-8") as f:
                json.dump(value, f, indent=1, ensure_ascii=False)
        try:
            os.replace(work, cache_dir)  # atomic: a half-built cache is never seen
        except OSError:
            if not (cache_dir / "report.json").exists():  # another process finished first: use theirs
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summary_line(report: dict[str, Any]) -> str:
    """One line for the console: what was used and skipped."""
    parts = [f"{report['used']} image(s) used of {report['image_files']}"]
    if report["skipped"]:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(report["skipped_by_reason"].items()))
        parts.append(f"{len(report['skipped'])} skipped ({kinds})")
    if report["upscaled"]:
        parts.append(f"{len(report['upscaled'])} upscaled (smaller than {report['image_size']} px)")
    parts.append(f"{report['channels']} channel(s), {report['image_size']}x{report['image_size']}")
    return "data: " + "; ".join(parts)


class EpochSampler:
    """Batches of indices: a fresh permutation each epoch, derived from (seed, epoch) alone, so a
    position (epoch, batch) is all that resume needs. The last incomplete batch of an epoch is dropped."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int = 0, batch: int = 0) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.batch = epoch, batch
        self.batches_per_epoch = max(1, n // batch_size)
        self._order = self._permutation(epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def next(self) -> np.ndarray:
        """Indices of the next batch (sorted, for memory-map locality); the epoch advances after its last batch."""
        indices = self.peek()
        self.batch += 1
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        return indices

    def peek(self) -> np.ndarray:
        """The batch ``next`` returns, without moving."""
        start = self.batch * self.batch_size
        return np.sort(self._order[start:start + self.batch_size])

    def epoch_batches(self) -> np.ndarray:
        """The current epoch's batches as a (batches_per_epoch, batch_size) table, each row as ``next`` gives it."""
        used = min(self.n, self.batches_per_epoch * self.batch_size)
        return np.sort(self._order[:used].reshape(self.batches_per_epoch, -1), axis=1)

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}
