"""Watching a run for the two ways a GAN run goes wrong and saying what to try, once each.

- D has won: D(real) near 1 and D(fake) near 0 on every logged row for a long stretch. G then gets no
  useful gradient, and samples stop improving.
- G has collapsed: the progress grid (the same fixed z every time) shows nearly identical images, far
  less varied than the real ones, on two grids in a row past the start of the run.

Pure: it reads rows of numbers and grids of pixels, so tests feed it synthetic streams.
"""

from __future__ import annotations

import numpy as np

# D's mean output (a logit, or a score for least squares) beyond which it is "sure" of real and fake.
SURE = {"bce": (3.0, -3.0), "hinge": (2.0, -2.0), "lsgan": (0.9, 0.1)}
COLLAPSE_RATIO = 0.15  # a grid this much less varied than the real images has collapsed


def diversity(pixels: np.ndarray, pairs: int = 256, seed: int = 0) -> float:
    """Mean RMS difference between random pairs of images (N, H, W, C) uint8, on a 0-1 scale."""
    n = len(pixels)
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n  # never an image with itself
    x = pixels.reshape(n, -1).astype(np.float32) / 255.0
    return float(np.sqrt(((x[a] - x[b]) ** 2).mean(axis=1)).mean())


class Monitor:
    """Reads each logged row and each progress grid; returns a warning the first time a problem holds."""

    def __init__(self, loss: str, total_steps: int, real_diversity: float, stretch: int | None = None) -> None:
        self.real_above, self.fake_below = SURE[loss]
        # "A long stretch": a tenth of the run, at least 500 steps (a short run never warns).
        self.stretch = stretch if stretch is not None else max(500, total_steps // 10)
        self.grace = self.stretch  # grids before this step are not judged: G starts from noise
        self.real_diversity = real_diversity
        self.won_since: int | None = None
        self.low_grids = 0
        self.warned: set[str] = set()

    def on_row(self, step: int, d_real: float, d_fake: float) -> str | None:
        """A logged row's mean D outputs (on real and on fake images)."""
        if d_real > self.real_above and d_fake < self.fake_below:
            self.won_since = step if self.won_since is None else self.won_since
        else:
            self.won_since = None
        if self.won_since is not None and step - self.won_since >= self.stretch and "d_won" not in self.warned:
            self.warned.add("d_won")
            return (
                f"warning: D has clearly won since step {self.won_since:,} (D(real) near 1, D(fake) near 0): G "
                "gets almost no gradient and samples stop improving. Try --augment diffaugment --augment-p auto "
                "(more so on a small folder), --spectral-norm or --r1-gamma 1, or a lower --lr-d"
            )
        return None

    def on_grid(self, step: int, pixels: np.ndarray) -> str | None:
        """A progress grid (N, H, W, C) uint8 from the fixed z."""
        if step < self.grace or self.real_diversity <= 0:
            return None
        spread = diversity(pixels)
        self.low_grids = self.low_grids + 1 if spread < COLLAPSE_RATIO * self.real_diversity else 0
        if self.low_grids >= 2 and "collapse" not in self.warned:
            self.warned.add("collapse")
            return (
                f"warning: G has collapsed: the progress grid's images are nearly identical (difference "
                f"{spread:.3f} between images, against {self.real_diversity:.3f} among real ones). Try --loss "
                "hinge, --spectral-norm, a lower --lr-g or a larger --batch-size"
            )
        return None
