"""Classes of the pictures of a folder: from its top-level subfolders or from a labels file, for
class-conditional training (``--classes``).

``assign_classes`` maps each decoded file to a class index, lists what it could not map (pictures outside
every class folder, labels-file rows whose files are missing or unusable) and refuses a class list that
cannot train: fewer than two classes, or a class whose pictures were all unusable. No torch.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from .errors import UserError

FOLDERS = "folders"


class LabelError(UserError):
    """The classes cannot be read or cannot train; the message says which and why."""


@dataclass(frozen=True)
class Classes:
    """Each used file's class (-1: none), the class names, and what could not be mapped."""

    labels: np.ndarray  # (N,) int64, index into names, -1 for a file without a class
    names: tuple[str, ...]
    counts: dict[str, int]  # usable images per class
    unlabelled: list[str]  # used files that belong to no class (left out of training)
    missing: list[str]  # labels-file rows whose file is missing or was skipped

    @property
    def fingerprint(self) -> str:
        """Names the mapping, so that a resumed run notices a changed class list or relabelled files."""
        h = hashlib.sha256("\0".join(self.names).encode())
        h.update(self.labels.astype(np.int64).tobytes())
        return h.hexdigest()[:24]

    def report(self) -> dict[str, object]:
        return {"classes": dict(self.counts), "unlabelled": self.unlabelled, "labels_missing": self.missing}


def _key(path: str) -> str:
    """A relative path as the scan writes it: forward slashes, no './'."""
    return "/".join(part for part in PurePosixPath(path.replace("\\", "/")).parts if part != ".")


def read_labels_file(path: str | os.PathLike) -> dict[str, str]:
    """A CSV of path,label rows (a header row 'path,label' is allowed) -> {relative path: label}."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise LabelError(f"--classes {str(path)!r}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise LabelError(f"--classes {str(path)!r}: not a UTF-8 text file") from None
    mapping: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise LabelError(f"--classes {str(path)!r}, line {number}: expected 'path,label', got {','.join(row)!r}")
        mapping[_key(row[0].strip())] = row[1].strip()
    if not mapping:
        raise LabelError(f"--classes {str(path)!r}: no path,label rows")
    return mapping


def assign_classes(source: str, files: list[str], skipped: list[str]) -> Classes:
    """Classes for the used ``files`` (relative to the data folder) by ``source``: 'folders' or a labels file.

    ``skipped`` are the image files the decode could not use: a class whose every picture is among them
    is named in the error.
    """
    if source == FOLDERS:

        def folder(rel: str) -> str | None:
            parts = PurePosixPath(_key(rel)).parts
            return parts[0] if len(parts) > 1 else None

        of = {rel: folder(rel) for rel in files}
        declared = {c for c in (folder(rel) for rel in [*files, *skipped]) if c is not None}
        missing: list[str] = []
        where = "class folders"
    else:
        mapping = read_labels_file(source)
        of = {rel: mapping.get(_key(rel)) for rel in files}
        declared = set(mapping.values())
        used = {_key(rel) for rel in files}
        missing = sorted(p for p in mapping if p not in used)
        where = f"labels in {source!r}"
    counts = Counter(c for c in of.values() if c is not None)
    empty = sorted(declared - set(counts))
    if empty:
        raise LabelError(
            f"class(es) with no usable picture: {', '.join(empty)} (see the data report for why each file was skipped)"
        )
    names = tuple(sorted(counts))
    if len(names) < 2:
        raise LabelError(
            f"--classes needs at least two classes; found {len(names)} among the {where}"
            + (f" ({names[0]})" if names else "")
        )
    index = {name: i for i, name in enumerate(names)}
    labels = np.array([index[c] if c is not None else -1 for c in (of[rel] for rel in files)], dtype=np.int64)
    unlabelled = [rel for rel in files if of[rel] is None]
    return Classes(
        labels=labels, names=names, counts={n: counts[n] for n in names}, unlabelled=unlabelled, missing=missing
    )


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling probability per image that draws every class equally often."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()


def resolve_class(text: str, names: tuple[str, ...]) -> int:
    """A class given by name or index -> its index; LabelError listing the known classes otherwise."""
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    raise LabelError(
        f"unknown class {text!r}; this model knows {', '.join(names)} (or their indices 0-{len(names) - 1})"
    )
