"""Seeds: the seed-to-z recipe, seed lists ('0-63', '3,17,42', with z files among them) and the arithmetic
expressions over them.

A seed fixes a z vector: numpy's legacy ``RandomState(seed).standard_normal(latent_dim)`` as float32,
a stream numpy guarantees never to change, so seed 41 means the same z on every machine, in every
language that reimplements the Mersenne Twister, and in the exported ONNX recipe. Everything here is
bounded: seeds are 32-bit, a list holds at most MAX_SEEDS of them, and a range is checked before it is
expanded. No torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from .config import MAX_SEED

MAX_SEEDS = 100_000  # seeds one command or one expression may name
EXAMPLE_EXPRESSION = "[12,40,77] - [5,9,31] + [21,33,60]"
Z_SUFFIX = ".npy"  # a z file (from `dcgan project` or `arithmetic --save-z`) wherever a seed may stand


class Labelled(NamedTuple):
    """A term of a class-conditional model's expression: its class (a name or an index) and what it averages."""

    label: str
    source: list[int] | str


# A term of an expression: its sign, and the seeds it averages or the z file whose rows it averages (either
# with a class, for a class-conditional model: 'ramen:[1,2,3]').
Term = tuple[int, "list[int] | str | Labelled"]


def z_rows(seeds: Iterable[int], latent_dim: int) -> np.ndarray:
    """(N, latent_dim) float32 z, one row per seed: the recipe every tool and export uses."""
    rows = [np.random.RandomState(check_seed(s)).standard_normal(latent_dim) for s in seeds]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, latent_dim), np.float32)


def seed_classes(seeds: Iterable[int], weights: Sequence[float], latent_dim: int) -> np.ndarray:
    """(N,) int64: the class each seed draws when a model's classes are clusters and none is asked for
    (``plan.RunPlan.class_draw``): the ``random_sample()`` that follows the seed's z in its stream
    (``RandomState(seed)``: ``standard_normal(latent_dim)``, then one uniform number), placed on the
    cumulative weights, so a seed draws the same class everywhere and apart from its z's numbers."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    u = []
    for s in seeds:
        stream = np.random.RandomState(check_seed(s))
        stream.standard_normal(latent_dim)
        u.append(stream.random_sample())
    picked = np.searchsorted(cumulative / cumulative[-1], u, side="right")
    return np.minimum(picked, len(cumulative) - 1).astype(np.int64)


def check_seed(seed: int) -> int:
    """A seed as an int in 0..2**32-1; ValueError otherwise (larger seeds would wrap onto smaller ones)."""
    if isinstance(seed, (bool, float)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"a seed is a whole number, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed {seed} is outside 0-{MAX_SEED} (seeds are 32-bit)")
    return int(seed)


def check_seed_list(seeds: Iterable[int], limit: int = MAX_SEEDS) -> list[int]:
    """Seeds given as numbers (the Python API): each checked, at most ``limit`` of them."""
    out: list[int] = []
    for s in seeds:
        out.append(check_seed(s))
        if len(out) > limit:
            raise ValueError(f"more than {limit:,} seeds; ask for fewer")
    return out


def parse_seeds(text: str, limit: int = MAX_SEEDS) -> list[int]:
    """'0-63', '3,17,42' or '0-3,10' -> a list of seeds (ranges include both ends), at most ``limit``."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part or " " in part:
            raise ValueError(f"seeds {text!r}: empty item or a space inside one (use e.g. 0-63 or 3,17,42)")
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"seeds {text!r}: {part!r} is not a seed or a range like 0-63")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"seeds {text!r}: range {part!r} runs backwards; write it low-high")
        for s in (a, b):
            if s > MAX_SEED:
                raise ValueError(f"seeds {text!r}: {s} is outside 0-{MAX_SEED} (seeds are 32-bit)")
        if len(seeds) + (b - a + 1) > limit:
            raise ValueError(f"seeds {text!r}: {len(seeds) + b - a + 1:,} seeds; at most {limit:,} at once")
        seeds.extend(range(a, b + 1))
    return seeds


def parse_stops(text: str, limit: int = MAX_SEEDS) -> list[int | str]:
    """'3,proj/ramen.npy,17-18' -> [3, 'proj/ramen.npy', 17, 18]: seeds, ranges and z files, in order."""
    stops: list[int | str] = []
    for part in (p.strip() for p in text.split(",")):
        if part.lower().endswith(Z_SUFFIX):
            stops.append(part)
        else:
            stops.extend(parse_seeds(part, limit=limit - len(stops)))
    return stops


