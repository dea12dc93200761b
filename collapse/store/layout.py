"""The run layout (docs/run-layout.md): the names of a run's files and generation folders.

Every module that finds a run's files by name (the store, integrity checks, retention,
training checkpoints, evaluation) reads them here, so the layout is said once.
"""

from __future__ import annotations

import re

MANIFEST = "manifest.json"
MANIFEST_DIR = "manifest"  # sealed chunks of a long chain's records
CONFIG = "config.yaml"
TRAIN_DIR = "train"  # a generation's Ray Train run (checkpoints), kept across restarts


def generation_dir(generation: int) -> str:
    return f"gen-{generation:04d}"


_GENERATION_DIR = re.compile(r"gen-(\d{4,})")


def generation_of(name: str) -> int | None:
    """The generation a `gen-NNNN` folder holds; None for anything else a person or a tool
    put beside it (`gen-0002.bak`, `gen-old`), which the run never touches."""
    match = _GENERATION_DIR.fullmatch(name)
    return int(match.group(1)) if match else None
