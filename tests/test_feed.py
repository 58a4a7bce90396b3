"""BatchFeed: the right images for every batch, fetched ahead or not; pinned copies only where CUDA is."""

import numpy as np
import pytest
import torch

from dcgan.dataset import EpochSampler
from dcgan.feed import BatchFeed


@pytest.fixture
def memmap(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (37, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    return images, np.load(tmp_path / "images.npy", mmap_mode="r")


def test_peek_is_what_next_returns():
    sampler = EpochSampler(10, 3, seed=1)
    for _ in range(7):  # across the epoch boundary (3 batches per epoch)
        expected = sampler.peek()
        np.testing.assert_array_equal(sampler.next(), expected)


@pytest.mark.parametrize("prefetch", [False, True])
def test_every_batch_is_the_indexed_images(memmap, prefetch):
    images, mapped = memmap
    sampler = EpochSampler(len(images), 8, seed=0)
    feed = BatchFeed(mapped, torch.device("cpu"), prefetch=prefetch)
    assert feed.prefetch is prefetch
    try:
        for step in range(12):
            idx = sampler.next()
            upcoming = sampler.peek()
            if step == 5:
                upcoming = np.array([0, 1, 2, 3, 4, 5, 6, 7])  # a jump: the prefetched batch must be dropped
            batch = feed.get(idx, upcoming)
            assert batch.dtype == torch.uint8 and tuple(batch.shape) == (8, 4, 4, 3)
            np.testing.assert_array_equal(batch.numpy(), images[idx])
    finally:
        feed.close()


def test_resident_images_are_gathered_where_they_live(memmap):
    images, _ = memmap
    feed = BatchFeed(torch.from_numpy(images.copy()), torch.device("cpu"), prefetch=True)
    assert not feed.prefetch  # nothing to fetch ahead: the images are already on the device
    idx = np.array([3, 1, 4])
    np.testing.assert_array_equal(feed.get(idx).numpy(), images[idx])


@pytest.mark.gpu  # pinned host memory and CUDA streams need a GPU
def test_pinned_prefetch_to_the_gpu(memmap):
    images, mapped = memmap
    sampler = EpochSampler(len(images), 8, seed=0)
    feed = BatchFeed(mapped, torch.device("cuda"))
    assert feed.prefetch and feed.pin
    try:
        for _ in range(10):
            idx = sampler.next()
            batch = feed.get(idx, sampler.peek())
            assert batch.is_cuda
            np.testing.assert_array_equal(batch.cpu().numpy(), images[idx])
    finally:
        feed.close()
