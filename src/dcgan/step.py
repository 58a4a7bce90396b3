"""One training step as functions of (state, real batch, z): no I/O, no hidden random numbers.

The trainer owns the schedule; these functions own the arithmetic. Each returns detached metric
tensors so that the caller decides when to synchronise with the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .images import to_model_range
from .losses import decision_threshold, get_losses

__all__ = [
    "GanState",
    "StepOptions",
    "discriminator_step",
    "generator_step",
    "train_step",
    "to_model_range",
    "update_ema",
    "ema_beta_at",
]

Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GanState:
    """The trainable state of a GAN run (the models are updated in place)."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: nn.Module | None = None


@dataclass(frozen=True)
class StepOptions:
    """How a step computes: which loss, precision and memory layout."""

    loss: str = "bce"
    output: str = "tanh"
    amp: bool = False
    channels_last: bool = False
    d_skip_below: float = 0.0  # 0 = never skip
    r1_weight: float = 0.0  # gamma / 2 * lazy interval; applied only on steps the caller marks
    cast_cache: bool = True  # autocast's cache of low-precision weights; off inside a CUDA graph capture
    simultaneous: bool = False  # one D pass on the fakes serves both updates (G steps against the D of before)


def _call(net: nn.Module, x: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
    """A network on x, with the classes when the run is class-conditional."""
    return net(x) if classes is None else net(x, classes)


def _autocast(device: torch.device, options: StepOptions) -> contextlib.AbstractContextManager:
    if not options.amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=options.cast_cache)


