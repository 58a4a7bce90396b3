"""The run plan (what a run will do, decided from the request, the data and the machine), the run-length rule,
--dry-run, --time, --patience, the warnings while training, and the best checkpoint as the default."""

from __future__ import annotations

import numpy as np
import pytest

import dcgan
from dcgan.cli import main
from dcgan.config import build_config
from dcgan.monitor import Monitor, diversity
from dcgan.plan import (
    MAX_GRIDS,
    MAX_KIMG,
    MIN_KIMG,
    UNTIL_TIME,
    DataFacts,
    Machine,
    continue_plan,
    default_kimg,
    describe,
    resolve,
    resume_request,
    too_short,
)

from conftest import write_images

CPU = Machine(device="cpu", fast_bf16=False, threads=2)
BF16_CPU = Machine(device="cpu", fast_bf16=True, threads=2)


def plan_for(overrides=None, images=1000, channels=3, machine=CPU, preset=None):
    return resolve(build_config(overrides, preset), DataFacts(images=images, channels=channels), machine)


# --- resolution --------------------------------------------------------------------------------------------


def test_small_folder_gets_augmentation_adaptive_p_narrow_networks_and_says_so():
    plan = plan_for(images=500)
    assert plan.augment == "diffaugment" and plan.augment_adaptive and plan.augment_p == 1.0
    assert plan.model.g_width == plan.model.d_width == 32 and plan.model.channels == 3
    assert any("DiffAugment on with adaptive p" in n for n in plan.notes)
    assert any("width 32" in n for n in plan.notes)
    big = plan_for(images=5000)
    assert big.augment == "none" and big.model.g_width == 64 and not any("small folder" in n for n in big.notes)
    asked = plan_for({"augment": "none", "model.g_width": 48}, images=500)
    assert asked.augment == "none" and asked.model.g_width == asked.model.d_width == 48 and not asked.notes[:-1]


def test_net_width_sets_both_networks_on_big_folders_only_and_yields_to_explicit_widths():
    wide = plan_for({"model.net_width": 128}, images=5000)
    assert wide.model.g_width == wide.model.d_width == 128
    small = plan_for({"model.net_width": 128}, images=500)  # a small folder stays narrow, and says why
    assert small.model.g_width == 32 and any("--net-width applies from 2,000 images" in n for n in small.notes)
    mixed = plan_for({"model.net_width": 128, "model.d_width": 96}, images=5000)
    assert (mixed.model.g_width, mixed.model.d_width) == (128, 96)
    assert plan_for({"model.net_width": 128, "model.g_width": 48}, images=5000).model.d_width == 48


def test_batch_shrinks_to_a_tiny_folder_and_precision_follows_the_machine():
    plan = plan_for(images=20)
    assert plan.batch_size == 20 and any("fewer than --batch-size 128" in n for n in plan.notes)
    assert not plan.amp and plan.channels_last  # fp32 on a CPU: channels-last is faster with oneDNN too
    fast = plan_for(machine=BF16_CPU)
    assert fast.amp and fast.channels_last
    assert not plan_for({"amp": False}, machine=BF16_CPU).amp
    assert not plan_for({"channels_last": False}).channels_last
    gpu = Machine(device="cuda", fast_bf16=False, threads=2)
    assert not plan_for(machine=gpu).channels_last  # fp32 on a GPU keeps the default layout
    assert plan_for(machine=Machine(device="cuda", fast_bf16=True, threads=2)).channels_last
    assert plan.threads == 2 and plan_for({"threads": 1}).threads == 1


