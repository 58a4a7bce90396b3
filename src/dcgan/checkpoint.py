"""The whole training state in one safetensors file, written atomically, read without pickle.

A checkpoint is a nested structure of dicts, lists, numbers, strings and tensors (model and optimizer
state dicts, RNG states, counters, the config). Tensors go into the safetensors body under their path;
everything else goes, as JSON, into the header's metadata. Loading therefore never runs code from the
file: safetensors parses a JSON header and raw bytes, nothing else.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT = "dcgan-checkpoint-1"
_TENSOR = "__tensor__"
_NAME = re.compile(r"^step-(\d+)\.safetensors$")


class CheckpointError(Exception):
    """A checkpoint cannot be read or does not fit; the message says why."""


def _flatten(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = path or "root"
        # safetensors wants contiguous tensors that share no memory
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{path}.k{i}", tensors), _flatten(v, f"{path}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return {"__list__" if isinstance(obj, list) else "__tuple__":
                [_flatten(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {path!r} in a checkpoint")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        raise CheckpointError("malformed checkpoint structure")
    return obj


def to_bytes(state: dict[str, Any]) -> bytes:
    """Serialise a nested state to safetensors bytes."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(state, "", tensors)
    return st_save(tensors, metadata={"format": FORMAT, "structure": json.dumps(structure)})


def from_bytes(data: bytes, source: str = "checkpoint") -> dict[str, Any]:
    """Parse bytes written by ``to_bytes``; anything else is refused with CheckpointError."""
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__", {})
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError, RuntimeError) as e:
        raise CheckpointError(f"{source} is not a dcgan checkpoint (not a safetensors file: {e})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a dcgan checkpoint (format {metadata.get('format')!r})")
    return _unflatten(json.loads(metadata["structure"]), tensors)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    A crash at any instant leaves either the old file or the new one, never a torn one; a failed
    write (disk full) removes the temporary file and raises, leaving the old checkpoint in place.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint."""
    atomic_write(path, to_bytes(state))


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint; never executes code from the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {e.strerror or e}") from None
    return from_bytes(data, source=repr(str(path)))


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.safetensors"


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints in a run's checkpoint folder, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest checkpoint in a folder, or None."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def prune(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (best.safetensors is never touched)."""
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
