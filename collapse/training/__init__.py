"""What every trained family shares: the per-generation training loop, the EMA of the weights,
the train state a resumed generation continues from, and the velocity/noise nets."""
