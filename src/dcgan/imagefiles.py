"""Finding image files in a messy folder and decoding one file into a square uint8 array.

Knows nothing of models or caches. Every failure of one file becomes a reason string, never an
exception that stops the run.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# Pillow's own hard limit (2x MAX_IMAGE_PIXELS, about 179 megapixels): a header that claims more is a
# decompression bomb, not a photo.
MAX_PIXELS = 2 * 89_478_485


@dataclass(frozen=True)
class ScanResult:
    """Image files found (sorted, relative to the root) and files passed over, with reasons."""

    images: list[str]
    ignored: list[tuple[str, str]]


def scan_folder(root: str | os.PathLike) -> ScanResult:
    """Recursively list image files under root: case-insensitive extensions, hidden files ignored,
    symbolic links followed once (a link back to a parent cannot loop)."""
    root = Path(root)
    images: list[str] = []
    ignored: list[tuple[str, str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                images.append(rel)
            else:
                ignored.append((rel, "not an image extension"))
    images.sort()
    return ScanResult(images=images, ignored=sorted(ignored))


@dataclass(frozen=True)
class DecodeSettings:
    """Everything that changes the pixels a file decodes to (part of the cache key)."""

    size: int
    fit: str = "crop"
    background: str = "white"
    min_size: int = 8


@dataclass
class Decoded:
    """One file's outcome: pixels (size, size, 3) uint8 or a reason it was skipped."""

    pixels: np.ndarray | None
    grayscale: bool = False
    upscaled: bool = False
    digest: str = ""
    reason: str = ""


def parse_colour(text: str) -> tuple[int, int, int]:
    """'white', '#112233' or '12,34,56' -> an RGB triple; raises ValueError with a clear message."""
    text = text.strip()
    if "," in text:
        parts = [int(p) for p in text.split(",")]
        if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
            return parts[0], parts[1], parts[2]
        raise ValueError(f"colour {text!r}: expected three numbers 0-255")
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise ValueError(f"unknown colour {text!r} (use a name like 'white' or '#rrggbb')") from None
    return rgb[0], rgb[1], rgb[2]


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


def _flatten(img: Image.Image, background: tuple[int, int, int]) -> tuple[Image.Image, bool]:
    """Any mode -> RGB, compositing transparency on the background; also says if it was grayscale."""
    img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    elif img.mode in ("1", "L") and "transparency" in img.info:
        img = img.convert("LA")
    grayscale = img.mode in ("1", "L", "LA")
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        img = Image.alpha_composite(base, rgba).convert("RGB")
        # A gray image on a coloured background is no longer gray.
        grayscale = grayscale and background[0] == background[1] == background[2]
    else:
        img = img.convert("RGB")  # CMYK, YCbCr, L, 1 -> RGB
    return img, grayscale


def _shape(img: Image.Image, settings: DecodeSettings, background: tuple[int, int, int]) -> Image.Image:
    size = (settings.size, settings.size)
    if settings.fit == "pad":
        return ImageOps.pad(img, size, Image.Resampling.LANCZOS, color=background)
    # Resize the short side to the target, then take the centre (ImageOps.fit crops before resizing).
    return ImageOps.fit(img, size, Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def decode_file(path: str, settings: DecodeSettings) -> Decoded:
    """Decode one file to (size, size, 3) uint8, or return the reason it cannot be used."""
    background = parse_colour(settings.background)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return Decoded(None, reason=f"unreadable: {e.strerror or e}")
    if not data:
        return Decoded(None, reason="empty file")
    digest = hashlib.sha1(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > MAX_PIXELS:
                return Decoded(None, digest=digest, reason=f"decompression bomb ({width}x{height} pixels)")
            if img.format == "JPEG":
                # Let libjpeg decode at a reduced scale when the photo is much larger than needed.
                img.draft("RGB", (settings.size, settings.size))
            img.load()
            img = ImageOps.exif_transpose(img)
            img, grayscale = _flatten(img, background)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Decoded(None, digest=digest, reason="decompression bomb (header claims too many pixels)")
    except UnidentifiedImageError:
        return Decoded(None, digest=digest, reason="not an image (unrecognised format)")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        text = str(e)
        reason = "truncated or corrupt" if "truncated" in text or "broken" in text else f"cannot decode: {text}"
        return Decoded(None, digest=digest, reason=reason)
    short = min(img.size)
    if short < settings.min_size:
        return Decoded(None, digest=digest, reason=f"too small ({img.size[0]}x{img.size[1]})")
    upscaled = short < settings.size
    pixels = np.asarray(_shape(img, settings, background), dtype=np.uint8)
    # Palette and RGB files are often gray in practice; an exactly gray picture counts as gray.
    grayscale = grayscale or bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())
    return Decoded(pixels, grayscale=grayscale, upscaled=upscaled, digest=digest)
