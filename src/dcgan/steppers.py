"""What one training step consumes, and the three ways of taking it behind one interface.

``RealBatches`` gives each step its real images (the sampler's next batch, this rank's slice, in the
model's range) and ``Latents`` its z (drawn for the global batch, so the stream does not depend on the
number of processes). A ``Stepper`` takes one step: ``EagerStep`` (a D then a G update on the same
fakes), ``AlternateStep`` (the tutorial's schedule: D on one batch, G on the next) or ``GraphStep``
(the eager step captured in one CUDA graph). The trainer calls whichever it was given the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from .augment import Augmenter, random_flip
from .dataset import EpochSampler
from .distributed import DistContext
from .feed import BatchFeed
from .graphs import StepGraph
from .images import to_model_range
from .step import GanState, StepOptions, discriminator_step, generator_step, train_step


def shard(dist: DistContext, n: int) -> slice:
    """This rank's slice of a global batch of n (``--batch-size`` is the global batch)."""
    per_rank = n // dist.world
    return slice(dist.rank * per_rank, (dist.rank + 1) * per_rank)


class RealBatches:
    """Real batches in the model's range, in the sampler's order (its position is what a checkpoint keeps)."""

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        device: torch.device,
        sampler: EpochSampler,
        dist: DistContext,
        output: str,
        channels_last: bool,
        mirror: bool,
        generator: torch.Generator,
    ) -> None:
        self.images, self.sampler, self.dist = images, sampler, dist
        self.output, self.channels_last, self.mirror, self.generator = output, channels_last, mirror, generator
        self.feed = BatchFeed(images, device)

    def next(self) -> torch.Tensor:
        """(B / ranks, C, H, W): this rank's part of the next batch."""
        idx = self.sampler.next()
        # The batch after this one, for a feed that fetches ahead (a GPU fed from a host memory map).
        upcoming = self.sampler.peek() if self.feed.prefetch else None
        batch = self.feed.get(
            idx[shard(self.dist, len(idx))], None if upcoming is None else upcoming[shard(self.dist, len(upcoming))]
        )
        real = to_model_range(batch, self.output, self.channels_last)
        return random_flip(real, self.generator) if self.mirror else real

    def skip(self) -> None:
        """Move past one batch without reading it."""
        self.sampler.next()

    def close(self) -> None:
        self.feed.close()


class Latents:
    """z for each step from the run's own generator: every rank draws the global batch and keeps its slice."""

    def __init__(self, generator: torch.Generator, latent_dim: int, device: torch.device, dist: DistContext) -> None:
        self.generator, self.latent_dim, self.device, self.dist = generator, latent_dim, device, dist

    def draw(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=self.generator, device=self.device)
        return z[shard(self.dist, n)]


class Stepper(Protocol):
    """One training step: reads the next real batch and z, updates the state, returns metric tensors."""

    def __call__(self, ema_beta: float, r1: bool, augment: Augmenter | None) -> dict[str, torch.Tensor]: ...


class EagerStep:
    """A D update then a G update on the same fakes G(z) (``step.train_step``)."""

    def __init__(
        self, state: GanState, options: StepOptions, batches: RealBatches, latents: Latents, batch_size: int
    ) -> None:
        self.state, self.options, self.batches, self.latents, self.batch_size = (
            state,
            options,
            batches,
            latents,
            batch_size,
        )

    def __call__(self, ema_beta: float, r1: bool, augment: Augmenter | None) -> dict[str, torch.Tensor]:
        return train_step(
            self.state,
            self.batches.next(),
            self.latents.draw(self.batch_size),
            self.options,
            ema_beta,
            augment=augment,
            r1=r1,
        )


class AlternateStep(EagerStep):
    """The tutorial's schedule: D on one iteration with fresh fakes, G on the next, which takes a batch and uses
    only its size."""

    def __call__(self, ema_beta: float, r1: bool, augment: Augmenter | None) -> dict[str, torch.Tensor]:
        metrics = discriminator_step(
            self.state, self.batches.next(), self.latents.draw(self.batch_size), self.options, augment=augment, r1=r1
        )
        self.batches.skip()
        metrics.update(
            generator_step(self.state, self.latents.draw(self.batch_size), self.options, ema_beta, augment=augment)
        )
        return metrics


class GraphStep:
    """The eager step replayed from one CUDA graph (``graphs.StepGraph``); says once if capture fails."""

    def __init__(self, graph: StepGraph, batches: RealBatches, latents: Latents, say: Callable[[str], None]) -> None:
        self.graph, self.batches, self.latents, self.say = graph, batches, latents, say

    def __call__(self, ema_beta: float, r1: bool, augment: Augmenter | None) -> dict[str, torch.Tensor]:
        p = float(augment.p) if augment is not None else 0.0
        metrics = self.graph.step(self.batches.sampler, self.latents.generator, ema_beta, p)
        if self.graph.failure:
            self.say(f"--cuda-graphs: capture failed ({self.graph.failure}); continuing without graphs")
            self.graph.failure = None
        return metrics

    def reset(self) -> None:
        """After the optimizers' state was replaced (resume, rollback): capture again."""
        self.graph.reset()
