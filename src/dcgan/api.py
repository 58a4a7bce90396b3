"""The Python API, for notebooks and scripts; the CLI calls the same functions.

    import dcgan
    result = dcgan.train("photos/", "runs/ramen", steps=2000)
    gen = dcgan.load("runs/ramen")
    images = gen.images(seeds=range(16))        # uint8 (16, H, W, C)
    gen.grid(seeds=range(16)).save("grid.png")   # a PIL image

Every argument is checked by the settings classes of ``config`` and ``options``, the same ones the CLI
is generated from, so a mistake gets the same message here as on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import TrainConfig, build_config
from .devices import resolve_device
from .files import check_output_dir
from .images import label_scale, make_grid, save_image, to_pil
from .options import (
    MAX_GRID,
    ArithmeticOptions,
    ArithmeticSpec,
    GenerateOptions,
    GeneratorSource,
    InterpolateOptions,
    WalkSpec,
)
from .plan import resume_request
from .runs import LoadedGenerator, RunFolder, load_generator
from .sampling import generate, z_from_seeds
from .schema import ConfigError, with_overrides
from .seeds import MAX_SEEDS, check_seed_list
from .trainer import TrainResult
from .trainer import dry_run as _dry_run
from .trainer import train as _train


def training_request(
    run_dir: str | os.PathLike, config: TrainConfig | None, resume: bool, overrides: dict[str, Any]
) -> TrainConfig:
    """What a run is asked to do: a resumed run's own settings with ``overrides`` on top, else ``config`` (or
    the default preset) with ``overrides`` on top. Checked either way."""
    folder = RunFolder(Path(run_dir))
    if config is None and resume and folder.config.exists():
        return resume_request(folder.saved_plan(), overrides)
    if config is None:
        return build_config(overrides)
    return with_overrides(config, overrides) if overrides else config


def train(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    resume: bool = False,
    allow_data_change: bool = False,
    say: Callable[[str], None] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train on a folder of images. Settings are keyword overrides with the config's dotted names, e.g.
    ``train(d, r, steps=500, **{"model.image_size": 32})``, on top of ``config`` (default: the default preset;
    with ``resume``, the run's own settings)."""
    request = training_request(run_dir, config, resume, overrides)
    return _train(data_dir, run_dir, request, resume=resume, allow_data_change=allow_data_change, say=say)


def plan(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    resume: bool = False,
    **overrides: Any,
) -> str:
    """What ``train`` would do with these arguments (``dcgan train --dry-run``), as text; trains nothing."""
    return _dry_run(data_dir, run_dir, training_request(run_dir, config, resume, overrides), resume=resume)


