"""What --precise-bn costs: one re-estimation of the sampling G's batch-norm statistics (sampling.precise_bn,
4,096 z) against one training step (dcgan.step at batch 64 with the device's fast defaults, as
benchmarks/throughput.py times it), at each image size, for networks of the given width.

    .venv/bin/python benchmarks/precise_bn.py                       # 28, 64 and 128 px at width 128
    .venv/bin/python benchmarks/precise_bn.py --sizes 64 --width 64

Prints seconds per step, seconds per re-estimation and their ratio: the re-estimation's cost in steps.
The trainer pays it at each checkpoint (every 1,000 steps by default), each score and the last grid, not at
progress grids. A script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dcgan.devices import cpu_model, fast_defaults, resolve_device
from dcgan.sampling import precise_bn
from throughput import DcganRunner

from example_baseline import LATENT_DIM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="28,64,128", help="image sizes, comma-separated")
    parser.add_argument("--width", type=int, default=128, help="G's and D's width (--preset best: 128)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per size (after 3 warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp, channels_last = fast_defaults(device)
    where = cpu_model() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"{where}, {torch.get_num_threads()} threads, {'bf16' if amp else 'fp32'} steps, width {args.width}")
    for size in (int(s) for s in args.sizes.split(",")):
        images = torch.randint(0, 256, (512, size, size, 3), dtype=torch.uint8, device=device)
        runner = DcganRunner(images, size, 64, amp, channels_last, device, width=args.width)
        times = []
        for i in range(3 + args.steps):
            started = time.perf_counter()
            runner.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= 3:
                times.append(time.perf_counter() - started)
        step = statistics.median(times)
        started = time.perf_counter()
        precise_bn(runner.state.ema, LATENT_DIM)  # the EMA as the trainer keeps it (layout, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        estimate = time.perf_counter() - started
        print(
            f"{size}x{size}: step {step:.3f} s (median of {args.steps}), re-estimation {estimate:.2f} s "
            f"= {estimate / step:.0f} steps",
            flush=True,
        )


if __name__ == "__main__":
    main()
