"""Seeds, interpolation and latent arithmetic: the pure functions, the API and the commands."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

import dcgan
from dcgan.cli import main
from dcgan.figures import check_walk_output
from dcgan.latent import (
    ExpressionError,
    evaluate_expression,
    interpolation_path,
    lerp,
    load_z,
    parse_expression,
    save_z,
    slerp,
)
from dcgan.sampling import z_from_seeds
from dcgan.seeds import parse_seeds

from conftest import TINY, run_cli, write_images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run trained once for this module (16 px RGB, latent_dim 16)."""
    base = tmp_path_factory.mktemp("latent")
    write_images(base / "images", 8)
    run_cli(
        "train",
        str(base / "images"),
        "--out",
        str(base / "run"),
        *TINY,
        "--steps",
        "2",
        env={"DCGAN_CACHE": str(base / "cache")},
    )
    return base / "run"


@pytest.fixture(scope="module")
def gen(run):
    return dcgan.load(run)


def tile(image: Image.Image, index: int, columns: int, size: int, label: bool = True, padding: int = 2) -> np.ndarray:
    """The index-th tile of a make_grid image (size px tiles, 12 px caption above each when labelled)."""
    row, col = divmod(index, columns)
    label_h = 12 if label else 0
    x = padding + col * (size + padding)
    y = padding + row * (size + padding + label_h) + label_h
    return np.asarray(image.convert("RGB"))[y : y + size, x : x + size]


def enlarged(pixels: np.ndarray, scale: int) -> np.ndarray:
    return pixels.repeat(scale, 0).repeat(scale, 1)


# --- seeds ---


def test_seed_ranges_parse_and_bad_ones_fail_cleanly():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert parse_seeds("3, 17,42") == [3, 17, 42]
    for bad, part in (("5-1", "5-1"), ("a", "a"), ("1,,2", "empty"), ("-3", "-3"), ("1 2", "space")):
        with pytest.raises(ValueError, match=part):
            parse_seeds(bad)


def test_same_seed_same_image(gen, run):
    alone = gen.images(seeds=[7])[0]
    in_batch = gen.images(seeds=[3, 7, 9])[1]
    again = dcgan.load(run).images(seeds=[7])[0]
    assert np.array_equal(alone, in_batch) and np.array_equal(alone, again)
    assert not np.array_equal(alone, gen.images(seeds=[8])[0])
    assert torch.equal(z_from_seeds([7], 16), z_from_seeds([1, 7], 16)[1:])


def test_generate_grid_is_ordered_and_labelled_by_seed(run, tmp_path, capsys):
    out, grid = tmp_path / "seeds", tmp_path / "grid.png"
    assert main(["generate", str(run), "--seeds", "5,2,9", "--out-dir", str(out), "--grid", str(grid)]) == 0
    image = Image.open(grid)
    for i, seed in enumerate([5, 2, 9]):  # 2 columns, tiles enlarged 3x for the captions
        single = np.asarray(Image.open(out / f"seed-{seed:04d}.png").convert("RGB"))
        assert np.array_equal(tile(image, i, 2, 48), enlarged(single, 3)), seed
    assert main(["generate", str(run), "--seeds", "0-1", "--truncation", "0", "--out-dir", str(tmp_path / "t")]) == 0
    zero = [np.asarray(Image.open(tmp_path / "t" / f"seed-000{s}.png")) for s in (0, 1)]
    assert np.array_equal(*zero)  # truncation 0 puts every seed at the mean z


# --- interpolation ---


def test_slerp_against_hand_computation():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(slerp(a, b, 1 / 3), torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6)]))
    # Unequal norms: sin((1-t)w)/sin(w) a + sin(tw)/sin(w) b with w = 90 degrees.
    assert torch.allclose(slerp(2 * a, b, 0.5), torch.tensor([2 * math.sqrt(0.5), math.sqrt(0.5)]))
    rows = slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert rows.shape == (3, 2) and torch.equal(rows[0], a) and torch.equal(rows[2], b)
    # Parallel and antiparallel vectors have no unique great circle: lerp, and no NaN.
    assert torch.allclose(slerp(a, 3 * a, 0.5), 2 * a)
    assert torch.allclose(slerp(a, -a, 0.25), lerp(a, -a, 0.25))


def test_slerp_keeps_norm_of_equal_norm_vectors():
    a, b = z_from_seeds([1, 2], 100)
    b = b * (a.norm() / b.norm())
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(slerp(a, b, t).norm(dim=1), a.norm().expand(11), rtol=1e-5)
    assert lerp(a, b, 0.5).norm() < 0.8 * a.norm()  # what slerp avoids


