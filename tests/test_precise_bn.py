"""--precise-bn: the sampling G's batch-norm statistics re-estimated for its own weights, without touching training."""

from __future__ import annotations

import copy
import time

import pytest
import torch

import dcgan
from dcgan.config import ModelConfig, model_spec
from dcgan.models import build_models
from dcgan.runs import latest_checkpoint
from dcgan.sampling import (
    PRECISE_BN_BATCH,
    PRECISE_BN_FIRST_SEED,
    PRECISE_BN_SAMPLES,
    precise_bn,
    precise_bn_seconds,
    z_from_seeds,
)
from dcgan.seeds import seed_classes

from conftest import SMALL, load_state

SETTINGS = {**SMALL, "checkpoint_every": 3}


def trained_generator(num_classes: int = 0) -> torch.nn.Module:
    """A small G whose running statistics are far from its activations' (as the EMA's copied ones can be)."""
    spec = model_spec(ModelConfig(image_size=16, channels=3, latent_dim=16, g_width=8), num_classes=num_classes)
    torch.manual_seed(0)
    g, _ = build_models(spec)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(3.0)
            m.running_var.fill_(0.01)
    return g


def train_mode_average(g: torch.nn.Module, weights: list[float] | None) -> dict[str, torch.Tensor]:
    """The same statistics the slow way: training-mode passes with a cumulative average (momentum None)."""
    g = copy.deepcopy(g).train()
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for first in range(PRECISE_BN_FIRST_SEED, PRECISE_BN_FIRST_SEED + PRECISE_BN_SAMPLES, PRECISE_BN_BATCH):
            seeds = range(first, first + PRECISE_BN_BATCH)
            z = z_from_seeds(seeds, 16)
            g(z) if weights is None else g(z, torch.from_numpy(seed_classes(seeds, weights, 16)))
    return {k: v for k, v in g.state_dict().items() if "running" in k}


@pytest.mark.parametrize("weights", [None, [0.7, 0.2, 0.1]])
def test_precise_bn_matches_training_mode_statistics(weights):
    g = trained_generator(num_classes=0 if weights is None else len(weights))
    expected = train_mode_average(g, weights)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    precise_bn(g, 16, 0 if weights is None else len(weights), weights)
    after = g.state_dict()
    assert expected  # G has batch norms to re-estimate
    for name, value in expected.items():
        torch.testing.assert_close(after[name], value, rtol=1e-4, atol=1e-5, msg=name)
        assert not torch.equal(after[name], before[name]), name
    for name, value in before.items():  # weights untouched; the module's mode as it was
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(after[name], value), name
    assert g.training
    # Deterministic: the same z every time, and no random stream consumed.
    state = torch.random.get_rng_state()
    again = trained_generator(num_classes=0 if weights is None else len(weights))
    precise_bn(again, 16, 0 if weights is None else len(weights), weights)
    assert torch.equal(torch.random.get_rng_state(), state)
    for name in expected:
        assert torch.equal(again.state_dict()[name], after[name]), name


def test_precise_bn_changes_only_the_saved_ema_statistics_and_resumes_bit_exactly(image_folder, tmp_path):
    dcgan.train(image_folder, tmp_path / "copied", steps=6, **SETTINGS)
    dcgan.train(image_folder, tmp_path / "precise", steps=6, precise_bn=True, **SETTINGS)
    dcgan.train(image_folder, tmp_path / "halves", steps=3, precise_bn=True, **SETTINGS)
    dcgan.train(image_folder, tmp_path / "halves", resume=True, steps=6)
    copied, precise, halves = (
        load_state(latest_checkpoint(tmp_path / name / "checkpoints")) for name in ("copied", "precise", "halves")
    )
    assert precise["step"] == halves["step"] == 6 and precise["plan"]["precise_bn"] and halves["plan"]["precise_bn"]
    for part in ("generator", "discriminator", "ema"):
        for name, value in precise[part].items():
            assert torch.equal(value, halves[part][name]), (part, name)  # resumed bit-exactly
            same = torch.equal(value, copied[part][name])
            # Training never sees the re-estimated statistics: only the EMA's norm statistics differ.
            assert same != (part == "ema" and "running" in name), (part, name)
    # They are those of the EMA's own weights: the copied run's EMA, re-estimated, gives the same (to rounding:
    # the trainer's copy is in the channels-last layout, whose convolutions round differently).
    spec = model_spec(ModelConfig(image_size=16, channels=3, latent_dim=16, g_width=8, d_width=8))
    g, _ = build_models(spec)
    g.load_state_dict(copied["ema"])
    precise_bn(g, 16)
    for name, value in g.state_dict().items():
        torch.testing.assert_close(value, precise["ema"][name], rtol=1e-4, atol=1e-6, msg=name)


