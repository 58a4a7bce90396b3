"""The networks and optimisers of a run: seeded build, and a pack/unpack round trip through a checkpoint."""

import torch

from dcgan import checkpoint as ckpt
from dcgan.distributed import DistContext
from dcgan.runstate import build_state, pack, unpack, unwrap
from dcgan.step import StepOptions, train_step

from conftest import make_plan, make_record


def config(seed):
    return make_plan(
        {
            "model.image_size": 32,
            "model.channels": 3,
            "model.g_width": 8,
            "model.d_width": 8,
            "model.latent_dim": 8,
            "seed": seed,
        }
    )


CONFIG = config(4)
ONE_PROCESS = DistContext.from_env()
CPU = torch.device("cpu")


def weights(state):
    return [p.detach().clone() for net in (state.generator, state.discriminator, state.ema) for p in net.parameters()]


def test_build_depends_on_the_seed_alone_and_leaves_the_global_stream():
    before = torch.get_rng_state()
    a = build_state(CONFIG, CPU, ONE_PROCESS, capturable=False)
    assert torch.equal(torch.get_rng_state(), before)
    torch.randn(100)  # moving the global stream does not change the initial weights
    b = build_state(CONFIG, CPU, ONE_PROCESS, capturable=False)
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))
    other = build_state(config(5), CPU, ONE_PROCESS, capturable=False)
    assert not all(torch.equal(x, y) for x, y in zip(weights(a), weights(other)))
    assert unwrap(a.generator) is a.generator


def test_pack_and_unpack_through_a_checkpoint_restore_models_and_adam(tmp_path):
    trained = build_state(CONFIG, CPU, ONE_PROCESS, capturable=False)
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    train_step(trained, real, torch.randn(4, 8, generator=gen), StepOptions(), ema_beta=0.5)
    ckpt.save(tmp_path / "s.safetensors", make_record(networks=pack(trained)))

    fresh = build_state(CONFIG, CPU, ONE_PROCESS, capturable=False)
    assert not all(torch.equal(x, y) for x, y in zip(weights(trained), weights(fresh)))
    unpack(fresh, ckpt.load(tmp_path / "s.safetensors").networks)
    assert all(torch.equal(x, y) for x, y in zip(weights(trained), weights(fresh)))
    for opt_a, opt_b in ((trained.opt_g, fresh.opt_g), (trained.opt_d, fresh.opt_d)):
        for sa, sb in zip(opt_a.state.values(), opt_b.state.values()):
            assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
            assert float(sa["step"]) == float(sb["step"]) == 1


def test_unpack_keeps_this_runs_capturable_choice():
    # A run saved without --cuda-graphs, resumed with them: Adam must stay capturable.
    saved = build_state(CONFIG, CPU, ONE_PROCESS, capturable=False)
    gen = torch.Generator().manual_seed(1)
    train_step(saved, torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1, torch.randn(4, 8, generator=gen), StepOptions())
    graphed = build_state(CONFIG, CPU, ONE_PROCESS, capturable=True)
    unpack(graphed, pack(saved))
    assert all(group["capturable"] is True for group in graphed.opt_g.param_groups + graphed.opt_d.param_groups)
