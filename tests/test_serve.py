"""dcgan serve's routes through Starlette's test client: every route, and every bad request gets a 4xx with a
message (never a 500), files only from inside the run folder; and report.html."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx2")
from starlette.testclient import TestClient  # noqa: E402

from dcgan.serve import create_app  # noqa: E402

from conftest import TINY, run_cli, write_images  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    write_images(base / "data", 10)
    (base / "data" / "broken.png").write_text("not a picture")
    run_cli(
        "train",
        str(base / "data"),
        "--out",
        str(base / "run"),
        *TINY,
        "--steps",
        "4",
        "--sample-every",
        "2",
        env={"DCGAN_CACHE": str(base / "cache")},
    )
    (base / "secret.txt").write_text("outside the run folder")
    return base / "run"


@pytest.fixture(scope="module")
def client(run):
    return TestClient(create_app(run), raise_server_exceptions=False)


def test_the_page_and_the_training_state(client, run):
    page = client.get("/")
    assert page.status_code == 200 and "dcgan" in page.text and "<script>" in page.text
    state = client.get("/api/run").json()
    assert state["run"] == "run" and state["samples"] == [2, 4] and state["status"]["step"] == 4
    assert state["status"]["done"] and state["checkpoint"]["file"] == "step-00000004.safetensors"
    assert state["checkpoint"]["which"] == "auto" and state["checkpoint"]["precise_bn"] is False
    assert state["report"]["skipped"][0]["path"] == "broken.png" and len(state["metrics"]) == 4
    grid = client.get("/samples/step-00000004.png")
    assert grid.status_code == 200 and Image.open(io.BytesIO(grid.content)).size[0] > 16


def test_explore_routes_draw_images(client):
    one = client.get("/api/image/3.png?truncation=0.5&scale=2")
    assert one.status_code == 200 and Image.open(io.BytesIO(one.content)).size == (32, 32)
    assert client.get("/api/grid.png?seeds=0-7").headers["content-type"] == "image/png"
    walk = client.get("/api/walk.gif?seeds=1,2,3&frames=4")
    assert walk.status_code == 200 and Image.open(io.BytesIO(walk.content)).n_frames == 9
    figure = client.get("/api/arithmetic.png?a=1,2&b=3&c=4")
    assert figure.status_code == 200 and Image.open(io.BytesIO(figure.content)).size[0] > 64


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("/nope", 404, "no such page"),
        ("/samples/../config.json", 404, ""),
        ("/samples/..%2Fconfig.json", 404, ""),
        ("/samples/step-1.png", 404, "no progress grid"),
        ("/samples/%2e%2e%2f%2e%2e%2fsecret.txt", 404, ""),
        ("/api/image/abc.png", 400, "is not a seed"),
        ("/api/image/1-5.png", 400, "at most 1"),
        ("/api/image/4294967296.png", 400, "32-bit"),
        ("/api/image/3.png?truncation=nan", 400, "truncation must be between"),
        ("/api/image/3.png?class=red", 400, "has no classes"),
        ("/api/grid.png?seeds=0-1000", 400, "at most 64"),
        ("/api/grid.png?seeds=a-b", 400, "is not a seed"),
        ("/api/walk.gif?seeds=1", 400, "at least two"),
        ("/api/walk.gif?seeds=1,2&frames=1000", 400, "frames must be between"),
        ("/api/walk.gif?seeds=" + ",".join(map(str, range(20))), 400, "at most 16"),
        ("/api/walk.gif?seeds=1,x.npy", 400, "seeds only"),
        ("/api/arithmetic.png", 400, "pick seeds"),
        ("/api/arithmetic.png?a=x", 400, "bad expression"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(client, path, status, words):
    response = client.get(path)
    assert response.status_code == status, (path, response.text)
    assert "Traceback" not in response.text and "outside the run folder" not in response.text
    if words:
        assert words in response.json()["error"], response.json()


def test_serve_with_precise_bn_draws_from_the_re_estimated_generator(run):
    import numpy as np

    import dcgan

    client = TestClient(create_app(run, precise_bn=True), raise_server_exceptions=False)
    assert client.get("/api/run").json()["checkpoint"]["precise_bn"] is True
    served = np.asarray(Image.open(io.BytesIO(client.get("/api/image/3.png").content)).convert("RGB")).astype(int)
    precise = dcgan.load(run, precise_bn=True).images(seeds=[3])[0].astype(int)
    copied = dcgan.load(run).images(seeds=[3])[0].astype(int)
    assert served.shape == precise.shape and np.array_equal(served, precise) and not np.array_equal(served, copied)


def test_a_newer_checkpoint_loads_in_the_background_while_the_loaded_one_answers(run, tmp_path, monkeypatch):
    import shutil
    import threading
    import time

    import dcgan.api

    live = tmp_path / "live"
    shutil.copytree(run, live)
    client = TestClient(create_app(live), raise_server_exceptions=False)
    first = client.get("/api/image/3.png")
    assert first.status_code == 200
    assert client.get("/api/run").json()["checkpoint"]["drawing"] == "step-00000004.safetensors"

    gate, loads, real = threading.Event(), [], dcgan.api.TrainedGenerator

    def held(path, **kwargs):  # a slow load (a re-estimation at 128 px takes minutes), released by the test
        loads.append(Path(path).name)
        assert gate.wait(60)
        return real(path, **kwargs)

    monkeypatch.setattr(dcgan.api, "TrainedGenerator", held)
    checkpoints = live / "checkpoints"
    shutil.copy(checkpoints / "step-00000004.safetensors", checkpoints / "step-00000006.safetensors")
    again = client.get("/api/image/3.png")  # answered now, by the loaded generator
    assert again.status_code == 200 and again.content == first.content
    state = client.get("/api/run").json()["checkpoint"]
    assert state["file"] == "step-00000006.safetensors" and state["drawing"] == "step-00000004.safetensors"
    assert state["loading"] == "step-00000006.safetensors" and state["error"] is None
    client.get("/api/image/4.png")  # a second request does not start a second load
    gate.set()
    deadline = time.time() + 60
    while client.get("/api/run").json()["checkpoint"]["loading"] and time.time() < deadline:
        time.sleep(0.05)
    state = client.get("/api/run").json()["checkpoint"]
    assert state["drawing"] == "step-00000006.safetensors" and state["loading"] is None and loads == [state["drawing"]]

    (checkpoints / "step-00000008.safetensors").write_bytes(b"cut short by a full disk")
    assert client.get("/api/image/3.png").status_code == 200
    while client.get("/api/run").json()["checkpoint"]["loading"] and time.time() < deadline:
        time.sleep(0.05)
    state = client.get("/api/run").json()["checkpoint"]
    assert state["drawing"] == "step-00000006.safetensors" and "step-00000008.safetensors" in state["error"]
    assert "Traceback" not in state["error"]
    assert client.get("/api/image/5.png").status_code == 200 and loads.count("step-00000008.safetensors") == 1


def test_a_slow_drawing_holds_neither_the_training_view_nor_the_other_tiles(run, monkeypatch):
    import threading

    import dcgan.api

    gates = {"load": threading.Event(), "walk": threading.Event()}
    entered = {"load": threading.Event(), "walk": threading.Event()}
    real_load, real_walk = dcgan.api.TrainedGenerator, dcgan.api.TrainedGenerator.walk

    def load(path, **kwargs):  # a first load re-estimating norms at 128 px takes minutes
        entered["load"].set()
        assert gates["load"].wait(60)
        return real_load(path, **kwargs)

    def walk(self, spec):  # a 48-frame walk at 128 px takes seconds
        entered["walk"].set()
        assert gates["walk"].wait(60)
        return real_walk(self, spec)

    def get(client, path, into):
        into[path] = client.get(path)

    monkeypatch.setattr(dcgan.api, "TrainedGenerator", load)
    monkeypatch.setattr(real_load, "walk", walk)
    answers: dict = {}
    with TestClient(create_app(run), raise_server_exceptions=False) as client:  # one event loop for all requests
        try:
            first = threading.Thread(target=get, args=(client, "/api/image/3.png", answers))
            first.start()
            assert entered["load"].wait(30)
            beside = threading.Thread(target=get, args=(client, "/api/run", answers))
            beside.start()
            beside.join(30)
            assert not beside.is_alive(), "/api/run waited for the first load"
            assert answers["/api/run"].json()["checkpoint"]["drawing"] is None
            gates["load"].set()
            first.join(60)
            assert answers["/api/image/3.png"].status_code == 200

            slow = threading.Thread(target=get, args=(client, "/api/walk.gif?seeds=1,2&frames=4", answers))
            slow.start()
            assert entered["walk"].wait(30)
            others = [threading.Thread(target=get, args=(client, p, answers)) for p in ("/api/image/4.png", "/api/run")]
            for thread in others:
                thread.start()
            for thread in others:
                thread.join(30)
            assert not any(t.is_alive() for t in others), "a tile or /api/run waited for the walk"
            assert answers["/api/image/4.png"].status_code == 200 and answers["/api/run"].status_code == 200
            assert answers["/api/run"].json()["checkpoint"]["drawing"] == "step-00000004.safetensors"
            gates["walk"].set()
            slow.join(60)
            assert answers["/api/walk.gif?seeds=1,2&frames=4"].content[:6] == b"GIF89a"
        finally:
            for gate in gates.values():
                gate.set()


def test_a_checkpoint_pruned_while_the_page_reads_it_is_found_again(run, monkeypatch):
    import dcgan.serve

    real, calls = dcgan.serve.resolve_checkpoint, []

    def pruned_once(path, which):  # --keep removed the file between finding it and reading its time
        calls.append(which)
        found = real(path, which)
        return found.with_name("step-00000002.safetensors") if len(calls) == 1 else found

    monkeypatch.setattr(dcgan.serve, "resolve_checkpoint", pruned_once)
    response = TestClient(create_app(run), raise_server_exceptions=False).get("/api/run")
    assert response.status_code == 200 and response.json()["checkpoint"]["file"] == "step-00000004.safetensors"
    assert len(calls) == 2


def test_a_run_without_a_checkpoint_still_shows_its_training(tmp_path):
    (tmp_path / "fresh" / "samples").mkdir(parents=True)
    client = TestClient(create_app(tmp_path / "fresh"), raise_server_exceptions=False)
    state = client.get("/api/run").json()
    assert state["checkpoint"] is None and state["status"]["step"] == 0
    response = client.get("/api/image/1.png")
    assert response.status_code == 409 and "no checkpoint yet" in response.json()["error"]


def test_report_html_is_one_self_contained_file(run):
    page = (run / "report.html").read_text()  # training wrote it at the end
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page
    assert "<script" not in page and "broken.png" in page and "step 4" in page


def test_a_data_report_from_before_rectangles_still_shows_its_size(run, tmp_path):
    import json
    import shutil

    from dcgan.report import write_report

    old = tmp_path / "old"
    shutil.copytree(run, old)
    report = json.loads((old / "data_report.json").read_text())
    size = report.pop("width")
    del report["height"]
    report["image_size"] = size  # how data_report.json named the size before rectangular runs
    (old / "data_report.json").write_text(json.dumps(report))
    state = TestClient(create_app(old)).get("/api/run").json()
    assert (state["report"]["width"], state["report"]["height"]) == (size, size)
    page = write_report(old).read_text()
    assert f"{size}x{size}" in page
