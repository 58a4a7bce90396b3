"""How fast `dcgan serve` answers a page of tiles, and whether a slow request holds the others.

    python benchmarks/serve_requests.py RUN_DIR                      # 32 tiles at once, a grid, a walk
    python benchmarks/serve_requests.py /tmp/serve-128 --make 128    # first make a run at 128 px to ask
    python benchmarks/serve_requests.py RUN_DIR --tiles 64 --repeats 5
    PYTHONPATH=/tmp/old/src python benchmarks/serve_requests.py RUN_DIR    # another version of the package

Serves RUN_DIR's app in this process (uvicorn in a thread, on a free port) and asks it over HTTP what the
explore view asks: one page of tiles all at once (as the browser loads them, each its own request), one grid
of 64 seeds, then a walk through four seeds with /api/run asked while the walk draws. Each round uses seeds
not drawn before. Prints wall seconds, the median over --repeats rounds. The first tile, which loads the
checkpoint, is asked and timed apart. ``--make PX`` first makes RUN_DIR: the default networks at PX pixels
trained 2 steps on 64 synthetic pictures (``throughput.write_synthetic_folder``); what a request costs
depends on the networks' shapes, not on their weights.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def timed(fetch, path: str) -> float:
    start = time.perf_counter()
    fetch(path)
    return time.perf_counter() - start


def rounds(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.2f} s (rounds: {', '.join(f'{x:.2f}' for x in seconds)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tiles", type=int, default=32, help="tiles asked at once (the page shows 32)")
    parser.add_argument("--scale", type=int, default=4, help="each tile's enlargement, as the page asks")
    parser.add_argument("--frames", type=int, default=48, help="frames between two stops of the walk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--make", type=int, metavar="PX", help="first make RUN_DIR: a 2-step run at PX pixels")
    args = parser.parse_args()
    import uvicorn

    import dcgan
    from dcgan.serve import create_app

    if args.make:
        from throughput import write_synthetic_folder

        pictures = args.run.with_name(args.run.name + "-pictures")
        write_synthetic_folder(pictures, 64, args.make)
        dcgan.train(pictures, args.run, steps=2, progress=False, **{"model.image_size": args.make})

    server = uvicorn.Server(uvicorn.Config(create_app(args.run), host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]

    def fetch(path: str) -> bytes:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=600) as response:
                return response.read()
        except urllib.error.HTTPError as e:  # e.g. 409: the run has no checkpoint yet
            raise SystemExit(f"serve_requests.py: {path}: {e.code} {e.read().decode(errors='replace')}") from None

    print(f"dcgan from {Path(dcgan.__file__).parent}; run {args.run}", file=sys.stderr)
    print(f"first tile (loads the checkpoint): {timed(fetch, '/api/image/0.png'):.2f} s")
    page, grid, walk, beside = [], [], [], []
    for r in range(args.repeats):
        first = 1 + r * args.tiles
        paths = [f"/api/image/{s}.png?scale={args.scale}" for s in range(first, first + args.tiles)]
        with ThreadPoolExecutor(args.tiles) as pool:
            start = time.perf_counter()
            list(pool.map(fetch, paths))
            page.append(time.perf_counter() - start)
        grid.append(timed(fetch, f"/api/grid.png?seeds={first}-{first + 63}"))
        stops = ",".join(str(first + 100 + i) for i in range(4))
        walk_path = f"/api/walk.gif?seeds={stops}&frames={args.frames}"
        walking = threading.Thread(target=lambda path=walk_path: walk.append(timed(fetch, path)))
        walking.start()
        time.sleep(0.05)  # the walk's request is in
        beside.append(timed(fetch, "/api/run"))
        walking.join()
    print(f"{args.tiles} tiles at once: {rounds(page)}")
    print(f"one grid of 64 seeds: {rounds(grid)}")
    print(f"a walk through 4 seeds, {args.frames} frames a step: {rounds(walk)}")
    print(f"/api/run asked while the walk draws: {rounds(beside)}")
    server.should_exit = True


if __name__ == "__main__":
    main()