# --- arithmetic expressions ------------------------------------------------------------------------------


class ExpressionError(ValueError):
    """A malformed latent expression; the message shows the expression with a caret under the problem."""

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.text, self.position, self.problem = text, position, problem
        shown = text.replace("\t", " ")
        super().__init__(f"{problem} (column {position + 1})\n  {shown}\n  {' ' * position}^")


_ITEM = re.compile(r"\s*\d+\s*(-\s*\d+\s*)?")


def _parse_bracket(text: str, start: int, budget: int) -> tuple[list[int], int]:
    """The seeds of the bracket opening at text[start] and the index just past its ']'."""
    close = text.find("]", start + 1)
    reopen = text.find("[", start + 1)
    if 0 <= reopen < close or (close < 0 and reopen >= 0):
        raise ExpressionError(text, reopen, "a '[' before the previous one was closed: add a ']' first")
    if close < 0:
        raise ExpressionError(text, start, "this '[' is never closed; add a ']'")
    content = text[start + 1 : close]
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
            seeds.extend(parse_seeds(re.sub(r"\s+", "", item), limit=budget - len(seeds)))
        except ValueError as e:
            problem = str(e).split(": ", 1)[-1]
            raise ExpressionError(text, first, problem) from None
        offset += len(item) + 1
    return seeds, close + 1


_Z_FILE = re.compile(r"[^\s\[\]]*?\.npy(?=$|\s|[+-])", re.IGNORECASE)
_LABEL = re.compile(r"(\d+|[^\W\d][^\s\[\]:+]*):")


def parse_expression(text: str, limit: int = MAX_SEEDS) -> list[Term]:
    """'[12,40,77] - [5,9,31] + 7' -> [(1, [12, 40, 77]), (-1, [5, 9, 31]), (1, [7])].

    A term is a bracket of seeds and ranges (each stands for the mean z of those seeds), one bare seed, or
    a z file (``proj/ramen.npy``: the mean of its rows), which gives (sign, path); any of them may carry a
    class, ``ramen:[1,2]``, which gives (sign, Labelled("ramen", [1, 2])). All terms together name at most
    ``limit`` seeds.
    """
    terms: list[Term] = []
    used = 0
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
            label = _LABEL.match(text, i)
            if label:
                i = label.end()
                if i == n or text[i].isspace():
                    raise ExpressionError(text, i, f"the class {label.group(1)!r} needs a term after its ':'")
                ch = text[i]
            z_file = _Z_FILE.match(text, i)
            if z_file:
                terms.append((sign, Labelled(label.group(1), z_file.group(0)) if label else z_file.group(0)))
                i, operator_at = z_file.end(), None
                continue
            if ch == "[":
                seeds, i = _parse_bracket(text, i, limit - used)
            elif ch.isdigit():
                j = i
                while j < n and text[j].isdigit():
                    j += 1
                try:
                    seeds = parse_seeds(text[i:j], limit=limit - used)
                except ValueError as e:
                    raise ExpressionError(text, i, str(e).split(": ", 1)[-1]) from None
                i = j
            else:
                raise ExpressionError(text, i, "expected a term here: [seeds], a seed number or a .npy z file")
            used += len(seeds)
            terms.append((sign, Labelled(label.group(1), seeds) if label else seeds))
            operator_at = None
        elif ch in "+-":
            sign, operator_at, i = (1 if ch == "+" else -1), i, i + 1
        elif ch == "[" or ch.isdigit():
            raise ExpressionError(text, i, "missing '+' or '-' before this term")
        else:
            raise ExpressionError(text, i, f"unexpected {ch!r}; expected '+' or '-'")


def format_term(sign: int, seeds: Sequence[int] | str | Labelled, shown: int = 12) -> str:
    """(-1, [5, 9]) -> '- [5,9]', the way the term could have been written (long lists shortened)."""
    if isinstance(seeds, Labelled):
        return ("+ " if sign > 0 else "- ") + seeds.label + ":" + format_term(1, seeds.source, shown)[2:]
    if isinstance(seeds, str):
        return ("+ " if sign > 0 else "- ") + seeds
    items = [str(s) for s in seeds[:shown]] + ([f"... {len(seeds) - shown} more"] if len(seeds) > shown else [])
    return ("+ " if sign > 0 else "- ") + "[" + ",".join(items) + "]"
