"""What a run will do: the request resolved against the data and the machine, with nothing left open.

``resolve`` is a pure function of a ``TrainConfig`` (what was asked), the facts of the data (how many
usable images, how many channels) and of the machine (device, native bf16, cores). It returns a frozen
``RunPlan`` in which every setting has its final value and every decision has a note saying why;
``dcgan train --dry-run`` prints it, the trainer runs it, and config.json keeps it. No torch import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from .config import (
    LENGTH_FIELDS,
    Augment,
    DataConfig,
    Loss,
    ModelSpec,
    OnNan,
    Preset,
    TrainConfig,
    from_dict,
    model_spec,
    num_stages,
    to_dict,
)
from .schema import ConfigError, check, with_overrides

# Below this many images a plain DCGAN's D memorises the data: augmentation goes on and the networks get
# narrower unless the user says otherwise (BENCHMARKS.md, "Small folders").
SMALL_DATA_IMAGES = 2000
SMALL_DATA_WIDTH = 32
# The default run length, in images shown to D (StyleGAN's kimg): about a thousand passes over the
# folder, at least 500k and at most 5M images (BENCHMARKS.md, "A user's first run").
KIMG_PER_IMAGE = 1.0
MIN_KIMG, MAX_KIMG = 500, 5000
MIN_GRID_STEPS = 100  # default progress grids: after whole epochs, at least this many steps apart
MAX_GRIDS = 200  # ... and not many more than this in a whole run
SHORT_RUN_KIMG = 100  # under this many images shown, a DCGAN has not learned shapes yet: warn
UNTIL_TIME = 10**9  # the step count of a run that --time alone ends
# Adaptive p starts at 1 (DiffAugment as published) and comes down only when D shows it does not overfit:
# on an 861-image folder in 10 minutes, starting at 0 gave FID 220.1 (p reached 1 after ~1,000 steps
# anyway), starting at 1 gave 187.9 and a fixed p = 1 192.0 (BENCHMARKS.md, "A user's first run").
ADAPTIVE_START_P = 1.0


@dataclass(frozen=True)
class DataFacts:
    """What the prepared data tells the plan."""

    images: int  # usable images (with --classes: those with a class)
    channels: int  # 1 when every image is gray, else 3
    class_names: tuple[str, ...] = ()  # with --classes
    class_draw: tuple[float, ...] = ()  # with --classes clusters:K: each class's share of the images


@dataclass(frozen=True)
class Machine:
    """What the device tells the plan (see ``devices.machine``)."""

    device: str  # "cpu", "cuda" or "mps"
    fast_bf16: bool  # computes bfloat16 natively: autocast pays
    threads: int  # intra-op threads by default (one per core)
    processes: int = 1  # torchrun ranks


def fast_amp(machine: Machine) -> bool:
    """bf16 autocast by default where the device computes bf16 natively (CPU or CUDA), elsewhere not."""
    return machine.fast_bf16 and machine.device in ("cpu", "cuda")


def fast_layout(machine: Machine, amp: bool) -> bool:
    """Channels-last by default: on a CPU always (oneDNN's convolutions run faster in that layout in fp32 as
    in bf16: 1.13-1.19x in fp32 with AVX-512 and 1.04-1.10x capped at AVX2, interleaved in one process, BENCHMARKS.md
    "fp32 on CPUs without AVX-512 BF16"), on a GPU with bf16 autocast (tensor cores want it), elsewhere not."""
    return machine.device == "cpu" or (machine.device == "cuda" and amp)


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """A training run with every decision made. Fields mirror TrainConfig's, with nothing optional."""

    requested: TrainConfig
    model: ModelSpec
    data: DataConfig
    images: int
    preset: Preset
    loss: Loss
    batch_size: int
    lr_g: float
    lr_d: float
    beta1: float
    beta2: float
    steps: int  # generator updates to make (unless the time budget ends the run first); UNTIL_TIME: no limit
    steps_per_epoch: int
    time_budget: float  # wall-time seconds this command may train (each --resume again); 0 = no limit
    seed: int
    device: str
    threads: int
    ema: bool
    ema_beta: float
    alternate: bool
    simultaneous: bool
    d_skip_below: float  # 0 = never skip
    sample_every: int
    checkpoint_every: int
    keep: int
    grid_size: int
    amp: bool
    channels_last: bool
    cuda_graphs: bool
    log_every: int
    augment: Augment
    augment_policy: str
    augment_p: float  # the probability at the start
    augment_adaptive: bool
    augment_target: float
    mirror: bool
    r1_gamma: float
    r1_every: int
    eval_every: int  # 0 = never
    eval_n: int
    patience: int  # 0 = never stop early
    inception: str  # "" = the standard network of the metrics extra
    sync_bn: bool
    on_nan: OnNan
    progress: bool
    class_names: tuple[str, ...] = ()  # a class-conditional run's classes, in index order
    # Clusters (--classes clusters:K) were never named by the user: a sample asked for without a class
    # draws one with these probabilities (each cluster's share of the training images); () for named classes.
    class_draw: tuple[float, ...] = ()
    balance: bool = False
    init_from: str = ""  # the checkpoint this run started from ("": random weights)
    freeze_d: int = 0  # D's first blocks kept as they were (FreezeD)
    precise_bn: bool = False  # the sampling G's batch-norm statistics re-estimated for its own weights
    notes: tuple[str, ...] = ()  # each decision the data or device made, and how to change it

    def __post_init__(self) -> None:
        check(self)

    @property
    def kimg(self) -> float:
        """Thousands of real images D sees over the whole run."""
        return self.steps * self.batch_size / 1000

    @classmethod
    def from_dict(cls, values: Any, where: str = "saved plan") -> RunPlan:
        return from_dict(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def default_kimg(images: int) -> int:
    """The default run length for a folder of ``images`` usable images, in thousands of images shown to D."""
    return int(min(MAX_KIMG, max(MIN_KIMG, round(images * KIMG_PER_IMAGE))))


def resolve(request: TrainConfig, data: DataFacts, machine: Machine) -> RunPlan:
    """Make every decision the request leaves to the data and the machine, and say why in ``notes``."""
    notes: list[str] = []
    n = data.images
    batch = request.batch_size
    if n < batch:
        notes.append(f"only {n} image(s), fewer than --batch-size {batch}: training with batches of {n}")
        batch = n
    small = n < SMALL_DATA_IMAGES
    asked = request.model
    width = SMALL_DATA_WIDTH if small else None  # else the config's net_width
    model = model_spec(asked, data.channels, width, num_classes=len(data.class_names))
    augment = request.augment or ("diffaugment" if small else "none")
    if small and request.augment is None:
        notes.append(
            f"small folder ({n} images, under {SMALL_DATA_IMAGES:,}): DiffAugment on"
            + (" with adaptive p, from 1" if request.augment_p == "auto" else "")
            + " (--augment none turns it off)"
        )
    if small and asked.g_width is None:
        notes.append(
            f"small folder: networks of width {width} (--g-width/--d-width to change; --net-width "
            f"applies from {SMALL_DATA_IMAGES:,} images)"
        )

    blocks = num_stages(model.image_size)
    if request.freeze_d > blocks:
        raise ConfigError(
            f"--freeze-d {request.freeze_d}: D has {blocks} blocks at {model.width}x{model.height}; freeze at "
            f"most {blocks - 1} to leave some to train"
        )
    # With alternate updates a G step follows every second batch (the tutorial's schedule).
    batches = max(1, n // batch)
    per_epoch = max(1, batches // 2) if request.alternate else batches
    if request.steps is not None:
        steps = request.steps
    elif request.epochs is not None:
        steps = request.epochs * per_epoch
    else:
        kimg = request.kimg or default_kimg(n)
        steps = max(1, math.ceil(kimg * 1000 / batch))
        if request.kimg is None and request.time_budget is None:
            notes.append(
                f"run length: {kimg:,} thousand images shown to D ({steps:,} steps, about "
                f"{kimg * 1000 / n:,.0f} passes over the folder), chosen from its size; --time, --steps, "
                "--epochs or --kimg change it"
            )
    time_budget = request.time_budget or 0.0
    if request.time_budget is not None and not any(getattr(request, f) is not None for f in LENGTH_FIELDS):
        steps = UNTIL_TIME  # the budget alone ends the run
    if request.sample_every is not None:
        sample_every = request.sample_every
    else:
        epochs_apart = max(1, math.ceil(MIN_GRID_STEPS / per_epoch))
        sample_every = per_epoch * epochs_apart
        if steps < UNTIL_TIME:
            sample_every *= max(1, math.ceil(steps / MAX_GRIDS / sample_every))
    amp = fast_amp(machine) if request.amp is None else request.amp
    channels_last = fast_layout(machine, amp) if request.channels_last is None else request.channels_last
    adaptive = request.augment_p == "auto"
    return RunPlan(
        requested=request,
        model=model,
        data=request.data,
        images=n,
        preset=request.preset,
        loss=request.loss,
        batch_size=batch,
        lr_g=request.lr_g,
        lr_d=request.lr_d,
        beta1=request.beta1,
        beta2=request.beta2,
        steps=steps,
        steps_per_epoch=per_epoch,
        time_budget=time_budget,
        seed=request.seed,
        device=machine.device,
        threads=request.threads or machine.threads,
        ema=request.ema,
        ema_beta=request.ema_beta,
        precise_bn=request.precise_bn,
        alternate=request.alternate,
        simultaneous=request.simultaneous,
        d_skip_below=request.d_skip_below or 0.0,
        sample_every=sample_every,
        checkpoint_every=request.checkpoint_every,
        keep=request.keep,
        grid_size=request.grid_size,
        amp=amp,
        channels_last=channels_last,
        cuda_graphs=request.cuda_graphs,
        log_every=request.log_every,
        augment=augment,
        augment_policy=request.augment_policy,
        augment_p=ADAPTIVE_START_P if adaptive else float(request.augment_p),
        augment_adaptive=adaptive,
        augment_target=request.augment_target,
        mirror=request.mirror,
        r1_gamma=request.r1_gamma,
        r1_every=request.r1_every,
        eval_every=request.eval_every or 0,
        eval_n=request.eval_n,
        patience=request.patience or 0,
        inception=request.inception or "",
        sync_bn=request.sync_bn,
        on_nan=request.on_nan,
        progress=request.progress,
        class_names=data.class_names,
        class_draw=data.class_draw,
        balance=request.balance,
        init_from=request.init_from or "",
        freeze_d=request.freeze_d,
        notes=tuple(notes),
    )


# The decisions a resumed run keeps from its start unless the settings they came from change now:
# (settings of the request, fields of the plan).
KEPT_ON_RESUME = (
    (("model",), ("model",)),
    (("batch_size",), ("batch_size",)),
    (("augment",), ("augment",)),
    ((*LENGTH_FIELDS, "time_budget", "batch_size"), ("steps",)),
    (("sample_every", "batch_size", *LENGTH_FIELDS), ("sample_every",)),
    (("init_from",), ("init_from",)),
)


def continue_plan(fresh: RunPlan, saved: RunPlan) -> RunPlan:
    """A resumed run's plan: ``fresh`` (resolved against today's data and machine) with the decisions of the
    run's start kept wherever the settings they came from are as they were, so a run continues as it began
    even when the folder has changed (--allow-data-change) or the rule for a default has."""
    kept: dict[str, Any] = {}
    for settings, decisions in KEPT_ON_RESUME:
        if all(getattr(fresh.requested, name) == getattr(saved.requested, name) for name in settings):
            kept.update({name: getattr(saved, name) for name in decisions})
    return replace(fresh, **kept)


def resume_request(saved: RunPlan, overrides: dict[str, Any]) -> TrainConfig:
    """The request that continues a saved run: what it asked for at its start, with the flags given now on top
    (checked). A new run length replaces the old one whatever form either took."""
    if any(overrides.get(name) is not None for name in LENGTH_FIELDS):
        overrides = {**{name: None for name in LENGTH_FIELDS}, **overrides}
    return with_overrides(saved.requested, overrides)


def too_short(plan: RunPlan) -> str | None:
    """A warning when the run shows D too few images to learn shapes, or None."""
    if plan.time_budget or plan.kimg >= SHORT_RUN_KIMG:
        return None
    suggested = default_kimg(plan.images)
    return (
        f"warning: {plan.steps:,} steps show D only {plan.kimg * 1000:,.0f} images; a DCGAN needs about "
        f"{SHORT_RUN_KIMG * 1000:,} before shapes appear (this folder's default is {suggested:,} thousand). "
        "Drop --steps/--epochs to use the default, or give --time 30m"
    )


def describe(plan: RunPlan, images_per_sec: float | None = None, where: str | None = None) -> str:
    """The plan as --dry-run prints it: the decisions that matter, then the notes."""
    m = plan.model
    length = (
        f"{plan.steps:,} steps ({plan.kimg:,.0f} thousand images shown to D)"
        if plan.steps < UNTIL_TIME
        else "until the time budget is spent"
    )
    lines = [
        f"data:      {plan.images:,} images, {m.channels} channel(s), {m.width}x{m.height}",
        f"device:    {where or plan.device}"
        + (f", {plan.threads} thread(s)" if plan.device == "cpu" else "")
        + f", {'bf16 autocast' if plan.amp else 'fp32'}"
        + (", channels-last" if plan.channels_last else ""),
        f"networks:  G width {m.g_width}, D width {m.d_width} (x{m.max_width_mult} at most), z of {m.latent_dim}, "
        f"{m.output} output, D head {m.d_head}"
        + (", spectral norm" if m.spectral_norm else "")
        + (f", depth G +{m.g_depth} D +{m.d_depth}" if m.g_depth or m.d_depth else ""),
        f"training:  {plan.loss} loss, batch {plan.batch_size}, Adam lr G {plan.lr_g:g} D {plan.lr_d:g} betas "
        f"({plan.beta1:g}, {plan.beta2:g})"
        + (f", EMA {plan.ema_beta:g}" if plan.ema else ", no EMA")
        + (", precise BN" if plan.precise_bn else "")
        + (", alternate D/G" if plan.alternate else "")
        + (", simultaneous D/G" if plan.simultaneous else ""),
        f"augment:   {plan.augment}"
        + (
            f" ({plan.augment_policy}, p " + ("adaptive" if plan.augment_adaptive else f"{plan.augment_p:g}") + ")"
            if plan.augment == "diffaugment"
            else ""
        )
        + (", mirror" if plan.mirror else ""),
        f"length:    {length}" + (f", at most {format_duration(plan.time_budget)}" if plan.time_budget else ""),
    ]
    if plan.class_names:
        lines.insert(
            3,
            f"classes:   {len(plan.class_names)} ({', '.join(plan.class_names[:12])}"
            + (", ..." if len(plan.class_names) > 12 else "")
            + f"); G by {m.class_input}, D by projection"
            + ("; drawn equally (--balance)" if plan.balance else "")
            + ("; clusters of look-alike pictures, each sample's drawn by its seed" if plan.class_draw else ""),
        )
    if images_per_sec:
        seconds = plan.steps * plan.batch_size / images_per_sec
        if plan.time_budget:
            seconds = min(seconds, plan.time_budget)
        lines.append(
            f"time:      about {format_duration(seconds)} at {images_per_sec:,.0f} images/s "
            "(measured over a few steps here)"
        )
    lines.append(
        f"outputs:   a grid every {plan.sample_every:,} steps, a checkpoint every {plan.checkpoint_every:,}"
        + (f", FID every {plan.eval_every:,}" if plan.eval_every else "")
        + (f" (stop after {plan.patience} without a new best)" if plan.patience else "")
    )
    lines += [f"note:      {n}" for n in plan.notes]
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """3725 -> '1h02m'; 95 -> '1m35s'; 7 -> '7s'."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"
