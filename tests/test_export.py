"""ONNX export: batch norm folded, every size, both output ranges, a batch other than the exported one, the
metadata, `generate` from the .onnx file, and clean errors. Needs the onnx extra (installed by setup.sh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dcgan
from dcgan import checkpoint as ckpt
from dcgan.cli import main
from dcgan.config import SUPPORTED_SIZES, ModelConfig, model_spec, to_dict
from dcgan.export import ExportedGenerator, export_generator, fold_batchnorm
from dcgan.images import to_uint8
from dcgan.models import Generator
from dcgan.runs import load_generator
from dcgan.seeds import z_rows

onnxruntime = pytest.importorskip("onnxruntime", reason="needs pip install 'dcgan[onnx]'")


def trained_like(size: int, output: str = "tanh", channels: int = 3, seed: int = 0) -> Generator:
    """A small G whose batch norms hold non-trivial running statistics, as after training."""
    torch.manual_seed(seed)
    g = Generator(model_spec(ModelConfig(image_size=size, g_width=4, latent_dim=8, output=output), channels)).train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(16, 8) * 2 + 0.5)
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return g.eval()


def checkpoint_of(g: Generator, path):
    """A checkpoint file holding g (as G and as its moving average)."""
    spec = g.spec
    record = ckpt.CheckpointRecord(
        model=spec,
        plan={"model": to_dict(spec)},
        step=7,
        epoch=0,
        sampler={"epoch": 0, "batch": 0},
        networks={"generator": g.state_dict(), "discriminator": {}, "ema": g.state_dict(), "opt_g": {}, "opt_d": {}},
    )
    ckpt.save(path, record)
    return path


def test_folding_batch_norm_keeps_the_outputs():
    g = trained_like(32)
    folded = fold_batchnorm(g)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    z = torch.randn(5, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(z.view(5, 8, 1, 1)), g(z), rtol=1e-5, atol=1e-5)
        assert torch.equal(ExportedGenerator(g)(z), torch.from_numpy(to_uint8(g(z), "tanh")))


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_every_size_exports_and_runs_any_batch_within_one_level(size, tmp_path):
    g = trained_like(size, channels=1 if size == 28 else 3)
    loaded = load_generator(checkpoint_of(g, tmp_path / "g.safetensors"))
    result = export_generator(loaded, tmp_path / "g.onnx")
    assert result.max_difference <= 1 and result.bytes > 0
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    z = z_rows(range(100, 103), 8)  # 3 images: not the 16 it was exported and checked with
    got = session.run(None, {"z": z})[0]
    with torch.no_grad():
        expected = to_uint8(g(torch.from_numpy(z)), "tanh")
    assert got.dtype == np.uint8 and got.shape == expected.shape == (3, size, size, 1 if size == 28 else 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["image_size"] == str(size) and meta["latent_dim"] == "8" and "RandomState(seed)" in meta["seed_to_z"]
    assert meta["precise_bn"] == "false" and "re-estimated" not in dcgan.load(result.path).origin


@pytest.mark.parametrize("size, output", [(16, "tanh"), (28, "sigmoid")])
def test_float_output_is_the_model_range(size, output, tmp_path):
    g = trained_like(size, output=output)
    loaded = load_generator(checkpoint_of(g, tmp_path / "g.safetensors"))
    result = export_generator(loaded, tmp_path / "g.onnx", output="float")
    assert result.max_difference < 1e-3
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    z = z_rows(range(5), 8)
    got = session.run(None, {"z": z})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, g(torch.from_numpy(z)).numpy(), atol=1e-4)
    assert got.shape == (5, 3, size, size) and (got.min() >= 0 if output == "sigmoid" else got.min() >= -1)


def test_export_with_precise_bn_carries_the_re_estimated_statistics(tmp_path):
    run = checkpoint_of(trained_like(16), tmp_path / "run.safetensors")
    assert main(["export", str(run), "--out", str(tmp_path / "g.onnx"), "--precise-bn"]) == 0
    exported = dcgan.load(tmp_path / "g.onnx").images(seeds=range(8)).astype(int)
    precise = dcgan.load(run, precise_bn=True).images(seeds=range(8)).astype(int)
    copied = dcgan.load(run).images(seeds=range(8)).astype(int)
    assert np.abs(exported - precise).max() <= 1 < np.abs(exported - copied).max()
    assert "norms re-estimated" in dcgan.load(tmp_path / "g.onnx").origin


def test_export_command_then_generate_from_the_onnx_file_alone(tmp_path, capsys):
    run = checkpoint_of(trained_like(16), tmp_path / "run.safetensors")
    assert main(["export", str(run), "--out", str(tmp_path / "g.onnx")]) == 0
    assert "onnxruntime agrees with PyTorch" in capsys.readouterr().out
    assert main(["generate", str(tmp_path / "g.onnx"), "--seeds", "0-15", "--out-dir", str(tmp_path / "onnx")]) == 0
    assert "ONNX" in capsys.readouterr().err
    from_onnx = dcgan.load(tmp_path / "g.onnx").images(seeds=range(16))
    from_run = dcgan.load(run).images(seeds=range(16))
    assert from_onnx.shape == from_run.shape and np.abs(from_onnx.astype(int) - from_run.astype(int)).max() <= 1
    from PIL import Image

    saved = np.asarray(Image.open(tmp_path / "onnx" / "seed-0003.png"))
    assert np.array_equal(saved, from_onnx[3])


def test_export_mistakes(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "a-file").write_text("x")
    run = checkpoint_of(trained_like(16), tmp_path / "run.safetensors")
    cases = [
        (["export", str(tmp_path / "empty-run"), "--out", str(tmp_path / "g.onnx")], 1, "no checkpoint"),
        (["export", str(run), "--out", str(tmp_path / "a-file" / "g.onnx")], 1, "is a file, not a folder"),
        (["export", str(run), "--out", str(tmp_path / "g.pt")], 2, "must end in .onnx"),
        (["export", str(run), "--out", str(tmp_path / "g.onnx"), "--opset", "7"], 2, "--opset must be at least 18"),
        (["generate", str(tmp_path / "a-file.onnx"), "-n", "2", "--grid", str(tmp_path / "g.png")], 1, "no such file"),
    ]
    for argv, status, words in cases:
        assert main(argv) == status, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (argv, err)
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # the extra is not installed
    assert main(["export", str(run), "--out", str(tmp_path / "g.onnx")]) == 1
    assert "pip install 'dcgan[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "g.onnx").exists()


def test_the_readme_example_draws_what_dcgan_draws(tmp_path, monkeypatch):
    from conftest import ROOT

    run = checkpoint_of(trained_like(16), tmp_path / "run.safetensors")
    assert main(["export", str(run), "--out", str(tmp_path / "ramen.onnx")]) == 0
    readme = (ROOT / "README.md").read_text()
    example = next(b.split("```", 1)[0] for b in readme.split("```python")[1:] if "onnxruntime as ort" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})  # numpy, onnxruntime and PIL only
    from PIL import Image

    drawn = np.asarray(Image.open(tmp_path / "seed-41.png"))
    expected = dcgan.load(run).images(seeds=[41])[0]
    assert np.abs(drawn.astype(int) - expected.astype(int)).max() <= 1
