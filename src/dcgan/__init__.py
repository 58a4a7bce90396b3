"""dcgan: train a DCGAN on a folder of your own images, then make, blend and explore new ones.

The package imports nothing heavy until it is used: ``dcgan.train``, ``dcgan.load``, ``dcgan.plan`` and
``dcgan.build_config`` are loaded on first access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
__all__ = [
    "train",
    "load",
    "plan",
    "build_config",
    "TrainConfig",
    "ModelConfig",
    "DataConfig",
    "UserError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in ("train", "load", "plan", "TrainedGenerator"):
        from . import api

        return getattr(api, name)
    if name in ("build_config", "TrainConfig", "ModelConfig", "DataConfig"):
        from . import config

        return getattr(config, name)
    if name == "UserError":
        from .errors import UserError

        return UserError
    raise AttributeError(f"module 'dcgan' has no attribute {name!r}")
