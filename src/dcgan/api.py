"""The Python API, for notebooks and scripts.

    import dcgan
    result = dcgan.train("photos/", "runs/ramen", dcgan.build_config({"steps": 2000}))
    gen = dcgan.load("runs/ramen")
    images = gen.images(seeds=range(16))        # uint8 (16, H, W, C)
    gen.grid(seeds=range(16)).save("grid.png")   # a PIL image
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import TrainConfig, build_config
from .devices import resolve_device
from .sampling import generate, label_scale, load_generator, make_grid, save_image, to_pil, z_from_seeds
from .trainer import TrainResult
from .trainer import train as _train


def train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, config: TrainConfig | None = None,
          resume: bool = False, **overrides: Any) -> TrainResult:
    """Train on a folder of images. ``config`` defaults to the paper preset; keyword overrides use the
    config's dotted names, e.g. ``train(d, r, steps=500, **{"model.image_size": 32})``."""
    if config is None:
        config = build_config(overrides)
    elif overrides:
        from .config import with_overrides

        config = with_overrides(config, overrides)
        config.validate()
    return _train(data_dir, run_dir, config, resume=resume)


class TrainedGenerator:
    """A generator loaded from a run folder or checkpoint, with z and image helpers."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", ema: bool = True, which: str = "latest") -> None:
        self.device = resolve_device(device)
        self.net, self.config, self.info = load_generator(path, self.device, ema=ema, which=which)
        self.output = self.config.model.output
        self.latent_dim = self.config.model.latent_dim

    def z(self, seeds: Iterable[int], truncation: float = 1.0) -> torch.Tensor:
        """(N, latent_dim) z for seeds, scaled toward the mean (zero) by ``truncation``."""
        return z_from_seeds(list(seeds), self.latent_dim) * truncation

    def images(self, seeds: Iterable[int] | None = None, z: torch.Tensor | np.ndarray | None = None,
               n: int | None = None, truncation: float = 1.0) -> np.ndarray:
        """uint8 (N, H, W, C) images from seeds, from z vectors, or from seeds 0..n-1."""
        if z is None:
            seeds = range(n or 16) if seeds is None else seeds
            z = self.z(seeds, truncation)
        z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1, self.latent_dim)
        return generate(self.net, z, self.output)

    def pil(self, **kwargs: Any) -> list[Image.Image]:
        """The same as ``images`` but as PIL images."""
        return [to_pil(p) for p in self.images(**kwargs)]

    def grid(self, seeds: Iterable[int] | None = None, columns: int | None = None, labels: bool = False,
             **kwargs: Any) -> Image.Image:
        """One grid image; ``labels=True`` captions each tile with its seed."""
        seeds = list(range(16) if seeds is None else seeds)
        pixels = self.images(seeds=seeds, **kwargs)
        return make_grid(pixels, columns, labels=[str(s) for s in seeds] if labels else None,
                         scale=label_scale(pixels.shape[1]) if labels else 1)

    def interpolate(self, seeds: Iterable[int], frames: int = 30, spherical: bool = True, loop: bool = False,
                    truncation: float = 1.0) -> np.ndarray:
        """uint8 (F, H, W, C) frames walking from seed to seed, ``frames`` per segment (slerp unless told)."""
        from .latent import interpolation_path

        return self.images(z=interpolation_path(self.z(seeds, truncation), frames, spherical, loop))

    def arithmetic(self, expression: str, samples: int = 8, noise: float = 0.25,
                   seed: int = 0) -> tuple[torch.Tensor, Image.Image]:
        """'[12,40,77] - [5,9,31] + [21,33,60]' on the terms' mean z -> (result z (D,), a figure showing the
        terms, their means, the result and ``samples`` results with noise of std ``noise`` added, seeded)."""
        from .latent import arithmetic_figure, evaluate_expression, parse_expression

        terms = parse_expression(expression)
        z = evaluate_expression(terms, self.z)
        jitter = torch.from_numpy(np.random.RandomState(seed).standard_normal((samples, self.latent_dim)))
        results = self.images(z=torch.cat([z[None], z[None] + noise * jitter.float()]))
        means = self.images(z=torch.stack([self.z(seeds).mean(0) for _, seeds in terms]))
        figure = arithmetic_figure(terms, [self.images(seeds=seeds) for _, seeds in terms], means, results,
                                   scale=label_scale(results.shape[1]))
        return z, figure


def load(path: str | os.PathLike, device: str = "cpu", ema: bool = True, which: str = "latest") -> TrainedGenerator:
    """Load a trained generator from a run folder (its latest checkpoint) or a checkpoint file."""
    return TrainedGenerator(path, device=device, ema=ema, which=which)


def generate_files(path: str | os.PathLike, out_dir: str | os.PathLike | None, seeds: list[int],
                   grid: str | os.PathLike | None = None, truncation: float = 1.0, device: str = "cpu",
                   ema: bool = True, z: torch.Tensor | None = None) -> list[Path]:
    """Write one PNG per seed (seed-NNNN.png) into out_dir, and optionally a grid labelled by seed.
    Given ``z`` (N, latent_dim), e.g. from ``latent.load_z``, render its rows instead (z-NNNN.png, labels 0..N-1)."""
    gen = load(path, device=device, ema=ema)
    if z is not None:
        if z.shape[-1] != gen.latent_dim:
            raise ValueError(f"z vectors have {z.shape[-1]} dimensions; this generator takes {gen.latent_dim}")
        z = z.reshape(-1, gen.latent_dim) * truncation
        seeds = list(range(len(z)))

    def images(chunk: list[int]) -> np.ndarray:
        return gen.images(seeds=chunk, truncation=truncation) if z is None else gen.images(z=z[chunk])

    if grid is not None:
        pixels = images(seeds)  # the grid needs them all; the same pass serves the files
        batches: Iterable[tuple[list[int], np.ndarray]] = [(seeds, pixels)]
    else:
        batches = ((seeds[i:i + 256], images(seeds[i:i + 256])) for i in range(0, len(seeds), 256))
    written: list[Path] = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for chunk, chunk_pixels in batches:
            for s, p in zip(chunk, chunk_pixels):
                target = out / f"{'seed' if z is None else 'z'}-{s:04d}.png"
                to_pil(p).save(target)
                written.append(target)
    if grid is not None:
        save_image(make_grid(pixels, labels=[str(s) for s in seeds], scale=label_scale(pixels.shape[1])), grid)
        written.append(Path(grid))
    return written
