"""torchrun on CPU (gloo): 2 processes train the same model as 1, rank 0 alone writes, a killed rank restarts."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dcgan.runs import latest_checkpoint

from conftest import TINY, cli_env, load_state, run_cli

ARGS = [*TINY, "--augment", "none", "--seed", "5", "--no-amp"]


def torchrun(*args, nproc=2, extra=(), wait=True):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *extra,
        "-m",
        "dcgan",
        *args,
    ]
    env = cli_env()
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def weights(run):
    state = load_state(latest_checkpoint(run / "checkpoints"))
    return state


# --precise-bn: rank 0 alone re-estimates the EMA's norms before it saves, with no all-reduce to wait on.
@pytest.mark.parametrize(
    "update", [[], ["--simultaneous"], ["--precise-bn"]], ids=["sequential", "simultaneous", "precise-bn"]
)
def test_two_processes_match_one_with_the_same_global_batch(image_folder, tmp_path, update):
    run_cli("train", str(image_folder), "--out", str(tmp_path / "one"), *ARGS, *update, "--steps", "4")
    torchrun("train", str(image_folder), "--out", str(tmp_path / "two"), *ARGS, *update, "--steps", "4", "--sync-bn")
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a["step"] == b["step"] == 4
    for part in ("generator", "discriminator", "ema"):
        for k in a[part]:
            assert torch.allclose(a[part][k].float(), b[part][k].float(), atol=1e-4, rtol=1e-3), (part, k)
    # rank 0 alone wrote: one metrics row per step, one checkpoint, the usual files
    rows = (tmp_path / "two" / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2", "3", "4"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_global_batch_must_split_evenly(image_folder, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "dcgan",
        "train",
        str(image_folder),
        "--out",
        str(tmp_path / "r"),
        *ARGS,
        "--batch-size",
        "7",
        "--steps",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cli_env())
    assert proc.returncode != 0 and "must be divisible by the 2 processes" in proc.stderr + proc.stdout


def _children(pid):
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_killed_rank_restarts_and_the_run_completes(image_folder, tmp_path):
    run = tmp_path / "elastic"
    steps = 60
    proc = torchrun(
        "train",
        str(image_folder),
        "--out",
        str(run),
        *ARGS,
        "--steps",
        str(steps),
        "--checkpoint-every",
        "5",
        extra=("--max-restarts=1",),
        wait=False,
    )
    deadline = time.time() + 180
    while time.time() < deadline and latest_checkpoint(run / "checkpoints") is None:
        time.sleep(0.01)
    workers = _children(proc.pid)
    assert workers, "no worker processes found"
    os.kill(workers[-1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    state = weights(run)
    assert state["step"] == steps
    assert "resumed from" in out
