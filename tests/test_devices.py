"""The busy-machine thread hint and the thread-count context."""

import os
import subprocess
import sys
import time

import pytest
import torch

from dcgan.devices import OthersBusy, busy_cores_hint, cpu_threads


@pytest.mark.parametrize(
    "busy, cores, threads, fewer",
    [
        (0.2, 2, 2, None),  # a quiet machine: no hint
        (0.6, 2, 2, 1),  # one of two cores taken
        (1.4, 2, 2, 1),
        (3.0, 2, 2, 1),  # more busy than cores: still at least one thread
        (1.0, 16, 16, 15),
        (4.0, 16, 8, None),  # 8 threads fit beside 4 busy cores
        (2.0, 2, 1, None),  # one thread already
    ],
)
def test_busy_cores_hint(busy, cores, threads, fewer):
    hint = busy_cores_hint(busy, cores, threads)
    if fewer is None:
        assert hint is None
    else:
        assert hint is not None and hint.endswith(f"--threads {fewer}")


def test_cpu_threads_sets_and_restores():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with cpu_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with cpu_threads(None):
        assert torch.get_num_threads() == before


def test_others_busy_sees_a_spinning_process():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past interpreter start-up
        assert OthersBusy().cores(0.5) >= 0.5  # one process spinning: about one core
    finally:
        spinner.kill()
        spinner.wait()


def test_others_busy_waits_only_for_what_is_left_of_the_window(monkeypatch):
    others = OthersBusy()
    time.sleep(0.3)  # start-up work (data preparation) that already spans the window
    waits = []
    monkeypatch.setattr("dcgan.devices.time.sleep", waits.append)
    others.cores(0.25)
    assert waits == [0.0]


def test_fast_bf16_follows_the_cpu_and_a_capped_onednn():
    """An ISA capped at AVX2 (what --isa avx2 emulates, and what a CPU without AVX-512 has) computes bf16
    slowly, so the defaults must fall back to fp32 there even on a CPU whose flags list AVX-512 BF16."""
    code = "from dcgan.devices import cpu_has_fast_bf16, cpu_kind, fast_defaults; import torch; " + (
        "print(cpu_has_fast_bf16(), fast_defaults(torch.device('cpu'))); print(cpu_kind())"
    )
    capped = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
        capture_output=True,
        text=True,
        check=True,
    )
    decision, kind = capped.stdout.splitlines()
    assert decision.split() == ["False", "(False,", "True)"]  # fp32, channels-last (faster in fp32 too)
    assert kind.endswith("no native bf16 (fp32)")  # the words printed beside a speed number say so too
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        flags = f.read()
    native = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    has_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    decision, kind = native.stdout.splitlines()
    assert decision.split() == [str(has_bf16), f"({has_bf16},", "True)"]
    assert kind.endswith("native bf16 (AVX-512 BF16 or AMX)" if has_bf16 else "no native bf16 (fp32)")
