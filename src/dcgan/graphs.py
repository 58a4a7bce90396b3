"""The whole training step in one CUDA graph (``--cuda-graphs``): captured once, replayed every step.

At small batches a DCGAN step on a GPU can wait on kernel launches rather than arithmetic; replaying the
whole iteration from one graph removes the launches (how much that buys here is unmeasured: see
BENCHMARKS.md). The graph here holds everything between a row of dataset indices and
the updated weights: gathering the uint8 images (resident on the GPU), conversion to the model range,
the mirror flip, augmentation, both losses, both backward passes, both Adam steps (``capturable``) and
the EMA. Outside it, each step costs four small launches: copying the batch's row of the epoch's
index table (which lives on the device), ``normal_`` for z from the run's own z generator (so the z
stream is the eager one), and filling the EMA weight and the augmentation probability.

Random numbers inside the graph (augmentation, mirror) come from the device's default generator,
which CUDA graphs advance safely on every replay and which checkpoints save. So a graphed run's
augmentation draws differ from an eager run's; its z and batches do not.

``StepGraph(capture=False)`` runs the same body eagerly: that is how CPU-only CI tests it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from .augment import Augmenter, random_flip
from .dataset import EpochSampler
from .images import to_model_range
from .plan import RunPlan
from .step import GanState, StepOptions, train_step

METRICS = ("d_loss", "d_real", "d_fake", "d_real_sign", "g_loss")
WARMUP_STEPS = 3  # eager steps on a side stream before capture, as PyTorch's CUDA-graph notes ask


def unsupported(config: RunPlan, distributed: bool, images_on_device: bool) -> str | None:
    """Why this run cannot use whole-step graphs, or None when it can."""
    reasons = []
    if distributed:
        reasons.append("torchrun (DDP's gradient all-reduce is not captured here)")
    if config.alternate:
        reasons.append("the alternate D/G schedule")
    if config.simultaneous:
        reasons.append("--simultaneous (not captured)")
    if config.d_skip_below > 0:
        reasons.append("--d-skip-below (it reads D's loss on the host every step)")
    if config.class_names:
        reasons.append("--classes (the class-conditional step is not captured)")
    if config.r1_gamma > 0:
        reasons.append("--r1-gamma (the lazy penalty makes two kinds of step)")
    if not images_on_device:
        reasons.append("a dataset too large to keep on the GPU")
    return "; ".join(reasons) or None


def graphs_usable(
    config: RunPlan,
    device: torch.device,
    distributed: bool,
    images: np.ndarray | torch.Tensor,
    say: Callable[[str], None],
) -> bool:
    """--cuda-graphs asked: whether this run can have them, saying why not (it then trains without)."""
    on_device = isinstance(images, torch.Tensor) or device.type != "cuda"
    reason = unsupported(config, distributed, on_device)
    if reason:
        say(f"--cuda-graphs: not with {reason}; training without graphs")
    elif device.type != "cuda":
        say(f"--cuda-graphs: nothing to capture on {device.type}; the graph's step runs eagerly")
    return reason is None


def set_capturable(opt: torch.optim.Optimizer, capturable: bool) -> None:
    """Fit Adam state saved with or without --cuda-graphs to this run: a captured step keeps its count on
    the device, an eager one on the host."""
    for group in opt.param_groups:
        group["capturable"] = capturable
    for values in opt.state.values():
        if "step" in values:
            values["step"] = values["step"].to(values["exp_avg"].device if capturable else "cpu", torch.float32)


class StepGraph:
    """One D+G training step over static buffers, replayed from a CUDA graph (or run eagerly).

    Call ``set_epoch`` with the epoch's batches of indices, then once per step call the object with
    the row of the batch, the z generator, the EMA beta and the augmentation probability. The metrics
    it returns are copies, safe to keep after the next step.
    """

    def __init__(
        self,
        state: GanState,
        options: StepOptions,
        images: torch.Tensor,
        batch_size: int,
        latent_dim: int,
        augment_policy: tuple[str, ...] | None,
        mirror: bool,
        capture: bool,
    ) -> None:
        device = images.device
        self.state, self.images, self.mirror = state, images, mirror
        # Autocast's weight cache would hand out tensors freed at the end of the capture.
        self.options = replace(options, cast_cache=False) if capture else options
        self.capture = capture
        self.batches = torch.zeros((1, batch_size), dtype=torch.int64, device=device)
        self.idx = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.z = torch.zeros(batch_size, latent_dim, device=device)
        self.ema_beta = torch.zeros((), device=device)
        self.p = torch.zeros((), device=device)
        # The device's default generator: the one a graph may draw from (see the module notes).
        self.augment = Augmenter(augment_policy, self.p, None) if augment_policy else None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: torch.Tensor | None = None
        self.eager_calls = 0
        self.failure: str | None = None  # why capture failed, for the caller to report once
        self.epoch = -1  # the epoch whose index table is on the device

    @classmethod
    def for_run(
        cls, state: GanState, options: StepOptions, images: np.ndarray | torch.Tensor, config: RunPlan
    ) -> StepGraph:
        """The trainer's graph: captured on a GPU, run eagerly elsewhere (where it reads the memory map)."""
        if isinstance(images, np.ndarray):
            with warnings.catch_warnings():  # a read-only memory map: the step only reads it
                warnings.simplefilter("ignore", UserWarning)
                images = torch.from_numpy(images)
        if images.device.type == "cuda":
            # Augmentation and mirror flips inside the graph draw from the device's default generator.
            torch.cuda.manual_seed(config.seed + 2_000_003)
        policy = tuple(config.augment_policy.split(",")) if config.augment == "diffaugment" else None
        return cls(
            state,
            options,
            images,
            config.batch_size,
            config.model.latent_dim,
            policy,
            config.mirror,
            capture=images.device.type == "cuda",
        )

    def step(
        self, sampler: EpochSampler, z_generator: torch.Generator, ema_beta: float, p: float
    ) -> dict[str, torch.Tensor]:
        """The sampler's next batch, trained on; the epoch's index table goes to the device when it changes."""
        if sampler.epoch != self.epoch:
            self.set_epoch(sampler.epoch_batches())
            self.epoch = sampler.epoch
        row = sampler.batch
        sampler.next()
        return self(row, z_generator, ema_beta, p)

    def set_epoch(self, batches: np.ndarray) -> None:
        """The epoch's (batches, batch_size) index table, moved to the device once per epoch."""
        self.batches = torch.from_numpy(np.ascontiguousarray(batches, dtype=np.int64)).to(self.images.device)

    def reset(self) -> None:
        """Forget the capture (after the optimizers' state or learning rates were replaced): capture again."""
        self.graph, self.out, self.eager_calls = None, None, 0

    def _body(self) -> torch.Tensor:
        real = to_model_range(self.images.index_select(0, self.idx), self.options.output, self.options.channels_last)
        if self.mirror:
            real = random_flip(real, None)
        metrics = train_step(self.state, real, self.z, self.options, self.ema_beta, augment=self.augment)
        return torch.stack([metrics[k].float() for k in METRICS])

    def __call__(self, row: int, z_generator: torch.Generator, ema_beta: float, p: float) -> dict[str, torch.Tensor]:
        self.idx.copy_(self.batches[row])
        self.z.normal_(generator=z_generator)
        self.ema_beta.fill_(ema_beta)
        self.p.fill_(p)
        if not self.capture:
            out = self._body()
        elif self.graph is None and self.eager_calls < WARMUP_STEPS:
            out = self._warmup_step()
        elif self.graph is None and not self._capture():
            out = self._body()  # capture failed: this step and the next run eagerly
        else:
            assert self.graph is not None and self.out is not None
            self.graph.replay()
            out = self.out.clone()
        return dict(zip(METRICS, out.unbind()))

    def _warmup_step(self) -> torch.Tensor:
        # Eager steps on a side stream, so that lazily made state (cuBLAS handles, the optimizers' moments,
        # autograd's buffers) exists before capture and none of it lands in the graph's memory pool.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self._body()
        torch.cuda.current_stream().wait_stream(side)
        self.eager_calls += 1
        return out

    def _capture(self) -> bool:
        """Record the step (capture runs nothing; the replay after it does). False, with ``failure`` set,
        when the capture fails: the object then runs every step eagerly."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = self._body()
        except RuntimeError as e:
            self.failure = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.capture = False
            return False
        self.graph, self.out = graph, out
        return True
