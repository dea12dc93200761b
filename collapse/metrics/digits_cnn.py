"""`digits-cnn`: an offline feature space for FID, KID and PRDC on small digit images.

Inception features are the standard for natural images, but its weights are a download and
its 299-pixel input is meaningless for 8x8 digits. A small classifier trained on the real
training split of scikit-learn's digits (bundled with the package, so offline) gives features
that separate the digit classes, which is what FID and precision/recall need to see mode loss.

Training is deterministic (fixed seed, fixed order, CPU) and the weights are cached in storage
(`<storage>/_extractors/`) so that every run in that storage measures in one and the same
feature space; runs that used different extractors cannot be compared, which is why the name is
recorded beside every image metric.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

RECIPE = 1  # bump when the net or its training changes: the cache key changes with it
FEATURE_DIM = 128
EPOCHS = 30
BATCH = 64


class DigitsCNN(nn.Module):
    def __init__(self, channels: int = 1, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 16, FEATURE_DIM),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(FEATURE_DIM, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer before its ReLU: dense, roughly Gaussian per class."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2)  # a writable copy
    return x.float() / 127.5 - 1.0


def train_extractor(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> DigitsCNN:
    """Fit the classifier; the same inputs give the same weights in any process.

    One thread (`one_thread`): sums split over threads round differently, and a Ray worker
    (one thread) and a laptop's shell (all cores) would otherwise train two feature spaces.
    """
    generator = torch.Generator().manual_seed(seed)
    with one_thread():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = DigitsCNN(channels=images.shape[-1])
        x, y = to_input(images), torch.as_tensor(np.array(labels), dtype=torch.long)
        optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
        net.train()
        for _ in range(EPOCHS):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), BATCH):
                rows = order[start : start + BATCH]
                loss = nn.functional.cross_entropy(net(x[rows]), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return net.eval()


@contextmanager
def one_thread() -> Iterator[None]:
    """CPU work whose rounding does not depend on the process's thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def to_bytes(net: DigitsCNN) -> bytes:
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, channels: int) -> DigitsCNN:
    net = DigitsCNN(channels=channels)
    net.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    return net.eval()
