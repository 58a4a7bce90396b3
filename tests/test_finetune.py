"""--init-from and --freeze-d: weights copied, optimisers fresh, frozen blocks unchanged, clear mismatches, and a
fine-tuned run that still resumes bit-exactly."""

from __future__ import annotations

import json

import pytest
import torch

import dcgan
from dcgan import checkpoint as ckpt
from dcgan.config import build_config
from dcgan.runs import latest_checkpoint
from dcgan.trainer import Trainer, TrainingError

from conftest import SMALL, TINY, load_state, run_cli, write_images


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    base = tmp_path_factory.mktemp("source")
    write_images(base / "big", 12, seed=3)
    run_cli(
        "train",
        str(base / "big"),
        "--out",
        str(base / "run"),
        *TINY,
        "--steps",
        "4",
        env={"DCGAN_CACHE": str(base / "cache")},
    )
    return base / "run"


def test_weights_are_copied_and_optimisers_start_fresh(source, image_folder, tmp_path):
    config = build_config({**SMALL, "steps": 3, "init_from": str(source)})
    trainer = Trainer(image_folder, tmp_path / "tuned", config, say=lambda m: None)
    try:
        saved = ckpt.load(latest_checkpoint(source / "checkpoints")).networks
        for part, net in (
            ("generator", trainer.state.generator),
            ("discriminator", trainer.state.discriminator),
            ("ema", trainer.state.ema),
        ):
            for name, value in net.state_dict().items():
                assert torch.equal(value, saved[part][name]), (part, name)
        assert not trainer.state.opt_g.state and not trainer.state.opt_d.state and trainer.step == 0
        assert "step-00000004.safetensors (step 4)" in trainer.plan.init_from
    finally:
        trainer._release()
    trainer = Trainer(image_folder, tmp_path / "tuned", config, say=lambda m: None)
    trainer.run()
    plan = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert plan["init_from"].endswith("(step 4)")  # where it came from, in config.json and every checkpoint
    assert load_state(latest_checkpoint(tmp_path / "tuned" / "checkpoints"))["plan"]["init_from"] == plan["init_from"]


def test_frozen_blocks_do_not_move(source, image_folder, tmp_path):
    result = dcgan.train(image_folder, tmp_path / "frozen", init_from=str(source), freeze_d=1, steps=4, **SMALL)
    before = ckpt.load(latest_checkpoint(source / "checkpoints")).networks["discriminator"]
    after = ckpt.load(result.checkpoint).networks["discriminator"]
    assert torch.equal(before["features.0.weight"], after["features.0.weight"])  # block 1: frozen
    assert not torch.equal(before["features.2.weight"], after["features.2.weight"])  # block 2: trained


def test_mismatches_say_what_differs_and_what_to_pass(source, image_folder, tmp_path, capsys):
    from dcgan.cli import main

    base = [
        "train",
        str(image_folder),
        "--out",
        str(tmp_path / "x"),
        "--image-size",
        "16",
        "--latent-dim",
        "16",
        "--init-from",
        str(source),
        "--steps",
        "2",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main([*base, "--g-width", "4", "--d-width", "8"]) == 1
    err = capsys.readouterr().err
    assert "g_width 8 there, 4 here" in err and "pass --g-width 8" in err
    assert main([*base, "--g-width", "8", "--d-width", "8", "--freeze-d", "3"]) == 2
    assert "D has 2 blocks" in capsys.readouterr().err
    assert main(["train", str(image_folder), "--out", str(tmp_path / "y"), "--freeze-d", "1"]) == 2
    assert "add --init-from" in capsys.readouterr().err
    from test_classes import coloured_folder

    coloured_folder(tmp_path / "kinds", {"red": 4, "green": 4})
    assert (
        main(["train", str(tmp_path / "kinds"), *base[2:], "--g-width", "8", "--d-width", "8", "--classes", "folders"])
        == 1
    )
    assert "the source model is unconditional and this run is not" in capsys.readouterr().err
    with pytest.raises(TrainingError):
        dcgan.train(image_folder, tmp_path / "z", init_from=str(source), steps=2, **{**SMALL, "model.g_width": 4})


def test_a_fine_tuned_run_resumes_bit_exactly(source, image_folder, tmp_path):
    settings = {**SMALL, "init_from": str(source), "freeze_d": 1, "checkpoint_every": 3}
    dcgan.train(image_folder, tmp_path / "straight", steps=6, **settings)
    dcgan.train(image_folder, tmp_path / "halves", steps=3, **settings)
    dcgan.train(image_folder, tmp_path / "halves", resume=True, steps=6)
    a = load_state(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    b = load_state(latest_checkpoint(tmp_path / "halves" / "checkpoints"))
    for part in ("generator", "discriminator", "ema", "opt_g", "opt_d"):
        for name in a[part] if part in ("generator", "discriminator", "ema") else ():
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    assert a["step"] == b["step"] == 6 and a["plan"] == b["plan"]
