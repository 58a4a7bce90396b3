"""Walks and arithmetic in the generator's latent space, and the files that show them.

Everything here is a pure function of z vectors or of images; the generator itself lives in ``api``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .sampling import make_grid, parse_seeds, save_image, to_pil

EXAMPLE_EXPRESSION = "[12,40,77] - [5,9,31] + [21,33,60]"
WALK_FORMATS = (".gif", ".mp4", ".png")


# --- interpolation ---------------------------------------------------------------------------------------------

def _t_column(t: float | torch.Tensor) -> torch.Tensor:
    # A (T,) t becomes (T, 1) so it broadcasts against vectors (D,) or a batch (T, D).
    t = torch.as_tensor(t, dtype=torch.float64)
    return t.unsqueeze(-1) if t.ndim else t


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation a + t (b - a); a (T,) t gives (T, D) rows."""
    out = a.double() + _t_column(t) * (b.double() - a.double())
    return out.to(torch.result_type(a, b))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the great circle from a to b; a (T,) t gives (T, D) rows.

    Keeps the norm when |a| = |b|: Gaussian z lie near a shell of radius sqrt(D), and lerp cuts inside it, where
    the generator saw no z in training. (Anti)parallel vectors have no unique great circle: they fall back to lerp.
    """
    a64, b64, t64 = a.double(), b.double(), _t_column(t)
    norms = a64.norm(dim=-1, keepdim=True) * b64.norm(dim=-1, keepdim=True)
    cos = ((a64 * b64).sum(-1, keepdim=True) / norms.clamp_min(1e-30)).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin_omega = torch.sin(omega)
    parallel = sin_omega < eps
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    out = (torch.sin((1.0 - t64) * omega) / safe) * a64 + (torch.sin(t64 * omega) / safe) * b64
    out = torch.where(parallel, a64 + t64 * (b64 - a64), out)
    return out.to(torch.result_type(a, b))


def interpolation_path(z_list: Sequence[torch.Tensor] | torch.Tensor, frames: int, spherical: bool = True,
                       loop: bool = False) -> torch.Tensor:
    """(F, D) z visiting each z in turn, ``frames`` steps per segment; frame k * frames is exactly z_list[k].

    Without ``loop`` the path ends on the last z: F = frames * (K - 1) + 1. With ``loop`` it goes on back
    toward the first z and stops one step short of it, so a looping animation has no repeated frame:
    F = frames * K.
    """
    z = torch.stack(list(z_list)) if not isinstance(z_list, torch.Tensor) else z_list
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"interpolation needs at least two z vectors, got {tuple(z.shape)}")
    if frames < 1:
        raise ValueError(f"frames per segment must be at least 1, got {frames}")
    ends = torch.cat([z, z[:1]]) if loop else z
    t = torch.arange(frames, dtype=torch.float64) / frames
    mix = slerp if spherical else lerp
    segments = [mix(ends[k], ends[k + 1], t) for k in range(len(ends) - 1)]
    if not loop:
        segments.append(z[-1:].to(segments[0].dtype))
    return torch.cat(segments)


# --- arithmetic ------------------------------------------------------------------------------------------------

class ExpressionError(ValueError):
    """A malformed latent expression; the message shows the expression with a caret under the problem."""

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.text, self.position, self.problem = text, position, problem
        shown = text.replace("\t", " ")
        super().__init__(f"{problem} (column {position + 1})\n  {shown}\n  {' ' * position}^")


_ITEM = re.compile(r"\s*\d+\s*(-\s*\d+\s*)?")


def _parse_bracket(text: str, start: int) -> tuple[list[int], int]:
    """The seeds of the bracket opening at text[start] and the index just past its ']'."""
    close = text.find("]", start + 1)
    reopen = text.find("[", start + 1)
    if 0 <= reopen < close or (close < 0 and reopen >= 0):
        raise ExpressionError(text, reopen, "a '[' before the previous one was closed: add a ']' first")
    if close < 0:
        raise ExpressionError(text, start, "this '[' is never closed; add a ']'")
    content = text[start + 1:close]
    if not content.strip():
        raise ExpressionError(text, start, "empty brackets: list seeds, e.g. [3,17,42] or [0-9]")
    seeds: list[int] = []
    offset = start + 1
    for item in content.split(","):
        first = offset + len(item) - len(item.lstrip())  # the item's first visible character
        bad = next((i for i, ch in enumerate(item) if not (ch.isdigit() or ch.isspace() or ch == "-")), None)
        if bad is not None:
            raise ExpressionError(text, offset + bad, f"unexpected {item[bad]!r} inside brackets")
        if not item.strip():
            raise ExpressionError(text, offset + len(item), "empty item inside brackets (a stray comma?)")
        gap = re.search(r"\d\s+(?=\d)", item)
        if gap:
            raise ExpressionError(text, offset + gap.end(), "missing ',' between seeds")
        if not _ITEM.fullmatch(item):
            raise ExpressionError(text, first, f"{item.strip()!r} is not a seed or a range like 3-5")
        try:
            seeds.extend(parse_seeds(item))
        except ValueError:
            raise ExpressionError(text, first, f"range {item.strip()!r} runs backwards; write it low-high") from None
        offset += len(item) + 1
    return seeds, close + 1


def parse_expression(text: str) -> list[tuple[int, list[int]]]:
    """'[12,40,77] - [5,9,31] + 7' -> [(1, [12, 40, 77]), (-1, [5, 9, 31]), (1, [7])].

    A term is a bracket of seeds and ranges (each stands for the mean z of those seeds) or one bare seed.
    """
    terms: list[tuple[int, list[int]]] = []
    i, n = 0, len(text)
    sign, operator_at = 1, None  # the sign of the next term, and where its operator stood
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            if not terms and operator_at is None:
                raise ExpressionError(text, i, f"empty expression; write e.g. {EXAMPLE_EXPRESSION}")
            if operator_at is not None:
                raise ExpressionError(text, operator_at, f"{text[operator_at]!r} has no term after it")
            return terms
        ch = text[i]
        expecting_term = not terms or operator_at is not None
        if expecting_term:
            if ch in "+-" and not terms and operator_at is None:
                sign, operator_at, i = (1 if ch == "+" else -1), i, i + 1
                continue
            if ch == "[":
                seeds, i = _parse_bracket(text, i)
            elif ch.isdigit():
                j = i
                while j < n and text[j].isdigit():
                    j += 1
                seeds, i = [int(text[i:j])], j
            else:
                raise ExpressionError(text, i, "expected a term here: [seeds] or a seed number")
            terms.append((sign, seeds))
            operator_at = None
        elif ch in "+-":
            sign, operator_at, i = (1 if ch == "+" else -1), i, i + 1
        elif ch == "[" or ch.isdigit():
            raise ExpressionError(text, i, "missing '+' or '-' before this term")
        else:
            raise ExpressionError(text, i, f"unexpected {ch!r}; expected '+' or '-'")


def evaluate_expression(terms: Sequence[tuple[int, Sequence[int]]],
                        z_of_seeds_fn: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
    """(D,) z = sum of sign * (mean z of the term's seeds), with z_of_seeds_fn(seeds) -> (N, D)."""
    if not terms:
        raise ValueError("an expression needs at least one term")
    return sum(sign * z_of_seeds_fn(list(seeds)).mean(0) for sign, seeds in terms)


def format_term(sign: int, seeds: Sequence[int]) -> str:
    """(-1, [5, 9]) -> '- [5,9]', the way the term could have been written."""
    return ("+ " if sign > 0 else "- ") + "[" + ",".join(str(s) for s in seeds) + "]"


# --- files -----------------------------------------------------------------------------------------------------

def save_z(path: str | os.PathLike, z: torch.Tensor | np.ndarray) -> None:
    """Save z vectors as a float32 .npy file (no pickle), creating the folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float32),
            allow_pickle=False)


def load_z(path: str | os.PathLike) -> torch.Tensor:
    """z vectors saved by ``save_z`` (or any numeric (D,) or (N, D) .npy) as a float32 tensor."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read z vectors from {str(path)!r}: {e}") from None
    if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{str(path)!r} holds a {array.dtype} array of shape {array.shape}; "
                         "expected numbers of shape (D,) or (N, D)")
    return torch.from_numpy(array.astype(np.float32))


