"""The manifest's records and the artifacts they name, as types: what a committed generation
says of itself, for every reader (a resumed chain, `collapse report`, the Python API, the
trackers) to rely on.

They are JSON objects on storage, so they are `TypedDict`s: the JSON as read is the value, and
a type checker holds the code that writes a record and the code that reads one to the same
keys. `collapse.store.manifest` checks the part every reader needs when a manifest is read
(a manifest edited by hand can lie); the keys marked `NotRequired` are those a generation
writes only where it has them, or that runs written by earlier versions lack.
"""

from __future__ import annotations

from typing import Any, TypedDict

from typing_extensions import NotRequired


class Artifact(TypedDict):
    """A file a generation wrote: its path relative to the run, its sha256, its size, and
    its rows (for shards; None otherwise)."""

    path: str
    sha256: str
    bytes: int
    rows: int | None


class SpanShard(Artifact):
    """A shard and the span of row ids [a, b) it holds: RA/RCA Reflow's real pairs, a latent
    cache's shards."""

    ids: list[int]


class MixRecord(TypedDict):
    """One part of a generation's mix plan (`collapse.data.mix.MixPart.as_record`)."""

    source: str  # "real" | "synthetic"
    generation: int | None
    count: int
    rows: list[list[int]]
    last: NotRequired[int]  # a span of generations: the last one


class ExportRecord(TypedDict):
    """The generation's model in its ecosystem's format (`collapse.families.export`)."""

    format: str
    files: list[Artifact]


class RealPairsRecord(TypedDict):
    """What RA/RCA Reflow paired: the real rows, when, and where the pairs are stored."""

    made_at: int
    rows: list[list[int]]
    shards: list[SpanShard]


class GenerationRecord(TypedDict):
    """A committed generation, as `manifest.json` lists it."""

    generation: int
    mix: list[MixRecord]
    real_fraction: NotRequired[float]  # the share its plan used (mixing loops, t >= 1)
    train_rows: int
    sample_rows: int
    samples: list[Artifact]
    sample_bias: NotRequired[float]
    model: list[Artifact]  # params.npz
    metrics: dict[str, float]
    feature_extractor: NotRequired[str | None]
    samples_png: NotRequired[Artifact]
    accumulated: NotRequired[Artifact]  # an accumulate chain's running moments
    grid: NotRequired[list[Artifact]]  # an image generation's fixed-noise samples
    corrected: NotRequired[list[Artifact]]  # what the next generation trains on instead
    correction: NotRequired[dict[str, Any]]  # how far the strategy moved the samples
    train: NotRequired[dict[str, Any]]  # a trained family's last training report
    export: NotRequired[ExportRecord]
    loss_curve: NotRequired[Artifact]
    real_pairs: NotRequired[RealPairsRecord]
    nonfinite: NotRequired[list[str]]  # metrics committed non-finite (eval.allow_nonfinite)
    timings: NotRequired[dict[str, float]]
    committed_at: NotRequired[str]


def training_samples(record: GenerationRecord) -> list[Artifact]:
    """The shards a later generation trains on: the corrected samples where there are some."""
    return record.get("corrected") or record["samples"]
