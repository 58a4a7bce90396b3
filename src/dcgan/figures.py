"""Pictures and animations of the latent space: walk strips, GIF/MP4 walks, the arithmetic figure."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .files import OutputError, atomic_write
from .images import default_scale, enlarge, make_grid, save_image, to_pil
from .options import WALK_SUFFIXES
from .schema import ConfigError
from .seeds import Labelled

MAX_FRAME_SIDE = 4096  # pixels on a side of one enlarged frame


def check_walk_output(path: str | os.PathLike, frame_size: int | None = None, scale: int | None = None) -> str:
    """The suffix of a walk's output file, after checking that it can be written; OutputError otherwise."""
    from .files import check_output_file

    suffix = Path(path).suffix.lower()
    if suffix not in WALK_SUFFIXES:
        raise ConfigError(f"{str(path)!r}: write the walk as .gif, .mp4 or .png (a strip of the frames)")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "writing .mp4 needs the optional package imageio-ffmpeg: pip install imageio-ffmpeg (or write a .gif)"
            ) from None
    if frame_size is not None and scale is not None and frame_size * scale > MAX_FRAME_SIDE:
        raise ConfigError(f"--scale {scale}: frames of {frame_size * scale} px; at most {MAX_FRAME_SIDE} px a side")
    check_output_file(path, "--out")
    return suffix


def walk_strip(
    frames: np.ndarray, frames_per_segment: int, stops: Sequence[str], loop: bool = False, scale: int = 1
) -> Image.Image:
    """One row per segment, from one stop to the next (both ends shown), ends captioned ('seed 3', 'ramen')."""
    stops = list(stops) + ([stops[0]] if loop else [])
    columns = frames_per_segment + 1
    index = np.concatenate(
        [np.arange(k * frames_per_segment, k * frames_per_segment + columns) for k in range(len(stops) - 1)]
    ) % len(frames)
    labels = []
    for k in range(len(stops) - 1):
        labels += [stops[k]] + [""] * (columns - 2) + [stops[k + 1]]
    return make_grid(frames[index], columns, labels=labels, scale=scale)


