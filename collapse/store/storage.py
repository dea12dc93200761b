"""The filesystem layer under every run: a local directory or `s3://bucket/prefix`.

One code path for both through `pyarrow.fs`, so a laptop run and a cluster run leave the same
files. Object storage has outages that pass, a local disk has failures that do not: this layer
retries the first and turns both into one line that names the path, the cause and what to do,
and writes a commit point atomically so a reader never sees part of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from collapse.errors import UserError

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
