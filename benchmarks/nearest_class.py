"""How often projection's class choice finds a picture's own cluster, for a model trained on clusters.

    python benchmarks/nearest_class.py RUN DATA_DIR [-n 2000]

RUN is a run trained with ``--classes clusters:K`` (``--preset best``) on DATA_DIR. For n training pictures
drawn with a fixed seed, ``project.likeliest_classes`` picks the class whose own images come nearest each
picture (what ``dcgan project`` does without ``--class``), with the projection's distance (pixels plus D's
features) and with pixels alone; the script prints how often the pick is the picture's own cluster, beside
the largest cluster's share (what always naming one class would score).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dcgan.dataset import prepare_dataset
from dcgan.devices import cpu_kind
from dcgan.project import DiscriminatorFeatures, likeliest_classes
from dcgan.runs import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("data_dir")
    parser.add_argument("-n", type=int, default=2000, help="training pictures to classify")
    args = parser.parse_args()
    loaded = load_generator(args.run, discriminator=True)
    k = len(loaded.class_names)
    if not k or not all(name.startswith("cluster") for name in loaded.class_names):
        raise SystemExit(f"nearest_class.py: {args.run} was not trained with --classes clusters:K")
    prepared = prepare_dataset(
        args.data_dir, loaded.model.image_size, loaded.data, channels=loaded.model.channels, classes=f"clusters:{k}"
    )
    if prepared.class_names != loaded.class_names or prepared.labels is None:
        raise SystemExit(f"nearest_class.py: {args.data_dir} does not give {args.run}'s clusters")
    rows = np.sort(np.random.default_rng(0).choice(len(prepared.images), min(args.n, len(prepared.images)), False))
    pictures, own = np.asarray(prepared.images[rows]), prepared.labels[rows]
    print(f"CPU: {cpu_kind()}, {torch.get_num_threads()} threads; {len(rows)} pictures, {k} clusters")
    print(f"largest cluster's share: {np.bincount(own, minlength=k).max() / len(own):.4f}")
    critic = DiscriminatorFeatures(loaded.discriminator)  # type: ignore[arg-type]
    for name, features in (("pixels + D features (the default)", critic), ("pixels only", None)):
        start = time.perf_counter()
        picked = likeliest_classes(loaded.net, pictures, loaded.model.output, k, features).numpy()
        seconds = time.perf_counter() - start
        print(f"{name}: own cluster picked for {np.mean(picked == own):.4f} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
