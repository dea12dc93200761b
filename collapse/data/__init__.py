"""The data a chain trains on: real sources, shards, datasets and per-generation mix plans.

- Sources: `toy` (distributions whose truth is known), `sources` (every built-in source as
  shard tables), `image_folder` (`folder:PATH`), `source_tables`; `prepare` writes a source
  as a checksummed `dataset` (parquet shards and an index), which `checks` verifies whole.
- `shards` (the shard schema and parquet encoding), `space` (what one example is: a vector, or
  an image as floats in [-1, 1]), `real` (where a run's real pool and held-out rows live).
- `mix` (which rows train generation t), `pile` (every generation's samples, for accumulate).
- `noise` (per-row noise by (seed, row id)) and `streams` (every random stream a chain draws
  from, and the seed of a trained generation).
- `feed/`: a generation's training rows as batches, a pure function of (seed, step, rank).
"""
