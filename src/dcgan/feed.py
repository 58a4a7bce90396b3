"""Real batches for the training step, from the decoded uint8 images, one batch ahead of the step.

A dataset that fits on the GPU is copied there once and a batch is one gather on the device. One
that does not stays a host memory map: then a background thread gathers the next batch into pinned
host memory and copies it to the GPU on a stream of its own while the current step computes, so the
step never waits on the disk or on a pageable copy. On a CPU device the batch is gathered when asked.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch


class BatchFeed:
    """``get(indices, upcoming)`` returns the uint8 batch (B, H, W, C) on the device for ``indices`` and
    starts fetching ``upcoming`` (the batch after it); a prefetched batch is used only when its indices
    match, so a caller that jumps (resume, rollback) still gets the right images."""

    def __init__(self, images: np.ndarray | torch.Tensor, device: torch.device, prefetch: bool | None = None) -> None:
        self.images, self.device = images, device
        on_host = not isinstance(images, torch.Tensor)
        self.prefetch = (on_host and device.type == "cuda") if prefetch is None else (prefetch and on_host)
        self.pin = self.prefetch and device.type == "cuda"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcgan-feed") if self.prefetch else None
        self._stream = torch.cuda.Stream(device) if self.pin else None
        self._pending: tuple[np.ndarray, Future] | None = None
        self._slot = 0
        self._buffers: list[torch.Tensor] = []
        self._copied: list[torch.cuda.Event | None] = [None, None]

    def get(self, indices: np.ndarray, upcoming: np.ndarray | None = None) -> torch.Tensor:
        if isinstance(self.images, torch.Tensor):  # resident: one gather where the images live
            return self.images[torch.from_numpy(indices).to(self.images.device)]
        batch = None
        if self._pending is not None:
            wanted, future = self._pending
            self._pending = None
            ready = future.result()
            if np.array_equal(wanted, indices):
                batch = ready
        if batch is None:
            batch = self._fetch(indices)
        if self._stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(self._stream)
            batch.record_stream(torch.cuda.current_stream(self.device))
        if self._pool is not None and upcoming is not None:
            self._pending = (upcoming, self._pool.submit(self._fetch, upcoming))
        return batch

    def _fetch(self, indices: np.ndarray) -> torch.Tensor:
        """Gather from the memory map (NumPy releases the GIL while it copies), then to the device."""
        if not self.pin:
            return torch.from_numpy(np.take(self.images, indices, axis=0)).to(self.device)
        slot, self._slot = self._slot, 1 - self._slot
        shape = (len(indices), *self.images.shape[1:])
        if len(self._buffers) < 2 or tuple(self._buffers[slot].shape) != shape:
            self._buffers = [torch.empty(shape, dtype=torch.uint8).pin_memory() for _ in range(2)]
            self._copied = [None, None]
        copied = self._copied[slot]
        if copied is not None:
            copied.synchronize()  # the copy that last read this pinned buffer is done
        host = self._buffers[slot]
        np.take(self.images, indices, axis=0, out=host.numpy(), mode="clip")  # "raise" would buffer the copy
        with torch.cuda.stream(self._stream):
            batch = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._copied[slot] = event
        return batch

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pending = None
