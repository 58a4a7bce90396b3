import pytest

from dcgan.config import ConfigError, TrainConfig, build_config, from_dict, to_dict


def test_paper_defaults():
    c = build_config()
    assert (c.batch_size, c.lr_g, c.lr_d, c.beta1, c.beta2, c.model.latent_dim) == (128, 2e-4, 2e-4, 0.5, 0.999, 100)
    assert c.model.output == "tanh" and c.loss == "bce" and c.ema


def test_seed_preset_values_and_user_override():
    c = build_config({"batch_size": 32}, preset="seed")
    assert c.preset == "seed" and c.loss == "lsgan" and c.model.output == "sigmoid"
    assert c.alternate and c.d_skip_below == 0.1 and c.lr_g == 1e-3 and c.beta1 == 0.9
    assert c.model.max_width_mult == 4
    assert c.batch_size == 32  # the user's flag wins over the preset


def test_round_trip():
    c = build_config({"model.image_size": 28, "steps": 5})
    assert from_dict(TrainConfig, to_dict(c)) == c


@pytest.mark.parametrize(
    "bad",
    [
        {"model.image_size": 48},
        {"batch_size": 0},
        {"steps": 1, "epochs": 1},
        {"lr_g": -1.0},
        {"model.channels": 2},
        {"ema_beta": 1.0},
        {"threads": 0},
        {"nonsense": 1},
    ],
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        build_config(bad)


def test_unknown_preset():
    with pytest.raises(ConfigError):
        build_config(preset="fancy")
