"""Messy folders: every file accounted for, every mode decoded right, the cache reused and invalidated."""

import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dcgan.config import DataConfig
from dcgan.dataset import DataError, EpochSampler, prepare_dataset
from dcgan.imagefiles import DecodeSettings, decode_file, scan_folder

from conftest import TINY, run_cli, write_images


def decode(path, size=8, **kw):
    return decode_file(str(path), DecodeSettings(size=size, **kw))


def save(img, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


# --- scanning -----------------------------------------------------------------------------------------


def test_scan_recursive_case_insensitive_hidden_unicode_and_symlink_loop(tmp_path):
    red = Image.new("RGB", (10, 10), "red")
    save(red, tmp_path / "a.JPG")
    save(red, tmp_path / "sub" / "deeper" / "b.PnG")
    save(red, tmp_path / "ラーメン の 写真.webp")
    save(red, tmp_path / ".hidden.png")
    save(red, tmp_path / ".cache" / "c.png")
    (tmp_path / "notes.txt").write_text("x")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")  # a link back to the root must not hang the scan
    result = scan_folder(tmp_path)
    assert result.images == ["a.JPG", "sub/deeper/b.PnG", "ラーメン の 写真.webp"]
    assert ("notes.txt", "not an image extension") in result.ignored


@pytest.mark.parametrize(
    "ext,fmt",
    [
        ("jpg", "JPEG"),
        ("jpeg", "JPEG"),
        ("png", "PNG"),
        ("webp", "WEBP"),
        ("bmp", "BMP"),
        ("gif", "GIF"),
        ("tif", "TIFF"),
        ("tiff", "TIFF"),
    ],
)
def test_every_format_decodes(tmp_path, ext, fmt):
    path = save(Image.new("RGB", (12, 12), (200, 30, 30)), tmp_path / f"x.{ext}", format=fmt)
    d = decode(path)
    assert d.pixels is not None and d.pixels.shape == (8, 8, 3)
    assert abs(int(d.pixels[4, 4, 0]) - 200) < 20 and int(d.pixels[4, 4, 1]) < 60


# --- modes --------------------------------------------------------------------------------------------


def test_grayscale_and_palette_gray_are_gray(tmp_path):
    g = decode(save(Image.new("L", (8, 8), 77), tmp_path / "g.png"))
    assert g.grayscale and (g.pixels == 77).all()
    p = decode(save(Image.new("L", (8, 8), 120).convert("P"), tmp_path / "p.png"))
    assert p.grayscale and (p.pixels == 120).all()
    c = decode(save(Image.new("RGB", (8, 8), (10, 200, 10)).quantize(), tmp_path / "c.png"))
    assert not c.grayscale and tuple(c.pixels[0, 0]) == (10, 200, 10)


def test_transparency_composited_on_background(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    path = save(rgba, tmp_path / "t.png")
    assert tuple(decode(path).pixels[0, 0]) == (255, 255, 255)  # default white
    assert tuple(decode(path, background="#000000").pixels[0, 0]) == (0, 0, 0)
    half = save(Image.new("RGBA", (8, 8), (0, 0, 255, 128)), tmp_path / "h.png")
    px = decode(half, background="white").pixels[0, 0]
    assert abs(int(px[0]) - 127) <= 2 and int(px[2]) == 255
    la = save(Image.new("LA", (8, 8), (0, 0)), tmp_path / "la.png")
    d = decode(la)
    assert d.grayscale and (d.pixels == 255).all()
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    d = decode(save(pal, tmp_path / "pt.png", transparency=0), background="blue")
    assert tuple(d.pixels[0, 0]) == (0, 0, 255)


def test_cmyk_and_16_bit(tmp_path):
    cmyk = save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=100)  # red in CMYK
    px = decode(cmyk).pixels[4, 4]
    assert px[0] > 200 and px[1] < 60 and px[2] < 60
    arr = np.full((8, 8), 65535 // 2, dtype=np.uint16)  # mid gray in 16 bits
    path = tmp_path / "g16.png"
    Image.fromarray(arr).save(path)
    d = decode(path)
    assert d.grayscale and abs(int(d.pixels[0, 0, 0]) - 127) <= 1  # scaled, not clipped to 255


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (20, 10), "black")
    img.paste((255, 255, 255), (0, 0, 10, 10))  # white on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = save(img, tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    d = decode(path, size=10, fit="pad", background="red")
    # Displayed upright the picture is 10 wide, 20 tall, white on top.
    assert d.pixels[1, 5].mean() > 200 and d.pixels[8, 5].mean() < 60


def test_crop_and_pad(tmp_path):
    img = Image.new("RGB", (30, 10), "blue")
    img.paste((255, 0, 0), (0, 0, 5, 10))  # red strip at the far left
    path = save(img, tmp_path / "wide.png")
    crop = decode(path, size=10)
    assert (crop.pixels[..., 2] > 200).all()  # the centre crop loses the red edge
    pad = decode(path, size=30, fit="pad", background="black")
    assert pad.pixels.shape == (30, 30, 3)
    assert tuple(pad.pixels[0, 15]) == (0, 0, 0) and pad.pixels[15, 0, 0] > 200  # padding above, red kept


def test_small_images_upscaled_or_skipped(tmp_path):
    up = decode(save(Image.new("RGB", (10, 10)), tmp_path / "s.png"), size=16)
    assert up.upscaled and up.pixels.shape == (16, 16, 3)
    tiny = decode(save(Image.new("RGB", (5, 40)), tmp_path / "t.png"), size=16)
    assert tiny.pixels is None and tiny.reason.startswith("too small")


# --- bad files ----------------------------------------------------------------------------------------


def _png_claiming(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def make_bad_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a picture")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "bomb.png").write_bytes(_png_claiming(100_000, 100_000))


@pytest.mark.parametrize(
    "name,reason",
    [
        ("empty.png", "empty file"),
        ("text.jpg", "not an image"),
        ("truncated.jpg", "truncated"),
        ("bomb.png", "decompression bomb"),
    ],
)
def test_bad_files_give_reasons(tmp_path, name, reason):
    make_bad_files(tmp_path)
    d = decode(tmp_path / name)
    assert d.pixels is None and d.reason.startswith(reason), d.reason


def test_report_accounts_for_every_file_and_duplicates(tmp_path):
    folder = tmp_path / "mixed"
    write_images(folder, 5)
    make_bad_files(folder / "bad")
    (folder / "copy.png").write_bytes((folder / "img_000.png").read_bytes())
    (folder / "readme.md").write_text("x")
    prepared = prepare_dataset(folder, 16, DataConfig(), progress=False)
    r = prepared.report
    assert r["used"] == 5 and r["image_files"] == 10
    assert r["used"] + len(r["skipped"]) == r["image_files"]
    assert r["skipped_by_reason"] == {
        "empty file": 1,
        "not an image": 1,
        "truncated or corrupt": 1,
        "decompression bomb": 1,
        "duplicate": 1,
    }
    assert r["duplicates"] == [["copy.png", "img_000.png"]]
    assert prepared.images.shape == (5, 16, 16, 3) and prepared.images.dtype == np.uint8


# --- the cache ----------------------------------------------------------------------------------------


def test_cache_reused_then_rebuilt_when_folder_or_settings_change(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    write_images(folder, 4)
    first = prepare_dataset(folder, 16, DataConfig(), progress=False)
    import dcgan.dataset as ds

    calls = []
    real_build = ds._build_cache
    monkeypatch.setattr(ds, "_build_cache", lambda *a, **k: (calls.append(1), real_build(*a, **k)))
    again = prepare_dataset(folder, 16, DataConfig(), progress=False)
    assert calls == [] and again.cache_dir == first.cache_dir  # cache hit: nothing decoded
    assert np.array_equal(np.asarray(again.images), np.asarray(first.images))
    assert isinstance(again.images, np.memmap)
    prepare_dataset(folder, 16, DataConfig(fit="pad"), progress=False)  # another setting -> another cache
    assert len(calls) == 1
    write_images(folder / "new", 1, seed=9)  # a new file -> rebuilt
    changed = prepare_dataset(folder, 16, DataConfig(), progress=False)
    assert len(calls) == 2 and changed.report["used"] == 5
    os.utime(folder / "img_000.png", ns=(1, 1))  # a touched file -> rebuilt
    prepare_dataset(folder, 16, DataConfig(), progress=False)
    assert len(calls) == 3


def test_parallel_decode_matches_serial(tmp_path):
    folder = tmp_path / "many"
    write_images(folder, 70)  # above the threshold where decoding goes to worker processes
    par = prepare_dataset(folder, 16, DataConfig(workers=2, cache_dir=str(tmp_path / "c1")), progress=False)
    ser = prepare_dataset(folder, 16, DataConfig(workers=1, cache_dir=str(tmp_path / "c2")), progress=False)
    assert np.array_equal(np.asarray(par.images), np.asarray(ser.images)) and par.files == ser.files


def test_empty_and_unusable_folders_fail_clearly(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="no image files"):
        prepare_dataset(tmp_path / "e", 16, DataConfig(), progress=False)
    make_bad_files(tmp_path / "bad")
    with pytest.raises(DataError, match="no usable image"):
        prepare_dataset(tmp_path / "bad", 16, DataConfig(), progress=False)
    proc = run_cli("train", str(tmp_path / "bad"), "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 1 and "no usable image" in proc.stderr and "Traceback" not in proc.stderr


def test_mixed_folder_trains_and_reports(tmp_path):
    folder = tmp_path / "mixed"
    write_images(folder, 3)
    make_bad_files(folder)
    save(Image.new("RGBA", (30, 20), (0, 0, 0, 0)), folder / "alpha.png")
    save(Image.new("CMYK", (20, 20)), folder / "cmyk.JPEG")
    run = tmp_path / "run"
    proc = run_cli("train", str(folder), "--out", str(run), *TINY, "--steps", "2")
    assert "fewer than --batch-size" in proc.stderr  # 5 usable images, batch 8: trains with a warning
    report = json.loads((run / "data_report.json").read_text())
    assert report["used"] == 5 and len(report["skipped"]) == 4


def test_prepare_command(tmp_path):
    folder = tmp_path / "imgs"
    write_images(folder, 3)
    proc = run_cli("prepare", str(folder), "--image-size", "16", "--report", str(tmp_path / "r.json"))
    assert "3 image(s) used" in proc.stdout and json.loads((tmp_path / "r.json").read_text())["used"] == 3


def test_epoch_sampler_is_a_function_of_seed_and_position():
    a = EpochSampler(10, 3, seed=5)
    seq = [a.next().tolist() for _ in range(7)]
    assert all(len(b) == 3 for b in seq)
    assert sorted(sum(seq[:3], [])) == sorted(set(sum(seq[:3], [])))  # no repeats within an epoch
    b = EpochSampler(10, 3, seed=5, epoch=1, batch=1)  # resume mid-epoch
    assert [b.next().tolist() for _ in range(3)] == seq[4:7]
