"""DiffAugment transforms, their use in the steps, the adaptive probability, small-data defaults."""

import json

import pytest
import torch

from dcgan.augment import TRANSFORMS, Augmenter, adjust_p, cutout, parse_policy, translation
from dcgan.config import ModelConfig, model_spec
from dcgan.models import build_models
from dcgan.step import GanState, StepOptions, discriminator_step, generator_step

from conftest import TINY, run_cli, write_images


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_keeps_shape_is_random_per_sample_and_differentiable(name):
    x = (torch.rand(16, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = TRANSFORMS[name](x, gen())
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    diffs = (y - x).detach().flatten(1).abs().sum(1)
    assert len(set(diffs.round(decimals=4).tolist())) > 1  # each image gets its own draw


def test_range_stays_bounded():
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    for name, fn in TRANSFORMS.items():
        y = fn(x, gen(1))
        # colour can leave [-1, 1] by at most the published factors; geometry never adds values
        assert y.abs().max() <= (4.0 if name == "color" else 1.0)


def test_translation_shifts_by_whole_pixels_with_zero_fill():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    for seed in range(20):
        y = translation(x, gen(seed))
        assert y.sum() in (0.0, 1.0)  # moved (or pushed out), never blurred
        if y.sum() == 1:
            iy, ix = (y[0, 0] == 1).nonzero()[0].tolist()
            assert abs(iy - 4) <= 1 and abs(ix - 4) <= 1  # at most 1/8 of 8 pixels


def test_cutout_zeroes_a_half_size_square():
    x = torch.ones(32, 1, 16, 16)
    y = cutout(x, gen())
    zeros = (y == 0).flatten(1).sum(1)
    assert (zeros <= 64).all() and (zeros > 0).all() and (zeros == 64).any()


def test_probability_zero_is_identity_and_policy_parsing():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(Augmenter(("color", "cutout"), 0.0, gen())(x), x)
    assert parse_policy("colour, translation") == ("color", "translation")
    with pytest.raises(ValueError, match="unknown"):
        parse_policy("color,blur")


def test_augment_applied_to_real_and_fake_for_d_and_fake_for_g_but_never_to_samples():
    torch.manual_seed(0)
    g, d = build_models(model_spec(ModelConfig(image_size=16, channels=3, latent_dim=8, g_width=8, d_width=8)))
    s = GanState(g, d, torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters()))
    seen = []

    def spy(x):
        seen.append(x.requires_grad)
        return x.flip(3)

    real = torch.rand(4, 3, 16, 16)
    discriminator_step(s, real, torch.randn(4, 8), StepOptions(), augment=spy)
    assert len(seen) == 2  # the real batch and the fake batch
    generator_step(s, torch.randn(4, 8), StepOptions(), augment=spy)
    assert len(seen) == 3 and seen[2] is True  # the fake batch, with G's gradient flowing through it


def test_adaptive_p_moves_the_right_way():
    p = 0.0
    for _ in range(10):  # D overfits: it calls nearly every real image real
        p = adjust_p(p, real_sign_mean=0.95, images=5000)
    assert p == pytest.approx(0.5)
    for _ in range(20):  # D is unsure: p falls back, not below 0
        p = adjust_p(p, real_sign_mean=0.1, images=5000)
    assert p == 0.0
    assert adjust_p(0.99, 1.0, 10_000) == 1.0


def test_small_folder_turns_augmentation_on_and_logs_p(tmp_path):
    folder = tmp_path / "few"
    write_images(folder, 10)
    run = tmp_path / "run"
    proc = run_cli(
        "train",
        str(folder),
        "--out",
        str(run),
        "--image-size",
        "16",
        "--batch-size",
        "8",
        "--steps",
        "8",
        "--augment-p",
        "auto",
        "--mirror",
        "--r1-gamma",
        "1",
        "--r1-every",
        "2",
        "--no-progress",
        "--log-every",
        "4",
    )
    assert "DiffAugment on" in proc.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["augment"] == "diffaugment" and config["model"]["g_width"] == 32
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "augment_p" in header
    off = tmp_path / "off"
    proc = run_cli("train", str(folder), "--out", str(off), *TINY, "--steps", "2", "--augment", "none")
    assert json.loads((off / "config.json").read_text())["augment"] == "none"
    assert "DiffAugment on" not in proc.stderr


def test_spectral_norm_run_trains(tmp_path):
    folder = tmp_path / "few"
    write_images(folder, 10)
    run_cli("train", str(folder), "--out", str(tmp_path / "sn"), *TINY, "--steps", "2", "--spectral-norm")
