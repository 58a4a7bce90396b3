"""What a run writes for people to read: metrics.csv, TensorBoard events, a PNG plot of the losses."""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from .files import atomic_write

METRIC_COLUMNS = ("step", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "images_per_sec")


class RunLog:
    """Appends rows to metrics.csv (and TensorBoard when installed); new columns extend the header."""

    def __init__(self, path: str | os.PathLike, tensorboard: str | os.PathLike | None = None) -> None:
        """Rows go to ``path`` (metrics.csv); events to the ``tensorboard`` folder when given and installed."""
        self.path = Path(path)
        self.columns: list[str] = list(METRIC_COLUMNS)
        if self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), None)
            if header:
                self.columns = header
        self.writer = None
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(tensorboard))
            except ImportError:  # tensorboard is optional: metrics.csv has everything
                self.writer = None

    def truncate_after(self, step: int) -> None:
        """Drop rows past a step (a resumed run rewrites what happened after its checkpoint)."""
        if not self.path.exists():
            return
        rows = read_metrics(self.path)
        kept = [r for r in rows if float(r.get("step") or 0) <= step]
        self._rewrite(kept)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        atomic_write(self.path, text.getvalue().encode("utf-8"), durable=False)

    def log(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite(read_metrics(self.path) if self.path.exists() else [])
        fresh = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if fresh:
                w.writeheader()
            w.writerow({k: _fmt(v) for k, v in row.items()})
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(k, v, int(row["step"]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class MetricWindow:
    """Sums each step's metrics between two rows of the log, so the loop reads the device only when it logs.

    Values are anything that adds and divides (tensors on the device, floats).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.clear()

    def clear(self) -> None:
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.start = self.clock()

    def add(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0) + v
        self.count += 1

    def row(
        self, images_per_step: int, reduce: Callable[[Any], float] = float, hidden: Collection[str] = ()
    ) -> dict[str, float]:
        """The mean of each metric (``reduce`` turns one into a number) and images/second; starts a new window."""
        elapsed = self.clock() - self.start
        out = {k: reduce(v / self.count) for k, v in self.sums.items() if k not in hidden}
        out["images_per_sec"] = self.count * images_per_step / max(elapsed, 1e-9)
        self.clear()
        return out


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    """metrics.csv rows as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def plot_losses(
    metrics_path: str | os.PathLike,
    out_path: str | os.PathLike,
    keys: tuple[str, ...] = ("d_loss", "g_loss"),
    size: tuple[int, int] = (800, 400),
) -> bool:
    """Draw columns of metrics.csv against the step into a PNG; False when there is nothing to plot."""
    image = curve_plot(metrics_path, keys, size)
    if image is None:
        return False
    atomic_write(out_path, lambda f: image.save(f, format="PNG"), durable=False)
    return True


def curve_plot(
    metrics_path: str | os.PathLike, keys: tuple[str, ...] = ("d_loss", "g_loss"), size: tuple[int, int] = (800, 400)
) -> Image.Image | None:
    """Columns of metrics.csv against the step, as a picture; None when there is nothing to plot."""
    rows = read_metrics(metrics_path)
    series = {k: [(float(r["step"]), float(r[k])) for r in rows if r.get(k) not in (None, "")] for k in keys}
    series = {k: [(s, v) for s, v in pts if math.isfinite(v)] for k, pts in series.items()}
    points = [p for pts in series.values() for p in pts]
    if len(points) < 2:
        return None
    w, h = size
    left, right, top, bottom = 60, 20, 28, 40
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)

    def to_px(s: float, v: float) -> tuple[float, float]:
        return (left + (s - x0) / (x1 - x0) * (w - left - right), top + (y1 - v) / (y1 - y0) * (h - top - bottom))

    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        _, py = to_px(x0, v)
        draw.line([left - 4, py, left, py], fill="black")
        draw.text((4, py - 6), f"{v:.3g}", fill="black")
    for i in range(5):
        s = x0 + (x1 - x0) * i / 4
        px, _ = to_px(s, y0)
        draw.line([px, h - bottom, px, h - bottom + 4], fill="black")
        draw.text((px - 15, h - bottom + 8), f"{s:.0f}", fill="black")
    draw.text((w // 2 - 15, h - 16), "step", fill="black")
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for i, (k, pts) in enumerate(series.items()):
        if len(pts) >= 2:
            draw.line([to_px(s, v) for s, v in pts], fill=colours[i % len(colours)], width=2)
        draw.text((left + 10 + 80 * i, 8), k, fill=colours[i % len(colours)])
    return img
