"""The ``dcgan`` command: argument parsing and dispatch, nothing else.

Every flag is generated from the settings classes (``config.TrainConfig`` for train, ``options`` for the
other commands): its type, choices, default and help text live there, and so do its checks. A mistake
prints one line and exits non-zero; torch is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args, get_origin

from . import options as opts
from .config import TrainConfig
from .errors import UserError
from .schema import ConfigError, flag_name, from_text, hints, is_union, parse_text

EXAMPLES = """examples:
  dcgan train photos/ --out runs/ramen                  # 64x64; run length chosen from the folder size
  dcgan train photos/ --out runs/ramen --time 30m       # as much as fits in 30 minutes
  dcgan train photos/ --out runs/ramen --dry-run        # what it would do, and how long it would take
  dcgan train photos/ --out runs/ramen --resume         # continue from the last checkpoint
  dcgan generate runs/ramen -n 100 --out-dir new/ --grid grid.png
  dcgan interpolate runs/ramen --seeds 3,17,42 --frames 30 --out walk.gif
  dcgan arithmetic runs/ramen "[12,40,77] - [5,9,31] + [21,33,60]" --out result.png
  dcgan prepare photos/ --image-size 64                 # decode and cache ahead of training
  dcgan fid runs/ramen photos/ -n 10000                 # FID, KID, precision, recall (pip install 'dcgan[metrics]')
  dcgan nearest runs/ramen --real photos/ --out nearest.png   # does the model copy its training images?
  dcgan project runs/ramen my-ramen.jpg --out-dir proj/  # your picture in latent space: proj/my-ramen.npy
  dcgan arithmetic runs/ramen "proj/my-ramen.npy - [4,5] + 7" --out mine.png
  dcgan export runs/ramen --out ramen.onnx              # the generator for an app (pip install 'dcgan[onnx]')
  dcgan serve runs/ramen                                # http://127.0.0.1:8000/: watch it train, explore it
  dcgan report runs/ramen --real photos/                # runs/ramen/report.html, one page to share
  dcgan generate ramen.onnx --seeds 0-15 --grid g.png   # the same pictures from the ONNX file
