"""Nothing lost, nothing crashes: the run-folder lock, the cache's identity, odd files, run folders inside the
data, huge photos and real bombs, bounded latent tools, 32-bit seeds, symmetric FID, and the small things."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dcgan
from dcgan.cli import main
from dcgan.config import DataConfig
from dcgan.dataset import prepare_dataset
from dcgan.runs import RunFolder, RunFolderError, RunLock

from conftest import ROOT, TINY, cli_env, run_cli, write_images

# --- 1. the README's commands are what CI runs, and they install what the tests need ----------------------


def test_ci_runs_the_readme_commands_and_setup_installs_the_test_extras():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands == ["scripts/quickstart.sh", ".venv/bin/python -m pytest -q"]
    assert all(command in ci for command in commands)
    assert not any("EXTRAS" in line for line in ci)  # CI installs only what the README's command installs
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    default = setup.split('EXTRAS="${EXTRAS:-', 1)[1].split("}", 1)[0].split(",")
    assert {"dev", "metrics", "video"} <= set(default)  # the tests use scipy, the Inception weights, imageio-ffmpeg
    # A failed install stops the script (it was hidden behind `| grep ... || true` under pipefail).
    function = next(line for line in setup.splitlines() if line.startswith("pip_install()"))
    script = f"set -euo pipefail; {function}; pip_install nothing-here; echo reached"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={**os.environ, "PYTHON": "false"})
    assert proc.returncode != 0 and "reached" not in proc.stdout


# --- 2. one process per run folder ---------------------------------------------------------------------


def test_a_second_trainer_on_the_same_folder_is_refused_and_the_first_finishes(image_folder, tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "train", str(image_folder), "--out", str(run), *TINY, "--steps", "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.csv").exists():
        time.sleep(0.05)
    second = run_cli("train", str(image_folder), "--out", str(run), *TINY, "--steps", "4", check=False)
    assert second.returncode == 1 and "in use by another training process" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    steps = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, 401)]  # one run's rows, not two interleaved


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_message(tmp_path, image_folder):
    run = tmp_path / "run"
    code = (
        f"from pathlib import Path; from dcgan.runs import RunFolder, RunLock; RunLock(RunFolder(Path({str(run)!r})))"
    )
    holder = subprocess.Popen([sys.executable, "-c", code + ".acquire(); import time; time.sleep(60)"], env=cli_env())
    deadline = time.time() + 30
    while time.time() < deadline and not ((run / ".dcgan-lock").exists() and (run / ".dcgan-lock").read_text()):
        time.sleep(0.05)
    with pytest.raises(RunFolderError, match="in use"):
        RunLock(RunFolder(run)).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert f"pid {holder.pid}" in (run / ".dcgan-lock").read_text()  # the dead process's name is still there
    proc = run_cli("train", str(image_folder), "--out", str(run), *TINY, "--steps", "2")
    assert f"took over the lock of a run that ended without releasing it (pid {holder.pid}" in proc.stderr
    assert (run / ".dcgan-lock").read_text() == ""  # released cleanly at the end


# --- 3. the cache knows which folder it holds ------------------------------------------------------------


def same_names_sizes_and_times(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders of same-named BMP files (so the same sizes) with equal modification times, other pixels:
    what `cp -p` of a folder, then an edit of its pictures that kept sizes and times, gives."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, seed in ((a, 0), (b, 1)):
        folder.mkdir()
        rng = np.random.default_rng(seed)
        for i in range(6):
            path = folder / f"img_{i}.bmp"
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
            os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    for name in os.listdir(a):
        assert (a / name).stat().st_size == (b / name).stat().st_size
    return a, b


def test_two_folders_with_the_same_names_sizes_and_times_do_not_share_a_cache(tmp_path):
    a, b = same_names_sizes_and_times(tmp_path)
    first = prepare_dataset(a, 16, DataConfig(), progress=False)
    second = prepare_dataset(b, 16, DataConfig(), progress=False)
    assert first.cache_dir != second.cache_dir
    assert not np.array_equal(np.asarray(first.images), np.asarray(second.images))
    assert first.fingerprint != second.fingerprint  # what a resumed run compares
    shutil.rmtree(b)
    shutil.copytree(a, b)  # the same pictures elsewhere: the same fingerprint
    assert prepare_dataset(b, 16, DataConfig(), progress=False).fingerprint == first.fingerprint


def test_resume_refuses_a_folder_whose_pictures_changed_behind_equal_metadata(tmp_path):
    a, b = same_names_sizes_and_times(tmp_path)
    run = tmp_path / "run"
    run_cli("train", str(a), "--out", str(run), *TINY, "--steps", "2")
    proc = run_cli("train", str(b), "--out", str(run), "--resume", "--steps", "4", check=False)
    assert proc.returncode == 1 and "data folder changed" in proc.stderr


def test_a_damaged_cache_is_decoded_again(tmp_path, capsys):
    write_images(tmp_path / "d", 5)
    first = prepare_dataset(tmp_path / "d", 16, DataConfig(), progress=False)
    expected = np.array(first.images)
    (first.cache_dir / "images.npy").write_bytes(b"\x93NUMPY cut short")
    again = prepare_dataset(tmp_path / "d", 16, DataConfig(), progress=False)
    assert np.array_equal(np.asarray(again.images), expected)
    assert "is damaged" in capsys.readouterr().err


def test_an_abandoned_half_built_cache_is_removed(tmp_path, private_cache):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = private_cache / f".building-{socket.gethostname()}-{dead.stdout.strip()}-x1"
    stale.mkdir(parents=True)
    live = private_cache / f".building-{socket.gethostname()}-{os.getpid()}-x2"
    live.mkdir()
    write_images(tmp_path / "d", 3)
    prepare_dataset(tmp_path / "d", 16, DataConfig(), progress=False)
    assert not stale.exists() and live.exists()


# --- 4. odd files are skipped with their reason ----------------------------------------------------------


def test_links_that_go_nowhere_and_undecodable_names_are_skipped(tmp_path):
    data = tmp_path / "data"
    write_images(data, 6)
    os.symlink(data / "gone.png", data / "dangling.png")
    os.symlink(data / "self.png", data / "self.png")
    bad_name = os.fsencode(str(data)) + b"/caf\xe9-latin1.png"  # not UTF-8: Latin-1
    Image.new("RGB", (20, 20), "red").save(bad_name)
    run = tmp_path / "run"
    proc = run_cli("train", str(data), "--out", str(run), *TINY, "--steps", "2")
    assert "7 image(s) used" in proc.stderr and "2 broken link(s)" in proc.stderr
    report = json.loads((run / "data_report.json").read_text())
    reasons = {o["path"]: o["reason"] for o in report["other_files"]}
    assert reasons["dangling.png"].startswith("dangling symbolic link") and reasons["self.png"] == "symbolic link loop"
    proc = run_cli("prepare", str(data), "--image-size", "16", "--report", str(tmp_path / "r.json"))
    assert "7 image(s) used" in proc.stdout


# --- 5. a run folder inside the data folder is not training data -----------------------------------------


def test_out_inside_the_data_folder_is_passed_over_and_resume_still_works(tmp_path):
    data = tmp_path / "data"
    write_images(data, 8)
    run_cli("train", str(data), "--out", str(data / "runs" / "first"), *TINY, "--steps", "2", "--sample-every", "1")
    proc = run_cli("train", str(data), "--out", str(data / "runs" / "first"), *TINY, "--steps", "4", "--resume")
    assert "8 image(s) used" in proc.stderr and "resumed from" in proc.stderr
    proc = run_cli("train", str(data), "--out", str(tmp_path / "second"), *TINY, "--steps", "2")
    assert "8 image(s) used" in proc.stderr and "1 run folder(s) inside passed over" in proc.stderr


# --- 6. a 102-megapixel photo decodes; a real bomb is still refused ---------------------------------------


def test_a_102_megapixel_jpeg_decodes_and_bombs_stay_refused(tmp_path):
    from dcgan.imagefiles import DecodeSettings, decode_file
    from test_dataset import _png_claiming

    photo = tmp_path / "phone.jpg"
    Image.new("RGB", (11648, 8736), (200, 120, 40)).save(photo, quality=80)
    decoded = decode_file(str(photo), DecodeSettings(size=64))
    assert decoded.pixels is not None and decoded.pixels.shape == (64, 64, 3), decoded.reason
    assert abs(int(decoded.pixels[32, 32, 0]) - 200) < 8
    (tmp_path / "bomb.png").write_bytes(_png_claiming(100_000, 100_000))
    bomb = decode_file(str(tmp_path / "bomb.png"), DecodeSettings(size=64))
    assert bomb.pixels is None and bomb.reason.startswith("decompression bomb")


# --- 7, 8. latent tools are bounded; seeds are 32-bit ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gen(tmp_path_factory):
    base = tmp_path_factory.mktemp("gen")
    write_images(base / "data", 8)
    run_cli(
        "train",
        str(base / "data"),
        "--out",
        str(base / "run"),
        *TINY,
        "--steps",
        "2",
        env={"DCGAN_CACHE": str(base / "cache")},
    )
    return base / "run"


def test_a_large_term_is_averaged_without_rendering_every_seed(tiny_gen, monkeypatch):
    gen = dcgan.load(tiny_gen)
    rendered = []
    real_images = gen.images
    monkeypatch.setattr(
        gen, "images", lambda **kw: (rendered.append(len(kw.get("seeds") or kw.get("z"))), real_images(**kw))[1]
    )
    z, _ = gen.arithmetic("[0-5000] - 7", samples=2)
    assert max(rendered) <= 8  # the figure shows 8 of each term; the means come from z alone
    assert np.allclose(z.numpy(), (gen.z(range(5001)).mean(0) - gen.z([7])[0]).numpy(), atol=1e-5)


def test_seeds_beyond_32_bits_are_refused_not_wrapped(tiny_gen):
    from dcgan.seeds import parse_seeds

    gen = dcgan.load(tiny_gen)
    assert parse_seeds("4294967295") == [4294967295]
    with pytest.raises(ValueError, match="32-bit"):
        parse_seeds("4294967296")
    with pytest.raises(dcgan.UserError, match="32-bit"):
        gen.images(seeds=[2**32])
    assert not np.array_equal(gen.images(seeds=[2**32 - 1]), gen.images(seeds=[0]))


# --- 10. FID does not depend on the order of its arguments ------------------------------------------------


def test_fid_of_two_folders_is_symmetric(tmp_path):
    from dcgan import metrics
    from test_metrics import ChannelStats

    write_images(tmp_path / "gray28", 12, size=28, mode="L", seed=1)
    write_images(tmp_path / "colour64", 12, size=64, seed=2)
    ab = metrics.compare(tmp_path / "gray28", tmp_path / "colour64", ChannelStats(), progress=False, kid_subsets=5)
    ba = metrics.compare(tmp_path / "colour64", tmp_path / "gray28", ChannelStats(), progress=False, kid_subsets=5)
    assert ab["fid"] == pytest.approx(ba["fid"], rel=1e-9) and ab["image_sizes"] == {"a": 28, "b": 64}
    assert ba["image_sizes"] == {"a": 64, "b": 28}


# --- 11. the small things --------------------------------------------------------------------------------


def test_a_failed_data_check_leaves_no_run_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli("train", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 1 and not (tmp_path / "run").exists()


def test_generate_counts_images_and_the_grid_apart_and_says_which_checkpoint(tiny_gen, tmp_path, capsys):
    assert (
        main(
            ["generate", str(tiny_gen), "-n", "5", "--out-dir", str(tmp_path / "o"), "--grid", str(tmp_path / "g.png")]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert f"wrote 5 image(s) to {tmp_path / 'o'} and the grid {tmp_path / 'g.png'}" in captured.out
    assert "from step-00000002.safetensors (step 2, EMA)" in captured.err


def test_a_folder_against_itself_scores_zero(tmp_path, capsys):
    from dcgan import metrics
    from test_metrics import ChannelStats

    write_images(tmp_path / "a", 10)
    result = metrics.compare(tmp_path / "a", tmp_path / "a", ChannelStats(), progress=False, kid_subsets=5)
    assert result["kid"] == 0.0 and result["kid_std"] == 0.0 and result["same_images"]
    assert abs(result["fid"]) < 1e-6 and result["precision"] == result["recall"] == 1.0


def test_resuming_past_the_end_says_there_is_nothing_to_train(image_folder, tmp_path):
    run = tmp_path / "run"
    run_cli("train", str(image_folder), "--out", str(run), *TINY, "--steps", "6")
    proc = run_cli("train", str(image_folder), "--out", str(run), "--resume", "--steps", "4")
    assert "nothing to train: the run is at step 6" in proc.stderr and "done:" not in proc.stdout


def test_the_estimate_waits_for_the_first_steps():
    from dcgan.progress import RunClock

    now = [0.0]
    clock = RunClock(0, 0.0, warmup=3, clock=lambda: now[0])
    now[0] = 30.0  # a slow first step (allocations, kernel choice)
    clock.tick()
    assert clock.eta(1000) is None
    for _ in range(5):
        now[0] += 0.5
        clock.tick()
    assert clock.eta(1000) == pytest.approx(500.0)


def test_a_usage_error_is_one_line_pointing_to_help(capsys):
    assert main(["train", "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dcgan train: error:") and "dcgan train --help" in err[0]
