"""Choosing the device and the fastest safe numeric settings for it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


class DeviceError(Exception):
    """The requested device is not available here."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA GPU is visible to PyTorch here (try --device auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("--device mps: Apple's Metal backend is not available here (try --device auto)")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fast_defaults(device: torch.device) -> tuple[bool, bool]:
    """(amp, channels_last) that run fastest on this device without costing quality."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(), True
    if device.type == "cpu":
        fast = cpu_has_fast_bf16()
        return fast, fast
    return False, False


def busy_cores_hint(load: float, cores: int, threads: int) -> str | None:
    """A hint to train with fewer threads when other processes already keep cores busy, or None.

    ``load`` is the 1-minute load average taken before training starts, so it counts other jobs. Threads
    that share cores with them wait on each other at every operator: on this project's 2-core machine with
    two one-thread jobs running, ``dcgan train`` on the shipped sample made 183 images/s with 2 threads and
    513 with 1 (BENCHMARKS.md, "Threads on a busy machine").
    """
    busy = int(load + 0.5)
    if busy < 1 or threads < 2 or threads + busy <= cores:
        return None
    fewer = max(1, min(threads, cores) - busy)
    return (f"note: other processes keep about {busy} of {cores} cores busy and training would use {threads} "
            f"threads; if steps are slow, try --threads {fewer}")


def cpu_load() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """PyTorch's intra-op thread count (process-wide) set to ``threads`` inside the block, restored after;
    None leaves it alone."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
