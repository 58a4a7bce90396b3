"""Latent vectors from seeds, images from a trained generator, and image grids."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import checkpoint as ckpt
from .config import ModelConfig, TrainConfig, from_dict
from .models import Generator


def z_from_seeds(seeds: list[int] | range, latent_dim: int) -> torch.Tensor:
    """(N, latent_dim) float32 z, one row per seed, identical on every machine and device.

    numpy's legacy RandomState is used because numpy guarantees its stream never changes.
    """
    rows = [np.random.RandomState(int(s) % 2**32).standard_normal(latent_dim) for s in seeds]
    return torch.from_numpy(np.stack(rows).astype(np.float32)) if rows else torch.zeros(0, latent_dim)


def to_uint8(images: torch.Tensor, output: str) -> np.ndarray:
    """Generator output (N, C, H, W) in its range -> uint8 (N, H, W, C)."""
    x = images.detach().float().cpu()
    x = (x + 1.0) * 127.5 if output == "tanh" else x * 255.0
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def to_pil(pixels: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 -> a PIL image (L for one channel, RGB for three)."""
    return Image.fromarray(pixels[..., 0], "L") if pixels.shape[-1] == 1 else Image.fromarray(pixels, "RGB")


def label_scale(size: int) -> int:
    """How much to enlarge tiles of ``size`` pixels so that a caption under each is legible (about 40 px)."""
    return max(1, -(-40 // size))


def make_grid(pixels: np.ndarray, columns: int | None = None, padding: int = 2,
              labels: list[str] | None = None, scale: int = 1) -> Image.Image:
    """(N, H, W, C) uint8 -> one image of the N tiles, row by row, optionally captioned."""
    n, h, w, c = pixels.shape
    columns = columns or max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / columns)))
    label_h = 12 if labels else 0
    tile_w, tile_h = w * scale, h * scale
    grid = Image.new("RGB", (columns * (tile_w + padding) + padding,
                             rows * (tile_h + padding + label_h) + padding), (32, 32, 32))
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        r, col = divmod(i, columns)
        x = padding + col * (tile_w + padding)
        y = padding + r * (tile_h + padding + label_h)
        tile = to_pil(pixels[i]).convert("RGB")
        if scale != 1:
            tile = tile.resize((tile_w, tile_h), Image.Resampling.NEAREST)
        grid.paste(tile, (x, y + label_h))
        if labels:
            draw.text((x + 1, y), labels[i], fill=(230, 230, 230))
    return grid


def save_image(image: Image.Image, path: str | os.PathLike) -> None:
    """Save a PIL image, creating the folder; the format follows the extension."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@torch.no_grad()
def generate(generator: Generator, z: torch.Tensor, output: str, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, H, W, C) images for z (N, latent_dim), in eval mode so each image depends on its z alone."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    try:
        chunks = [to_uint8(generator(z[i:i + batch_size].to(device)), output) for i in range(0, len(z), batch_size)]
    finally:
        generator.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros((0,), np.uint8)


def resolve_checkpoint(path: str | os.PathLike, which: str = "latest") -> Path:
    """A run folder (its latest or best checkpoint) or a checkpoint file -> the checkpoint's path."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ckpt.CheckpointError(f"{str(path)!r} is neither a run folder nor a checkpoint file")
    folder = path / "checkpoints"
    if which == "best" and (folder / "best.safetensors").exists():
        return folder / "best.safetensors"
    latest = ckpt.latest_checkpoint(folder)
    if latest is None:
        raise ckpt.CheckpointError(f"no checkpoint in {str(folder)!r}: has this run trained yet?")
    return latest


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True,
                   which: str = "latest") -> tuple[Generator, TrainConfig, dict[str, Any]]:
    """Load a trained generator (the EMA copy when there is one) from a run folder or checkpoint."""
    state = ckpt.load(resolve_checkpoint(path, which))
    config = from_dict(TrainConfig, state["config"])
    model_config: ModelConfig = config.model
    generator = Generator(model_config, model_config.channels)
    weights = state["ema"] if ema and state.get("ema") is not None else state["generator"]
    generator.load_state_dict(weights)
    generator.to(device).eval()
    info = {"step": state["step"], "epoch": state["epoch"], "used_ema": ema and state.get("ema") is not None}
    return generator, config, info


def parse_seeds(text: str) -> list[int]:
    """'0-63', '3,17,42' or '0-3,10' -> a list of seeds (ranges include both ends)."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part or " " in part:
            raise ValueError(f"seeds {text!r}: empty item or a space inside one (use e.g. 0-63 or 3,17,42)")
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"seeds {text!r}: {part!r} is not a seed or a range like 0-63") from None
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds {text!r}: seeds must be non-negative")
    return seeds
