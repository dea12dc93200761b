"""Rectified flow: the interpolant, samplers, velocity nets and training loop."""