def test_interpolation_path_passes_exactly_through_each_z():
    z = z_from_seeds([3, 17, 42], 16)
    for spherical in (True, False):
        path = interpolation_path(z, 5, spherical=spherical)
        assert path.shape == (11, 16)
        assert torch.equal(path[0], z[0]) and torch.equal(path[5], z[1]) and torch.equal(path[10], z[2])
    looped = interpolation_path(z, 5, loop=True)
    assert looped.shape == (15, 16) and torch.equal(looped[10], z[2])
    assert torch.allclose(looped[14], slerp(z[2], z[0], 0.8))  # last step heads back to the first z
    with pytest.raises(ValueError, match="at least two"):
        interpolation_path(z[:1], 5)


def test_rendered_walk_starts_and_ends_on_the_seed_images(gen):
    frames = gen.interpolate([3, 17], frames=4)
    assert frames.shape == (5, 16, 16, 3)
    assert np.array_equal(frames[0], gen.images(seeds=[3])[0])
    assert np.array_equal(frames[-1], gen.images(seeds=[17])[0])


def test_interpolate_command_writes_gif_and_strip(run, gen, tmp_path, capsys):
    gif, strip = tmp_path / "walk.gif", tmp_path / "walk.png"
    assert main(["interpolate", str(run), "--seeds", "3,17,42", "--frames", "4", "--out", str(gif)]) == 0
    assert "9 frames" in capsys.readouterr().out
    with Image.open(gif) as image:  # 16 px enlarged 8x to reach 128 px
        assert image.size == (128, 128) and image.n_frames == 9 and image.info["loop"] == 0
    assert (
        main(
            [
                "interpolate",
                str(run),
                "--seeds",
                "3,17,42",
                "--frames",
                "4",
                "--loop",
                "--lerp",
                "--scale",
                "2",
                "--out",
                str(gif),
            ]
        )
        == 0
    )
    with Image.open(gif) as image:
        assert image.size == (32, 32) and image.n_frames == 12

    assert main(["interpolate", str(run), "--seeds", "3,17,42", "--frames", "4", "--out", str(strip)]) == 0
    image = Image.open(strip)  # a row per segment, 5 tiles of 64 px (4x), both ends shown
    assert image.size == (5 * 66 + 2, 2 * 78 + 2)
    seeds = gen.images(seeds=[3, 17, 42])
    for index, seed in ((0, 0), (4, 1), (5, 1), (9, 2)):
        assert np.array_equal(tile(image, index, 5, 64), enlarged(seeds[seed], 4)), index


def test_mp4_without_imageio_ffmpeg_says_how_to_install(monkeypatch, run, tmp_path, capsys):
    monkeypatch.setitem(__import__("sys").modules, "imageio_ffmpeg", None)  # import now fails
    with pytest.raises(ValueError, match="pip install imageio-ffmpeg"):
        check_walk_output("walk.mp4")
    assert main(["interpolate", str(run), "--seeds", "1,2", "--out", str(tmp_path / "walk.mp4")]) == 2
    assert "pip install imageio-ffmpeg" in capsys.readouterr().err


