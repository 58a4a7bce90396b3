"""ONNX export: images/s of onnxruntime on CPU against PyTorch eager for the same generator, and the file size.

    python benchmarks/export.py                        # 64x64, width 64 (the default networks), batch 1 and 64
    python benchmarks/export.py --size 28 --width 32

The generator is built with random weights (speed does not depend on them) and exported as `dcgan export`
exports it (batch norm folded, uint8 output). PyTorch runs the unfolded generator in eval mode with the
conversion to uint8 (what `dcgan generate` does), in fp32, under torch.inference_mode. Both take turns,
--rounds times, each timed over --seconds; the median of the rounds is printed. Threads: torch's and
onnxruntime's intra-op pools are both set to --threads (default: the number of cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dcgan.config import DataConfig, ModelConfig, model_spec  # noqa: E402
from dcgan.devices import cpu_kind  # noqa: E402
from dcgan.images import to_uint8  # noqa: E402
from dcgan.models import Generator  # noqa: E402


def rate(run, batch: int, seconds: float) -> float:
    run()  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import onnxruntime

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = Generator(model_spec(ModelConfig(image_size=args.size, g_width=args.width), 3)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        from dcgan.export import export_generator
        from dcgan.runs import LoadedGenerator

        loaded = LoadedGenerator(
            net=g,
            model=g.spec,
            path=Path("random.safetensors"),
            step=0,
            used_ema=True,
            best_fid=float("inf"),
            data=DataConfig(),
        )
        result = export_generator(loaded, Path(tmp) / "g.onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
        kind = cpu_kind()
        print(
            f"{args.size}x{args.size}, width {args.width}, {args.threads} thread(s), {os.cpu_count()} cores "
            f"[{kind}]; file {result.bytes / 1e6:.2f} MB; onnxruntime {onnxruntime.__version__}, torch "
            f"{torch.__version__}; check on seeds 0-15: {result.max_difference:g} levels"
        )
        for batch in (int(b) for b in args.batches.split(",")):
            z = np.random.default_rng(0).standard_normal((batch, 100)).astype(np.float32)
            zt = torch.from_numpy(z)

            def torch_run(zt: torch.Tensor = zt) -> None:
                with torch.inference_mode():
                    to_uint8(g(zt), "tanh")

            def onnx_run(z: np.ndarray = z) -> None:
                session.run(None, {"z": z})

            rates = {"pytorch": [], "onnxruntime": []}
            for _ in range(args.rounds):
                rates["pytorch"].append(rate(torch_run, batch, args.seconds))
                rates["onnxruntime"].append(rate(onnx_run, batch, args.seconds))
            ours, theirs = statistics.median(rates["onnxruntime"]), statistics.median(rates["pytorch"])
            print(
                f"batch {batch:4d}: PyTorch eager {theirs:8.1f} images/s, onnxruntime {ours:8.1f} images/s "
                f"({ours / theirs:.2f}x)"
            )


if __name__ == "__main__":
    main()
