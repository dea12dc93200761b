"""Feature spaces that image metrics are computed in: `raw`, `digits-cnn`, `inception`.

An extractor maps model-space rows (vectors, or images flattened to [-1, 1] as the chain holds
them) to feature vectors. FID, KID and the k-NN metrics mean little on raw pixels, so image
runs measure in a learned space; vector runs measure on the vectors themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from collapse.data.space import DataSpace
from collapse.errors import UserError
from collapse.store.storage import Storage

Extractor = Callable[[np.ndarray], np.ndarray]
IMAGE_FEATURE_DIMS = {"digits-cnn": 128, "inception": 2048}  # the learned spaces' widths


def resolve(name: str, space: DataSpace) -> str:
    """`auto` for data whose kind was unknown until its index was read (a parquet dataset)."""
    if name == "auto":
        return "raw" if space.kind == "vector" else "inception"
    return name


def check_fits(name: str, space: DataSpace) -> None:
    """An extractor that cannot read this data fails in one line, before anything trains:
    learned extractors read images, digits-cnn square single-channel ones."""
    if name != "raw" and space.kind != "image":
        raise UserError(f"eval.features: {name} is for images; {space.kind} data uses raw")
    if name == "digits-cnn":
        h, w, c = space.shape
        if h != w or c != 1:
            raise UserError(
                f"eval.features: digits-cnn needs square single-channel images, not {h}x{w}x{c}; "
                "use inception or raw"
            )


def feature_dim(name: str, space: DataSpace) -> int:
    """The width of the features metrics are computed on."""
    return space.dim if name == "raw" else IMAGE_FEATURE_DIMS[name]


def build(
    name: str,
    space: DataSpace,
    storage: Storage,
    *,
    device: str = "cpu",
    inception_weights: str | None = None,
    batch_size: int = 250,
) -> Extractor:
    """The extractor `name` for rows of `space`; `storage` holds the digits-cnn cache."""
    if name == "raw":
        return lambda x: np.asarray(x, dtype=np.float64)
    check_fits(name, space)
    if name == "digits-cnn":
        return _digits_cnn(space, storage, device, batch_size)
    if name == "inception":
        from collapse.metrics.inception import InceptionFeatures

        inception = InceptionFeatures(inception_weights, device, batch_size)
        return lambda x: inception(space.to_images(x))
    raise ValueError(f"unknown feature extractor {name!r}")


def digits_cnn_key(shape: tuple[int, ...]) -> str:
    from collapse.metrics.digits_cnn import RECIPE

    h, w, c = shape
    return f"_extractors/digits-cnn-r{RECIPE}-{h}x{w}x{c}.pt"


def load_digits_cnn(space: DataSpace, storage: Storage):
    """The cached classifier for this image shape, trained (once per storage) if absent."""
    from collapse.metrics import digits_cnn

    check_fits("digits-cnn", space)
    h, w, c = space.shape
    key = digits_cnn_key(space.shape)
    if storage.exists(key):
        try:
            return digits_cnn.from_bytes(storage.read_bytes(key), c)
        except (RuntimeError, EOFError, ValueError, KeyError):
            pass  # a damaged cache is retrained below, to the same weights
    images, labels = _digits_training_split(h)
    net = digits_cnn.train_extractor(images, labels)
    storage.write_bytes(key, digits_cnn.to_bytes(net), atomic=True)
    return net


def _digits_training_split(size: int) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa

    from collapse.data.shards import table_to_images
    from collapse.data.sources import real_tables

    resize = None if size == 8 else size
    table = pa.concat_tables(real_tables("sklearn:digits", "train", size=resize))
    return table_to_images(table), table.column("label").to_numpy()


def _digits_cnn(space: DataSpace, storage: Storage, device: str, batch_size: int) -> Extractor:
    import torch

    from collapse.metrics.digits_cnn import one_thread, to_input

    net = load_digits_cnn(space, storage).to(device)

    def extract(x: np.ndarray) -> np.ndarray:
        """On a CPU in one thread, so the features (and metrics) do not depend on where the
        evaluation ran; the net is small enough that this costs little."""
        images = space.to_images(x)
        out = []
        with torch.no_grad(), one_thread():
            for start in range(0, len(images), batch_size):
                batch = to_input(images[start : start + batch_size]).to(device)
                out.append(net.features(batch).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    return extract
