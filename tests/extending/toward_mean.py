"""A corrector: each chosen sample moves toward the real pool's mean."""

from __future__ import annotations

import numpy as np

from collapse.strategies.correctors import TowardTarget


class TowardMean(TowardTarget):
    name = "toward_mean"

    def target(self, rows, ids, job):
        return np.broadcast_to(job.real().mean(axis=0), rows.shape)
