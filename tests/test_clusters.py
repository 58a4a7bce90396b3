"""Classes found in an unsorted folder (``--classes clusters:K``, what ``--preset best`` trains with): the
k-means of the pictures, its cache, the checks, each seed drawing its cluster in every command and the
export, and a report that keeps to one grid when a model has many classes."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image

import dcgan
from dcgan.cli import main
from dcgan.config import ConfigError, DataConfig, build_config
from dcgan.dataset import prepare_dataset
from dcgan.labels import LabelError, as_clusters, cluster_labels
from dcgan.seeds import parse_expression, seed_classes

from conftest import TINY, run_cli

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230)}


def unsorted_folder(root, per_kind=10, size=20):
    """Pictures of three colours, all in one folder (the names say the colour; the tool never reads them)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, colour in COLOURS.items():
        for i in range(per_kind):
            pixels = np.clip(np.array(colour) + rng.integers(-25, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"{name}_{i}.png")
    return root


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("clusters")
    unsorted_folder(base / "data")
    env = {"DCGAN_CACHE": str(base / "cache")}
    options = [*TINY, "--steps", "4", "--classes", "clusters:3"]
    run_cli("train", str(base / "data"), "--out", str(base / "run"), *options, env=env)
    return base


def test_clusters_find_the_kinds_of_an_unsorted_folder(cluster_run):
    plan = json.loads((cluster_run / "run" / "config.json").read_text())
    assert plan["class_names"] == ["cluster0", "cluster1", "cluster2"] and plan["model"]["num_classes"] == 3
    assert plan["class_draw"] == pytest.approx([1 / 3] * 3)
    report = json.loads((cluster_run / "run" / "data_report.json").read_text())
    assert sorted(report["classes"].values()) == [10, 10, 10]
    (cached,) = (cluster_run / "cache").rglob("clusters-3.npy")
    labels = np.load(cached)
    files = sorted(p.name for p in (cluster_run / "data").iterdir())
    kinds = {name: {int(labels[i]) for i, f in enumerate(files) if f.startswith(name)} for name in COLOURS}
    assert all(len(k) == 1 for k in kinds.values()) and len(set.union(*kinds.values())) == 3  # one cluster a colour


def test_each_seed_draws_its_cluster_in_every_command(cluster_run, tmp_path, capsys):
    run = cluster_run / "run"
    gen = dcgan.load(run)
    assert gen.class_draw == pytest.approx((1 / 3,) * 3)
    drawn = seed_classes(range(6), gen.class_draw, gen.latent_dim)
    pictures = gen.images(seeds=range(6))
    for seed, cluster in zip(range(6), drawn):
        assert np.array_equal(pictures[seed], gen.images(seeds=[seed], classes=int(cluster))[0])
    assert np.array_equal(gen.images(seeds=[4])[0], pictures[4])  # a seed's cluster does not depend on its batch
    assert gen.images(seeds=[0], classes="cluster2").shape == (1, 16, 16, 3)  # a cluster can still be asked for
    with pytest.raises(dcgan.UserError, match="say which class.*draws a cluster for each seed"):
        gen.images(z=gen.z([0, 1]))

    argv = [
        "generate",
        str(run),
        "--seeds",
        "0-5",
        "--out-dir",
        str(tmp_path / "out"),
        "--grid",
        str(tmp_path / "g.png"),
    ]
    assert main(argv) == 0
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [f"seed-{s:04d}.png" for s in range(6)]
    assert np.array_equal(np.asarray(Image.open(written[3])), pictures[3])
    assert Image.open(tmp_path / "g.png").size == gen.grid(seeds=range(6), labels=True).size
    assert main(["generate", str(run), "--seeds", "0-1", "--class", "cluster1", "--out-dir", str(tmp_path / "c1")]) == 0
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == ["seed-0000-cluster1.png", "seed-0001-cluster1.png"]

    first = [str(int(seed_classes([s], gen.class_draw, gen.latent_dim)[0])) for s in (1, 3)]
    terms = parse_expression("[1,2] - [3] + cluster0:[4]")  # unnamed terms: their first seed's cluster
    assert gen.term_classes(terms) == [*first, "cluster0"]
    assert main(["arithmetic", str(run), "[1,2] - [3] + [4]", "--out", str(tmp_path / "a.png")]) == 0

    walk = gen.interpolate([2, 5], frames=2)
    assert np.array_equal(walk[0], pictures[2])  # the walk stays in its first seed's cluster
    assert main(["interpolate", str(run), "--seeds", "2,5", "--frames", "2", "--out", str(tmp_path / "w.png")]) == 0
    assert "Traceback" not in capsys.readouterr().err

    Image.fromarray(pictures[0]).save(tmp_path / "mine.png")  # a picture projects with no cluster named
    argv = ["project", str(run), str(tmp_path / "mine.png"), "--out-dir", str(tmp_path / "p"), "--steps", "3"]
    assert main(argv) == 0
    assert "PSNR in class cluster" in capsys.readouterr().out


def test_the_export_keeps_the_draw(cluster_run, tmp_path):
    pytest.importorskip("onnxruntime")
    assert main(["export", str(cluster_run / "run"), "--out", str(tmp_path / "c.onnx")]) == 0
    onnx_gen, torch_gen = dcgan.load(tmp_path / "c.onnx"), dcgan.load(cluster_run / "run")
    assert onnx_gen.class_draw == pytest.approx(torch_gen.class_draw)
    assert np.abs(onnx_gen.images(seeds=range(6)).astype(int) - torch_gen.images(seeds=range(6))).max() <= 1


def test_the_browser_view_draws_clusters_by_seed(cluster_run):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx2")
    from starlette.testclient import TestClient

    from dcgan.serve import create_app

    client = TestClient(create_app(cluster_run / "run"), raise_server_exceptions=False)
    gen = dcgan.load(cluster_run / "run")
    one = client.get("/api/image/3.png")
    assert one.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(one.content))), gen.images(seeds=[3])[0])
    assert client.get("/api/grid.png?seeds=0-7").status_code == 200
    assert client.get("/api/walk.gif?seeds=1,2&frames=2").status_code == 200
    state = client.get("/api/run").json()
    assert state["classes"] == ["cluster0", "cluster1", "cluster2"] and state["classes_drawn"] is True


