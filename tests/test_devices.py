"""The busy-machine thread hint and the thread-count context."""

import pytest
import torch

from dcgan.devices import busy_cores_hint, cpu_threads


@pytest.mark.parametrize("load, cores, threads, fewer", [
    (0.2, 2, 2, None),   # a quiet machine: no hint
    (0.6, 2, 2, 1),      # one of two cores taken
    (1.4, 2, 2, 1),
    (3.0, 2, 2, 1),      # more load than cores: still at least one thread
    (1.0, 16, 16, 15),
    (4.0, 16, 8, None),  # 8 threads fit beside 4 busy cores
    (2.0, 2, 1, None),   # one thread already
])
def test_busy_cores_hint(load, cores, threads, fewer):
    hint = busy_cores_hint(load, cores, threads)
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
