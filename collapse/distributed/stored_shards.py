"""A run's stored shards as a Ray Dataset, for sample sets larger than one process holds.

Ray Data reads the shards where they are (local disk or S3) without passing through the
caller. Their checksums are not recomputed (that would read every byte here, which is what this
path avoids); their sizes are checked against the manifest first, in one listing, so a
truncated or missing shard fails here rather than halfway through a pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow.fs as pafs
import ray

from collapse.distributed.runtime import ensure_ray
from collapse.errors import UserError
from collapse.store.records import Artifact
from collapse.store.storage import Storage


def read_shards(storage: Storage, shards: Sequence[Artifact]) -> ray.data.Dataset:
    """The shards (manifest artifacts, paths relative to `storage`) as one Dataset; rows carry
    their `id` (Ray Data may deliver blocks out of order)."""
    paths = [storage.path(shard["path"]) for shard in shards]
    for shard, info in zip(shards, storage.fs.get_file_info(paths), strict=True):
        if info.type != pafs.FileType.File or info.size != shard["bytes"]:
            found = "missing" if info.type != pafs.FileType.File else f"{info.size} bytes"
            raise UserError(
                f"{storage.uri_of(shard['path'])}: {found}, the manifest says "
                f"{shard['bytes']} bytes; the run's files were changed after the commit"
            )
    ensure_ray()
    return ray.data.read_parquet(paths, filesystem=storage.fs, shuffle=None)
