"""Fashion-MNIST FID with the protocol of Lucic et al. 2018 ("Are GANs Created Equal?").

Train at 28x28 grayscale on the 60,000 training images for 15,625 generator steps at batch 64, then
FID of 10,000 samples (seeds 0..9999) against the 10,000 test images. Also the floor: FID of the first
10,000 training images against the test set, what a generator of perfect copies of the training data
would score at this sample size. KID (with its std over 100 subsets of 1,000) is printed beside FID.

Everything goes through the package's Python API (dcgan.build_config, dcgan.train, dcgan.load) and
dcgan.metrics. The PNG folders and the runs live under --work (default runs/fashion-mnist); a finished
run is evaluated again without training, an interrupted one resumes. Decoded images and the features
of the image folders are cached (``$DCGAN_CACHE``, default ~/.cache/dcgan), so the test set's
features are computed once.

    python benchmarks/fashion_mnist.py --device cuda                              # the protocol, seed 0
    python benchmarks/fashion_mnist.py --device cuda --loss lsgan --seeds 0,1,2
    python benchmarks/fashion_mnist.py --device cpu --steps 20 -n 100 --real-n 100    # a smoke run
    python benchmarks/fashion_mnist.py --floor-only                 # 10,000 training images vs the test set

--steps, -n and --real-n below the protocol's values make numbers that are not comparable with it
(FID is biased upward at small n); the result lines say what was used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import dcgan  # noqa: E402
from dcgan import metrics  # noqa: E402
from dcgan.checkpoint import CheckpointError  # noqa: E402
from dcgan.config import Loss  # noqa: E402
from dcgan.devices import resolve_device  # noqa: E402
from dcgan.seeds import parse_seeds  # noqa: E402

from idx_to_png import export  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")
TRAIN_FILE, TEST_FILE = "train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"
TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000
IMAGE_SIZE = 28
SAMPLE_CHUNK = 500


def device_name(name: str) -> str:
    import torch

    device = resolve_device(name)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def png_folder(idx_file: Path, folder: Path, count: int) -> Path:
    """The idx file as count PNG files, exported once."""
    if len(list(folder.glob("*.png"))) != count:
        start = time.perf_counter()
        export(idx_file, folder, 0, count)
        print(f"exported {count} images to {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return folder


def train_run(train_dir: Path, run_dir: Path, config) -> tuple[float, str]:
    """Train to config.steps (resuming a run cut short); (wall seconds, what happened)."""
    try:
        done = dcgan.load(run_dir).info["step"]
    except CheckpointError:
        done = None
    if done is not None and done >= config.steps:
        return 0.0, f"already trained ({done} steps)"
    start = time.perf_counter()
    dcgan.train(train_dir, run_dir, config, resume=done is not None)
    return time.perf_counter() - start, "resumed" if done is not None else "trained"


def sample_features(run_dir: Path, extractor, n: int, device: str, ema: bool) -> np.ndarray:
    """Features of n samples, seeds 0..n-1."""
    gen = dcgan.load(run_dir, device=device, ema=ema)
    chunks = [extractor(gen.images(seeds=range(s, min(n, s + SAMPLE_CHUNK)))) for s in range(0, n, SAMPLE_CHUNK)]
    return np.concatenate(chunks)


def line(label: str, result: dict, what: str, details: str, device: str) -> str:
    return (
        f"{label}: FID {result['fid']:.3f}  KID {result['kid']:.5f} +- {result['kid_std']:.5f}  "
        f"({result['n_a']} {what} vs {result['n_b']} test images; {details}; device {device})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--data", default=str(DATA), help="folder with the Fashion-MNIST idx files")
    parser.add_argument(
        "--work",
        default=str(ROOT / "runs" / "fashion-mnist"),
        help="PNG folders and runs (default: runs/fashion-mnist)",
    )
    parser.add_argument("--loss", default="bce", choices=get_args(Loss))
    parser.add_argument("--seeds", "--seed", default="0", help="training seeds, e.g. 0 or 0,1,2 or 0-4 (default: 0)")
    parser.add_argument("--steps", type=int, default=15_625, help="generator steps (default: 15625)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-ema", action="store_true", help="evaluate the raw generator instead of its EMA")
    parser.add_argument("--no-amp", action="store_true", help="train in fp32 (default: the device's fast settings)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default: auto)")
    parser.add_argument("-n", type=int, default=10_000, help="samples (and training images for the floor)")
    parser.add_argument("--real-n", type=int, default=TEST_IMAGES, help="test images (default: all 10000)")
    parser.add_argument("--no-floor", action="store_true", help="skip the training-set floor")
    parser.add_argument("--floor-only", action="store_true", help="only the floor: no training, no samples")
    parser.add_argument("--no-score", action="store_true", help="train only; a later call (same flags) scores the runs")
    parser.add_argument(
        "--inception", default=None, help="TorchScript feature extractor (default: the metrics extra's Inception)"
    )
    parser.add_argument("--fid-batch-size", type=int, default=50, help="images per Inception forward pass")
    args = parser.parse_args()

    if args.no_floor and args.floor_only:
        parser.error("--no-floor and --floor-only exclude each other")
    try:
        seeds = [] if args.floor_only else parse_seeds(args.seeds)
        extractor = metrics.InceptionFeatures(args.inception, device=args.device, batch_size=args.fid_batch_size)
    except (ValueError, metrics.MetricsError) as e:
        sys.exit(f"fashion_mnist.py: {e}")
    device = device_name(args.device)
    work, data = Path(args.work), Path(args.data)
    train_dir = png_folder(data / TRAIN_FILE, work / "train", TRAIN_IMAGES)
    test_dir = png_folder(data / TEST_FILE, work / "test", TEST_IMAGES)
    runs = {}
    for seed in seeds:
        config = dcgan.build_config(
            {
                "model.image_size": IMAGE_SIZE,
                "model.channels": 1,
                "loss": args.loss,
                "seed": seed,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "device": args.device,
                **({"amp": False} if args.no_amp else {}),
            }
        )
        suffix = "-fp32" if args.no_amp else ""
        run_dir = work / f"{args.loss}-seed{seed}-batch{args.batch_size}-steps{args.steps}{suffix}"
        runs[seed] = (run_dir, *train_run(train_dir, run_dir, config))
        print(f"seed {seed}: {runs[seed][2]} in {runs[seed][1]:.0f} s ({run_dir.name}; device {device})", flush=True)
    if args.no_score:
        return

    start = time.perf_counter()
    test = metrics.folder_features(test_dir, extractor, IMAGE_SIZE, limit=args.real_n)
    test_s = time.perf_counter() - start
    print(
        f"test features: {len(test.features)} images in {test_s:.1f} s"
        + (" (from the cache)" if test.cached else f" ({len(test.features) / test_s:.2f} images/s)")
        + f"; device {device}",
        flush=True,
    )

    if not args.no_floor:
        start = time.perf_counter()
        floor = metrics.folder_features(train_dir, extractor, IMAGE_SIZE, limit=args.n)
        features_s = time.perf_counter() - start
        start = time.perf_counter()
        result = metrics.scores(floor.features, test.features, kid_subset_size=1000)
        print(
            line(
                "floor",
                result,
                "training images",
                f"features {features_s:.1f} s{' (cached)' if floor.cached else ''}, "
                f"FID+KID {time.perf_counter() - start:.1f} s",
                device,
            ),
            flush=True,
        )

    fids = []
    for seed, (run_dir, train_s, how) in runs.items():
        start = time.perf_counter()
        fake = sample_features(run_dir, extractor, args.n, args.device, ema=not args.no_ema)
        features_s = time.perf_counter() - start
        start = time.perf_counter()
        result = metrics.scores(fake, test.features, kid_subset_size=1000)
        fids.append(result["fid"])
        weights = "raw" if args.no_ema else "ema"
        precision = "fp32" if args.no_amp else "fast defaults"
        label = f"loss={args.loss} seed={seed} steps={args.steps} batch={args.batch_size} G={weights} {precision}"
        print(
            line(
                label,
                result,
                "samples",
                f"{how} in {train_s:.0f} s, sample features {features_s:.1f} s, "
                f"FID+KID {time.perf_counter() - start:.1f} s",
                device,
            ),
            flush=True,
        )
    if len(fids) > 1:
        print(
            f"loss={args.loss} over {len(fids)} seeds: FID {statistics.mean(fids):.3f} "
            f"+- {statistics.stdev(fids):.3f} (min {min(fids):.3f}, max {max(fids):.3f})"
        )


if __name__ == "__main__":
    main()
