"""Run storage: DESIGN.md's run layout on a local directory or `s3://bucket/prefix`.

One code path for both through `pyarrow.fs`, so a laptop run and a cluster run leave the same
files. The manifest is the only commit point: a generation counts once `manifest.json` lists
it, and the manifest is replaced atomically (rename on local disk, a single PUT on S3) and
written after every artifact it names, so a crash anywhere leaves either the old manifest or
the new one, never a half-committed generation.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from collapse.errors import UserError
from collapse.manifest import CHUNK as MANIFEST_CHUNK
from collapse.manifest import FORMAT as MANIFEST_FORMAT
from collapse.manifest import check_manifest, check_record, chunk_records

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


RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)  # after the SDK's own retries: about 30 s in all


def s3_filesystem(bucket_uri: str) -> pafs.S3FileSystem:
    """S3 client configured the way the AWS CLI is: endpoint, region and keys from the env.

    pyarrow reads the credentials chain itself; the endpoint (MinIO, moto, R2, ...) comes from
    AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL as in the AWS SDKs.
    """
    kwargs: dict[str, Any] = {
        "region": os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=5),
        "connect_timeout": 10,
        "request_timeout": 60,
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
        kwargs["force_virtual_addressing"] = False
    return pafs.S3FileSystem(**kwargs)


@dataclass(frozen=True)
class Artifact:
    """A file a generation wrote: its path relative to the run, rows (for shards) and sha256."""

    path: str
    sha256: str
    bytes: int
    rows: int | None = None


class Storage:
    """A root URI and the filesystem that reaches it; paths below it are relative, '/'-separated."""

    def __init__(self, uri: str):
        self._made: set[str] = set()  # local directories known to exist
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise UserError(f"storage {uri!r}: an S3 URI needs a bucket (s3://bucket/prefix)")
            self.fs: pafs.FileSystem = s3_filesystem(uri)
            self.root = posixpath.join(parsed.netloc, parsed.path.strip("/")).rstrip("/")
            self.uri = f"s3://{self.root}"
            self.local = False
        elif parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
            path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser().resolve()
            self.fs = pafs.LocalFileSystem()
            self.root = path.as_posix()
            self.uri = self.root
            self.local = True
        else:
            raise UserError(
                f"storage {uri!r}: unsupported scheme {parsed.scheme!r}; allowed: a local path or s3://bucket/prefix"
            )

    def child(self, name: str) -> Storage:
        return Storage(self.uri_of(name))

    def uri_of(self, rel: str) -> str:
        return self.uri.rstrip("/") + "/" + rel if rel else self.uri

    def path(self, rel: str) -> str:
        """The filesystem path of `rel` (what pyarrow and Ray Data take with `self.fs`)."""
        return posixpath.join(self.root, rel) if rel else self.root

    def check_reachable(self) -> None:
        """Fail early, with the URI named, when the storage cannot be used at all."""
        if self.local:
            existing = Path(self.root)
            while not existing.exists():
                existing = existing.parent
            if not existing.is_dir():
                raise UserError(f"storage {self.uri}: {existing} is not a writable directory")
            if os.statvfs(existing).f_flag & os.ST_RDONLY:
                raise UserError(f"storage {self.uri}: {existing} is on a read-only file system")
            if not os.access(existing, os.W_OK):
                raise UserError(f"storage {self.uri}: {existing} is not a writable directory")
            return
        try:
            bucket = self.root.split("/", 1)[0]
            info = self.fs.get_file_info(bucket)
        except OSError as err:
            raise UserError(f"storage {self.uri} is not reachable: {_first_line(err)}") from None
        if info.type == pafs.FileType.NotFound:
            raise UserError(f"storage {self.uri}: bucket {bucket!r} does not exist")

    def _retrying(self, what: str, rel: str, action: Callable[[], Any]) -> Any:
        """Object storage has outages of seconds to minutes (a restarting endpoint, throttling,
        a network blip): retry with backoff on top of the SDK's own retries, then stop with
        one line. A missing file is an answer, not an outage. A local disk does not recover by
        waiting (full, read-only, permissions): one line at once."""
        for delay in (*RETRY_DELAYS_S, None):
            try:
                return action()
            except FileNotFoundError:
                raise
            except OSError as err:
                if self.local:
                    raise self.failure(what, rel, err) from None
                if delay is None:
                    raise UserError(
                        f"storage {self.uri_of(rel)}: {what} failed after "
                        f"{len(RETRY_DELAYS_S) + 1} attempts ({_first_line(err)}); committed "
                        "generations are kept, rerun to resume"
                    ) from None
                time.sleep(delay)
        raise AssertionError("unreachable")

    def failure(self, what: str, rel: str, err: OSError) -> UserError:
        """A storage error as the user's one line: the path, the cause, what to do."""
        reason, advice = _diagnose(err)
        return UserError(
            f"storage {self.uri_of(rel)}: cannot {what} ({reason}); committed generations are "
            f"kept: {advice}, then rerun to resume"
        )

    def exists(self, rel: str) -> bool:
        info = self._retrying("stat", rel, lambda: self.fs.get_file_info(self.path(rel)))
        return info.type != pafs.FileType.NotFound

    def read_bytes(self, rel: str) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read()

        return self._retrying("read", rel, read)

    def read_text(self, rel: str) -> str | None:
        """The file's text, or None when it does not exist."""
        try:
            return self.read_bytes(rel).decode("utf-8")
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes, atomic: bool = False) -> None:
        """Write a whole file; `atomic`: readers see the old file or the new one, never a part.

        Only commit points need `atomic` (a PUT to S3 is atomic anyway): an artifact is trusted
        through the manifest's checksum, not through how it was written.
        """
        path = self.path(rel)
        if not self.local:

            def write() -> None:
                with self.fs.open_output_stream(path) as f:
                    f.write(data)

            self._retrying("write", rel, write)
            return
        parent = posixpath.dirname(path)
        target = (
            posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
            if atomic
            else path
        )
        try:
            if parent not in self._made:
                self.fs.create_dir(parent, recursive=True)
                self._made.add(parent)
            with self.fs.open_output_stream(target) as f:
                f.write(data)
            if atomic:
                os.replace(target, path)
        except OSError as err:
            if atomic:  # nothing half-written is left behind
                with contextlib.suppress(OSError):
                    os.remove(target)
            raise self.failure("write", rel, err) from None

    def delete(self, rel: str) -> None:
        """Delete a file or a directory tree."""
        if self.fs.get_file_info(self.path(rel)).type == pafs.FileType.Directory:
            self.delete_dir(rel)
        else:
            self._retrying("delete", rel, lambda: self.fs.delete_file(self.path(rel)))

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self._retrying("delete", rel, lambda: self.fs.delete_dir(self.path(rel)))
            self._made = {d for d in self._made if not d.startswith(self.path(rel))}

    def list_dir(self, rel: str) -> list[str]:
        """Names directly under rel (files and directories), sorted; [] if it does not exist."""
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True)
        infos = self._retrying("list", rel, lambda: self.fs.get_file_info(selector))
        return sorted(posixpath.basename(i.path) for i in infos)


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


