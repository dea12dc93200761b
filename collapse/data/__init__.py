"""Where training data comes from: real sources, shards and per-generation mix plans."""
