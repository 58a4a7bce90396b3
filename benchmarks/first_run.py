"""A user's first run: `dcgan train` with nothing but the defaults and --time, against the PyTorch DCGAN
example's defaults given the same wall time, on a colour folder of a few hundred pictures.

    python benchmarks/first_run.py --minutes 10,30              # both tools at each budget, then the scores
    python benchmarks/first_run.py --minutes 10 --score-only    # score runs trained before

The folder: the 881 emoji PNGs (64x64, RGBA, MIT licence) of Debian's libjs-emojify package
(`apt-get install libjs-emojify`), flattened onto white as RGB PNGs, so both tools read the same
pictures (the example's loader would drop the alpha channel and show whatever colour hides under it).
Emoji are a fair first folder: colourful, varied (faces, animals, objects, flags, signs), recognisable at
a glance, and few enough that the small-folder defaults apply.

dcgan: ``dcgan train FOLDER --out RUN --time T``, run as a user would (a subprocess; its time budget counts
from the start of the command). The example: ``example_baseline.train_for`` (the example's networks, loss,
optimiser, batch 128 and 2 loader workers) for the same wall time from the start of its process, fp32 as
the example runs. Scores: FID, KID, precision and recall (k = 3) of -n samples against every picture of
the folder, with the standard Inception; the example's samples are drawn both as it draws them (batch
statistics, batches of 64) and in eval mode, and the better of the two is its score. Grids of 64 samples
of each are written next to the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from dcgan import metrics  # noqa: E402
from dcgan.devices import cpu_kind  # noqa: E402
from dcgan.images import make_grid, save_image  # noqa: E402

from example_baseline import list_images, sample, train_for  # noqa: E402

EMOJI = Path("/usr/share/javascript/emojify.js/images/emoji")


def build_folder(target: Path) -> Path:
    """The emoji as RGB PNGs on white, written once."""
    from PIL import Image

    if not EMOJI.is_dir():
        raise SystemExit(f"{EMOJI} is missing: apt-get install libjs-emojify")
    sources = sorted(EMOJI.glob("*.png"))
    if len(list(target.glob("*.png"))) == len(sources):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for path in sources:
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        flat.convert("RGB").save(target / path.name)
    return target


def train_dcgan(folder: Path, run: Path, cache: Path, *flags: str) -> dict:
    """`dcgan train FOLDER --out RUN FLAGS...`, as a user runs it; its log lines and wall time."""
    if (run / "benchmark.json").is_file():
        return json.loads((run / "benchmark.json").read_text())
    start = time.monotonic()
    command = [sys.executable, "-m", "dcgan", "train", str(folder), "--out", str(run), *flags, "--no-progress"]
    env = {**os.environ, "DCGAN_CACHE": str(cache)}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"dcgan train failed:\n{proc.stderr[-3000:]}")
    info = {"wall_s": time.monotonic() - start, "log": proc.stderr.splitlines() + proc.stdout.splitlines()}
    (run / "benchmark.json").write_text(json.dumps(info, indent=1))
    return info


def train_example(folder: Path, out: Path, minutes: float) -> dict:
    """The example's defaults for the same wall time; G saved as a state dict."""
    if (out / "benchmark.json").is_file():
        return json.loads((out / "benchmark.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    generator, steps, seconds = train_for(list_images(folder), minutes * 60)
    torch.save(generator.state_dict(), out / "generator.pt")
    info = {"wall_s": seconds, "steps": steps}
    (out / "benchmark.json").write_text(json.dumps(info, indent=1))
    return info


def score_dcgan(run: Path, real: np.ndarray, extractor: metrics.Extractor, n: int) -> tuple[dict, np.ndarray]:
    import dcgan

    gen = dcgan.load(run)
    images = np.concatenate([gen.images(seeds=range(s, min(n, s + 250))) for s in range(0, n, 250)])
    steps = gen.info["step"]
    batch = json.loads((run / "config.json").read_text())["batch_size"]
    return {"steps": steps, "kimg": steps * batch / 1000, **metrics.scores(extractor(images), real)}, images


def score_example(out: Path, real: np.ndarray, extractor: metrics.Extractor, n: int) -> tuple[dict, np.ndarray]:
    """The better of the example's two ways of drawing samples (see the module notes)."""
    from example_baseline import ExampleGenerator

    net = ExampleGenerator(64)
    net.load_state_dict(torch.load(out / "generator.pt", weights_only=True))
    steps = json.loads((out / "benchmark.json").read_text())["steps"]
    best: tuple[dict, np.ndarray] | None = None
    for train_mode in (True, False):
        images = sample(net, n, seed=0, train_mode=train_mode)
        got = {
            "steps": steps,
            "kimg": steps * 128 / 1000,
            "sampling": "batch stats" if train_mode else "eval",
            **metrics.scores(extractor(images), real),
        }
        print(json.dumps(got), flush=True)
        if best is None or got["fid"] < best[0]["fid"]:
            best = (got, images)
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", default="10,30", help="wall-time budgets, e.g. 10,30")
    parser.add_argument("-n", type=int, default=2000, help="samples scored per run (default: 2000)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "first-run"))
    parser.add_argument("--score-only", action="store_true", help="score the runs already trained")
    parser.add_argument("--grids", default=None, help="also copy the grids into this folder (e.g. docs/images)")
    parser.add_argument(
        "--only",
        default=None,
        help="with --score-only: score just these run folders (e.g. dcgan-10m,dcgan-30m) and keep the other rows "
        "of scores.json",
    )
    args = parser.parse_args()
    work = Path(args.work)
    folder = build_folder(work / "emoji")
    cache = work / "cache"
    budgets = [float(m) for m in args.minutes.split(",")]
    kind = cpu_kind()
    print(f"CPU: {kind}, {os.cpu_count()} cores; folder: {len(list(folder.glob('*.png')))} pictures", flush=True)

    # What a first run gave before the run length followed the folder: --preset paper keeps that default.
    runs: list[tuple[str, Path]] = [("dcgan --preset paper (25 epochs)", work / "dcgan-paper")]
    if not args.score_only:
        info = train_dcgan(folder, work / "dcgan-paper", cache, "--preset", "paper")
        print(f"dcgan --preset paper: {info['wall_s']:.0f} s", flush=True)
    for minutes in budgets:
        runs += [
            (f"dcgan --time {minutes:g}m", work / f"dcgan-{minutes:g}m"),
            (f"example, {minutes:g} min", work / f"example-{minutes:g}m"),
        ]
        if not args.score_only:
            info = train_dcgan(folder, work / f"dcgan-{minutes:g}m", cache, "--time", f"{minutes:g}m")
            print(f"dcgan {minutes:g} min: {info['wall_s']:.0f} s", flush=True)
            info = train_example(folder, work / f"example-{minutes:g}m", minutes)
            print(f"example {minutes:g} min: {info['steps']} steps in {info['wall_s']:.0f} s", flush=True)

    os.environ["DCGAN_CACHE"] = str(cache)
    extractor = metrics.InceptionFeatures(device="cpu")
    real = metrics.folder_features(folder, extractor, 64).features
    previous = {r["run"]: r for r in json.loads((work / "scores.json").read_text())} if args.only else {}
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for name, path in runs:
        if only is not None and path.name not in only and name in previous:
            rows.append(previous[name])
            continue
        scorer = score_example if name.startswith("example") else score_dcgan
        result, images = scorer(path, real, extractor, args.n)
        save_image(make_grid(images[:64]), work / f"{path.name}-grid.png")
        rows.append({"run": name, **result})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'run':34} {'steps':>6} {'kimg':>6} {'FID':>7} {'KID':>7} {'precision':>9} {'recall':>6}")
    for r in rows:
        print(
            f"{r['run']:34} {r['steps']:6d} {r['kimg']:6.0f} {r['fid']:7.2f} {r['kid']:7.4f} "
            f"{r['precision']:9.3f} {r['recall']:6.3f}"
        )
    for minutes in budgets:
        ours = next(r for r in rows if r["run"] == f"dcgan --time {minutes:g}m")
        theirs = next(r for r in rows if r["run"] == f"example, {minutes:g} min")
        change = (ours["fid"] - theirs["fid"]) / theirs["fid"] * 100
        print(f"{minutes:g} min: dcgan's FID is {change:+.1f}% against the example's")
    (work / "scores.json").write_text(json.dumps(rows, indent=1))
    if args.grids:
        for _, path in runs:
            if only is not None and path.name not in only:
                continue
            (Path(args.grids) / f"first-run-{path.name}.png").write_bytes((work / f"{path.name}-grid.png").read_bytes())


if __name__ == "__main__":
    main()
