"""What a resumed run checks before it trusts its storage, and how it repairs what is broken.

A committed generation is trusted through the checksums in the manifest (whose sealed chunks are
checked against the head's checksums when read). On resume the latest generation's artifacts,
what the next generation reads, must match their sha256; every other artifact is checked when
something reads it (an accumulate chain's first generation after a resume reads them all).
On a local disk every committed artifact must also be there at its committed size, from one
directory walk (half a second at 10,000 generations): files are written in place, so a power
loss or a copy of the run stopped midway leaves short files. Object storage has no short
objects (a PUT is whole or absent), and finding a missing one means listing the whole run, a
request per 1,000 objects (40 for a chain of 10,000 generations; 9 s against moto), so there
the sizes are checked when asked (`every_size`, `collapse resume --check-sizes`).

The first generation that fails is recomputed, and so is every generation after it, since they
were built on it. The generations before it are left as they are. Generations are a function of
the seed, so a recomputed one comes back with the same bytes.

The checkpoints of the generation in flight are checked too. Its latest checkpoint's
`state.pt` must match the `state.sha256` written beside it. If a checkpoint is missing or
broken, its training starts again from step 0, since Ray Train would otherwise fail on it at
every retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pyarrow.fs as pafs

from collapse.store.layout import TRAIN_DIR, generation_dir
from collapse.store.run_store import RunStore

CHECKPOINT_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train V2's list of checkpoints
STATE_FILE, STATE_SHA = "state.pt", "state.sha256"


def artifacts(record: Any) -> Iterator[dict[str, Any]]:
    """Every artifact a generation's record names, wherever in the record it is."""
    if isinstance(record, dict):
        if isinstance(record.get("path"), str) and "sha256" in record:
            yield record
            return
        for value in record.values():
            yield from artifacts(value)
    elif isinstance(record, list):
        for value in record:
            yield from artifacts(value)


def _sizes(store: RunStore) -> dict[str, int]:
    """Every file of the run and its size, from one recursive listing: on S3 a page lists a
    thousand objects, where a check per artifact would be a request each."""
    storage = store.storage
    selector = pafs.FileSelector(storage.path(""), recursive=True, allow_not_found=True)
    prefix = storage.path("").rstrip("/") + "/"
    infos = storage.fs.get_file_info(selector)
    return {i.path[len(prefix) :]: i.size for i in infos if i.type == pafs.FileType.File}


def _missing_or_short(
    store: RunStore, artifact: dict[str, Any], sizes: dict[str, int]
) -> str | None:
    uri, path = store.storage.uri_of(artifact["path"]), artifact["path"]
    if path not in sizes:
        return f"{uri} is missing"
    if sizes[path] != artifact["bytes"]:
        return f"{uri} is truncated ({sizes[path]} of {artifact['bytes']} bytes)"
    return None


def _not_as_committed(store: RunStore, artifact: dict[str, Any]) -> str | None:
    """The artifact read whole and checked against its size and checksum."""
    path = artifact["path"]
    try:
        data = store.storage.read_bytes(path)
    except FileNotFoundError:
        return _missing_or_short(store, artifact, {})
    problem = _missing_or_short(store, artifact, {path: len(data)})
    if problem is not None:
        return problem
    if hashlib.sha256(data).hexdigest() != artifact["sha256"]:
        return f"{store.storage.uri_of(path)} does not match its committed checksum"
    return None


def first_broken(store: RunStore, every_size: bool | None = None) -> tuple[int, str] | None:
    """(generation, what is wrong) for the first committed generation with a broken artifact:
    the latest generation's (what the next one reads) must match their checksums and, with
    `every_size` (default: on a local disk), every other must be there at its committed size."""
    count = store.count()
    if not count:
        return None
    if every_size is None:
        every_size = store.storage.local
    if every_size and count > 1:  # every record: each sealed chunk is read
        sizes = _sizes(store)
        for record in store.committed()[:-1]:
            for artifact in artifacts({k: v for k, v in record.items() if k != "mix"}):
                problem = _missing_or_short(store, artifact, sizes)
                if problem is not None:
                    return record["generation"], problem
    latest = store.record(count - 1)
    for artifact in artifacts({k: v for k, v in latest.items() if k != "mix"}):
        problem = _not_as_committed(store, artifact)
        if problem is not None:
            return latest["generation"], problem
    return None


def broken_checkpoint(store: RunStore, generation: int) -> str | None:
    """What is wrong with the in-flight generation's latest checkpoint, or None."""
    folder = f"{generation_dir(generation)}/{TRAIN_DIR}"
    text = store.storage.read_text(f"{folder}/{CHECKPOINT_SNAPSHOT}")
    if text is None:
        return None
    try:
        latest = json.loads(text)["latest_checkpoint_result"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return f"{store.storage.uri_of(folder)}/{CHECKPOINT_SNAPSHOT} is corrupt"
    if not latest:
        return None
    where = f"{folder}/{latest['checkpoint_dir_name']}"
    expected = store.storage.read_text(f"{where}/{STATE_SHA}")
    if not store.storage.exists(f"{where}/{STATE_FILE}") or expected is None:
        return f"checkpoint {store.storage.uri_of(where)} is missing"
    data = store.storage.read_bytes(f"{where}/{STATE_FILE}")
    if hashlib.sha256(data).hexdigest() != expected.strip():
        return f"checkpoint {store.storage.uri_of(where)} does not match its checksum"
    return None


def repair(store: RunStore, every_size: bool | None = None) -> list[str]:
    """Make the run safe to continue; what was found and done, a line each."""
    said = []
    found = first_broken(store, every_size)
    if found is not None:
        generation, problem = found
        later = store.count() - generation
        store.truncate(generation)
        said.append(
            f"{problem}: generation {generation} is recomputed"
            + (f" (with the {later - 1} after it)" if later > 1 else "")
        )
    in_flight = store.count()
    broken = broken_checkpoint(store, in_flight)
    if broken is not None:
        store.storage.delete_dir(f"{generation_dir(in_flight)}/{TRAIN_DIR}")
        said.append(f"{broken}: generation {in_flight} trains again from step 0")
    return said
