"""Multi-process training under torchrun: the process group, reductions, and batch norm synced over ranks.

Without torchrun's environment variables everything here is a no-op for a single process.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """Where this process stands among the others (world 1: no distribution)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    restarts: int = 0  # torchrun's elastic restart count: > 0 means resume

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistContext:
        """Read torchrun's variables (WORLD_SIZE, RANK, LOCAL_RANK, TORCHELASTIC_RESTART_COUNT)."""
        env = os.environ
        return cls(
            world=int(env.get("WORLD_SIZE", "1")),
            rank=int(env.get("RANK", "0")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            restarts=int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
        )


def init(ctx: DistContext, device: torch.device) -> torch.device:
    """Join the process group (NCCL on GPUs, gloo on CPUs) and return this rank's device."""
    if not ctx.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # torchrun's agent keeps one key-value store across elastic restarts; a fresh prefix per restart keeps
        # the new workers from reading the addresses the dead ones left there.
        store, rank, world = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"dcgan-restart-{ctx.restarts}", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    return device


def shutdown(ctx: DistContext, clean: bool = True) -> None:
    """Leave the process group; after a clean finish, wait for every rank first (gloo aborts otherwise).

    The caller drops its DistributedDataParallel wrappers first; collecting them here lets the group's C++
    object (and gloo's worker threads) go now, while Python is alive, instead of during interpreter exit.
    """
    if ctx.enabled and dist.is_initialized():
        if clean:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_mean(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (the tensor itself for one process)."""
    if not ctx.enabled:
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out / ctx.world


class SyncBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose statistics cover the whole global batch, on CPU (gloo) as on GPU.

    PyTorch's own SyncBatchNorm runs on CUDA only; this one sums (count, sum, sum of squares) over ranks
    with an autograd-aware all-reduce, so gradients also see the global statistics.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import warnings

        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        xf = x.float()
        count = torch.full((1,), xf.numel() / c, device=x.device, dtype=torch.float32)
        with warnings.catch_warnings():  # deprecated in favour of a private API; still the public autograd one
            warnings.simplefilter("ignore", FutureWarning)
            stats = all_reduce(torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        assert self.running_mean is not None and self.running_var is not None and self.num_batches_tracked is not None
        momentum = 0.1 if self.momentum is None else self.momentum
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), momentum)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        return (y * self.weight[None, :, None, None] + self.bias[None, :, None, None]).to(x.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d for SyncBatchNorm2d in place, keeping weights and statistics (and names)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SyncBatchNorm2d):
            synced = SyncBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced.to(child.weight.device))
        else:
            sync_batchnorm(child)
    return module
