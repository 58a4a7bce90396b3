"""Class-conditional training: classes from subfolders or a labels file, balanced sampling, the projection
discriminator, every command taking a class, per-class FID, and the mistakes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import dcgan
from dcgan.cli import main
from dcgan.config import ModelConfig, model_spec
from dcgan.dataset import EpochSampler
from dcgan.labels import balanced_weights
from dcgan.models import Discriminator, Generator

from conftest import TINY, run_cli


def coloured_folder(root, counts=None):
    """Subfolders of flat pictures with a little noise, one colour per class."""
    colours = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230)}
    rng = np.random.default_rng(0)
    for name, n in (counts or {"red": 6, "green": 6, "blue": 6}).items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = np.clip(np.array(colours[name]) + rng.integers(-20, 20, (20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("classes")
    coloured_folder(base / "data")
    Image.new("RGB", (20, 20), "white").save(base / "data" / "loose.png")  # in no class folder
    proc = run_cli(
        "train",
        str(base / "data"),
        "--out",
        str(base / "run"),
        *TINY,
        "--steps",
        "6",
        "--classes",
        "folders",
        "--grid-size",
        "12",
        env={"DCGAN_CACHE": str(base / "cache")},
    )
    return base, proc


def test_folders_become_classes_and_the_report_counts_them(conditional_run):
    base, proc = conditional_run
    assert "1 picture(s) belong to no class" in proc.stderr
    plan = json.loads((base / "run" / "config.json").read_text())
    assert plan["class_names"] == ["blue", "green", "red"] and plan["model"]["num_classes"] == 3
    report = json.loads((base / "run" / "data_report.json").read_text())
    assert report["classes"] == {"blue": 6, "green": 6, "red": 6} and report["unlabelled"] == ["loose.png"]
    grid = Image.open(sorted((base / "run" / "samples").iterdir())[-1])
    # 3 rows (one per class) of 4 columns (grid size 12), 16 px tiles enlarged 4x, 2 px padding
    assert grid.size == (4 * 66 + 2, 3 * 66 + 2)


def test_every_command_takes_a_class(conditional_run, tmp_path, capsys):
    base, _ = conditional_run
    run = base / "run"
    gen = dcgan.load(run)
    assert gen.class_names == ("blue", "green", "red")
    red, blue = gen.images(seeds=[1, 2], classes="red"), gen.images(seeds=[1, 2], classes=0)
    assert red.shape == (2, 16, 16, 3) and not np.array_equal(red, blue)
    assert np.array_equal(gen.images(seeds=[1, 2], classes=["red", "blue"])[1], blue[1])
    with pytest.raises(dcgan.UserError, match="say which class"):
        gen.images(seeds=[1])

    assert (
        main(
            [
                "generate",
                str(run),
                "--seeds",
                "0-2",
                "--out-dir",
                str(tmp_path / "all"),
                "--grid",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names[:3] == ["seed-0000-blue.png", "seed-0000-green.png", "seed-0000-red.png"] and len(names) == 9
    assert main(["generate", str(run), "--seeds", "0-2", "--class", "green,2", "--out-dir", str(tmp_path / "two")]) == 0
    assert len(list((tmp_path / "two").iterdir())) == 6
    assert np.array_equal(np.asarray(Image.open(tmp_path / "two" / "seed-0001-red.png")), red[0])

    assert (
        main(
            [
                "interpolate",
                str(run),
                "--seeds",
                "1,2",
                "--frames",
                "2",
                "--class",
                "red",
                "--out",
                str(tmp_path / "w.png"),
            ]
        )
        == 0
    )
    walk = gen.interpolate([1, 2], frames=2, classes="red")
    assert np.array_equal(walk[0], red[0]) and np.array_equal(walk[-1], red[1])

    z, _ = gen.arithmetic("red:[1,2] - blue:3 + green:4", samples=1)
    assert torch.allclose(z, gen.z([1, 2]).mean(0) - gen.z([3])[0] + gen.z([4])[0])
    assert main(["arithmetic", str(run), "red:[1,2] - blue:3 + green:4", "--out", str(tmp_path / "a.png")]) == 0
    capsys.readouterr()


def test_class_mistakes(conditional_run, tmp_path, capsys):
    base, _ = conditional_run
    run = str(base / "run")
    cases = [
        (
            ["generate", run, "-n", "2", "--class", "purple", "--grid", str(tmp_path / "g.png")],
            2,
            "unknown class 'purple'; this model knows blue, green, red",
        ),
        (["arithmetic", run, "[1,2] - blue:3", "--out", str(tmp_path / "a.png")], 2, "give every term its class"),
        (["interpolate", run, "--seeds", "1,2", "--out", str(tmp_path / "w.gif")], 2, "say which class"),
    ]
    for argv, status, words in cases:
        assert main(argv) == status, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (argv, err)


def test_an_unconditional_run_refuses_a_class(tmp_path, capsys, image_folder):
    run_cli("train", str(image_folder), "--out", str(tmp_path / "plain"), *TINY, "--steps", "2")
    assert (
        main(["generate", str(tmp_path / "plain"), "-n", "2", "--class", "red", "--grid", str(tmp_path / "g.png")]) == 2
    )
    assert "this model has no classes" in capsys.readouterr().err


def test_folders_that_cannot_train_classes(tmp_path):
    coloured_folder(tmp_path / "one", {"red": 4})
    proc = run_cli(
        "train", str(tmp_path / "one"), "--out", str(tmp_path / "r1"), *TINY, "--classes", "folders", check=False
    )
    assert proc.returncode == 1 and "at least two classes" in proc.stderr and "Traceback" not in proc.stderr
    coloured_folder(tmp_path / "broken", {"red": 4, "green": 4})
    (tmp_path / "broken" / "blue").mkdir()
    (tmp_path / "broken" / "blue" / "bad.png").write_text("not a picture")
    proc = run_cli(
        "train", str(tmp_path / "broken"), "--out", str(tmp_path / "r2"), *TINY, "--classes", "folders", check=False
    )
    assert proc.returncode == 1 and "class(es) with no usable picture: blue" in proc.stderr
    proc = run_cli("train", str(tmp_path / "one"), "--out", str(tmp_path / "r3"), *TINY, "--balance", check=False)
    assert proc.returncode == 2 and "add --classes" in proc.stderr


def test_a_labels_file_with_missing_files_and_resume_refusing_changed_classes(tmp_path):
    data = coloured_folder(tmp_path / "data", {"red": 4, "green": 4})
    rows = (
        ["path,label"] + [f"red/red_{i}.png,warm" for i in range(4)] + [f"green/green_{i}.png,cool" for i in range(4)]
    )
    rows.append("gone/missing.png,cool")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    run_cli("train", str(data), "--out", str(run), *TINY, "--steps", "2", "--classes", str(tmp_path / "labels.csv"))
    report = json.loads((run / "data_report.json").read_text())
    assert report["classes"] == {"cool": 4, "warm": 4} and report["labels_missing"] == ["gone/missing.png"]
    assert json.loads((run / "config.json").read_text())["class_names"] == ["cool", "warm"]
    (tmp_path / "labels.csv").write_text("\n".join(rows[:-1] + ["green/green_0.png,mint"]) + "\n")
    proc = run_cli(
        "train", str(data), "--out", str(run), "--resume", "--steps", "4", "--allow-data-change", check=False
    )
    assert proc.returncode == 1 and "the classes changed" in proc.stderr


def test_balanced_sampling_draws_every_class_about_equally():
    labels = np.array([0] * 90 + [1] * 10)
    sampler = EpochSampler(100, 10, seed=0, weights=balanced_weights(labels))
    drawn = np.concatenate([sampler.next() for _ in range(200)])
    share = np.bincount(labels[drawn], minlength=2) / len(drawn)
    assert abs(share[1] - 0.5) < 0.05  # 10% of the folder, half of the draws
    again = EpochSampler(100, 10, seed=0, weights=balanced_weights(labels), epoch=3, batch=2)
    assert len(again.next()) == 10


@pytest.mark.parametrize("class_input", ["concat", "cbn"])
def test_conditional_networks_use_the_class(class_input):
    torch.manual_seed(0)
    spec = model_spec(ModelConfig(image_size=16, g_width=4, latent_dim=8, class_input=class_input), 3, num_classes=3)
    g, d = Generator(spec).eval(), Discriminator(spec).eval()
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # away from the initial scales, so classes differ
        for p in d.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        z = torch.randn(2, 8)
        a, b = g(z, torch.tensor([0, 0])), g(z, torch.tensor([1, 1]))
        assert not torch.allclose(a, b)
        mixed = g(z, torch.tensor([[0.5, 0.5, 0.0]] * 2))  # a soft class, as arithmetic makes
        assert mixed.shape == a.shape
        x = torch.randn(2, 3, 16, 16)
        assert not torch.allclose(d(x, torch.tensor([0, 0])), d(x, torch.tensor([2, 2])))


def test_the_class_terms_have_the_scales_that_measured_best():
    """D's class term is the projection onto the last features summed over positions (Miyato & Koyama's
    global sum pooling; a mean made it 16 times smaller here); G's class vector starts smaller than z."""
    from dcgan.models import CLASS_EMBEDDING_STD

    torch.manual_seed(0)
    spec = model_spec(ModelConfig(image_size=16, g_width=4, latent_dim=8), 3, num_classes=3)
    d = Discriminator(spec).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        h = d.features(x)
        assert h.shape[-2:] == (4, 4)
        expected = ((d.class_embedding.weight[0] - d.class_embedding.weight[2]) * h.sum(dim=(2, 3))).sum(dim=1)
        got = d(x, torch.tensor([0, 0])) - d(x, torch.tensor([2, 2]))
    torch.testing.assert_close(got, expected)
    g = Generator(model_spec(ModelConfig(image_size=16, g_width=4, latent_dim=64), 3, num_classes=40))
    assert CLASS_EMBEDDING_STD < 1  # z ~ N(0, 1)
    assert float(g.class_embedding.detach().std()) == pytest.approx(CLASS_EMBEDDING_STD, rel=0.1)


