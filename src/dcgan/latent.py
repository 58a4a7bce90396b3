"""The generator's latent space: walks between z vectors, arithmetic on mean z, and z saved as .npy files.

Pure functions of z vectors (the .npy helpers read and write one small file); the pictures and
animations that show walks and arithmetic are drawn by ``figures``, seeds are parsed by ``seeds``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .files import atomic_write
from .sampling import z_from_seeds
from .seeds import ExpressionError, Labelled, parse_expression

__all__ = [
    "ExpressionError",
    "evaluate_expression",
    "interpolation_path",
    "lerp",
    "load_z",
    "parse_expression",
    "save_z",
    "slerp",
    "z_from_seeds",
]


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


def interpolation_path(
    z_list: Sequence[torch.Tensor] | torch.Tensor, frames: int, spherical: bool = True, loop: bool = False
) -> torch.Tensor:
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


def evaluate_expression(
    terms: Sequence[tuple[int, Sequence[int] | str | Labelled]],
    z_of_seeds_fn: Callable[[list[int]], torch.Tensor],
    z_of_file_fn: Callable[[str], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(D,) z = sum of sign * (mean z of the term's seeds or file rows), with z_of_seeds_fn(seeds) -> (N, D)
    and z_of_file_fn(path) -> (N, D)."""
    if not terms:
        raise ValueError("an expression needs at least one term")
    parts = [sign * term_z(seeds, z_of_seeds_fn, z_of_file_fn).mean(0) for sign, seeds in terms]
    return torch.stack(parts).sum(0)


def term_z(
    seeds: Sequence[int] | str | Labelled,
    z_of_seeds_fn: Callable[[list[int]], torch.Tensor],
    z_of_file_fn: Callable[[str], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(N, D): the z a term stands for, its seeds' or its file's rows (``load_z`` unless told); a term's class
    does not change its z."""
    if isinstance(seeds, Labelled):
        seeds = seeds.source
    if isinstance(seeds, str):
        z = (z_of_file_fn or load_z)(seeds)
        return z.reshape(-1, z.shape[-1])
    return z_of_seeds_fn(list(seeds))


# --- files -----------------------------------------------------------------------------------------------------


def save_z(path: str | os.PathLike, z: torch.Tensor | np.ndarray) -> None:
    """Save z vectors as a float32 .npy file (no pickle), atomically, creating the folder."""
    array = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float32)
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), durable=False)


def load_z(path: str | os.PathLike) -> torch.Tensor:
    """z vectors saved by ``save_z`` (or any numeric (D,) or (N, D) .npy) as a float32 tensor."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read z vectors from {str(path)!r}: {e}") from None
    if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{str(path)!r} holds a {array.dtype} array of shape {array.shape}; "
            "expected numbers of shape (D,) or (N, D)"
        )
    return torch.from_numpy(array.astype(np.float32))
