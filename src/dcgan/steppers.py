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
        labels: np.ndarray | None = None,
    ) -> None:
        self.images, self.sampler, self.dist = images, sampler, dist
        self.output, self.channels_last, self.mirror, self.generator = output, channels_last, mirror, generator
        self.feed = BatchFeed(images, device)
        self.device = device
        self.labels = labels  # (N,) class of each image, for a class-conditional run

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B / ranks, C, H, W): this rank's part of the next batch, and its classes (None: unconditional)."""
        idx = self.sampler.next()
        mine = idx[shard(self.dist, len(idx))]
        # The batch after this one, for a feed that fetches ahead (a GPU fed from a host memory map).
        upcoming = self.sampler.peek() if self.feed.prefetch else None
        batch = self.feed.get(mine, None if upcoming is None else upcoming[shard(self.dist, len(upcoming))])
        real = to_model_range(batch, self.output, self.channels_last)
        classes = None if self.labels is None else torch.from_numpy(self.labels[mine]).to(self.device)
        return (random_flip(real, self.generator) if self.mirror else real), classes

    def skip(self) -> None:
        """Move past one batch without reading it."""
        self.sampler.next()

    def close(self) -> None:
        self.feed.close()


class Latents:
    """z for each step from the run's own generator: every rank draws the global batch and keeps its slice."""

    def __init__(
        self,
        generator: torch.Generator,
        latent_dim: int,
        device: torch.device,
        dist: DistContext,
        class_probabilities: np.ndarray | None = None,
    ) -> None:
        self.generator, self.latent_dim, self.device, self.dist = generator, latent_dim, device, dist
        # The classes asked of G follow the classes D sees among the real images (their shares in the folder,
        # or equal shares with --balance), so D cannot tell fakes by their classes alone.
        self.class_probabilities = (
            None
            if class_probabilities is None
            else torch.as_tensor(class_probabilities, dtype=torch.float32, device=device)
        )

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z for a global batch of n, this rank's slice; and the classes asked of G (None: unconditional)."""
        z = torch.randn(n, self.latent_dim, generator=self.generator, device=self.device)
        if self.class_probabilities is None:
            return z[shard(self.dist, n)], None
        picked = torch.multinomial(self.class_probabilities, n, replacement=True, generator=self.generator)
        return z[shard(self.dist, n)], picked[shard(self.dist, n)]


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
        real, real_classes = self.batches.next()
        z, fake_classes = self.latents.draw(self.batch_size)
        return train_step(
            self.state,
            real,
            z,
            self.options,
            ema_beta,
            augment=augment,
            r1=r1,
            real_classes=real_classes,
            fake_classes=fake_classes,
        )


class AlternateStep(EagerStep):
    """The tutorial's schedule: D on one iteration with fresh fakes, G on the next, which takes a batch and uses
    only its size."""

    def __call__(self, ema_beta: float, r1: bool, augment: Augmenter | None) -> dict[str, torch.Tensor]:
        real, real_classes = self.batches.next()
        z, fake_classes = self.latents.draw(self.batch_size)
        metrics = discriminator_step(
            self.state,
            real,
            z,
            self.options,
            augment=augment,
            r1=r1,
            real_classes=real_classes,
            fake_classes=fake_classes,
        )
        self.batches.skip()
        z, fake_classes = self.latents.draw(self.batch_size)
        metrics.update(
            generator_step(self.state, z, self.options, ema_beta, augment=augment, fake_classes=fake_classes)
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