def test_seed_classes_follow_the_weights_and_never_change():
    weights = [0.5, 0.0, 0.3, 0.2]
    drawn = seed_classes(range(20_000), weights, 100)
    share = np.bincount(drawn, minlength=4) / len(drawn)
    assert share[1] == 0 and np.abs(share - weights).max() < 0.02
    assert np.array_equal(seed_classes([7, 3], weights, 100), drawn[[7, 3]])
    assert not np.array_equal(seed_classes(range(50), weights, 100), seed_classes(range(50), weights, 64))


def test_cluster_labels_on_large_pictures_and_too_few_pictures():
    rng = np.random.default_rng(1)
    colours = np.array(list(COLOURS.values()))
    kinds = np.repeat(np.arange(3), 12)
    pictures = np.clip(colours[kinds][:, None, None, :] + rng.integers(-25, 25, (36, 64, 64, 3)), 0, 255)
    labels = cluster_labels(pictures.astype(np.uint8), 3)  # 64x64 RGB: clustered on every 4th pixel
    assert all(len(set(labels[kinds == k])) == 1 for k in range(3)) and len(set(labels)) == 3
    with pytest.raises(LabelError, match=r"clusters:5 needs at least 50 usable pictures.*at most clusters:3"):
        cluster_labels(pictures.astype(np.uint8), 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no empty cluster's mean on the way
        same = cluster_labels(np.zeros((40, 8, 8, 1), np.uint8), 3)  # every picture alike: still 3 clusters
    assert sorted(np.bincount(same, minlength=3)) == [1, 1, 38]
    names = as_clusters(np.arange(12), 12).names
    assert names[0] == "cluster00" and names[-1] == "cluster11"


def test_the_cached_clusters_are_reused(tmp_path):
    data = unsorted_folder(tmp_path / "data", per_kind=7)
    first = prepare_dataset(data, 16, DataConfig(), progress=False, classes="clusters:2")
    path = first.cache_dir / "clusters-2.npy"
    np.save(path, 1 - first.labels)  # what the cache says is what a resumed run trains on
    again = prepare_dataset(data, 16, DataConfig(), progress=False, classes="clusters:2")
    assert np.array_equal(again.labels, 1 - first.labels) and again.fingerprint != first.fingerprint


def test_the_checks_and_the_preset(tmp_path):
    for bad in ("clusters:1", "clusters:x", "clusters:", "clusters:1001"):
        with pytest.raises(ConfigError, match="expected clusters:K"):
            build_config({"classes": bad})
    best = build_config(preset="best")
    assert best.classes == "clusters:20" and best.model.net_width == 128 and best.model.g_width is None
    assert best.precise_bn and not build_config({"precise_bn": False}, preset="best").precise_bn
    assert build_config({"classes": "folders"}, preset="best").classes == "folders"
    assert build_config(preset="default").classes is None
    proc = run_cli("train", str(tmp_path), "--out", str(tmp_path / "r"), "--classes", "clusters:0", check=False)
    assert proc.returncode == 2 and "expected clusters:K" in proc.stderr and "Traceback" not in proc.stderr
    unsorted_folder(tmp_path / "few", per_kind=3)
    proc = run_cli(
        "train", str(tmp_path / "few"), "--out", str(tmp_path / "r2"), *TINY, "--preset", "best", check=False
    )
    assert proc.returncode == 1 and "clusters:20 needs at least 200 usable pictures" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_report_with_more_classes_than_one_grid_holds(tmp_path):
    data = unsorted_folder(tmp_path / "data", per_kind=14)  # 42 pictures, a class each
    rows = ["path,label"] + [f"{p.name},k{i:02d}" for i, p in enumerate(sorted(data.iterdir()))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    run_cli(
        "train",
        str(data),
        "--out",
        str(tmp_path / "run"),
        *TINY,
        "--steps",
        "2",
        "--classes",
        str(tmp_path / "labels.csv"),
    )
    assert "<h2>Samples</h2>" in (tmp_path / "run" / "report.html").read_text()


def test_scores_draw_each_seed_s_cluster_as_generate_does(cluster_run):
    from dcgan import metrics

    gen = dcgan.load(cluster_run / "run")
    assert gen.loaded is not None
    net, model = gen.loaded.net, gen.loaded.model
    drawn = metrics.generated_images(
        net, model.latent_dim, model.output, 6, model.num_classes, class_draw=gen.class_draw
    )
    assert np.array_equal(np.concatenate(list(drawn)), gen.images(seeds=range(6)))


def test_per_class_fid_refuses_clusters_before_drawing_any_image(cluster_run):
    from dcgan import metrics
    from test_metrics import ChannelStats

    extractor = ChannelStats()
    with pytest.raises(metrics.MetricsError, match="clusters it made of its training pictures"):
        metrics.compare(cluster_run / "run", cluster_run / "data", extractor, n=30, progress=False, per_class=True)
    assert extractor.calls == 0
