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
