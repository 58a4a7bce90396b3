"""The generator as an ONNX file that runs without PyTorch, checked against onnxruntime when it is written.

The exported graph is the sampling generator (the moving average when there is one) in eval mode, with
each batch norm folded into the transposed convolution before it, and the pixel convention of ``images``
built in: input ``z`` (float32, (B, latent_dim)) and, for a class-conditional model, ``class`` (int64, (B,)),
output ``images``, uint8 (B, H, W, C) by default or, with ``output="float"``, (B, C, H, W) in the model's
range. The batch dimension is dynamic. The file's metadata
says what it is (size, channels, latent_dim, range) and how a seed becomes z, so seed 41 gives the same
picture from the ONNX file as from the run folder.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import parse_size, size_of
from .errors import UserError
from .models import ConditionalBatchNorm2d, Generator
from .seeds import z_rows

ONNX_INSTALL = "pip install 'dcgan[onnx]'"
SEED_RECIPE = "numpy.random.RandomState(seed).standard_normal(latent_dim).astype(float32)"
CHECK_SEEDS = range(16)


class ExportError(UserError):
    """The generator cannot be exported, or the exported file does not compute what the model does."""


def fold_batchnorm(generator: Generator) -> nn.Sequential:
    """G's layers with every BatchNorm2d (eval statistics) folded into the ConvTranspose2d before it."""
    layers: list[nn.Module] = []
    children = list(generator.net.children())
    i = 0
    while i < len(children):
        layer = children[i]
        following = children[i + 1] if i + 1 < len(children) else None
        if isinstance(layer, nn.ConvTranspose2d) and isinstance(following, nn.BatchNorm2d):
            layers.append(_fold(layer, following))
            i += 2
        else:
            layers.append(layer)
            i += 1
    return nn.Sequential(*layers).eval()


@torch.no_grad()
def _fold(conv: nn.ConvTranspose2d, norm: nn.BatchNorm2d) -> nn.ConvTranspose2d:
    assert norm.running_mean is not None and norm.running_var is not None
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (C_out,)
    fused = copy.deepcopy(conv)
    fused.weight.mul_(scale[None, :, None, None])  # ConvTranspose2d weight: (C_in, C_out, kH, kW)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    fused.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
    return fused


class ExportedGenerator(nn.Module):
    """z (B, latent_dim) [and class (B,) int64] -> uint8 (B, H, W, C), or the model's float range (B, C, H, W)
    with ``uint8=False``."""

    def __init__(self, generator: Generator, uint8: bool = True) -> None:
        super().__init__()
        self.layers = fold_batchnorm(generator)
        self.latent_dim = generator.latent_dim
        self.num_classes = generator.num_classes
        if generator.num_classes and generator.spec.class_input == "concat":
            self.class_embedding = nn.Parameter(generator.class_embedding.detach().clone())
        self.tanh = generator.spec.output == "tanh"
        self.uint8 = uint8

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        x = z.reshape(z.shape[0], self.latent_dim, 1, 1)
        if not self.num_classes or label is None:
            x = self.layers(x)
        else:
            weights = nn.functional.one_hot(label, self.num_classes).to(z.dtype)
            if hasattr(self, "class_embedding"):
                joined = weights @ self.class_embedding
                x = self.layers(torch.cat([x, joined[:, :, None, None]], dim=1))
            else:
                for layer in self.layers:
                    x = layer(x, weights) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        if not self.uint8:
            return x
        # The pixel convention of images.to_uint8: round half to even (as ONNX Round does), then clip.
        x = (x + 1.0) * 127.5 if self.tanh else x * 255.0
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_difference: float  # largest |onnxruntime - PyTorch| over the check batch (levels for uint8 output)
    bytes: int