def test_precise_bn_is_paid_where_samples_are_kept_not_at_each_progress_grid(image_folder, tmp_path, monkeypatch):
    import dcgan.trainer

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        precise_bn(*args, **kwargs)

    monkeypatch.setattr(dcgan.trainer, "precise_bn", counted)
    dcgan.train(image_folder, tmp_path / "run", steps=6, sample_every=1, precise_bn=True, **SETTINGS)
    grids = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert len(grids) == 6  # a grid at every step...
    # ...but re-estimated only for the checkpoint at step 3 and the last grid, whose step's checkpoint reuses it.
    assert len(calls) == 2


def test_precise_bn_seconds_times_a_batch_and_changes_nothing():
    g = trained_generator(num_classes=3)
    before = copy.deepcopy(g.state_dict())
    seconds = precise_bn_seconds(g, 16, 3)
    assert seconds > 0 and g.training
    for name, value in g.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_a_time_budget_leaves_room_for_re_estimating_before_the_first_checkpoint(image_folder, tmp_path, monkeypatch):
    # Each of the re-estimation's batches made slow (0.03 s: 1.9 s in all) so that it, not training, decides whether the
    # run ends inside its 6 s budget; a guess without it (0.2 s) trains on to the budget's edge and overruns by 1.9 s.
    import dcgan.sampling

    batch = dcgan.sampling._precise_bn_batch

    def slow(*args, **kwargs):
        time.sleep(0.03)
        batch(*args, **kwargs)

    monkeypatch.setattr(dcgan.sampling, "_precise_bn_batch", slow)
    settings = {**SETTINGS, "checkpoint_every": 10_000}
    messages = []
    result = dcgan.train(
        image_folder, tmp_path / "run", time_budget="6s", precise_bn=True, say=messages.append, **settings
    )
    assert result.stop_reason == "time" and result.step > 0 and result.elapsed < 6 + 0.5
    assert any("re-estimating the norms for the last checkpoint" in m for m in messages)
    assert latest_checkpoint(tmp_path / "run" / "checkpoints") == result.checkpoint


def test_loading_with_precise_bn_re_estimates_a_run_trained_without_it(image_folder, tmp_path, capsys):
    from dcgan.cli import main

    dcgan.train(image_folder, tmp_path / "run", steps=3, **SETTINGS)
    copied = dcgan.load(tmp_path / "run")
    precise = dcgan.load(tmp_path / "run", precise_bn=True)
    expected = copy.deepcopy(copied.net)
    precise_bn(expected, copied.latent_dim)
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(precise.net.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert "norms re-estimated" in precise.origin and "norms re-estimated" not in copied.origin
    assert not (precise.images(seeds=range(4)) == copied.images(seeds=range(4))).all()
    # The commands that load a generator take the flag and say so.
    grid = tmp_path / "g.png"
    assert main(["generate", str(tmp_path / "run"), "-n", "4", "--grid", str(grid), "--precise-bn"]) == 0
    assert grid.exists() and "norms re-estimated" in capsys.readouterr().err
