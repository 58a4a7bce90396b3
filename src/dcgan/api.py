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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import TrainConfig, build_config
from .devices import resolve_device
from .export import OnnxGenerator
from .files import check_output_dir
from .images import label_scale, make_grid, save_image, to_pil
from .options import (
    MAX_GRID,
    PROJECT_STARTS,
    PROJECT_STEPS,
    ArithmeticOptions,
    ArithmeticSpec,
    ExportOptions,
    GenerateOptions,
    GeneratorSource,
    InterpolateOptions,
    ProjectOptions,
    WalkSpec,
)
from .plan import resume_request
from .runs import LoadedGenerator, RunFolder, load_generator
from .sampling import generate, z_from_seeds
from .schema import ConfigError, with_overrides
from .seeds import MAX_SEEDS, Labelled, Term, check_seed_list, seed_classes
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


Classes = str | int | Sequence[str | int] | None


class TrainedGenerator:
    """A generator loaded from a run folder, a checkpoint or an exported .onnx file, with z and image helpers.

    A class-conditional generator (trained with ``--classes``) takes ``classes``: a class name or index for
    every image, or one per image. One trained on clusters (``--classes clusters:K``) draws each seed's
    cluster (``seeds.seed_classes``) when no class is given.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: str = "cpu",
        ema: bool = True,
        which: str = "auto",
        precise_bn: bool = False,
    ) -> None:
        source = GeneratorSource(
            run=str(path),
            device=device,  # type: ignore[arg-type]
            ema=ema,
            checkpoint=which,  # type: ignore[arg-type]
            precise_bn=precise_bn,
        )
        self.loaded: LoadedGenerator | None = None
        self.onnx: OnnxGenerator | None = None
        if Path(source.run).suffix.lower() == ".onnx":
            self.onnx = OnnxGenerator(source.run)
            self.latent_dim = self.onnx.latent_dim
            self.class_names = self.onnx.class_names
            self.class_draw = self.onnx.class_draw
            self.origin = self.onnx.describe()
            self.info = {
                "step": int(self.onnx.meta.get("step", 0)),
                "used_ema": self.onnx.meta.get("ema") == "true",
                "checkpoint": str(self.onnx.path),
            }
        else:
            self.loaded = load_generator(
                source.run,
                resolve_device(source.device),
                ema=source.ema,
                which=source.checkpoint,
                precise_bn=source.precise_bn,
            )
            self.net = self.loaded.net
            self.model = self.loaded.model
            self.latent_dim = self.model.latent_dim
            self.class_names = self.loaded.class_names
            self.class_draw = self.loaded.class_draw
            self.origin = self.loaded.describe()
            # step, used_ema and the checkpoint file the weights came from
            self.info = {
                "step": self.loaded.step,
                "used_ema": self.loaded.used_ema,
                "checkpoint": str(self.loaded.path),
            }

    # --- classes ---------------------------------------------------------------------------------------
    def class_index(self, name: str | int) -> int:
        """A class name or index -> its index; ConfigError naming the known classes otherwise."""
        index = _class_of(self.class_names, str(name))
        assert index is not None
        return index

    def class_tensor(self, classes: Classes, n: int, seeds: Sequence[int] | None = None) -> torch.Tensor | None:
        """(n,) class indices for a conditional generator (None for an unconditional one); for one trained on
        clusters and no ``classes``, each of the ``seeds``' drawn cluster."""
        if not self.class_names:
            if classes is not None:
                self.class_index(classes if isinstance(classes, (str, int)) else next(iter(classes)))
            return None
        if classes is None and self.class_draw and seeds is not None:
            return torch.from_numpy(seed_classes(seeds, self.class_draw, self.latent_dim))
        if classes is None:
            drawn = " (it draws a cluster for each seed; these pictures come from z vectors)" if self.class_draw else ""
            raise ConfigError(
                f"this generator is class-conditional: say which class ({', '.join(self.class_names)}){drawn}"
            )
        if isinstance(classes, (str, int)):
            return torch.full((n,), self.class_index(classes), dtype=torch.int64)
        picked = [self.class_index(c) for c in classes]
        if len(picked) != n:
            raise ConfigError(f"{len(picked)} classes for {n} images: give one class, or one per image")
        return torch.tensor(picked, dtype=torch.int64)

    def drawn_class(self, seed: int) -> str:
        """The cluster a seed draws (as a class index) for a generator trained on clusters."""
        return str(int(seed_classes([seed], self.class_draw, self.latent_dim)[0]))

    # --- z and images ----------------------------------------------------------------------------------
    def z(self, seeds: Iterable[int], truncation: float = 1.0) -> torch.Tensor:
        """(N, latent_dim) z for seeds, scaled toward the mean (zero) by ``truncation``."""
        return z_from_seeds(_seeds(seeds), self.latent_dim) * truncation

    def images(
        self,
        seeds: Iterable[int] | None = None,
        z: torch.Tensor | np.ndarray | None = None,
        n: int | None = None,
        truncation: float = 1.0,
        classes: Classes = None,
        class_weights: torch.Tensor | None = None,
    ) -> np.ndarray:
        """uint8 (N, H, W, C) images from seeds, from z vectors, or from seeds 0..n-1 (and, for a class-conditional
        generator, ``classes``, or soft ``class_weights`` (N, K) as latent arithmetic makes)."""
        if z is None:
            seeds = _seeds(range(n or 16) if seeds is None else seeds)
            z = self.z(seeds, truncation)
        else:
            seeds = None
        z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        if z.shape[-1] != self.latent_dim or z.ndim not in (1, 2):
            raise ConfigError(
                f"z vectors of shape {tuple(z.shape)}; this generator takes {self.latent_dim} numbers each"
            )
        z = z.reshape(-1, self.latent_dim)
        chosen = class_weights if class_weights is not None else self.class_tensor(classes, len(z), seeds)
        if self.onnx is not None:
            if class_weights is not None:
                raise ConfigError("an .onnx file takes whole classes, not the mixed ones of latent arithmetic")
            return self.onnx.render(z.numpy(), None if chosen is None else chosen.numpy())
        assert self.loaded is not None
        return generate(self.net, z, self.model.output, chosen)

    def pil(self, **kwargs: Any) -> list[Image.Image]:
        """The same as ``images`` but as PIL images."""
        return [to_pil(p) for p in self.images(**kwargs)]

    def grid(
        self,
        seeds: Iterable[int] | None = None,
        columns: int | None = None,
        labels: bool = False,
        classes: Classes = None,
        **kwargs: Any,
    ) -> Image.Image:
        """One grid image; ``labels=True`` captions each tile with its seed. A class-conditional generator draws
        one row per class (all of them unless ``classes`` names some), the same seeds in every row; one trained
        on clusters draws each seed's cluster unless ``classes`` names some."""
        seeds = _seeds(range(16) if seeds is None else seeds, MAX_GRID)
        if not self.class_names or (self.class_draw and classes is None):
            pixels = self.images(seeds=seeds, classes=classes, **kwargs)
            captions = [str(s) for s in seeds]
        else:
            rows = self.grid_classes(classes)
            if len(rows) * len(seeds) > MAX_GRID:
                raise ConfigError(f"{len(rows)} classes x {len(seeds)} seeds: at most {MAX_GRID} tiles in one grid")
            pixels = np.concatenate([self.images(seeds=seeds, classes=c, **kwargs) for c in rows])
            captions = [f"{self.class_names[c]} {s}" for c in rows for s in seeds]
            columns = len(seeds)
        return make_grid(
            pixels,
            columns,
            labels=captions if labels else None,
            scale=label_scale(pixels.shape[1]) if labels else 1,
        )

    def grid_classes(self, classes: Classes) -> list[int]:
        """The class of each row of a grid: those named, or every class."""
        if classes is None:
            return list(range(len(self.class_names)))
        return [self.class_index(c) for c in ([classes] if isinstance(classes, (str, int)) else classes)]

    # --- walks ------------------------------------------------------------------------------------------
    def interpolate(
        self,
        seeds: Iterable[int],
        frames: int = 30,
        spherical: bool = True,
        loop: bool = False,
        truncation: float = 1.0,
        classes: str | int | None = None,
    ) -> np.ndarray:
        """uint8 (F, H, W, C) frames walking from seed to seed, ``frames`` per segment (slerp unless told), in one
        class for a class-conditional generator."""
        walk = WalkSpec(
            seeds=",".join(str(s) for s in _seeds(seeds)),
            frames=frames,
            lerp=not spherical,
            loop=loop,
            truncation=truncation,
            label=None if classes is None else str(classes),
        )
        return self.walk(walk)

    def walk(self, walk: WalkSpec) -> np.ndarray:
        """The frames of a checked walk."""
        from .latent import interpolation_path

        z, _ = self.stops(walk)
        path = interpolation_path(z * walk.truncation, walk.frames, not walk.lerp, walk.loop)
        label: str | None = walk.label
        first = walk.seed_list()[0]
        if label is None and self.class_draw and isinstance(first, int):
            label = self.drawn_class(first)  # the whole walk in its first seed's cluster
        return self.images(z=path, classes=label)

    def stops(self, walk: WalkSpec) -> tuple[torch.Tensor, list[str]]:
        """The z a walk visits (K, latent_dim), every row of a z file a stop of its own, and their captions."""
        parts, labels = [], []
        for stop in walk.seed_list():
            z = self.stop_z(stop)
            parts.append(z)
            if isinstance(stop, str):
                name = Path(stop).stem
                labels += [name] if len(z) == 1 else [f"{name}:{i}" for i in range(len(z))]
            else:
                labels.append(f"seed {stop}")
        return torch.cat(parts), labels

    def z_file(self, path: str | os.PathLike) -> torch.Tensor:
        """(N, latent_dim) z read from a .npy file (``dcgan project``, ``arithmetic --save-z``), checked."""
        from .latent import load_z

        try:
            z = load_z(path)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if z.shape[-1] != self.latent_dim:
            raise ConfigError(
                f"{str(path)!r} holds z of {z.shape[-1]} dimensions; this generator takes {self.latent_dim}"
            )
        return z.reshape(-1, self.latent_dim)

    def stop_z(self, stop: int | str) -> torch.Tensor:
        """(N, latent_dim): a seed's z (N = 1), or every row of a z file."""
        return self.z_file(stop) if isinstance(stop, str) else self.z([stop])

    # --- arithmetic -------------------------------------------------------------------------------------
    def arithmetic(
        self, expression: str, samples: int = 8, noise: float = 0.25, seed: int = 0
    ) -> tuple[torch.Tensor, Image.Image]:
        """'[12,40,77] - [5,9,31] + [21,33,60]' on the terms' mean z -> (result z (D,), a figure showing the
        terms, their means, the result and ``samples`` results with noise of std ``noise`` added, seeded). A
        class-conditional generator takes a class on every term, 'ramen:[1,2] - udon:[3] + soba:[4]': the
        result is drawn with the same sum of the terms' classes (one trained on clusters gives a term without
        a class its first seed's cluster)."""
        return self.evaluate(ArithmeticSpec(expression=expression, samples=samples, noise=noise, seed=seed))

    def term_classes(self, terms: list[Term]) -> list[str | None]:
        """Each term's class as given ('ramen:[1,2]'), else None; for a generator trained on clusters a seed
        term without one takes its first seed's cluster (by index)."""
        labels = [t.label if isinstance(t, Labelled) else None for _, t in terms]
        if not self.class_draw:
            return labels
        return [
            self.drawn_class(t[0]) if label is None and isinstance(t, list) else label
            for (_, t), label in zip(terms, labels)
        ]

    def evaluate(self, spec: ArithmeticSpec, shown: int = 8) -> tuple[torch.Tensor, Image.Image]:
        """The result z of a checked expression and its figure; only the first ``shown`` seeds of a term are
        drawn, the means use them all."""
        from .figures import arithmetic_figure
        from .latent import evaluate_expression, term_z

        terms = spec.terms()
        labels = self.term_classes(terms)
        if self.class_names and None in labels:
            raise ConfigError(
                "this model is class-conditional: give every term its class, e.g. "
                f"{self.class_names[0]}:[1,2] (classes: {', '.join(self.class_names)})"
            )
        if not self.class_names and any(labels):
            self.class_index(next(label for label in labels if label))  # says the model has no classes
        z = evaluate_expression(terms, self.z, self.z_file)
        jitter = torch.from_numpy(np.random.RandomState(spec.seed).standard_normal((spec.samples, self.latent_dim)))
        result_z = torch.cat([z[None], z[None] + spec.noise * jitter.float()])
        weights = None
        if self.class_names:
            one_hot = torch.eye(len(self.class_names))
            mixed = sum(sign * one_hot[self.class_index(str(label))] for (sign, _), label in zip(terms, labels))
            weights = torch.as_tensor(mixed).repeat(len(result_z), 1)
        results = self.images(z=result_z, class_weights=weights)
        means, shown_images = [], []
        for (_, term), label in zip(terms, labels):
            source = term.source if isinstance(term, Labelled) else term
            mean = term_z(source, self.z, self.z_file).mean(0, keepdim=True)
            first = self.z_file(source)[:shown] if isinstance(source, str) else self.z(source[:shown])
            means.append(self.images(z=mean, classes=label))
            shown_images.append(self.images(z=first, classes=label))
        figure = arithmetic_figure(
            terms,
            shown_images,
            np.concatenate(means),
            results,
            scale=label_scale(results.shape[1]),
            max_shown=shown,
        )
        return z, figure

    # --- projection -------------------------------------------------------------------------------------
    def project(
        self,
        pictures: np.ndarray | list[str],
        steps: int = PROJECT_STEPS,
        starts: int = PROJECT_STARTS,
        seed: int = 0,
        features: str = "discriminator",
        classes: str | int | None = None,
    ) -> Any:
        """z for each picture (uint8 (N, S, S, C) at the model's size and channels, or image files, decoded as
        training does) -> a project.ProjectionResult (z, images, loss, psnr); a class-conditional generator
        projects into the given class(es), or with none given each picture into the class whose images come
        nearest it (the result's ``classes``)."""
        from .project import DiscriminatorFeatures, project

        if self.loaded is None:
            raise ConfigError("projection needs the run folder or checkpoint, not an .onnx file")
        # D comes from the checkpoint again; G is this one, its norms as loaded (not re-estimated twice).
        with_critic = load_generator(
            self.loaded.path, next(self.net.parameters()).device, ema=self.loaded.used_ema, discriminator=True
        )
        loaded = replace(with_critic, net=self.net, precise_bn=self.loaded.precise_bn)
        if isinstance(pictures, list):
            pictures, _ = decode_photos(pictures, loaded.model, loaded.data)
        expected = (self.model.height, self.model.width, self.model.channels)
        if pictures.dtype != np.uint8 or pictures.ndim != 4 or pictures.shape[1:] != expected:
            raise ConfigError(
                f"pictures: expected uint8 (N, {', '.join(map(str, expected))}), got {pictures.dtype} {pictures.shape}"
            )
        critic = DiscriminatorFeatures(loaded.discriminator) if features == "discriminator" else None  # type: ignore[arg-type]
        asked = None if classes is None else self.class_tensor(classes, len(pictures))
        label = _projection_classes(loaded, asked, pictures, critic)
        return project(
            self.net, pictures, self.model.output, critic, steps=steps, starts=starts, seed=seed, classes=label
        )