def _require_onnx() -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise ExportError(f"ONNX export needs {module}, which is not installed: {ONNX_INSTALL}") from None


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs a line for every torchvision operator it cannot register; this project has none."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_generator(loaded: Any, out: str | os.PathLike, output: str = "uint8", opset: int = 18) -> ExportResult:
    """Write ``loaded`` (a runs.LoadedGenerator) to ``out`` as ONNX, then check it against PyTorch with
    onnxruntime on z from seeds 0-15; ExportError when they disagree (uint8: by more than one level)."""
    import warnings

    _require_onnx()
    import onnxruntime

    wrapper = ExportedGenerator(loaded.net.cpu().eval(), uint8=output == "uint8").eval()
    z = torch.from_numpy(z_rows(CHECK_SEEDS, loaded.model.latent_dim))
    batch = torch.export.Dim("batch", min=1)
    inputs: tuple[torch.Tensor, ...] = (z,)
    names, shapes = ["z"], {"z": {0: batch}}
    if loaded.model.num_classes:  # a class-conditional G takes each image's class too
        inputs = (z, check_classes(loaded.model.num_classes))
        names, shapes = ["z", "class"], {"z": {0: batch}, "label": {0: batch}}
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.onnx")
    try:
        with warnings.catch_warnings(), _quiet_exporter(), contextlib.redirect_stdout(open(os.devnull, "w")):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper,
                inputs,
                input_names=names,
                output_names=["images"],
                opset_version=opset,
                dynamic_shapes=shapes,
                dynamo=True,
                external_data=False,
            )
        if program is None:
            raise ExportError("the exporter returned nothing")
        program.model.metadata_props.update(metadata(loaded, output))
        out.parent.mkdir(parents=True, exist_ok=True)
        program.save(str(tmp))
        difference = _check(str(tmp), wrapper, loaded, output, onnxruntime)
        os.replace(tmp, out)
    except (RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"ONNX export failed: {first}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path=out, max_difference=difference, bytes=out.stat().st_size)


def check_classes(num_classes: int) -> torch.Tensor:
    """The classes of the check batch (seed s in class s mod K)."""
    return torch.tensor([s % num_classes for s in CHECK_SEEDS], dtype=torch.int64)


def metadata(loaded: Any, output: str) -> dict[str, str]:
    """What the file is and how to use it, as ONNX metadata (strings)."""
    from . import __version__

    model = loaded.model
    return {
        "producer": f"dcgan {__version__}",
        "image_size": str(model.image_size),
        "width": str(model.width),
        "height": str(model.height),
        "channels": str(model.channels),
        "latent_dim": str(model.latent_dim),
        "output": output,
        "model_range": "[-1, 1]" if model.output == "tanh" else "[0, 1]",
        "seed_to_z": SEED_RECIPE,
        "checkpoint": loaded.path.name,
        "step": str(loaded.step),
        "ema": str(loaded.used_ema).lower(),
        "precise_bn": str(loaded.precise_bn).lower(),
        "class_names": json.dumps(list(loaded.class_names), ensure_ascii=False),
        "class_draw": json.dumps(list(loaded.class_draw)),
    }


@torch.no_grad()
def _check(path: str, wrapper: ExportedGenerator, loaded: Any, output: str, onnxruntime: Any) -> float:
    """Run the file on z from seeds and compare with the unfolded PyTorch generator; the largest difference."""
    from .images import to_uint8

    z = z_rows(CHECK_SEEDS, loaded.model.latent_dim)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    if loaded.model.num_classes:
        classes = check_classes(loaded.model.num_classes)
        got = session.run(None, {"z": z, "class": classes.numpy()})[0]
        raw = loaded.net(torch.from_numpy(z), classes)
    else:
        got = session.run(None, {"z": z})[0]
        raw = loaded.net(torch.from_numpy(z))
    if output == "uint8":
        expected = to_uint8(raw, loaded.model.output)
        difference = float(np.abs(got.astype(np.int16) - expected.astype(np.int16)).max())
        limit = 1.0
    else:
        expected = raw.numpy()
        difference = float(np.abs(got - expected).max())
        limit = 1e-3
    if got.shape != expected.shape or difference > limit:
        raise ExportError(
            f"the ONNX file disagrees with PyTorch by {difference:g} (at most {limit:g} allowed; "
            f"shapes {got.shape} and {expected.shape})"
        )
    return difference


class OnnxGenerator:
    """A generator read from an exported .onnx file, run by onnxruntime (no torch needed by the caller)."""

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ExportError(
                f"running an .onnx file needs onnxruntime, which is not installed: {ONNX_INSTALL}"
            ) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{str(self.path)!r}: no such file")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for files it cannot read
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"{str(self.path)!r} is not an ONNX file dcgan can run: {first}") from None
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if "latent_dim" not in self.meta or self.meta.get("output") != "uint8":
            raise ExportError(f"{str(self.path)!r} was not exported by `dcgan export` with uint8 output")
        self.latent_dim = int(self.meta["latent_dim"])
        self.width, self.height = size_of(parse_size(self.meta["image_size"]))
        self.class_names = tuple(json.loads(self.meta.get("class_names", "[]")))
        self.class_draw = tuple(float(p) for p in json.loads(self.meta.get("class_draw", "[]")))

    def render(self, z: np.ndarray, classes: np.ndarray | None = None, batch: int = 256) -> np.ndarray:
        """uint8 (N, H, W, C) for z (N, latent_dim) (and class indices (N,) for a class-conditional model)."""
        z = np.asarray(z, dtype=np.float32).reshape(-1, self.latent_dim)
        parts = []
        for i in range(0, len(z), batch):
            feeds = {"z": z[i : i + batch]}
            if classes is not None:
                feeds["class"] = np.asarray(classes[i : i + batch], dtype=np.int64)
            parts.append(self.session.run(None, feeds)[0])
        return np.concatenate(parts) if parts else np.zeros((0, self.height, self.width, 1), np.uint8)

    def describe(self) -> str:
        precise = ", norms re-estimated" if self.meta.get("precise_bn") == "true" else ""
        origin = f"from {self.meta.get('checkpoint', '?')} at step {self.meta.get('step', '?')}{precise}"
        return f"{self.path.name} (ONNX, {origin})"
