"""Choosing the device and the fastest safe numeric settings for it."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

from .errors import UserError
from .plan import Machine, fast_amp, fast_layout


class DeviceError(UserError):
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
    if name not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device must be auto, cpu, cuda or mps, got {name!r}")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX) and oneDNN may use it; elsewhere
    bf16 is emulated and slow.

    oneDNN's own check follows ``ONEDNN_MAX_CPU_ISA``: with the ISA capped at AVX2 (as a CPU without AVX-512
    is, and as ``benchmarks/throughput.py --isa avx2`` emulates one) dcgan's bf16 step ran 2.2 images/s
    against 35 in fp32 on this project's 2-core Xeon (BENCHMARKS.md, "fp32 on CPUs without AVX-512 BF16")."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    onednn_check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(onednn_check()) if onednn_check is not None else True


def cpu_model() -> str:
    """The CPU's model name (Linux), or the platform's processor string."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_kind() -> str:
    """The CPU's model and whether it computes bf16 natively: what every speed number is printed beside."""
    return f"{cpu_model()}, {'native bf16 (AVX-512 BF16 or AMX)' if cpu_has_fast_bf16() else 'no native bf16 (fp32)'}"


def machine(device: torch.device, processes: int = 1) -> Machine:
    """The facts of this device that a run's plan depends on."""
    if device.type == "cuda":
        fast = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        fast = cpu_has_fast_bf16()
    else:
        fast = False
    return Machine(device=device.type, fast_bf16=fast, threads=torch.get_num_threads(), processes=processes)


def fast_defaults(device: torch.device) -> tuple[bool, bool]:
    """(amp, channels_last) that run fastest on this device without costing quality (as a plan decides them)."""
    m = machine(device)
    amp = fast_amp(m)
    return amp, fast_layout(m, amp)


def busy_cores_hint(busy: float, cores: int, threads: int) -> str | None:
    """A hint to train with fewer threads when other processes keep ``busy`` cores busy, or None.

    Threads that share cores with other jobs wait on each other at every operator: on this project's
    2-core machine with two one-thread jobs running, ``dcgan train`` on the shipped sample made 183
    images/s with 2 threads and 513 with 1 (BENCHMARKS.md, "Threads on a busy machine").
    """
    taken = int(busy + 0.5)
    if taken < 1 or threads < 2 or threads + taken <= cores:
        return None
    fewer = max(1, min(threads, cores) - taken)
    return (
        f"note: other processes keep about {taken} of {cores} cores busy and training would use {threads} "
        f"threads; if steps are slow, try --threads {fewer}"
    )


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine since boot, CPU seconds of this process and its reaped
    children). Linux only: OSError elsewhere."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    t = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system


class OthersBusy:
    """Cores that other processes keep busy, measured from construction to :meth:`cores`.

    Measured rather than read from the load average, which still counts jobs that ended in the last
    minute (a pip install, an earlier run). Our own CPU time (threads and reaped children) is subtracted,
    so the window can span start-up work such as decoding the data, and costs no waiting when it does."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        try:
            self._cpu: tuple[float, float] | None = cpu_seconds()
        except (OSError, ValueError, IndexError):
            self._cpu = None

    def cores(self, min_window: float = 0.25) -> float:
        """The average over at least ``min_window`` seconds since construction (0.0 where unknown)."""
        if self._cpu is None:
            return 0.0
        time.sleep(max(0.0, min_window - (time.perf_counter() - self._start)))
        try:
            busy1, own1 = cpu_seconds()
        except (OSError, ValueError, IndexError):
            return 0.0
        busy0, own0 = self._cpu
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (time.perf_counter() - self._start)


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