"""


class Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line, pointing to --help, instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _converter(hint: Any, field: dataclasses.Field) -> Any:
    """The text -> value function argparse calls for a flag (its checks come from the class, later; a choice
    is checked by argparse, which lists the choices)."""
    parse = field.metadata.get("parse")
    arms = [a for a in get_args(hint) if a is not type(None)] if is_union(hint) else [hint]
    if len(arms) == 1 and get_origin(arms[0]) is Literal:
        return str

    def convert(text: str) -> Any:
        try:
            return parse_text(flag_name(field), parse, text) if parse else from_text(hint, text)
        except (ValueError, UserError) as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(f"{flag_name(field)}: ")) from None

    convert.__name__ = "value"  # argparse names the type in its messages
    return convert


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One argument per field of a settings class (nested classes flattened, dotted dests); flags not given stay
    absent, so the class's own defaults (and a preset's) apply."""
    types = hints(cls)
    for f in dataclasses.fields(cls):
        hint = types[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            add_arguments(parser, hint, prefix + f.name + ".")
            continue
        meta = f.metadata
        dest = prefix + f.name
        help_text = meta.get("help", "")
        has_default = f.default is not dataclasses.MISSING
        if has_default and f.default is not None and not isinstance(f.default, bool):
            help_text += f" (default: {f.default})"
        plain = next((a for a in get_args(hint) if a is not type(None)), hint) if is_union(hint) else hint
        kwargs: dict[str, Any] = {"help": help_text}
        if get_origin(plain) is tuple:  # a list of values: one or more
            hint = plain = get_args(plain)[0]
            kwargs["nargs"] = "+"
        if get_origin(plain) is Literal:
            kwargs["choices"] = get_args(plain)
        elif meta.get("choices") is not None:
            kwargs["choices"] = meta["choices"]
        if meta.get("positional"):
            parser.add_argument(dest, metavar=meta.get("metavar") or f.name.upper(), type=_converter(hint, f), **kwargs)
            continue
        names = [flag_name(f)] + ([meta["short"]] if meta.get("short") else [])
        kwargs.update(
            dest=dest, default=argparse.SUPPRESS, required=not has_default and f.default_factory is dataclasses.MISSING
        )
        if plain is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _converter(hint, f)
            kwargs["metavar"] = meta.get("metavar") or (None if "choices" in kwargs else f.name.upper())
        parser.add_argument(*names, **kwargs)


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """A settings object from the parsed (dotted) values; absent ones take the class defaults."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints(cls)[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[f.name] = build(hint, values, prefix + f.name + ".")
        elif prefix + f.name in values:
            value = values[prefix + f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


COMMANDS: dict[str, tuple[type, str]] = {
    "train": (opts.TrainTarget, "train on a folder (or zip or tar archive) of images"),
    "generate": (opts.GenerateOptions, "write new images from a trained run"),
    "interpolate": (opts.InterpolateOptions, "animate a walk through latent space from seed to seed"),
    "arithmetic": (opts.ArithmeticOptions, "add and subtract the mean z of groups of seeds (Radford et al. fig. 7)"),
    "prepare": (opts.PrepareOptions, "decode and cache a folder ahead of training; report every file"),
    "fid": (opts.FidOptions, "FID, KID, precision and recall between runs, checkpoints or image folders"),
    "nearest": (opts.NearestOptions, "generated images beside their nearest training images: does it copy?"),
    "export": (opts.ExportOptions, "write the generator as ONNX, checked against onnxruntime (dcgan[onnx])"),
    "project": (opts.ProjectOptions, "find the z whose image best matches each of your pictures"),
    "serve": (opts.ServeOptions, "a local page: watch training live, explore the generator (dcgan[serve])"),
    "report": (opts.ReportOptions, "write RUN_DIR/report.html, one self-contained page about the run"),
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = Parser(
        prog="dcgan",
        description="Train a DCGAN on a folder of your images, then make new ones.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (cls, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p, cls)
        if name == "train":
            add_arguments(p, TrainConfig)
    return parser


def say(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_train(target: opts.TrainTarget, values: dict[str, Any]) -> int:
    from . import api
    from .plan import format_duration

    settings = {k: v for k, v in values.items() if k not in {f.name for f in dataclasses.fields(opts.TrainTarget)}}
    if target.dry_run:
        print(api.plan(target.data_dir, target.out, resume=target.resume, **settings))
        return 0
    result = api.train(
        target.data_dir, target.out, resume=target.resume, allow_data_change=target.allow_data_change, **settings
    )
    if result.interrupted:
        return 130
    if result.main_process and result.stop_reason != "nothing to do":
        why = {"steps": "", "time": ", the time budget spent", "patience": ", stopped early (--patience)"}
        print(
            f"done: step {result.step:,} ({result.kimg:,.0f} thousand images shown to D) in "
            f"{format_duration(result.elapsed)}{why.get(result.stop_reason, '')}; checkpoint {result.checkpoint}; "
            f"samples in {result.run_dir / 'samples'}"
        )
    return 0


def cmd_generate(options: opts.GenerateOptions, values: dict[str, Any]) -> int:
    from .api import generate_files

    written = generate_files(options)
    say(f"from {written.source}")
    parts = [f"{len(written.files)} image(s) to {Path(written.files[0]).parent}"] if written.files else []
    parts += [f"the grid {written.grid}"] if written.grid else []
    print("wrote " + " and ".join(parts))
    return 0


def cmd_interpolate(options: opts.InterpolateOptions, values: dict[str, Any]) -> int:
    from .api import write_walk

    count, width, height, source = write_walk(options)
    say(f"from {source}")
    walk = options.walk
    print(
        f"wrote {options.out}: {count} frames ({'lerp' if walk.lerp else 'slerp'}, {walk.frames} per segment"
        f"{', looped' if walk.loop else ''}), each {width}x{height} px"
    )
    return 0


def cmd_arithmetic(options: opts.ArithmeticOptions, values: dict[str, Any]) -> int:
    from .api import write_arithmetic
    from .seeds import format_term

    z, source = write_arithmetic(options)
    say(f"from {source}")
    terms = " ".join(format_term(s, seeds) for s, seeds in options.spec.terms()).removeprefix("+ ")
    print(f"{terms} -> |z| = {z.norm():.2f}")
    print(f"wrote {options.out}")
    if options.save_z:
        print(
            f"wrote {options.save_z} (render it with: dcgan generate {options.source.run} --z {options.save_z} "
            "--grid FILE)"
        )
    return 0


def cmd_prepare(options: opts.PrepareOptions, values: dict[str, Any]) -> int:
    from .dataset import prepare_dataset, summary_line
    from .files import check_output_file, write_json

    if options.report:
        check_output_file(options.report, "--report")
    prepared = prepare_dataset(options.data_dir, options.image_size, options.data, channels=options.channels)
    print(summary_line(prepared.report))
    print(f"cache: {prepared.cache_dir}")
    if options.report:
        write_json(options.report, prepared.report)
    return 0


def cmd_fid(options: opts.FidOptions, values: dict[str, Any]) -> int:
    import json

    from .metrics import InceptionFeatures, compare

    feats = options.features
    extractor = InceptionFeatures(feats.inception, device=feats.device, batch_size=feats.batch_size)
    result = compare(
        options.a,
        options.b,
        extractor,
        n=options.n,
        image_size=options.image_size,
        device=feats.device,
        ema=feats.ema,
        precise_bn=feats.precise_bn,
        kid_subsets=options.kid_subsets,
        kid_subset_size=options.kid_subset_size,
        progress=feats.progress,
        per_class=options.per_class,
    )
    if min(result["n_a"], result["n_b"]) < result["features"]:
        say(
            f"note: fewer images than features ({result['features']}): FID is biased upward; compare only scores "
            "computed with the same numbers of images"
        )
    if result["same_images"]:
        say("note: A and B hold the same images: every score is that of identical sets")
    if options.json:
        print(json.dumps(result))
        return 0
    print(f"FID {result['fid']:.3f}")
    if result["kid_subset_size"] == result["n_a"] == result["n_b"]:
        print(f"KID {result['kid']:.5f} (every subset is all {result['n_a']} images: no spread to report)")
    else:
        print(
            f"KID {result['kid']:.5f} +- {result['kid_std']:.5f} (std over {result['kid_subsets']} subsets of "
            f"{result['kid_subset_size']})"
        )
    if "precision" in result:
        print(f"precision {result['precision']:.3f}, recall {result['recall']:.3f} (k = 3)")
    for name, row in result.get("per_class", {}).items():
        print(f"  {name}: FID {row['fid']:.3f} ({row['n_generated']} generated, {row['n_real']} real)")
    if "intra_fid" in result:
        print(f"intra-FID (mean over classes) {result['intra_fid']:.3f}")
    print(f"A: {result['a']}")
    print(f"B: {result['b']}")
    return 0


def cmd_nearest(options: opts.NearestOptions, values: dict[str, Any]) -> int:
    from .files import check_output_file
    from .images import save_image
    from .metrics import InceptionFeatures
    from .nearest import nearest_grid, nearest_real

    feats = options.features
    run = Path(options.run)
    out = options.out or (run / "nearest.png" if run.is_dir() else run.with_name(f"{run.stem}-nearest.png"))
    check_output_file(out, "--out")
    extractor = InceptionFeatures(feats.inception, device=feats.device, batch_size=feats.batch_size)
    result = nearest_real(
        run,
        options.real,
        extractor,
        n=options.n,
        k=options.neighbours,
        device=feats.device,
        ema=feats.ema,
        precise_bn=feats.precise_bn,
        progress=feats.progress,
    )
    save_image(nearest_grid(result), out, "--out")
    for seed, files, distances in zip(result.seeds, result.files, result.distances):
        print(f"seed {seed}: " + ", ".join(f"{f} ({d:.3g})" for f, d in zip(files, distances)))
    closest = result.closest
    print(
        f"distance from a generated image to its nearest real image: median {result.median_nearest:.3g}, "
        f"smallest {result.distances[closest, 0]:.3g} (seed {result.seeds[closest]})"
    )
    print(
        f"median distance from a real image to its nearest other real image: {result.real_to_real:.3g} "
        "(a generated image much closer than that to a training image is likely a copy)"
    )
    print(f"wrote {out}")
    return 0


def cmd_export(options: opts.ExportOptions, values: dict[str, Any]) -> int:
    from .api import export_file

    result, origin = export_file(options)
    say(f"from {origin}")
    unit = "levels" if options.output == "uint8" else "in the model's range"
    print(
        f"wrote {result.path} ({result.bytes / 1e6:.2f} MB, {options.output} output, opset {options.opset}); "
        f"onnxruntime agrees with PyTorch on seeds 0-15 to {result.max_difference:g} {unit}"
    )
    return 0


def cmd_project(options: opts.ProjectOptions, values: dict[str, Any]) -> int:
    from .api import project_files

    results, origin, notes = project_files(options)
    say(f"from {origin}")
    for note in notes:
        say(note)
    for name, psnr, kind in results:
        within = "" if kind is None else f" in class {kind}"
        print(f"{name}: {psnr:.1f} dB PSNR{within} -> {Path(options.out_dir) / (name + '.npy')}")
    if results and results[0][2] is not None and options.label is None:
        say("each picture went into the class whose images come nearest it; --class CLASS chooses one")
    print(f"wrote {len(results)} z file(s), image(s) and comparison(s) to {options.out_dir}")
    return 0


def cmd_serve(options: opts.ServeOptions, values: dict[str, Any]) -> int:
    try:
        from .serve import serve
    except ImportError:
        raise UserError("dcgan serve needs starlette and uvicorn: pip install 'dcgan[serve]'") from None
    say(f"serving {options.run} at http://{options.host}:{options.port}/ (Ctrl-C stops)")
    serve(
        options.run,
        host=options.host,
        port=options.port,
        checkpoint=options.checkpoint,
        precise_bn=options.precise_bn,
    )
    return 0


def cmd_report(options: opts.ReportOptions, values: dict[str, Any]) -> int:
    from .report import write_report

    print(f"wrote {write_report(options.run, nearest_real=options.real)}")
    return 0


RUNNERS: dict[str, Callable[[Any, dict[str, Any]], int]] = {
    "train": cmd_train,
    "generate": cmd_generate,
    "interpolate": cmd_interpolate,
    "arithmetic": cmd_arithmetic,
    "prepare": cmd_prepare,
    "export": cmd_export,
    "project": cmd_project,
    "serve": cmd_serve,
    "report": cmd_report,
    "fid": cmd_fid,
    "nearest": cmd_nearest,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dcgan`` console script; user mistakes exit non-zero with one clear line."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a usage error (already printed in one line) or --help
        return e.code if isinstance(e.code, int) else 2
    values = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        options = build(COMMANDS[args.command][0], values)
        # train's --threads is a setting of the run, applied by the trainer; the other commands' is applied here.
        holder = getattr(options, "source", None) or getattr(options, "features", None)
        threads = getattr(holder, "threads", None)
        if threads is None:
            return RUNNERS[args.command](options, values)
        from .devices import cpu_threads

        with cpu_threads(threads):
            return RUNNERS[args.command](options, values)
    except ConfigError as e:  # the command line asked for something invalid: a usage error, as argparse's
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a file the user named cannot be read or written
        where = f" {e.filename!r}" if e.filename else ""
        print(f"dcgan {args.command}: error:{where} {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
