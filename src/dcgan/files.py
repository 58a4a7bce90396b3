"""Writing files safely: every file dcgan writes goes through ``atomic_write``, and every output path a user
names is checked with ``check_output_file`` / ``check_output_dir`` before any work starts.

An atomic write goes to a temporary file in the same folder, is flushed to disk, then renamed over the
target: a crash at any instant leaves the old file or the new one, never a torn one, and a failed write
(disk full) removes the temporary file and leaves the old one in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import UserError


class OutputError(UserError):
    """An output path cannot be written; the message says which and why."""


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[IO[bytes]], Any], durable: bool = True) -> None:
    """Write bytes (or whatever ``data(file)`` writes) to ``path`` atomically; creates the folder.

    ``durable`` fsyncs the file and the folder, so the rename survives a power cut (checkpoints); logs and
    images skip it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        try:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


def json_bytes(value: Any) -> bytes:
    """Indented UTF-8 JSON. File names that are not valid UTF-8 (kept by Python as lone surrogates) are
    written as JSON escapes (\\udcXX), which read back to the same name, instead of failing."""
    text = json.dumps(value, indent=1, ensure_ascii=False, sort_keys=False)
    return (text + "\n").encode("utf-8", "backslashreplace")


def write_json(path: str | os.PathLike, value: Any, durable: bool = False) -> None:
    """Write JSON atomically (see ``json_bytes``)."""
    atomic_write(path, json_bytes(value), durable=durable)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; OSError and ValueError (a truncated or mistyped file) pass to the caller."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_json_or_none(path: str | os.PathLike) -> Any:
    """A JSON file, or None when it is missing or unreadable (a file another process is still writing)."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def printable(name: str) -> str:
    """A path for messages: undecodable bytes shown as \\xNN instead of failing to print."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Fail now, with the flag's name, when ``path`` cannot become a file (a folder, or an unwritable place)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {str(path)!r} is a folder; give a file name")
    parent = _existing_ancestor(path.parent)
    if not parent.is_dir():
        raise OutputError(f"{flag} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"{flag} {str(path)!r}: no permission to write there")
    return path


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Fail now when ``path`` cannot be (or become) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {str(path)!r} is a file, not a folder")
    parent = _existing_ancestor(path)
    if not parent.is_dir():
        raise OutputError(f"{flag} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {str(path)!r}: no permission to write there")
    return path


def _existing_ancestor(path: Path) -> Path:
    """The path itself or its nearest ancestor that exists (the place a new file or folder would go)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