_CAUSES = (  # errno, what the message says, what to do
    (errno.ENOSPC, "no space left on device", "free space"),
    (errno.EDQUOT, "disk quota exceeded", "free space"),
    (errno.EROFS, "read-only file system", "make it writable"),
    (errno.EACCES, "permission denied", "fix its permissions"),
    (errno.EPERM, "operation not permitted", "fix its permissions"),
)


def storage_cause(text: str, number: int | None = None) -> tuple[str, str] | None:
    """(cause, advice) when an error's errno or message is one of a full, read-only or
    forbidden file system: pyarrow does not always set `errno`, and an error that crossed a
    Ray worker is text, but both name the cause in their message."""
    text = text.lower()
    for errno_, reason, advice in _CAUSES:
        if number == errno_ or reason in text or f"errno {errno_}]" in text:
            return reason, advice
    return None


def _diagnose(err: OSError) -> tuple[str, str]:
    """(cause, advice) of a storage error."""
    return storage_cause(str(err), err.errno) or (_first_line(err), "check the storage")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class RunStore:
    """One run's directory: its config, its manifest, and each generation's artifacts."""

    def __init__(self, run_uri: str):
        self.storage = Storage(run_uri)
        self.uri = self.storage.uri
        self._records: list[dict[str, Any]] | None = None
        self._encoded: list[str] = []  # each committed record's JSON, encoded once
        self._sealed: list[str] = []  # the head's references to sealed chunks, encoded once
        self._counts: list[int] = []  # each committed generation's sample_rows

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

    def sample_counts(self) -> list[int]:
        """How many samples each committed generation stored, kept as generations commit (a
        plan reads it at every generation: it must not be rebuilt from every record)."""
        self.committed()
        return self._counts

    def _load(self) -> None:
        text = self.storage.read_text(MANIFEST)
        self._records, self._encoded, self._sealed, self._counts = [], [], [], []
        if text is None:
            return
        uri = self.storage.uri_of(MANIFEST)
        head = check_manifest(_parse_json(text, uri), uri)
        for ref in head.get("sealed", []):
            chunk = self.storage.read_bytes(ref["path"])
            chunk_uri = self.storage.uri_of(ref["path"])
            if hashlib.sha256(chunk).hexdigest() != ref["sha256"]:
                raise UserError(
                    f"{chunk_uri} does not match the checksum in {uri}: restore it from a backup"
                )
            records = chunk_records(
                _parse_json(chunk.decode("utf-8"), chunk_uri), ref, chunk_uri, uri
            )
            self._records.extend(records)
            self._sealed.append(_encode(ref))
        self._records.extend(head["generations"])
        self._encoded = [_encode(r) for r in self._records]
        self._counts = [r["sample_rows"] for r in self._records]

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
            data = _records_json(self._encoded[first : first + MANIFEST_CHUNK]).encode("utf-8")
            path = f"{MANIFEST_DIR}/generations-{first:06d}.json"
            self.storage.write_bytes(path, data)
            digest = hashlib.sha256(data).hexdigest()
            ref = {"path": path, "sha256": digest, "bytes": len(data), "first": first}
            sealed.append(_encode({**ref, "count": MANIFEST_CHUNK}))
        tail = self._encoded[len(sealed) * MANIFEST_CHUNK : count]
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
