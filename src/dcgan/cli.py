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
  dcgan prepare photos/ --image-size 64                 # decode and cache ahead of training
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
    p.add_argument("--no-ema", action="store_true", help="use the raw generator instead of its moving average")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default: cpu)")

    p = sub.add_parser("prepare", help="decode and cache a folder ahead of training; report every file")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--report", default=None, help="also write the data report (JSON) here")
    add_config_arguments(p, ModelConfig, "model.", only=("image_size", "channels"))
    add_config_arguments(p, DataConfig, "data.")
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
    print(f"done: {result.step} steps; checkpoint {result.checkpoint}; samples in {result.run_dir / 'samples'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .api import generate_files
    from .sampling import parse_seeds

    if args.seeds is not None and args.n is not None:
        raise CliError("give -n or --seeds, not both")
    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else list(range(args.n if args.n else 64))
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.n is not None and args.n < 1:
        raise CliError("-n must be at least 1")
    if args.out_dir is None and args.grid is None:
        raise CliError("say where to write: --out-dir DIR and/or --grid FILE")
    written = generate_files(args.run, args.out_dir, seeds, grid=args.grid, truncation=args.truncation,
                             device=args.device, ema=not args.no_ema)
    print(f"wrote {len(written)} file(s)" + (f" to {args.out_dir}" if args.out_dir else f": {args.grid}"))
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


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "prepare": cmd_prepare}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dcgan`` console script; user mistakes exit non-zero with one clear line."""
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .dataset import DataError
    from .devices import DeviceError
    from .trainer import TrainingError

    try:
        return COMMANDS[args.command](args)
    except CliError as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (ConfigError, DataError, TrainingError, CheckpointError, DeviceError) as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
