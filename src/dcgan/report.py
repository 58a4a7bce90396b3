"""``dcgan report``: one self-contained HTML file that tells the story of a run.

RUN_DIR/report.html holds everything inline (images as data URLs, no script, no network): the command and
settings, the machine and the time taken, the data report, progress grids over time, the curves, final
samples, an interpolation strip, and, when asked and the metrics extra is installed, the nearest-neighbour
copy check. Training writes it at the end (without the copy check, which needs the Inception network).
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

from .files import atomic_write, read_json_or_none
from .runs import RunFolder

MAX_GRIDS = 8


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _img(png: bytes, alt: str, pixelated: bool = True) -> str:
    style = ' style="image-rendering: pixelated"' if pixelated else ""
    return f'<img alt="{html.escape(alt)}" src="{_data_url(png)}"{style}>'


def write_report(run_dir: str | os.PathLike, nearest_real: str | os.PathLike | None = None) -> Path:
    """Write RUN_DIR/report.html; with ``nearest_real`` (the training folder) add the copy check."""
    folder = RunFolder(Path(run_dir))
    plan = read_json_or_none(folder.config) or {}
    report = folder.data_report()
    summary = read_json_or_none(folder.path / "summary.json")
    parts = [f"<h1>{html.escape(folder.path.name)}</h1>"]

    if summary:
        parts.append(
            "<h2>The run</h2><ul>"
            + "".join(f"<li>{html.escape(k.replace('_', ' '))}: {html.escape(str(v))}</li>" for k, v in summary.items())
            + "</ul>"
        )
    if plan:
        parts.append(
            "<h2>Settings</h2><details><summary>every setting, resolved</summary><table>"
            + "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                for k, v in sorted(_flat(plan).items())
            )
            + "</table></details>"
        )
    if report:
        skipped = "".join(
            f"<tr><td>{html.escape(s['path'])}</td><td>{html.escape(s['reason'])}</td></tr>"
            for s in report.get("skipped", [])
        )
        classes = report.get("classes")
        parts.append(
            f"<h2>Data</h2><p>{report['used']} image(s) used of {report['image_files']}; {report['channels']} "
            f"channel(s), {report['width']}x{report['height']}</p>"
            + (f"<p>Classes: {html.escape(', '.join(f'{k} {v}' for k, v in classes.items()))}</p>" if classes else "")
            + (
                f"<table><tr><th>skipped</th><th>why</th></tr>{skipped}</table>"
                if skipped
                else "<p>No file skipped.</p>"
            )
        )
    grids = sorted(folder.samples.glob("step-*.png"))
    if grids:
        chosen = [grids[round(i * (len(grids) - 1) / (MAX_GRIDS - 1))] for i in range(min(MAX_GRIDS, len(grids)))]
        chosen = list(dict.fromkeys(chosen))
        parts.append(
            "<h2>Progress (the same z throughout)</h2><div class='grids'>"
            + "".join(
                f"<figure>{_img(p.read_bytes(), p.stem)}<figcaption>step {int(p.stem[5:]):,}</figcaption></figure>"
                for p in chosen
            )
            + "</div>"
        )
    if folder.metrics.is_file():
        from .runlog import curve_plot

        plots = [
            (curve_plot(folder.metrics, keys, (560, 260)), title)
            for keys, title in (
                (("d_loss", "g_loss"), "losses"),
                (("d_real", "d_fake"), "D on real and fake"),
                (("augment_p",), "augmentation p"),
                (("fid",), "FID"),
            )
        ]
        parts.append(
            "<h2>Curves</h2>"
            + "".join(
                f"<figure>{_img(_png(plot), title, pixelated=False)}<figcaption>{title}</figcaption></figure>"
                for plot, title in plots
                if plot is not None
            )
        )
    parts += _generator_sections(folder, nearest_real)
    body = "\n".join(parts)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(folder.path.name)}
 · dcgan report</title><style>body {{ font: 14px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
 color: #222; }} figure {{ display: inline-block; margin: 0 1em 1em 0; }} figcaption {{ color: #666; }}
 td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; }} img {{ max-width: 100%; }}
 </style></head><body>{body}</body></html>"""
    path = folder.path / "report.html"
    atomic_write(path, page.encode("utf-8"), durable=False)
    return path


def _generator_sections(folder: RunFolder, nearest_real: str | os.PathLike | None) -> list[str]:
    """Final samples, an interpolation strip and (optionally) the copy check, from the run's checkpoint."""
    from .errors import UserError

    try:
        from .api import TrainedGenerator

        gen = TrainedGenerator(folder.path)
    except UserError:
        return ["<p>No checkpoint yet: no samples to show.</p>"]
    from .figures import walk_strip
    from .images import default_scale
    from .options import MAX_GRID

    seeds = range(32)
    # A row per class for named classes, as many as fit in one grid; a model on clusters draws each seed's.
    many = not gen.class_draw and len(gen.class_names) * len(seeds) > MAX_GRID
    rows = gen.class_names[: MAX_GRID // len(seeds)] if many else None
    parts = [
        f"<h2>Samples</h2><p>From {html.escape(gen.origin)}.</p>",
        _img(_png(gen.grid(seeds=seeds, columns=8, classes=rows)), "samples"),
    ]
    label = gen.class_names[0] if gen.class_names and not gen.class_draw else None
    frames = gen.interpolate([0, 1, 2], frames=8, classes=label)
    scale = default_scale(frames.shape[1], 48)
    strip = walk_strip(frames, 8, ["seed 0", "seed 1", "seed 2"], scale=scale)
    parts.append("<h2>A walk from seed 0 to 1 to 2</h2>" + _img(_png(strip), "interpolation"))
    if nearest_real is not None:
        try:
            from .metrics import InceptionFeatures
            from .nearest import nearest_grid
            from .nearest import nearest_real as find

            result = find(folder.path, nearest_real, InceptionFeatures(device="cpu"), n=8, k=3, progress=False)
            parts.append(
                f"<h2>Does it copy?</h2><p>Median distance from a sample to its nearest training image "
                f"{result.median_nearest:.3g}, against {result.real_to_real:.3g} between real images.</p>"
                + _img(_png(nearest_grid(result)), "nearest training images")
            )
        except UserError as e:
            parts.append(f"<p>Copy check skipped: {html.escape(str(e))}</p>")
    return parts


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out
