import pytest
import torch
from torch import nn

from dcgan.config import SUPPORTED_SIZES, ModelConfig, ModelSpec, model_spec, num_stages
from dcgan.models import Discriminator, Generator, build_models
from dcgan.schema import from_dict, to_dict


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


def _stride_one_3x3(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1)]


@pytest.mark.parametrize("class_input", ["concat", "cbn"])
def test_depth_adds_3x3_convolutions_at_each_resolution(class_input):
    # 32x32: G's maps 4x4, 8x8 and 16x16 before the output layer; D's 16x16, 8x8 and 4x4 after its strided convs.
    cfg = ModelConfig(image_size=32, channels=3, g_width=4, d_width=4, latent_dim=8, g_depth=2, d_depth=1)
    g, d = build_models(model_spec(cfg, num_classes=3 if class_input == "cbn" else 0))
    assert [m.out_channels for m in _stride_one_3x3(g)] == [16, 16, 8, 8, 4, 4]
    assert [m.out_channels for m in _stride_one_3x3(d)] == [4, 8, 16]
    plain_g, plain_d = build_models(model_spec(ModelConfig(image_size=32, channels=3, g_width=4, d_width=4)))
    assert not _stride_one_3x3(plain_g) and not _stride_one_3x3(plain_d)
    # Each extra convolution has its batch norm and activation after it, so the DCGAN guidelines hold.
    d_layers = list(d.features)
    for i, layer in enumerate(d_layers):
        if layer in _stride_one_3x3(d):
            assert isinstance(d_layers[i + 1], nn.BatchNorm2d) and isinstance(d_layers[i + 2], nn.LeakyReLU)
    classes = torch.tensor([0, 2]) if class_input == "cbn" else None
    images = g(torch.randn(2, 8), classes)
    assert images.shape == (2, 3, 32, 32)
    assert d(images, classes).shape == (2,)


def test_depth_under_spectral_norm_has_no_batch_norm():
    cfg = ModelConfig(image_size=16, d_width=4, d_depth=2, spectral_norm=True)
    d = Discriminator(model_spec(cfg, 3))
    assert len(_stride_one_3x3(d)) == 4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


def test_a_saved_spec_from_before_depth_builds_the_same_networks():
    spec = model_spec(ModelConfig(image_size=16, channels=1, g_width=4, d_width=4, latent_dim=8))
    saved = {k: v for k, v in to_dict(spec).items() if k not in ("g_depth", "d_depth")}
    assert from_dict(ModelSpec, saved) == spec


def test_a_depth_mismatch_names_the_flag_that_matches_the_source():
    from dcgan.trainer import model_differences

    base = ModelConfig(image_size=16, channels=1, g_width=4, d_width=4)
    deeper = model_spec(ModelConfig(image_size=16, channels=1, g_width=4, d_width=4, g_depth=1, d_depth=2))
    said = model_differences(deeper, model_spec(base))
    assert "pass --g-depth 1 --d-depth 2" in said
    assert model_differences(deeper, deeper) == ""
