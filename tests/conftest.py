"""Shared fixtures: tiny image folders the tests make themselves, and a private cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# fmt: off
TINY = ["--image-size", "16", "--g-width", "8", "--d-width", "8", "--latent-dim", "16", "--batch-size", "8",
        "--no-progress", "--log-every", "1"]
# fmt: on
# The same small run as Python API settings (dcgan.train's keyword names), one thread.
SMALL = {
    "model.image_size": 16,
    "model.g_width": 8,
    "model.d_width": 8,
    "model.latent_dim": 16,
    "batch_size": 8,
    "progress": False,
    "log_every": 1,
    "threads": 1,
}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped where PyTorch sees no CUDA GPU (they run on a lent GPU machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own decode cache, so tests never see each other's data."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DCGAN_CACHE", str(cache))
    return cache


def write_images(
    folder: Path, n: int, size: int = 20, mode: str = "RGB", ext: str = "png", seed: int = 0
) -> list[Path]:
    """n random-blob images, different from each other, saved in folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        img = Image.fromarray(base, "RGB").convert(mode)
        path = folder / f"img_{i:03d}.{ext}"
        img.save(path)
        paths.append(path)
    return paths


@pytest.fixture(autouse=True, scope="session")
def one_thread_in_process():
    """Tests that run models in this process use one intra-op thread too, for the reason cli_env gives
    (projecting three pictures took 252 s with two threads beside another job, 14 s with one). A trainer
    started in this process still sets its own thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_images(folder, 12, ext="png")
    write_images(folder / "sub", 4, ext="jpg", seed=1)
    return folder


def cli_env(env: dict | None = None) -> dict:
    """The environment of every `dcgan` subprocess a test starts: one intra-op thread unless told otherwise.

    These models are tiny, and on a shared machine whose cores other jobs keep busy, two OpenMP threads
    wait on each other at every operator (a 250-step run measured over 300 s with two threads under load,
    11 s with one). The thread count also changes float results, so runs compared bit for bit share it."""
    return {"OMP_NUM_THREADS": "1", **os.environ, **(env or {})}


def run_cli(*args: str, check: bool = True, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m dcgan ARGS` in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "dcgan", *args], capture_output=True, text=True, env=cli_env(env), timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dcgan {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def make_record(step: int = 1, networks: dict | None = None, **fields):
    """A checkpoint record around the given networks (empty state dicts by default), for checkpoint tests."""
    from dcgan import checkpoint as ckpt
    from dcgan.config import ModelConfig, model_spec, to_dict

    spec = model_spec(ModelConfig(image_size=16, g_width=8, latent_dim=8), 3)
    nets = {"generator": {}, "discriminator": {}, "ema": None, "opt_g": {}, "opt_d": {}, **(networks or {})}
    plan = {"model": to_dict(spec), **fields.pop("plan", {})}
    return ckpt.CheckpointRecord(
        model=spec, plan=plan, step=step, epoch=0, sampler={"epoch": 0, "batch": 0}, networks=nets, **fields
    )


def make_plan(overrides: dict | None = None, images: int = 64, channels: int = 3):
    """The plan a CPU without fast bf16 makes for these settings on a folder of ``images`` images."""
    from dcgan.config import build_config
    from dcgan.plan import DataFacts, Machine, resolve

    return resolve(
        build_config(overrides),
        DataFacts(images=images, channels=channels),
        Machine(device="cpu", fast_bf16=False, threads=1),
    )


def load_state(path):
    """A checkpoint as one dict: its networks' state dicts beside its other fields."""
    from dataclasses import fields

    from dcgan import checkpoint as ckpt

    record = ckpt.load(path)
    return {**{f.name: getattr(record, f.name) for f in fields(record) if f.name != "networks"}, **record.networks}
