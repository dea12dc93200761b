"""One driver per run: a lease file with an owner and a heartbeat.

Two drivers on one run would interleave generations and commits. The first driver writes
`<run>/lease.json` and refreshes its heartbeat from a thread while it runs. A second driver
refuses with one line naming the owner. It takes the lease over only when the lease is
stale: the heartbeat is older than `stale_after`, or the owner is a process on this host that
no longer exists (a driver killed with SIGKILL is seen at once). Runs with other names have
their own directories and leases, so they never meet.

Object storage has no compare-and-swap that pyarrow exposes. A taker therefore writes its
token and reads it back: two drivers starting in the same instant can both pass. The lease
protects against a second driver, started by a person or a scheduler, on a run that is
already going; it is not a distributed lock.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import uuid
from typing import Any

from collapse.errors import UserError
from collapse.store.layout import CONFIG
from collapse.store.storage import Storage

LEASE = "lease.json"
STALE_AFTER_S = 60.0


def _parse(text: str | None) -> dict[str, Any] | None:
    """A lease record, or None for no lease or anything that is not one (a torn write, a
    file a person or tool garbled): such a lease protects nobody and is stale."""
    try:
        record = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("token"), str):
        return None
    heartbeat = record.get("heartbeat")
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int | float):
        return None
    if not math.isfinite(heartbeat):
        return None
    return record


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class RunLease:
    """`with RunLease(run_storage):` holds the run for the block."""

    def __init__(self, storage: Storage, stale_after: float = STALE_AFTER_S):
        self.storage = storage
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict[str, Any] | None:
        return _parse(self.storage.read_text(LEASE))

    def _write(self) -> None:
        record = {"owner": self.owner, "token": self.token, "heartbeat": time.time()}
        self.storage.write_bytes(LEASE, json.dumps(record).encode(), atomic=True)

    def holder(self) -> dict[str, Any] | None:
        """The lease of another live driver, or None when this driver may take it."""
        current = self._read()
        if current is None or current.get("token") == self.token:
            return None
        age = time.time() - current["heartbeat"]
        if age > self.stale_after:
            return None
        host, _, pid = str(current.get("owner", "")).rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            return None
        return {**current, "age": age}

    def acquire(self) -> None:
        held = self.holder()
        if held is not None:
            raise UserError(
                f"run {self.storage.uri} is in use by {held['owner']} (heartbeat "
                f"{held['age']:.0f} s ago); wait for it, or stop it: the lease is taken over "
                f"once that driver is gone or its heartbeat is {self.stale_after:.0f} s old"
            )
        self._write()
        if (self._read() or {}).get("token") != self.token:
            raise UserError(f"run {self.storage.uri}: another driver took it at the same moment")
        self._thread = threading.Thread(target=self._beat, name="collapse-lease", daemon=True)
        self._thread.start()

    @staticmethod
    def check(storage: Storage, token: str) -> None:
        """Refuse to go on (a commit, say) when the run's lease is no longer `token`'s: a
        driver killed without a chance to stop its workers must not commit after its
        successor took over."""
        text = storage.read_text(LEASE)
        current = _parse(text)
        if text is not None and current is None:
            raise UserError(
                f"{storage.uri_of(LEASE)} was overwritten with something that is not a lease; "
                f"stopping before the next commit: if no other driver runs {storage.uri}, rerun "
                "to resume (the lease is then taken over)"
            )
        if (current or {}).get("token") != token:
            raise UserError(f"run {storage.uri} was taken over by another driver; stopping")

    def _beat(self) -> None:
        while not self._stop.wait(self.stale_after / 4):
            try:
                self._write()
            except Exception:  # a storage hiccup: the next beat retries; stale only after many
                continue

    def release(self) -> None:
        """Give the lease back (nothing if it was never taken). Best effort: on storage that
        has just failed (full, read-only) the lease stays, and the next driver on this host
        takes it over at once, since its owner is gone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            if (self._read() or {}).get("token") == self.token:
                self.storage.delete(LEASE)
                # a run that failed before its first write; a run with its config is not, and
                # is not listed (on S3 that is a page per 1,000 generations)
                if not self.storage.exists(CONFIG) and not self.storage.list_dir(""):
                    self.storage.delete_dir("")
        except (UserError, OSError):
            pass

    def __enter__(self) -> RunLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
