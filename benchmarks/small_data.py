"""FID with and without DiffAugment on a small slice of Fashion-MNIST (issue 7's comparison).

    python benchmarks/small_data.py --images 1000 --steps 2000 -n 1000        # a reduced run for a CPU
    python benchmarks/small_data.py --images 100 --steps 2000 -n 10000 --device cuda

Trains twice on the first --images training images, at 28x28, the same steps and seed, with
`--augment none` and with `--augment diffaugment`, then prints the FID of -n samples (seeds 0..n-1,
EMA generator) against the first -n test images, with the standard Inception (dcgan[metrics]).
FID at small n is biased upward; compare the two lines of one run, not with published tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from idx_to_png import export  # noqa: E402

import dcgan  # noqa: E402
from dcgan import metrics  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("-n", type=int, default=1000, help="samples and test images for FID")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", default="runs/small-data")
    args = parser.parse_args()
    work = Path(args.work)
    train_dir, test_dir = work / f"train-{args.images}", work / f"test-{args.n}"
    if not train_dir.exists():
        export(DATA / "train-images-idx3-ubyte.gz", train_dir, count=args.images)
    if not test_dir.exists():
        export(DATA / "t10k-images-idx3-ubyte.gz", test_dir, count=args.n)
    extractor = metrics.InceptionFeatures(device=args.device)
    t = time.perf_counter()
    real = metrics.folder_features(test_dir, extractor, 28, progress=False).features
    print(f"test features: {len(real)} images in {time.perf_counter() - t:.0f} s")
    results = {}
    for augment in ("none", "diffaugment"):
        run = work / f"{args.images}-{augment}-s{args.seed}-{args.steps}"
        t = time.perf_counter()
        if not (run / "checkpoints").exists():
            config = dcgan.build_config({"model.image_size": 28, "steps": args.steps, "batch_size": args.batch_size,
                                         "augment": augment, "seed": args.seed, "device": args.device,
                                         "progress": False})
            dcgan.train(train_dir, run, config)
        trained = time.perf_counter() - t
        gen = dcgan.load(run, device=args.device)
        t = time.perf_counter()
        fake = np.concatenate([extractor(c) for c in metrics.generated_images(gen.net, gen.latent_dim, gen.output,
                                                                               args.n)])
        score = metrics.scores(fake, real, kid_subset_size=min(1000, args.n))
        results[augment] = score["fid"]
        print(f"images={args.images} augment={augment} steps={args.steps} seed={args.seed}: FID {score['fid']:.2f} "
              f"KID {score['kid']:.4f} +- {score['kid_std']:.4f} ({args.n} vs {args.n}; trained {trained:.0f} s, "
              f"scored {time.perf_counter() - t:.0f} s)")
    change = (results["diffaugment"] - results["none"]) / results["none"]
    print(f"FID change with augmentation: {change * 100:+.1f}%")


if __name__ == "__main__":
    main()
