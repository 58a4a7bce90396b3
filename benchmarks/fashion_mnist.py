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
    python benchmarks/fashion_mnist.py --seeds 0,1,2 --preset best --curve   # issue 26's best so far
    python benchmarks/fashion_mnist.py --steps 5000 --metric classifier --set lr_d=4e-4   # the cheap proxy
    python benchmarks/fashion_mnist.py --preset best --precise-bn    # a finished run, its EMA's norms re-estimated

--set KEY=VALUE (repeatable) changes one setting of the run (dotted names, as dcgan.build_config takes
them; the value is read as JSON where it parses, else as text); the run folder's name says which.
--metric classifier is the proxy the issue-26 ablation ranks configurations with: the Frechet distance
on the 128 penultimate features of benchmarks/conditional.py's small Fashion-MNIST classifier
("classifier FD"), 10,000 samples against the 10,000 test images in seconds instead of the half hour
Inception takes on 2 CPU cores. It is not FID and not comparable with it; BENCHMARKS.md says how well
it ranks configurations against the full protocol.
--preset best trains on 20 clusters of the pixels (the package's --classes clusters:20; other counts with
--set classes=clusters:K): self-conditioning after Liu et al. 2020, who cluster D's features. Each sample's
seed then draws its cluster as often as the clusters occur in the data (seeds.seed_classes).