def test_the_default_run_length_is_counted_in_images_and_fits_the_folder():
    assert default_kimg(200) == MIN_KIMG and default_kimg(10**6) == MAX_KIMG
    assert MIN_KIMG <= default_kimg(881) <= MAX_KIMG
    for images in (200, 881, 3000, 60000):
        plan = plan_for(images=images)
        assert plan.steps == -(-default_kimg(images) * 1000 // plan.batch_size)
        assert plan.kimg == pytest.approx(default_kimg(images), rel=0.01)
        assert any("run length" in n for n in plan.notes)
    # A small folder trains far longer than the 25 epochs it used to get (25 steps for 200 images).
    assert plan_for(images=200).steps > 1000


def test_explicit_lengths_and_presets():
    assert plan_for({"steps": 77}).steps == 77
    assert plan_for({"epochs": 3}, images=1000).steps == 3 * (1000 // 128)
    assert plan_for({"epochs": 3, "alternate": True}, images=1000).steps == 3 * (1000 // 128 // 2)
    assert plan_for({"kimg": 64}).steps == 500
    timed = plan_for({"time_budget": "10m"})
    assert timed.steps == UNTIL_TIME and timed.time_budget == 600
    assert plan_for({"time_budget": "10m", "steps": 50}).steps == 50
    # The presets keep the run length they always had (25 epochs) unless a length is given.
    for preset in ("paper", "seed"):
        assert plan_for(images=1000, preset=preset).steps == 25 * plan_for(images=1000, preset=preset).steps_per_epoch
        assert plan_for({"steps": 9}, images=1000, preset=preset).steps == 9
    assert plan_for(preset="paper").augment_p == 1.0 and not plan_for(preset="paper", images=500).augment_adaptive


def test_progress_grids_are_whole_epochs_apart_and_not_too_many():
    plan = plan_for(images=12, overrides={"batch_size": 8, "steps": 250})
    assert plan.sample_every == 100  # an epoch every step: 100 steps apart
    long = plan_for(images=200, overrides={"batch_size": 8, "steps": 100000})
    assert long.sample_every % long.steps_per_epoch == 0 and long.steps / long.sample_every <= MAX_GRIDS
    assert plan_for({"sample_every": 7}).sample_every == 7


def test_a_resumed_run_keeps_its_decisions_unless_their_settings_change():
    first = plan_for(images=1900)  # a small folder: width 32, DiffAugment
    grown = resolve(resume_request(first, {}), DataFacts(images=2500, channels=3), CPU)  # the folder grew
    assert grown.model.g_width == 64 and grown.augment == "none"
    kept = continue_plan(grown, first)
    assert kept.model == first.model and kept.augment == first.augment and kept.steps == first.steps
    longer = resolve(resume_request(first, {"steps": 50}), DataFacts(images=2500, channels=3), CPU)
    assert continue_plan(longer, first).steps == 50  # a new length replaces the old
    assert resume_request(first, {"steps": 50}).kimg is None


def test_too_short_runs_are_named():
    assert "shapes appear" in too_short(plan_for({"steps": 25}, images=200))
    assert too_short(plan_for(images=200)) is None and too_short(plan_for({"time_budget": "1m"})) is None


def test_describe_shows_the_decisions():
    text = describe(plan_for(images=500), images_per_sec=250.0)
    for words in ("500 images", "G width 32", "diffaugment", "adaptive", "thousand images shown to D", "time:"):
        assert words in text, words


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    write_images(tmp_path / "data", 12)
    run = tmp_path / "run"
    assert (
        main(["train", str(tmp_path / "data"), "--out", str(run), "--dry-run", "--image-size", "16", "--threads", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "12 images" in out and "length:" in out and "time:      about" in out and "images/s" in out
    assert not run.exists()


def test_preset_best_widens_the_networks_of_a_big_folder_and_a_flag_overrides_it(tmp_path, capsys):
    write_images(tmp_path / "data", 2000, size=8)
    common = ["train", str(tmp_path / "data"), "--dry-run", "--image-size", "16", "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "a"), "--preset", "best"]) == 0
    assert "G width 128, D width 128" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "b"), "--preset", "best", "--net-width", "96"]) == 0
    assert "G width 96, D width 96" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "c")]) == 0
    assert "G width 64, D width 64" in capsys.readouterr().out


def test_the_trainer_is_usable_as_soon_as_it_is_built(image_folder, tmp_path):
    from dcgan.trainer import Trainer

    config = build_config({"model.image_size": 16, "model.g_width": 4, "batch_size": 8, "steps": 3, "progress": False})
    trainer = Trainer(image_folder, tmp_path / "run", config, say=lambda m: None)
    try:
        assert trainer.save_samples().exists() and trainer.save_checkpoint().exists()
        assert trainer.plan.steps == 3 and trainer.step == 0
    finally:
        trainer._release()
    result = Trainer(image_folder, tmp_path / "run2", config, say=lambda m: None).run()
    assert result.step == 3 and result.stop_reason == "steps"


# --- --time ------------------------------------------------------------------------------------------------


def test_time_budget_ends_the_run_with_a_checkpoint_and_grid_and_resumes(image_folder, tmp_path):
    settings = {"model.image_size": 16, "model.g_width": 4, "batch_size": 8, "progress": False, "threads": 1}
    messages = []
    result = dcgan.train(image_folder, tmp_path / "run", time_budget="4s", say=messages.append, **settings)
    assert result.stop_reason == "time" and result.step > 0 and 3 < result.elapsed < 4 + 1
    assert result.checkpoint.name == f"step-{result.step:08d}.safetensors"
    assert (tmp_path / "run" / "samples" / f"step-{result.step:08d}.png").exists()
    assert any("fit in the 4s budget" in m for m in messages) or result.step < 25
    again = dcgan.train(image_folder, tmp_path / "run", resume=True, time_budget="2s", say=messages.append)
    assert again.stop_reason == "time" and again.step > result.step and 1 < again.elapsed < 2 + 1


# --- --patience and the best checkpoint --------------------------------------------------------------------


class FakeScorer:
    """Stands in for the Inception scorer: FIDs from a list, one per evaluation."""

    fids: list[float] = []

    def __init__(self, *args, **kwargs) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs) -> dict[str, float]:
        fid = FakeScorer.fids[min(self.calls, len(FakeScorer.fids) - 1)]
        self.calls += 1
        return {"fid": fid, "kid": fid / 100, "kid_std": 0.0, "precision": 0.5, "recall": 0.5}


