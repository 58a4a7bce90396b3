"""Training from a decode cache larger than the memory the process may use (memory-mapping works).

    python benchmarks/memmap_memory.py --limit-mb 1200

Makes the 60,000 Fashion-MNIST training images a folder of PNGs, builds a 128x128 RGB cache from it
(60,000 x 128 x 128 x 3 bytes = 2.75 GiB), then trains inside a cgroup (v1) whose memory limit is
smaller than the cache, and prints the cgroup's peak usage. Needs root and the cgroup v1 memory controller.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CGROUP = Path("/sys/fs/cgroup/memory")
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mb", type=int, default=1200)
    parser.add_argument("--work", default="/tmp/dcgan-bench-memmap")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    if not (CGROUP / "memory.limit_in_bytes").exists() or os.geteuid() != 0:
        sys.exit("needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory")
    work = Path(args.work)
    folder = work / "fashion-mnist-train"
    if len(list(folder.glob("*.png"))) < 60_000:
        subprocess.run([sys.executable, str(ROOT / "tools" / "idx_to_png.py"), FMNIST, str(folder)], check=True)
    env = {**os.environ, "DCGAN_CACHE": str(work / "cache")}
    common = ["--image-size", "128", "--channels", "3"]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dcgan", "prepare", str(folder), *common], check=True, env=env)
    print(f"cache built in {time.perf_counter() - t:.0f} s")
    cache = max((work / "cache").glob("*/images.npy"), key=lambda p: p.stat().st_size)
    print(f"cache: {cache.stat().st_size / 2**30:.2f} GiB; memory limit: {args.limit_mb} MiB")

    group = CGROUP / f"dcgan-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(args.limit_mb * 2**20))
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("1")  # start cold: every page read comes from disk

        def enter_group() -> None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
        t = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dcgan",
                "train",
                str(folder),
                "--out",
                str(run_dir),
                *common,
                "--g-width",
                "16",
                "--d-width",
                "16",
                "--batch-size",
                "64",
                "--steps",
                str(args.steps),
                "--no-progress",
                "--log-every",
                "10",
            ],
            env=env,
            preexec_fn=enter_group,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        peak = int((group / "memory.max_usage_in_bytes").read_text()) / 2**20
        failcnt = int((group / "memory.failcnt").read_text())
        print(
            f"train exit code {proc.returncode} after {wall:.0f} s; cgroup peak {peak:.0f} MiB "
            f"(limit {args.limit_mb} MiB, hit {failcnt} times: page cache reclaimed)"
        )
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
        else:
            print((run_dir / "metrics.csv").read_text().splitlines()[-1])
    finally:
        group.rmdir()


if __name__ == "__main__":
    main()
