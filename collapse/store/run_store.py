"""One run's files and its manifest, the only commit point.

A generation counts once `manifest.json` lists it, and the manifest is replaced atomically
(rename on local disk, a single PUT on S3) and written after every artifact it names, so a
crash anywhere leaves either the old manifest or the new one, never a half-committed
generation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from collapse.errors import UserError
from collapse.store.layout import (
    CONFIG,
    MANIFEST,
    MANIFEST_DIR,
    TRAIN_DIR,
    generation_dir,
    generation_of,
)
from collapse.store.manifest import CHUNK as MANIFEST_CHUNK
from collapse.store.manifest import FORMAT as MANIFEST_FORMAT
from collapse.store.manifest import check_manifest, check_record, chunk_records
from collapse.store.records import Artifact, GenerationRecord
from collapse.store.sample_counts import SampleCounts
from collapse.store.storage import Storage


def _from(name: str, first: int) -> bool:
    """Whether `name` is the folder of generation `first` or a later one."""
    generation = generation_of(name)
    return generation is not None and generation >= first


def _encode(document: Mapping[str, Any]) -> str:
    """A record (or a sealed chunk's reference) as one line of the manifest."""
    return json.dumps(document, separators=(",", ":"))


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
        # every committed record, in order; None for a sealed chunk's not read yet
        self._records: list[GenerationRecord | None] = []
        self._refs: list[dict[str, Any]] | None = None  # the head's sealed chunks; None: unread
        # each committed record's JSON, encoded once; None for a sealed chunk's until needed
        self._encoded: list[str | None] = []
        self._sealed: list[str] = []  # the head's references to sealed chunks, encoded once
        self._counts = SampleCounts()  # each committed generation's sample_rows
        self._unread: set[int] = set()  # sealed chunks whose records are not read yet

    @classmethod
    def for_config(cls, storage_uri: str, name: str) -> RunStore:
        return cls(Storage(storage_uri).uri_of(name))

    # config ---------------------------------------------------------------------------------
    def read_config(self) -> str | None:
        return self.storage.read_text(CONFIG)

    def write_config(self, text: str) -> None:
        self.storage.write_bytes(CONFIG, text.encode("utf-8"), atomic=True)

    # manifest -------------------------------------------------------------------------------
    def committed(self, refresh: bool = False) -> list[GenerationRecord]:
        """Every committed generation's record, in order (read once, then kept up to date):
        every sealed chunk is read. What a chain needs at a resume (`count`, `record`,
        `sample_counts`) reads only the head and the chunks it asks for."""
        self._ensure(refresh)
        self._read_chunks(sorted(self._unread))
        return self._records  # type: ignore[return-value]  # every chunk read: no None left

    def count(self) -> int:
        """How many generations are committed."""
        self._ensure()
        return len(self._records)

    def record(self, generation: int) -> GenerationRecord:
        """One committed generation's record (its chunk read on first use)."""
        self._ensure()
        if self._records[generation] is None:
            self._read_chunks([generation // MANIFEST_CHUNK])
        return self._records[generation]  # type: ignore[return-value]  # its chunk was read

    def sample_counts(self) -> SampleCounts:
        """How many samples each committed generation stored, kept as generations commit (a
        plan reads it at every generation: it must not be rebuilt from every record)."""
        self._ensure()
        return self._counts

    def _ensure(self, refresh: bool = False) -> None:
        if self._refs is None or refresh:
            self._load()

    def _load(self) -> None:
        try:
            self._read_head()
        except BaseException:
            self._refs = None  # read again next time, not half-read
            raise

    def _read_head(self) -> None:
        text = self.storage.read_text(MANIFEST)
        self._records, self._encoded, self._sealed, self._refs = [], [], [], []
        self._counts, self._unread = SampleCounts(), set()
        if text is None:
            return
        uri = self.storage.uri_of(MANIFEST)
        head = check_manifest(_parse_json(text, uri), uri)
        self._refs = head.get("sealed", [])
        self._sealed = [_encode(ref) for ref in self._refs]
        self._unread = set(range(len(self._refs)))
        sealed = len(self._refs) * MANIFEST_CHUNK
        self._records = [None] * sealed + head["generations"]
        self._encoded = [None] * sealed + [_encode(r) for r in head["generations"]]
        if "sample_counts" in head:  # the sealed generations' counts, as runs
            runs = head["sample_counts"]
            self._counts = SampleCounts(n for a, b, n in runs for _ in range(a, b + 1))
        else:  # a head written before it kept them: every chunk is read for its counts
            self._read_chunks(range(len(self._refs)))
            loaded = self._records[:sealed]
            assert None not in loaded, "every sealed chunk was read"
            self._counts = SampleCounts(r["sample_rows"] for r in loaded if r is not None)
        for record in head["generations"]:
            self._counts.append(record["sample_rows"])

    def _read_chunks(self, chunks: Iterable[int]) -> None:
        """Read sealed chunks (in parallel: a request each on S3), each checked against the
        head's checksum, and their records against the head's sample counts."""
        assert self._refs is not None
        refs = [self._refs[c] for c in chunks]
        if not refs:
            return
        manifest_uri = self.storage.uri_of(MANIFEST)
        with ThreadPoolExecutor(max_workers=min(16, len(refs))) as pool:
            data = pool.map(self._read_chunk, refs)
            for ref, chunk in zip(refs, data, strict=True):
                uri = self.storage.uri_of(ref["path"])
                if chunk is None:
                    raise UserError(
                        f"{uri} is missing ({manifest_uri} names it): restore it from a backup"
                    )
                if hashlib.sha256(chunk).hexdigest() != ref["sha256"]:
                    raise UserError(
                        f"{uri} does not match the checksum in {manifest_uri}: "
                        "restore it from a backup"
                    )
                records = chunk_records(
                    _parse_json(chunk.decode("utf-8"), uri), ref, uri, manifest_uri
                )
                first = ref["first"]
                counts = self._counts[first : first + len(records)] if self._counts else None
                if counts is not None and counts != [r["sample_rows"] for r in records]:
                    raise UserError(
                        f"{uri} does not match the sample counts in {manifest_uri}: "
                        "restore them from a backup"
                    )
                self._records[first : first + len(records)] = records
                self._unread.discard(first // MANIFEST_CHUNK)

    def _read_chunk(self, ref: dict[str, Any]) -> bytes | None:
        try:
            return self.storage.read_bytes(ref["path"])
        except FileNotFoundError:
            return None

    def _encodings(self, start: int, stop: int) -> list[str]:
        """Records start..stop-1 as JSON, encoding those read from sealed chunks now."""
        for i in range(start, stop):
            if self._encoded[i] is None:
                self._encoded[i] = _encode(self.record(i))
        return self._encoded[start:stop]  # type: ignore[return-value]  # each encoded above

    def commit(self, record: GenerationRecord) -> None:
        """Append one generation's record and publish the manifest: the generation now counts.

        The manifest is a small head, replaced atomically: the records of the last chunk
        inline, and the earlier ones in sealed chunk files of MANIFEST_CHUNK records, each
        written once, before the head that names it. So a commit writes at most one chunk and
        the head, however long the chain (on S3, which cannot append, as on a local disk).
        """
        count = self.count()
        if record["generation"] != count:
            raise RuntimeError(
                f"commit of generation {record['generation']}, but the manifest expects {count}"
            )
        try:
            check_record(record, count)
        except ValueError as err:
            raise RuntimeError(f"refusing to commit an invalid manifest record: {err}") from None
        self._encoded.append(_encode(record))
        self._counts.append(record["sample_rows"])
        try:
            self._publish(len(self._encoded))
        except BaseException:
            self._encoded.pop()
            self._counts.pop()
            raise
        self._records.append(record)

    def _publish(self, count: int) -> None:
        """Make the first `count` encoded records the committed ones: seal the full chunks not
        sealed yet (a record never changes once committed, so a sealed chunk stays valid for
        as long as all its generations stay), then replace the head."""
        sealed = self._sealed[: count // MANIFEST_CHUNK]
        refs = (self._refs or [])[: count // MANIFEST_CHUNK]
        while len(sealed) < count // MANIFEST_CHUNK:
            first = len(sealed) * MANIFEST_CHUNK
            data = _records_json(self._encodings(first, first + MANIFEST_CHUNK)).encode("utf-8")
            path = f"{MANIFEST_DIR}/generations-{first:06d}.json"
            self.storage.write_bytes(path, data)
            digest = hashlib.sha256(data).hexdigest()
            ref = {"path": path, "sha256": digest, "bytes": len(data), "first": first}
            ref["count"] = MANIFEST_CHUNK
            sealed.append(_encode(ref))
            refs.append(ref)
        tail = self._encodings(len(sealed) * MANIFEST_CHUNK, count)
        runs = json.dumps(self._counts.runs(len(sealed) * MANIFEST_CHUNK), separators=(",", ":"))
        chunks = ",\n".join(sealed)
        head = (
            f'{{"format": {MANIFEST_FORMAT}, "sealed": [\n{chunks}\n],\n'
            f'"sample_counts": {runs}, ' + _records_json(tail)[1:]
        )
        self.storage.write_bytes(MANIFEST, head.encode("utf-8"), atomic=True)
        self._sealed, self._refs = sealed, refs

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
    ) -> Artifact:
        """Write a generation's file and describe it for the manifest (path, checksum, rows)."""
        path = f"{generation_dir(generation)}/{rel}"
        self.storage.write_bytes(path, data)
        digest = hashlib.sha256(data).hexdigest()
        return Artifact(path=path, sha256=digest, bytes=len(data), rows=rows)

    def read_artifact(self, artifact: Artifact) -> bytes:
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