def gif_bytes(frames: np.ndarray, fps: float = 20.0) -> bytes:
    """(F, H, W, C) uint8 frames as a looping GIF."""
    images = [to_pil(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def save_animation(frames: np.ndarray, path: str | os.PathLike, fps: float = 20.0) -> None:
    """(F, H, W, C) uint8 frames -> a looping GIF (Pillow) or an MP4 (imageio-ffmpeg), by the suffix."""
    suffix = check_walk_output(path)
    if suffix == ".gif":
        atomic_write(path, gif_bytes(frames, fps), durable=False)
    elif suffix == ".mp4":
        import imageio_ffmpeg

        # yuv420p, which every player reads, needs even sides; repeat the edge pixels to get them.
        rgb = np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
        rgb = np.pad(rgb, ((0, 0), (0, rgb.shape[1] % 2), (0, rgb.shape[2] % 2), (0, 0)), mode="edge")
        target = Path(path)
        tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}.mp4")  # ffmpeg picks the format by suffix
        target.parent.mkdir(parents=True, exist_ok=True)
        writer = imageio_ffmpeg.write_frames(str(tmp), (rgb.shape[2], rgb.shape[1]), fps=fps, macro_block_size=2)
        try:
            writer.send(None)  # start the generator
            for frame in rgb:
                writer.send(np.ascontiguousarray(frame))
            writer.close()
            os.replace(tmp, target)
        finally:
            writer.close()
            tmp.unlink(missing_ok=True)
    else:
        raise OutputError(f"{str(path)!r}: an animation is a .gif or .mp4")


def save_walk(
    frames: np.ndarray,
    path: str | os.PathLike,
    stops: Sequence[str],
    frames_per_segment: int,
    loop: bool = False,
    fps: float = 20.0,
    scale: int | None = None,
) -> tuple[int, int]:
    """Write a walk as an animation (.gif/.mp4) or a strip (.png); returns one frame's (width, height).

    ``scale`` defaults to the smallest that makes a frame at least 128 px in an animation, 64 px in a strip.
    """
    size = frames.shape[1]
    suffix = check_walk_output(path, size, scale)
    if suffix == ".png":
        scale = scale or default_scale(size, 64)
        save_image(walk_strip(frames, frames_per_segment, stops, loop, scale), path)
    else:
        scale = scale or default_scale(size, 128)
        save_animation(enlarge(frames, scale), path, fps)
    return frames.shape[2] * scale, size * scale


def _caption(text: str, size: tuple[int, int], font_size: int = 20) -> Image.Image:
    """A dark tile with text centred in it (the signs between rows of the arithmetic figure)."""
    from PIL import ImageFont

    tile = Image.new("RGB", size, (32, 32, 32))
    draw = ImageDraw.Draw(tile)
    try:
        font = ImageFont.load_default(size=font_size)
    except (OSError, TypeError):  # no FreeType: Pillow's small bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((size[0] - right - left) // 2, (size[1] - bottom - top) // 2), text, fill=(230, 230, 230), font=font)
    return tile


def arithmetic_figure(
    terms: Sequence[tuple[int, Sequence[int] | str | Labelled]],
    term_images: Sequence[np.ndarray],
    mean_images: np.ndarray,
    result_images: np.ndarray,
    scale: int = 1,
    max_shown: int = 8,
) -> Image.Image:
    """Radford et al. (2015) fig. 7 as one image: a row per term (its seeds' images, or its z file's, then
    the image of their mean z, aligned in one column), then '=' and the result (result_images[0]) followed
    by its noisy neighbours (result_images[1:]). ``term_images`` holds at most ``max_shown`` per term.
    """
    gap = 4 * scale + 6
    rows: list[tuple[str, Image.Image, Image.Image | None]] = []
    for (sign, term), pixels, mean in zip(terms, term_images, mean_images):
        pixels = pixels[:max_shown]
        prefix = f"{term.label}:" if isinstance(term, Labelled) else ""
        seeds = term.source if isinstance(term, Labelled) else term
        if isinstance(seeds, str):  # a z file: its rows, by the file's name and row
            labels = [f"{Path(seeds).stem}:{i}" if len(pixels) > 1 else Path(seeds).stem for i in range(len(pixels))]
        else:
            labels = [str(s) for s in seeds[:max_shown]]
            if len(seeds) > max_shown:
                labels[-1] += f" +{len(seeds) - max_shown}"
        rows.append(
            (
                "+" if sign > 0 else "-",
                make_grid(pixels, len(labels), labels=[prefix + label for label in labels], scale=scale),
                make_grid(mean[None], 1, labels=["mean"], scale=scale),
            )
        )
    noisy = result_images[1:]
    rows.append(
        (
            "=",
            make_grid(result_images[:1], 1, labels=["result"], scale=scale),
            make_grid(noisy, len(noisy), labels=["+noise"] * len(noisy), scale=scale) if len(noisy) else None,
        )
    )
    sign_w = 28
    mean_x = sign_w + max(left.width for _, left, _ in rows[:-1]) + gap
    width = max(
        max(mean_x + right.width for _, _, right in rows[:-1] if right is not None),
        sign_w + rows[-1][1].width + gap + (rows[-1][2].width if rows[-1][2] else 0),
    )
    height = sum(left.height for _, left, _ in rows) + gap * (len(rows) - 1)
    figure = Image.new("RGB", (width, height), (32, 32, 32))
    y = 0
    for i, (symbol, left, right) in enumerate(rows):
        figure.paste(_caption(symbol, (sign_w, left.height)), (0, y))
        figure.paste(left, (sign_w, y))
        if right is not None:
            # Means line up in one column; the noisy results follow the result directly.
            figure.paste(right, (mean_x if i < len(rows) - 1 else sign_w + left.width + gap, y))
        y += left.height + gap
    return figure