--steps, -n and --real-n below the protocol's values make numbers that are not comparable with it
(FID is biased upward at small n); the result lines say what was used.
"""

from __future__ import annotations

import argparse
import json
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
from dcgan.images import make_grid, save_image  # noqa: E402
from dcgan.runs import list_checkpoints  # noqa: E402
from dcgan.seeds import parse_seeds  # noqa: E402

from idx_to_png import export  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")
TRAIN_FILE, TEST_FILE = "train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"
TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000
IMAGE_SIZE = 28
SAMPLE_CHUNK = 500
CURVE_SAMPLES = 2_000  # per checkpoint of --curve: the curve's shape, not a score comparable with -n's
GRID_TILES = 128  # --grid: seeds 0..127, 16 to a row
KEEP_ALL = 100_000  # --keep for --curve: every checkpoint the run writes


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
    result = dcgan.train(train_dir, run_dir, config, resume=done is not None)
    if result.interrupted:  # saved; scoring it or training the next seed would pass a part-trained run off as done
        sys.exit(f"fashion_mnist.py: {run_dir.name} stopped at step {result.step:,}; the same command resumes it")
    return time.perf_counter() - start, "resumed" if done is not None else "trained"


def load(path: Path, args: argparse.Namespace) -> dcgan.TrainedGenerator:
    """A run's (or checkpoint's) generator as the flags ask: EMA or raw, with --precise-bn re-estimated norms."""
    start = time.perf_counter()
    gen = dcgan.load(path, device=args.device, ema=not args.no_ema, precise_bn=args.precise_bn)
    if args.precise_bn:
        print(f"precise BN: {path.name} loaded, norms re-estimated, in {time.perf_counter() - start:.1f} s", flush=True)
    return gen


def sample_features(gen, extractor, n: int) -> np.ndarray:
    """Features of n samples of a loaded generator, seeds 0..n-1 (one trained on clusters draws each seed's)."""
    chunks = []
    for first in range(0, n, SAMPLE_CHUNK):
        chunks.append(extractor(gen.images(seeds=range(first, min(n, first + SAMPLE_CHUNK)))))
    return np.concatenate(chunks)


def parse_set(text: str) -> tuple[str, object]:
    """'lr_d=4e-4' -> ('lr_d', 0.0004); 'model.d_head=gap' -> ('model.d_head', 'gap')."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def run_tag(preset: str, sets: list[tuple[str, object]]) -> str:
    """What a run folder's name adds for a preset and --set values: '' for the default and none."""
    parts = ([] if preset == "default" else [preset]) + [f"{k.split('.')[-1]}={v}" for k, v in sets]
    return "".join(f"-{p}" for p in parts).replace("/", "_").replace(":", "")


class ClassifierFeatures:
    """The proxy's features: the 128 penultimate activations of conditional.py's classifier (trained once)."""

    def __init__(self, work: Path) -> None:
        from conditional import train_classifier

        self.net, self.accuracy = train_classifier(work)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        from conditional import as_input

        with torch.no_grad():
            x = as_input(images)
            return np.concatenate([self.net.net[:-2](chunk).double().numpy() for chunk in x.split(1000)])


def line(label: str, result: dict, what: str, details: str, device: str, score: str = "FID") -> str:
    quality = f"  precision {result['precision']:.3f}  recall {result['recall']:.3f}" if "precision" in result else ""
    return (
        f"{label}: {score} {result['fid']:.3f}  KID {result['kid']:.5f} +- {result['kid_std']:.5f}{quality}  "
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
    parser.add_argument("--loss", default=None, choices=get_args(Loss), help="default: the preset's (bce)")
    parser.add_argument("--seeds", "--seed", default="0", help="training seeds, e.g. 0 or 0,1,2 or 0-4 (default: 0)")
    parser.add_argument("--steps", type=int, default=15_625, help="generator steps (default: 15625)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-ema", action="store_true", help="evaluate the raw generator instead of its EMA")
    parser.add_argument("--no-amp", action="store_true", help="train in fp32 (default: the device's fast settings)")
    parser.add_argument(
        "--precise-bn",
        action="store_true",
        help="score the EMA generator with its batch-norm statistics re-estimated for its own weights "
        "(sampling.precise_bn, as a run trained with --set precise_bn=true saves them): the option measured "
        "on an already trained run",
    )
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
    parser.add_argument("--preset", default="default", help="the configuration's preset (as dcgan train's --preset)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], type=parse_set, metavar="KEY=VALUE", help="a setting"
    )
    parser.add_argument(
        "--metric", choices=("inception", "classifier"), default="inception", help="FID, or the classifier-FD proxy"
    )
    parser.add_argument("--grid", metavar="PNG", help="write samples of the first seed's run (seeds 0-127) here")
    parser.add_argument(
        "--curve",
        action="store_true",
        help="keep every checkpoint (one each 1,000 steps) and print each one's classifier FD of "
        f"{CURVE_SAMPLES:,} samples: the curve over steps",
    )
    args = parser.parse_args()

    if args.no_floor and args.floor_only:
        parser.error("--no-floor and --floor-only exclude each other")
    try:
        seeds = [] if args.floor_only else parse_seeds(args.seeds)
        work, data = Path(args.work), Path(args.data)
        if args.metric == "classifier":
            extractor = ClassifierFeatures(work)
            print(f"classifier: {extractor.accuracy:.2%} on the 10,000 test images (its features are the proxy's)")
        else:
            extractor = metrics.InceptionFeatures(args.inception, device=args.device, batch_size=args.fid_batch_size)
        sets = dict(args.sets) | ({"loss": args.loss} if args.loss else {})
        dcgan.build_config(sets, preset=args.preset)  # a bad --set or --preset fails before any work
    except (ValueError, metrics.MetricsError) as e:
        sys.exit(f"fashion_mnist.py: {e}")
    device = device_name(args.device)
    score = "FID" if args.metric == "inception" else "classifier FD"
    train_dir = png_folder(data / TRAIN_FILE, work / "train", TRAIN_IMAGES)
    test_dir = png_folder(data / TEST_FILE, work / "test", TEST_IMAGES)
    runs = {}
    for seed in seeds:
        config = dcgan.build_config(
            {
                "model.image_size": IMAGE_SIZE,
                "model.channels": 1,
                "seed": seed,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "device": args.device,
                **({"amp": False} if args.no_amp else {}),
                **({"keep": KEEP_ALL} if args.curve else {}),
                **sets,
            },
            preset=args.preset,
        )
        suffix = ("-fp32" if args.no_amp else "") + run_tag(args.preset, [s for s in args.sets if s[0] != "loss"])
        run_dir = work / f"{config.loss}-seed{seed}-batch{args.batch_size}-steps{args.steps}{suffix}"
        runs[seed] = (run_dir, *train_run(train_dir, run_dir, config))
        print(f"seed {seed}: {runs[seed][2]} in {runs[seed][1]:.0f} s ({run_dir.name}; device {device})", flush=True)
    if args.grid:
        run_dir = runs[seeds[0]][0]
        gen = load(run_dir, args)
        pixels = gen.images(seeds=range(GRID_TILES))
        save_image(make_grid(pixels, columns=16, scale=2), args.grid)
        print(f"grid: seeds 0-{GRID_TILES - 1} of {run_dir.name} -> {args.grid}")
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
                score,
            ),
            flush=True,
        )

    fids = []
    for seed, (run_dir, train_s, how) in runs.items():
        start = time.perf_counter()
        gen = load(run_dir, args)
        fake = sample_features(gen, extractor, args.n)
        features_s = time.perf_counter() - start
        start = time.perf_counter()
        result = metrics.scores(fake, test.features, kid_subset_size=1000)
        fids.append(result["fid"])
        weights = ("raw" if args.no_ema else "ema") + ("+precise-bn" if args.precise_bn else "")
        precision = "fp32" if args.no_amp else "fast defaults"
        label = f"{run_dir.name} seed={seed} steps={args.steps} batch={args.batch_size} G={weights} {precision}"
        print(
            line(
                label,
                result,
                "samples",
                f"{how} in {train_s:.0f} s, sample features {features_s:.1f} s, "
                f"FID+KID {time.perf_counter() - start:.1f} s",
                device,
                score,
            ),
            flush=True,
        )
    if args.curve:
        judge = extractor if args.metric == "classifier" else ClassifierFeatures(work)
        reference = metrics.folder_features(test_dir, judge, IMAGE_SIZE, limit=args.real_n, progress=False).features
        mu_ref, sigma_ref = metrics.feature_stats(reference)
        for seed, (run_dir, _, _) in runs.items():
            points = []
            for checkpoint in list_checkpoints(run_dir / "checkpoints"):
                gen = load(checkpoint, args)
                mu, sigma = metrics.feature_stats(sample_features(gen, judge, CURVE_SAMPLES))
                points.append(f"{gen.info['step']} {metrics.frechet_distance(mu, sigma, mu_ref, sigma_ref):.2f}")
            print(
                f"curve, seed {seed} (step, classifier FD of {CURVE_SAMPLES} samples): {', '.join(points)}", flush=True
            )
    if len(fids) > 1:
        print(
            f"{run_dir.name.replace(f'-seed{seed}', '')} over {len(fids)} seeds: {score} {statistics.mean(fids):.3f} "
            f"+- {statistics.stdev(fids):.3f} (min {min(fids):.3f}, max {max(fids):.3f})"
        )


if __name__ == "__main__":
    main()
