"""Write images from an MNIST-style idx file (optionally gzipped) as a folder of PNG files.

Used to make the sample data shipped in examples/ and the folders the benchmarks train on:

    python tools/idx_to_png.py /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz out/ --count 2000
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def read_idx_images(path: str | Path) -> np.ndarray:
    """(N, H, W) uint8 from an idx3-ubyte file, gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n, h, w = struct.unpack(">IIII", data[:16])
    if magic != 2051:
        raise ValueError(f"{path}: not an idx3 image file (magic {magic})")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h, w)


def read_idx_labels(path: str | Path) -> np.ndarray:
    """(N,) uint8 class labels from an idx1-ubyte file, gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic != 2049:
        raise ValueError(f"{path}: not an idx1 label file (magic {magic})")
    return np.frombuffer(data, dtype=np.uint8, offset=8)[:n]


def export_by_class(images_path: str | Path, labels_path: str | Path, out_dir: str | Path, names: list[str]) -> int:
    """Write every image as out_dir/<class name>/NNNNN.png (the layout `dcgan train --classes folders` reads)."""
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    out = Path(out_dir)
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image, "L").save(out / names[label] / f"{i:05d}.png", optimize=True)
    return len(images)


def export(path: str | Path, out_dir: str | Path, start: int = 0, count: int | None = None) -> int:
    """Write images [start, start + count) as out_dir/NNNNN.png; returns how many were written."""
    images = read_idx_images(path)
    stop = len(images) if count is None else min(len(images), start + count)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(start, stop):
        Image.fromarray(images[i], "L").save(out / f"{i:05d}.png", optimize=True)
    return stop - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("idx_file")
    parser.add_argument("out_dir")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    n = export(args.idx_file, args.out_dir, args.start, args.count)
    print(f"wrote {n} images to {args.out_dir}")


if __name__ == "__main__":
    main()
