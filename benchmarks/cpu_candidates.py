"""Candidates for the fp32 CPU step, measured against each other in one process (issue 28).

Every candidate is dcgan's training step (benchmarks/throughput.py's DcganRunner: 64x64, batch 64,
width 64, EMA of G) on the same random uint8 images, in fp32. They take turns in short rounds (a few
steps each, the order alternating), so that the load of a shared machine hits all of them alike; the
verdict is the median of the per-round rates and the per-round ratios to the first candidate.

  contiguous       PyTorch's default memory layout (what --no-channels-last gives)
  channels_last    the CPU default since issue 28
  fused_adam       channels_last with Adam(fused=True)
  simultaneous     channels_last with --simultaneous (one D pass on the fakes serves both updates)
  compile          channels_last with G and D through torch.compile (inductor; needs a C++ compiler;
                   its first steps compile, timed separately). Only with --compile: it costs minutes.

Examples:

    .venv/bin/python benchmarks/cpu_candidates.py
    .venv/bin/python benchmarks/cpu_candidates.py --isa avx2 --rounds 12   # as on a CPU without AVX-512
    .venv/bin/python benchmarks/cpu_candidates.py --compile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from throughput import AVX2_ENV, DcganRunner, describe_device, run_as_isa

Candidate = Callable[[torch.Tensor], DcganRunner]


def _runner(images: torch.Tensor, channels_last: bool, simultaneous: bool = False) -> DcganRunner:
    return DcganRunner(
        images,
        images.shape[1],
        64,
        amp=False,
        channels_last=channels_last,
        device=torch.device("cpu"),
        simultaneous=simultaneous,
    )


def _fused(images: torch.Tensor) -> DcganRunner:
    runner = _runner(images, True)
    for opt in (runner.state.opt_g, runner.state.opt_d):
        for group in opt.param_groups:
            group["fused"] = True
    return runner


def _compiled(images: torch.Tensor) -> DcganRunner:
    runner = _runner(images, True)
    runner.state.generator = torch.compile(runner.state.generator)
    runner.state.discriminator = torch.compile(runner.state.discriminator)
    return runner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=3, help="steps per candidate per round (default 3)")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile candidate")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native")
    args = parser.parse_args(argv)
    run_as_isa(args.isa, __file__)

    torch.manual_seed(0)
    images = torch.randint(0, 256, (1024, 64, 64, 3), dtype=torch.uint8)
    makers: dict[str, Candidate] = {
        "contiguous": lambda x: _runner(x, False),
        "channels_last": lambda x: _runner(x, True),
        "fused_adam": _fused,
        "simultaneous": lambda x: _runner(x, True, simultaneous=True),
    }
    if args.compile:
        makers["compile"] = _compiled
    print(describe_device(torch.device("cpu")) + (f"; --isa avx2: {AVX2_ENV}" if args.isa == "avx2" else ""))
    runners = {}
    for name, make in makers.items():
        t0 = time.perf_counter()
        runners[name] = make(images)
        for _ in range(2):
            runners[name].step()
        print(f"{name}: built and 2 warm-up steps in {time.perf_counter() - t0:.1f} s", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners.items())
    for r in range(args.rounds):
        for name, runner in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            images_done = sum(runner.step() for _ in range(args.steps))
            rates[name].append(images_done / (time.perf_counter() - t0))
    first = next(iter(rates))
    print(f"\n{'candidate':14} {'median img/s':>12} {'x ' + first:>14}  per-round ratios")
    for name, values in rates.items():
        ratios = [a / b for a, b in zip(values, rates[first])]
        print(
            f"{name:14} {statistics.median(values):>12.1f} {statistics.median(ratios):>14.2f}  "
            + " ".join(f"{x:.2f}" for x in ratios)
        )


if __name__ == "__main__":
    sys.exit(main())