def _seeds(seeds: Iterable[int], limit: int = MAX_SEEDS) -> list[int]:
    try:
        return check_seed_list(seeds, limit)
    except ValueError as e:
        raise ConfigError(f"seeds: {e}") from None


def load(
    path: str | os.PathLike, device: str = "cpu", ema: bool = True, which: str = "auto", precise_bn: bool = False
) -> TrainedGenerator:
    """Load a trained generator from a run folder (best.safetensors when --eval-every kept one, else the newest
    checkpoint; ``which="latest"`` for the newest) or a checkpoint file; ``precise_bn`` re-estimates its
    batch-norm statistics for its own weights (as ``--precise-bn`` does)."""
    return TrainedGenerator(path, device=device, ema=ema, which=which, precise_bn=precise_bn)


def _load(source: GeneratorSource) -> TrainedGenerator:
    return TrainedGenerator(
        source.run, device=source.device, ema=source.ema, which=source.checkpoint, precise_bn=source.precise_bn
    )


@dataclass(frozen=True)
class Written:
    """What a command wrote, and from which checkpoint."""

    files: list[Path]
    grid: Path | None
    source: str  # LoadedGenerator.describe()


def generate_files(options: GenerateOptions) -> Written:
    """Write one PNG per seed (seed-NNNN.png) into out_dir, and/or a grid labelled by seed. With ``z`` (a .npy of
    z vectors) render its rows instead (z-NNNN.png, labels 0..N-1). A class-conditional generator draws each
    seed in each class asked for (all by default, except for one trained on clusters, where each seed draws
    its own): seed-NNNN-CLASS.png, one grid row per class."""
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
    seeds = options.seed_list() if z is None else list(range(len(z)))
    asked = options.class_list()
    by_class = gen.class_names and not (gen.class_draw and not asked)  # clusters: each seed draws its own
    rows: list[int | None] = list(gen.grid_classes(asked)) if by_class else [None]
    if not gen.class_names and asked:
        gen.class_index(asked[0])  # says the model has no classes
    if options.grid is not None and len(rows) * len(seeds) > MAX_GRID:
        raise ConfigError(f"--grid: {len(rows) * len(seeds):,} tiles; at most {MAX_GRID} in one grid")

    def images(chunk: list[int], row: int | None) -> np.ndarray:
        if z is None:
            return gen.images(seeds=chunk, truncation=options.truncation, classes=row)
        return gen.images(z=z[chunk], classes=row)

    written: list[Path] = []
    grid_rows = []
    for row in rows:
        suffix = "" if row is None else f"-{_file_safe(gen.class_names[row])}"
        pixels = images(seeds, row) if options.grid is not None else None  # the grid needs them all anyway
        if pixels is not None:
            grid_rows.append(pixels)
        if options.out_dir is None:
            continue
        out = Path(options.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(seeds), 256):
            chunk = seeds[start : start + 256]
            chunk_pixels = pixels[start : start + 256] if pixels is not None else images(chunk, row)
            for s, p in zip(chunk, chunk_pixels):
                target = out / f"{'seed' if z is None else 'z'}-{s:04d}{suffix}.png"
                save_image(to_pil(p), target, "--out-dir")
                written.append(target)
    grid = None
    if options.grid is not None:
        pixels = np.concatenate(grid_rows)
        captions = [(f"{gen.class_names[row]} " if row is not None else "") + str(s) for row in rows for s in seeds]
        columns = len(seeds) if by_class else None
        save_image(
            make_grid(pixels, columns, labels=captions, scale=label_scale(pixels.shape[1])), options.grid, "--grid"
        )
        grid = Path(options.grid)
    return Written(files=written, grid=grid, source=gen.origin)


