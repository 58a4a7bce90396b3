"""Decode a folder once into a uint8 cache (N, H, W, C) that later runs memory-map.

The first pass decodes in parallel and accounts for every file in a report. Two identities matter:

- the cache key (where the decoded pixels are stored) covers the folder's resolved path and, for every
  file, its name, size, modification and change times and inode, with every preprocessing setting. A copy
  of a folder (``cp -p``, ``rsync -a``, an unpacked archive) keeps names, sizes and modification times but
  never change times or inodes, so it never reads another folder's pixels;
- the fingerprint (what a resumed run compares) is a hash of every file's bytes, computed by the decode
  that reads them anyway, with the preprocessing: the same pictures anywhere give the same fingerprint,
  other pictures another one.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .archives import ARCHIVE_SUFFIXES, Archive, is_archive
from .config import DataConfig, clusters_asked
from .errors import UserError
from .files import printable, read_json, write_json
from .imagefiles import Decoded, DecodeSettings, ScanResult, decode_bytes, decode_file, scan_folder
from .images import to_gray
from .labels import Classes, as_clusters, assign_classes, cluster_labels
from .progress import progress_bar

CACHE_FORMAT = 3
_CHUNK = 1024  # images per copy when reshaping the cache: bounded memory for folders larger than RAM
_BUILDING = ".building-"


class DataError(UserError):
    """The data cannot be used for training; the message says why (shown without a traceback)."""


@dataclass(frozen=True)
class PreparedData:
    """A decoded dataset: pixels memory-mapped from the cache, and what was done with every file."""

    images: np.ndarray  # (N, S, S, C) uint8, read-only memory map
    files: list[str]  # the source file of each image, relative to the data folder
    report: dict[str, Any]
    fingerprint: str  # the files' content and the preprocessing (and the classes, with --classes)
    cache_dir: Path
    labels: np.ndarray | None = None  # (N,) class of each image (-1: none) with --classes
    class_names: tuple[str, ...] = ()


def default_cache_root() -> Path:
    """$DCGAN_CACHE, else $XDG_CACHE_HOME/dcgan, else ~/.cache/dcgan."""
    if os.environ.get("DCGAN_CACHE"):
        return Path(os.environ["DCGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dcgan"


def cache_root(data: DataConfig) -> Path:
    """Where caches go for these settings (--cache-dir, else the default)."""
    return Path(data.cache_dir) if data.cache_dir else default_cache_root()


def _stamp(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError as e:  # gone since the scan: the decode will say so
        return f"error {e.errno}"
    return f"{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}"


def cache_key(root: Path, files: list[str], settings: DecodeSettings, channels: int | None) -> str:
    """Names the decoded pixels of this folder (or archive) as it is now (see the module notes)."""
    h = hashlib.sha256()
    h.update(
        f"{CACHE_FORMAT}\0{root.resolve()}\0{json.dumps(asdict(settings), sort_keys=True)}\0{channels}\n".encode(
            "utf-8", "surrogateescape"
        )
    )
    if root.is_file():  # an archive: its own stamp, then its members' names
        h.update(f"archive\0{_stamp(root)}\n".encode())
    for rel in files:
        stamp = "" if root.is_file() else _stamp(root / rel)
        h.update(f"{rel}\0{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:24]


def _decode_job(args: tuple[str, DecodeSettings]) -> Decoded:
    return decode_file(*args)


def _decode_member(args: tuple[bytes | str, DecodeSettings]) -> Decoded:
    data, settings = args
    return Decoded(None, reason=data) if isinstance(data, str) else decode_bytes(data, settings)


def _decode_all(
    root: Path, files: list[str], settings: DecodeSettings, workers: int, progress: bool
) -> Iterator[Decoded]:
    """Yield Decoded results in file order, decoding on several processes when there are many files. An
    archive's members are read here, in batches, and decoded from their bytes."""
    workers = workers or os.cpu_count() or 1
    parallel = workers > 1 and len(files) >= 64
    with progress_bar(len(files), "decoding", progress) as bar, contextlib.ExitStack() as stack:
        pool = stack.enter_context(cf.ProcessPoolExecutor(max_workers=workers)) if parallel else None
        if is_archive(root):
            members = stack.enter_context(Archive(root)).read(files)
            while batch := [(data, settings) for data, _ in zip(members, range(256))]:
                results = pool.map(_decode_member, batch, chunksize=16) if pool else map(_decode_member, batch)
                for result in results:
                    yield result
                    bar.update()
        else:
            jobs = [(str(root / rel), settings) for rel in files]
            for result in pool.map(_decode_job, jobs, chunksize=32) if pool else map(_decode_job, jobs):
                yield result
                bar.update()