def default_scale(size: int, target: int) -> int:
    """The smallest whole enlargement that makes a size-px image at least target px."""
    return max(1, -(-target // size))


def enlarge(pixels: np.ndarray, scale: int) -> np.ndarray:
    """(N, H, W, C) uint8 enlarged scale times with nearest neighbour, keeping the pixels crisp."""
    return pixels if scale == 1 else pixels.repeat(scale, axis=1).repeat(scale, axis=2)


def check_walk_output(path: str | os.PathLike) -> str:
    """The suffix of a walk's output file, or a ValueError saying what is supported or missing."""
    suffix = Path(path).suffix.lower()
    if suffix not in WALK_FORMATS:
        raise ValueError(f"{str(path)!r}: write the walk as .gif, .mp4 or .png (a strip of the frames)")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ValueError("writing .mp4 needs the optional package imageio-ffmpeg: "
                             "pip install imageio-ffmpeg (or write a .gif)") from None
    return suffix


def walk_strip(frames: np.ndarray, frames_per_segment: int, seeds: Sequence[int], loop: bool = False,
               scale: int = 1) -> Image.Image:
    """One row per segment, from one seed to the next (both ends shown), ends captioned by seed."""
    stops = list(seeds) + ([seeds[0]] if loop else [])
    columns = frames_per_segment + 1
    index = np.concatenate([np.arange(k * frames_per_segment, k * frames_per_segment + columns)
                            for k in range(len(stops) - 1)]) % len(frames)
    labels = []
    for k in range(len(stops) - 1):
        labels += [f"seed {stops[k]}"] + [""] * (columns - 2) + [f"seed {stops[k + 1]}"]
    return make_grid(frames[index], columns, labels=labels, scale=scale)


def save_animation(frames: np.ndarray, path: str | os.PathLike, fps: float = 20.0) -> None:
    """(F, H, W, C) uint8 frames -> a looping GIF (Pillow) or an MP4 (imageio-ffmpeg), by the suffix."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    suffix = check_walk_output(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        images = [to_pil(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    elif suffix == ".mp4":
        import imageio_ffmpeg

        # yuv420p, which every player reads, needs even sides; repeat the edge pixels to get them.
        rgb = np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
        rgb = np.pad(rgb, ((0, 0), (0, rgb.shape[1] % 2), (0, rgb.shape[2] % 2), (0, 0)), mode="edge")
        writer = imageio_ffmpeg.write_frames(str(path), (rgb.shape[2], rgb.shape[1]), fps=fps, macro_block_size=2)
        writer.send(None)  # start the generator
        try:
            for frame in rgb:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
    else:
        raise ValueError(f"{str(path)!r}: an animation is a .gif or .mp4")


def save_walk(frames: np.ndarray, path: str | os.PathLike, seeds: Sequence[int], frames_per_segment: int,
              loop: bool = False, fps: float = 20.0, scale: int | None = None) -> tuple[int, int]:
    """Write a walk as an animation (.gif/.mp4) or a strip (.png); returns one frame's (width, height).

    ``scale`` defaults to the smallest that makes a frame at least 128 px in an animation, 64 px in a strip.
    """
    suffix = check_walk_output(path)
    size = frames.shape[1]
    if suffix == ".png":
        scale = scale or default_scale(size, 64)
        save_image(walk_strip(frames, frames_per_segment, seeds, loop, scale), path)
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


def arithmetic_figure(terms: Sequence[tuple[int, Sequence[int]]], term_images: Sequence[np.ndarray],
                      mean_images: np.ndarray, result_images: np.ndarray, scale: int = 1,
                      max_shown: int = 8) -> Image.Image:
    """Radford et al. (2015) fig. 7 as one image: a row per term (its seeds' images, then the image of their
    mean z, aligned in one column), then '=' and the result (result_images[0]) followed by its noisy
    neighbours (result_images[1:]).
    """
    gap = 4 * scale + 6
    rows: list[tuple[str, Image.Image, Image.Image | None]] = []
    for (sign, seeds), pixels, mean in zip(terms, term_images, mean_images):
        shown = list(seeds)[:max_shown]
        labels = [str(s) for s in shown]
        if len(seeds) > max_shown:
            labels[-1] += f" +{len(seeds) - max_shown}"
        rows.append(("+" if sign > 0 else "-", make_grid(pixels[:max_shown], len(shown), labels=labels, scale=scale),
                     make_grid(mean[None], 1, labels=["mean"], scale=scale)))
    noisy = result_images[1:]
    rows.append(("=", make_grid(result_images[:1], 1, labels=["result"], scale=scale),
                 make_grid(noisy, len(noisy), labels=["+noise"] * len(noisy), scale=scale) if len(noisy) else None))
    sign_w = 28
    mean_x = sign_w + max(left.width for _, left, _ in rows[:-1]) + gap
    width = max(max(mean_x + right.width for _, _, right in rows[:-1]),
                sign_w + rows[-1][1].width + gap + (rows[-1][2].width if rows[-1][2] else 0))
    height = sum(left.height for _, left, _ in rows) + gap * (len(rows) - 1)
    figure = Image.new("RGB", (width, height), (32, 32, 32))
    y = 0
    for i, (sign, left, right) in enumerate(rows):
        figure.paste(_caption(sign, (sign_w, left.height)), (0, y))
        figure.paste(left, (sign_w, y))
        if right is not None:
            # Means line up in one column; the noisy results follow the result directly.
            figure.paste(right, (mean_x if i < len(rows) - 1 else sign_w + left.width + gap, y))
        y += left.height + gap
    return figure
