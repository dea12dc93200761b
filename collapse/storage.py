"""Run storage: DESIGN.md's run layout on a local directory or `s3://bucket/prefix`.

One code path for both through `pyarrow.fs`, so a laptop run and a cluster run leave the same
files. The manifest is the only commit point: a generation counts once `manifest.json` lists
it, and the manifest is replaced atomically (rename on local disk, a single PUT on S3) and
written after every artifact it names, so a crash anywhere leaves either the old manifest or
the new one, never a half-committed generation.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from collapse.errors import UserError

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
MANIFEST_FORMAT = 1
TRAIN_DIR = "train"  # a generation's Ray Train run (checkpoints), kept across restarts


def generation_dir(generation: int) -> str:
    return f"gen-{generation:04d}"


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
            if not existing.is_dir() or not os.access(existing, os.W_OK):
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
        one line. A missing file is an answer, not an outage."""
        for delay in (*RETRY_DELAYS_S, None):
            try:
                return action()
            except FileNotFoundError:
                raise
            except OSError as err:
                if self.local:
                    raise
                if delay is None:
                    raise UserError(
                        f"storage {self.uri_of(rel)}: {what} failed after "
                        f"{len(RETRY_DELAYS_S) + 1} attempts ({_first_line(err)}); committed "
                        "generations are kept, rerun to resume"
                    ) from None
                time.sleep(delay)
        raise AssertionError("unreachable")

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
        if self.local:
            parent = posixpath.dirname(path)
            if parent not in self._made:
                self.fs.create_dir(parent, recursive=True)
                self._made.add(parent)
        if self.local and atomic:
            tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            os.replace(tmp, path)
        else:

            def write() -> None:
                with self.fs.open_output_stream(path) as f:
                    f.write(data)

            self._retrying("write", rel, write)

    def delete(self, rel: str) -> None:
        """Delete a file or a directory tree."""
        if self.fs.get_file_info(self.path(rel)).type == pafs.FileType.Directory:
            self.delete_dir(rel)
        else:
            self.fs.delete_file(self.path(rel))

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self.path(rel))
            self._made = {d for d in self._made if not d.startswith(self.path(rel))}

    def list_dir(self, rel: str) -> list[str]:
        """Names directly under rel (files and directories), sorted; [] if it does not exist."""
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(selector))


def _encode(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class RunStore:
    """One run's directory: its config, its manifest, and each generation's artifacts."""

    def __init__(self, run_uri: str):
        self.storage = Storage(run_uri)
        self.uri = self.storage.uri
        self._manifest: dict[str, Any] | None = None
        self._encoded: list[str] = []

    @classmethod
    def for_config(cls, storage_uri: str, name: str) -> RunStore:
        return cls(Storage(storage_uri).uri_of(name))

    # config ---------------------------------------------------------------------------------
    def read_config(self) -> str | None:
        return self.storage.read_text(CONFIG)

    def write_config(self, text: str) -> None:
        self.storage.write_bytes(CONFIG, text.encode("utf-8"), atomic=True)

    # manifest -------------------------------------------------------------------------------
    def manifest(self, refresh: bool = False) -> dict[str, Any]:
        if self._manifest is None or refresh:
            text = self.storage.read_text(MANIFEST)
            if text is None:
                self._manifest = {"format": MANIFEST_FORMAT, "generations": []}
            else:
                try:
                    self._manifest = json.loads(text)
                except json.JSONDecodeError as err:
                    raise UserError(f"{self.storage.uri_of(MANIFEST)} is corrupt: {err}") from None
            self._encoded = [_encode(g) for g in self._manifest["generations"]]
        return self._manifest

    def committed(self) -> list[dict[str, Any]]:
        return self.manifest()["generations"]

    def commit(self, record: dict[str, Any]) -> None:
        """Append one generation's record and publish the manifest: the generation now counts.

        Each record is encoded once and kept, so a chain of thousands of generations does not
        re-serialise its whole history at every commit (one record per line, for people too).
        """
        generations = self.committed()
        if record["generation"] != len(generations):
            raise RuntimeError(
                f"commit of generation {record['generation']}, "
                f"but the manifest expects {len(generations)}"
            )
        encoded = [*self._encoded, _encode(record)]
        self._publish(encoded)
        generations.append(record)
        self._encoded = encoded

    def _publish(self, encoded: list[str]) -> None:
        text = f'{{"format": {MANIFEST_FORMAT}, "generations": [\n' + ",\n".join(encoded) + "\n]}\n"
        self.storage.write_bytes(MANIFEST, text.encode("utf-8"), atomic=True)

    def truncate(self, generations: int) -> None:
        """Keep only the first `generations` committed generations; the files of the later ones
        (and their latent caches) go, all but the Ray Train checkpoints of the first dropped
        one, which trained on kept inputs."""
        self.manifest()
        self._publish(self._encoded[:generations])
        self.manifest(refresh=True)
        for name in self.storage.list_dir(""):
            if name.startswith("gen-") and int(name[4:]) > generations:
                self.storage.delete_dir(name)
        self.clear_generation(generations)
        for name in self.storage.list_dir("latents"):
            if name.startswith("gen-") and int(name[4:]) >= generations:
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
