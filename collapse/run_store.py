"""One run's files and its manifest, the only commit point.

A generation counts once `manifest.json` lists it, and the manifest is replaced atomically
(rename on local disk, a single PUT on S3) and written after every artifact it names, so a
crash anywhere leaves either the old manifest or the new one, never a half-committed
generation.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from collapse.data.mix import SampleCounts
from collapse.errors import UserError
from collapse.manifest import CHUNK as MANIFEST_CHUNK
from collapse.manifest import FORMAT as MANIFEST_FORMAT
from collapse.manifest import check_manifest, check_record, chunk_records
from collapse.run_layout import (
    CONFIG,
    MANIFEST,
    MANIFEST_DIR,
    TRAIN_DIR,
    generation_dir,
    generation_of,
)
from collapse.storage import Storage


@dataclass(frozen=True)
class Artifact:
    """A file a generation wrote: its path relative to the run, rows (for shards) and sha256."""

    path: str
    sha256: str
    bytes: int
    rows: int | None = None


def _from(name: str, first: int) -> bool:
    """Whether `name` is the folder of generation `first` or a later one."""
    generation = generation_of(name)
    return generation is not None and generation >= first


def _encode(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def _records_json(encoded: list[str]) -> str:
    """`{"generations": [...]}`, one record per line, for people too."""
    return '{"generations": [\n' + ",\n".join(encoded) + "\n]}\n"


def _parse_json(text: str, uri: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{uri} is corrupt ({err}): restore it from a backup; the generations it listed "
            "are in the gen-NNNN folders beside it"
        ) from None


class RunStore:
    """One run's directory: its config, its manifest, and each generation's artifacts."""

    def __init__(self, run_uri: str):
        self.storage = Storage(run_uri)
        self.uri = self.storage.uri
        self._records: list[dict[str, Any]] | None = None
        # each committed record's JSON, encoded once; None for a sealed chunk's until needed
        self._encoded: list[str | None] = []
        self._sealed: list[str] = []  # the head's references to sealed chunks, encoded once
        self._counts = SampleCounts()  # each committed generation's sample_rows

    @classmethod
    def for_config(cls, storage_uri: str, name: str) -> RunStore:
        return cls(Storage(storage_uri).uri_of(name))

    # config ---------------------------------------------------------------------------------
    def read_config(self) -> str | None:
        return self.storage.read_text(CONFIG)

    def write_config(self, text: str) -> None:
        self.storage.write_bytes(CONFIG, text.encode("utf-8"), atomic=True)

    # manifest -------------------------------------------------------------------------------
    def committed(self, refresh: bool = False) -> list[dict[str, Any]]:
        """Every committed generation's record, in order (read once, then kept up to date)."""
        if self._records is None or refresh:
            self._load()
        assert self._records is not None
        return self._records

    def sample_counts(self) -> SampleCounts:
        """How many samples each committed generation stored, kept as generations commit (a
        plan reads it at every generation: it must not be rebuilt from every record)."""
        self.committed()
        return self._counts

    def _load(self) -> None:
        text = self.storage.read_text(MANIFEST)
        self._records, self._encoded, self._sealed = [], [], []
        self._counts = SampleCounts()
        if text is None:
            return
        uri = self.storage.uri_of(MANIFEST)
        head = check_manifest(_parse_json(text, uri), uri)
        refs = head.get("sealed", [])
        # a request each, in parallel: 157 sequential GETs are seconds on S3
        with ThreadPoolExecutor(max_workers=min(16, len(refs) or 1)) as pool:
            chunks = pool.map(lambda ref: self.storage.read_bytes(ref["path"]), refs)
            for ref, chunk in zip(refs, chunks, strict=True):
                chunk_uri = self.storage.uri_of(ref["path"])
                if hashlib.sha256(chunk).hexdigest() != ref["sha256"]:
                    raise UserError(
                        f"{chunk_uri} does not match the checksum in {uri}: "
                        "restore it from a backup"
                    )
                records = chunk_records(
                    _parse_json(chunk.decode("utf-8"), chunk_uri), ref, chunk_uri, uri
                )
                self._records.extend(records)
                self._sealed.append(_encode(ref))
        self._encoded = [None] * len(self._records)
        self._records.extend(head["generations"])
        self._encoded.extend(_encode(r) for r in head["generations"])
        self._counts = SampleCounts(r["sample_rows"] for r in self._records)

    def _encodings(self, start: int, stop: int) -> list[str]:
        """Records start..stop-1 as JSON, encoding those read from sealed chunks now."""
        for i in range(start, stop):
            if self._encoded[i] is None:
                self._encoded[i] = _encode(self._records[i])
        return self._encoded[start:stop]  # type: ignore[return-value]

    def commit(self, record: dict[str, Any]) -> None:
        """Append one generation's record and publish the manifest: the generation now counts.

        The manifest is a small head, replaced atomically: the records of the last chunk
        inline, and the earlier ones in sealed chunk files of MANIFEST_CHUNK records, each
        written once, before the head that names it. So a commit writes at most one chunk and
        the head, however long the chain (on S3, which cannot append, as on a local disk).
        """
        generations = self.committed()
        if record["generation"] != len(generations):
            raise RuntimeError(
                f"commit of generation {record['generation']}, "
                f"but the manifest expects {len(generations)}"
            )
        try:
            check_record(record, len(generations))
        except ValueError as err:
            raise RuntimeError(f"refusing to commit an invalid manifest record: {err}") from None
        self._encoded.append(_encode(record))
        try:
            self._publish(len(self._encoded))
        except BaseException:
            self._encoded.pop()
            raise
        generations.append(record)
        self._counts.append(record["sample_rows"])

    def _publish(self, count: int) -> None:
        """Make the first `count` encoded records the committed ones: seal the full chunks not
        sealed yet (a record never changes once committed, so a sealed chunk stays valid for
        as long as all its generations stay), then replace the head."""
        sealed = self._sealed[: count // MANIFEST_CHUNK]
        while len(sealed) < count // MANIFEST_CHUNK:
            first = len(sealed) * MANIFEST_CHUNK
            data = _records_json(self._encodings(first, first + MANIFEST_CHUNK)).encode("utf-8")
            path = f"{MANIFEST_DIR}/generations-{first:06d}.json"
            self.storage.write_bytes(path, data)
            digest = hashlib.sha256(data).hexdigest()
            ref = {"path": path, "sha256": digest, "bytes": len(data), "first": first}
            sealed.append(_encode({**ref, "count": MANIFEST_CHUNK}))
        tail = self._encodings(len(sealed) * MANIFEST_CHUNK, count)
        refs = ",\n".join(sealed)
        head = f'{{"format": {MANIFEST_FORMAT}, "sealed": [\n{refs}\n], ' + _records_json(tail)[1:]
        self.storage.write_bytes(MANIFEST, head.encode("utf-8"), atomic=True)
        self._sealed = sealed

    def truncate(self, generations: int) -> None:
        """Keep only the first `generations` committed generations; the files of the later ones
        (and their latent caches) go, all but the Ray Train checkpoints of the first dropped
        one, which trained on kept inputs."""
        self.committed()
        self._publish(generations)
        self.committed(refresh=True)
        for name in self.storage.list_dir(""):
            if _from(name, generations + 1):
                self.storage.delete_dir(name)
        self.clear_generation(generations)
        for name in self.storage.list_dir("latents"):
            if _from(name, generations):
                self.storage.delete_dir(f"latents/{name}")

    # generations ----------------------------------------------------------------------------
    def write_artifact(
        self, generation: int, rel: str, data: bytes, rows: int | None = None
    ) -> dict:
        """Write a generation's file and describe it for the manifest (path, checksum, rows)."""
        path = f"{generation_dir(generation)}/{rel}"
        self.storage.write_bytes(path, data)
        return asdict(Artifact(path, hashlib.sha256(data).hexdigest(), len(data), rows))

    def read_artifact(self, artifact: dict[str, Any]) -> bytes:
        """An artifact's bytes, refusing any whose checksum differs from the committed one."""
        data = self.storage.read_bytes(artifact["path"])
        if hashlib.sha256(data).hexdigest() != artifact["sha256"]:
            raise UserError(
                f"{self.storage.uri_of(artifact['path'])}: checksum mismatch (corrupted artifact)"
            )
        return data

    def clear_generation(self, generation: int) -> None:
        """Remove an uncommitted generation's scratch so a rerun starts from clean files, all but
        its Ray Train checkpoints (`train/`), from which its training continues."""
        folder = generation_dir(generation)
        names = self.storage.list_dir(folder)
        if TRAIN_DIR not in names:
            self.storage.delete_dir(folder)
            return
        for name in names:
            if name != TRAIN_DIR:
                self.storage.delete(f"{folder}/{name}")
