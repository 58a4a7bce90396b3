"""What a run will do, decided from the data and the device: the settings left open, and its length."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from .config import DEFAULT_WIDTH, SMALL_DATA_IMAGES, SMALL_DATA_WIDTH, TrainConfig
from .dataset import PreparedData
from .devices import fast_defaults

DEFAULT_EPOCHS = 25


def resolve_config(config: TrainConfig, data: PreparedData, device: torch.device, say: Callable[[str], None]
                   ) -> TrainConfig:
    """Fill in what the data and device decide: channels, batch size for tiny folders, amp, layout."""
    n = data.report["used"]
    model = replace(config.model, channels=config.model.channels or data.report["channels"])
    batch = config.batch_size
    if n < batch:
        say(f"warning: only {n} image(s), fewer than --batch-size {batch}: training with batches of {n}")
        batch = n
    small = n < SMALL_DATA_IMAGES
    width = SMALL_DATA_WIDTH if small else DEFAULT_WIDTH
    model = replace(model, g_width=model.g_width or width, d_width=model.d_width or model.g_width or width)
    augment = config.augment or ("diffaugment" if small else "none")
    if small and (config.augment is None or config.model.g_width is None):
        say(f"small folder ({n} images, under {SMALL_DATA_IMAGES}): "
            + ("DiffAugment on (--augment none turns it off)" if config.augment is None else "")
            + ("; " if config.augment is None and config.model.g_width is None else "")
            + (f"networks of width {width} (--g-width/--d-width to change)" if config.model.g_width is None else ""))
    amp_default, cl_default = fast_defaults(device)
    amp = amp_default if config.amp is None else config.amp
    channels_last = (cl_default and amp) if config.channels_last is None else config.channels_last
    return replace(config, model=model, batch_size=batch, amp=amp, channels_last=channels_last, augment=augment)


def total_steps(config: TrainConfig, batches_per_epoch: int) -> int:
    """Generator updates the run makes: --steps, or --epochs worth of batches."""
    if config.steps is not None:
        return config.steps
    epochs = config.epochs or DEFAULT_EPOCHS
    # With alternate updates a G step follows every second batch (the tutorial's schedule).
    per_epoch = batches_per_epoch // 2 if config.alternate else batches_per_epoch
    return max(1, epochs * max(1, per_epoch))
