"""More shapes and sources: rectangular images, transparency (RGBA), and zip and tar archives read in place."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import dcgan
from dcgan import archives, dataset
from dcgan.cli import main
from dcgan.config import DataConfig, ModelConfig, first_map, model_spec
from dcgan.dataset import prepare_dataset
from dcgan.models import Discriminator, Generator

from conftest import run_cli, write_images

SMALL = ["--g-width", "8", "--d-width", "8", "--latent-dim", "16", "--batch-size", "8", "--no-progress"]


# --- rectangles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, first",
    [
        ("64x48", (4, 3, 4)),
        ("128x64", (8, 4, 4)),
        ("32x24", (4, 3, 3)),
        ("24x48", (3, 6, 3)),
        (64, (4, 4, 4)),
        (28, (7, 7, 2)),
    ],
)
def test_rectangles_start_from_a_small_map(size, first):
    assert first_map(ModelConfig(image_size=size).image_size) == first
    spec = model_spec(ModelConfig(image_size=size, g_width=4, latent_dim=8), 3)
    g, d = Generator(spec), Discriminator(spec)
    width, height = spec.width, spec.height
    with torch.no_grad():
        assert g(torch.randn(2, 8)).shape == (2, 3, height, width)
        assert d(torch.randn(2, 3, height, width)).shape == (2,)


def test_an_unreachable_aspect_names_sizes_near_it(tmp_path, capsys):
    write_images(tmp_path / "d", 4)
    assert main(["train", str(tmp_path / "d"), "--out", str(tmp_path / "r"), "--image-size", "100x60"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach it" in err and "96x64" in err
    assert main(["train", str(tmp_path / "d"), "--out", str(tmp_path / "r"), "--image-size", "64x48x2"]) == 2


def test_a_rectangular_run_trains_resumes_and_every_command_draws_it(tmp_path, capsys):
    folder = tmp_path / "wide"
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    run_cli("train", str(folder), "--out", str(run), "--image-size", "32x24", *SMALL, "--steps", "3")
    run_cli("train", str(folder), "--out", str(run), "--resume", "--steps", "5")
    plan = json.loads((run / "config.json").read_text())
    assert plan["model"]["image_size"] == "32x24"
    gen = dcgan.load(run)
    assert gen.images(seeds=[1, 2]).shape == (2, 24, 32, 3) and gen.info["step"] == 5
    assert (
        main(
            [
                "generate",
                str(run),
                "--seeds",
                "0-3",
                "--out-dir",
                str(tmp_path / "g"),
                "--grid",
                str(tmp_path / "grid.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "g" / "seed-0002.png").size == (32, 24)
    assert main(["interpolate", str(run), "--seeds", "1,2", "--frames", "3", "--out", str(tmp_path / "w.gif")]) == 0
    assert Image.open(tmp_path / "w.gif").size[0] / Image.open(tmp_path / "w.gif").size[1] == pytest.approx(32 / 24)
    assert main(["arithmetic", str(run), "[1,2] - 3", "--out", str(tmp_path / "a.png")]) == 0
    from dcgan import metrics
    from test_metrics import ChannelStats

    result = metrics.compare(run, folder, ChannelStats(), n=10, progress=False, kid_subsets=2)
    assert result["image_sizes"] == {"b": "32x24"} and result["fid"] >= 0
    capsys.readouterr()


# --- transparency ------------------------------------------------------------------------------------------


def sprites(folder, n=24, size=16):
    """Coloured discs on a transparent background: the corners are always transparent."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 < (size * 0.4) ** 2
    rng = np.random.default_rng(1)
    for i in range(n):
        pixels = np.zeros((size, size, 4), np.uint8)
        pixels[disc, :3] = rng.integers(40, 255, 3)
        pixels[disc, 3] = 255
        Image.fromarray(pixels, "RGBA").save(folder / f"sprite_{i}.png")
    return folder


