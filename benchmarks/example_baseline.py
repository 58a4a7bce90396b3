"""A baseline that trains the way pytorch/examples dcgan/main.py does, written here from scratch.

Every image of every epoch is decoded with Pillow, resized, centre-cropped and normalised in a DataLoader;
fp32; G ends in tanh, D in sigmoid + BCELoss; the D step on real, then on the detached fakes, then the G
step reusing that fake batch, with the per-iteration loss reads the example prints. benchmarks/throughput.py
runs it beside dcgan's own step.
"""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

LATENT_DIM = 100
WIDTH = 64
CHANNELS = 3  # the example's ImageFolder loads every image as RGB, so both sides train on 3 channels
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_images(folder: Path) -> list[Path]:
    """The image files under folder, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def load_as_example(path: Path, size: int) -> torch.Tensor:
    """What the example's transforms give: RGB, shorter side resized to size, centre crop, [-1, 1] (3, S, S)."""
    with Image.open(path) as f:
        image = f.convert("RGB")
    w, h = image.size
    if min(w, h) != size:
        scale = size / min(w, h)
        # torchvision's Resize(int) rounds the longer side down; bilinear, which Pillow antialiases.
        image = image.resize(
            (size if w <= h else int(w * scale), size if h <= w else int(h * scale)), Image.Resampling.BILINEAR
        )
        w, h = image.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)  # ToTensor
    return x.sub(0.5).div(0.5)  # Normalize((0.5,) * 3, (0.5,) * 3)


class ExampleFolder(torch.utils.data.Dataset):
    """The image files of a folder, decoded and transformed on every access as the example's loader does."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return load_as_example(self.files[index], self.size), 0  # (image, class), as ImageFolder returns


# --- the baseline's networks and step ------------------------------------------------------------------
def example_stages(image_size: int) -> int:
    stages = int(math.log2(image_size // 4))
    if image_size < 16 or 4 * 2**stages != image_size:
        raise SystemExit(f"--image-size {image_size}: the baseline supports powers of two from 16")
    return stages


class ExampleGenerator(nn.Module):
    """z (B, nz, 1, 1) -> (B, 3, S, S) in [-1, 1]: transposed convs from 4x4, BN + ReLU, tanh output."""

    def __init__(self, image_size: int, nz: int = LATENT_DIM, ngf: int = WIDTH) -> None:
        super().__init__()
        stages = example_stages(image_size)
        mults = [min(2 ** (stages - 1 - i), 8) for i in range(stages)]  # 8, 4, 2, 1 at 64 px
        blocks: list[nn.Module] = [
            nn.ConvTranspose2d(nz, ngf * mults[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mults[0]),
            nn.ReLU(True),
        ]
        for a, b in zip(mults[:-1], mults[1:]):
            blocks += [
                nn.ConvTranspose2d(ngf * a, ngf * b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * b),
                nn.ReLU(True),
            ]
        blocks += [nn.ConvTranspose2d(ngf * mults[-1], CHANNELS, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class ExampleDiscriminator(nn.Module):
    """(B, 3, S, S) -> probability (B,): strided convs, BN + LeakyReLU, a 4x4 conv and a sigmoid."""

    def __init__(self, image_size: int, ndf: int = WIDTH) -> None:
        super().__init__()
        stages = example_stages(image_size)
        mults = [min(2**i, 8) for i in range(stages)]  # 1, 2, 4, 8 at 64 px
        blocks: list[nn.Module] = [nn.Conv2d(CHANNELS, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for a, b in zip(mults[:-1], mults[1:]):
            blocks += [
                nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * b),
                nn.LeakyReLU(0.2, True),
            ]
        blocks += [nn.Conv2d(ndf * mults[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


def init_like_example(module: nn.Module) -> None:
    """N(0, 0.02) conv weights; N(1, 0.02) batch-norm scales with zero shifts."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class BaselineRunner:
    """Trains like the example: a DataLoader that decodes every epoch, fp32, BCELoss on probabilities."""

    def __init__(self, files: list[Path], image_size: int, batch_size: int, workers: int, device: torch.device) -> None:
        self.device = device
        self.loader = torch.utils.data.DataLoader(
            ExampleFolder(files, image_size), batch_size=batch_size, shuffle=True, num_workers=workers
        )
        self.batches = iter(self.loader)
        self.net_g = ExampleGenerator(image_size).to(device)
        self.net_d = ExampleDiscriminator(image_size).to(device)
        self.net_g.apply(init_like_example)
        self.net_d.apply(init_like_example)
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.last: tuple[float, ...] = ()

    def _next_batch(self) -> torch.Tensor:
        try:
            images, _ = next(self.batches)
        except StopIteration:
            # A new epoch: like the example's `for i, data in enumerate(dataloader)`, new workers start.
            self.batches = iter(self.loader)
            images, _ = next(self.batches)
        return images.to(self.device)

    def step(self) -> int:
        """One D update (real, then the detached fakes) and one G update on the same fakes; returns the batch size."""
        real = self._next_batch()
        b = real.shape[0]
        self.net_d.zero_grad()
        label = torch.full((b,), 1.0, dtype=real.dtype, device=self.device)
        out = self.net_d(real)
        err_real = self.criterion(out, label)
        err_real.backward()
        d_x = out.mean().item()
        fake = self.net_g(torch.randn(b, LATENT_DIM, 1, 1, device=self.device))
        label.fill_(0.0)
        out = self.net_d(fake.detach())
        err_fake = self.criterion(out, label)
        err_fake.backward()
        d_g_z1 = out.mean().item()
        err_d = err_real + err_fake
        self.opt_d.step()

        self.net_g.zero_grad()
        label.fill_(1.0)  # fake labels are real for the generator cost
        out = self.net_d(fake)
        err_g = self.criterion(out, label)
        err_g.backward()
        d_g_z2 = out.mean().item()
        self.opt_g.step()
        # The example prints these every iteration; reading them is part of its cost (a device sync).
        self.last = (err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2)
        return b

    def workers(self) -> list[int]:
        """Process ids of the live DataLoader workers."""
        return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


def train_for(
    files: list[Path],
    seconds: float,
    image_size: int = 64,
    batch_size: int = 128,
    workers: int = 2,
    device: torch.device | None = None,
    seed: int = 0,
) -> tuple[ExampleGenerator, int, float]:
    """Train with the example's defaults (batch 128, Adam 2e-4, betas 0.5/0.999, 2 loader workers) for a wall-time
    budget counted from this call, as ``dcgan train --time`` counts it; returns (G, steps, seconds taken)."""
    import time

    start = time.monotonic()
    torch.manual_seed(seed)
    runner = BaselineRunner(files, image_size, batch_size, workers, device or torch.device("cpu"))
    steps = 0
    while time.monotonic() - start < seconds:
        runner.step()
        steps += 1
    return runner.net_g, steps, time.monotonic() - start


@torch.no_grad()
def sample(generator: ExampleGenerator, n: int, seed: int = 0, batch: int = 64, train_mode: bool = True) -> np.ndarray:
    """n uint8 images (N, H, W, 3) from z ~ N(0, 1) drawn with a seed. ``train_mode``: batch norm on the statistics
    of each batch of 64, as the example draws its fake_samples images (it never calls netG.eval()); else on
    the running statistics."""
    generator.train(train_mode)
    rng = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    out = []
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), LATENT_DIM, 1, 1, generator=rng).to(device)
        x = generator(z).float().cpu()
        out.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)
