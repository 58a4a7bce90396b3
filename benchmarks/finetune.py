"""Fine-tuning on a held-out kind: --init-from (with and without --freeze-d) against training from scratch.

    python benchmarks/finetune.py                        # sneaker held out; 2 seeds; 3,000 steps
    python benchmarks/finetune.py --held-out bag --seeds 0

A model is trained on the Fashion-MNIST training images of the nine other classes (28x28, batch 64,
--pretrain-steps). Then, on the first 100 training images of the held-out class and for the same number
of steps each: fine-tuned from that model (`--init-from`, its widths), the same with D's first block
frozen (`--freeze-d 1`), and from scratch with the small-folder defaults. FID of 1,000 samples against
the class's 1,000 test images (standard Inception) at several step counts. Needs
`apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from PIL import Image  # noqa: E402

import dcgan  # noqa: E402
from conditional import NAMES, TEST_LABELS, TRAIN_LABELS  # noqa: E402
from dcgan import metrics  # noqa: E402
from dcgan.devices import cpu_kind  # noqa: E402
from dcgan.images import make_grid, save_image  # noqa: E402
from dcgan.runs import checkpoint_name  # noqa: E402

from fashion_mnist import DATA, TEST_FILE, TRAIN_FILE, train_run  # noqa: E402
from idx_to_png import read_idx_images, read_idx_labels  # noqa: E402


def write(images: np.ndarray, folder: Path) -> Path:
    if not folder.is_dir() or len(list(folder.iterdir())) != len(images):
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image, "L").save(folder / f"{i:05d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--held-out", default="sneaker", choices=NAMES)
    parser.add_argument("--pretrain-steps", type=int, default=6000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--score-at", default="1000,2000,3000")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("-n", type=int, default=1000, help="samples per score")
    parser.add_argument("--work", default=str(ROOT / "runs" / "finetune"))
    args = parser.parse_args()
    work = Path(args.work)
    held = NAMES.index(args.held_out)
    train, labels = read_idx_images(DATA / TRAIN_FILE), read_idx_labels(DATA / TRAIN_LABELS)
    test, test_labels = read_idx_images(DATA / TEST_FILE), read_idx_labels(DATA / TEST_LABELS)
    others = write(train[labels != held], work / "nine-classes")
    few = write(train[labels == held][: args.images], work / f"{args.held_out}-{args.images}")
    real = write(test[test_labels == held], work / f"{args.held_out}-test")
    kind = cpu_kind()
    print(
        f"CPU: {kind}, {os.cpu_count()} cores; held out: {args.held_out}; {len(list(others.iterdir()))} "
        f"pretraining images; {args.images} to fine-tune on",
        flush=True,
    )
    base = {"model.image_size": 28, "model.channels": 1, "batch_size": 64, "progress": False}
    source = work / f"pretrained-{args.pretrain_steps}"
    seconds, how = train_run(others, source, dcgan.build_config({"steps": args.pretrain_steps, **base}))
    print(f"pretraining: {how} in {seconds:.0f} s", flush=True)
    widths = {"model.g_width": 64, "model.d_width": 64}  # the pretrained model's (a folder of 54,000)
    variants = {
        "scratch (small-folder defaults)": {},
        "--init-from": {"init_from": str(source), **widths},
        "--init-from --freeze-d 1": {"init_from": str(source), "freeze_d": 1, **widths},
    }
    score_at = [int(s) for s in args.score_at.split(",")]
    extractor = metrics.InceptionFeatures(device="cpu")
    reference = metrics.folder_features(real, extractor, 28).features
    results: dict[tuple[str, int], list[float]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, settings in variants.items():
            run = work / f"{name.split()[0].strip('-')}{'-freeze' if 'freeze' in name else ''}-seed{seed}"
            config = dcgan.build_config(
                {"steps": args.steps, "seed": seed, "checkpoint_every": min(score_at), "keep": 100, **base, **settings}
            )
            seconds, how = train_run(few, run, config)
            print(f"{name}, seed {seed}: {how} in {seconds:.0f} s", flush=True)
            for step in score_at:
                gen = dcgan.load(run / "checkpoints" / checkpoint_name(step))
                samples = np.concatenate(
                    [gen.images(seeds=range(s, min(args.n, s + 250))) for s in range(0, args.n, 250)]
                )
                fid = metrics.scores(extractor(samples), reference)["fid"]
                results.setdefault((name, step), []).append(fid)
                print(f"{name}, seed {seed}, step {step}: FID {fid:.2f}", flush=True)
                if step == score_at[-1] and seed == 0:
                    save_image(make_grid(samples[:32], 8, scale=2), work / f"{run.name}-grid.png")
    print(f"\n{'variant':34} " + " ".join(f"{'step ' + str(s):>14}" for s in score_at))
    for name in variants:
        cells = [np.mean(results[(name, s)]) for s in score_at]
        print(f"{name:34} " + " ".join(f"{c:14.2f}" for c in cells))
    for name in list(variants)[1:]:
        change = [(np.mean(results[(name, s)]) / np.mean(results[(list(variants)[0], s)]) - 1) * 100 for s in score_at]
        print(f"{name} against scratch: " + ", ".join(f"{c:+.1f}% at {s}" for c, s in zip(change, score_at)))


if __name__ == "__main__":
    main()