def _file_safe(name: str) -> str:
    """A class name as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_walk(options: InterpolateOptions) -> tuple[int, int, int, str]:
    """Render and write a walk; returns (frames, frame width, frame height, the checkpoint used)."""
    from .figures import check_walk_output, save_walk

    check_walk_output(options.out)
    gen = _load(options.source)
    frames = gen.walk(options.walk)
    _, labels = gen.stops(options.walk)
    width, height = save_walk(
        frames,
        options.out,
        labels,
        options.walk.frames,
        loop=options.walk.loop,
        fps=options.fps,
        scale=options.scale,
    )
    return len(frames), width, height, gen.origin


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
    return z, gen.origin


def export_file(options: ExportOptions) -> tuple[Any, str]:
    """Write the run's generator as ONNX and check it with onnxruntime; returns (export.ExportResult, origin)."""
    from .export import export_generator
    from .files import check_output_file

    check_output_file(options.out, "--out")
    source = options.source
    loaded = load_generator(
        source.run, torch.device("cpu"), ema=source.ema, which=source.checkpoint, precise_bn=source.precise_bn
    )
    return export_generator(loaded, options.out, output=options.output, opset=options.opset), loaded.describe()


def decode_photos(paths: list[str], model: Any, data: Any) -> tuple[np.ndarray, list[str]]:
    """Pictures decoded and fitted as training decodes them, at the model's size and channels (uint8
    (N, S, S, C)); and a note for each picture whose channels were converted."""
    from .dataset import DataError
    from .imagefiles import DecodeSettings, decode_file
    from .images import to_gray

    settings = DecodeSettings(
        size=model.image_size, fit=data.fit, background=data.background, min_size=1, alpha=model.channels == 4
    )
    pictures, notes = [], []
    for path in paths:
        decoded = decode_file(str(path), settings)
        if decoded.pixels is None:
            raise DataError(f"cannot use {str(path)!r}: {decoded.reason}")
        pixels = decoded.pixels
        if model.channels == 1:
            if not decoded.grayscale:
                notes.append(f"note: {Path(path).name} is in colour; converted to gray for this 1-channel model")
            pixels = to_gray(pixels)
        elif decoded.grayscale:
            notes.append(f"note: {Path(path).name} is gray; used as three equal channels for this colour model")
        pictures.append(pixels)
    return np.stack(pictures), notes