def test_interpolate_command_writes_mp4(run, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    video = tmp_path / "walk.mp4"
    assert main(["interpolate", str(run), "--seeds", "3,17,42", "--frames", "4", "--out", str(video)]) == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 9


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "3"], "at least two"),
        (["--seeds", "3,x"], "'x' is not a seed"),
        (["--seeds", "1,2", "--frames", "0"], "--frames"),
        (["--seeds", "1,2", "--out", "walk.avi"], ".gif, .mp4 or .png"),
    ],
)
def test_interpolate_mistakes_fail_cleanly(run, tmp_path, capsys, args, message):
    argv = ["interpolate", str(run), "--out", str(tmp_path / "w.gif"), *args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# --- arithmetic ---


def test_expression_parses_to_signed_seed_groups():
    assert parse_expression("[12,40,77] - [5,9,31] + [21,33,60]") == [
        (1, [12, 40, 77]),
        (-1, [5, 9, 31]),
        (1, [21, 33, 60]),
    ]
    assert parse_expression(" -7 + [ 3-5 , 9 ]") == [(-1, [7]), (1, [3, 4, 5, 9])]
    assert parse_expression("7-3") == [(1, [7]), (-1, [3])]  # outside brackets '-' subtracts


def test_expression_evaluates_to_signed_sum_of_bracket_means():
    def z_of(seeds):  # seed s -> (s, 2s), so each mean is easy to do by hand
        return torch.tensor([[s, 2.0 * s] for s in seeds])

    z = evaluate_expression(parse_expression("[1,2] - 3 + [4-6]"), z_of)
    assert torch.allclose(z, torch.tensor([1.5 - 3 + 5, 3.0 - 6 + 10]))


@pytest.mark.parametrize(
    "text, position, words",
    [
        ("", 0, "empty expression"),
        ("[1,2", 0, "never closed"),
        ("[1,2 - [3]", 7, "before the previous one was closed"),
        ("[1 2]", 3, "missing ','"),
        ("[1] [2]", 4, "missing '+' or '-'"),
        ("[1] +", 4, "no term after it"),
        ("[5-3]", 1, "runs backwards"),
        ("[1,x]", 3, "unexpected 'x'"),
        ("[1,,2]", 3, "empty item"),
        ("[]", 0, "empty brackets"),
        ("[1] * 2", 4, "expected '+' or '-'"),
    ],
)
def test_bad_expressions_point_at_the_problem(text, position, words):
    with pytest.raises(ExpressionError, match=re.escape(words)) as info:
        parse_expression(text)
    assert isinstance(info.value, ValueError) and info.value.position == position
    shown, caret = str(info.value).splitlines()[-2:]
    assert shown == "  " + text and caret == "  " + " " * position + "^"


def test_arithmetic_command_draws_terms_means_and_result(run, gen, tmp_path, capsys):
    figure, zfile = tmp_path / "result.png", tmp_path / "result.npy"
    assert (
        main(
            [
                "arithmetic",
                str(run),
                "[1,2] - 3 + [4-6]",
                "--out",
                str(figure),
                "--samples",
                "4",
                "--save-z",
                str(zfile),
            ]
        )
        == 0
    )
    assert "[1,2] - [3] + [4,5,6]" in capsys.readouterr().out
    z = load_z(zfile)
    seeds_z = gen.z(range(7))
    assert torch.allclose(z[0], seeds_z[1:3].mean(0) - seeds_z[3] + seeds_z[4:7].mean(0), atol=1e-6)

    # Four rows of 64 px (48 px tiles at 3x, caption, padding) with 18 px between; the widest is the
    # result row: sign column (28), result, gap, 4 noisy copies.
    image = Image.open(figure).convert("RGB")
    assert image.size == (28 + 52 + 18 + 4 * 50 + 2, 4 * 64 + 3 * 18)
    result_tile = np.asarray(image)[3 * 82 + 14 : 3 * 82 + 14 + 48, 30:78]
    assert np.array_equal(result_tile, enlarged(gen.images(z=z)[0], 3))
    mean_tile = np.asarray(image)[14 : 14 + 48, 28 + 152 + 18 + 2 : 28 + 152 + 18 + 50]  # first term's mean column
    assert np.array_equal(mean_tile, enlarged(gen.images(z=seeds_z[1:3].mean(0))[0], 3))

    # The rendered z comes back through generate --z.
    assert main(["generate", str(run), "--z", str(zfile), "--out-dir", str(tmp_path / "z")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "z" / "z-0000.png")), gen.images(z=z)[0])


def test_arithmetic_noise_is_seeded(gen):
    z, first = gen.arithmetic("[1,2] + 3", samples=3, seed=1)
    _, same = gen.arithmetic("[1,2] + 3", samples=3, seed=1)
    _, other = gen.arithmetic("[1,2] + 3", samples=3, seed=2)
    assert z.shape == (16,)
    assert np.array_equal(np.asarray(first), np.asarray(same)) and not np.array_equal(
        np.asarray(first), np.asarray(other)
    )


def test_bad_expression_on_the_command_line_shows_a_caret_not_a_traceback(run, tmp_path, capsys):
    assert main(["arithmetic", str(run), "[12,40] - [5,x]", "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcgan arithmetic: error: bad expression: unexpected 'x'")
    assert err.splitlines()[-2:] == ["  [12,40] - [5,x]", "  " + " " * 13 + "^"]
    assert not (tmp_path / "r.png").exists()


def test_generate_refuses_z_of_the_wrong_size(run, tmp_path, capsys):
    save_z(tmp_path / "wide.npy", torch.zeros(2, 32))
    assert main(["generate", str(run), "--z", str(tmp_path / "wide.npy"), "--grid", str(tmp_path / "g.png")]) == 2
    assert "32 dimensions" in capsys.readouterr().err


# --- files ---


def test_save_and_load_z_round_trip(tmp_path):
    z = z_from_seeds([1, 2, 3], 16)
    save_z(tmp_path / "sub" / "z.npy", z)
    assert torch.equal(load_z(tmp_path / "sub" / "z.npy"), z)
    save_z(tmp_path / "one.npy", z[0].numpy())
    assert torch.equal(load_z(tmp_path / "one.npy"), z[0])
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for bad in ("pickled.npy", "missing.npy"):
        with pytest.raises(ValueError, match="cannot read z"):
            load_z(tmp_path / bad)
