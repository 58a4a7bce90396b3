"""The networks and optimisers of a run: built from the config, packed for a checkpoint, put back from one.

The trainer decides when to save and restore; this module owns what that means for the models: the
seeded initialisation, the memory layout, the DistributedDataParallel wrapping, Adam's settings, and
the state dicts of the plain models under any wrapper.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .distributed import DistContext, sync_batchnorm
from .graphs import set_capturable
from .models import build_models
from .plan import RunPlan
from .step import GanState


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(module, "module", module)


def build_state(plan: RunPlan, device: torch.device, dist: DistContext, capturable: bool) -> GanState:
    """G, D, the EMA copy of G and both Adams, on the device; wrapped for DDP under torchrun.

    The initial weights depend on the seed alone: they are drawn in a forked global stream, which is
    left as it was. ``capturable`` keeps Adam's step count on the device, as a captured CUDA graph needs.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan.seed)
        generator: nn.Module
        discriminator: nn.Module
        generator, discriminator = build_models(plan.model)
    freeze_blocks(discriminator, plan.freeze_d)
    if dist.enabled and plan.sync_bn:
        generator, discriminator = sync_batchnorm(generator), sync_batchnorm(discriminator)
    ema = copy.deepcopy(generator).eval().requires_grad_(False) if plan.ema else None
    memory_format = torch.channels_last if plan.channels_last else torch.contiguous_format
    for net in (generator, discriminator, ema):
        if net is not None:
            net.to(device, memory_format=memory_format)  # type: ignore[call-overload]  # torch's stubs omit it
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        generator, discriminator = DDP(generator, device_ids=ids), DDP(discriminator, device_ids=ids)
    betas = (plan.beta1, plan.beta2)
    return GanState(
        generator=generator,
        discriminator=discriminator,
        ema=ema,
        opt_g=torch.optim.Adam(generator.parameters(), lr=plan.lr_g, betas=betas, capturable=capturable),
        opt_d=torch.optim.Adam(discriminator.parameters(), lr=plan.lr_d, betas=betas, capturable=capturable),
    )


def freeze_blocks(discriminator: nn.Module, blocks: int) -> None:
    """FreezeD (Mo et al. 2020): the weights of D's first ``blocks`` convolution blocks stop training (batch-norm
    statistics still follow the data)."""
    if blocks <= 0:
        return
    features = discriminator.features
    assert isinstance(features, nn.Sequential)
    seen = 0
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            seen += 1
        if seen > blocks:
            break
        for p in layer.parameters():
            p.requires_grad_(False)


def load_weights(state: GanState, saved: dict[str, Any]) -> None:
    """G, D and the EMA copy from another run's checkpoint networks (``--init-from``); the optimisers stay fresh."""
    unwrap(state.generator).load_state_dict(saved["generator"])
    unwrap(state.discriminator).load_state_dict(saved["discriminator"])
    if state.ema is not None:
        state.ema.load_state_dict(saved["ema"] if saved.get("ema") is not None else saved["generator"])


def pack(state: GanState) -> dict[str, Any]:
    """The models' and optimisers' state dicts, as a checkpoint stores them (no DDP prefixes)."""
    return {
        "generator": unwrap(state.generator).state_dict(),
        "discriminator": unwrap(state.discriminator).state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "opt_g": state.opt_g.state_dict(),
        "opt_d": state.opt_d.state_dict(),
    }


def unpack(state: GanState, saved: dict[str, Any]) -> None:
    """Load what ``pack`` stored into a state built for this run, in place.

    Adam keeps this run's choice of ``capturable`` (with or without --cuda-graphs), not the saved run's.
    """
    unwrap(state.generator).load_state_dict(saved["generator"])
    unwrap(state.discriminator).load_state_dict(saved["discriminator"])
    if state.ema is not None and saved.get("ema") is not None:
        state.ema.load_state_dict(saved["ema"])
    capturable = state.opt_g.param_groups[0]["capturable"]
    for opt, opt_saved in ((state.opt_g, saved["opt_g"]), (state.opt_d, saved["opt_d"])):
        opt.load_state_dict(opt_saved)
        set_capturable(opt, capturable)