def discriminator_step(
    state: GanState,
    real: torch.Tensor,
    z: torch.Tensor,
    options: StepOptions,
    augment: Augment | None = None,
    r1: bool = False,
    real_classes: torch.Tensor | None = None,
    fake_classes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One D update on a real batch (model range, (B, C, H, W)) and fresh fakes from z (B, latent_dim).

    With ``r1`` the R1 penalty (squared gradient norm of D on the real images) is added. A class-conditional
    run gives the real images' classes and the classes asked of G.
    """
    with torch.no_grad(), _autocast(real.device, options):
        fake = _call(state.generator, z, fake_classes)
    return _update_discriminator(state, real, fake, options, augment, r1, real_classes, fake_classes)


def generator_step(
    state: GanState,
    z: torch.Tensor,
    options: StepOptions,
    ema_beta: float | torch.Tensor = 0.0,
    augment: Augment | None = None,
    fake_classes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One G update from z (B, latent_dim); then the EMA generator follows (if any)."""
    with _autocast(z.device, options):
        fake = _call(state.generator, z, fake_classes)
    return _update_generator(state, fake, options, ema_beta, augment, fake_classes)


def train_step(
    state: GanState,
    real: torch.Tensor,
    z: torch.Tensor,
    options: StepOptions,
    ema_beta: float | torch.Tensor = 0.0,
    augment: Augment | None = None,
    r1: bool = False,
    real_classes: torch.Tensor | None = None,
    fake_classes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """A D update then a G update on the same fakes G(z): one generator forward per step, as Goodfellow et
    al.'s algorithm and the PyTorch example do (G's update sees the freshly updated D).

    With ``options.simultaneous`` both updates come from one D forward pass on the fakes, so G's gradient
    is taken against D as it was before this step's update (simultaneous gradient descent)."""
    with _autocast(z.device, options):
        fake = _call(state.generator, z, fake_classes)
    if options.simultaneous:
        return _update_both(state, real, fake, options, ema_beta, augment, r1, real_classes, fake_classes)
    metrics = _update_discriminator(state, real, fake.detach(), options, augment, r1, real_classes, fake_classes)
    metrics.update(_update_generator(state, fake, options, ema_beta, augment, fake_classes))
    return metrics


def _discriminate(
    state: GanState,
    real: torch.Tensor,
    fake: torch.Tensor,
    options: StepOptions,
    augment: Augment | None,
    r1: bool,
    real_classes: torch.Tensor | None,
    fake_classes: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """D on a real and a fake batch: (D's loss, with the R1 penalty when asked; D's logits on the fakes;
    metric tensors). The fakes keep their graph to G when they have one."""
    d_loss_fn, _ = get_losses(options.loss)
    aug = augment or (lambda x: x)
    real_in = aug(real)
    use_r1 = r1 and options.r1_weight > 0
    if use_r1:
        real_in = real_in.detach().requires_grad_(True)
    with _autocast(real.device, options):
        real_logits = _call(state.discriminator, real_in, real_classes).float()
        fake_logits = _call(state.discriminator, aug(fake), fake_classes).float()
        loss = d_loss_fn(real_logits, fake_logits)
    metrics = {
        "d_loss": loss.detach(),
        "d_real": real_logits.detach().mean(),
        "d_fake": fake_logits.detach().mean(),
        "d_real_sign": torch.sign(real_logits.detach() - decision_threshold(options.loss)).mean(),
    }
    if use_r1:
        (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
        penalty = grad.float().pow(2).sum(dim=(1, 2, 3)).mean()
        loss = loss + options.r1_weight * penalty
        metrics["r1"] = penalty.detach()
    return loss, fake_logits, metrics


def _skip_d(options: StepOptions, metrics: dict[str, torch.Tensor]) -> bool:
    """The tutorial's rule: a D that already wins this clearly is left alone for this batch."""
    return options.d_skip_below > 0 and metrics["d_loss"].item() < options.d_skip_below


def _update_discriminator(
    state: GanState,
    real: torch.Tensor,
    fake: torch.Tensor,
    options: StepOptions,
    augment: Augment | None,
    r1: bool,
    real_classes: torch.Tensor | None = None,
    fake_classes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    loss, _, metrics = _discriminate(state, real, fake, options, augment, r1, real_classes, fake_classes)
    skip = _skip_d(options, metrics)
    if not skip:
        state.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        state.opt_d.step()
    metrics["d_updated"] = torch.full((), 0.0 if skip else 1.0, device=real.device)
    return metrics


def _update_generator(
    state: GanState,
    fake: torch.Tensor,
    options: StepOptions,
    ema_beta: float | torch.Tensor,
    augment: Augment | None,
    fake_classes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    _, g_loss_fn = get_losses(options.loss)
    aug = augment or (lambda x: x)
    # D's parameters get no gradient here, but D still runs in train mode (batch statistics), as in D's step.
    # Only the trainable ones are switched off and back on: layers frozen by --freeze-d stay frozen.
    trainable = [p for p in state.discriminator.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        with _autocast(fake.device, options):
            # D's forward outside any DDP wrapper: D gets no update here, so nothing of it must sync.
            critic = getattr(state.discriminator, "module", state.discriminator)
            fake_logits = _call(critic, aug(fake), fake_classes).float()
            loss = g_loss_fn(fake_logits)
        state.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        state.opt_g.step()
    finally:
        for p in trainable:
            p.requires_grad_(True)
    if state.ema is not None:
        update_ema(state.ema, state.generator, ema_beta)
    return {"g_loss": loss.detach()}


def _update_both(
    state: GanState,
    real: torch.Tensor,
    fake: torch.Tensor,
    options: StepOptions,
    ema_beta: float | torch.Tensor,
    augment: Augment | None,
    r1: bool,
    real_classes: torch.Tensor | None,
    fake_classes: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """D's and G's updates from one D forward pass on the fakes: D's loss back into D's parameters only, G's
    loss back through D (input gradients only) into G's. Saves one D forward pass of the fakes a step."""
    _, g_loss_fn = get_losses(options.loss)
    d_loss, fake_logits, metrics = _discriminate(state, real, fake, options, augment, r1, real_classes, fake_classes)
    g_loss = g_loss_fn(fake_logits)
    skip = _skip_d(options, metrics)
    state.opt_d.zero_grad(set_to_none=True)
    state.opt_g.zero_grad(set_to_none=True)
    if not skip:
        d_loss.backward(inputs=[p for p in state.discriminator.parameters() if p.requires_grad], retain_graph=True)
    g_loss.backward(inputs=list(state.generator.parameters()))
    if not skip:
        state.opt_d.step()
    state.opt_g.step()
    if state.ema is not None:
        update_ema(state.ema, state.generator, ema_beta)
    return {**metrics, "g_loss": g_loss.detach(), "d_updated": torch.full((), 0.0 if skip else 1.0, device=real.device)}


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float | torch.Tensor) -> None:
    """ema <- beta * ema + (1 - beta) * model for parameters; buffers (batch-norm statistics) are copied.

    beta may be a 0-dim tensor on the models' device (read there, as a captured CUDA graph needs)."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def ema_beta_at(step: int, beta: float) -> float:
    """Warm-up: early on the average follows G closely, so short runs do not sample from the init."""
    return min(beta, (1.0 + step) / (10.0 + step))
