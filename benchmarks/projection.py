"""Projection into z on a Fashion-MNIST model: how close the found z come, against picking the best random seed.

    python benchmarks/projection.py                   # trains the model once (28x28, 5,000 steps), then measures
    python benchmarks/projection.py --steps 500 --starts 8

(a) Round trip: 100 pictures G(z*) from random z*, projected back; the mean PSNR of G(found z) against
    G(z*) (the target is at least 30 dB).
(b) Held out: the first 100 Fashion-MNIST test images (never trained on), projected; the mean PSNR and
    the mean distance in D's features, against the baseline of the best of 1,000 random seeds (by pixel
    error) for each image.
Both with D's features beside the pixel error (the default) and with the pixel error alone. Seconds per
image on this machine's CPU. A figure (pictures above, projections below) goes to --figure.
Needs `apt-get install dataset-fashion-mnist` for the images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tools"))

import dcgan  # noqa: E402
from dcgan.config import DataConfig  # noqa: E402
from dcgan.dataset import prepare_dataset  # noqa: E402
from dcgan.devices import cpu_kind  # noqa: E402
from dcgan.images import make_grid, save_image, to_model_range  # noqa: E402
from dcgan.options import PROJECT_STEPS  # noqa: E402
from dcgan.project import DiscriminatorFeatures, feature_distance, project, psnr  # noqa: E402
from dcgan.runs import load_generator  # noqa: E402

from fashion_mnist import DATA, TEST_FILE, TRAIN_FILE, TRAIN_IMAGES, png_folder, train_run  # noqa: E402


def d_distance(features: DiscriminatorFeatures, a: np.ndarray, b: np.ndarray, output: str) -> np.ndarray:
    with torch.no_grad():
        x = to_model_range(torch.from_numpy(np.ascontiguousarray(a)), output)
        y = to_model_range(torch.from_numpy(np.ascontiguousarray(b)), output)
        return feature_distance(features(x), features(y)).numpy()


def best_seed(gen, targets: np.ndarray, seeds: int) -> np.ndarray:
    """For each target, the image of the random seed (of 0..seeds-1) closest in pixels."""
    pool = gen.images(seeds=range(seeds)).astype(np.float32)
    flat = pool.reshape(seeds, -1)
    picks = []
    for t in targets.reshape(len(targets), -1).astype(np.float32):
        picks.append(((flat - t) ** 2).mean(axis=1).argmin())
    return pool[np.array(picks)].astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default=str(ROOT / "runs" / "projection"))
    parser.add_argument("--train-steps", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=PROJECT_STEPS, help="projection steps per image")
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("-n", type=int, default=100, help="pictures per test")
    parser.add_argument("--seeds", type=int, default=1000, help="random seeds of the baseline")
    parser.add_argument("--figure", default=str(ROOT / "docs" / "images" / "projection.png"))
    args = parser.parse_args()
    work = Path(args.work)
    train_dir = png_folder(DATA / TRAIN_FILE, work / "train", TRAIN_IMAGES)
    test_dir = png_folder(DATA / TEST_FILE, work / "test", 10_000)
    run = work / f"fm28-{args.train_steps}"
    config = dcgan.build_config(
        {"steps": args.train_steps, "progress": False, "model.image_size": 28, "model.channels": 1}
    )
    seconds, how = train_run(train_dir, run, config)
    print(f"{how} {run.name} in {seconds:.0f} s", flush=True)
    kind = cpu_kind()
    print(
        f"CPU: {kind}, {os.cpu_count()} cores, {torch.get_num_threads()} threads; run {run.name}; "
        f"{args.steps} steps x {args.starts} starts per image",
        flush=True,
    )
    gen = dcgan.load(run)
    loaded = load_generator(run, discriminator=True)
    features = DiscriminatorFeatures(loaded.discriminator)  # type: ignore[arg-type]
    output = loaded.model.output

    rng = np.random.default_rng(1234)
    wanted = torch.from_numpy(rng.standard_normal((args.n, loaded.model.latent_dim)).astype(np.float32))
    generated = gen.images(z=wanted)
    held_out = np.asarray(prepare_dataset(test_dir, 28, DataConfig(), channels=1, progress=False).images[: args.n])

    rows = []
    for name, targets in (("round trip G(z*)", generated), ("held-out test images", held_out)):
        for kind_ in ("discriminator", "none"):
            start = time.perf_counter()
            got = project(
                loaded.net,
                targets,
                output,
                features if kind_ == "discriminator" else None,
                steps=args.steps,
                starts=args.starts,
                seed=0,
            )
            seconds = (time.perf_counter() - start) / len(targets)
            distance = d_distance(features, got.images, targets, output).mean()
            rows.append(
                (
                    name,
                    f"projection, pixels + {'D features' if kind_ == 'discriminator' else 'nothing'}",
                    got.psnr.mean(),
                    distance,
                    seconds,
                )
            )
            print(rows[-1], flush=True)
            if name.startswith("held") and kind_ == "discriminator":
                shown = got.images
        start = time.perf_counter()
        baseline = best_seed(gen, targets, args.seeds)
        seconds = (time.perf_counter() - start) / len(targets)
        rows.append(
            (
                name,
                f"best of {args.seeds:,} random seeds",
                psnr(baseline, targets).mean(),
                d_distance(features, baseline, targets, output).mean(),
                seconds,
            )
        )
        print(rows[-1], flush=True)
    print(f"\n{'pictures':22} {'method':40} {'PSNR dB':>8} {'D-feature dist':>14} {'s/image':>8}")
    for name, method, p, d, s in rows:
        print(f"{name:22} {method:40} {p:8.2f} {d:14.4f} {s:8.3f}")
    columns = 10
    figure = np.concatenate([held_out[:columns], shown[:columns]])
    save_image(make_grid(figure, columns, scale=3), args.figure)
    print(f"wrote {args.figure} (test images above, their projections below)")


if __name__ == "__main__":
    main()
