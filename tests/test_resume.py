"""Crash safety: kill -9 and resume gives bit-identical weights; NaN guard; unwritable folders."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dcgan.runs import checkpoint_name, latest_checkpoint

from conftest import cli_env, load_state, run_cli

ARGS = [
    "--image-size",
    "32",
    "--g-width",
    "16",
    "--d-width",
    "16",
    "--latent-dim",
    "16",
    "--batch-size",
    "16",
    "--no-progress",
    "--log-every",
    "1",
    "--checkpoint-every",
    "4",
    "--keep",
    "2",
    "--seed",
    "3",
]
STEPS = 48


def final_state(run):
    return load_state(latest_checkpoint(run / "checkpoints"))


def assert_identical(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k != "rng":
                assert_identical(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_kill_9_then_resume_is_bit_identical(image_folder, tmp_path):
    # 1. The uninterrupted run.
    run_cli("train", str(image_folder), "--out", str(tmp_path / "full"), *ARGS, "--steps", str(STEPS))
    # 2. The same run, killed with SIGKILL as soon as it has written a checkpoint past the first...
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "train", str(image_folder), "--out", str(killed), *ARGS, "--steps", str(STEPS)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        latest = latest_checkpoint(killed / "checkpoints")
        if latest is not None and latest.name >= checkpoint_name(8):
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stopped_at = load_state(latest_checkpoint(killed / "checkpoints"))["step"]
    assert stopped_at < STEPS, "the run finished before it could be killed: make it longer"
    # ...then resumed with the same command plus --resume.
    out = run_cli("train", str(image_folder), "--out", str(killed), *ARGS, "--steps", str(STEPS), "--resume")
    assert f"resumed from {checkpoint_name(stopped_at)}" in out.stderr
    a, b = final_state(tmp_path / "full"), final_state(killed)
    assert a["step"] == b["step"] == STEPS
    assert_identical(a, b)  # G, D, EMA, both optimizers, counters, data position
    # metrics.csv holds each step once
    steps = [line.split(",")[0] for line in (killed / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, STEPS + 1)]


def test_resume_flags_can_extend_a_run_and_refuse_incompatible_ones(image_folder, tmp_path):
    run = tmp_path / "run"
    run_cli("train", str(image_folder), "--out", str(run), *ARGS, "--steps", "2")
    # Settings come from the run itself; only what is given changes.
    run_cli("train", str(image_folder), "--out", str(run), "--resume", "--steps", "4", "--no-progress")
    assert final_state(run)["step"] == 4
    proc = run_cli(
        "train", str(image_folder), "--out", str(run), "--resume", "--steps", "6", "--g-width", "8", check=False
    )
    assert proc.returncode == 1 and "model settings differ" in proc.stderr and "g_width" in proc.stderr
    assert '"g_width": 16' in (run / "config.json").read_text()  # a refused resume rewrites nothing
    (image_folder / "img_000.png").unlink()
    proc = run_cli("train", str(image_folder), "--out", str(run), "--resume", "--steps", "6", check=False)
    assert proc.returncode == 1 and "--allow-data-change" in proc.stderr
    run_cli("train", str(image_folder), "--out", str(run), "--resume", "--steps", "6", "--allow-data-change")
    assert final_state(run)["step"] == 6


def test_resume_without_checkpoint_and_unwritable_output(image_folder, tmp_path):
    proc = run_cli("train", str(image_folder), "--out", str(tmp_path / "new"), "--resume", check=False)
    assert proc.returncode == 1 and "no checkpoint" in proc.stderr
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    proc = run_cli("train", str(image_folder), "--out", str(blocker / "run"), check=False)
    assert proc.returncode == 1 and "cannot write to the output folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def _nan_after(step_from, monkeypatch, times=None):
    """Make the D loss NaN from a given call on (for `times` calls), through the loss lookup."""
    import dcgan.step as step_mod

    real = step_mod.get_losses
    calls = {"n": 0}

    def patched(name):
        d_loss, g_loss = real(name)

        def nan_d(r, f):
            calls["n"] += 1
            bad = calls["n"] > step_from and (times is None or calls["n"] <= step_from + times)
            return d_loss(r, f) * (float("nan") if bad else 1.0)

        return nan_d, g_loss

    monkeypatch.setattr(step_mod, "get_losses", patched)


def test_nan_stops_with_step_and_keeps_checkpoint(image_folder, tmp_path, monkeypatch):
    import dcgan
    from dcgan.trainer import TrainingError

    _nan_after(6, monkeypatch)
    config = dcgan.build_config(
        {
            "model.image_size": 16,
            "model.g_width": 8,
            "model.d_width": 8,
            "batch_size": 8,
            "steps": 20,
            "checkpoint_every": 4,
            "progress": False,
        }
    )
    with pytest.raises(TrainingError, match="at step 7.*step-00000004"):
        dcgan.train(image_folder, tmp_path / "run", config)
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-00000004.safetensors"
    assert load_state(latest_checkpoint(tmp_path / "run" / "checkpoints"))["step"] == 4


def test_nan_rollback_halves_lr_and_finishes(image_folder, tmp_path, monkeypatch):
    import dcgan

    _nan_after(6, monkeypatch, times=1)
    messages = []
    config = dcgan.build_config(
        {
            "model.image_size": 16,
            "model.g_width": 8,
            "model.d_width": 8,
            "batch_size": 8,
            "steps": 10,
            "checkpoint_every": 4,
            "progress": False,
            "on_nan": "rollback",
        }
    )
    from dcgan.trainer import train

    result = train(image_folder, tmp_path / "run", config, say=messages.append)
    assert result.step == 10
    assert any("rolled back to step-00000004" in m for m in messages)
    state = load_state(result.checkpoint)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
