"""Finding image files in a messy folder and decoding one file into a square uint8 array.

Knows nothing of models or caches. Every failure of one file (unreadable, a dangling or looping link,
not an image, truncated, a decompression bomb) becomes a reason string, never an exception that stops
the run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .config import parse_colour, size_of
from .runs import looks_like_run

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# What decoding one image may allocate. Pillow's own guard counts the pixels a header claims (89 M warns,
# 179 M fails), which turns away a 102-megapixel phone photo that, decoded at a reduced scale (JPEG draft
# mode), needs a few MB. This limit applies to what is actually decoded: a 16k x 16k RGBA PNG (1 GiB) passes,
# a header claiming 100k x 100k does not.
MAX_DECODE_BYTES = 1 << 30
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # others: 4 (RGBX, I, F)


@dataclass(frozen=True)
class ScanResult:
    """Image files found (sorted, relative to the root) and files passed over, with reasons."""

    images: list[str]
    ignored: list[tuple[str, str]]


def scan_folder(root: str | os.PathLike, exclude: tuple[str | os.PathLike, ...] = ()) -> ScanResult:
    """Recursively list image files under root: case-insensitive extensions, hidden files ignored,
    symbolic links followed once (a link back to a parent cannot loop), dangling or looping links and
    dcgan run folders (a run trained with --out inside the data, or any folder in ``exclude``) passed over
    with their reason."""
    root = Path(root)
    images: list[str] = []
    ignored: list[tuple[str, str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    excluded = {_identity(p) for p in exclude} - {None}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        kept = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            full = os.path.join(dirpath, d)
            rel = os.path.relpath(full, root)
            if _identity(full) in excluded or looks_like_run(full):
                ignored.append((rel + os.sep, "a dcgan run folder (its samples are not training data)"))
            else:
                kept.append(d)
        dirnames[:] = kept
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if name.startswith("."):
                continue
            problem = _link_problem(os.path.join(dirpath, name))
            if problem:
                ignored.append((rel, problem))
            elif Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                images.append(rel)
            else:
                ignored.append((rel, "not an image extension"))
    images.sort()
    return ScanResult(images=images, ignored=sorted(ignored))


def _identity(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _link_problem(path: str) -> str | None:
    """Why a directory entry cannot be read as a file (a dangling or looping symbolic link), or None."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return "dangling symbolic link (its target does not exist)"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"unreadable: {e.strerror or e}"
    return None


@dataclass(frozen=True)
class DecodeSettings:
    """Everything that changes the pixels a file decodes to (part of the cache key)."""

    size: int | str  # 64, or "64x48" (width x height)
    fit: str = "crop"
    background: str = "white"
    min_size: int = 8
    alpha: bool = False  # keep transparency as a fourth channel instead of compositing on the background

    @property
    def shape(self) -> tuple[int, int]:
        """(width, height)."""
        return size_of(self.size)


@dataclass
class Decoded:
    """One file's outcome: pixels (height, width, 3 or 4) uint8 or a reason it was skipped."""

    pixels: np.ndarray | None
    grayscale: bool = False
    upscaled: bool = False
    digest: str = ""
    reason: str = ""
    transparent: bool = False  # had pixels that are not fully opaque


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer or float images -> 8-bit, scaled rather than clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # Mode "I" also holds 8-bit data from some formats; only rescale when values exceed 8 bits.
        scale = 257.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 1.0
        return Image.fromarray(np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), "L")
    return img


def _flatten(img: Image.Image, background: tuple[int, int, int], alpha: bool = False) -> tuple[Image.Image, bool, bool]:
    """Any mode -> RGB, compositing transparency on the background (or, with ``alpha``, RGBA keeping it);
    also says if it was grayscale and if it had transparent pixels."""
    img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    elif img.mode in ("1", "L") and "transparency" in img.info:
        img = img.convert("LA")
    grayscale = img.mode in ("1", "L", "LA")
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        transparent = bool(np.asarray(rgba)[..., 3].min() < 255)
        if alpha:
            return rgba, grayscale, transparent
        base = Image.new("RGBA", rgba.size, background + (255,))
        img = Image.alpha_composite(base, rgba).convert("RGB")
        # A gray image on a coloured background is no longer gray.
        return img, grayscale and background[0] == background[1] == background[2], transparent
    img = img.convert("RGB")  # CMYK, YCbCr, L, 1 -> RGB
    return (img.convert("RGBA") if alpha else img), grayscale, False


def _shape(img: Image.Image, settings: DecodeSettings, background: tuple[int, int, int]) -> Image.Image:
    size = settings.shape
    if settings.fit == "pad":
        # Padding is transparent where transparency is kept, else the background colour.
        fill = (0, 0, 0, 0) if img.mode == "RGBA" else background
        return ImageOps.pad(img, size, Image.Resampling.LANCZOS, color=fill)
    # Resize to cover the target, then take the centre (ImageOps.fit crops before resizing).
    return ImageOps.fit(img, size, Image.Resampling.LANCZOS, centering=(0.5, 0.5))


@contextlib.contextmanager
def _decoded_size_limit() -> Iterator[None]:
    """Turn off Pillow's header-size guard while one file decodes; ``decode_file`` checks what decoding
    allocates instead (MAX_DECODE_BYTES), after JPEG draft mode has reduced the size."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def decode_file(path: str, settings: DecodeSettings) -> Decoded:
    """Decode one file to (height, width, 3 or 4) uint8, or return the reason it cannot be used."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return Decoded(None, reason=f"unreadable: {e.strerror or e}")
    return decode_bytes(data, settings)


def decode_bytes(data: bytes, settings: DecodeSettings) -> Decoded:
    """Decode one image file's bytes (from a folder or an archive); see ``decode_file``."""
    background = parse_colour(settings.background)
    if not data:
        return Decoded(None, reason="empty file")
    digest = hashlib.sha1(data).hexdigest()
    try:
        with _decoded_size_limit():
            img: Image.Image = Image.open(io.BytesIO(data))
            claimed = img.size
            if img.format == "JPEG" and isinstance(img, ImageFile.ImageFile):
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale when the photo is much larger than needed.
                img.draft("RGB", settings.shape)
            width, height = img.size
            needed = width * height * _BYTES_PER_PIXEL.get(img.mode, 4)
            if needed > MAX_DECODE_BYTES:
                return Decoded(
                    None,
                    digest=digest,
                    reason=f"decompression bomb ({claimed[0]}x{claimed[1]} pixels "
                    f"would take {needed / 2**30:.1f} GiB to decode)",
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            img, grayscale, transparent = _flatten(img, background, settings.alpha)
    except UnidentifiedImageError:
        return Decoded(None, digest=digest, reason="not an image (unrecognised format)")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        text = str(e)
        reason = "truncated or corrupt" if "truncated" in text or "broken" in text else f"cannot decode: {text}"
        return Decoded(None, digest=digest, reason=reason)
    except MemoryError:
        return Decoded(None, digest=digest, reason="decompression bomb (ran out of memory decoding it)")
    if min(img.size) < settings.min_size:
        return Decoded(None, digest=digest, reason=f"too small ({img.size[0]}x{img.size[1]})")
    width, height = settings.shape
    upscaled = img.size[0] < width or img.size[1] < height
    pixels = np.asarray(_shape(img, settings, background), dtype=np.uint8)
    # Palette and RGB files are often gray in practice; an exactly gray picture counts as gray.
    grayscale = grayscale or bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())
    return Decoded(pixels, grayscale=grayscale, upscaled=upscaled, digest=digest, transparent=transparent)