def test_patience_stops_when_fid_stops_improving_and_generate_uses_the_best(
    image_folder, tmp_path, monkeypatch, capsys
):
    from dcgan import metrics

    monkeypatch.setattr(metrics, "TrainingScorer", FakeScorer)
    FakeScorer.fids = [9.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    weights = tmp_path / "stand-in.pt"
    weights.write_bytes(b"x")  # --inception must name a file; the fake scorer never reads it
    messages = []
    result = dcgan.train(
        image_folder,
        tmp_path / "run",
        say=messages.append,
        steps=40,
        eval_every=2,
        patience=2,
        inception=str(weights),
        **{"model.image_size": 16, "model.g_width": 4, "batch_size": 8, "progress": False, "threads": 1},
    )
    assert result.stop_reason == "patience" and result.step <= 10  # evaluations at 2, 4 (best), 6, 8: stop
    assert any("has not improved for 2 evaluations" in m for m in messages)
    gen = dcgan.load(tmp_path / "run")
    assert gen.info["step"] == 4 and gen.info["checkpoint"].endswith("best.safetensors")
    assert dcgan.load(tmp_path / "run", which="latest").info["step"] == result.step
    assert main(["generate", str(tmp_path / "run"), "-n", "2", "--grid", str(tmp_path / "g.png")]) == 0
    assert "from best.safetensors (step 4, FID 5.00, EMA)" in capsys.readouterr().err


# --- warnings while training -------------------------------------------------------------------------------


def test_d_has_won_is_said_once_after_a_long_stretch():
    monitor = Monitor("bce", total_steps=10000, real_diversity=0.3)
    assert monitor.stretch == 1000
    warnings = [monitor.on_row(step, 0.5, -0.5) for step in range(10, 2000, 10)]  # a balanced game
    assert not any(warnings)
    said = [(s, w) for s in range(2000, 5000, 10) if (w := monitor.on_row(s, 6.0, -7.0))]
    assert len(said) == 1 and said[0][0] == 3000 and "D has clearly won since step 2,000" in said[0][1]
    assert "--augment-p auto" in said[0][1]
    hinge = Monitor("hinge", 1000, 0.3)
    assert not any(hinge.on_row(s, 1.5, -1.5) for s in range(0, 2000, 10))  # inside the margins


def test_a_collapsed_generator_is_said_once_after_two_grids():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    monitor = Monitor("bce", total_steps=5000, real_diversity=diversity(real))
    same = np.repeat(rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8), 64, axis=0)
    assert monitor.on_grid(100, same) is None  # the start is not judged: G begins as noise
    assert monitor.on_grid(600, real) is None
    assert monitor.on_grid(700, same) is None  # one grid is not enough
    warning = monitor.on_grid(800, same)
    assert warning and "G has collapsed" in warning and monitor.on_grid(900, same) is None
    assert diversity(same) == 0.0 and diversity(real) > 0.3


# --- precision and recall ----------------------------------------------------------------------------------


def test_precision_and_recall_of_identical_and_disjoint_sets():
    from dcgan.metrics import precision_recall

    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert precision_recall(a, a) == (1.0, 1.0)
    assert precision_recall(a, a + 100.0) == (0.0, 0.0)
    narrow = rng.normal(size=(200, 8)) * 0.05  # a collapsed generator: inside the real manifold, covering little
    precision, recall = precision_recall(a, narrow)
    assert precision > 0.9 and recall < 0.2
