"""--cuda-graphs: the static-buffer step, tested eagerly on CPU; the capture itself only where CUDA is."""

import copy

import numpy as np
import pytest
import torch

from dcgan.augment import Augmenter
from dcgan.config import ModelConfig, model_spec
from dcgan.dataset import EpochSampler
from dcgan.graphs import StepGraph, unsupported
from dcgan.models import build_models
from dcgan.runs import latest_checkpoint
from dcgan.step import GanState, StepOptions, ema_beta_at, to_model_range, train_step

from conftest import TINY, make_plan, run_cli, write_images
from conftest import load_state as load


def make_state(device="cpu", capturable=False):
    torch.manual_seed(0)
    g, d = build_models(model_spec(ModelConfig(image_size=16, channels=3, latent_dim=8, g_width=8, d_width=8)))
    g, d = g.to(device), d.to(device)
    adam = {"lr": 1e-3, "betas": (0.5, 0.999), "capturable": capturable}
    return GanState(
        g,
        d,
        torch.optim.Adam(g.parameters(), **adam),
        torch.optim.Adam(d.parameters(), **adam),
        copy.deepcopy(g).requires_grad_(False),
    )


def weights(state):
    return [
        t.detach().cpu().clone()
        for net in (state.generator, state.discriminator, state.ema)
        for t in [*net.parameters(), *net.buffers()]
    ]


def test_epoch_batches_are_the_batches_next_gives():
    sampler = EpochSampler(50, 8, seed=3, epoch=2)
    table = sampler.epoch_batches()
    assert table.shape == (6, 8)
    for row in table:
        np.testing.assert_array_equal(row, sampler.next())
    assert sampler.epoch == 3
    assert EpochSampler(5, 8, seed=0).epoch_batches().shape == (1, 5)  # fewer images than a batch


def test_eager_graph_body_matches_train_step():
    """Without augmentation the static-buffer step is the plain step: same batches, same z, same weights."""
    images = torch.randint(0, 256, (40, 16, 16, 3), dtype=torch.uint8)
    options = StepOptions(loss="bce")
    plain, graphed = make_state(), make_state()
    sampler = EpochSampler(40, 8, seed=0)
    table = sampler.epoch_batches()
    step = StepGraph(graphed, options, images, 8, 8, None, mirror=False, capture=False)
    step.set_epoch(table)
    z_plain, z_graph = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for i in range(5):
        beta = ema_beta_at(i, 0.999)
        idx = torch.from_numpy(sampler.next())
        expected = train_step(
            plain, to_model_range(images[idx], "tanh"), torch.randn(8, 8, generator=z_plain), options, beta
        )
        got = step(i, z_graph, beta, 0.0)
        for k, v in got.items():
            torch.testing.assert_close(v, expected[k].float(), rtol=0, atol=0)
    for a, b in zip(weights(plain), weights(graphed)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # the EMA weight is a tensor here, a float there


def test_augmenter_reads_p_from_a_tensor():
    x = torch.rand(16, 3, 16, 16)
    p = torch.zeros(())
    aug = Augmenter(("cutout",), p, torch.Generator().manual_seed(0))
    assert torch.equal(aug(x), x)  # p = 0: nothing changes
    p.fill_(1.0)  # the same object, changed in place, as the trainer does between replays
    out = aug(x)
    assert all((out[i] == 0).any() and not torch.equal(out[i], x[i]) for i in range(16))


def test_unsupported_names_each_reason():
    base = make_plan({})
    assert unsupported(base, distributed=False, images_on_device=True) is None
    assert "alternate" in unsupported(make_plan({"alternate": True}), False, True)
    assert "--d-skip-below" in unsupported(make_plan({"d_skip_below": 0.1}), False, True)
    assert "--r1-gamma" in unsupported(make_plan({"r1_gamma": 1.0}), False, True)
    assert "--simultaneous" in unsupported(make_plan({"simultaneous": True}), False, True)
    assert "torchrun" in unsupported(base, distributed=True, images_on_device=True)
    assert "too large" in unsupported(base, False, images_on_device=False)


def test_trainer_with_graph_step_gives_the_plain_runs_weights(tmp_path):
    """On CPU the graph's body runs eagerly: over three epochs and a checkpoint it must equal a plain run."""
    data = tmp_path / "data"
    write_images(data, 20)
    args = [str(data), *TINY, "--steps", "6", "--augment", "none", "--checkpoint-every", "3"]
    plain = run_cli("train", *args, "--out", str(tmp_path / "plain"))
    graphed = run_cli("train", *args, "--out", str(tmp_path / "graphed"), "--cuda-graphs")
    assert "--cuda-graphs: nothing to capture on cpu" in graphed.stderr
    assert "--cuda-graphs" not in plain.stderr
    a = load(latest_checkpoint(tmp_path / "plain" / "checkpoints"))
    b = load(latest_checkpoint(tmp_path / "graphed" / "checkpoints"))
    assert a["step"] == b["step"] == 6 and a["epoch"] == b["epoch"] == 3
    for net in ("generator", "discriminator", "ema"):
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-6, atol=1e-7)


def test_trainer_says_why_it_trains_without_graphs(tmp_path):
    data = tmp_path / "data"
    write_images(data, 12)
    proc = run_cli(
        "train", str(data), *TINY, "--steps", "2", "--alternate", "--cuda-graphs", "--out", str(tmp_path / "run")
    )
    assert "--cuda-graphs: not with the alternate D/G schedule; training without graphs" in proc.stderr


@pytest.mark.gpu  # CUDA graph capture needs a CUDA GPU
@pytest.mark.parametrize("augment", [None, ("color", "translation", "cutout")])
def test_captured_step_trains_like_the_eager_one(augment):
    """On a GPU: warm-up, capture and replay run, and the weights track an eager run of the same batches."""
    images = torch.randint(0, 256, (64, 16, 16, 3), dtype=torch.uint8, device="cuda")
    options = StepOptions(loss="bce")
    table = EpochSampler(64, 8, seed=0).epoch_batches()
    runs = []
    for capture in (False, True):
        state = make_state("cuda", capturable=True)
        step = StepGraph(state, options, images, 8, 8, augment, mirror=augment is not None, capture=capture)
        step.set_epoch(table)
        z_gen = torch.Generator(device="cuda").manual_seed(1)
        torch.cuda.manual_seed(2)
        for i in range(8):
            out = step(i, z_gen, ema_beta_at(i, 0.999), 1.0)
            assert all(torch.isfinite(v) for v in out.values())
        assert step.failure is None
        assert (step.graph is not None) == capture
        runs.append(weights(state))
    if augment is None:  # same batches and z: equal up to the order of floating-point sums
        for a, b in zip(*runs):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.gpu  # CUDA graph capture needs a CUDA GPU
def test_cuda_graph_run_resumes(tmp_path):
    data = tmp_path / "data"
    write_images(data, 40)
    args = [str(data), *TINY, "--device", "cuda", "--cuda-graphs", "--out", str(tmp_path / "run")]
    run_cli("train", *args, "--steps", "8")
    proc = run_cli("train", *args, "--steps", "16", "--resume")
    assert "capture failed" not in proc.stderr
    state = load(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 16
