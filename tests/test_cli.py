"""End to end: the command line as a user drives it."""

import json

import numpy as np
from PIL import Image

from dcgan.runs import latest_checkpoint

from conftest import TINY, load_state, run_cli, write_images


def test_train_then_generate(image_folder, tmp_path):
    run = tmp_path / "run"
    proc = run_cli("train", str(image_folder), "--out", str(run), *TINY, "--steps", "6", "--sample-every", "3")
    assert "16 image(s) used" in proc.stderr
    for name in ("config.json", "data_report.json", "metrics.csv", "losses.png"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["image_size"] == 16 and config["model"]["channels"] == 3 and config["steps"] == 6
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000003.png", "step-00000006.png"]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:7] == ["step", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "images_per_sec"]
    assert len(rows) == 7
    assert latest_checkpoint(run / "checkpoints").name == "step-00000006.safetensors"

    out = tmp_path / "gen"
    run_cli(
        "generate", str(run), "-n", "10", "--out-dir", str(out), "--grid", str(tmp_path / "grid.png"), "--threads", "1"
    )
    files = sorted(out.iterdir())
    assert len(files) == 10
    assert all(Image.open(f).size == (16, 16) for f in files)
    assert Image.open(tmp_path / "grid.png").size[0] > 16


def test_same_seed_same_weights(image_folder, tmp_path):
    states = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        run_cli("train", str(image_folder), "--out", str(tmp_path / name), *TINY, "--steps", "3", "--seed", seed)
        states.append(load_state(latest_checkpoint(tmp_path / name / "checkpoints")))
    same = all(np.array_equal(states[0]["generator"][k], states[1]["generator"][k]) for k in states[0]["generator"])
    differ = any(
        not np.array_equal(states[0]["generator"][k], states[2]["generator"][k]) for k in states[0]["generator"]
    )
    assert same and differ


def test_seed_preset_trains(image_folder, tmp_path):
    run = tmp_path / "seed"
    run_cli(
        "train",
        str(image_folder),
        "--out",
        str(run),
        "--preset",
        "seed",
        "--image-size",
        "16",
        "--steps",
        "4",
        "--no-progress",
    )
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "seed" and config["loss"] == "lsgan" and config["batch_size"] == 10
    assert config["model"]["output"] == "sigmoid" and config["alternate"] is True
    assert latest_checkpoint(run / "checkpoints") is not None
    assert "d_updated" in (run / "metrics.csv").read_text().splitlines()[0]  # the skip rule's share of D updates


def test_grayscale_folder_trains_as_one_channel(tmp_path):
    from conftest import write_images

    folder = tmp_path / "gray"
    write_images(folder, 6, mode="L")
    run_cli("train", str(folder), "--out", str(tmp_path / "r"), *TINY, "--steps", "2")
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["channels"] == 1


def test_user_mistakes_get_one_line_and_nonzero_exit(tmp_path, image_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    cases = [
        ("train", str(empty), "--out", str(tmp_path / "r1")),
        ("train", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")),
        ("train", str(image_folder), "--out", str(tmp_path / "r3"), "--steps", "1", "--epochs", "1"),
        ("generate", str(tmp_path / "nothing"), "-n", "3", "--out-dir", str(tmp_path / "x")),
        ("generate", str(image_folder), "--seeds", "5-1", "--grid", str(tmp_path / "g.png")),
        ("generate", str(tmp_path / "nothing"), "-n", "3", "--threads", "0"),
        ("train", str(image_folder), "--out", str(tmp_path / "r4"), "--threads", "0"),
    ]
    for args in cases:
        proc = run_cli(*args, check=False)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "error:" in proc.stderr


def test_existing_run_needs_resume(image_folder, tmp_path):
    run = tmp_path / "run"
    run_cli("train", str(image_folder), "--out", str(run), *TINY, "--steps", "2")
    proc = run_cli("train", str(image_folder), "--out", str(run), *TINY, "--steps", "2", check=False)
    assert proc.returncode == 1 and "--resume" in proc.stderr


def test_python_api(image_folder, tmp_path, capsys):
    import torch

    import dcgan

    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2
    config = dcgan.build_config(
        {
            "model.image_size": 16,
            "model.g_width": 8,
            "model.d_width": 8,
            "batch_size": 8,
            "steps": 2,
            "progress": False,
            "device": "cpu",
            "threads": threads,
        }
    )
    result = dcgan.train(image_folder, tmp_path / "run", config)
    assert result.step == 2
    assert f"on cpu with {threads} thread" in capsys.readouterr().err  # --threads applied for the run ...
    assert torch.get_num_threads() == before  # ... and the notebook's own setting given back
    gen = dcgan.load(tmp_path / "run")
    a = gen.images(seeds=[3, 4])
    assert a.shape == (2, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a[1], gen.images(seeds=[4])[0])  # an image depends on its seed alone
    assert gen.pil(seeds=[1])[0].size == (16, 16)
    assert gen.grid(seeds=range(4), labels=True).size[0] > 32


def test_default_grids_are_spaced_when_epochs_are_short(tmp_path):
    """12 images at batch 8: an epoch every step; grids come after an epoch but at least 100 steps apart."""
    data = tmp_path / "data"
    write_images(data, 12)
    run = tmp_path / "run"
    run_cli(
        "train",
        str(data),
        "--out",
        str(run),
        *TINY,
        "--steps",
        "250",
        "--log-every",
        "50",
        "--checkpoint-every",
        "1000",
        "--g-width",
        "4",
        "--d-width",
        "4",
    )
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-00000100.png",
        "step-00000200.png",
        "step-00000250.png",
    ]