class TrainedGenerator:
    """A generator loaded from a run folder or checkpoint, with z and image helpers."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", ema: bool = True, which: str = "auto") -> None:
        source = GeneratorSource(run=str(path), device=device, ema=ema, checkpoint=which)  # type: ignore[arg-type]
        self.loaded: LoadedGenerator = load_generator(
            source.run, resolve_device(source.device), ema=source.ema, which=source.checkpoint
        )
        self.net = self.loaded.net
        self.model = self.loaded.model
        self.output = self.model.output
        self.latent_dim = self.model.latent_dim

    @property
    def info(self) -> dict[str, Any]:
        """step, used_ema and the checkpoint file the weights came from."""
        return {"step": self.loaded.step, "used_ema": self.loaded.used_ema, "checkpoint": str(self.loaded.path)}

    def z(self, seeds: Iterable[int], truncation: float = 1.0) -> torch.Tensor:
        """(N, latent_dim) z for seeds, scaled toward the mean (zero) by ``truncation``."""
        return z_from_seeds(_seeds(seeds), self.latent_dim) * truncation

    def images(
        self,
        seeds: Iterable[int] | None = None,
        z: torch.Tensor | np.ndarray | None = None,
        n: int | None = None,
        truncation: float = 1.0,
    ) -> np.ndarray:
        """uint8 (N, H, W, C) images from seeds, from z vectors, or from seeds 0..n-1."""
        if z is None:
            seeds = range(n or 16) if seeds is None else seeds
            z = self.z(seeds, truncation)
        z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        if z.shape[-1] != self.latent_dim or z.ndim not in (1, 2):
            raise ConfigError(
                f"z vectors of shape {tuple(z.shape)}; this generator takes {self.latent_dim} numbers each"
            )
        return generate(self.net, z.reshape(-1, self.latent_dim), self.output)

    def pil(self, **kwargs: Any) -> list[Image.Image]:
        """The same as ``images`` but as PIL images."""
        return [to_pil(p) for p in self.images(**kwargs)]

    def grid(
        self, seeds: Iterable[int] | None = None, columns: int | None = None, labels: bool = False, **kwargs: Any
    ) -> Image.Image:
        """One grid image; ``labels=True`` captions each tile with its seed."""
        seeds = _seeds(range(16) if seeds is None else seeds, MAX_GRID)
        pixels = self.images(seeds=seeds, **kwargs)
        return make_grid(
            pixels,
            columns,
            labels=[str(s) for s in seeds] if labels else None,
            scale=label_scale(pixels.shape[1]) if labels else 1,
        )

    def interpolate(
        self,
        seeds: Iterable[int],
        frames: int = 30,
        spherical: bool = True,
        loop: bool = False,
        truncation: float = 1.0,
    ) -> np.ndarray:
        """uint8 (F, H, W, C) frames walking from seed to seed, ``frames`` per segment (slerp unless told)."""
        walk = WalkSpec(
            seeds=",".join(str(s) for s in _seeds(seeds)),
            frames=frames,
            lerp=not spherical,
            loop=loop,
            truncation=truncation,
        )
        return self.walk(walk)

    def walk(self, walk: WalkSpec) -> np.ndarray:
        """The frames of a checked walk."""
        from .latent import interpolation_path

        path = interpolation_path(self.z(walk.seed_list(), walk.truncation), walk.frames, not walk.lerp, walk.loop)
        return self.images(z=path)

    def arithmetic(
        self, expression: str, samples: int = 8, noise: float = 0.25, seed: int = 0
    ) -> tuple[torch.Tensor, Image.Image]:
        """'[12,40,77] - [5,9,31] + [21,33,60]' on the terms' mean z -> (result z (D,), a figure showing the
        terms, their means, the result and ``samples`` results with noise of std ``noise`` added, seeded)."""
        return self.evaluate(ArithmeticSpec(expression=expression, samples=samples, noise=noise, seed=seed))

    def evaluate(self, spec: ArithmeticSpec, shown: int = 8) -> tuple[torch.Tensor, Image.Image]:
        """The result z of a checked expression and its figure; only the first ``shown`` seeds of a term are
        drawn, the means use them all."""
        from .figures import arithmetic_figure
        from .latent import evaluate_expression

        terms = spec.terms()
        z = evaluate_expression(terms, self.z)
        jitter = torch.from_numpy(np.random.RandomState(spec.seed).standard_normal((spec.samples, self.latent_dim)))
        results = self.images(z=torch.cat([z[None], z[None] + spec.noise * jitter.float()]))
        means = self.images(z=torch.stack([self.z(seeds).mean(0) for _, seeds in terms]))
        figure = arithmetic_figure(
            terms,
            [self.images(seeds=seeds[:shown]) for _, seeds in terms],
            means,
            results,
            scale=label_scale(results.shape[1]),
            max_shown=shown,
        )
        return z, figure


def _seeds(seeds: Iterable[int], limit: int = MAX_SEEDS) -> list[int]:
    try:
        return check_seed_list(seeds, limit)
    except ValueError as e:
        raise ConfigError(f"seeds: {e}") from None


def load(path: str | os.PathLike, device: str = "cpu", ema: bool = True, which: str = "auto") -> TrainedGenerator:
    """Load a trained generator from a run folder (best.safetensors when --eval-every kept one, else the newest
    checkpoint; ``which="latest"`` for the newest) or a checkpoint file."""
    return TrainedGenerator(path, device=device, ema=ema, which=which)


def _load(source: GeneratorSource) -> TrainedGenerator:
    return TrainedGenerator(source.run, device=source.device, ema=source.ema, which=source.checkpoint)


@dataclass(frozen=True)
class Written:
    """What a command wrote, and from which checkpoint."""

    files: list[Path]
    grid: Path | None
    source: str  # LoadedGenerator.describe()


def generate_files(options: GenerateOptions) -> Written:
    """Write one PNG per seed (seed-NNNN.png) into out_dir, and/or a grid labelled by seed. With ``z`` (a .npy of
    z vectors) render its rows instead (z-NNNN.png, labels 0..N-1)."""
    from .files import check_output_file
    from .latent import load_z

    if options.out_dir is not None:
        check_output_dir(options.out_dir, "--out-dir")
    if options.grid is not None:
        check_output_file(options.grid, "--grid")
    z = None
    if options.z is not None:
        try:
            z = load_z(options.z)
        except ValueError as e:
            raise ConfigError(f"--z: {e}") from None
    gen = _load(options.source)
    if z is not None:
        if z.shape[-1] != gen.latent_dim:
            raise ConfigError(f"--z: the vectors have {z.shape[-1]} dimensions; this generator takes {gen.latent_dim}")
        z = z.reshape(-1, gen.latent_dim) * options.truncation
        if options.grid is not None and len(z) > MAX_GRID:
            raise ConfigError(f"--grid: {len(z):,} tiles; at most {MAX_GRID} in one grid")
    seeds = options.seed_list() if z is None else list(range(len(z)))

    def images(chunk: list[int]) -> np.ndarray:
        return gen.images(seeds=chunk, truncation=options.truncation) if z is None else gen.images(z=z[chunk])

    written: list[Path] = []
    pixels = images(seeds) if options.grid is not None else None  # the grid needs them all; its pass serves files
    if options.out_dir is not None:
        out = Path(options.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(seeds), 256):
            chunk = seeds[start : start + 256]
            chunk_pixels = pixels[start : start + 256] if pixels is not None else images(chunk)
            for s, p in zip(chunk, chunk_pixels):
                target = out / f"{'seed' if z is None else 'z'}-{s:04d}.png"
                save_image(to_pil(p), target, "--out-dir")
                written.append(target)
    grid = None
    if options.grid is not None and pixels is not None:
        save_image(
            make_grid(pixels, labels=[str(s) for s in seeds], scale=label_scale(pixels.shape[1])),
            options.grid,
            "--grid",
        )
        grid = Path(options.grid)
    return Written(files=written, grid=grid, source=gen.loaded.describe())


def write_walk(options: InterpolateOptions) -> tuple[int, int, int, str]:
    """Render and write a walk; returns (frames, frame width, frame height, the checkpoint used)."""
    from .figures import check_walk_output, save_walk

    check_walk_output(options.out)
    gen = _load(options.source)
    frames = gen.walk(options.walk)
    width, height = save_walk(
        frames,
        options.out,
        options.walk.seed_list(),
        options.walk.frames,
        loop=options.walk.loop,
        fps=options.fps,
        scale=options.scale,
    )
    return len(frames), width, height, gen.loaded.describe()


def write_arithmetic(options: ArithmeticOptions) -> tuple[torch.Tensor, str]:
    """Draw and write the arithmetic figure (and the result z with --save-z); returns (z, the checkpoint used)."""
    from .files import check_output_file
    from .latent import save_z

    check_output_file(options.out, "--out")
    if options.save_z:
        check_output_file(options.save_z, "--save-z")
    gen = _load(options.source)
    z, figure = gen.evaluate(options.spec)
    save_image(figure, options.out, "--out")
    if options.save_z:
        save_z(options.save_z, z[None])
    return z, gen.loaded.describe()
