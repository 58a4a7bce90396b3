"""The settings of every command other than train: small frozen dataclasses that check themselves.

The CLI is generated from them (as from ``config`` for train) and the Python API builds the same
objects, so a bad value gets the same message from either. Paths are checked for their form here
(an image suffix, a .npy file); whether they can be written is checked by ``outputs`` just before work
starts. No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .config import DataConfig, Device, check_size
from .images import check_image_suffix
from .schema import REQUIRED, ConfigError, check, setting
from .seeds import MAX_SEEDS, ExpressionError, Term, parse_expression, parse_seeds, parse_stops

Which = Literal["auto", "best", "latest"]
MAX_GRID = 1024  # tiles in one grid image
MAX_FRAMES = 5000  # frames in one walk
MAX_EXPRESSION_SEEDS = 10_000  # seeds one arithmetic expression may average over
WALK_SUFFIXES = (".gif", ".mp4", ".png")
THREADS_HELP = "CPU threads for PyTorch's operators (default: one per core; fewer on a busy machine)"
PRECISE_BN_HELP = (
    "re-estimate G's batch-norm statistics for its own weights on loading (seconds; on Fashion-MNIST it lowered "
    "--preset best's FID, not the default's; checkpoints of runs trained with --precise-bn already carry them)"
)


DATA_HELP = "folder of images (searched recursively), or a zip or tar archive of them"


@dataclass(frozen=True, kw_only=True)
class GeneratorSource:
    """Which trained generator a command uses, and where it runs."""

    run: str = setting(REQUIRED, "run folder or checkpoint file", positional=True, metavar="RUN_DIR")
    checkpoint: Which = setting(
        "auto", "which checkpoint of a run folder: best.safetensors when --eval-every kept one (auto), or the newest"
    )
    ema: bool = setting(True, "use the moving average of G (--no-ema: the raw generator)")
    device: Device = setting("cpu", "where to run the generator")
    threads: int | None = setting(None, THREADS_HELP, low=1, high=1024)
    precise_bn: bool = setting(False, PRECISE_BN_HELP)

    def __post_init__(self) -> None:
        check(self)
        if self.precise_bn and Path(self.run).suffix.lower() == ".onnx":
            raise ConfigError("--precise-bn: an exported .onnx model's statistics are fixed; export with --precise-bn")


@dataclass(frozen=True, kw_only=True)
class GenerateOptions:
    """``dcgan generate``: images from seeds or saved z."""

    source: GeneratorSource
    n: int | None = setting(
        None,
        "number of images (seeds 0..n-1) when --seeds and --z are not given (default 64)",
        short="-n",
        low=1,
        high=MAX_SEEDS,
    )
    seeds: str | None = setting(None, "seeds to draw, e.g. 0-63 or 3,17,42")
    z: str | None = setting(
        None, "render these saved z vectors (a .npy from arithmetic --save-z) instead of seeds", metavar="FILE.npy"
    )
    out_dir: str | None = setting(None, "folder for one PNG per seed (seed-NNNN.png)")
    grid: str | None = setting(None, f"also write one grid image, tiles labelled by seed (at most {MAX_GRID} tiles)")
    truncation: float = setting(1.0, "scale z toward the mean (1 = no truncation)", low=0, high=10)
    classes: str | None = setting(
        None,
        "a class-conditional model's classes to draw, by name or index, e.g. ramen "
        "or ramen,udon (default: all, one grid row each; for a model trained on clusters, each seed's own)",
        flag="--class",
        metavar="CLASS[,CLASS]",
    )

    def __post_init__(self) -> None:
        check(self)
        if sum(x is not None for x in (self.seeds, self.n, self.z)) > 1:
            raise ConfigError("give one of -n, --seeds or --z")
        if self.out_dir is None and self.grid is None:
            raise ConfigError("say where to write: --out-dir DIR and/or --grid FILE")
        if self.grid is not None:
            check_image_suffix(self.grid, "--grid")
            if self.z is None and len(self.seed_list()) > MAX_GRID:
                raise ConfigError(
                    f"--grid: {len(self.seed_list()):,} tiles; at most {MAX_GRID} in one grid "
                    "(use --out-dir alone for more)"
                )
        if self.z is not None and Path(self.z).suffix.lower() != ".npy":
            raise ConfigError(f"--z {self.z!r}: expected a .npy file")
        if self.seeds is not None:
            self.seed_list()

    def class_list(self) -> list[str] | None:
        """The classes asked for, as given (names or indices), or None for all of them."""
        return None if self.classes is None else [c.strip() for c in self.classes.split(",") if c.strip()]

    def seed_list(self) -> list[int]:
        """The seeds asked for (-n gives 0..n-1; the default 64)."""
        if self.seeds is None:
            return list(range(self.n or 64))
        try:
            return parse_seeds(self.seeds)
        except ValueError as e:
            raise ConfigError(f"--seeds: {e}") from None


@dataclass(frozen=True, kw_only=True)
class WalkSpec:
    """A walk through latent space: the seeds it visits and how it moves between them."""

    seeds: str = setting(
        REQUIRED, "seeds or z files (.npy) to visit in order, at least two, e.g. 3,17,42 or 3,proj/ramen.npy"
    )
    frames: int = setting(30, "frames per segment between consecutive seeds", low=1, high=MAX_FRAMES)
    lerp: bool = setting(False, "linear instead of spherical interpolation")
    loop: bool = setting(False, "walk on back to the first seed")
    truncation: float = setting(1.0, "scale z toward the mean (1 = no truncation)", low=0, high=10)
    label: str | None = setting(
        None, "a class-conditional model's class to walk in (a name or index)", flag="--class", metavar="CLASS"
    )

    def __post_init__(self) -> None:
        check(self)
        seeds = self.seed_list()
        if len(seeds) < 2:
            raise ConfigError("--seeds: give at least two seeds to walk between, e.g. 3,17,42")
        total = self.frames * (len(seeds) - (0 if self.loop else 1)) + (0 if self.loop else 1)
        if total > MAX_FRAMES:
            raise ConfigError(f"{total:,} frames in all; at most {MAX_FRAMES:,} (fewer --frames or seeds)")

    def seed_list(self) -> list[int | str]:
        """The stops: seeds, and paths of z files (each of whose rows is a stop)."""
        try:
            return parse_stops(self.seeds, limit=MAX_FRAMES)
        except ValueError as e:
            raise ConfigError(f"--seeds: {e}") from None


@dataclass(frozen=True, kw_only=True)
class InterpolateOptions:
    """``dcgan interpolate``: a walk written as an animation or a strip."""

    source: GeneratorSource
    walk: WalkSpec
    out: str = setting(REQUIRED, "walk.gif, walk.mp4 (needs imageio-ffmpeg) or walk.png (a strip)")
    fps: float = setting(20.0, "frames per second of a gif or mp4", low=0.1, high=100)
    scale: int | None = setting(
        None,
        "enlarge frames N times, nearest neighbour (default: to at least 128 px; 64 px in a strip)",
        low=1,
        high=64,
    )

    def __post_init__(self) -> None:
        check(self)
        if Path(self.out).suffix.lower() not in WALK_SUFFIXES:
            raise ConfigError(f"--out {self.out!r}: write the walk as .gif, .mp4 or .png (a strip of the frames)")


@dataclass(frozen=True, kw_only=True)
class ArithmeticSpec:
    """An arithmetic expression on mean z, and the noisy copies of its result to show."""

    expression: str = setting(
        REQUIRED,
        'e.g. "[12,40,77] - [5,9,31] + [21,33,60]" or "proj/my_ramen.npy - [4,5] + 7"; [..] is the mean z of '
        "those seeds (ranges like 3-5 allowed), a bare number one seed, a .npy file the mean of its z; put -- "
        "before an expression that starts with -",
        positional=True,
        metavar="EXPRESSION",
    )
    samples: int = setting(8, "copies of the result with noise added", low=0, high=64)
    noise: float = setting(0.25, "std of that noise", low=0, high=10)
    seed: int = setting(0, "seed of that noise", low=0, high=2**32 - 1)

    def __post_init__(self) -> None:
        check(self)
        self.terms()

    def terms(self) -> list[Term]:
        try:
            return parse_expression(self.expression, limit=MAX_EXPRESSION_SEEDS)
        except ExpressionError as e:
            raise ConfigError(f"bad expression: {e}") from None


@dataclass(frozen=True, kw_only=True)
class ArithmeticOptions:
    """``dcgan arithmetic``: sums and differences of mean z (Radford et al. 2015, fig. 7)."""

    source: GeneratorSource
    spec: ArithmeticSpec
    out: str = setting(REQUIRED, "the figure (PNG): each term, its mean, the result and noisy copies")
    save_z: str | None = setting(None, "also save the result z (render it again with generate --z)", metavar="FILE.npy")

    def __post_init__(self) -> None:
        check(self)
        check_image_suffix(self.out, "--out")
        if self.save_z is not None and Path(self.save_z).suffix.lower() != ".npy":
            raise ConfigError(f"--save-z {self.save_z!r}: the file must end in .npy")


@dataclass(frozen=True, kw_only=True)
class PrepareOptions:
    """``dcgan prepare``: decode and cache a folder ahead of training."""

    data_dir: str = setting(REQUIRED, DATA_HELP, positional=True, metavar="DATA_DIR")
    report: str | None = setting(None, "also write the data report (JSON) here")
    image_size: int | str = setting(64, "image size: 16, 28, 32, 64, 128 or 256, or WIDTHxHEIGHT (64x48)")
    channels: int | None = setting(
        None, "image channels (1, 3, or 4 to keep transparency); default: taken from the data", choices=(1, 3, 4)
    )
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        check(self)
        object.__setattr__(self, "image_size", check_size(self.image_size))


INCEPTION_HELP = (
    "TorchScript feature extractor taking N x 3 x 299 x 299 floats in [-1, 1) (default: the TF "
    "Inception pool3 network installed by pip install 'dcgan[metrics]')"
)


@dataclass(frozen=True, kw_only=True)
class FeatureOptions:
    """The feature network of the metrics commands."""

    inception: str | None = setting(None, INCEPTION_HELP, metavar="PATH")
    batch_size: int = setting(50, "images per forward pass of the network", low=1, high=4096)
    device: Device = setting("auto", "where to run the networks")
    threads: int | None = setting(None, THREADS_HELP, low=1, high=1024)
    ema: bool = setting(True, "draw from the moving average of G (--no-ema: the raw generator)")
    precise_bn: bool = setting(False, PRECISE_BN_HELP)
    progress: bool = setting(True, "show progress bars")

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True, kw_only=True)
class FidOptions:
    """``dcgan fid``: FID, KID, precision and recall between two sources."""

    a: str = setting(REQUIRED, "run folder, checkpoint file or folder of images", positional=True, metavar="A")
    b: str = setting(REQUIRED, "the same kinds as A", positional=True, metavar="B")
    n: int = setting(
        10_000,
        "images drawn from a run or checkpoint, seeds 0..n-1; image folders are used whole",
        short="-n",
        low=2,
        high=MAX_SEEDS,
    )
    image_size: int | None = setting(
        None,
        "size both image folders are decoded at (default: a run's size when "
        "one side is a run; else each folder at its own size)",
        low=8,
        high=1024,
    )
    json: bool = setting(False, "print one JSON object: fid, kid, kid_std, precision, recall, n_a, n_b, ...")
    kid_subsets: int = setting(100, "random subsets KID averages over", low=1, high=10000)
    kid_subset_size: int = setting(1000, "images per KID subset, at most the smaller side", low=2, high=MAX_SEEDS)
    per_class: bool = setting(
        False,
        "a class-conditional run against a folder with the same class subfolders: "
        "FID of each class (intra-FID) beside the overall one",
    )
    features: FeatureOptions = field(default_factory=FeatureOptions)

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True, kw_only=True)
class NearestOptions:
    """``dcgan nearest``: generated images beside their nearest training images."""

    run: str = setting(REQUIRED, "run folder or checkpoint file", positional=True, metavar="RUN_DIR")
    real: str = setting(REQUIRED, "the training images (or any folder)", metavar="DATA_DIR")
    out: str | None = setting(
        None, "the grid image (default: nearest.png in the run folder, or beside the checkpoint)", metavar="FILE"
    )
    n: int = setting(16, "generated images, seeds 0..n-1", flag="-n", low=1, high=MAX_GRID)
    neighbours: int = setting(3, "nearest real images per row", short="-k", low=1, high=64)
    features: FeatureOptions = field(default_factory=FeatureOptions)

    def __post_init__(self) -> None:
        check(self)
        if self.out is not None:
            check_image_suffix(self.out, "--out")


@dataclass(frozen=True, kw_only=True)
class TrainTarget:
    """``dcgan train``'s own arguments; the training settings themselves are ``config.TrainConfig``."""

    data_dir: str = setting(REQUIRED, DATA_HELP, positional=True, metavar="DATA_DIR")
    out: str = setting(REQUIRED, "run folder for checkpoints, samples and logs", metavar="RUN_DIR")
    resume: bool = setting(
        False, "continue from the latest checkpoint in RUN_DIR, with its settings (flags given now override them)"
    )
    allow_data_change: bool = setting(False, "with --resume: continue even though the data folder changed")
    dry_run: bool = setting(
        False,
        "print the plan (device, precision, networks, augmentation, run length, time it "
        "would take) and exit without training",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """``dcgan export``: the generator as an ONNX file, checked against onnxruntime."""

    source: GeneratorSource
    out: str = setting(REQUIRED, "the ONNX file to write (generator.onnx)", metavar="FILE.onnx")
    output: Literal["uint8", "float"] = setting(
        "uint8", "images as uint8 (B, H, W, C), or float (B, C, H, W) in the model's range"
    )
    opset: int = setting(18, "ONNX opset version", low=18, high=23)

    def __post_init__(self) -> None:
        check(self)
        if Path(self.out).suffix.lower() != ".onnx":
            raise ConfigError(f"--out {self.out!r}: the file must end in .onnx")


# Projection's defaults, shared by the CLI, the Python API and project.project. Steps: the round trip of 25
# Fashion-MNIST pictures G(z*) (4 starts, lr 0.1) reached a mean PSNR of 28.3 dB in 300 steps, 35.1 in 600
# and 41.1 in 1,000 (BENCHMARKS.md, "Projection"): 600 is the shortest tried that passed 30 dB on every one.
PROJECT_STEPS = 600
PROJECT_STARTS = 4
PROJECT_LR = 0.1


@dataclass(frozen=True, kw_only=True)
class ProjectOptions:
    """``dcgan project``: the z whose image best matches each of your pictures."""

    source: GeneratorSource
    photos: tuple[str, ...] = setting(
        REQUIRED, "pictures to project (decoded and fitted as training does)", positional=True, metavar="PHOTO"
    )
    out_dir: str = setting(
        REQUIRED, "folder for NAME.npy (the z), NAME.png (its image) and NAME-compare.png (the picture beside it)"
    )
    steps: int = setting(PROJECT_STEPS, "optimisation steps per picture", low=1, high=100_000)
    starts: int = setting(PROJECT_STARTS, "random starts per picture; the best is kept", low=1, high=64)
    seed: int = setting(0, "seed of the starts: the same seed gives the same z on CPU", low=0, high=2**32 - 1)
    features: Literal["discriminator", "none"] = setting(
        "discriminator", "the distance beside the pixel error: the trained D's features, or none"
    )
    lr: float = setting(PROJECT_LR, "Adam's learning rate on z (decayed over the steps)", above=0, high=10)
    label: str | None = setting(
        None,
        "a class-conditional model's class to project into (a name or index; default: for each picture, the "
        "class whose images come nearest it)",
        flag="--class",
        metavar="CLASS",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """``dcgan serve``: a local page to watch a run train and explore its generator."""

    run: str = setting(REQUIRED, "run folder (it may still be training)", positional=True, metavar="RUN_DIR")
    host: str = setting("127.0.0.1", "address to listen on (127.0.0.1: this machine only)")
    port: int = setting(8000, "port to listen on", low=1, high=65535)
    checkpoint: Which = setting("auto", "the checkpoint the explore view draws from: best when kept, else newest")
    precise_bn: bool = setting(False, PRECISE_BN_HELP + "; again for each newer checkpoint")

    def __post_init__(self) -> None:
        check(self)
        if not Path(self.run).is_dir():
            raise ConfigError(f"{self.run!r} is not a run folder")


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """``dcgan report``: RUN_DIR/report.html, one self-contained page about the run."""

    run: str = setting(REQUIRED, "run folder", positional=True, metavar="RUN_DIR")
    real: str | None = setting(
        None, "the training images: adds the nearest-neighbour copy check (needs dcgan[metrics])", metavar="DATA_DIR"
    )

    def __post_init__(self) -> None:
        check(self)
        if not Path(self.run).is_dir():
            raise ConfigError(f"{self.run!r} is not a run folder")