def test_projection_picks_the_nearest_class_unless_one_is_given(conditional_run, tmp_path, capsys):
    """Without --class a conditional model projects each picture into the class whose own images come nearest
    it; with --class, into that one. The z found reproduces its image in its class."""
    from dcgan.project import CLASS_SAMPLES, DiscriminatorFeatures, likeliest_classes
    from dcgan.runs import load_generator

    base, _ = conditional_run
    run = base / "run"
    gen = dcgan.load(run)
    loaded = load_generator(run, discriminator=True)
    # Pictures G drew in a known class from z the class search also draws (seed 0's): that class is nearest.
    drawn = torch.randn(CLASS_SAMPLES, gen.latent_dim, generator=torch.Generator().manual_seed(0))[[3, 7]]
    pictures = np.concatenate([gen.images(z=drawn[:1], classes="red"), gen.images(z=drawn[1:], classes="blue")])
    features = DiscriminatorFeatures(loaded.discriminator)
    for critic in (features, None):
        assert likeliest_classes(loaded.net, pictures, "tanh", 3, critic).tolist() == [2, 0]

    result = gen.project(pictures, steps=20, starts=2)
    assert result.classes.tolist() == [2, 0]
    for i, k in enumerate(result.classes):
        again = gen.images(z=torch.from_numpy(result.z[i : i + 1]), classes=int(k))[0]
        assert np.array_equal(again, result.images[i])
    assert gen.project(pictures, steps=20, starts=2, classes="green").classes.tolist() == [1, 1]

    Image.fromarray(pictures[0]).save(tmp_path / "red.png")
    assert main(["project", str(run), str(tmp_path / "red.png"), "--out-dir", str(tmp_path / "p"), "--steps", "5"]) == 0
    captured = capsys.readouterr()
    assert "in class red ->" in captured.out and "--class CLASS chooses" in captured.err
    options = ["--out-dir", str(tmp_path / "q"), "--steps", "5", "--class", "blue"]
    assert main(["project", str(run), str(tmp_path / "red.png"), *options]) == 0
    captured = capsys.readouterr()
    assert "in class blue ->" in captured.out and "chooses" not in captured.err


