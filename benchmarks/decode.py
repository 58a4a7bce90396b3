"""First-pass decode rate of dcgan's cache builder against a plain single-process Pillow loop, and the
start-up time of a second run (cache hit).

    python benchmarks/decode.py --count 10000            # photo-sized JPEGs made once under /tmp

The JPEGs are synthetic "photos" (800x600, smooth colour fields with noise and shapes, quality 90), made
with a fixed seed so every run measures the same files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from dcgan.config import DataConfig
from dcgan.dataset import prepare_dataset


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    """Write count photo-like 800x600 JPEGs (skipped when the folder already holds them)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) >= count:
        return
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:600, 0:800].astype(np.float32)
    for i in range(count):
        a, b, c = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), rng.uniform(0, 255, 3)
        field = c + a * xx[..., None] / 8 + b * yy[..., None] / 8 + rng.normal(0, 12, (600, 800, 3))
        img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        for _ in range(5):
            x, y, r = rng.integers(0, 800), rng.integers(0, 600), rng.integers(20, 150)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        img.save(folder / f"photo_{i:05d}.jpg", quality=90)


def plain_loop(folder: Path, size: int) -> int:
    """What a straightforward script does: open, convert, crop-resize, to an array; one process."""
    n = 0
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as img:
            arr = np.asarray(ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.LANCZOS))
        n += arr.shape[0] > 0
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--folder", default="/tmp/dcgan-bench-photos")
    parser.add_argument(
        "--baseline-count",
        type=int,
        default=1000,
        help="files the plain loop decodes (its rate is steady; the whole folder would take long)",
    )
    args = parser.parse_args()
    folder = Path(args.folder)
    t = time.perf_counter()
    make_photos(folder, args.count)
    print(f"data: {args.count} synthetic 800x600 JPEGs in {folder} (made in {time.perf_counter() - t:.0f} s if new)")
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")

    sub = Path(tempfile.mkdtemp()) / "subset"
    sub.mkdir()
    for p in sorted(folder.glob("*.jpg"))[: args.baseline_count]:
        os.symlink(p, sub / p.name)
    t = time.perf_counter()
    n = plain_loop(sub, args.size)
    base_rate = n / (time.perf_counter() - t)
    print(f"plain Pillow loop, 1 process:     {base_rate:8.1f} images/s  ({n} images)")

    cache = Path(tempfile.mkdtemp(prefix="dcgan-bench-cache-"))
    try:
        config = DataConfig(cache_dir=str(cache))
        t = time.perf_counter()
        prepared = prepare_dataset(folder, args.size, config, progress=False)
        first = time.perf_counter() - t
        rate = prepared.report["used"] / first
        print(
            f"dcgan first pass, {os.cpu_count()} processes:  {rate:8.1f} images/s  "
            f"({prepared.report['used']} images in {first:.1f} s; includes scan, hashing and cache write)"
        )
        print(f"ratio dcgan / plain loop: {rate / base_rate:.2f}x")
        t = time.perf_counter()
        again = prepare_dataset(folder, args.size, config, progress=False)
        hit = time.perf_counter() - t
        print(
            f"second start (cache hit): {hit * 1000:.0f} ms for {again.report['used']} images "
            f"({again.images.nbytes / 2**20:.1f} MiB memory-mapped)"
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(sub.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
