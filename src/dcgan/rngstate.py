"""The random streams of a training run, saved into and restored from a checkpoint.

The trainer draws z and augmentation from generators of its own; the global torch, NumPy and Python
streams are saved too, so that anything else drawing from them resumes exactly.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture(z_gen: torch.Generator, aug_gen: torch.Generator) -> dict[str, Any]:
    """Every random stream that can affect training, as checkpoint-ready state (tensors and plain values)."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    state: dict[str, Any] = {
        "z": z_gen.get_state(),
        "augment": aug_gen.get_state(),
        "torch_cpu": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(z_gen: torch.Generator, aug_gen: torch.Generator, state: dict[str, Any]) -> None:
    """Put back what ``capture`` saved (CUDA streams only when the same number of GPUs is visible)."""
    z_gen.set_state(state["z"])
    aug_gen.set_state(state["augment"])
    torch.set_rng_state(state["torch_cpu"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "torch_cuda" in state and torch.cuda.is_available() and len(state["torch_cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
