"""clean-fid's Inception features, found where the user put its weights, never downloaded.

clean-fid looks for `inception-2015-12-05.pt` at a fixed path and downloads it when absent; on a
machine without internet that download would hang or fail deep inside a generation. Here the
weights come from `eval.inception_weights` (a path or a storage URI), else the environment
variable COLLAPSE_INCEPTION_WEIGHTS, else clean-fid's own cache, and a missing file is a
one-line error before any work. Images are resized exactly as clean-fid's "clean" mode does
(PIL bicubic to 299x299 on float pixels), so the FID is clean-fid's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from collapse.errors import UserError

WEIGHTS_NAME = "inception-2015-12-05.pt"
CLEANFID_CACHE = Path("/tmp") / WEIGHTS_NAME  # the one place clean-fid itself looks
WEIGHTS_URL = (
    f"https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/{WEIGHTS_NAME}"
)
WEIGHTS_ENV = "COLLAPSE_INCEPTION_WEIGHTS"
INPUT_SIZE = 299


def weights_location(configured: str | None) -> str:
    """Where the weights are; a UserError naming the file and where to place it if nowhere."""
    location = configured or os.environ.get(WEIGHTS_ENV) or str(CLEANFID_CACHE)
    if "://" in location:
        from collapse.store.storage import Storage

        parent, _, name = location.rpartition("/")
        if Storage(parent).exists(name):
            return location
    elif Path(location).expanduser().is_file():
        return str(Path(location).expanduser())
    raise UserError(
        f"Inception weights for FID not found at {location}: download {WEIGHTS_URL} "
        f"and place it at {CLEANFID_CACHE}, or give its path (or s3:// URI) in "
        f"eval.inception_weights or {WEIGHTS_ENV}; or set eval.features: digits-cnn or raw"
    )


def _local_weights_dir(location: str, scratch: str) -> str:
    """A directory holding the weights under clean-fid's file name, as InceptionV3W expects."""
    if "://" in location:
        from collapse.store.storage import Storage

        parent, _, name = location.rpartition("/")
        Path(scratch, WEIGHTS_NAME).write_bytes(Storage(parent).read_bytes(name))
        return scratch
    path = Path(location).resolve()
    if path.name == WEIGHTS_NAME:
        return str(path.parent)
    os.symlink(path, Path(scratch, WEIGHTS_NAME))
    return scratch


class InceptionFeatures:
    """2048-d pool features of clean-fid's Inception for uint8 NHWC images."""

    dim = 2048

    def __init__(self, configured: str | None, device: str, batch_size: int):
        import torch
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer

        with tempfile.TemporaryDirectory() as scratch:
            folder = _local_weights_dir(weights_location(configured), scratch)
            self._model = InceptionV3W(folder, download=False).to(device).eval()
        self._resize = build_resizer("clean")
        self._device, self._batch_size, self._torch = device, batch_size, torch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        torch = self._torch
        if images.shape[-1] == 1:  # clean-fid reads every image as RGB
            images = np.repeat(images, 3, axis=-1)
        out = []
        for start in range(0, len(images), self._batch_size):
            batch = np.stack([self._resize(im) for im in images[start : start + self._batch_size]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self._device)
            with torch.no_grad():
                out.append(self._model(x).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64)
