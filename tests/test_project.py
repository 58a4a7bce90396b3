"""Projection into z: a generated picture is found again, the same seed gives the same z, z files walk and add
like seeds, and bad input gets a clear message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import dcgan
from dcgan.cli import main
from dcgan.latent import load_z, save_z
from dcgan.options import WalkSpec
from dcgan.seeds import parse_expression, parse_stops

from conftest import TINY, run_cli, write_images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run (16 px RGB, latent_dim 16) trained for a few steps."""
    base = tmp_path_factory.mktemp("project")
    write_images(base / "images", 8)
    run_cli(
        "train",
        str(base / "images"),
        "--out",
        str(base / "run"),
        *TINY,
        "--steps",
        "4",
        env={"DCGAN_CACHE": str(base / "cache")},
    )
    return base / "run"


def test_a_generated_picture_is_found_again(run):
    gen = dcgan.load(run)
    wanted = torch.from_numpy(np.random.default_rng(5).standard_normal((3, 16)).astype(np.float32))
    targets = gen.images(z=wanted)
    result = gen.project(targets, steps=300, starts=4, seed=0)
    assert result.z.shape == (3, 16) and result.images.shape == targets.shape
    assert result.psnr.mean() > 30, result.psnr  # within a small pixel error of G(z*)
    again = gen.project(targets, steps=300, starts=4, seed=0)
    assert np.array_equal(again.z, result.z)  # deterministic for a seed on CPU
    without = gen.project(targets, steps=300, starts=4, seed=0, features="none")
    assert without.z.shape == (3, 16)


def test_pairwise_feature_distance_is_the_distance_of_every_pair():
    from dcgan.project import feature_distance, pairwise_feature_distance

    rng = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 4, 5, 5, generator=rng), torch.randn(3, 6, 2, 2, generator=rng)]
    b = [torch.randn(2, 4, 5, 5, generator=rng), torch.randn(2, 6, 2, 2, generator=rng)]
    pairs = pairwise_feature_distance(a, b)
    for i in range(3):
        for j in range(2):
            one = feature_distance([x[i : i + 1] for x in a], [y[j : j + 1] for y in b])[0]
            torch.testing.assert_close(pairs[i, j], one, rtol=1e-5, atol=1e-5)


def test_seeds_and_z_files_mix_in_walks_and_expressions():
    assert parse_stops("3,proj/ramen.npy,5-6") == [3, "proj/ramen.npy", 5, 6]
    assert parse_expression("proj/my-ramen.npy - [4,5] + 7") == [(1, "proj/my-ramen.npy"), (-1, [4, 5]), (1, [7])]
    assert parse_expression("-a.npy+b.NPY") == [(-1, "a.npy"), (1, "b.NPY")]


def test_project_command_then_walk_and_arithmetic_with_the_z_file(run, tmp_path, capsys):
    gen = dcgan.load(run)
    Image.fromarray(gen.images(seeds=[9])[0]).save(tmp_path / "photo.png")
    out = tmp_path / "proj"
    assert (
        main(
            ["project", str(run), str(tmp_path / "photo.png"), "--out-dir", str(out), "--steps", "60", "--starts", "2"]
        )
        == 0
    )
    assert "photo: " in capsys.readouterr().out
    for name in ("photo.npy", "photo.png", "photo-compare.png"):
        assert (out / name).is_file(), name
    z = load_z(out / "photo.npy")
    assert z.shape == (1, 16)

    strip = tmp_path / "walk.png"
    assert (
        main(["interpolate", str(run), "--seeds", f"3,{out / 'photo.npy'}", "--frames", "4", "--out", str(strip)]) == 0
    )
    walk = gen.walk(WalkSpec(seeds=f"3,{out / 'photo.npy'}", frames=4))
    assert np.array_equal(walk[0], gen.images(seeds=[3])[0]) and np.array_equal(walk[-1], gen.images(z=z)[0])

    figure, result = tmp_path / "sum.png", tmp_path / "sum.npy"
    assert (
        main(
            ["arithmetic", str(run), f"{out / 'photo.npy'} - [4,5] + 7", "--out", str(figure), "--save-z", str(result)]
        )
        == 0
    )
    expected = z[0] - gen.z([4, 5]).mean(0) + gen.z([7])[0]
    assert torch.allclose(load_z(result)[0], expected, atol=1e-6)


def test_projection_mistakes(run, tmp_path, capsys):
    (tmp_path / "text.jpg").write_text("not a picture")
    Image.new("L", (20, 20), 90).save(tmp_path / "gray.png")
    save_z(tmp_path / "wide.npy", np.zeros((1, 32), np.float32))
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    cases = [
        (["project", str(run), str(tmp_path / "text.jpg"), "--out-dir", str(tmp_path / "p")], 1, "cannot use"),
        (["project", str(run), str(tmp_path / "nope.png"), "--out-dir", str(tmp_path / "p")], 2, "no such picture"),
        (
            ["project", str(run), str(tmp_path / "gray.png"), "--out-dir", str(tmp_path / "p"), "--steps", "0"],
            2,
            "--steps must be at least 1",
        ),
        (
            ["arithmetic", str(run), f"{tmp_path / 'wide.npy'} + 1", "--out", str(tmp_path / "a.png")],
            2,
            "32 dimensions",
        ),
        (
            ["arithmetic", str(run), f"{tmp_path / 'words.npy'} + 1", "--out", str(tmp_path / "a.png")],
            2,
            "expected numbers",
        ),
        (
            ["interpolate", str(run), "--seeds", f"1,{tmp_path / 'wide.npy'}", "--out", str(tmp_path / "w.gif")],
            2,
            "32 dimensions",
        ),
    ]
    for argv, status, words in cases:
        assert main(argv) == status, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (argv, err)
    # A gray picture for this colour model is used as three equal channels, and said so.
    assert (
        main(["project", str(run), str(tmp_path / "gray.png"), "--out-dir", str(tmp_path / "p"), "--steps", "5"]) == 0
    )
    assert "gray.png is gray; used as three equal channels" in capsys.readouterr().err
