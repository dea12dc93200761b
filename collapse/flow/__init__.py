"""Rectified flow's math: interpolant and objective, samplers, online pairing, DAE theory."""
