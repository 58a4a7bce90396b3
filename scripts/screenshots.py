"""Screenshots of `dcgan serve` (the training view and the explore view) and of report.html for the README.

    .venv/bin/python scripts/screenshots.py RUN_DIR --out docs/images

Drives Debian's chromium (``/usr/bin/chromium``) with Playwright, as tests/test_browser.py does: starts
``dcgan serve RUN_DIR`` on a free local port, opens the training view, then the explore view, where it
picks seeds 3 and 7 and walks between them, and puts seeds 3 - 5 + 11 into the arithmetic slots. Writes
serve-training.png, serve-explore.png and report.png.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPORT_HEIGHT = 1600  # pixels of report.html kept in report.png
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dcgan serve exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("dcgan serve did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "serve", str(args.run), "--port", str(port)], stdout=subprocess.DEVNULL
    )
    try:
        wait_for(url + "api/run", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_function("document.getElementById('grid-img').naturalWidth > 0")
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "serve-training.png"), full_page=True)
            page.click("#tab-explore")
            page.wait_for_function(
                "[...document.querySelectorAll('#tiles img')].length > 0 && "
                "[...document.querySelectorAll('#tiles img')].every(i => i.complete && i.naturalWidth)",
                timeout=120_000,
            )
            for seed, slot in ((3, "a"), (5, "b"), (11, "c")):
                page.click("#clear")
                page.click(f"#tiles figure[data-seed='{seed}']")
                page.click(f"button[data-slot='{slot}']")
            page.click("#arith-go")
            page.wait_for_function("document.getElementById('arith-img').naturalWidth > 0", timeout=120_000)
            page.click("#clear")
            page.click("#tiles figure[data-seed='3']")
            page.click("#tiles figure[data-seed='7']")
            page.click("#walk-go")
            page.wait_for_function("document.getElementById('walk-img').naturalWidth > 0", timeout=120_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "serve-explore.png"), full_page=True)
            report = args.run / "report.html"
            if report.exists():
                page.goto(report.resolve().as_uri())
                page.wait_for_load_state("load")
                # The top of the page (settings, data, grids over time, curves): the whole page is several MB.
                top = {"x": 0, "y": 0, "width": 1280, "height": REPORT_HEIGHT}
                page.screenshot(path=str(args.out / "report.png"), full_page=True, clip=top)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = ["serve-training.png", "serve-explore.png"]
    names += ["report.png"] if (args.run / "report.html").exists() else []
    print(f"wrote {', '.join(names)} to {args.out}")


if __name__ == "__main__":
    main()
