"""FID with and without DiffAugment on a small slice of Fashion-MNIST (issue 7's comparison).

    python benchmarks/small_data.py --images 100 --steps 4000 -n 2000          # a reduced run for a CPU
    python benchmarks/small_data.py --images 1000 --steps 10000 -n 10000 --device cuda
    python benchmarks/small_data.py --images 1000 --steps 150000 --snapshot-every 30000 -n 2000

Trains on the first --images training images at 28x28, the same steps and seed, once per --augment
setting (default: none, then diffaugment at p = 1), with the defaults a folder that small gets
otherwise (networks of width 32), then prints the FID and KID of -n samples (seeds 0..n-1, EMA
generator) against the 10,000 test images (--real-n), with the standard Inception (dcgan[metrics]).
The test images are the ones benchmarks/fashion_mnist.py exports, so their features are computed
once for both scripts (cached under $DCGAN_CACHE). FID is biased upward at small -n; compare the lines
of one run, not with published tables. --snapshot-every N keeps a checkpoint every N steps and scores
each (--score-steps picks some), so one long run gives FID at several lengths.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import dcgan  # noqa: E402
from dcgan import metrics  # noqa: E402
from dcgan.runs import checkpoint_name  # noqa: E402

from fashion_mnist import DATA, TEST_FILE, TEST_IMAGES, TRAIN_FILE, png_folder, train_run  # noqa: E402
from idx_to_png import export  # noqa: E402

SETTINGS = {
    "none": {"augment": "none"},
    "diffaugment": {"augment": "diffaugment", "augment_p": 1.0},
    "auto": {"augment": "diffaugment", "augment_p": "auto"},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--images", type=int, default=1000, help="training images (the first ones)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("-n", type=int, default=1000, help="samples for FID")
    parser.add_argument("--real-n", type=int, default=TEST_IMAGES, help="test images for FID (default: all 10000)")
    parser.add_argument(
        "--augment",
        default="none,diffaugment",
        help=f"settings to compare, in order, from {', '.join(SETTINGS)} (auto: --augment-p auto)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", default=str(ROOT / "runs"), help="runs and PNG folders (default: runs)")
    parser.add_argument("--no-score", action="store_true", help="train only; a later call scores the runs")
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=None,
        metavar="N",
        help="keep a checkpoint every N steps and score each one, not only the last",
    )
    parser.add_argument(
        "--score-steps",
        default=None,
        metavar="S,S",
        help="score only these of the kept checkpoints (default: all of them)",
    )
    args = parser.parse_args()
    names = [a.strip() for a in args.augment.split(",") if a.strip()]
    unknown = [a for a in names if a not in SETTINGS]
    if unknown or not names:
        sys.exit(f"small_data.py: --augment {args.augment!r}: choose from {', '.join(SETTINGS)}")
    if args.snapshot_every is not None and not 0 < args.snapshot_every <= args.steps:
        sys.exit(f"small_data.py: --snapshot-every must be between 1 and --steps ({args.steps})")
    every = args.snapshot_every or args.steps
    snapshots = sorted({*range(every, args.steps + 1, every), args.steps})
    scored = snapshots
    if args.score_steps is not None:
        try:
            scored = sorted({int(s) for s in args.score_steps.split(",")})
        except ValueError:
            sys.exit(f"small_data.py: --score-steps {args.score_steps!r}: give steps separated by commas")
        if not set(scored) <= set(snapshots):
            sys.exit(f"small_data.py: --score-steps must come from the kept checkpoints: {snapshots}")
    work = Path(args.work)
    train_dir = work / "small-data" / f"train-{args.images}"
    if len(list(train_dir.glob("*.png"))) != args.images:
        export(DATA / TRAIN_FILE, train_dir, count=args.images)
    test_dir = png_folder(DATA / TEST_FILE, work / "fashion-mnist" / "test", TEST_IMAGES)
    runs = {}
    for name in names:
        run = runs[name] = work / "small-data" / f"{args.images}-{name}-s{args.seed}-{args.steps}"
        config = dcgan.build_config(
            {
                "model.image_size": 28,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "seed": args.seed,
                "device": args.device,
                "progress": False,
                "checkpoint_every": every,
                "keep": len(snapshots),
                **SETTINGS[name],
            }
        )
        seconds, how = train_run(train_dir, run, config)
        print(f"{how} {run.name} in {seconds:.0f} s", flush=True)
    if args.no_score:
        return
    extractor = metrics.InceptionFeatures(device=args.device)
    t = time.perf_counter()
    real = metrics.folder_features(test_dir, extractor, 28, limit=args.real_n, progress=False)
    print(
        f"test features: {len(real.features)} images in {time.perf_counter() - t:.0f} s"
        + (" (cached)" if real.cached else ""),
        flush=True,
    )
    results: dict[tuple[str, int], float] = {}
    for name, run in runs.items():
        for step in scored:
            checkpoint = run / "checkpoints" / checkpoint_name(step)
            if not checkpoint.exists():
                sys.exit(f"small_data.py: {checkpoint} is missing (trained without --snapshot-every {every}?)")
            gen = dcgan.load(checkpoint, device=args.device)
            t = time.perf_counter()
            fake = np.concatenate(
                [extractor(c) for c in metrics.generated_images(gen.net, gen.latent_dim, gen.output, args.n)]
            )
            score = metrics.scores(fake, real.features, kid_subset_size=min(1000, args.n))
            results[name, step] = score["fid"]
            print(
                f"images={args.images} augment={name} steps={step} seed={args.seed}: FID {score['fid']:.2f} "
                f"KID {score['kid']:.4f} +- {score['kid_std']:.4f} ({args.n} samples vs {len(real.features)} "
                f"test images; scored in {time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    for (name, step), fid in results.items():
        if name != "none" and ("none", step) in results:
            base = results["none", step]
            print(f"FID change with {name} at step {step}: {(fid - base) / base * 100:+.1f}%")


if __name__ == "__main__":
    main()
