import copy

import pytest
import torch

from dcgan.config import ModelConfig, model_spec
from dcgan.models import build_models
from dcgan.step import (
    GanState,
    StepOptions,
    discriminator_step,
    ema_beta_at,
    generator_step,
    to_model_range,
    update_ema,
)


def make_state(ema=True, lr=1e-3):
    torch.manual_seed(0)
    g, d = build_models(model_spec(ModelConfig(image_size=16, channels=3, latent_dim=8, g_width=8, d_width=8)))
    return GanState(
        g,
        d,
        torch.optim.Adam(g.parameters(), lr),
        torch.optim.Adam(d.parameters(), lr),
        copy.deepcopy(g) if ema else None,
    )


def params(m):
    return [p.detach().clone() for p in m.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("loss", ["bce", "lsgan", "hinge"])
def test_one_step_changes_both_networks_and_only_the_right_one(loss):
    s = make_state()
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    g0, d0 = params(s.generator), params(s.discriminator)
    m = discriminator_step(s, real, torch.randn(4, 8), StepOptions(loss=loss))
    assert changed(d0, s.discriminator) and not changed(g0, s.generator)
    d1 = params(s.discriminator)
    m.update(generator_step(s, torch.randn(4, 8), StepOptions(loss=loss), ema_beta=0.5))
    assert changed(g0, s.generator) and not changed(d1, s.discriminator)
    assert all(torch.isfinite(v) for v in m.values())
    # D's parameters are trainable again after the G step
    assert all(p.requires_grad for p in s.discriminator.parameters())


def test_d_skip_below_leaves_d_alone():
    s = make_state()
    d0 = params(s.discriminator)
    m = discriminator_step(s, torch.zeros(4, 3, 16, 16), torch.randn(4, 8), StepOptions(d_skip_below=1e9))
    assert m["d_updated"].item() == 0 and not changed(d0, s.discriminator)


def test_ema_update_and_warmup():
    s = make_state()
    for p in s.generator.parameters():
        p.data.add_(1.0)
    before = params(s.ema)
    update_ema(s.ema, s.generator, beta=0.75)
    for b, e, g in zip(before, s.ema.parameters(), s.generator.parameters()):
        assert torch.allclose(e, 0.75 * b + 0.25 * g)
    assert ema_beta_at(0, 0.999) == pytest.approx(0.1)
    assert ema_beta_at(10**6, 0.999) == 0.999


def test_uint8_to_model_range():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1)  # (B, H, W, C)
    assert to_model_range(x, "tanh").flatten().tolist() == [-1.0, 1.0]
    assert to_model_range(x, "sigmoid").flatten().tolist() == [0.0, 1.0]
    assert to_model_range(x, "tanh").shape == (1, 1, 1, 2)


def test_bf16_autocast_step_runs_on_cpu():
    s = make_state()
    m = discriminator_step(s, torch.rand(4, 3, 16, 16), torch.randn(4, 8), StepOptions(amp=True, channels_last=True))
    assert torch.isfinite(m["d_loss"])


def test_train_step_updates_both_on_one_generator_forward():
    s = make_state()
    g0, d0 = params(s.generator), params(s.discriminator)
    calls = []
    s.generator.register_forward_hook(lambda *a: calls.append(1))
    from dcgan.step import train_step

    m = train_step(s, torch.rand(4, 3, 16, 16) * 2 - 1, torch.randn(4, 8), StepOptions(), ema_beta=0.5)
    assert calls == [1] and changed(g0, s.generator) and changed(d0, s.discriminator)
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(m)


@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_simultaneous_step_is_d_update_and_g_update_against_the_d_before_it(loss):
    """--simultaneous: D's update is the sequential step's; G's is the one it would take against D as it was
    before this step's update; D runs one forward pass on the fakes instead of two."""
    from dcgan.step import train_step

    sim = make_state()
    seq, before = copy.deepcopy(sim), copy.deepcopy(sim)
    real, z = torch.rand(4, 3, 16, 16) * 2 - 1, torch.randn(4, 8)
    passes = []
    sim.discriminator.register_forward_hook(lambda *a: passes.append(1))
    m = train_step(sim, real, z, StepOptions(loss=loss, simultaneous=True), ema_beta=0.5)
    train_step(seq, real, z, StepOptions(loss=loss), ema_beta=0.5)
    generator_step(before, z, StepOptions(loss=loss), ema_beta=0.5)  # G's update against the D of before
    assert len(passes) == 2  # real and fake; the sequential step makes three
    for a, b in zip(sim.discriminator.parameters(), seq.discriminator.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(sim.generator.parameters(), before.generator.parameters()):
        torch.testing.assert_close(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(sim.generator.parameters(), seq.generator.parameters()))
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_updated"} <= set(m) and m["d_updated"].item() == 1
    assert all(p.requires_grad for p in sim.discriminator.parameters())


def test_simultaneous_step_with_d_skip_updates_g_only():
    from dcgan.step import train_step

    s = make_state()
    g0, d0 = params(s.generator), params(s.discriminator)
    m = train_step(s, torch.zeros(4, 3, 16, 16), torch.randn(4, 8), StepOptions(simultaneous=True, d_skip_below=1e9))
    assert m["d_updated"].item() == 0 and not changed(d0, s.discriminator) and changed(g0, s.generator)


def test_train_simultaneous_reaches_the_step(image_folder, tmp_path):
    """`dcgan train --simultaneous` trains with the simultaneous step (other weights than the default's from
    the same seed) and says so in its plan."""
    from dcgan.runs import latest_checkpoint

    from conftest import TINY, load_state, run_cli

    common = [str(image_folder), *TINY, "--augment", "none", "--seed", "3", "--no-amp", "--steps", "2"]
    run_cli("train", *common, "--out", str(tmp_path / "seq"))
    run_cli("train", *common, "--out", str(tmp_path / "sim"), "--simultaneous")
    seq, sim = (load_state(latest_checkpoint(tmp_path / r / "checkpoints")) for r in ("seq", "sim"))
    assert any(not torch.equal(seq["generator"][k], sim["generator"][k]) for k in seq["generator"])
    assert (
        "simultaneous D/G"
        in run_cli("train", *common, "--out", str(tmp_path / "dry"), "--simultaneous", "--dry-run").stdout
    )
