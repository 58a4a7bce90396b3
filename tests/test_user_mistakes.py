"""The table of bad inputs: every one gets a one-line error and a non-zero exit, never a traceback, and the
Python API refuses the same settings with the same words. In-process: ``cli.main`` with captured output."""

from __future__ import annotations

import json
import os
import time

import pytest

import dcgan
from dcgan.cli import main
from dcgan.config import ConfigError

from conftest import write_images


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A data folder and a run trained on it for 2 steps (16 px, latent_dim 8)."""
    base = tmp_path_factory.mktemp("mistakes")
    write_images(base / "data", 10)
    os.environ["DCGAN_CACHE"] = str(base / "cache")
    try:
        args = ["train", str(base / "data"), "--out", str(base / "run"), "--image-size", "16", "--g-width", "4"]
        rc = main([*args, "--latent-dim", "8", "--batch-size", "4", "--steps", "2", "--no-progress", "--threads", "1"])
    finally:
        del os.environ["DCGAN_CACHE"]
    assert rc == 0
    (base / "a-file").write_text("x")
    return base


def run(argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


# (arguments after the command's positional ones, exit status, words the message holds)
TRAIN = [
    (["--lr-d", "nan"], 2, "--lr-d must be a finite number"),
    (["--beta1", "1.5"], 2, "--beta1 must be below 1"),
    (["--g-width", "100000"], 2, "--g-width must be at most 1024"),
    (["--workers", "-1"], 2, "--workers must be at least 0"),
    (["--augment", "ada"], 2, "invalid choice: 'ada'"),
    (["--loss", "wgan"], 2, "invalid choice: 'wgan'"),
    (["--on-nan", "ignore"], 2, "invalid choice: 'ignore'"),
    (["--d-head", "mlp"], 2, "invalid choice: 'mlp'"),
    (["--augment-policy", "blur"], 2, "unknown transform(s) blur"),
    (["--augment-target", "7"], 2, "--augment-target must be below 1"),
    (["--augment-p", "1.5"], 2, "--augment-p must be at most 1"),
    (["--augment-p", "often"], 2, "expected a number or one of 'auto'"),
    (["--time", "30x"], 2, "expected a duration"),
    (["--steps", "1", "--epochs", "1"], 2, "give one run length"),
    (["--patience", "3"], 2, "add --eval-every"),
    (["--simultaneous", "--alternate"], 2, "not with --alternate"),
    (["--seed", "4294967296"], 2, "--seed must be at most 4294967295"),
    (["--device", "tpu"], 2, "invalid choice: 'tpu'"),
    (["--threads", "0"], 2, "--threads must be at least 1"),
    (["--background", "chartreuse-ish"], 2, "unknown colour"),
]


@pytest.mark.parametrize("args, status, words", TRAIN)
def test_train_settings(tiny, tmp_path, capsys, args, status, words):
    out = tmp_path / "run"
    rc, err = run(["train", str(tiny / "data"), "--out", str(out), "--cache-dir", str(tmp_path / "c"), *args], capsys)
    assert rc == status and words in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "c").exists()  # refused before any decoding or writing


# The same settings through the Python API: the same refusal, in the same words.
API = [
    ({"lr_d": float("nan")}, "--lr-d must be a finite number"),
    ({"beta1": 1.5}, "--beta1 must be below 1"),
    ({"model.g_width": 100000}, "--g-width must be at most 1024"),
    ({"data.workers": -3}, "--workers must be at least 0"),
    ({"augment": "ada"}, "--augment: expected one of 'none', 'diffaugment' or unset"),
    ({"loss": "wgan"}, "--loss must be one of 'bce', 'lsgan', 'hinge'"),
    ({"on_nan": "ignore"}, "--on-nan must be one of 'stop', 'rollback'"),
    ({"model.d_head": "mlp"}, "--d-head must be one of 'conv', 'gap'"),
    ({"model.output": "relu"}, "--output must be one of 'tanh', 'sigmoid'"),
    ({"augment_policy": "blur"}, "unknown transform(s) blur"),
    ({"augment_target": 7}, "--augment-target must be below 1"),
    ({"batch_size": "64"}, "--batch-size: expected a whole number"),
    ({"model.image_size": 48}, "--image-size must be one of"),
    ({"nonsense": 1}, "unknown setting(s): nonsense"),
]


@pytest.mark.parametrize("overrides, words", API)
def test_python_api_refuses_the_same(overrides, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        dcgan.build_config(overrides)


def test_bad_policy_fails_before_the_folder_is_decoded(tiny, tmp_path):
    started = time.monotonic()
    with pytest.raises(ConfigError):
        dcgan.train(tiny / "data", tmp_path / "r", augment_policy="blur", **{"data.cache_dir": str(tmp_path / "c")})
    assert not (tmp_path / "c").exists() and time.monotonic() - started < 5


def other_commands(base):
    run_dir, data, a_file = str(base / "run"), str(base / "data"), str(base / "a-file")
    return [
        (["prepare", data, "--workers", "-1"], 2, "--workers must be at least 0"),
        (["prepare", data, "--report", f"{a_file}/r.json"], 1, "is a file, not a folder"),
        (["generate", run_dir, "-n", "4", "--device", "tpu", "--grid", "g.png"], 2, "invalid choice: 'tpu'"),
        (["generate", run_dir, "--seeds", "0-100000000", "--grid", "g.png"], 2, "at most 100,000"),
        (["generate", run_dir, "--seeds", "4294967296", "--out-dir", "x"], 2, "32-bit"),
        (["generate", run_dir, "-n", "2000", "--grid", "g.png"], 2, "at most 1024"),
        (["generate", run_dir, "-n", "4", "--grid", "noext"], 2, "name an image file"),
        (["generate", run_dir, "-n", "4", "--grid", f"{a_file}/g.png"], 1, "is a file, not a folder"),
        (["generate", run_dir, "-n", "4", "--out-dir", a_file], 1, "is a file, not a folder"),
        (["generate", run_dir, "-n", "4"], 2, "say where to write"),
        (["generate", str(base / "nothing"), "-n", "4", "--grid", "g.png"], 1, "neither a run folder"),
        (["generate", data, "-n", "4", "--grid", "g.png"], 1, "no checkpoint"),
        (["generate", "g.onnx", "-n", "4", "--grid", "g.png", "--precise-bn"], 2, "export with --precise-bn"),
        (["interpolate", run_dir, "--seeds", "1,2", "--fps", "0.0001", "--out", "w.gif"], 2, "--fps must be at least"),
        (["interpolate", run_dir, "--seeds", "1,2", "--fps", "nan", "--out", "w.gif"], 2, "--fps must be a finite"),
        (["interpolate", run_dir, "--seeds", "1,2", "--scale", "2000", "--out", "w.gif"], 2, "--scale must be at most"),
        (["interpolate", run_dir, "--seeds", "1,2", "--frames", "100000", "--out", "w.gif"], 2, "--frames must be"),
        (["interpolate", run_dir, "--seeds", "0-3000", "--out", "w.gif"], 2, "frames in all"),
        (["arithmetic", run_dir, "[1,2] - 3", "--out", "noext"], 2, "name an image file"),
        (["arithmetic", run_dir, "[0-1000000] - 5", "--out", "a.png"], 2, "at most 10,000"),
        (["arithmetic", run_dir, "[0-100000000]", "--out", "a.png"], 2, "at most 10,000"),
        (["arithmetic", run_dir, "4294967296", "--out", "a.png"], 2, "32-bit"),
        (["arithmetic", run_dir, "1", "--out", "a.png", "--save-z", "z.txt"], 2, "must end in .npy"),
        (["fid", data, data, "--batch-size", "0"], 2, "--batch-size must be at least 1"),
        (["fid", data, data, "-n", "1"], 2, "-n must be at least 2"),
        (["nearest", run_dir, "--real", data, "-k", "0"], 2, "--neighbours must be at least 1"),
    ]


def test_other_commands_table(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DCGAN_CACHE", str(tiny / "cache"))
    for argv, status, words in other_commands(tiny):
        started = time.monotonic()
        rc, err = run(argv, capsys)
        assert rc == status and words in err, (argv, err)
        lines = err.strip().splitlines()
        # One line; an expression's error adds the expression and a caret under the problem.
        assert "Traceback" not in err and (len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^")), err
        assert time.monotonic() - started < 10, argv  # refused at once, not after minutes of work
    assert not any(tmp_path.iterdir())  # nothing was written


def test_damaged_config_json_on_resume(tiny, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.setenv("DCGAN_CACHE", str(tiny / "cache"))
    run_dir = tmp_path / "run"
    shutil.copytree(tiny / "run", run_dir)
    (run_dir / ".dcgan-lock").unlink(missing_ok=True)
    text = (run_dir / "config.json").read_text()
    (run_dir / "config.json").write_text(text[: len(text) // 2])  # cut short
    rc, err = run(["train", str(tiny / "data"), "--out", str(run_dir), "--resume"], capsys)
    assert rc == 1 and "cannot be read" in err and "Traceback" not in err, err
    plan = json.loads(text)
    plan["loss"] = "wgan"  # mistyped by hand
    (run_dir / "config.json").write_text(json.dumps(plan))
    rc, err = run(["train", str(tiny / "data"), "--out", str(run_dir), "--resume"], capsys)
    assert rc == 1 and "--loss must be one of" in err and "Traceback" not in err, err


def test_crafted_checkpoints_are_refused_cleanly(tiny, tmp_path, capsys):
    from dcgan import checkpoint as ckpt
    from dcgan.runs import latest_checkpoint

    good = ckpt.load(latest_checkpoint(tiny / "run" / "checkpoints"))

    def crafted(name, record):
        path = tmp_path / name
        ckpt.save(path, record)
        return path

    huge = {**good.plan, "model": {**good.plan["model"], "image_size": 1 << 20}}
    cases = [
        (crafted("huge-size.safetensors", ckpt.CheckpointRecord(**{**good.__dict__, "plan": huge})), "cannot be built"),
        (
            crafted(
                "wide.safetensors",
                ckpt.CheckpointRecord(
                    **{
                        **good.__dict__,
                        "plan": {**huge, "model": {**huge["model"], "image_size": 16, "g_width": 10**6}},
                    }
                ),
            ),
            "cannot be built",
        ),
    ]
    from safetensors.torch import save as st_save

    missing = tmp_path / "missing.safetensors"
    structure = ckpt._to_structure(good)
    del structure["step"]
    tensors: dict = {}
    flat = ckpt._flatten(structure, "", tensors)
    missing.write_bytes(st_save(tensors, metadata={"format": ckpt.FORMAT, "structure": json.dumps(flat)}))
    cases.append((missing, "has no 'step'"))
    deep = tmp_path / "deep.safetensors"
    nested = {"__list__": [None]}
    for _ in range(200):
        nested = {"__list__": [nested]}
    deep.write_bytes(st_save({}, metadata={"format": ckpt.FORMAT, "structure": json.dumps(nested)}))
    cases.append((deep, "nested too deeply"))
    junk = tmp_path / "junk.safetensors"
    with open(junk, "wb") as f:  # a 2 GB file (sparse): only its first bytes may be read
        f.write((1 << 40).to_bytes(8, "little"))
        f.truncate(2 << 30)
    cases.append((junk, "not a dcgan checkpoint"))
    for path, words in cases:
        started = time.monotonic()
        rc, err = run(["generate", str(path), "-n", "2", "--grid", str(tmp_path / "g.png")], capsys)
        assert rc == 1 and words in err and "Traceback" not in err, (path.name, err)
        assert time.monotonic() - started < 10
