import pytest
import torch
from torch import nn

from dcgan.config import SUPPORTED_SIZES, ModelConfig, model_spec, num_stages
from dcgan.models import Discriminator, Generator, build_models


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
@pytest.mark.parametrize("head", ["conv", "gap"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_size_head_and_channel_count(size, head, channels):
    cfg = ModelConfig(image_size=size, channels=channels, latent_dim=10, g_width=4, d_width=4, d_head=head)
    g, d = build_models(model_spec(cfg))
    z = torch.randn(2, 10)
    images = g(z)
    assert images.shape == (2, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    logits = d(images)
    assert logits.shape == (2,)


def test_28_starts_from_7x7():
    assert num_stages(28) == 2
    g = Generator(model_spec(ModelConfig(image_size=28, g_width=4, latent_dim=8), 1))
    first = g.net[0]
    assert isinstance(first, nn.ConvTranspose2d) and first.kernel_size == (7, 7)


def test_dcgan_guidelines_hold():
    cfg = ModelConfig(image_size=64, channels=3, g_width=64, d_width=64)
    g, d = build_models(model_spec(cfg))
    g_layers, d_layers = list(g.net), list(d.features)
    # G: no batch norm on the output layer, ReLU inside, tanh at the end
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert not any(
        isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in list(g.modules()) + list(d.modules())
    )
    assert all(isinstance(m, nn.ReLU) for m in g_layers if isinstance(m, (nn.ReLU, nn.LeakyReLU)))
    # D: no batch norm right after the input layer, LeakyReLU(0.2) everywhere
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3
    assert d.features[0].stride == (2, 2)


def test_width_cap_and_seed_widths():
    # The tutorial's widths: D 64-128-256-256, G 256-256-128-64 (cap at 4x width)
    cfg = ModelConfig(image_size=64, channels=3, max_width_mult=4, g_width=64, d_width=64)
    g, d = build_models(model_spec(cfg))
    d_out = [m.out_channels for m in d.features if isinstance(m, nn.Conv2d)]
    g_out = [m.out_channels for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert d_out == [64, 128, 256, 256]
    assert g_out == [256, 256, 128, 64, 3]


def test_init_is_normal_0_002():
    torch.manual_seed(0)
    g = Generator(model_spec(ModelConfig(image_size=64, channels=3, g_width=64), 3))
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3
    assert abs(w.std().item() - 0.02) < 1e-3


def test_sigmoid_output_range():
    g = Generator(model_spec(ModelConfig(image_size=16, channels=3, output="sigmoid", g_width=4), 3))
    x = g(torch.randn(4, 100))
    assert x.min() >= 0 and x.max() <= 1


def test_gap_head_is_fully_convolutional():
    d = Discriminator(model_spec(ModelConfig(image_size=32, d_head="gap", d_width=4), 3))
    assert isinstance(d.head, nn.Conv2d) and d.head.kernel_size == (1, 1)


def test_spectral_norm_replaces_batch_norm_in_d():
    d = Discriminator(model_spec(ModelConfig(image_size=16, d_width=4, spectral_norm=True), 3))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    assert d(torch.randn(2, 3, 16, 16)).shape == (2,)