def test_per_class_fid(conditional_run):
    from dcgan import metrics
    from test_metrics import ChannelStats

    base, _ = conditional_run
    result = metrics.compare(
        base / "run", base / "data", ChannelStats(), n=30, progress=False, kid_subsets=2, per_class=True
    )
    assert set(result["per_class"]) == {"blue", "green", "red"}
    assert all(row["n_generated"] == 10 and row["n_real"] == 6 for row in result["per_class"].values())
    assert result["intra_fid"] == pytest.approx(np.mean([r["fid"] for r in result["per_class"].values()]))
    # Each class's generated side is the images drawn in it: its FID is that of those seeds' images alone.
    gen = dcgan.load(base / "run")
    assert gen.loaded is not None
    blue_seeds = [s for s in range(30) if s % 3 == gen.class_names.index("blue")]
    blue = ChannelStats()(gen.images(seeds=blue_seeds, classes="blue"))
    size = gen.loaded.model.image_size
    real = metrics.folder_features(base / "data" / "blue", ChannelStats(), size, progress=False).features
    expected = metrics.frechet_distance(*metrics.feature_stats(blue), *metrics.feature_stats(real))
    assert result["per_class"]["blue"]["fid"] == pytest.approx(expected, rel=1e-4)
    extractor = ChannelStats()
    with pytest.raises(metrics.MetricsError, match="class-conditional run"):
        metrics.compare(base / "data", base / "data", extractor, progress=False, per_class=True)
    assert extractor.calls == 0  # refused before any image was read


def test_conditional_export(conditional_run, tmp_path):
    pytest.importorskip("onnxruntime")
    base, _ = conditional_run
    assert main(["export", str(base / "run"), "--out", str(tmp_path / "c.onnx")]) == 0
    onnx_gen, torch_gen = dcgan.load(tmp_path / "c.onnx"), dcgan.load(base / "run")
    assert onnx_gen.class_names == torch_gen.class_names
    a = onnx_gen.images(seeds=range(4), classes="green")
    b = torch_gen.images(seeds=range(4), classes="green")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
