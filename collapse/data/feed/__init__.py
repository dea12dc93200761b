"""The training feed: a generation's training rows as batches, a pure function of (seed, step,
rank, world size).

A trained generation must be a function of its config and seed, with 0 or N training workers,
killed and resumed or not, and its feed must keep pace with a PyTorch DataLoader whatever the
size of the set. Both follow from one definition of the order in which rows reach training:

- The planned rows (the mix plan's parts in plan order, each part's ids ascending) are cut
  into chunks: the planned ids of one shard within one planned range.
- Epoch e orders them anew from the seed. A set held in memory is permuted row by row; a set
  streamed from storage is permuted chunk by chunk, and each rank mixes its rows in windows of
  `window` rows (a local shuffle: storage is read in whole shards, never row by row).
- Rank r of W takes the r-th of W contiguous spans of every epoch (their sizes differ by at
  most one row). Its stream is its spans of epochs 0, 1, 2, ... end to end, and its batch at
  step s is rows [s*b, (s+1)*b) of that stream.

So every rank has a batch at every step (DDP needs equal steps), each planned row is seen
exactly once per epoch, the order differs between epochs, and a generation resumed at step s
starts at its batch s, not at the start of an epoch. Nothing depends on timing: reads run
ahead in a thread, but what they read is fixed before they start. No Ray here:
`collapse.distributed.datasets` puts a set held in memory in the object store once.

- `order`: the permutations, each rank's span and its windows (pure index arithmetic).
- `decode`: shard rows as a model consumes them (`Decode`).
- `chunks`: the planned ids of one shard (`Chunk`), a plan's chunks, and reading them.
- `batches`: `Feed`, each rank's batches from its step on, and the read-ahead thread.
"""
