"""Pixels: the convention between stored images and the model's range (both ways), grids, and image files.

Stored and shown images are uint8 (N, H, W, C). The model sees float (N, C, H, W) in [-1, 1] when G ends
in tanh, [0, 1] when it ends in sigmoid. ``to_model_range`` and ``to_uint8`` are the only two places that
convert, so every command and the training step agree on what a pixel value means.

torch is imported inside the two converters only: the CLI imports this module to check output names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from .files import OutputError, atomic_write, check_output_file
from .schema import ConfigError

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def to_model_range(images: torch.Tensor, output: str, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [-1, 1] (tanh) or [0, 1] (sigmoid)."""
    import torch

    x = images.permute(0, 3, 1, 2).float()
    x = x / 127.5 - 1.0 if output == "tanh" else x / 255.0
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def to_uint8(images: torch.Tensor, output: str) -> np.ndarray:
    """Generator output (N, C, H, W) in its range -> uint8 (N, H, W, C), rounded and clipped."""
    import torch

    x = images.detach().float().cpu()
    x = (x + 1.0) * 127.5 if output == "tanh" else x * 255.0
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> (..., 1) by ITU-R 601 luma, the weights Pillow's convert("L") uses."""
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """(..., H, W, C) uint8 as RGB: gray repeated, transparency seen on white (the default --background)."""
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1)
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:].astype(np.float32) / 255.0
        return np.rint(pixels[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return pixels


def to_pil(pixels: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 -> a PIL image (L for one channel, RGB for three, RGBA for four)."""
    channels = pixels.shape[-1]
    if channels == 1:
        return Image.fromarray(pixels[..., 0], "L")
    return Image.fromarray(np.ascontiguousarray(pixels), "RGBA" if channels == 4 else "RGB")


def on_checkerboard(image: Image.Image, square: int = 8) -> Image.Image:
    """An RGBA picture over a light checkerboard, as image editors show transparency; others unchanged."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    w, h = image.size
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // square) + (xx // square)) % 2 == 0, 235, 200).astype(np.uint8)
    base = Image.fromarray(np.stack([board] * 3 + [np.full_like(board, 255)], axis=-1), "RGBA")
    return Image.alpha_composite(base, image).convert("RGB")


def label_scale(size: int) -> int:
    """How much to enlarge tiles of ``size`` pixels so that a caption under each is legible (about 40 px)."""
    return max(1, -(-40 // size))


def default_scale(size: int, target: int) -> int:
    """The smallest whole enlargement that makes a size-px image at least target px."""
    return max(1, -(-target // size))


def enlarge(pixels: np.ndarray, scale: int) -> np.ndarray:
    """(N, H, W, C) uint8 enlarged scale times with nearest neighbour, keeping the pixels crisp."""
    return pixels if scale == 1 else pixels.repeat(scale, axis=1).repeat(scale, axis=2)


def make_grid(
    pixels: np.ndarray, columns: int | None = None, padding: int = 2, labels: list[str] | None = None, scale: int = 1
) -> Image.Image:
    """(N, H, W, C) uint8 -> one image of the N tiles, row by row, optionally captioned."""
    n, h, w, _ = pixels.shape
    columns = columns or max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / columns)))
    label_h = 12 if labels else 0
    tile_w, tile_h = w * scale, h * scale
    grid = Image.new(
        "RGB", (columns * (tile_w + padding) + padding, rows * (tile_h + padding + label_h) + padding), (32, 32, 32)
    )
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        r, col = divmod(i, columns)
        x = padding + col * (tile_w + padding)
        y = padding + r * (tile_h + padding + label_h)
        tile = to_pil(pixels[i])
        if scale != 1:
            tile = tile.resize((tile_w, tile_h), Image.Resampling.NEAREST)
        tile = on_checkerboard(tile, square=max(4, 4 * scale))
        grid.paste(tile, (x, y + label_h))
        if labels:
            draw.text((x + 1, y), labels[i], fill=(230, 230, 230))
    return grid


def check_image_suffix(path: str | os.PathLike, flag: str) -> None:
    """ConfigError unless the name ends in an image format Pillow writes (the format follows the suffix)."""
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"{flag} {str(path)!r}: name an image file ending in {', '.join(IMAGE_SUFFIXES)}")


def save_image(image: Image.Image, path: str | os.PathLike, flag: str = "output") -> None:
    """Save a PIL image atomically, creating the folder; the format follows the suffix."""
    check_image_suffix(path, flag)
    check_output_file(path, flag)
    image_format = Image.registered_extensions()[Path(path).suffix.lower()]
    try:
        atomic_write(path, lambda f: image.save(f, format=image_format), durable=False)
    except OSError as e:
        raise OutputError(f"{flag}: could not write {str(path)!r}: {e.strerror or e}") from None