def _write_final(tmp_rgb: np.ndarray, n: int, channels: int, out_path: Path) -> None:
    """Copy the first n decoded images into an .npy of the chosen channel count, a chunk at a time."""
    _, height, width, _ = tmp_rgb.shape
    final = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.uint8, shape=(n, height, width, channels))
    for start in range(0, n, _CHUNK):
        chunk = np.asarray(tmp_rgb[start : min(n, start + _CHUNK)])
        if channels == 1:
            chunk = to_gray(chunk)
        final[start : start + len(chunk)] = chunk
    final.flush()
    del final


def prepare_dataset(
    root: str | os.PathLike,
    image_size: int | str,
    data: DataConfig,
    channels: int | None = None,
    progress: bool = True,
    exclude: tuple[str | os.PathLike, ...] = (),
    classes: str | None = None,
) -> PreparedData:
    """Scan, decode (or reuse the cache) and return the dataset; raises DataError when nothing is usable.

    ``root`` is a folder, or a zip or tar archive (archives.ARCHIVE_SUFFIXES) read in place. Folders in
    ``exclude`` (the run folder being trained into) and dcgan run folders found inside are skipped and listed
    in the report.
    ``classes`` ('folders', a labels file or 'clusters:K') gives each image a class; ``channels`` 4 keeps
    transparency.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder {str(root)!r} does not exist")
    if is_archive(root):
        with Archive(root) as archive:
            scan = archive.scan()
    elif root.is_dir():
        scan = scan_folder(root, exclude)
    else:
        kinds = ", ".join(ARCHIVE_SUFFIXES)
        raise DataError(f"{str(root)!r} is neither a folder nor a zip or tar archive ({kinds})")
    if not scan.images:
        raise DataError(
            f"no image files in {str(root)!r} (looked for .jpg .jpeg .png .webp .bmp .gif .tif .tiff, "
            f"in subfolders too; {len(scan.ignored)} other file(s) found)"
        )
    settings = DecodeSettings(
        size=image_size, fit=data.fit, background=data.background, min_size=data.min_size, alpha=channels == 4
    )
    caches = cache_root(data)
    _remove_abandoned_builds(caches)
    cache_dir = caches / cache_key(root, scan.images, settings, channels)
    loaded = _load_cache(cache_dir)
    if loaded is None:
        _build_cache(root, scan, settings, channels, cache_dir, data.workers, progress)
        loaded = _load_cache(cache_dir)
        if loaded is None:
            raise DataError(
                f"the decode cache {str(cache_dir)!r} cannot be read back; delete that folder and "
                "run again (or give another --cache-dir)"
            )
    report, files, images = loaded
    report = {**report, "root": str(root.resolve()), "cache": str(cache_dir)}
    if classes is None:
        return PreparedData(
            images=images, files=files, report=report, fingerprint=report["fingerprint"], cache_dir=cache_dir
        )
    k = clusters_asked(classes)
    if k is None:
        found = assign_classes(classes, files, [s["path"] for s in report["skipped"]])
    else:
        found = _clusters(images, k, cache_dir)
    fingerprint = hashlib.sha256(f"{report['fingerprint']}/{found.fingerprint}".encode()).hexdigest()[:24]
    return PreparedData(
        images=images,
        files=files,
        report={**report, **found.report()},
        fingerprint=fingerprint,
        cache_dir=cache_dir,
        labels=found.labels,
        class_names=found.names,
    )


def _clusters(images: np.ndarray, k: int, cache_dir: Path) -> Classes:
    """``labels.cluster_labels`` of the decoded pictures, computed once and kept beside them in the cache, so a
    resumed run (or another rank) finds the very same clusters whatever its BLAS and thread count."""
    path = cache_dir / f"clusters-{k}.npy"
    try:
        labels = np.load(path)
    except (OSError, ValueError, EOFError):
        labels = None
    if labels is None or labels.shape != (len(images),) or labels.min() < 0 or labels.max() >= k:
        labels = cluster_labels(images, k)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with open(partial, "wb") as f:
                np.save(f, labels)
            os.replace(partial, path)
        except OSError:  # a read-only cache: the clusters are computed again next time
            partial.unlink(missing_ok=True)
    return as_clusters(labels.astype(np.int64), k)


def _load_cache(cache_dir: Path) -> tuple[dict[str, Any], list[str], np.ndarray] | None:
    """The cache's report, file list and memory-mapped pixels; None when it is missing. A damaged cache (cut
    short by a full disk, edited by hand) is moved out of the way, so the caller decodes again."""
    if not (cache_dir / "report.json").exists():
        return None
    try:
        report = read_json(cache_dir / "report.json")
        files = read_json(cache_dir / "files.json")
        images = np.load(cache_dir / "images.npy", mmap_mode="r")
        if (
            not isinstance(report, dict)
            or "fingerprint" not in report
            or not isinstance(files, list)
            or images.ndim != 4
            or len(images) != report.get("used")
            or len(files) != len(images)
        ):
            raise ValueError("its parts do not agree")
    except (OSError, ValueError) as e:
        print(
            f"the decode cache {printable(str(cache_dir))} is damaged ({e}); decoding the folder again", file=sys.stderr
        )
        shutil.rmtree(cache_dir, ignore_errors=True)
        if cache_dir.exists():
            raise DataError(
                f"the decode cache {str(cache_dir)!r} is damaged and cannot be removed: delete it by hand and run again"
            ) from None
        return None
    return report, files, images


def _remove_abandoned_builds(caches: Path) -> None:
    """Delete half-built caches left by a process that was killed while decoding (its pid is gone)."""
    if not caches.is_dir():
        return
    host = socket.gethostname()
    for work in caches.glob(f"{_BUILDING}*"):
        parts = work.name[len(_BUILDING) :].split("-")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(work, ignore_errors=True)
        except PermissionError:
            pass


def _build_cache(
    root: Path,
    scan: ScanResult,
    settings: DecodeSettings,
    channels: int | None,
    cache_dir: Path,
    workers: int,
    progress: bool,
) -> None:
    try:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{_BUILDING}{socket.gethostname()}-{os.getpid()}-", dir=cache_dir.parent))
    except OSError as e:
        raise DataError(
            f"cannot write the decode cache in {str(cache_dir.parent)!r}: {e.strerror or e} "
            "(set --cache-dir or DCGAN_CACHE to a writable folder)"
        ) from None
    try:
        _decode_into(work, root, scan, settings, channels, workers, progress)
        try:
            os.replace(work, cache_dir)  # atomic: a half-built cache is never seen
        except OSError:
            if not (cache_dir / "report.json").exists():  # another process finished first: use theirs
                raise
    except OSError as e:
        raise DataError(f"could not write the decode cache in {str(cache_dir.parent)!r}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _decode_into(
    work: Path,
    root: Path,
    scan: ScanResult,
    settings: DecodeSettings,
    channels: int | None,
    workers: int,
    progress: bool,
) -> None:
    width, height = settings.shape
    tmp = np.lib.format.open_memmap(
        work / "rgb.npy", mode="w+", dtype=np.uint8, shape=(len(scan.images), height, width, 4 if settings.alpha else 3)
    )
    used: list[str] = []
    skipped: list[dict[str, str]] = []
    duplicates: list[list[str]] = []
    upscaled: list[str] = []
    first_by_digest: dict[str, str] = {}
    content = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode())
    all_gray = True
    transparent = 0
    for rel, result in zip(scan.images, _decode_all(root, scan.images, settings, workers, progress)):
        content.update(f"{rel}\0{result.digest}\n".encode("utf-8", "surrogateescape"))
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
        transparent += result.transparent
        if result.upscaled:
            upscaled.append(rel)
    tmp.flush()
    resolved_channels = channels or (1 if all_gray else 3)
    if used:
        _write_final(tmp, len(used), resolved_channels, work / "images.npy")
    del tmp
    (work / "rgb.npy").unlink()
    by_reason = dict(Counter(_reason_kind(s["reason"]) for s in skipped))
    report: dict[str, Any] = {
        "used": len(used),
        "image_files": len(scan.images),
        "skipped": skipped,
        "skipped_by_reason": by_reason,
        "duplicates": duplicates,
        "upscaled": upscaled,
        "other_files": [{"path": p, "reason": r} for p, r in scan.ignored],
        "channels": resolved_channels,
        "image_size": settings.size,
        "width": width,
        "height": height,
        "transparent": transparent,
        "settings": asdict(settings),
        "fingerprint": content.hexdigest()[:24],
    }
    if not used:
        # Nothing to cache: report why without leaving a cache behind.
        kinds = ", ".join(f"{k}: {v}" for k, v in by_reason.items())
        raise DataError(f"no usable image in {str(root)!r}: {len(scan.images)} image file(s), all skipped ({kinds})")
    write_json(work / "report.json", report)
    write_json(work / "files.json", used)


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def summary_line(report: dict[str, Any]) -> str:
    """One line for the console: what was used and skipped."""
    parts = [f"{report['used']} image(s) used of {report['image_files']}"]
    if report["skipped"]:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(report["skipped_by_reason"].items()))
        parts.append(f"{len(report['skipped'])} skipped ({kinds})")
    runs = [o for o in report.get("other_files", []) if "run folder" in o["reason"]]
    if runs:
        parts.append(f"{len(runs)} run folder(s) inside passed over")
    links = [o for o in report.get("other_files", []) if "symbolic link" in o["reason"] or "unreadable" in o["reason"]]
    if links:
        parts.append(f"{len(links)} broken link(s) or unreadable file(s) passed over")
    size = f"{report['width']}x{report['height']}"
    if report["upscaled"]:
        parts.append(f"{len(report['upscaled'])} upscaled (smaller than {size} px)")
    if report.get("classes"):
        counts = ", ".join(f"{name} {n}" for name, n in list(report["classes"].items())[:8])
        more = ", ..." if len(report["classes"]) > 8 else ""
        parts.append(f"{len(report['classes'])} classes ({counts}{more})")
    parts.append(f"{report['channels']} channel(s), {size}")
    return "data: " + "; ".join(parts)


class EpochSampler:
    """Batches of indices: a fresh permutation each epoch, derived from (seed, epoch) alone, so a
    position (epoch, batch) is all that resume needs. The last incomplete batch of an epoch is dropped.

    With ``weights`` (a probability per image, e.g. ``labels.balanced_weights``) an epoch is n draws with
    replacement by those weights instead of a permutation."""

    def __init__(
        self, n: int, batch_size: int, seed: int, epoch: int = 0, batch: int = 0, weights: np.ndarray | None = None
    ) -> None:
        self.n, self.batch_size, self.seed, self.weights = n, batch_size, seed, weights
        self.epoch, self.batch = epoch, batch
        self.batches_per_epoch = max(1, n // batch_size)
        self._order = self._permutation(epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        if self.weights is not None:
            return rng.choice(self.n, size=self.n, replace=True, p=self.weights)
        return rng.permutation(self.n)

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
        return np.sort(self._order[start : start + self.batch_size])

    def epoch_batches(self) -> np.ndarray:
        """The current epoch's batches as a (batches_per_epoch, batch_size) table, each row as ``next`` gives it."""
        used = min(self.n, self.batches_per_epoch * self.batch_size)
        return np.sort(self._order[:used].reshape(self.batches_per_epoch, -1), axis=1)

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}
