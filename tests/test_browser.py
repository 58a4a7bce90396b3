"""End to end in a real browser: Debian's chromium driven by Playwright (its own browser download does not work
here). The page of `dcgan serve` draws, picks, walks and adds; it follows a run while it trains; and
report.html opens from disk without a single network request."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import TINY, cli_env, run_cli, write_images

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytest.importorskip("playwright", reason="needs pip install playwright (the dev extra)")
if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium (scripts/setup.sh installs it as root)", allow_module_level=True)
pytest.importorskip("starlette", reason="needs pip install 'dcgan[serve]'")

from playwright.sync_api import sync_playwright  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`dcgan serve RUN [FLAGS]` in a subprocess, until the test ends."""

    def __init__(self, run: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dcgan", "serve", str(run), "--port", str(self.port), *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "api/run", timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise AssertionError("dcgan serve did not answer")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    write_images(base / "data", 10)
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
    return base


def loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def test_explore_picks_walks_and_adds(browser, trained):
    server = Server(trained / "run")
    try:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_function("document.getElementById('status').textContent.startsWith('step 4')")
        page.wait_for_function("document.getElementById('grid-img').naturalWidth > 0")
        page.click("#tab-explore")
        page.wait_for_selector("#tiles figure img")
        page.wait_for_function("[...document.querySelectorAll('#tiles img')].every(i => i.complete && i.naturalWidth)")
        page.click("#tiles figure[data-seed='3']")
        page.click("#tiles figure[data-seed='7']")
        assert page.text_content("#picked") == "3, 7"
        assert "--seeds 3,7" in page.text_content("#command")
        page.click("#walk-go")
        page.wait_for_function("document.getElementById('walk-img').naturalWidth > 0")
        assert "dcgan interpolate" in page.text_content("#command")
        page.click("button[data-slot='a']")
        page.click("#clear")
        page.click("#tiles figure[data-seed='5']")
        page.click("button[data-slot='b']")
        page.click("#arith-go")
        page.wait_for_function("document.getElementById('arith-img').naturalWidth > 0")
        first = page.locator("#arith-img").screenshot()
        page.click("#clear")
        page.click("#tiles figure[data-seed='11']")
        page.click("button[data-slot='c']")
        page.click("#arith-go")
        page.wait_for_function("document.getElementById('arith-img').src.includes('c=11')")
        page.wait_for_function("document.getElementById('arith-img').complete")
        assert page.locator("#arith-img").screenshot() != first  # the result changed
        assert '"[3,7] - [5] + [11]"' in page.text_content("#command")
    finally:
        server.close()


def test_explore_names_its_generator_and_follows_a_newer_checkpoint(browser, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    server = Server(run, "--precise-bn")
    tiles = "[...document.querySelectorAll('#tiles img')]"
    try:
        page = browser.new_page()
        page.goto(server.url + "#explore")
        page.wait_for_function(f"{tiles}.length && {tiles}.every(i => i.complete && i.naturalWidth)")
        page.wait_for_function("document.getElementById('explore-info').textContent.startsWith('Drawing from')")
        assert page.text_content("#explore-info") == "Drawing from step-00000004.safetensors, its norms re-estimated"
        assert "--precise-bn" in page.text_content("#command")  # the command draws what the page shows
        checkpoints = run / "checkpoints"
        shutil.copy(checkpoints / "step-00000004.safetensors", checkpoints / "step-00000006.safetensors")
        page.wait_for_function(
            "document.getElementById('explore-info').textContent.startsWith('Drawing from step-00000006')",
            timeout=60_000,
        )
        page.wait_for_function(f"{tiles}.every(i => i.src.includes('v=step-00000006') && i.complete && i.naturalWidth)")
    finally:
        server.close()


def test_training_view_follows_a_run_in_progress(browser, trained, tmp_path):
    run = tmp_path / "live"
    trainer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dcgan",
            "train",
            str(trained / "data"),
            "--out",
            str(run),
            *TINY,
            "--steps",
            "3000",
            "--log-every",
            "5",
            "--checkpoint-every",
            "100",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env({"DCGAN_CACHE": str(trained / "cache")}),
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (run / "metrics.csv").exists():
            time.sleep(0.1)
        server = Server(run)
        try:
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_function("/^step [1-9]/.test(document.getElementById('status').textContent)")
            first = int(page.text_content("#status").split()[1].replace(",", ""))
            page.wait_for_function(
                f"parseInt(document.getElementById('status').textContent.split(' ')[1].replace(/,/g, '')) > {first}",
                timeout=60_000,
            )
            assert "of 3,000" in page.text_content("#status")
        finally:
            server.close()
    finally:
        trainer.terminate()
        trainer.wait(timeout=60)


def test_report_opens_from_disk_without_the_network(browser, trained):
    requests = []
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto((trained / "run" / "report.html").as_uri())
    page.wait_for_load_state("load")
    assert page.eval_on_selector_all("img", "imgs => imgs.length > 3 && imgs.every(i => i.naturalWidth > 0)")
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