def test_rgba_keeps_its_alpha_through_training_and_output(tmp_path, capsys):
    run = tmp_path / "run"
    # Width 32 and a short EMA: the tiniest networks barely move from their init in a few hundred steps.
    run_cli(
        "train",
        str(sprites(tmp_path / "sprites")),
        "--out",
        str(run),
        "--image-size",
        "16",
        "--channels",
        "4",
        "--g-width",
        "32",
        "--d-width",
        "32",
        "--latent-dim",
        "16",
        "--batch-size",
        "16",
        "--ema-beta",
        "0.9",
        "--augment",
        "none",
        "--steps",
        "800",
        "--threads",
        "1",
        "--no-progress",
    )
    gen = dcgan.load(run)
    pixels = gen.images(seeds=range(16))
    assert pixels.shape == (16, 16, 16, 4)
    corners = pixels[:, [0, 0, -1, -1], [0, -1, 0, -1], 3]
    centre = pixels[:, 7:9, 7:9, 3]
    assert corners.mean() < 64 and centre.mean() > 192, (corners.mean(), centre.mean())  # transparent corners
    assert (
        main(
            [
                "generate",
                str(run),
                "--seeds",
                "0",
                "--out-dir",
                str(tmp_path / "png"),
                "--grid",
                str(tmp_path / "grid.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "png" / "seed-0000.png").mode == "RGBA"  # PNG output keeps alpha
    grid = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    # The tile starts below its 12-pixel caption and a 2-pixel margin. Its corner is black and nearly
    # transparent (as in the data), so the light checkerboard shows through rather than black.
    assert grid.shape[-1] == 3 and grid[14:16, 2:4].min() >= 150, grid[14:16, 2:4]
    capsys.readouterr()


def test_channels_4_on_opaque_pictures_warns_then_trains(tmp_path):
    write_images(tmp_path / "opaque", 6)
    proc = run_cli(
        "train",
        str(tmp_path / "opaque"),
        "--out",
        str(tmp_path / "r"),
        "--image-size",
        "16",
        "--channels",
        "4",
        *SMALL,
        "--steps",
        "2",
    )
    assert "no picture here has any" in proc.stderr
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["channels"] == 4


# --- archives ----------------------------------------------------------------------------------------------


def png_bytes(seed: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (20, 20, 3), dtype=np.uint8)).convert(mode).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def members() -> dict[str, bytes]:
    """Two class folders, one nested a level deeper, and one of each kind of bad member."""
    good = {f"a/img_{i}.png": png_bytes(i) for i in range(4)}
    good |= {f"b/deeper/img_{i}.png": png_bytes(10 + i, "RGBA") for i in range(4)}
    return {
        **good,
        "a/notes.txt": b"hello",
        "a/cut.png": png_bytes(99)[:60],
        "../escape.png": png_bytes(98),
        "b/big.png": b"\0" * (2 << 20),
    }


def make_zip(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members().items():
            zf.writestr(name, data)
    return path


def make_tar(path):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("a/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    return path


@pytest.mark.parametrize("make, name", [(make_zip, "data.zip"), (make_tar, "data.tar.gz")])
def test_archives_are_read_in_place_with_every_bad_member_reported(make, name, tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 1 << 20)  # a 2 MB member of zeros plays the zip bomb
    archive = make(tmp_path / name)
    prepared = prepare_dataset(archive, 16, DataConfig(), progress=False, classes="folders")
    report = prepared.report
    assert report["used"] == 8 and prepared.class_names == ("a", "b")
    assert sorted(report["classes"].items()) == [("a", 4), ("b", 4)]
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    others = {o["path"]: o["reason"] for o in report["other_files"]}
    assert reasons["a/cut.png"].startswith("truncated or corrupt")
    assert "escapes the archive" in others["../escape.png"]
    assert "not an image extension" in others["a/notes.txt"]
    assert "more than 1 MB" in {**others, **reasons}["b/big.png"]
    if name.endswith(".tar.gz"):
        assert "a link" in others["a/link.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing was extracted

    def decode_again(*args, **kwargs):
        raise AssertionError("the cache was not found again")

    monkeypatch.setattr(dataset, "_build_cache", decode_again)
    again = prepare_dataset(archive, 16, DataConfig(), progress=False)
    assert again.cache_dir == prepared.cache_dir and again.report["fingerprint"] == report["fingerprint"]
    assert np.array_equal(again.images, prepared.images)


def test_training_from_an_archive_and_a_corrupt_one(tmp_path, capsys):
    archive = make_zip(tmp_path / "data.zip")
    run = tmp_path / "run"
    run_cli("train", str(archive), "--out", str(run), "--image-size", "16", *SMALL, "--steps", "2")
    report = json.loads((run / "data_report.json").read_text())
    assert report["used"] == 8
    (tmp_path / "broken.zip").write_bytes(archive.read_bytes()[:200])
    assert main(["train", str(tmp_path / "broken.zip"), "--out", str(tmp_path / "r2")]) == 1
    err = capsys.readouterr().err
    assert "not a readable archive" in err and "Traceback" not in err
