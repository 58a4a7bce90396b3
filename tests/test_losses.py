import math

import pytest
import torch

from dcgan.losses import get_losses


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_bce_known_values():
    d, g = get_losses("bce")
    # logits 0: D(x) = 0.5, so each term is log 2
    assert d(t(0.0), t(0.0)).item() == pytest.approx(2 * math.log(2))
    assert g(t(0.0)).item() == pytest.approx(math.log(2))
    # a confident, correct D has a small loss; the non-saturating G loss is then large
    assert d(t(10.0), t(-10.0)).item() == pytest.approx(2 * math.log1p(math.exp(-10)), rel=1e-4)
    assert g(t(-10.0)).item() == pytest.approx(10.0, rel=1e-3)


def test_bce_is_stable_for_huge_logits():
    d, g = get_losses("bce")
    assert math.isfinite(d(t(1e4), t(1e4)).item()) and d(t(1e4), t(1e4)).item() == pytest.approx(1e4)
    assert math.isfinite(g(t(-1e4)).item())


def test_lsgan_known_values():
    d, g = get_losses("lsgan")
    assert d(t(1.0, 1.0), t(0.0, 0.0)).item() == 0.0
    assert d(t(0.0), t(1.0)).item() == pytest.approx(2.0)
    assert g(t(0.5, -1.0)).item() == pytest.approx((0.25 + 4.0) / 2)


def test_hinge_known_values():
    d, g = get_losses("hinge")
    assert d(t(2.0), t(-2.0)).item() == 0.0
    assert d(t(0.0), t(0.0)).item() == pytest.approx(2.0)
    assert d(t(0.5), t(-0.25)).item() == pytest.approx(0.5 + 0.75)
    assert g(t(1.0, 3.0)).item() == pytest.approx(-2.0)
