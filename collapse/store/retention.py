"""Which Ray Train checkpoints a run keeps once their generation is committed.

A trained generation leaves Ray Train's checkpoints under `gen-k/train/` (weights, EMA and
optimizer state, two of them): about 1.1 GB per generation for a 35.7M-parameter CIFAR UNet.
They matter only while the generation is in flight, since a restarted generation continues from
its latest one. Once committed, later generations read the committed model (`gen-k/model/`), and
a repair that recomputes a broken generation without its checkpoints trains it from step 0,
which gives the same bytes. So `train.keep_checkpoints` keeps those of the latest N committed
generations (default 0: none) and `prune_checkpoints` deletes the rest at each commit.
"""

from __future__ import annotations

from typing import Literal

from collapse.store.layout import TRAIN_DIR, generation_dir
from collapse.store.run_store import RunStore


def prune_checkpoints(store: RunStore, committed: int, keep: int | Literal["all"]) -> list[int]:
    """Delete the checkpoints of the committed generations that `keep` leaves out, now that
    generation `committed` is committed; the generations whose checkpoints went.

    It walks back from the newest generation outside the window while it finds checkpoints:
    usually one, or two when a crash fell between a commit and its pruning, or all of them on
    the first commit after `keep` was lowered. A generation without checkpoints (one already
    pruned, or trained in Ray Train's local mode, which writes none) ends the walk, so a commit
    costs one look when there is nothing to delete."""
    if keep == "all":
        return []
    deleted = []
    generation = committed - keep
    while generation >= 0:
        folder = f"{generation_dir(generation)}/{TRAIN_DIR}"
        if not store.storage.exists(folder):
            break
        store.storage.delete_dir(folder)
        deleted.append(generation)
        generation -= 1
    return deleted
