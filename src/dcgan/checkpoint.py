"""The checkpoint file: one typed record of a run's whole state, written and read here and nowhere else.

A checkpoint is one safetensors file. Tensors (model and optimizer state, random streams) go into its
body under their path in the record; everything else (the plan, counters) goes, as JSON, into the
header's metadata. Loading reads the header first and refuses anything that is not a dcgan checkpoint
before touching the body, and never runs code from the file: safetensors parses a JSON header and raw
bytes, nothing else.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save

from .config import ModelSpec, from_dict
from .errors import CheckpointError
from .files import atomic_write
from .schema import ConfigError

__all__ = ["CheckpointError", "CheckpointRecord", "load", "save", "to_bytes"]

FORMAT = "dcgan-checkpoint-1"
MAX_HEADER_BYTES = 64 << 20  # a dcgan header is tens of kB; a larger claim is not a checkpoint
MAX_DEPTH = 32  # nesting of the stored structure (state dicts are about 5 deep)
_TENSOR = "__tensor__"
NETWORKS = ("generator", "discriminator", "ema", "opt_g", "opt_d")


@dataclass
class CheckpointRecord:
    """Everything a checkpoint holds. ``plan`` is the run's plan as saved (``plan.RunPlan.from_dict`` reads
    it back for resume); ``model`` is enough to rebuild the networks, also from older checkpoints."""

    model: ModelSpec
    plan: dict[str, Any]
    step: int
    epoch: int
    sampler: dict[str, int]  # {"epoch", "batch"}: where the data order continues
    networks: dict[str, Any]  # generator, discriminator, ema (or None), opt_g, opt_d state dicts
    rng: dict[str, Any] = field(default_factory=dict)
    augment_p: float = 0.0
    best_fid: float = math.inf
    evals_since_best: int = 0
    data_fingerprint: str = ""
    package_version: str = ""

    def generator_weights(self, ema: bool = True) -> tuple[dict[str, torch.Tensor], bool]:
        """G's state dict (the moving average when there is one and ``ema``), and whether it is the average."""
        if ema and self.networks.get("ema") is not None:
            return self.networks["ema"], True
        return self.networks["generator"], False


# --- the record <-> a nested structure of plain values and tensors ------------------------------------


def _to_structure(record: CheckpointRecord) -> dict[str, Any]:
    return {
        "config": record.plan,
        "step": record.step,
        "epoch": record.epoch,
        "sampler": record.sampler,
        **{name: record.networks.get(name) for name in NETWORKS},
        "rng": record.rng,
        "augment_p": record.augment_p,
        "best_fid": record.best_fid,
        "evals_since_best": record.evals_since_best,
        "data_fingerprint": record.data_fingerprint,
        "package_version": record.package_version,
    }


def _expect(state: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    if key not in state:
        raise CheckpointError(f"{source} is damaged or not from this tool: it has no {key!r}")
    value = state[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CheckpointError(f"{source} is damaged: {key!r} is a {type(value).__name__}")
    return value


def _from_structure(state: Any, source: str) -> CheckpointRecord:
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} is not a dcgan checkpoint (no record inside)")
    plan = _expect(state, "config", dict, source)
    try:
        model = from_dict(ModelSpec, plan.get("model"), where=f"{source} (model)")
    except ConfigError as e:
        raise CheckpointError(f"{source} holds a model that cannot be built: {e}") from None
    networks = {name: state.get(name) for name in NETWORKS}
    for name in ("generator", "discriminator", "opt_g", "opt_d"):
        _expect(state, name, dict, source)
    sampler = _expect(state, "sampler", dict, source)
    return CheckpointRecord(
        model=model,
        plan=plan,
        step=_expect(state, "step", int, source),
        epoch=_expect(state, "epoch", int, source),
        sampler={"epoch": int(sampler.get("epoch", 0)), "batch": int(sampler.get("batch", 0))},
        networks=networks,
        rng=state.get("rng") or {},
        augment_p=float(state.get("augment_p", 0.0)),
        best_fid=float(state.get("best_fid", math.inf)),
        evals_since_best=int(state.get("evals_since_best", 0)),
        data_fingerprint=str(state.get("data_fingerprint", "")),
        package_version=str(state.get("package_version", "")),
    )


def _flatten(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = path or "root"
        # safetensors wants contiguous tensors that share no memory
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [_flatten(k, f"{path}.k{i}", tensors), _flatten(v, f"{path}.{i}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, (list, tuple)):
        return {
            "__list__" if isinstance(obj, list) else "__tuple__": [
                _flatten(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)
            ]
        }
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {path!r} in a checkpoint")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor], depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise CheckpointError("the checkpoint's structure is nested too deeply")
    if isinstance(obj, dict):
        if _TENSOR in obj:
            if obj[_TENSOR] not in tensors:
                raise CheckpointError(f"the checkpoint names a tensor {obj[_TENSOR]!r} it does not hold")
            return tensors[obj[_TENSOR]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors, depth + 1): _unflatten(v, tensors, depth + 1) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors, depth + 1) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors, depth + 1) for v in obj["__tuple__"])
        raise CheckpointError("malformed checkpoint structure")
    return obj


# --- files ---------------------------------------------------------------------------------------------


def to_bytes(record: CheckpointRecord) -> bytes:
    """Serialise a record to safetensors bytes."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(_to_structure(record), "", tensors)
    return st_save(tensors, metadata={"format": FORMAT, "structure": json.dumps(structure)})


def save(path: str | os.PathLike, record: CheckpointRecord) -> None:
    """Atomically and durably write a checkpoint (the old file stays whole if this fails)."""
    atomic_write(path, to_bytes(record))


def _read_header(path: Path, source: str) -> dict[str, Any]:
    """The safetensors header's metadata, read without reading the body; refuses what is not ours."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length <= 0 or length > min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(f"{source} is not a dcgan checkpoint (not a safetensors file)")
            header = json.loads(f.read(length))
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {source}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{source} is not a dcgan checkpoint (its header is not JSON)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise CheckpointError(f"{source} is not a dcgan checkpoint (format {found!r})")
    return metadata


def load(path: str | os.PathLike) -> CheckpointRecord:
    """Read and check a checkpoint; never executes code from the file."""
    path = Path(path)
    source = repr(str(path))
    metadata = _read_header(path, source)
    try:
        tensors = st_load_file(str(path))
        structure = json.loads(metadata.get("structure", "null"))
    except (SafetensorError, OSError, ValueError, RuntimeError, RecursionError) as e:
        raise CheckpointError(f"{source} is damaged: {e}") from None
    return _from_structure(_unflatten(structure, tensors), source)
