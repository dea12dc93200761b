"""`collapse prepare`: a real data source written as checksummed parquet shards."""

from __future__ import annotations

import argparse


def prepare_source(args: argparse.Namespace) -> None:
    from collapse.data.prepare import prepare

    dataset = prepare(
        args.source,
        args.out,
        split=args.split,
        limit=args.limit,
        size=args.size,
        seed=args.seed,
        dim=args.dim,
        root=args.root,
        captions=args.captions,
        rows_per_shard=args.rows_per_shard,
    )
    shape = dataset.index["shape"] if "shape" in dataset.index else [dataset.index["dim"]]
    print(
        f"prepared {dataset.rows} rows of {args.source} ({args.split}, {dataset.kind} "
        f"{'x'.join(map(str, shape))}) in {len(dataset.shard_uris())} shards at {dataset.uri}"
    )
