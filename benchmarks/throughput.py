"""Training throughput: dcgan's step against a baseline that trains the way pytorch/examples dcgan does.

Contenders, run in one process and interleaved in rounds (so that a change in the load of a shared
machine hits all of them alike):

  baseline     written here from scratch after pytorch/examples dcgan/main.py: every image of every
               epoch is decoded with Pillow, resized, centre-cropped and normalised in a DataLoader
               (2 workers); fp32; G ends in tanh, D in sigmoid + BCELoss; the D step on real + fake,
               then the G step reusing that fake batch.
  dcgan fast   dcgan.step on the uint8 images decoded once by the package's cache and held in memory,
               with the device's fast defaults (bf16 autocast + channels_last where the device runs
               them fast), EMA of G as the trainer keeps by default.
  dcgan fp32   the same in fp32 with the default layout (--no-amp --no-channels-last); where the fast
               defaults are bf16, also fp32 + channels_last (what --no-amp gives on a CPU).
  (CUDA only)  dcgan fast at batch 128 and 1024, and both again with the whole step in one CUDA
               graph (--cuda-graphs).

Examples:

    .venv/bin/python benchmarks/throughput.py                          # CPU: synthetic 64x64 JPEGs
    .venv/bin/python benchmarks/throughput.py --seconds 20 --rounds 2  # shorter
    .venv/bin/python benchmarks/throughput.py --isa avx2               # as on a CPU without AVX-512
    .venv/bin/python tools/idx_to_png.py /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \\
        /tmp/fmnist --count 2048 && .venv/bin/python benchmarks/throughput.py --data /tmp/fmnist
    .venv/bin/python benchmarks/throughput.py --device cuda            # GPU: batch 128, plus 1024

Warm-up steps are not timed. images/s counts every real image a contender trains on. A script that
prints numbers, not a test: compare the ratios, which a busy machine disturbs less than the rates.

Beside images/s, GFLOP/s: the floating-point operations of one training step counted from its layer
shapes (torch.utils.flop_counter over one eager step of the baseline and one of dcgan; precision and
batch do not change the count per image), times the rate; on a CPU also its share of the peak for that
precision (see `cpu_peak`).

--isa avx2 runs the whole benchmark as on a CPU without AVX-512: it restarts itself with oneDNN capped
(ONEDNN_MAX_CPU_ISA=AVX2) and PyTorch's own kernels too (ATEN_CPU_CAPABILITY=avx2), so that dcgan's
defaults see what such a CPU offers (fp32; no native bf16).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.flop_counter import FlopCounterMode

from dcgan.config import DataConfig, ModelConfig, model_spec
from dcgan.dataset import EpochSampler, prepare_dataset
from dcgan.devices import cpu_has_fast_bf16, cpu_model, cpu_seconds, fast_defaults, resolve_device
from dcgan.graphs import StepGraph
from dcgan.models import build_models
from dcgan.step import GanState, StepOptions, ema_beta_at, to_model_range, train_step

from example_baseline import CHANNELS, LATENT_DIM, WIDTH, BaselineRunner, example_stages, list_images


# --- data --------------------------------------------------------------------------------------------
def write_synthetic_folder(folder: Path, count: int, size: int, seed: int = 0) -> None:
    """count photo-like RGB JPEGs (gradient sky, blurred shapes, sensor noise) of size x size pixels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    for i in range(count):
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        pixels = (top * (1 - ramp) + bottom * ramp) * np.ones((1, size, 1), np.float32)  # (H, W, 3)
        image = Image.fromarray(pixels.astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(2, 6)):
            x0, y0 = rng.uniform(-0.2, 0.9, 2) * size
            x1, y1 = x0 + rng.uniform(0.1, 0.6) * size, y0 + rng.uniform(0.1, 0.6) * size
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(radius=size / 64))
        noisy = np.asarray(image, np.float32) + rng.normal(0, 6, (size, size, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(folder / f"{i:05d}.jpg", quality=90)


# --- dcgan -----------------------------------------------------------------------------------------------
class DcganRunner:
    """dcgan.step on uint8 images held in memory (on the GPU when there is one), as the trainer feeds it."""

    def __init__(
        self,
        images: torch.Tensor,
        image_size: int,
        batch_size: int,
        amp: bool,
        channels_last: bool,
        device: torch.device,
        seed: int = 0,
        graphs: bool = False,
        simultaneous: bool = False,
        width: int = WIDTH,
    ) -> None:
        self.images, self.device, self.batch_size = images, device, batch_size
        torch.manual_seed(seed)
        model = ModelConfig(
            image_size=image_size, channels=CHANNELS, latent_dim=LATENT_DIM, g_width=width, d_width=width
        )
        generator, discriminator = build_models(model_spec(model))
        ema = copy.deepcopy(generator).eval().requires_grad_(False)  # the trainer keeps an EMA of G by default
        layout = torch.channels_last if channels_last else torch.contiguous_format
        for net in (generator, discriminator, ema):
            net.to(device, memory_format=layout)
        adam = {"lr": 2e-4, "betas": (0.5, 0.999), "capturable": graphs}
        self.state = GanState(
            generator=generator,
            discriminator=discriminator,
            ema=ema,
            opt_g=torch.optim.Adam(generator.parameters(), **adam),
            opt_d=torch.optim.Adam(discriminator.parameters(), **adam),
        )
        self.options = StepOptions(
            loss="bce", output="tanh", amp=amp, channels_last=channels_last, simultaneous=simultaneous
        )
        self.sampler = EpochSampler(images.shape[0], batch_size, seed)
        self.z_gen = torch.Generator(device=device).manual_seed(seed)
        self.steps = 0
        # --cuda-graphs: the trainer's whole-step graph (warm-up steps, then capture, then replays).
        self.graph = (
            StepGraph(self.state, self.options, images, batch_size, LATENT_DIM, None, False, capture=True)
            if graphs
            else None
        )

    def step(self) -> int:
        """One D and one G update, as the trainer's step; returns the batch size."""
        if self.graph is not None:
            if self.sampler.batch == 0 or self.steps == 0:
                self.graph.set_epoch(self.sampler.epoch_batches())
            row = self.sampler.batch
            self.sampler.next()
            self.graph(row, self.z_gen, ema_beta_at(self.steps, 0.999), 0.0)
            self.steps += 1
            return self.batch_size
        idx = torch.from_numpy(self.sampler.next()).to(self.device)
        real = to_model_range(self.images[idx], self.options.output, self.options.channels_last)
        b = real.shape[0]  # fewer than the batch size only when the folder is smaller
        z = torch.randn(b, LATENT_DIM, generator=self.z_gen, device=self.device)
        train_step(self.state, real, z, self.options, ema_beta_at(self.steps, 0.999))
        self.steps += 1
        return b

    def workers(self) -> list[int]:
        return []


# --- operations and the machine's peak ----------------------------------------------------------------
def step_flops(runner: BaselineRunner | DcganRunner) -> float:
    """Floating-point operations of one training step per image, counted from the layer shapes (a
    multiply-add counts 2) over one real step. dcgan's step: G forward, D forward and backward on real and
    fake, D forward and backward to its input for G's update (D's weight gradients are not computed
    there), G backward. The example's G update also computes D's weight gradients, and so counts more.
    Element-wise work is not counted."""
    with FlopCounterMode(display=False) as counter:
        b = runner.step()
    return counter.get_total_flops() / b


def cpu_peak(amp: bool, threads: int) -> tuple[float, str]:
    """(peak FLOP/s, how it was derived) for this CPU in fp32 (amp False) or bf16, for ``threads`` cores.

    threads x clock x FLOP per cycle and core, where the clock is /proc/cpuinfo's "cpu MHz" (the nominal
    clock a VM reports; turbo can run above it, so a share above 100% is possible) and FLOP per cycle is:
    fp32 with two FMA units (Intel Xeon Scalable since Skylake, AMD Zen 2 and later): 2 units x 2 (multiply
    and add) x lanes, with 16 fp32 lanes under AVX-512 and 8 under AVX2 (the ISA PyTorch dispatches to);
    bf16 with AMX: 1,024 (one 16x16x32 TDPBF16PS tile product, 8,192 multiply-adds, every 16 cycles, as
    Intel's optimisation manual gives for Sapphire Rapids); bf16 with AVX-512 BF16 only: 128 (VDPBF16PS,
    32 multiply-adds per 512-bit instruction, two per cycle)."""
    mhz = 0.0
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
        flags = info
        mhz = next(float(line.split(":", 1)[1]) for line in info.splitlines() if line.startswith("cpu MHz"))
    except (OSError, StopIteration, ValueError):
        pass
    isa = torch.backends.cpu.get_cpu_capability()  # "AVX512", "AVX2", ... (ATEN_CPU_CAPABILITY caps it)
    if amp and cpu_has_fast_bf16():
        per_cycle, how = (1024, "AMX-BF16: 1,024") if "amx_bf16" in flags else (128, "AVX-512 BF16: 128")
    else:
        lanes = 16 if isa.startswith("AVX512") else 8 if isa.startswith("AVX2") else 4
        per_cycle, how = 4 * lanes, f"fp32 {isa}: 2 FMA units x 2 x {lanes} lanes = {4 * lanes}"
    if not mhz:
        return float("nan"), "peak unknown (no cpu MHz in /proc/cpuinfo)"
    peak = threads * mhz * 1e6 * per_cycle
    return peak, f"{threads} core(s) x {mhz / 1000:.2f} GHz x {how} FLOP/cycle = {peak / 1e9:.0f} GFLOP/s"


# --- measuring -------------------------------------------------------------------------------------------
def _status_kib(pid: int | str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> None:
    """Start a new peak-RSS window for this process (Linux >= 4.0; elsewhere the peak stays cumulative)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


@dataclass
class Contender:
    """One way of training and what was measured of it."""

    name: str
    make: Callable[[], BaselineRunner | DcganRunner]
    batch_size: int
    cudnn_benchmark: bool = False  # the example turns it on; dcgan leaves PyTorch's default (off)
    runner: BaselineRunner | DcganRunner | None = None
    images: int = 0
    seconds: float = 0.0
    step_rates: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0
    worker_peak_kib: int = 0
    cuda_peak: int = 0
    amp: bool = False  # bf16 autocast (for the peak it is compared with)
    flops_per_image: float = float("nan")

    def run(self, device: torch.device, seconds: float | None, steps: int | None, timed: bool = True) -> None:
        """Run for `seconds` (or `steps` steps); timed runs add to the totals."""
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.runner is None:
            self.runner = self.make()
        _reset_peak_rss()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = last = time.perf_counter()
        done = images = 0
        while (steps is not None and done < steps) or (steps is None and last - start < seconds):
            b = self.runner.step()
            now = time.perf_counter()
            if timed and device.type == "cpu":  # on a GPU a step returns before it has run
                self.step_rates.append(b / (now - last))
            images, done, last = images + b, done + 1, now
        if device.type == "cuda":
            torch.cuda.synchronize()
            last = time.perf_counter()
            if timed:
                self.step_rates.append(images / (last - start))  # one rate per round: the GPU's steps overlap
        if timed:
            self.images += images
            self.seconds += last - start
        self.peak_rss_kib = max(self.peak_rss_kib, _status_kib("self", "VmHWM"))
        for pid in self.runner.workers():
            self.worker_peak_kib = max(self.worker_peak_kib, _status_kib(pid, "VmHWM"))
        if device.type == "cuda":
            self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated())

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else float("nan")

    @property
    def median_rate(self) -> float:
        return statistics.median(self.step_rates) if self.step_rates else float("nan")


def describe_device(device: torch.device) -> str:
    """CPU model, torch version and threads; the GPU when there is one."""
    cpu = cpu_model()
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
        flags = " ".join(sorted({w for w in info.split() if w in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}))
    except OSError:
        pass
    text = (
        f"device: {device}; CPU: {cpu} ({os.cpu_count()} logical cores; {flags or 'flags unknown'}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; Python {platform.python_version()}"
    )
    if device.type == "cuda":
        text += f"\nGPU: {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a folder of PNG/JPEG images; default: synthetic photo-like JPEGs in a temp folder",
    )
    parser.add_argument("--num-images", type=int, default=1024, help="synthetic images to write (default 1024)")
    parser.add_argument(
        "--source-size",
        type=int,
        default=None,
        help="pixel size of the synthetic files (default: --image-size; larger makes the "
        "baseline's per-epoch decode and resize cost more)",
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 on CPU, 128 on GPU")
    parser.add_argument("--seconds", type=float, default=45.0, help="timed seconds per contender (default 45)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per contender instead of --seconds")
    parser.add_argument(
        "--rounds", type=int, default=3, help="the timed budget is split into this many rounds, contenders taking turns"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per contender first (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="the baseline's DataLoader workers (default 2)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for every contender (default: torch's own choice)",
    )
    parser.add_argument(
        "--simultaneous",
        action="store_true",
        help="add dcgan fast with --simultaneous (one D pass on the fakes serves D's and G's update)",
    )
    parser.add_argument(
        "--isa",
        choices=("native", "avx2"),
        default="native",
        help="avx2: run as on a CPU without AVX-512 (oneDNN and PyTorch kernels capped at AVX2; see above)",
    )
    return parser.parse_args(argv)


AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def run_as_isa(isa: str, script: str) -> None:
    """With isa "avx2", restart ``script`` (this process's arguments) with both caps set, unless they are:
    both are read when PyTorch first dispatches, so they cannot be set from inside a running process."""
    if isa == "avx2" and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        os.execve(sys.executable, [sys.executable, script, *sys.argv[1:]], {**os.environ, **AVX2_ENV})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_as_isa(args.isa, __file__)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type not in ("cpu", "cuda"):
        device = torch.device("cpu")
    batch = args.batch_size or (128 if device.type == "cuda" else 64)
    size = args.image_size
    example_stages(size)
    tmp = Path(tempfile.mkdtemp(prefix="dcgan-throughput-"))
    try:
        t0 = time.perf_counter()
        if args.data is None:
            folder = tmp / "images"
            write_synthetic_folder(folder, args.num_images, args.source_size or size)
            what = (
                f"{args.num_images} synthetic photo-like RGB JPEGs (quality 90) of "
                f"{args.source_size or size}x{args.source_size or size} px, written with Pillow"
            )
        else:
            folder = args.data
            what = str(folder)
        files = list_images(folder)
        if not files:
            raise SystemExit(f"no .png/.jpg/.jpeg files in {folder}")
        sizes = set()
        for path in files[:50]:
            with Image.open(path) as f:
                sizes.add(f.size)
        print(
            f"data: {len(files)} files from {what}; first sizes {sorted(sizes)[:3]}; "
            f"written in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

        # dcgan decodes once into its cache; the baseline pays that decode every epoch instead.
        t0 = time.perf_counter()
        prepared = prepare_dataset(
            folder, size, DataConfig(cache_dir=str(tmp / "cache")), channels=CHANNELS, progress=False
        )
        decode_s = time.perf_counter() - t0
        images = torch.from_numpy(np.array(prepared.images)).to(device)  # (N, S, S, C) uint8, in memory
        print(
            f"dcgan cache: {tuple(images.shape)} uint8 decoded once in {decode_s:.1f} s (not in the timings below)",
            flush=True,
        )
        amp, channels_last = fast_defaults(device)
        fast_name = f"dcgan fast ({'bf16' if amp else 'fp32'}{' + channels_last' if channels_last else ''})"

        contenders = [
            Contender(
                f"baseline (example, fp32, {args.workers} workers)",
                lambda: BaselineRunner(files, size, batch, args.workers, device),
                batch,
                cudnn_benchmark=True,
            ),
            Contender(fast_name, lambda: DcganRunner(images, size, batch, amp, channels_last, device), batch, amp=amp),
            Contender(
                "dcgan fp32 (default layout)", lambda: DcganRunner(images, size, batch, False, False, device), batch
            ),
        ]
        if amp and device.type == "cpu":
            contenders.append(
                Contender(
                    "dcgan fp32 + channels_last (--no-amp)",
                    lambda: DcganRunner(images, size, batch, False, True, device),
                    batch,
                )
            )
        if args.simultaneous:
            contenders.append(
                Contender(
                    f"{fast_name[:-1]}, --simultaneous)",
                    lambda: DcganRunner(images, size, batch, amp, channels_last, device, simultaneous=True),
                    batch,
                    amp=amp,
                )
            )
        if device.type == "cuda":
            contenders += [
                Contender(f"{fast_name}", lambda b=b: DcganRunner(images, size, b, amp, channels_last, device), b)
                for b in (128, 1024)
                if b != batch
            ]
            contenders += [
                Contender(
                    f"{fast_name} + CUDA graph",
                    lambda b=b: DcganRunner(images, size, b, amp, channels_last, device, graphs=True),
                    b,
                )
                for b in (128, 1024)
            ]
        print(
            describe_device(device)
            + ("; --isa avx2: " + " ".join(f"{k}={v}" for k, v in AVX2_ENV.items()) if args.isa == "avx2" else "")
        )
        print(
            f"image size {size}, batch {batch}, warm-up {args.warmup} step(s), then "
            + (f"{args.steps} timed steps" if args.steps else f"{args.seconds:g} timed s")
            + f" per contender in {args.rounds} round(s)",
            flush=True,
        )

        startup_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before the peak windows start
        for c in contenders:
            c.run(device, None, args.warmup, timed=False)
        # Counted on eager steps: a CUDA graph's replay dispatches no operators to count.
        base_flops, dcgan_flops = step_flops(contenders[0].runner), step_flops(contenders[1].runner)
        simultaneous_flops = next(
            (
                step_flops(c.runner)
                for c in contenders
                if isinstance(c.runner, DcganRunner) and c.runner.options.simultaneous
            ),
            float("nan"),
        )
        for c in contenders:
            if isinstance(c.runner, BaselineRunner):
                c.flops_per_image = base_flops
            else:
                c.flops_per_image = simultaneous_flops if c.runner.options.simultaneous else dcgan_flops
        rounds = max(1, args.rounds)
        wall0, (busy0, own0) = time.perf_counter(), cpu_seconds()
        for r in range(rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for c in order:
                steps = None if args.steps is None else math.ceil(args.steps / rounds)
                c.run(device, args.seconds / rounds, steps)
            print(
                f"after round {r + 1}/{rounds}: "
                + ", ".join(f"{c.name.split(' (')[0]}@{c.batch_size} {c.rate:.1f} img/s" for c in contenders),
                flush=True,
            )

        (busy1, own1), wall = cpu_seconds(), time.perf_counter() - wall0
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
        print(
            f"other processes kept {others:.1f} of {os.cpu_count()} cores busy during the timed rounds"
            + (" (a busy machine: compare ratios, or try --threads 1)" if others > 0.25 else ""),
            flush=True,
        )
        base = contenders[0]
        mem_head = "peak CUDA MiB" if device.type == "cuda" else "peak RSS MiB (workers)"
        print(
            f"\n{'contender':46} {'batch':>5} {'steps':>5} {'images/s':>9} {'median':>8} {'x base':>7} "
            f"{'x base med':>10} {'GFLOP/s':>8} {'of peak':>7}  {mem_head}"
        )
        peaks = {c.amp: cpu_peak(c.amp, torch.get_num_threads()) for c in contenders} if device.type == "cpu" else {}
        for c in contenders:
            mem = (
                f"{c.cuda_peak / 2**20:.0f}"
                if device.type == "cuda"
                else f"{c.peak_rss_kib / 1024:.0f}"
                + (f" ({c.worker_peak_kib / 1024:.0f} each)" if c.worker_peak_kib else "")
            )
            print(
                f"{c.name:46} {c.batch_size:>5} {len(c.step_rates):>5} {c.rate:>9.1f} {c.median_rate:>8.1f} "
                f"{c.rate / base.rate:>7.2f} {c.median_rate / base.median_rate:>10.2f} "
                f"{c.rate * c.flops_per_image / 1e9:>8.1f} "
                + (f"{c.rate * c.flops_per_image / peaks[c.amp][0]:>7.0%}" if peaks else f"{'':>7}")
                + f"  {mem}"
            )
        print(
            f"\none step counts {contenders[1].flops_per_image / 1e9:.2f} GFLOP per image in dcgan, "
            f"{base.flops_per_image / 1e9:.2f} in the baseline (layer shapes; multiply-add = 2)"
            + (f", {simultaneous_flops / 1e9:.2f} with --simultaneous" if args.simultaneous else "")
        )
        for amp_on, (_, how) in peaks.items():
            print(f"peak {'bf16' if amp_on else 'fp32'}: {how}")
        fast = contenders[1]
        print(
            f"\nratio {fast.name} / baseline: {fast.rate / base.rate:.2f}x "
            f"(median step: {fast.median_rate / base.median_rate:.2f}x)"
        )
        for c in (c for c in contenders if c.name.startswith("dcgan fp32")):
            print(
                f"ratio {c.name} / baseline: {c.rate / base.rate:.2f}x "
                f"(median step: {c.median_rate / base.median_rate:.2f}x)"
            )
        self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(
            f"peak RSS: process {max([self_kib, startup_kib] + [c.peak_rss_kib for c in contenders]) / 1024:.0f} MiB, "
            f"largest child {child_kib / 1024:.0f} MiB (DataLoader workers and cache decoders; "
            "forked pages shared with the parent count in each)"
        )
        print(
            "images/s: all timed images over all timed seconds; median: the median of per-step rates "
            "(per-round on a GPU), steadier on a busy machine. Per-contender peak RSS is the whole process while "
            "it ran."
        )
    finally:
        for c in locals().get("contenders", []):
            c.runner = None  # stops the DataLoader workers before their folder goes
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