def project_files(options: ProjectOptions) -> tuple[list[tuple[str, float, str | None]], str, list[str]]:
    """Project each picture; write NAME.npy, NAME.png and NAME-compare.png. Returns ((name, PSNR, the class
    of a class-conditional model) per picture, the checkpoint used, notes)."""
    from .latent import save_z
    from .progress import progress_bar
    from .project import DiscriminatorFeatures, project

    out = check_output_dir(options.out_dir, "--out-dir")
    for photo in options.photos:
        if not Path(photo).is_file():
            raise ConfigError(f"{photo!r}: no such picture")
    source = options.source
    loaded = load_generator(
        source.run,
        resolve_device(source.device),
        ema=source.ema,
        which=source.checkpoint,
        discriminator=True,
        precise_bn=source.precise_bn,
    )
    targets, notes = decode_photos(list(options.photos), loaded.model, loaded.data)
    label = _class_of(loaded.class_names, options.label) if options.label is not None else None
    features = DiscriminatorFeatures(loaded.discriminator) if options.features == "discriminator" else None  # type: ignore[arg-type]
    asked = None if label is None else torch.full((len(targets),), label, dtype=torch.int64)
    labels = _projection_classes(loaded, asked, targets, features)
    names = _unique_names(options.photos)
    results: list[tuple[str, float, str | None]] = []
    chunk = 16
    with progress_bar(options.steps * len(targets), "projecting", True, unit="step") as bar:
        for start in range(0, len(targets), chunk):
            part = targets[start : start + chunk]

            def advance(step: int, n: int = len(part)) -> None:
                bar.update(n)

            got = project(
                loaded.net,
                part,
                loaded.model.output,
                features,
                steps=options.steps,
                starts=options.starts,
                seed=options.seed,
                lr=options.lr,
                on_step=advance,
                classes=None if labels is None else labels[start : start + chunk],
            )
            for i, name in enumerate(names[start : start + chunk]):
                save_z(out / f"{name}.npy", got.z[i : i + 1])
                save_image(to_pil(got.images[i]), out / f"{name}.png", "--out-dir")
                pair = np.stack([part[i], got.images[i]])
                figure = make_grid(
                    pair, 2, labels=["picture", f"projection {got.psnr[i]:.1f} dB"], scale=label_scale(pair.shape[1])
                )
                save_image(figure, out / f"{name}-compare.png", "--out-dir")
                kind = None if got.classes is None else loaded.class_names[int(got.classes[i])]
                results.append((name, float(got.psnr[i]), kind))
    return results, loaded.describe(), notes


def _projection_classes(
    loaded: LoadedGenerator, asked: torch.Tensor | None, pictures: np.ndarray, features: Any
) -> torch.Tensor | None:
    """(N,) the class to project each picture into: the asked ones, else, for a class-conditional model, the
    class whose images come nearest the picture (project.likeliest_classes); None for an unconditional one."""
    from .project import likeliest_classes

    if asked is not None or not loaded.class_names:
        return asked
    return likeliest_classes(loaded.net, pictures, loaded.model.output, len(loaded.class_names), features)


def _class_of(names: tuple[str, ...], asked: str | None) -> int | None:
    """--class for a command on a run: its index; a conditional run needs one, an unconditional one refuses it."""
    from .labels import LabelError, resolve_class

    if not names:
        if asked is not None:
            raise ConfigError(f"--class {asked}: this model has no classes (it was trained without --classes)")
        return None
    if asked is None:
        raise ConfigError(f"this model is class-conditional: give --class ({', '.join(names)})")
    try:
        return resolve_class(asked, names)
    except LabelError as e:
        raise ConfigError(f"--class: {e}") from None


def _unique_names(paths: tuple[str, ...]) -> list[str]:
    """File stems, numbered where two pictures share one."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names
